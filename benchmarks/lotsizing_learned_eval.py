"""The shipped lot-sizing policy against the references, paired on the same test scenarios, every size.

Per size: the learned policy (the weights ``lotsizing_learned`` picks for the plant, ``learned.shipped``:
the plant's own network where one is shipped, else the shared one; or ``--weights``) and the cover rule
(thresholds searched on dev) on the 100 test scenarios; the rolling MIP on the first test scenarios
(``benchmarks/lotsizing_mip_runs.py``'s ``*_mip_test.json``); PPO and PDPPO at 500k steps (best-on-dev, the
mean over their ten seeds of each scenario's cost, ``benchmarks/results/lotsizing_pdppo_*_500k.json``, where
run); the rollout policy on top of the learned one on the first ``--rollout-scenarios``; the
perfect-information bound where computed (``lotsizing_refs*.json``). Paired differences ``learned - other``
with 95% t intervals on the scenarios both ran, and the decision time per period of each policy. Writes
``--json`` and prints a Markdown table; ``--plot`` draws the policy-iteration curves of the training runs.

    python benchmarks/lotsizing_learned_eval.py --json benchmarks/results/lotsizing_learned/eval.json \
        --plot docs/figures/lotsizing_learned_curve.png
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from opsrl.algos import rollout_pi as rpi
from opsrl.bench.report import paired_difference
from opsrl.core import rollout
from opsrl.lotsizing import learned
from opsrl.lotsizing.rules import CoverRule, search_cover
from opsrl.registry import load_problem

RES = Path(__file__).parent / "results"
OUT = RES / "lotsizing_learned"
SIZES = ["i15_m5", "i20_m10", "i25_m10", "i25_m15", "i30_m10", "i30_m15"]


def paired(a, b) -> dict:
    """``a - b`` on the common first scenarios (the report's :func:`paired_difference`, one run each): mean,
    95% t interval, how often ``a`` is lower, and the t test's p value."""
    n, mean, half, better, _ = paired_difference([list(a)], [list(b)], sample=True)
    d = np.asarray(a[:n], float) - np.asarray(b[:n], float)
    p = float(stats.ttest_1samp(d, 0.0).pvalue) if n > 1 and d.std() > 0 else math.nan
    return {"n": n, "diff": mean, "low": mean - half, "high": mean + half, "p": p, "better": int(better)}


def timed_costs(p, policy, sc):
    t0 = time.perf_counter()
    with torch.no_grad():
        c = rollout(p, policy, sc).costs.sum(1)
    return c.double().tolist(), (time.perf_counter() - t0) / sc.periods


def ppo_costs(name: str, method: str):
    f = RES / f"lotsizing_pdppo_{name}_500k.json"  # both methods' ten seeds (the published actor: not frozen)
    if not f.exists():
        return None
    runs = [r for r in json.loads(f.read_text())["runs"] if r["method"] == method]
    if not runs:
        return None
    return np.mean([r["best_test_per_scenario"] for r in runs], 0).tolist(), len(runs)


def mip_costs(name: str, scenarios: int):
    """The rolling MIP's stored per-scenario costs and its seconds per period for ``scenarios`` scenarios (one
    MIP each), or None where it was not run."""
    f = OUT / f"{name}_mip_test.json"
    if not f.exists():
        return None
    m = json.loads(f.read_text())
    return m["per_scenario"], m["seconds"] / max(1, m["solves"]) * scenarios


def bound_costs(name: str):
    for f in ("lotsizing_refs_bound.json", "lotsizing_refs.json"):
        d = json.loads((RES / f).read_text()) if (RES / f).exists() else {}
        row = d.get(name, {})
        if row.get("bound_per_scenario"):
            b = np.asarray(row["bound_per_scenario"], float)
            if "lagrangian_per_scenario" in row:
                b = np.maximum(b, np.asarray(row["lagrangian_per_scenario"], float)[: len(b)])
            return b.tolist()
    f = OUT / f"{name}_bound.json"
    return json.loads(f.read_text())["bound_per_scenario"] if f.exists() else None


def plot_curve(folder: Path, mip: dict, out: Path) -> None:
    """Dev cost after each stage: the plant's own network (``<size>/curve.json``; triangles: DAgger rounds),
    an earlier run without DAgger (``<size>_no_dagger/``) and the shared one (``shared/curve.json``), with the
    cover rule (dev) and the rolling MIP (test) as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shared = json.loads((folder / "shared" / "curve.json").read_text()) if (folder / "shared").is_dir() else None

    def read(path: Path):
        return json.loads(path.read_text()) if path.exists() else None

    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, n in zip(axes.flat, SIZES):
        rule = None
        for cv, label, style, color in (
            (read(folder / n / "curve.json"), "own network", "o-", "tab:blue"),
            (read(folder / f"{n}_no_dagger" / "curve.json"), "own network, earlier run (no DAgger)", "x:", "tab:gray"),
            (shared, "shared network", "s--", "tab:orange"),
        ):
            if cv is None or n not in cv["rule_dev"]:
                continue
            ys = [s["dev"][n] for s in cv["stages"]]
            ax.plot(range(len(ys)), ys, style, color=color, label=label)
            dag = [i for i, s in enumerate(cv["stages"]) if s["stage"].startswith("dagger")]
            if dag:  # the rounds labelled by the MIP
                ax.plot(dag, [ys[i] for i in dag], "^", color="black", mfc="none", ms=9, label="DAgger rounds")
            rule = cv["rule_dev"][n]
        if rule is not None:
            ax.axhline(rule, color="tab:red", ls="--", lw=1, label="cover rule (dev)")
        if n in mip:
            ax.axhline(mip[n], color="tab:green", ls=":", label="rolling MIP (test scenarios)")
        ax.set_title(n)
        ax.set_xlabel("stage (0: clone of the rolling MIP, then iterations)")
    seen = {}  # one legend for the figure: every series drawn in any panel
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(seen.values(), seen.keys(), loc="lower center", ncol=3, fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("episode cost (dev, 64 scenarios)")
    fig.suptitle("Policy iteration of the item-machine network (benchmarks/lotsizing_learned.py)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=SIZES)
    ap.add_argument("--weights", default="", help="weights file ('': the shipped ones)")
    ap.add_argument("--rollout-scenarios", type=int, default=10)
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--paths", type=int, default=8)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--curves", type=Path, default=OUT, help="folder of the training runs (curve.json per size)")
    ap.add_argument(
        "--table",
        action="store_true",
        help="run nothing: the table of --json, the bounds, MIP and PPO/PDPPO runs read again",
    )
    a = ap.parse_args()
    if a.table:
        rows = json.loads(a.json.read_text())
        for name, row in rows.items():
            row.pop("bound", None)
            if b := bound_costs(name):
                row["bound"] = b
            if got := mip_costs(name, len(row["learned"])):  # a MIP run on more test scenarios since
                row["mip"], row["mip_s_per_period"] = got
                row["vs"]["mip"] = paired(row["learned"], row["mip"])
            for method in ("ppo", "pdppo"):  # PPO/PDPPO runs added since
                if got := ppo_costs(name, method):
                    row[method], row[f"{method}_seeds"] = got
                    row["vs"][method] = paired(row["learned"], row[method])
        a.json.write_text(json.dumps(rows, indent=1))
        print(table(rows))
        return
    torch.set_num_threads(1)
    rows, mip_means = {}, {}
    for name in a.sizes:
        p = load_problem(f"lotsizing/{name}")
        test = p.test_set()
        net = learned.load(p, a.weights or None)
        row = {"problem": name}
        row["learned"], row["learned_s_per_period"] = timed_costs(p, net, test)
        best, _ = search_cover(p, p.sample(256, "dev", 0))
        row["cover"], row["cover_s_per_period"] = timed_costs(p, CoverRule(p, best["low"], best["high"]), test)
        if got := mip_costs(name, test.n):
            row["mip"], row["mip_s_per_period"] = got
            mip_means[name] = float(np.mean(row["mip"]))
        for method in ("ppo", "pdppo"):
            got = ppo_costs(name, method)
            if got:
                row[method], row[f"{method}_seeds"] = got
        if a.rollout_scenarios:
            k = min(a.rollout_scenarios, test.n)
            keep = lambda s, t: s["setup"].argmax(-1).unsqueeze(1)  # noqa: E731
            cands = rpi.candidate_fn(p, [net, CoverRule(p, best["low"], best["high"])], [keep])
            pol = rpi.RolloutPolicy(p, net, cands, a.horizon, a.paths, 1, seed=1, chunk=16)
            row["rollout"], secs = timed_costs(p, pol, test.select(slice(0, k)))
            row["rollout_s_per_period"] = secs * test.n / k
        b = bound_costs(name)
        if b:
            row["bound"] = b
        row["vs"] = {k: paired(row["learned"], row[k]) for k in ("mip", "cover", "ppo", "pdppo", "rollout") if k in row}
        rows[name] = row
        print(name, json.dumps({k: round(v["diff"], 1) for k, v in row["vs"].items()}), flush=True)
    if a.json:  # sizes run before (another call) are kept, these replace theirs
        rows = {**(json.loads(a.json.read_text()) if a.json.exists() else {}), **rows}
        a.json.write_text(json.dumps(rows, indent=1))
    print(table(rows))
    if a.plot:  # the MIP line of every size whose MIP runs are on disk, not only those evaluated now
        for n in SIZES:
            f = OUT / f"{n}_mip_test.json"
            if f.exists():
                mip_means.setdefault(n, float(np.mean(json.loads(f.read_text())["per_scenario"])))
        plot_curve(a.curves, mip_means, a.plot)


def table(rows: dict) -> str:
    def ms(x):
        x = np.asarray(x, float)
        return f"{x.mean():.0f} +- {x.std(ddof=1) / math.sqrt(len(x)):.0f}" if len(x) > 1 else f"{x.mean():.0f}"

    def dv(v):
        return f"{v['diff']:+.0f} ({v['low']:+.0f} .. {v['high']:+.0f}), {v['better']}/{v['n']}"

    out = [
        "| size | learned (100) | cover rule (100) | rolling MIP (first n) | learned - MIP, paired (95%), "
        "learned better on | learned - cover rule | PPO / PDPPO 500k | learned - rollout (first 10) | "
        "bound (first 5) | decision s/period: learned, MIP |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, r in rows.items():
        vs = r["vs"]
        ppo = " / ".join(ms(r[k]) for k in ("ppo", "pdppo") if k in r) or "not run"
        out.append(
            f"| {n} | {ms(r['learned'])} | {ms(r['cover'])} | "
            f"{ms(r['mip']) + ' (' + str(len(r['mip'])) + ')' if 'mip' in r else ''} | "
            f"{dv(vs['mip']) if 'mip' in vs else ''} | {dv(vs['cover'])} | {ppo} | "
            f"{dv(vs['rollout']) if 'rollout' in vs else ''} | {ms(r['bound']) if 'bound' in r else ''} | "
            f"{r['learned_s_per_period']:.4f}, {r.get('mip_s_per_period', float('nan')):.1f} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    main()
