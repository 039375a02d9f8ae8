"""Batched baseline policies: greedy (the best single migration), FFD repacking, random feasible.

Each is a policy ``(state, t) -> action [B, 2]`` for :func:`opsrl.core.rollout`, batched over scenarios
with no loop over VMs or PMs.
"""

from __future__ import annotations

import torch

from ..core import generator
from . import simulator as sim


class Greedy:
    """At each step the allowed migration that lowers the fragment rate most, over all (VM, PM, node)
    candidates at once (:func:`.simulator.greedy_moves`); no migration when none lowers it (``stop``), or the
    least harmful one (``stop=False``, a teacher for imitation: every step migrates)."""

    def __init__(self, problem, stop: bool = True):
        self.problem, self.stop = problem, stop

    def __call__(self, state, t):
        p = self.problem
        vm, slot, delta = sim.greedy_moves(state, p.block, p.objective, p.mem_block)
        keep = delta < -1e-9 if self.stop else torch.isfinite(delta)
        return torch.stack([torch.where(keep, vm, -1), slot], 1)


class FFD:
    """First-fit-decreasing repacking in the spirit of alpha-VBPP: drain the least-loaded nodes, the
    largest VM first, into the most-loaded node that can take it (first fit over the nodes sorted by
    decreasing load). A VM moves only to a node fuller than the one it leaves: each step takes, among the
    VMs with such a destination, the one on the node with the most free CPU (then the largest), and puts it
    on the fullest node that fits (for a double-NUMA VM, the PM whose emptier node has the least free CPU)."""

    def __init__(self, problem):
        self.problem = problem

    def __call__(self, state, t):
        B, P, _ = state["free_cpu"].shape
        f = state["free_cpu"].reshape(B, 2 * P)
        pm_min = f.reshape(B, P, 2).amin(-1).repeat_interleave(2, 1)  # [B, S]
        own = sim.own_slot(state)
        other = f.gather(1, (own + 1).clamp(max=2 * P - 1))
        own_free = torch.where(state["vm_double"], torch.minimum(f.gather(1, own), other), f.gather(1, own))
        fit = sim.kind_fit(state)  # [B, K, S]
        load = torch.where(state["kind_double"][..., None], pm_min[:, None], f[:, None])  # free CPU of a slot
        val = torch.where(fit, load, torch.full_like(load, torch.inf))
        best, slot_k = val.min(-1)  # the fullest fitting slot of each kind
        best_v, slot_v = best.gather(1, state["vm_kind"]), slot_k.gather(1, state["vm_kind"])
        ok = state["vm_mask"] & state["vm_movable"] & (best_v < own_free)  # strictly fuller: never its own slot
        score = torch.where(ok, own_free * 1e4 + state["vm_cpu"], torch.full_like(own_free, -torch.inf))
        vm = score.argmax(1)
        slot = slot_v.gather(1, vm[:, None])[:, 0]
        return torch.stack([torch.where(ok.any(1), vm, -1), slot], 1)


class RandomFeasible:
    """A uniformly random VM among those with an allowed destination, then a uniformly random destination."""

    def __init__(self, problem, seed: int = 0):
        self.problem = problem
        self.gen = generator(seed, "test", "vm_random")

    def __call__(self, state, t):
        m1 = sim.first_stage_mask(state)
        any1 = m1.any(1)
        w1 = torch.where(any1[:, None], m1, torch.ones_like(m1)).float()
        vm = torch.multinomial(w1.cpu(), 1, generator=self.gen)[:, 0].to(m1.device)
        dest = sim.destination_mask(state, vm)
        w2 = torch.where(dest.any(1, keepdim=True), dest, torch.ones_like(dest)).float()
        slot = torch.multinomial(w2.cpu(), 1, generator=self.gen)[:, 0].to(m1.device)
        return torch.stack([torch.where(any1, vm, -1), slot], 1)
