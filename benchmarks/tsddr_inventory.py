"""TS-DDR on the inventory networks against HDPO, next to echelon base stock and the store-level bound.

    python benchmarks/tsddr_inventory.py --problems warehouse_n3 transshipment_n5 --time-limit 150 --lr 1e-2 \
        --out benchmarks/results/tsddr_inventory_lr1e-2.json
    python benchmarks/tsddr_inventory.py --problems transshipment_n5 --time-limit 150 --lr 1e-3 \
        --out benchmarks/results/tsddr_inventory_lr1e-3.json

Every solver of a problem runs through :func:`opsrl.bench.runner.run` on the same test scenarios (``--test-scenarios``
x ``--test-periods``, warm-up ``--test-warmup``; the defaults are those of ``benchmarks/inventory_networks.py``
that ``benchmarks/results/inventory_networks_more.json`` was measured with). HDPO is not re-trained here (its
training is 180 s per cell): its figures are read from that file, and ``echelon_stock`` is re-run to show that
this run's test scenarios and simulator reproduce that file's echelon-stock cost exactly (same scenarios hash is
not stored there, so the cost itself is the check). HDPO's decision time per stage is timed here on the same
test batch with the same policy architecture (``hdpo_mlp_net``: weights do not change the time).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

SOLVERS = ["echelon_stock", "tsddr_inventory"]
HDPO_FILE = "benchmarks/results/inventory_networks_more.json"


def hdpo_decision_time(problem: str, test: dict, periods: int = 50) -> dict:
    """Seconds per stage of an ``hdpo_mlp_net`` policy (the architecture; untrained) on the test batch."""
    from opsrl.core import rollout
    from opsrl.nn import build_policy
    from opsrl.registry import family, load_problem, load_solver

    prob = load_problem(f"inventory/{problem}", {"test": test})
    _, _, scfg = load_solver("hdpo_mlp_net", family("inventory"))
    policy = build_policy(prob, scfg["policy"], scfg["source"]).eval()
    sc = prob.test_set()
    t0 = time.perf_counter()
    with torch.no_grad():
        rollout(prob, policy, sc, periods=periods)
    s = (time.perf_counter() - t0) / periods
    return {"decision_seconds_per_stage": s, "decision_seconds_per_stage_per_scenario": s / sc.n, "batch": sc.n}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", nargs="*", default=["warehouse_n3", "transshipment_n5"])
    ap.add_argument("--solvers", nargs="*", default=SOLVERS)
    ap.add_argument("--time-limit", type=float, default=150.0, help="seconds of TS-DDR training per run")
    ap.add_argument("--test-scenarios", type=int, default=256)
    ap.add_argument("--test-periods", type=int, default=300)
    ap.add_argument("--test-warmup", type=int, default=50)
    ap.add_argument("--lr", type=float, default=0.0, help="TS-DDR's learning rate (0: the solver file's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hdpo", default=HDPO_FILE, help="stored HDPO results on the same test specification")
    ap.add_argument("--out", default="benchmarks/results/tsddr_inventory.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from opsrl.bench.runner import run

    test = {"scenarios": a.test_scenarios, "periods": a.test_periods, "warmup": a.test_warmup}
    stored = json.loads(Path(a.hdpo).read_text()) if Path(a.hdpo).is_file() else {"rows": [], "test": None}
    same_spec = stored.get("test") == test
    rows = []
    for prob in a.problems:
        for solver in a.solvers:
            over = {}
            if solver.startswith(("tsddr", "tsldr")):
                over = {"time_limit": a.time_limit, "max_steps": 100000, "threads": a.threads}
                if a.lr:
                    over["lr"] = a.lr
            t0 = time.perf_counter()
            rec = run(
                f"inventory/{prob}",
                solver,
                progress=False,
                trace=False,
                solver_overrides=over,
                problem_overrides={"test": test},
            )
            info = rec["info"]
            row = {
                "problem": prob,
                "solver": solver,
                "cost": rec["test_cost"],
                "stderr": rec["test_stderr"],
                "reference": rec["reference"],
                "gap_pct": rec["gap_pct"],
                "scenarios_hash": rec["test"]["scenarios_hash"],
                "seconds": time.perf_counter() - t0,
                "train_seconds": rec["train_seconds"],
                "eval_seconds": rec["eval_seconds"],
                "steps": info.get("steps"),
                "best_step": info.get("best_step"),
                "parameters": info.get("parameters"),
                "target_violation_share": info.get("target_violation_share"),
                "decision_seconds_per_stage": info.get("decision_seconds_per_stage"),
                "decision_seconds_per_stage_per_scenario": info.get("decision_seconds_per_stage_per_scenario"),
                "lp_seconds_per_stage": info.get("lp_seconds_per_stage"),
                "curve": rec["curve"] if solver.startswith(("tsddr", "tsldr")) else None,
                "per_scenario": None,
                "source": "this run",
            }
            rows.append(row)
            print(
                f"{prob:18s} {solver:16s} {row['cost']:.4f} +- {row['stderr']:.4f}  gap {row['gap_pct']:+.1f}%  "
                f"train {row['train_seconds']:.0f}s steps {row['steps']}  eval {row['eval_seconds']:.0f}s",
                flush=True,
            )
        for r in stored["rows"]:
            if r["problem"] == prob and same_spec:
                rows.append({**r, "source": a.hdpo})
        if "hdpo_mlp_net" in {r["solver"] for r in rows if r["problem"] == prob}:
            rows.append({"problem": prob, "solver": "hdpo_mlp_net (decision time)", **hdpo_decision_time(prob, test)})
    checks = []
    for r in rows:
        twin = [s for s in rows if s["problem"] == r["problem"] and s["solver"] == r["solver"] and s is not r]
        if r.get("source") == "this run" and r["solver"] == "echelon_stock" and twin:
            checks.append(
                {
                    "problem": r["problem"],
                    "echelon_stock_here": r["cost"],
                    "echelon_stock_stored": twin[0]["cost"],
                    "same": abs(r["cost"] - twin[0]["cost"]) <= 1e-6 * abs(twin[0]["cost"]),
                }
            )
    out = {
        "rows": rows,
        "test": test,
        "time_limit": a.time_limit,
        "lr": a.lr or "solver file",
        "threads": a.threads,
        "same_test_set_checks": checks,
        "load_average": os.getloadavg(),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1, default=float))
    print(json.dumps(checks, indent=1))


if __name__ == "__main__":
    main()
