"""The commitment MPC (rolling-horizon MILP, :mod:`opsrl.microgrid.milp`) on the fuel-wear plane: with
perfect forecasts over its horizon (the oracle) and with the forecasts a controller really has, at
several wear prices, on the first ``--days`` test days, beside the operator and ``soc_hysteresis``.

    python benchmarks/microgrid_mpc_frontier.py [--problem microgrid/remote] [--days 32] [--first 0]
        [--forecasts perfect real] [--wear-prices 0 1 3 10] [--horizon 240] [--json FILE]

Every setting runs on the same days; one MILP per scenario every ``--replan`` minutes (HiGHS, relative
gap ``--gap``). Fuel-equivalent and exact rainflow degradation are :func:`opsrl.microgrid.run_test`'s.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from opsrl.microgrid import run_test
from opsrl.microgrid.controllers import OperatorRules, SocHysteresis
from opsrl.microgrid.milp import CommitMPC
from opsrl.registry import family, load_for_solver, load_problem, load_solver

ROOT = Path(__file__).resolve().parent.parent


def row(name, ev, m, ref, seconds=None, **extra):
    out = {
        "name": name,
        "cost": float(ev.mean),
        "fuel_eq_litres": m["fuel_eq_litres"],
        "fuel_litres": m["fuel_litres"],
        "degradation": m["degradation"],
        "unserved_kwh": m["unserved_kwh"],
        "violations": m["violations_total"],
        "reserve_minutes": m["reserve_minutes"],
        **extra,
    }
    if ref is not None:
        out["saved"] = 100 * (1 - out["fuel_eq_litres"] / ref)
    if seconds is not None:
        out["seconds"] = seconds
    print(
        f"| {name} | {out['cost']:.1f} | {out['fuel_eq_litres']:.1f} | {out.get('saved', 0):.1f}% | "
        f"{out['degradation']:.2f} | {out['unserved_kwh']:.2f} | {out['violations']} |",
        flush=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="microgrid/remote")
    ap.add_argument("--days", type=int, default=32)
    ap.add_argument("--first", type=int, default=0, help="first test day")
    ap.add_argument("--forecasts", nargs="+", default=["perfect", "real"], choices=["perfect", "real"])
    ap.add_argument("--wear-prices", type=float, nargs="+", default=[0.0, 1.0, 3.0, 10.0])
    ap.add_argument("--horizon", type=int, default=240)
    ap.add_argument("--replan", type=int, default=15)
    ap.add_argument("--gap", type=float, default=1e-2)
    ap.add_argument("--no-rules", action="store_true", help="skip the operator and soc_hysteresis rows")
    ap.add_argument(
        "--proposal",
        default="genset_load",
        choices=["genset_load", "battery_kw"],
        help="how the MPC proposes: the plan's genset load (the battery takes the rest minute by "
        "minute) or its battery set-point (the gensets follow the load)",
    )
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    _, _, scfg = load_solver("soc_hysteresis", family("microgrid"), {})
    n_all = args.first + args.days
    base = load_problem(args.problem, {"test.scenarios": max(32, n_all)})
    prob = load_for_solver(args.problem, scfg, {"test.scenarios": max(32, n_all)})
    days = prob.test_set().select(slice(args.first, n_all))
    days_base = base.test_set().select(slice(args.first, n_all))
    ev, m = run_test(base, OperatorRules(base), days_base)
    rows = [row("operator_rules", ev, m, None)]
    ref = m["fuel_eq_litres"]
    rows[0]["saved"] = 0.0
    print(
        "| controller | cost | fuel-eq. (L) | saved | degradation | unserved | violations |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    if not args.no_rules:
        ev, m = run_test(prob, SocHysteresis(prob, 0.15, 0.30, 1.0), days)
        rows.append(row("soc_hysteresis 0.15/0.30", ev, m, ref))
    for fc in args.forecasts:
        for w in args.wear_prices:
            t0 = time.perf_counter()
            mp, md = (prob, days) if args.proposal == "genset_load" else (base, days_base)
            pol = CommitMPC(mp, w, fc, md, args.replan, args.horizon)
            from opsrl.microgrid import milp

            milp.GAP = args.gap
            ev, m = run_test(mp, pol, md)
            tag = "" if args.proposal == "genset_load" else ", battery set-point"
            rows.append(
                row(
                    f"mpc_commit {fc} wear {w:g}{tag}",
                    ev,
                    m,
                    ref,
                    time.perf_counter() - t0,
                    forecast=fc,
                    wear_price=w,
                    horizon=args.horizon,
                    solves=pol.solves,
                    proposal=args.proposal,
                )
            )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
