"""Single-store simulator throughput and HDPO time-to-gap, on this machine.

    python benchmarks/inventory_speed.py [--threads 2] [--skip-hdpo] [--hdpo-time-limit SECONDS]

1. Throughput in scenario-periods per second of the torch simulator (lost sales, L = 4) driven by the
   bundled MLP policy: forward only (evaluation) and forward + backward (an HDPO step), at several batch
   sizes; and, to compare like with like, the torch simulator and a reference written as a plain
   vectorised NumPy loop, both driven by the same base-stock policy (forward only: NumPy has no
   gradients).
2. HDPO on inventory/lost_sales_p9_L4 with the bundled ``hdpo_mlp`` solver: wall-clock seconds until
   the dev cost first comes within 1% of the DP optimum, and the final test gap.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from opsrl.core import SolveContext, evaluate, rollout, scenario_costs
from opsrl.inventory import FAMILY, solve_dp
from opsrl.nn import build_policy
from opsrl.registry import load_problem, load_solver

PROBLEM = "inventory/lost_sales_p9_L4"


def numpy_reference(demand: np.ndarray, x0: np.ndarray, level: float, h: float, p: float) -> float:
    """Lost sales, base stock, same timing as the torch simulator; returns the mean cost."""
    x = x0.copy()
    total = 0.0
    for t in range(demand.shape[1]):
        a = np.maximum(level - x.sum(axis=1), 0.0)
        post = np.concatenate([x, a[:, None]], axis=1)
        left = np.maximum(post[:, 0] - demand[:, t], 0.0)
        total += (h * left + p * (demand[:, t] - post[:, 0] + left)).sum()
        x = np.concatenate([(left + post[:, 1])[:, None], post[:, 2:]], axis=1)
    return total / demand.size


def best_time(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def throughput(periods: int = 100) -> None:
    prob = load_problem(PROBLEM)
    torch.manual_seed(0)
    policy = build_policy(prob, {"hidden": [64, 64]})
    print(
        f"{'batch':>7} {'MLP fwd':>12} {'MLP fwd+bwd':>12} {'base stock: torch':>18} {'numpy (ref)':>12}"
        "   (scenario-periods/s)"
    )
    from opsrl.inventory.heuristics import BaseStock

    base_stock = BaseStock(30.0)
    for B in (256, 1024, 4096, 16384):
        sc = prob.sample(B, "train", 0, periods)

        def fwd():
            with torch.no_grad():
                rollout(prob, policy, sc)

        def fwd_bwd():
            policy.zero_grad()
            scenario_costs(prob, rollout(prob, policy, sc).costs).mean().backward()

        def fwd_base_stock():
            with torch.no_grad():
                return scenario_costs(prob, rollout(prob, base_stock, sc).costs, warmup=0).mean().item()

        d, x0 = sc["demand"].numpy().astype(np.float64), sc["initial"].numpy().astype(np.float64)
        assert abs(fwd_base_stock() - numpy_reference(d, x0, 30.0, prob.h, prob.p)) < 1e-3  # same dynamics
        ref = best_time(lambda: numpy_reference(d, x0, 30.0, prob.h, prob.p))
        n = B * periods
        print(
            f"{B:>7} {n / best_time(fwd):>12,.0f} {n / best_time(fwd_bwd):>12,.0f} "
            f"{n / best_time(fwd_base_stock):>18,.0f} {n / ref:>12,.0f}"
        )


def hdpo_time_to_gap(time_limit: float = 0.0) -> None:
    prob = load_problem(PROBLEM)
    opt = solve_dp(prob.mean, prob.L, prob.p, prob.h).cost
    _, method, cfg = load_solver("hdpo_mlp", FAMILY)
    torch.manual_seed(0)
    policy = build_policy(prob, cfg["policy"])
    from opsrl.algos.hdpo import train

    t0 = time.perf_counter()
    options = {**cfg["options"], "time_limit": time_limit or cfg["options"]["time_limit"]}
    policy, curve = train(prob, policy, options, SolveContext(seed=0, progress=True))
    total = time.perf_counter() - t0
    hit = next((e for e in curve if e["dev_cost"] <= 1.01 * opt), None)
    ev = evaluate(prob, policy, prob.test_set(), warmup=prob.test_warmup)
    print(f"HDPO {PROBLEM}: DP optimum {opt:.4f}")
    if hit:
        print(
            f"  dev gap <= 1% after {hit['seconds']:.1f} s ({hit['step']} steps; dev gap "
            f"{100 * (hit['dev_cost'] / opt - 1):.2f}%)"
        )
    else:
        print("  dev gap never reached 1%")
    best = min(curve, key=lambda e: e["dev_cost"])
    print(
        f"  stopped after {total:.1f} s, {curve[-1]['step']} steps; best dev gap "
        f"{100 * (best['dev_cost'] / opt - 1):.3f}%; test gap {100 * (ev.mean / opt - 1):.3f}% "
        f"+- {100 * ev.stderr / opt:.3f}%"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip-hdpo", action="store_true")
    ap.add_argument("--hdpo-time-limit", type=float, default=0.0, help="stop HDPO after this many seconds")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    throughput()
    if not args.skip_hdpo:
        hdpo_time_to_gap(args.hdpo_time_limit)


if __name__ == "__main__":
    main()
