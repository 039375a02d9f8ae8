"""OR-Tools CP-SAT for the job shop: interval variables, one no-overlap constraint per machine.

:func:`solve` returns the best schedule found within the time limit, its makespan, CP-SAT's proven lower
bound and the status (``optimal`` when the two meet, ``feasible`` otherwise). It is warm-started with a
hint: the best schedule of the dispatching rules (:func:`best_rule_schedules`). CP-SAT may lose a hint
under a short time limit; the hint is then returned itself, so the result is never worse than the best
rule.

With processing-time noise, CP-SAT plans on the nominal instance and its machine sequences are then
executed on every noise scenario, each operation starting as soon as its job predecessor and its machine
predecessor in the plan have finished (:func:`execute`): a non-anticipative policy, not a hindsight bound.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from . import simulator as sim
from .instances import Instance
from .rules import RULES, schedule_instances

__all__ = ["CPSATResult", "solve", "best_rule_schedules", "execute"]


@dataclass
class CPSATResult:
    status: str  # optimal, feasible, unknown (no schedule), infeasible, model_invalid
    makespan: float
    lower_bound: float
    start: list[list[float]] = field(default_factory=list)
    end: list[list[float]] = field(default_factory=list)
    seconds: float = 0.0
    hint_makespan: float | None = None
    objective: float | None = None  # CP-SAT's reported objective value (the makespan is read off the schedule)

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "makespan": self.makespan,
            "lower_bound": self.lower_bound,
            "seconds": self.seconds,
            "hint_makespan": self.hint_makespan,
            "objective": self.objective,
        }


def solve(
    inst: Instance,
    time_limit: float = 10.0,
    workers: int = 2,
    hint: Sequence[Sequence[float]] | None = None,
    seed: int = 0,
    log: bool = False,
) -> CPSATResult:
    """Minimise the makespan of ``inst`` with CP-SAT; ``hint`` is a start time per operation."""
    from ortools.sat.python import cp_model

    for j, row in enumerate(inst.duration):
        if any(float(d) != int(d) for d in row):
            raise ValueError(f"{inst.name}: CP-SAT needs integer processing times (job {j})")
    dur = [[int(d) for d in row] for row in inst.duration]
    horizon = sum(map(sum, dur))
    model = cp_model.CpModel()
    starts, ends = [], []
    per_machine: dict[int, list] = {}
    for j, (mrow, drow) in enumerate(zip(inst.machine, dur)):
        srow, erow = [], []
        for k, (m, d) in enumerate(zip(mrow, drow)):
            s = model.NewIntVar(0, horizon, f"s{j}_{k}")
            e = model.NewIntVar(0, horizon, f"e{j}_{k}")
            per_machine.setdefault(int(m), []).append(model.NewIntervalVar(s, d, e, f"i{j}_{k}"))
            if erow:
                model.Add(s >= erow[-1])
            srow.append(s)
            erow.append(e)
        starts.append(srow)
        ends.append(erow)
    for intervals in per_machine.values():
        model.AddNoOverlap(intervals)
    makespan = model.NewIntVar(0, horizon, "makespan")
    model.AddMaxEquality(makespan, [row[-1] for row in ends if row])
    model.Minimize(makespan)
    hint_ms = None
    if hint is not None:
        for j, row in enumerate(starts):
            for k, s in enumerate(row):
                model.AddHint(s, int(round(hint[j][k])))
                model.AddHint(ends[j][k], int(round(hint[j][k])) + dur[j][k])
        hint_ms = max(int(round(hint[j][len(r) - 1])) + dur[j][len(r) - 1] for j, r in enumerate(starts) if r)
        model.AddHint(makespan, hint_ms)

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit)
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = int(seed)
    solver.parameters.log_search_progress = bool(log)
    t0 = time.perf_counter()
    code = solver.Solve(model)
    seconds = time.perf_counter() - t0
    status = {
        cp_model.OPTIMAL: "optimal",
        cp_model.FEASIBLE: "feasible",
        cp_model.INFEASIBLE: "infeasible",
        cp_model.MODEL_INVALID: "model_invalid",
    }.get(code, "unknown")
    bound = float(solver.BestObjectiveBound())
    if status in ("optimal", "feasible"):
        start = [[float(solver.Value(s)) for s in row] for row in starts]
        end = [[float(solver.Value(e)) for e in row] for row in ends]
        # The makespan is read off the returned schedule: with several workers and a time limit, CP-SAT's
        # reported objective value can exceed the returned solution's (seen on ta33: 2276 for a 2275 schedule).
        ms, objective = max(row[-1] for row in end if row), float(solver.ObjectiveValue())
    if hint is not None and (status not in ("optimal", "feasible") or ms > hint_ms):
        # A hint is only a hint: under a short time limit CP-SAT may lose it and return something worse, or
        # nothing at all. The warm start is itself a valid schedule, so it is what we return then.
        start = [[float(round(hint[j][k])) for k in range(len(row))] for j, row in enumerate(starts)]
        end = [[start[j][k] + dur[j][k] for k in range(len(row))] for j, row in enumerate(starts)]
        ms = objective = float(hint_ms)
        status = "optimal" if bound >= ms else "feasible"
    if status not in ("optimal", "feasible"):
        return CPSATResult(status, float("nan"), bound, seconds=seconds, hint_makespan=hint_ms)
    return CPSATResult(status, ms, min(bound, ms), start, end, seconds, hint_ms, objective)


def best_rule_schedules(
    instances: Sequence[Instance], rules: Sequence[str] = tuple(RULES), schedules: Sequence[str] = sim.SCHEDULES
) -> list[dict]:
    """For each instance, the best schedule of the dispatching ``rules`` under each generation scheme:
    ``{"rule", "schedule", "makespan", "start", "end"}`` (ties: first rule, non-delay first)."""
    best: list[dict | None] = [None] * len(instances)
    for scheme in schedules:
        out = schedule_instances(instances, rules, scheme)
        for rule in rules:
            for b, (ms, start, end) in enumerate(out[rule]):
                if best[b] is None or ms < best[b]["makespan"]:
                    best[b] = {"rule": rule, "schedule": scheme, "makespan": ms, "start": start, "end": end}
    return best  # type: ignore[return-value]


def execute(inst: Instance, start: Sequence[Sequence[float]], realized: torch.Tensor) -> torch.Tensor:
    """Makespans ``[S]`` of the plan ``start`` (its machine sequences) executed with the processing times
    ``realized`` ``[S, J, O]``: each operation starts when its job predecessor and its machine predecessor
    in the plan are done."""
    S = realized.shape[0]
    ops = sorted(
        (
            (float(start[j][k]), float(inst.duration[j][k]), j, k)
            for j, row in enumerate(inst.machine)
            for k in range(len(row))
        )
    )
    job_end = torch.zeros(S, inst.jobs, dtype=realized.dtype)
    mach_end = torch.zeros(S, inst.machines, dtype=realized.dtype)
    for _, _, j, k in ops:
        m = inst.machine[j][k]
        e = torch.maximum(job_end[:, j], mach_end[:, m]) + realized[:, j, k]
        job_end[:, j] = e
        mach_end[:, m] = e
    return job_end.amax(1)
