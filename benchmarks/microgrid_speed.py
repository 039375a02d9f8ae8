"""Simulated minutes per second of the microgrid, shields on and off, side by side.

    python benchmarks/microgrid_speed.py [--batches 1 64 1024 4096] [--minutes 240] [--threads 1]

Shields on: the shielded problem with random proposals (the full shield hierarchy runs every minute).
Shields off: the unshielded problem with random raw actions (physics only). Both without gradients
(evaluation, exact rainflow degradation) and, for training, with gradients (forward + backward).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from opsrl.core import rollout
from opsrl.microgrid import build


def measure(problem, B: int, minutes: int, grad: bool) -> float:
    sc = problem.sample(B, "dev", 0, periods=minutes)
    g = torch.Generator().manual_seed(0)
    dim = problem.action_spec.shape[0]
    w = torch.zeros(1, requires_grad=True)
    pol = lambda s, t: (torch.rand(s["soc"].shape[0], dim, generator=g) + 0 * w).clamp(0, 1)
    t0 = time.perf_counter()
    if grad:
        traj = rollout(problem, pol, sc)
        traj.costs.sum().backward()
    else:
        with torch.no_grad():
            rollout(problem, pol, sc)
    return B * minutes / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024, 4096])
    ap.add_argument("--minutes", type=int, default=240)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    on = build({"periods": args.minutes}, "<bench>")
    off = build({"periods": args.minutes, "shielded": False}, "<bench>")
    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, threads {args.threads}, "
        f"{args.minutes} minutes per rollout"
    )
    print("| batch | shields on, eval (min/s) | shields off, eval (min/s) | shields on, train fwd+bwd (min/s) |")
    print("|---:|---:|---:|---:|")
    for B in args.batches:
        r_on = measure(on, B, args.minutes, False)
        r_off = measure(off, B, args.minutes, False)
        r_tr = measure(on, B, args.minutes, True) if B <= 1024 else float("nan")
        print(f"| {B} | {r_on:,.0f} | {r_off:,.0f} | {r_tr:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
