"""Dispatching rules as batched policies.

Each rule gives every job a priority computed from the state (nominal durations only) and dispatches the
allowed job (``state["mask"]``) of lowest priority value; ties go to the lowest job index (``argmin``
returns the first minimum). With ``p`` the nominal duration of a job's next operation and ``R`` its
remaining nominal work (next operation included):

======== ========================================================================================
rule     dispatches the allowed job with
======== ========================================================================================
spt      the shortest next operation (min ``p``)
lpt      the longest next operation (max ``p``)
mwkr     the most work remaining (max ``R``)
lwkr     the least work remaining (min ``R``)
mopnr    the most operations remaining (next one included)
fifo     the earliest arrival in the queue: the smallest job ready time (end of its previous operation)
fdd_mwkr the smallest ratio of flow due date (work of the job up to and including the next operation)
         to work remaining ``R`` (Sels, Gheysen and Vanhoucke 2012)
======== ========================================================================================

These are the rules of job-shop-lib's dispatcher with the same tie-breaking (its rules take the first best
operation in job order); its ``first_come_first_served`` is the lowest position in the job, which on
instances whose jobs all have ``m`` operations is ``mopnr`` (tests/jobshop/test_peer.py checks both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..core import State

__all__ = ["RULES", "DispatchRule", "priority", "schedule_instances"]

INF = float("inf")


def _next(state: State) -> tuple[torch.Tensor, torch.Tensor]:
    return state["p_next"], state["rem"]


def _spt(s):
    return _next(s)[0]


def _lpt(s):
    return -_next(s)[0]


def _mwkr(s):
    return -_next(s)[1]


def _lwkr(s):
    return _next(s)[1]


def _mopnr(s):
    return -(s["n_ops"] - s["next_op"]).to(s["duration"].dtype)


def _fifo(s):
    return s["job_ready"]


def _fdd_mwkr(s):
    p, rem = _next(s)
    fdd = s["total"] - rem + p
    # in double precision: distinct ratios of integers stay distinct, equal ones tie exactly; a job whose
    # remaining operations all take 0 goes last (a large finite value: inf marks jobs not allowed)
    ratio = fdd.double() / rem.double().clamp_min(1e-300)
    return torch.where(rem > 0, ratio, torch.full_like(ratio, 1e300))


RULES: dict[str, Callable[[State], torch.Tensor]] = {
    "spt": _spt,
    "lpt": _lpt,
    "mwkr": _mwkr,
    "lwkr": _lwkr,
    "mopnr": _mopnr,
    "fifo": _fifo,
    "fdd_mwkr": _fdd_mwkr,
}

DESCRIPTIONS = {
    "spt": "shortest processing time of the next operation",
    "lpt": "longest processing time of the next operation",
    "mwkr": "most work remaining",
    "lwkr": "least work remaining",
    "mopnr": "most operations remaining",
    "fifo": "first in, first out (earliest job ready time)",
    "fdd_mwkr": "smallest flow due date / most work remaining",
}


def priority(name: str, state: State) -> torch.Tensor:
    """Priorities ``[B, J]`` of rule ``name`` (lower goes first), ``inf`` for jobs not allowed now."""
    score = RULES[name](state).double()
    return torch.where(state["mask"], score, torch.full_like(score, INF))


class DispatchRule(torch.nn.Module):
    """A dispatching rule as a policy: ``rule(state, t) -> job index [B]``."""

    def __init__(self, name: str):
        super().__init__()
        if name not in RULES:
            raise ValueError(f"unknown dispatching rule {name!r}; allowed: {', '.join(RULES)}")
        self.name = name
        self._fn = RULES[name]

    def forward(self, state: State, t: int = 0) -> torch.Tensor:
        return torch.where(state["mask"], self._fn(state), INF).argmin(1)

    def extra_repr(self) -> str:
        return self.name


@torch.no_grad()
def schedule_instances(
    insts: Sequence, rule_names: Sequence[str] = tuple(RULES), schedule: str = "non_delay"
) -> dict[str, list[tuple[float, list[list[float]], list[list[float]]]]]:
    """Schedule every instance with every rule: ``{rule: [(makespan, start, end) per instance]}``.

    Instances of one shape share a batch with every rule (row ``r * K + k`` runs rule ``r`` on instance
    ``k``), so a few batched rollouts cover a whole benchmark set.
    """
    from . import simulator as S
    from .instances import pad

    out: dict[str, list] = {r: [None] * len(insts) for r in rule_names}
    groups: dict[tuple[int, int], list[int]] = {}
    for i, inst in enumerate(insts):
        groups.setdefault((inst.jobs, max(map(len, inst.machine))), []).append(i)
    for idx in groups.values():
        group = [insts[i] for i in idx]
        data = pad(group)
        K, nR = len(group), len(rule_names)
        batch = {k: v.repeat(nR, *([1] * (v.dim() - 1))) for k, v in data.items()}
        which = torch.arange(nR).repeat_interleave(K)
        state = S.initial_state(batch, schedule)
        for _ in range(max(i.operations for i in group)):
            scores = torch.stack([priority(r, state) for r in rule_names])  # [R, B, J]
            a = scores.gather(0, which[None, :, None].expand(1, *scores.shape[1:]))[0].argmin(1)
            state, _ = S.transition(S.post_decision(state, a), batch["duration"], schedule)
        ms, start, end = state["makespan"].tolist(), state["start"].tolist(), state["end"].tolist()
        for r_i, r in enumerate(rule_names):
            for k, (i, inst) in enumerate(zip(idx, group)):
                b = r_i * K + k
                out[r][i] = (
                    ms[b],
                    [start[b][j][: len(m)] for j, m in enumerate(inst.machine)],
                    [end[b][j][: len(m)] for j, m in enumerate(inst.machine)],
                )
    return out
