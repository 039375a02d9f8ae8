"""Helpers of the job-shop tests: independent schedule properties, rule rollouts of many instances."""

from __future__ import annotations

import pytest
import torch

from opsrl.jobshop import instances as I
from opsrl.jobshop import rules as R
from opsrl.jobshop import simulator as S


def run_rules(insts, rule_names, schedule="non_delay"):
    """Makespans and schedules of every (rule, instance) pair: ``{rule: [(makespan, start, end)]}``.

    Instances of one size share a batch with every rule (row ``r * K + k`` runs rule ``r`` on instance ``k``).
    """
    out = {r: [None] * len(insts) for r in rule_names}
    groups = {}
    for i, inst in enumerate(insts):
        groups.setdefault((inst.jobs, max(map(len, inst.machine))), []).append(i)
    for idx in groups.values():
        group = [insts[i] for i in idx]
        data = I.pad(group)
        K, nR = len(group), len(rule_names)
        batch = {k: v.repeat(nR, *([1] * (v.dim() - 1))) for k, v in data.items()}
        which = torch.arange(nR).repeat_interleave(K)
        state = S.initial_state(batch, schedule)
        for _ in range(max(i.operations for i in group)):
            scores = torch.stack([R.priority(r, state) for r in rule_names])  # [R, B, J]
            a = scores.gather(0, which[None, :, None].expand(1, *scores.shape[1:]))[0].argmin(1)
            state, _ = S.transition(S.post_decision(state, a), batch["duration"], schedule)
        assert S.is_done(state).all()
        ms, start, end = state["makespan"].tolist(), state["start"].tolist(), state["end"].tolist()
        for r_i, r in enumerate(rule_names):
            for k, (i, inst) in enumerate(zip(idx, group)):
                b = r_i * K + k
                out[r][i] = (ms[b], [start[b][j][:len(m)] for j, m in enumerate(inst.machine)],
                             [end[b][j][:len(m)] for j, m in enumerate(inst.machine)])
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
