"""An independent schedule validator (plain Python; shares no code with the simulator or the solvers).

A schedule of an instance is a start and an end time per operation. :func:`violations` lists everything
wrong with it: a missing or extra operation, an operation whose length differs from its processing time,
an operation that starts before its job predecessor ends, two operations overlapping on a machine, a
claimed makespan that is not the largest end time. Times are compared with a relative tolerance ``tol``
(integer instances are exact; float32 schedules of noisy instances need about 1e-5).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["violations", "assert_valid"]


def violations(
    machine: Sequence[Sequence[int]],
    duration: Sequence[Sequence[float]],
    start: Sequence[Sequence[float]],
    end: Sequence[Sequence[float]] | None = None,
    makespan: float | None = None,
    tol: float = 1e-6,
) -> list[str]:
    """Return the violations of the schedule ``start``/``end`` (job x operation) of the instance, or []."""
    out: list[str] = []
    if len(start) < len(machine):
        return [f"schedule has {len(start)} jobs, instance {len(machine)}"]
    by_machine: dict[int, list[tuple[float, float, int, int]]] = {}
    last_end = 0.0
    for j, (mrow, drow) in enumerate(zip(machine, duration)):
        if len(start[j]) < len(mrow):
            out.append(f"job {j}: {len(start[j])} start times for {len(mrow)} operations")
            continue
        prev_end = None
        for k, (m, d) in enumerate(zip(mrow, drow)):
            s = float(start[j][k])
            e = float(end[j][k]) if end is not None else s + float(d)
            if s != s or e != e:
                out.append(f"job {j} op {k}: start or end is NaN")
                continue
            if s < -tol:
                out.append(f"job {j} op {k}: starts at {s} < 0")
            if abs((e - s) - float(d)) > tol * max(1.0, abs(e)):
                out.append(f"job {j} op {k}: lasts {e - s}, processing time is {d}")
            if prev_end is not None and s < prev_end - tol:
                out.append(f"job {j} op {k}: starts at {s} before op {k - 1} ends at {prev_end}")
            prev_end = e
            last_end = max(last_end, e)
            by_machine.setdefault(int(m), []).append((s, e, j, k))
    for m, ops in by_machine.items():
        ops.sort()
        for (s1, e1, j1, k1), (s2, e2, j2, k2) in zip(ops, ops[1:]):
            if s2 < e1 - tol and e2 - s2 > tol and e1 - s1 > tol:
                out.append(f"machine {m}: job {j1} op {k1} [{s1}, {e1}) overlaps job {j2} op {k2} [{s2}, {e2})")
    if makespan is not None and abs(float(makespan) - last_end) > tol * max(1.0, last_end):
        out.append(f"claimed makespan {makespan} but the last operation ends at {last_end}")
    return out


def assert_valid(machine, duration, start, end=None, makespan=None, name: str = "schedule", tol: float = 1e-6) -> None:
    """Raise AssertionError listing the first violations of an invalid schedule."""
    v = violations(machine, duration, start, end, makespan, tol)
    if v:
        raise AssertionError(f"{name}: {len(v)} violations, e.g. " + "; ".join(v[:5]))
