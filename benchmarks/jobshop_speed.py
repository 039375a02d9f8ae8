"""Dispatching speed: scheduled operations per second on 15x15 instances, opsrl (batched) vs job-shop-lib.

opsrl rolls a dispatching rule through the simulator (``rollout`` under ``torch.no_grad``, the path every
evaluation takes) on a batch of B random 15x15 instances (Taillard's generator, times 1..99). job-shop-lib
dispatches one instance at a time with the same rule (its DispatchingRuleSolver), with the filter that
gives the same non-delay schedules, with its default filters, and with no filter (append-only).

    python benchmarks/jobshop_speed.py                     # B in 1 64 256 1024 4096, rule mwkr, 1 thread
    python benchmarks/jobshop_speed.py --batch 1024 4096 --rule spt --schedule active

The machine is shared, so the measurements are interleaved: each of ``--rounds`` rounds times every
implementation once, and each rate is the best over the rounds (load swings then hit both sides alike).
job-shop-lib schedules the first ``--jsl-instances`` instances of opsrl's batch; with the non-delay filter
its mean makespan must equal opsrl's on them.
"""

from __future__ import annotations

import argparse
import time

import torch
from tqdm import tqdm

from opsrl.core import rollout
from opsrl.jobshop import simulator as S
from opsrl.jobshop.rules import DispatchRule

JSL_RULE = {
    "spt": "shortest_processing_time",
    "lpt": "largest_processing_time",
    "mwkr": "most_work_remaining",
    "mopnr": "most_operations_remaining",
}


def _problem(jobs: int, machines: int, schedule: str) -> S.JobShop:
    return S.JobShop(
        generator_cfg={"kind": "taillard", "jobs": jobs, "machines": machines, "low": 1, "high": 99}, schedule=schedule
    )


def opsrl_timer(B: int, rule: str, schedule: str, jobs: int, machines: int):
    """A function timing one rollout of ``B`` instances: returns (seconds, makespans [B])."""
    p = _problem(jobs, machines, schedule)
    sc = p.sample(B, "test", 0)
    pol = DispatchRule(rule)

    @torch.no_grad()
    def run():
        t0 = time.perf_counter()
        traj = rollout(p, pol, sc)
        return time.perf_counter() - t0, traj.costs.sum(1).double()

    run()  # warm-up
    return run


def jsl_timer(n: int, rule: str, flt, jobs: int, machines: int):
    """job-shop-lib on the first ``n`` instances of the batch opsrl schedules (same makespans expected)."""
    from job_shop_lib import JobShopInstance
    from job_shop_lib.dispatching.rules import DispatchingRuleSolver

    sc = _problem(jobs, machines, "non_delay").sample(n, "test", 0)
    insts = [
        JobShopInstance.from_matrices(
            duration_matrix=sc["duration"][b].int().tolist(), machines_matrix=sc["machine"][b].tolist()
        )
        for b in range(n)
    ]
    kwargs = {} if flt == "default" else {"ready_operations_filter": flt}
    solver = DispatchingRuleSolver(JSL_RULE[rule], **kwargs)

    def run():
        t0 = time.perf_counter()
        ms = [solver.solve(i).makespan() for i in insts]
        return time.perf_counter() - t0, torch.tensor(ms, dtype=torch.float64)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, nargs="*", default=[1, 64, 256, 1024, 4096])
    ap.add_argument("--rule", default="mwkr", choices=sorted(JSL_RULE))
    ap.add_argument("--schedule", default="non_delay", choices=S.SCHEDULES)
    ap.add_argument("--jobs", type=int, default=15)
    ap.add_argument("--machines", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--jsl-instances", type=int, default=20)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (0: torch's default; the small per-step tensors run best on 1)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.jobs}x{args.machines} instances, "
        f"rule {args.rule}, {args.rounds} interleaved rounds"
    )

    timers = []  # (label, operations per call, timer)
    try:
        from job_shop_lib.dispatching import ReadyOperationsFilterType as F

        for label, flt in [
            ("non-delay (non_immediate_operations filter)", F.NON_IMMEDIATE_OPERATIONS),
            ("default filters (dominated + non_immediate)", "default"),
            ("no filter (append-only)", None),
        ]:
            timers.append(
                (
                    f"job-shop-lib, 1 instance at a time, {label}",
                    args.jsl_instances,
                    jsl_timer(args.jsl_instances, args.rule, flt, args.jobs, args.machines),
                )
            )
    except ImportError:
        print("job-shop-lib not installed: no reference")
    n_jsl = len(timers)
    for B in args.batch:
        timers.append(
            (
                f"opsrl, batch {B}, {args.schedule}",
                B,
                opsrl_timer(B, args.rule, args.schedule, args.jobs, args.machines),
            )
        )
    best = [float("inf")] * len(timers)
    makespans = [None] * len(timers)
    for _ in tqdm(range(args.rounds), desc="rounds", leave=False):
        for i, (_, _, timer) in enumerate(timers):
            secs, ms = timer()
            best[i] = min(best[i], secs)
            makespans[i] = ms
    ops = args.jobs * args.machines
    ref = ops * timers[0][1] / best[0] if n_jsl else None
    print(f"\nmean makespan: over the first {args.jsl_instances} instances of the batch (all of it when smaller)")
    print(f"{'implementation':<66}{'ops/s':>12}{'x job-shop-lib':>16}{'mean makespan':>15}")
    for i, (label, n, _) in enumerate(timers):
        rate = ops * n / best[i]
        ms = makespans[i][: args.jsl_instances].mean().item()
        if n_jsl and i >= n_jsl and args.schedule == "non_delay" and n >= args.jsl_instances:
            label += "" if ms == makespans[0].mean().item() else " (makespans differ!)"
        print(f"{label:<66}{rate:>12,.0f}{(rate / ref if ref else float('nan')):>16.1f}{ms:>15.1f}")


if __name__ == "__main__":
    main()
