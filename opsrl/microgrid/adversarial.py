"""Random and adversarial proposals, initial states and exogenous paths for stress-testing the shields.

Used by the property tests (tests/microgrid) and benchmarks/microgrid_property.py. Nothing here is
shield code: these generators only try to break the rules that the independent checker verifies.
"""

from __future__ import annotations

import torch

from ..core import Scenarios
from .sim import COOL, OFF, RUN, WARM

STRATEGIES = 6


def adversarial_policy(problem, seed, switch_every=1):
    """Per scenario one of: uniform random; no gensets + full discharge; all gensets + full charge;
    bang-bang; 'attack' (stop whatever runs, drain the battery when low, fill it when high); sticky random."""
    g = torch.Generator().manual_seed(seed)
    held = {}

    def policy(state, t):
        B = state["soc"].shape[0]
        kind = torch.arange(B) % STRATEGIES
        u = torch.rand(B, 2, generator=g)
        a = u.clone()
        a[kind == 1] = torch.tensor([0.0, 1.0])
        a[kind == 2] = torch.tensor([1.0, 0.0])
        flip = float((t // switch_every) % 2)
        a[kind == 3] = torch.tensor([flip, 1.0 - flip])
        running = (state["mode"] == RUN).any(1)
        low = state["soc"] < 0.3
        attack = torch.stack([torch.where(running, 0.0, 1.0), torch.where(low, 1.0, 0.0)], 1)
        a[kind == 4] = attack[kind == 4]
        if "sticky" not in held or t % 17 == 0:
            held["sticky"] = u.clone()
        a[kind == 5] = held["sticky"][kind == 5]
        return a

    return policy


def random_initial_states(problem, sc: Scenarios, seed: int) -> Scenarios:
    """Random safe initial states: any genset modes (committed ones a prefix), timers, run times; SoC >= 0.3
    and high enough for the battery alone to carry peak demand until a genset can run."""
    p = problem.p
    g = torch.Generator().manual_seed(seed)
    B = sc.n
    mode = torch.zeros(B, p.G)
    prefix = torch.ones(B, dtype=torch.bool)
    for i in range(p.G):
        m = torch.randint(0, 4, (B,), generator=g).float()
        m = torch.where(~prefix & ((m == WARM) | (m == RUN)), torch.full_like(m, OFF), m)
        mode[:, i] = m
        prefix = prefix & ((m == WARM) | (m == RUN))
    timer = torch.where(
        mode == WARM,
        torch.randint(1, p.warmup + 1, (B, p.G), generator=g).float(),
        torch.where(mode == COOL, torch.randint(1, p.cooldown + 1, (B, p.G), generator=g).float(), 0.0),
    )
    run = torch.where(mode == RUN, torch.randint(0, 2 * p.min_run, (B, p.G), generator=g).float(), 0.0)
    data = dict(sc.data)
    # safe whatever the modes: enough energy above the normal floor to carry the peak demand alone until any
    # genset can run (cool-down, warm-up, one minute), so the shield's worst-case plan exists at the start
    low = min(max(0.3, p.soc_min + p.d_max * (p.horizon + 1) / 60.0 / p.b_cap), p.soc_max)
    data.update(mode0=mode, timer0=timer, run0=run, soc0=low + (p.soc_max - low) * torch.rand(B, generator=g))
    return Scenarios(data, sc.split, sc.seed, sc.periods, dict(sc.meta))


def adversarial_exogenous(problem, sc: Scenarios, seed: int) -> Scenarios:
    """Every third scenario: demand rises and wind falls at the largest ramps the shield assumes."""
    p = problem.p
    data = dict(sc.data)
    L = sc["demand"].shape[1]
    g = torch.Generator().manual_seed(seed)
    B = sc.n
    sel = torch.arange(B) % 3 == 0
    d0 = 150 + 250 * torch.rand(B, generator=g)
    w0 = p.w_rated * torch.rand(B, generator=g)
    steps = torch.arange(L, dtype=torch.float32)
    d = torch.minimum(d0[:, None] + p.ramp_d * steps, torch.tensor(p.d_max))
    w = (w0[:, None] - p.ramp_w_down * steps).clamp_min(0)
    data["demand"] = torch.where(sel[:, None], d, sc["demand"])
    data["wind"] = torch.where(sel[:, None], w, sc["wind"])
    return Scenarios(data, sc.split, sc.seed, sc.periods, dict(sc.meta))
