"""Controllers on the held-out test days of a microgrid problem: cost, fuel, degradation, unserved energy,
violations, gap to the perfect-foresight bound; and a day's dispatch plot per controller.

    python benchmarks/microgrid_compare.py [--problem microgrid/remote] [--days 32] [--plots docs]
        [--solvers soc_hysteresis hdpo_scu ppo_scu] [--set key=value ...] [--save DIR | --load DIR] [--skip-mpc]

The solvers (``--solvers``: by default ``soc_hysteresis``, the searched state-of-charge hysteresis rule,
``hdpo_scu``, HDPO through the shielded simulator, and ``ppo_scu``, PPO with the shields in the loop) are
fitted here from their solver files (seed 0); the learned ones can instead be loaded from parameters an
earlier run saved with ``--save DIR`` (``DIR/<solver>.pt``). A solver file's ``[problem]`` table (such as
``shield.proposal = "genset_load"``) applies to that solver's copy of the problem; the test days are the same.
Fuel-equivalent litres (``fuel_eq_litres`` of :func:`opsrl.microgrid.run_test`) charge the battery energy
used over the day at the fuel it is worth, so a controller cannot look better by emptying the battery. The operator is
the reference for savings.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from opsrl.core import SolveContext
from opsrl.core.config import parse_value
from opsrl.microgrid import bounds, run_test
from opsrl.microgrid.controllers import MPC, ConstantProposal, OperatorRules
from opsrl.microgrid.plots import plot_day
from opsrl.nn import build_actor_critic, build_policy
from opsrl.registry import family, fit_solver, load_for_solver, load_problem, load_solver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="microgrid/remote")
    ap.add_argument("--days", type=int, default=32)
    ap.add_argument("--plots", default="docs")
    ap.add_argument("--plot-day", type=int, default=0)
    ap.add_argument(
        "--solvers",
        "--learned",
        nargs="*",
        default=["soc_hysteresis", "hdpo_scu", "ppo_scu"],
        help="solvers fitted here (learned ones trained, or loaded with --load), beside the operator and the MPC",
    )
    ap.add_argument("--set", nargs="*", default=[], help="overrides of the learned solvers, solver.key=value")
    ap.add_argument("--problem-set", nargs="*", default=[], help="problem overrides, key=value")
    ap.add_argument("--skip-mpc", action="store_true")
    ap.add_argument(
        "--constant",
        nargs="*",
        default=["0,0.5", "0,1"],
        help="constant proposals 'genset_fraction,battery_set_point' that the shields alone make safe: "
        "what the shields do without a controller",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save", default="", help="save each trained policy's parameters in this folder")
    ap.add_argument("--load", default="", help="load parameters saved by --save instead of training")
    ap.add_argument("--plot-suffix", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    poverrides = {k: parse_value(v) for k, v in (kv.split("=", 1) for kv in args.problem_set)}
    prob = load_problem(args.problem, {"test.scenarios": args.days, **poverrides})
    test = prob.test_set()
    p = prob.p
    rows = {}
    policies = {"operator_rules": OperatorRules(prob)}
    problems = {}  # learned solvers whose files set problem keys (how the action is read) run on their own copy
    if not args.skip_mpc:
        policies["mpc"] = MPC(prob)
    for text in args.constant:
        a = [float(x) for x in text.split(",")]
        policies[f"shields alone, proposal ({a[0]:g}, {a[1]:g})"] = ConstantProposal(prob, a)
    for solver in args.solvers:
        prefix = solver + "."
        overrides = {
            k[len(prefix) :]: parse_value(v) for k, v in (kv.split("=", 1) for kv in args.set) if k.startswith(prefix)
        }
        _, method, scfg = load_solver(solver, family("microgrid"), overrides)
        sprob = load_for_solver(args.problem, scfg, {"test.scenarios": args.days, **poverrides})
        torch.manual_seed(0)
        ctx = SolveContext(seed=0, progress=True, source=scfg["source"], fit_solver=fit_solver)
        saved = Path(args.load or args.save or ".") / f"{solver}.pt"
        if args.load and method.learns:
            if method.name in ("ppo", "pdppo"):  # shielded windows of the day: a truncated horizon, no time input
                pol = build_actor_critic(sprob, scfg["policy"], scfg["source"], post_critic=method.name == "pdppo")
            else:
                pol = build_policy(sprob, scfg["policy"], scfg["source"])
            pol.load_state_dict(torch.load(saved))
            pol.eval()
        else:
            t0 = time.perf_counter()
            out = method.fit(sprob, scfg["options"], scfg, ctx)
            pol = out.policy
            print(f"# {solver} trained in {time.perf_counter() - t0:.0f} s: {out.info}")
            if args.save and method.learns:
                saved.parent.mkdir(parents=True, exist_ok=True)
                torch.save(pol.state_dict(), saved)
        policies[solver] = pol
        problems[solver] = sprob
    t0 = time.perf_counter()
    lb = bounds(prob, test)
    print(f"# perfect-foresight bound: {len(lb)} days in {time.perf_counter() - t0:.0f} s")
    for name, pol in policies.items():
        t0 = time.perf_counter()
        ev, m = run_test(problems.get(name, prob), pol, test)
        m["seconds"] = time.perf_counter() - t0
        m["cost"], m["stderr"] = ev.mean, ev.stderr
        m["gap"] = 100 * (ev.per_scenario.numpy() - lb).mean() / lb.mean()
        rows[name] = m
        if args.plots and not isinstance(pol, ConstantProposal):
            plot_day(
                problems.get(name, prob),
                pol,
                test,
                Path(args.plots) / f"microgrid_dispatch_{name}{args.plot_suffix}.png",
                f"{name}, {prob.name} test day {args.plot_day}",
                args.plot_day,
            )
    base = rows["operator_rules"]
    print(f"\n{prob.name}: {test.n} held-out test days (seed {prob.test_seed}); means per day\n")
    print(
        "| controller | cost | fuel (L) | fuel-equivalent (L) | fuel-eq. saved vs operator | degradation | "
        "unserved (kWh) | reserve minutes | violations | gap to bound |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, m in rows.items():
        saved = 100 * (1 - m["fuel_eq_litres"] / base["fuel_eq_litres"])
        print(
            f"| {name} | {m['cost']:.1f} ± {m['stderr']:.1f} | {m['fuel_litres']:.1f} | {m['fuel_eq_litres']:.1f} | "
            f"{saved:.1f}% | {m['degradation']:.2f} | {m['unserved_kwh']:.2f} | {m['reserve_minutes']:.1f} | "
            f"{m['violations_total']} | "
            f"{m['gap']:.1f}% |"
        )
    # The bound's objective is fuel_price * fuel-equivalent + penalties (degradation enters with 0, and the
    # terminal value prices battery energy as the fuel-equivalent does), so every controller that serves all
    # demand without dumping burns at least bound / fuel_price fuel-equivalent litres: no controller can save more
    # than this against the operator on these days.
    if p.terminal_value < 0 and abs(p.depth_exp - 1.0) > 1e-12:  # (for k = 1 the bound counts degradation too)
        feq_lb = lb.mean() / p.fuel_price
        print(
            f"| perfect_foresight (bound) | {lb.mean():.1f} | | >= {feq_lb:.1f} | "
            f"<= {100 * (1 - feq_lb / base['fuel_eq_litres']):.1f}% | | | | | 0 |"
        )
    else:
        print(f"| perfect_foresight (bound) | {lb.mean():.1f} | | | | | | | | 0 |")


if __name__ == "__main__":
    main()
