"""Controllers on the held-out test days of a microgrid problem: cost, fuel, degradation, unserved energy,
violations, gap to the perfect-foresight bound; and a day's dispatch plot per controller.

    python benchmarks/microgrid_compare.py [--problem microgrid/remote] [--days 32] [--plots docs]
        [--hdpo-set key=value ...] [--skip-hdpo] [--skip-mpc]

HDPO (``hdpo_scu``) is trained here with solvers/hdpo_scu.toml (seed 0) through the shielded simulator.
Fuel-equivalent litres charge the battery energy used over the day (SoC_0 - SoC_T) at the fuel it is
worth (fuel_slope / charge_efficiency litres per kWh), so a controller cannot look better by emptying
the battery. The operator is the reference for savings.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from opsrl.algos import hdpo
from opsrl.core import SolveContext
from opsrl.core.config import parse_value
from opsrl.microgrid import bounds, run_test
from opsrl.microgrid.controllers import MPC, OperatorRules
from opsrl.microgrid.plots import plot_day
from opsrl.nn import build_policy
from opsrl.registry import family, load_problem, load_solver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="microgrid/remote")
    ap.add_argument("--days", type=int, default=32)
    ap.add_argument("--plots", default="docs")
    ap.add_argument("--plot-day", type=int, default=0)
    ap.add_argument("--hdpo-set", nargs="*", default=[], help="solver overrides, key=value")
    ap.add_argument("--problem-set", nargs="*", default=[], help="problem overrides, key=value")
    ap.add_argument("--skip-hdpo", action="store_true")
    ap.add_argument("--skip-mpc", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save", default="", help="save the trained HDPO policy's parameters here")
    ap.add_argument("--load", default="", help="load HDPO parameters saved by --save instead of training")
    ap.add_argument("--plot-suffix", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    poverrides = {k: parse_value(v) for k, v in (kv.split("=", 1) for kv in args.problem_set)}
    prob = load_problem(args.problem, {"test.scenarios": args.days, **poverrides})
    test = prob.test_set()
    p = prob.p
    rows = {}
    policies = {"operator_rules": OperatorRules(prob)}
    if not args.skip_mpc:
        policies["mpc"] = MPC(prob)
    if not args.skip_hdpo:
        overrides = dict(kv.split("=", 1) for kv in args.hdpo_set)
        _, _, scfg = load_solver("hdpo_scu", family("microgrid"), {k: parse_value(v) for k, v in overrides.items()})
        torch.manual_seed(0)
        pol = build_policy(prob, scfg["policy"], scfg["source"])
    if not args.skip_hdpo and args.load:
        pol.load_state_dict(torch.load(args.load))
        pol.eval()
        policies["hdpo_scu"] = pol
    elif not args.skip_hdpo:
        t0 = time.perf_counter()
        pol, curve = hdpo.train(prob, pol, scfg["options"], SolveContext(seed=0, progress=True))
        print(f"# hdpo_scu trained in {time.perf_counter() - t0:.0f} s, {curve[-1]['step']} steps, "
              f"best dev {min(c['dev_cost'] for c in curve):.1f}")
        if args.save:
            torch.save(pol.state_dict(), args.save)
        policies["hdpo_scu"] = pol
    t0 = time.perf_counter()
    lb = bounds(prob, test)
    print(f"# perfect-foresight bound: {len(lb)} days in {time.perf_counter() - t0:.0f} s")
    for name, pol in policies.items():
        t0 = time.perf_counter()
        ev, m = run_test(prob, pol, test)
        m["seconds"] = time.perf_counter() - t0
        m["cost"], m["stderr"] = ev.mean, ev.stderr
        m["fuel_eq"] = m["fuel_litres"] - m["soc_change"] * p.b_cap * p.fuel_a / p.eta
        m["gap"] = 100 * (ev.per_scenario.numpy() - lb).mean() / lb.mean()
        rows[name] = m
        if args.plots:
            plot_day(prob, pol, test, Path(args.plots) / f"microgrid_dispatch_{name}{args.plot_suffix}.png",
                     f"{name}, {prob.name} test day {args.plot_day}", args.plot_day)
    base = rows["operator_rules"]
    print(f"\n{prob.name}: {test.n} held-out test days (seed {prob.test_seed}); means per day\n")
    print("| controller | cost | fuel (L) | fuel-equivalent (L) | fuel-eq. saved vs operator | degradation | "
          "unserved (kWh) | reserve minutes | violations | gap to bound |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, m in rows.items():
        saved = 100 * (1 - m["fuel_eq"] / base["fuel_eq"])
        print(f"| {name} | {m['cost']:.1f} ± {m['stderr']:.1f} | {m['fuel_litres']:.1f} | {m['fuel_eq']:.1f} | "
              f"{saved:.1f}% | {m['degradation']:.2f} | {m['unserved_kwh']:.2f} | {m['reserve_minutes']:.1f} | "
              f"{m['violations_total']} | "
              f"{m['gap']:.1f}% |")
    print(f"| perfect_foresight (bound) | {lb.mean():.1f} | | | | | | | | 0 |")


if __name__ == "__main__":
    main()
