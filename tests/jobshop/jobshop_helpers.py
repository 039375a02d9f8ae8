"""Helpers of the job-shop tests: independent schedule properties, rule rollouts of many instances."""

from __future__ import annotations

from opsrl.jobshop import rules as R


def run_rules(insts, rule_names, schedule="non_delay"):
    """``{rule: [(makespan, start, end)]}``, checking that every schedule is complete."""
    out = R.schedule_instances(insts, rule_names, schedule)
    for rows in out.values():
        for inst, (_, start, _) in zip(insts, rows):
            assert [len(r) for r in start] == [len(r) for r in inst.machine]
    return out


def busy_intervals(inst, start, end):
    per = {}
    for j, row in enumerate(inst.machine):
        for k, m in enumerate(row):
            per.setdefault(m, []).append((start[j][k], end[j][k]))
    return {m: sorted(v) for m, v in per.items()}


def is_non_delay(inst, start, end) -> bool:
    """No machine idles while an operation it could process is waiting (independent definition)."""
    busy = busy_intervals(inst, start, end)
    for j, row in enumerate(inst.machine):
        for k, m in enumerate(row):
            ready = end[j][k - 1] if k else 0.0
            t = ready
            for s, e in busy[m]:  # the machine must be busy throughout [ready, start)
                if e <= t or s >= start[j][k]:
                    continue
                if s > t:
                    return False
                t = max(t, e)
            if t < start[j][k]:
                return False
    return True


def is_active(inst, start, end) -> bool:
    """No operation fits into an earlier idle gap of its machine (no global left shift)."""
    busy = busy_intervals(inst, start, end)
    for j, row in enumerate(inst.machine):
        for k, m in enumerate(row):
            ready, p = (end[j][k - 1] if k else 0.0), inst.duration[j][k]
            t = 0.0
            for s, e in busy[m]:
                if s >= start[j][k]:
                    break
                if max(t, ready) + p <= s and p > 0:
                    return False
                t = max(t, e)
    return True
