"""Fuel against battery degradation: how much fuel simple controllers behind the shields save when their
battery degradation is capped (at the operator's level, twice it, ...), chosen on dev days and reported
on the held-out test days.

    python benchmarks/microgrid_frontier.py [--problem microgrid/remote] [--days 32] [--dev-days 16]
        [--loads 1.0 0.5] [--plot docs/microgrid_frontier.png] [--json benchmarks/results/microgrid_frontier.json]

Candidates: the hysteresis rule (``soc_hysteresis``) at every ``(start_soc, stop_soc)`` of a grid with
narrow bands as well as wide ones (shallow cycles wear the battery less per kWh: a cycle of depth D
costs D^k, k > 1) for each genset load, and constant proposals (fraction of gensets, battery set-point)
that the shields alone make safe. Each candidate runs on the same dev days and the same test days, each
family in one batch. For each cap, the candidate
with the least dev fuel-equivalent among those whose dev degradation is within the cap is reported on
the test days (a choice made on the days it is reported on would flatter it). The operator
(``operator_rules``) is the reference for savings and for the degradation caps. Fuel-equivalent litres
are ``fuel_eq_litres`` of :func:`opsrl.microgrid.run_test`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from opsrl.core import Scenarios
from opsrl.core.config import parse_value
from opsrl.microgrid import run_test
from opsrl.microgrid.controllers import ConstantProposal, OperatorRules, SocHysteresis
from opsrl.registry import family, load_for_solver, load_problem, load_solver

ROOT = Path(__file__).resolve().parent.parent


def families(base, hyst, loads: list[float]) -> list[tuple[str, object, np.ndarray, object]]:
    """``(name, problem, parameter rows [K, d], policy for a batch of rows)`` for each family of rules."""
    starts = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7]
    widths = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5]
    out = []
    for u in loads:
        rows = np.array([(a, round(a + w, 4)) for a in starts for w in widths if a + w <= 0.95])
        out.append(
            (
                f"hysteresis, genset load {u:g}",
                hyst,
                rows,
                lambda prm, u=u: SocHysteresis(hyst, prm[:, 0], prm[:, 1], u),
            )
        )
    # shields alone: (fraction of gensets, battery set-point) every minute, set-point 0.5 = 0 kW
    rows = np.array([(g, b) for g in (0.0, 0.5, 1.0) for b in (0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0)])
    out.append(("shields alone (constant proposal)", base, rows, lambda prm: ConstantProposal(base, prm)))
    return out


def per_day(problem, policy, scenarios: Scenarios) -> dict[str, np.ndarray]:
    """Cost, fuel-equivalent litres and degradation of each scenario (one rollout)."""
    ev, m = run_test(problem, policy, scenarios, per_scenario=True)
    d = m["by_scenario"]
    if m["violations_total"]:
        raise RuntimeError(f"the shields let {m['violations_total']} violations through: {m['violations']}")
    return {
        "cost": ev.per_scenario.double().numpy(),
        "degradation": d["degradation"].numpy(),
        "fuel_eq": d["fuel_eq_litres"].numpy(),
        "unserved_kwh": d["unserved_kwh"].numpy(),
    }


def candidates(problem, rows: np.ndarray, make, scenarios: Scenarios) -> dict[str, np.ndarray]:
    """Per-candidate means ``[K]`` over the scenarios, every candidate on the same days, in one batch."""
    K, n = len(rows), scenarios.n
    rep = scenarios.select(torch.arange(n).repeat(K))  # candidate-major: K copies of the days
    prm = torch.as_tensor(rows, dtype=torch.float32).repeat_interleave(n, dim=0)
    return {k: v.reshape(K, n).mean(1) for k, v in per_day(problem, make(prm), rep).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="microgrid/remote")
    ap.add_argument("--days", type=int, default=32)
    ap.add_argument("--dev-days", type=int, default=16)
    ap.add_argument("--loads", type=float, nargs="+", default=[1.0, 0.5])
    ap.add_argument(
        "--caps",
        type=float,
        nargs="+",
        default=[1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 0.0],
        help="degradation caps as multiples of the operator's dev degradation (0: no cap)",
    )
    ap.add_argument("--problem-set", nargs="*", default=[], help="problem overrides, key=value")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plot", default=str(ROOT / "docs" / "microgrid_frontier.png"))
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "microgrid_frontier.json"))
    args = ap.parse_args()
    if args.dev_days < 1:
        ap.error(f"--dev-days: a positive number of days, got {args.dev_days}")
    if not all(0 <= u <= 1 for u in args.loads):
        ap.error(f"--loads: genset loads in [0, 1] (0: minimum load, 1: rated), got {args.loads}")
    torch.set_num_threads(args.threads)
    poverrides = {k: parse_value(v) for k, v in (kv.split("=", 1) for kv in args.problem_set)}
    base = load_problem(args.problem, {"test.scenarios": args.days, **poverrides})
    # the rule reads the second action component as the running gensets' load, as its solver file sets
    _, _, scfg = load_solver("soc_hysteresis", family("microgrid"), {})
    prob = load_for_solver(args.problem, scfg, {"test.scenarios": args.days, **poverrides})
    test = prob.test_set()
    dev = prob.sample(args.dev_days, "dev", 0, prob.test_periods)
    t0 = time.perf_counter()
    op = {"dev": per_day(base, OperatorRules(base), dev), "test": per_day(base, OperatorRules(base), test)}
    fams = families(base, prob, args.loads)
    cand = [(name, list(map(float, r))) for name, _, rows, _ in fams for r in rows]
    res = {}
    for split, days in (("dev", dev), ("test", test)):
        parts = [candidates(fp, rows, make, days) for _, fp, rows, make in fams]
        res[split] = {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}
    print(f"# {len(cand)} candidates on {dev.n} dev and {test.n} test days in {time.perf_counter() - t0:.0f} s")
    ref = {s: {k: float(v.mean()) for k, v in op[s].items()} for s in op}

    def saved(split, feq):
        return 100 * (1 - feq / ref[split]["fuel_eq"])

    rows = []
    print(
        f"\n{prob.name}: operator degradation {ref['dev']['degradation']:.2f} (dev) / "
        f"{ref['test']['degradation']:.2f} (test) per day\n"
    )
    print(
        "| degradation cap (x operator, dev) | rule | parameters | dev fuel-eq. saved | "
        "test fuel-eq. saved | test degradation | test cost | test unserved (kWh) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for cap in args.caps:
        ok = np.ones(len(cand), bool) if cap <= 0 else res["dev"]["degradation"] <= cap * ref["dev"]["degradation"]
        if not ok.any():
            print(f"| {cap:g} | none within the cap | | | | | | |")
            continue
        i = int(np.flatnonzero(ok)[np.argmin(res["dev"]["fuel_eq"][ok])])
        row = {
            "cap": cap,
            "rule": cand[i][0],
            "parameters": cand[i][1],
            "dev_saved": saved("dev", res["dev"]["fuel_eq"][i]),
            "test_saved": saved("test", res["test"]["fuel_eq"][i]),
            "test_degradation": float(res["test"]["degradation"][i]),
            "test_cost": float(res["test"]["cost"][i]),
            "test_unserved_kwh": float(res["test"]["unserved_kwh"][i]),
        }
        rows.append(row)
        print(
            f"| {'none' if cap <= 0 else f'{cap:g}'} | {row['rule']} | "
            f"{', '.join(f'{x:g}' for x in row['parameters'])} | "
            f"{row['dev_saved']:.1f}% | {row['test_saved']:.1f}% | {row['test_degradation']:.2f} | "
            f"{row['test_cost']:.1f} | {row['test_unserved_kwh']:.2f} |"
        )
    out = {
        "args": vars(args),
        "operator": ref,
        "candidates": cand,
        "results": {s: {k: v.tolist() for k, v in r.items()} for s, r in res.items()},
        "chosen": rows,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    if args.plot:
        plot(cand, res["test"], ref["test"], rows, args.plot, prob.name)


def plot(cand, test, ref, rows, path, name) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    sv = 100 * (1 - test["fuel_eq"] / ref["fuel_eq"])
    labels = [c[0] for c in cand]
    for fam, mk in zip(dict.fromkeys(labels), "os^vD"):
        m = np.array([lab == fam for lab in labels])
        ax.scatter(test["degradation"][m], sv[m], s=14, marker=mk, alpha=0.6, label=fam)
    ax.scatter([ref["degradation"]], [0.0], c="k", marker="*", s=120, label="operator_rules")
    ax.plot(
        [r["test_degradation"] for r in rows],
        [r["test_saved"] for r in rows],
        "r.-",
        label="chosen on dev days under a degradation cap",
    )
    ax.set_xscale("log")
    ax.set_xlabel("battery degradation per test day (rainflow, cost units)")
    ax.set_ylabel("fuel-equivalent saved vs the operator (%)")
    ax.set_title(f"{name}: fuel against battery wear, {len(cand)} rules on the test days")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
