"""Learned controllers at several wear prices: train a solver (``ppo_scu_wear``, ``hdpo_scu_wear``, ...)
with ``costs.wear_weight`` set to each price and evaluate it on the first ``--days`` test days, the greedy
policy and, for PPO, the sampled one (its stochastic policy, as trained), beside the operator.

    python benchmarks/microgrid_learners.py --solver ppo_scu_wear --wear 1 4 16 [--days 32]
        [--set options.iterations=20 ...] [--json benchmarks/results/microgrid_learners.json] [--append]

The training budgets are the solver files' unless ``--set`` overrides them (say so with the figures).
Rows carry ``family`` (for ``microgrid_frontier_all.py``), fuel-equivalent and exact rainflow degradation.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from opsrl.core import SolveContext
from opsrl.core.config import parse_value
from opsrl.microgrid import run_test
from opsrl.microgrid.controllers import OperatorRules
from opsrl.registry import family, fit_solver, load_for_solver, load_problem, load_solver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="microgrid/remote")
    ap.add_argument("--solver", default="ppo_scu_wear")
    ap.add_argument("--wear", type=float, nargs="+", default=[4.0])
    ap.add_argument("--days", type=int, default=32)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], help="solver overrides, key=value (options.iterations=20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="")
    ap.add_argument("--append", action="store_true", help="add the rows to an existing --json file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    fam = family("microgrid")
    over = {k: parse_value(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    n_all = max(32, args.first + args.days)
    base = load_problem(args.problem, {"test.scenarios": n_all})
    days_base = base.test_set().select(slice(args.first, args.first + args.days))
    ev, m = run_test(base, OperatorRules(base), days_base)
    ref = m["fuel_eq_litres"]
    rows = []
    for w in args.wear:
        _, method, cfg = load_solver(args.solver, fam, over)
        prob = load_for_solver(args.problem, cfg, {"test.scenarios": n_all, "costs.wear_weight": w})
        days = prob.test_set().select(slice(args.first, args.first + args.days))
        t0 = time.perf_counter()
        ctx = SolveContext(
            seed=args.seed,
            progress=False,
            source=cfg["source"],
            fit_solver=fit_solver,
            log=lambda msg: print("#", msg, flush=True),
        )
        out = method.fit(prob, cfg["options"], cfg, ctx)
        secs = time.perf_counter() - t0
        pol = out.policy
        modes = [("greedy", False)] + ([("sampled", True)] if hasattr(pol, "sampling") else [])
        for label, sampling in modes:
            if hasattr(pol, "sampling"):
                pol.sampling = sampling
            torch.manual_seed(args.seed)
            ev, m = run_test(prob, pol, days)
            r = {
                "name": f"{args.solver} wear {w:g} {label}",
                "family": f"{method.name.upper()} {label}",
                "solver": args.solver,
                "wear_weight": w,
                "mode": label,
                "cost": float(ev.mean),
                "fuel_eq_litres": m["fuel_eq_litres"],
                "fuel_litres": m["fuel_litres"],
                "saved": 100 * (1 - m["fuel_eq_litres"] / ref),
                "degradation": m["degradation"],
                "unserved_kwh": m["unserved_kwh"],
                "violations": m["violations_total"],
                "reserve_minutes": m["reserve_minutes"],
                "train_seconds": secs,
                "info": {k: v for k, v in out.info.items() if isinstance(v, (int, float, str))},
            }
            rows.append(r)
            print(
                f"| {r['name']} | {r['cost']:.1f} | {r['fuel_eq_litres']:.1f} | {r['saved']:.1f}% | "
                f"{r['degradation']:.2f} | {r['unserved_kwh']:.2f} | {r['violations']} | {secs:.0f} s |",
                flush=True,
            )
        if hasattr(pol, "sampling"):
            pol.sampling = False
    if args.json:
        path = Path(args.json)
        old = json.loads(path.read_text())["rows"] if args.append and path.is_file() else []
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"args": vars(args), "operator_fuel_eq": ref, "rows": old + rows}, indent=1))


if __name__ == "__main__":
    main()
