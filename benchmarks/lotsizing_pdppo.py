"""PPO against PDPPO on lot sizing at equal environment steps, over seeds (resumable).

Each run trains the bundled ``ppo_lotsizing`` or ``pdppo_lotsizing`` (the published per-update settings: 40
episodes of 100 periods per update, 60 full-batch epochs, clip 0.2, gamma 0.99, Monte-Carlo returns) for
``--iterations`` updates, with a dev evaluation (200 scenarios, greedy policy) after every update; then the
greedy policy best on dev (``best``) and the last one (``final``) are evaluated on the problem's 100 test
scenarios. Results are appended to ``--out`` after every run; a run already there is skipped, so an
interrupted benchmark resumes. ``--report`` reads one or more result files and prints the table (mean and
standard deviation over seeds of the best and final test costs, Welch's t-test from scipy) and draws the
learning curves (mean and a band of one standard deviation over seeds, against environment steps).
``--actor frozen_hidden`` trains only the actor's output layer, as the authors' optimisers do (an ablation;
such runs are reported apart from those that train the whole actor).

    python benchmarks/lotsizing_pdppo.py --problems i25_m10 i25_m15 --seeds 0 1 2 --iterations 15 \
        --out benchmarks/results/lotsizing_pdppo.json
    python benchmarks/lotsizing_pdppo.py --report benchmarks/results/lotsizing_pdppo*.json \
        --png docs/figures/lotsizing_pdppo.png
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from opsrl.algos import ppo
from opsrl.core import SolveContext, evaluate
from opsrl.nn.actor_critic import build_actor_critic
from opsrl.registry import family, load_for_solver, load_solver

SOLVERS = {"ppo": "ppo_lotsizing", "pdppo": "pdppo_lotsizing"}
ACTORS = ("full", "frozen_hidden")  # frozen_hidden: only the actor's output layer learns, as in the authors' code


def group(r: dict) -> str:
    """A run's label: its method, and the actor it trained when that is not the whole network."""
    return r["method"] + ("" if r.get("actor", "full") == "full" else f" ({r['actor']})")


def groups(runs: list[dict]) -> list[tuple[str, str, str]]:
    """(label, method, actor) of every kind of run present, PPO before PDPPO, full actors first."""
    have = {(r["method"], r.get("actor", "full")) for r in runs}
    return [(group({"method": m, "actor": a}), m, a) for a in ACTORS for m in SOLVERS if (m, a) in have]


def actor_critic(prob, cfg: dict, seed: int, post_critic: bool, actor: str = "full") -> torch.nn.Module:
    """The run's network, seeded: with a post-decision critic for PDPPO (``post_critic``), and with
    ``frozen_hidden`` the actor's hidden layers kept at their initial weights (the authors' optimisers hold
    `self.actor`, the output layer, and not fc1 and fc2)."""
    if actor not in ACTORS:
        raise ValueError(f"--actor {actor!r}: allowed are {', '.join(ACTORS)}")
    torch.manual_seed(seed)
    ac = build_actor_critic(prob, cfg["policy"], cfg["source"], horizon=prob.periods, post_critic=post_critic)
    if actor == "frozen_hidden":
        for layer in [x for x in ac.actor if isinstance(x, torch.nn.Linear)][:-1]:
            layer.requires_grad_(False)
    return ac


def one_run(problem_name: str, method: str, seed: int, iterations: int, eval_every: int, actor: str = "full") -> dict:
    fam = family("lotsizing")
    _, m, cfg = load_solver(SOLVERS[method], fam, {"iterations": iterations, "eval_every": eval_every})
    prob = load_for_solver(f"lotsizing/{problem_name}", cfg)
    o = dict(cfg["options"])
    o["post_critic"] = method == "pdppo"
    ac = actor_critic(prob, cfg, seed, o["post_critic"], actor)
    orig = ac.load_state_dict

    def keep_final(sd, *a, **k):  # train() loads the best-on-dev parameters at its end: keep the last ones first
        if not hasattr(ac, "_final"):
            ac._final = copy.deepcopy(ac.state_dict())
        return orig(sd, *a, **k)

    ac.load_state_dict = keep_final
    t0 = time.perf_counter()
    ac, curve = ppo.train(prob, ac, o, SolveContext(seed=seed, progress=False))
    secs = time.perf_counter() - t0
    test = prob.test_set()
    best = evaluate(prob, ac, test)
    orig(ac._final)
    final = evaluate(prob, ac, test)
    steps_per_it = o["batch_size"] * (o["train_periods"] or prob.periods)
    return {
        "problem": problem_name,
        "method": method,
        "seed": seed,
        "actor": actor,
        "iterations": iterations,
        "env_steps": iterations * steps_per_it,
        "train_seconds": secs,
        "best_test": best.mean,
        "best_stderr": best.stderr,
        "final_test": final.mean,
        "final_stderr": final.stderr,
        "best_test_per_scenario": best.per_scenario.tolist(),
        "final_test_per_scenario": final.per_scenario.tolist(),
        "curve": [
            {"env_steps": c["iteration"] * steps_per_it, "dev_cost": c["dev_cost"], "train_cost": c.get("train_cost")}
            for c in curve
        ],
    }


def load(paths) -> list[dict]:
    runs = []
    for p in paths:
        if Path(p).is_file():
            runs.extend(json.loads(Path(p).read_text())["runs"])
    return runs


def report(paths, png: str | None, refs: str | None = None) -> str:
    from scipy import stats

    runs = load(paths)
    ref: dict = {}
    for f in refs or []:  # several files: merged per problem, later files win
        if Path(f).is_file():
            for k, v in json.loads(Path(f).read_text()).items():
                ref.setdefault(k, {}).update(v)
    lines = [
        "| problem | method | seeds | env steps | best test cost | final test cost | final train cost (stochastic) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    tests = []
    problems = sorted({r["problem"] for r in runs})
    for pr in problems:
        here = [r for r in runs if r["problem"] == pr]
        by = {lab: [r for r in here if group(r) == lab] for lab, _, _ in groups(here)}
        for m, rs in by.items():
            b = np.array([r["best_test"] for r in rs])
            f = np.array([r["final_test"] for r in rs])
            tc = np.array([r["curve"][-1]["train_cost"] for r in rs])
            sd = lambda x: x.std(ddof=1) if len(x) > 1 else float("nan")
            lines.append(
                f"| {pr} | {m} | {len(rs)} ({', '.join(str(r['seed']) for r in rs)}) | {rs[0]['env_steps']} | "
                f"{b.mean():.0f} +- {sd(b):.0f} | {f.mean():.0f} +- {sd(f):.0f} | {tc.mean():.0f} +- {sd(tc):.0f} |"
            )
        for actor in ACTORS:
            lab = lambda m: group({"method": m, "actor": actor})
            if len(by.get(lab("ppo"), [])) < 2 or len(by.get(lab("pdppo"), [])) < 2:
                continue
            for key in ("best_test", "final_test"):
                a = [r[key] for r in by[lab("pdppo")]]
                c = [r[key] for r in by[lab("ppo")]]
                t = stats.ttest_ind(a, c, equal_var=False)
                u = stats.mannwhitneyu(a, c)
                tests.append(
                    f"{pr} {key}{'' if actor == 'full' else f' ({actor})'}: PDPPO - PPO = "
                    f"{np.mean(a) - np.mean(c):+.0f}, Welch t = {t.statistic:.2f}, p = {t.pvalue:.3f}; "
                    f"Mann-Whitney U = {u.statistic:.0f}, p = {u.pvalue:.3f}"
                )
    out = "\n".join(lines + [""] + tests)
    if ref:
        out += "\n\n" + refs_table(runs, ref, problems)
    if png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(problems), figsize=(6 * len(problems), 4.2), squeeze=False)
        for ax, pr in zip(axes[0], problems):
            here = [r for r in runs if r["problem"] == pr]
            for lab, m, actor in groups(here):
                col = {"ppo": "tab:blue", "pdppo": "tab:red"}[m]
                rs = [r for r in here if group(r) == lab]
                n = min(len(r["curve"]) for r in rs)
                x = np.array([c["env_steps"] for c in rs[0]["curve"][:n]])
                y = np.array([[c["dev_cost"] for c in r["curve"][:n]] for r in rs])
                mu, sd = y.mean(0), (y.std(0, ddof=1) if len(rs) > 1 else np.zeros(n))
                ls = "-" if actor == "full" else "--"
                name = m.upper() + ("" if actor == "full" else f", {actor.replace('_', ' ')} actor")
                ax.plot(x, mu, color=col, ls=ls, label=f"{name} ({len(rs)} seeds)")
                ax.fill_between(x, mu - sd, mu + sd, color=col, alpha=0.2 if actor == "full" else 0.1)
            r = dict(ref.get(pr, {}))
            if "lagrangian" in r:  # the better of the two bounds, scenario by scenario
                best = np.maximum(
                    r.get("bound_per_scenario", r["lagrangian_per_scenario"]), r["lagrangian_per_scenario"]
                )
                r["bound"], r["bound_per_scenario"] = float(np.mean(best)), list(best)
            for k, ls, what in (
                ("cover_rule_all_test", ":", "cover rule (100 test scenarios)"),
                ("keep", "-", "keep initial setups (first {n})"),
                ("mpc", "--", "rolling MIP (first {n})"),
                ("bound", "-.", "perfect-info bound (first {n})"),
            ):
                if r.get(k) is not None:
                    n = len(r.get(k.replace("_all_test", "") + "_per_scenario", []))
                    ax.axhline(r[k], color="k" if k != "keep" else "0.6", ls=ls, lw=1, label=what.format(n=n))
            ax.set_title(f"lotsizing/{pr}: dev cost of the greedy policy")
            ax.set_xlabel("environment steps")
            ax.set_ylabel("episode cost (100 periods)")
            ax.set_ylim(top=min(ax.get_ylim()[1], 30000))
            ax.legend(fontsize=8)
        fig.tight_layout()
        Path(png).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=110)
    return out


def refs_table(runs, ref, problems) -> str:
    """Every learned cost next to the references, on all 100 test scenarios and on the first ``n`` (those the
    rolling MIP and the bound were run on)."""
    lines = ["| problem | policy | test cost (100 scenarios) | first n scenarios (n) |", "| --- | --- | ---: | ---: |"]
    for pr in problems:
        r = ref.get(pr, {})
        n = len(r.get("bound_per_scenario", []))
        first = lambda xs: f"{np.mean(xs[:n]):.0f} ({n})" if n and len(xs) >= n else ""
        rows = []
        here = [x for x in runs if x["problem"] == pr]
        for lab, m, actor in groups(here):
            rs = [x for x in here if group(x) == lab]
            allb = np.mean([x["best_test"] for x in rs])
            fb = np.mean([np.mean(x["best_test_per_scenario"][:n]) for x in rs]) if n else float("nan")
            rows.append(
                (
                    f"{m.upper()}{'' if actor == 'full' else f' ({actor})'} best-on-dev, mean of {len(rs)} seeds",
                    f"{allb:.0f}",
                    f"{fb:.0f} ({n})" if n else "",
                )
            )
        if "cover_rule" in r:
            rows.append(
                (
                    f"cover rule (low, high = {r['cover_rule_thresholds']})",
                    f"{r['cover_rule_all_test']:.0f}",
                    first(r["cover_rule_per_scenario"]),
                )
            )
            rows.append(("keep the initial setups", "", first(r["keep_per_scenario"])))
            rows.append(("random allowed choices", "", first(r["random_per_scenario"])))
        if "mpc" in r:
            k = len(r["mpc_per_scenario"])
            rows.append((f"rolling MIP, horizon {r['mpc_info']['horizon']}", "", f"{r['mpc']:.0f} ({k})"))
        if "bound" in r:
            if np.isfinite(r["plan"]):
                rows.append(("perfect-information plan (SCIP incumbent, not a bound)", "", f"{r['plan']:.0f} ({n})"))
            src = sorted(set(r.get("bound_from", ["mip"])))
            what = {"mip": f"SCIP best bound at {r['bound_time_limit']:g} s", "lp_relaxation": "LP relaxation (GLOP)"}
            rows.append(
                (f"perfect-information bound ({' / '.join(what[x] for x in src)})", "", f"{r['bound']:.0f} ({n})")
            )
        if "lagrangian" in r:
            k = len(r["lagrangian_per_scenario"])
            steps = r["lagrangian_info"]["max_iterations"]
            rows.append(
                (
                    "perfect-information plan (item Lagrangian, repaired; not a bound)",
                    "",
                    f"{r['lagrangian_plan']:.0f} ({k})",
                )
            )
            rows.append(
                (f"perfect-information bound (item Lagrangian, <= {steps} steps)", "", f"{r['lagrangian']:.0f} ({k})")
            )
        lines += [f"| {pr} | {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", nargs="+", default=["i25_m10", "i25_m15"])
    ap.add_argument("--methods", nargs="+", default=["ppo", "pdppo"], choices=list(SOLVERS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=15, help="updates of 4000 environment steps (published: 125)")
    ap.add_argument("--eval-every", type=int, default=1)
    ap.add_argument(
        "--actor",
        choices=ACTORS,
        default="full",
        help="frozen_hidden: train only the actor's output layer, as the authors' optimisers do (an ablation)",
    )
    ap.add_argument("--out", default="benchmarks/results/lotsizing_pdppo.json")
    ap.add_argument("--report", nargs="*", help="result files to summarise (no training)")
    ap.add_argument(
        "--refs",
        nargs="*",
        default=["benchmarks/results/lotsizing_refs.json"],
        help="reference costs (rolling MIP, cover rule, bound) to draw, from lotsizing_refs.py",
    )
    ap.add_argument("--png", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.report is not None:
        print(report(a.report or [a.out], a.png, a.refs))
        return
    out = Path(a.out)
    data = json.loads(out.read_text()) if out.is_file() else {"runs": []}
    done = {(r["problem"], r["method"], r["seed"], r["iterations"], r.get("actor", "full")) for r in data["runs"]}
    for pr in a.problems:
        for seed in a.seeds:
            for m in a.methods:
                if (pr, m, seed, a.iterations, a.actor) in done:
                    continue
                t0 = time.perf_counter()
                r = one_run(pr, m, seed, a.iterations, a.eval_every, a.actor)
                data["runs"].append(r)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(data))
                print(
                    f"{pr} {group(r)} seed {seed}: best {r['best_test']:.0f} final {r['final_test']:.0f} "
                    f"({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
    print(report([a.out], a.png, a.refs))


if __name__ == "__main__":
    main()
