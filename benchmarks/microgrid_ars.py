"""The learned hysteresis (``ars_hysteresis``): train it under a cap on wear and at prices on wear, and compare it
with ``soc_hysteresis`` and the operator on the same test days (paired, per day).

    python benchmarks/microgrid_ars.py [--caps 0.97] [--prices 0.5 2] [--set options.iterations=80 ...] [--days 32]
        [--ship ars_hysteresis] [--json benchmarks/results/microgrid_learners_ars.json] [--append]

Each configuration trains from scratch (``params = ""``; the searched ``soc_hysteresis`` rule is the start).
``--check NAME --check-seeds 1 2 --check-days 64`` trains nothing: it runs shipped parameters and
``soc_hysteresis`` (0.15 / 0.30) on further test days drawn with other seeds (days no run chose anything on)
and prints the paired differences. ``--ship NAME`` writes the parameters of the first ``--caps`` run to
``opsrl/microgrid/data/NAME.json``, which ``solvers/ars_hysteresis.toml`` loads. Rows carry ``family`` for
``microgrid_frontier_all.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from opsrl.core import SolveContext
from opsrl.core.config import parse_value
from opsrl.microgrid import run_test
from opsrl.microgrid.controllers import OperatorRules, SocHysteresis
from opsrl.registry import family, fit_solver, load_for_solver, load_problem, load_solver

ROOT = Path(__file__).resolve().parent.parent


def _se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x)))


def check(args) -> None:
    """Shipped parameters against ``soc_hysteresis`` on test days drawn with other seeds, paired by day."""
    fam = family("microgrid")
    _, method, cfg = load_solver("ars_hysteresis", fam, {"options.params": args.check})
    prob = load_for_solver(args.problem, cfg, {})
    out = method.fit(prob, cfg["options"], cfg, SolveContext(seed=0, progress=False, source=cfg["source"]))
    rows = []
    for seed in args.check_seeds:
        days = prob.sample(args.check_days, "test", seed, prob.test_periods)
        _, m = run_test(prob, out.policy, days, per_scenario=True)
        _, r = run_test(prob, SocHysteresis(prob, 0.15, 0.30), days, per_scenario=True)
        d = (m["by_scenario"]["fuel_eq_litres"] - r["by_scenario"]["fuel_eq_litres"]).numpy()
        g = (m["by_scenario"]["degradation"] - r["by_scenario"]["degradation"]).numpy()
        row = {
            "seed": seed,
            "days": days.n,
            "fuel_eq_litres": m["fuel_eq_litres"],
            "degradation": m["degradation"],
            "rule_fuel_eq_litres": r["fuel_eq_litres"],
            "rule_degradation": r["degradation"],
            "paired_fuel_eq_diff": float(d.mean()),
            "paired_fuel_eq_se": _se(d),
            "paired_degradation_diff": float(g.mean()),
            "paired_degradation_se": _se(g),
            "violations": m["violations_total"],
            "unserved_kwh": m["unserved_kwh"],
        }
        rows.append(row)
        print(
            f"test seed {seed}, {days.n} days: {args.check} {row['fuel_eq_litres']:.2f} L at {row['degradation']:.2f}, "
            f"soc_hysteresis {row['rule_fuel_eq_litres']:.2f} L at {row['rule_degradation']:.2f}; paired fuel-eq. "
            f"{row['paired_fuel_eq_diff']:+.2f} +- {row['paired_fuel_eq_se']:.2f} L a day, degradation "
            f"{row['paired_degradation_diff']:+.2f} +- {row['paired_degradation_se']:.2f}; violations "
            f"{row['violations']}, unserved {row['unserved_kwh']:.3f} kWh",
            flush=True,
        )
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="microgrid/remote")
    ap.add_argument("--caps", type=float, nargs="*", default=[0.97], help="wear caps (x the starting rule's wear)")
    ap.add_argument("--prices", type=float, nargs="*", default=[], help="wear prices (litres per unit)")
    ap.add_argument("--days", type=int, default=32)
    ap.add_argument("--set", nargs="*", default=[], help="solver overrides, key=value (options.iterations=40)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ship", default="", help="write the first cap run's parameters to opsrl/microgrid/data/NAME.json")
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/microgrid_learners_ars.json"))
    ap.add_argument("--append", action="store_true", help="add the rows to an existing --json file")
    ap.add_argument("--check", default="", help="shipped parameters to check on other test days (no training)")
    ap.add_argument("--check-seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--check-days", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.check:
        check(args)
        return
    fam = family("microgrid")
    over = {k: parse_value(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    base = load_problem(args.problem, {"test.scenarios": args.days})
    _, op = run_test(base, OperatorRules(base), base.test_set(), per_scenario=True)
    ref = op["fuel_eq_litres"]
    runs = [("cap", c) for c in args.caps] + [("price", w) for w in args.prices]
    rows, shipped = [], False
    for kind, value in runs:
        opts = {**over, "options.params": ""}
        opts["options.wear_cap" if kind == "cap" else "options.wear_price"] = value
        _, method, cfg = load_solver("ars_hysteresis", fam, opts)
        prob = load_for_solver(args.problem, cfg, {"test.scenarios": args.days})
        test = prob.test_set()
        ctx = SolveContext(seed=args.seed, progress=True, source=cfg["source"], fit_solver=fit_solver)
        t0 = time.perf_counter()
        out = method.fit(prob, cfg["options"], cfg, ctx)
        secs = time.perf_counter() - t0
        _, m = run_test(prob, out.policy, test, per_scenario=True)
        rule = SocHysteresis(prob, out.info["start_soc"], out.info["stop_soc"])
        _, mr = run_test(prob, rule, test, per_scenario=True)
        diff = (m["by_scenario"]["fuel_eq_litres"] - mr["by_scenario"]["fuel_eq_litres"]).numpy()
        ddeg = (m["by_scenario"]["degradation"] - mr["by_scenario"]["degradation"]).numpy()
        label = f"wear cap {value:g}x" if kind == "cap" else f"wear price {value:g}"
        r = {
            "name": f"ars_hysteresis {label}",
            "family": "ARS hysteresis (learned)",
            "solver": "ars_hysteresis",
            kind: value,
            "fuel_eq_litres": m["fuel_eq_litres"],
            "fuel_litres": m["fuel_litres"],
            "saved": 100 * (1 - m["fuel_eq_litres"] / ref),
            "degradation": m["degradation"],
            "unserved_kwh": m["unserved_kwh"],
            "violations": m["violations_total"],
            "reserve_minutes": m["reserve_minutes"],
            "train_seconds": secs,
            "rule": {
                "start_soc": out.info["start_soc"],
                "stop_soc": out.info["stop_soc"],
                "fuel_eq_litres": mr["fuel_eq_litres"],
                "saved": 100 * (1 - mr["fuel_eq_litres"] / ref),
                "degradation": mr["degradation"],
            },
            "paired_fuel_eq_diff": float(diff.mean()),
            "paired_fuel_eq_se": _se(diff),
            "paired_degradation_diff": float(ddeg.mean()),
            "paired_degradation_se": _se(ddeg),
            "days_less_fuel": int((diff < 0).sum()),
            "info": out.info,
        }
        rows.append(r)
        print(
            f"{r['name']}: {r['saved']:.2f}% saved at {r['degradation']:.2f} (rule {r['rule']['saved']:.2f}% at "
            f"{r['rule']['degradation']:.2f}); paired fuel-eq. {r['paired_fuel_eq_diff']:+.2f} +- "
            f"{r['paired_fuel_eq_se']:.2f} L a day, degradation {r['paired_degradation_diff']:+.2f} +- "
            f"{r['paired_degradation_se']:.2f}; violations {r['violations']}, unserved {r['unserved_kwh']:.2f} kWh; "
            f"trained in {secs:.0f} s",
            flush=True,
        )
        if args.ship and kind == "cap" and not shipped:
            meta = {
                "theta": out.info["theta"],
                "leads": list(prob.leads),
                "adapt_load": len(out.info["theta"]) > 2 * (len(prob.leads) + 2) + 2,
                "wear_cap": value,
                "start_soc": out.info["start_soc"],
                "stop_soc": out.info["stop_soc"],
                "dev_fuel_eq": out.info["dev_fuel_eq"],
                "dev_degradation": out.info["dev_degradation"],
                "kept_iteration": out.info["kept_iteration"],
                "command": "python benchmarks/microgrid_ars.py "
                + " ".join(f"--set {s}" for s in args.set)
                + f" --caps {value:g} --ship {args.ship}",
            }
            path = ROOT / "opsrl/microgrid/data" / f"{args.ship}.json"
            path.write_text(json.dumps(meta, indent=1) + "\n")
            print(f"# wrote {path}")
            shipped = True
    if args.json:
        path = Path(args.json)
        old = json.loads(path.read_text())["rows"] if args.append and path.is_file() else []
        path.parent.mkdir(parents=True, exist_ok=True)
        run_args = {**vars(args), "first": 0}
        path.write_text(json.dumps({"args": run_args, "operator_fuel_eq": ref, "rows": old + rows}, indent=1))


if __name__ == "__main__":
    main()
