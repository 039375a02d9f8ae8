"""Dispatching speed: scheduled operations per second on 15x15 instances, opsrl (batched) vs job-shop-lib.

opsrl rolls a dispatching rule through the simulator (``rollout`` under ``torch.no_grad``, the path every
evaluation takes) on a batch of B random 15x15 instances (Taillard's generator, times 1..99). job-shop-lib
dispatches one instance at a time with the same rule (its DispatchingRuleSolver), with the filter that
gives the same non-delay schedules, with its default filters, and with no filter (append-only).

    python benchmarks/jobshop_speed.py                     # B in 1 64 256 1024 4096, rule mwkr, 1 thread
    python benchmarks/jobshop_speed.py --batch 1024 4096 --rule spt --schedule active

Rates are the best of ``--repeats`` runs. job-shop-lib schedules the first ``--jsl-instances`` instances
of opsrl's batch; with the non-delay filter its mean makespan must equal opsrl's on them.
"""

from __future__ import annotations

import argparse
import time

import torch
from tqdm import tqdm

from opsrl.core import rollout
from opsrl.jobshop import instances as I, simulator as S
from opsrl.jobshop.rules import DispatchRule

JSL_RULE = {"spt": "shortest_processing_time", "lpt": "largest_processing_time", "mwkr": "most_work_remaining",
            "mopnr": "most_operations_remaining"}


def opsrl_rate(B: int, rule: str, schedule: str, repeats: int, jobs: int, machines: int) -> tuple[float, float]:
    p = _problem(jobs, machines, schedule)
    sc = p.sample(B, "test", 0)
    pol = DispatchRule(rule)
    with torch.no_grad():
        rollout(p, pol, sc)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            traj = rollout(p, pol, sc)
            best = min(best, time.perf_counter() - t0)
    return B * jobs * machines / best, traj.costs.sum(1).double()


def jsl_rate(n: int, rule: str, flt, jobs: int, machines: int, repeats: int) -> tuple[float, float]:
    """job-shop-lib on the first ``n`` instances of the batch opsrl schedules (same makespans expected)."""
    from job_shop_lib import JobShopInstance
    from job_shop_lib.dispatching.rules import DispatchingRuleSolver

    sc = _problem(jobs, machines, "non_delay").sample(n, "test", 0)
    insts = [JobShopInstance.from_matrices(duration_matrix=sc["duration"][b].int().tolist(),
                                           machines_matrix=sc["machine"][b].tolist()) for b in range(n)]
    kwargs = {} if flt == "default" else {"ready_operations_filter": flt}
    solver = DispatchingRuleSolver(JSL_RULE[rule], **kwargs)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        ms = [solver.solve(i).makespan() for i in insts]
        best = min(best, time.perf_counter() - t0)
    return n * jobs * machines / best, sum(ms) / n


def _problem(jobs: int, machines: int, schedule: str) -> S.JobShop:
    return S.JobShop(generator_cfg={"kind": "taillard", "jobs": jobs, "machines": machines, "low": 1, "high": 99},
                     schedule=schedule)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, nargs="*", default=[1, 64, 256, 1024, 4096])
    ap.add_argument("--rule", default="mwkr", choices=sorted(JSL_RULE))
    ap.add_argument("--schedule", default="non_delay", choices=S.SCHEDULES)
    ap.add_argument("--jobs", type=int, default=15)
    ap.add_argument("--machines", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jsl-instances", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (0: torch's default; the small per-step tensors run best on 1)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.jobs}x{args.machines} instances, "
          f"rule {args.rule}")
    rows = []
    try:
        from job_shop_lib.dispatching import ReadyOperationsFilterType as F

        filters = [("non-delay (non_immediate_operations filter)", F.NON_IMMEDIATE_OPERATIONS),
                   ("default filters (dominated + non_immediate)", "default"),
                   ("no filter (append-only)", None)]
        for label, flt in tqdm(filters, desc="job-shop-lib", leave=False):
            rate, ms = jsl_rate(args.jsl_instances, args.rule, flt, args.jobs, args.machines, args.repeats)
            rows.append((f"job-shop-lib, 1 instance at a time, {label}", rate, ms))
    except ImportError:
        print("job-shop-lib not installed: no reference")
    ref = rows[0][1] if rows else None
    for B in tqdm(args.batch, desc="opsrl", leave=False):
        rate, ms = opsrl_rate(B, args.rule, args.schedule, args.repeats, args.jobs, args.machines)
        n = min(B, args.jsl_instances)
        rows.append((f"opsrl, batch {B}, {args.schedule}", rate, ms[:n].mean().item()))
        if rows and args.schedule == "non_delay" and n == args.jsl_instances and ref is not None:
            same = ms[:n].mean().item() == rows[0][2]
            rows[-1] = (rows[-1][0] + ("" if same else " (makespans differ!)"), rate, rows[-1][2])
    print(f"\nmean makespan: over the first {args.jsl_instances} instances of the batch (all of it when smaller)")
    print(f"{'implementation':<66}{'ops/s':>12}{'x job-shop-lib':>16}{'mean makespan':>15}")
    for label, rate, ms in rows:
        print(f"{label:<66}{rate:>12,.0f}{(rate / ref if ref else float('nan')):>16.1f}{ms:>15.1f}")


if __name__ == "__main__":
    main()
