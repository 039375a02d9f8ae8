"""The commitment MPC (rolling-horizon MILP, :mod:`opsrl.microgrid.milp`) on the fuel-wear plane: with
perfect forecasts over its horizon (the oracle) and with the forecasts a controller really has, at
several wear prices, on the first ``--days`` test days, beside the operator and ``soc_hysteresis``.

    python benchmarks/microgrid_mpc_frontier.py [--problem microgrid/remote] [--days 32] [--first 0]
        [--forecasts perfect real] [--wear-prices 0 1 3 10] [--horizon 240] [--json FILE]
        [--midday] [--terminal-factor 1] [--gap 0.01] [--per-day]

Every setting runs on the same days; one MILP per scenario every ``--replan`` minutes (HiGHS, relative
gap ``--gap``). Fuel-equivalent and exact rainflow degradation are :func:`opsrl.microgrid.run_test`'s.

``--midday`` values the energy left at a horizon end before the day's end at :func:`milp.midday_kwh` (the
fuel a genset at rated load burns for a kWh, idle included) and at the day's end at its fuel value (the
simulator's and ``fuel_eq_litres``'s); ``--terminal-factor`` multiplies the horizon-end value; ``--per-day``
adds each day's fuel-equivalent, genset hours (warm-up, running, cool-down), starts, end-of-day SoC,
curtailed wind and dumped energy to the JSON rows (docs/microgrid.md, "Why no controller dominated
soc_hysteresis").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from opsrl.microgrid import run_test
from opsrl.microgrid.controllers import OperatorRules, SocHysteresis
from opsrl.microgrid.milp import CommitMPC, midday_kwh
from opsrl.microgrid.planning import terminal_value
from opsrl.microgrid.sim import COOL, OFF, RUN, WARM
from opsrl.registry import family, load_for_solver, load_problem, load_solver

ROOT = Path(__file__).resolve().parent.parent


class Recorder(torch.nn.Module):
    """Wraps a policy and counts, per scenario, genset minutes on, starts and curtailed wind from the states it
    sees (``out_*`` of the previous minute; the last minute of the day is not seen)."""

    def __init__(self, policy):
        super().__init__()
        self.policy, self.prev = policy, None
        self.on_min = self.starts = self.curtailed = None

    def forward(self, state, t=0):
        mode = state["mode"]
        if self.on_min is None:
            B = mode.shape[0]
            self.on_min = torch.zeros(B, dtype=torch.float64)
            self.starts = torch.zeros(B, dtype=torch.float64)
            self.curtailed = torch.zeros(B, dtype=torch.float64)
        on = (mode == WARM) | (mode == RUN) | (mode == COOL)
        self.on_min += on.sum(1).double().cpu()
        if self.prev is not None:
            self.starts += ((self.prev == OFF) & (mode == WARM)).sum(1).double().cpu()
        if "out_wind" in state:
            self.curtailed += ((state["out_wind"] - state["out_wind_used"]) / 60.0).double().cpu()
        self.prev = mode.clone()
        return self.policy(state, t)


def evaluate(problem, policy, days, per_day: bool):
    if not per_day:
        return run_test(problem, policy, days) + (None,)
    rec = Recorder(policy)
    ev, m = run_test(problem, rec, days, per_scenario=True)
    by = m.pop("by_scenario")
    p = problem.p
    soc0 = problem.initial_state(days)["soc"].double().cpu()
    daily = {
        "fuel_eq_litres": by["fuel_eq_litres"].tolist(),
        "fuel_litres": by["fuel_litres"].tolist(),
        "genset_hours": (rec.on_min / 60).tolist(),
        "starts": rec.starts.tolist(),
        "soc_end": (soc0 + by["soc_change"]).tolist(),
        "curtailed_kwh": rec.curtailed.tolist(),
        "dumped_kwh": by["dumped_kwh"].tolist(),
        "degradation": by["degradation"].tolist(),
    }
    print(
        "   per day: genset h "
        + " ".join(f"{v:.1f}" for v in daily["genset_hours"])
        + " | starts "
        + " ".join(f"{v:.0f}" for v in daily["starts"])
        + f" | mean curtailed {np.mean(daily['curtailed_kwh']):.1f} kWh, soc_end {np.mean(daily['soc_end']):.3f}",
        flush=True,
    )
    del p
    return ev, m, daily


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
    ap.add_argument(
        "--terminal-factor",
        type=float,
        default=1.0,
        help="value of the energy left at each plan's horizon end, as a multiple of its fuel value",
    )
    ap.add_argument(
        "--midday",
        action="store_true",
        help="value the energy at a horizon end before the day's end at milp.midday_kwh (times "
        "--terminal-factor) and at the day's end at its fuel value (the metric's)",
    )
    ap.add_argument(
        "--above",
        type=float,
        nargs=2,
        default=None,
        metavar=("SOC", "FACTOR"),
        help="energy above SOC at a horizon end before the day's end is worth FACTOR x its fuel value",
    )
    ap.add_argument("--per-day", action="store_true", help="per-day genset hours, starts, SoC, curtailment")
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
    ev, m, daily = evaluate(base, OperatorRules(base), days_base, args.per_day)
    rows = [row("operator_rules", ev, m, None, daily=daily)]
    ref = m["fuel_eq_litres"]
    rows[0]["saved"] = 0.0
    print(
        "| controller | cost | fuel-eq. (L) | saved | degradation | unserved | violations |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    if not args.no_rules:
        ev, m, daily = evaluate(prob, SocHysteresis(prob, 0.15, 0.30, 1.0), days, args.per_day)
        rows.append(row("soc_hysteresis 0.15/0.30", ev, m, ref, daily=daily))
    for fc in args.forecasts:
        for w in args.wear_prices:
            t0 = time.perf_counter()
            mp, md = (prob, days) if args.proposal == "genset_load" else (base, days_base)
            base_tv = midday_kwh(mp.p) if args.midday else terminal_value(mp.p)
            final = terminal_value(mp.p) if args.midday else None
            tv = args.terminal_factor * base_tv
            pol = CommitMPC(mp, w, fc, md, args.replan, args.horizon, terminal_kwh=tv, gap=args.gap, final_kwh=final)
            if args.above:
                pol.terminal_above = (args.above[0] * mp.p.b_cap, args.above[1] * terminal_value(mp.p))
            ev, m, daily = evaluate(mp, pol, md, args.per_day)
            tag = "" if args.proposal == "genset_load" else ", battery set-point"
            if args.midday:
                tag += ", midday value"
            if args.above:
                tag += f", above SoC {args.above[0]:g} x{args.above[1]:g}"
            if args.terminal_factor != 1.0:
                tag += f", terminal x{args.terminal_factor:g}"
            if args.horizon != 240:
                tag += f", horizon {args.horizon}"
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
                    terminal_factor=args.terminal_factor,
                    gap=args.gap,
                    midday=args.midday,
                    above=args.above,
                    daily=daily,
                )
            )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
