"""The microgrid's shield hierarchy (shielded controller units).

::

    microgrid        [demand.served, genset.rolling_average]
      genset_group   [genset.priority]
        genset1      [genset1.min_run_time, genset1.warmup, genset1.cooldown]
        genset2      [...]
      battery        [battery.soc_band, battery.reserve_only]
      wind           [wind.curtail_only_surplus]
      demand         [demand.no_shedding]

The agent proposes ``gensets`` (a continuous count in ``[0, G]``) and either ``battery_kw`` (a set-point)
or ``genset_load`` (each running genset's load, in ``[0, 1]`` from minimum load to rated; the battery unit
turns it into the set-point that leaves the gensets there, see :meth:`BatteryUnit.from_genset_load`);
the units set everything else. Rules that the plant's real-time control already enforces (equal load
sharing, minimum load, the overload limit, the order in which reserves are used) are checked by
:mod:`opsrl.microgrid.constraints` but need no shield.

The microgrid unit's worst-case look-ahead. Before step ``t`` it knows the last demand ``d`` and wind
``w``. Within the ramp limits the synthetic generator obeys (and that files are checked against), the
net load of minute ``t + h`` is at most ``min(peak, d + r_d (h + 1)) - max(0, w - r_w (h + 1))``. For a
candidate number ``m`` of committed gensets it computes what the genset group would actually do (priority
order, timers), then the capacity profile over ``h = 0 .. H`` if every further genset were started as
soon as it can be (off: next minute; cooling: when its cool-down ends; warming: its fixed warm-up output
until it runs; a later genset never before an earlier one) at rated power, and the battery's shortfall
``max(0, net - gensets)``. The candidate is safe when that shortfall never exceeds the battery's power and
its sum fits in the energy above the floor (``soc_reserve_min`` with ``plan_with_reserve``, else
``soc_min``). The smallest safe ``m`` at least the agent's proposal is committed, and the battery's
scheduled discharge is capped so that the energy for the rest of the look-ahead stays in the battery.

Why the guarantee holds step after step: with ``H`` at least the time to bring any genset in
(cool-down + warm-up + 1 minutes), the plan "start everything as soon as possible" that made step ``t``
safe is still available at ``t + 1`` and covers one more minute, in which all gensets run at rated
power (the config demands ``G * rated >= peak``) and need no battery; the energy the
plan counted on is still there because the battery's use at step ``t`` is at most
``max(set-point, worst-case shortfall)``. So, as long as demand and wind stay within the ramp limits,
demand is always served without touching the overload reserve (nor, with ``plan_with_reserve`` off,
the default, the reserve SoC band).

Rolling average: once a committed genset's 48 h average load is within ``rolling_margin_kw`` of its limit,
every genset is committed (equal sharing spreads the load) and the battery stops charging from the
gensets. This keeps the average below its limit while the shared load stays below the limit on average,
which holds for the bundled problems (the checker verifies it in the property test); it is not a
guarantee for arbitrary demand (a demand above ``G * limit`` for days cannot be met within the rule).
"""

from __future__ import annotations

import torch

from ..shield import ShieldUnit, straight_through
from .params import Params
from .sim import COOL, OFF, RUN, WARM

BIG = 1e9


class GensetUnit(ShieldUnit):
    """One genset: minimum run time before a stop, warm-up and cool-down run to completion."""

    def __init__(self, p: Params, index: int):
        self.p, self.i = p, index
        self.name = f"genset{index + 1}"
        self.guarantees = (f"{self.name}.min_run_time", f"{self.name}.warmup", f"{self.name}.cooldown")
        super().__init__()

    def can_stop(self, state) -> torch.Tensor:
        return (state["mode"][:, self.i] == RUN) & (state["run"][:, self.i] >= self.p.min_run)

    def can_start(self, state) -> torch.Tensor:
        return state["mode"][:, self.i] == OFF

    def feasible(self, state, want_on: torch.Tensor) -> torch.Tensor:
        """The nearest allowed on/off (bool) to ``want_on``."""
        mode = state["mode"][:, self.i]
        must_on = (mode == WARM) | ((mode == RUN) & ~self.can_stop(state))
        must_off = mode == COOL
        return torch.where(must_on, True, torch.where(must_off, False, want_on))

    def apply(self, state, proposal, trace):
        cmd = proposal["cmd"]
        want = cmd[:, self.i].detach() >= 0.5
        ok = self.feasible(state, want)
        if trace is not None:
            mode, run = state["mode"][:, self.i], state["run"][:, self.i]
            self.note(
                trace,
                f"cmd[{self.i + 1}]",
                want.float(),
                ok.float(),
                [
                    (mode == WARM, "warming up: a warm-up runs to completion"),
                    (mode == COOL, "cooling down: cannot restart before the cool-down ends"),
                    ((mode == RUN) & (run < self.p.min_run), f"minimum run time {self.p.min_run} min not reached"),
                ],
            )
        col = straight_through(ok.to(cmd.dtype), cmd[:, self.i])
        proposal["cmd"] = torch.cat([cmd[:, : self.i], col[:, None], cmd[:, self.i + 1 :]], dim=1)
        return proposal


class GensetGroupUnit(ShieldUnit):
    """Turns a number of gensets into per-genset commands: start in priority order, stop in reverse."""

    name = "genset_group"
    guarantees = ("genset.priority",)

    def __init__(self, p: Params):
        self.p = p
        self.units = [GensetUnit(p, i) for i in range(p.G)]
        super().__init__(self.units)

    def commit(self, state, m: torch.Tensor) -> torch.Tensor:
        """Committed gensets (bool ``[B, G]``) after asking for ``m`` of them; the committed set stays a
        prefix of the priority order and every genset's own rules hold."""
        mode = state["mode"]
        committed = (mode == WARM) | (mode == RUN)
        on = []
        prefix_ok = torch.ones_like(m, dtype=torch.bool)
        for i, u in enumerate(self.units):  # starts, in priority order
            start = prefix_ok & (m > i) & u.can_start(state)
            on_i = committed[:, i] | start
            on.append(on_i)
            prefix_ok = prefix_ok & on_i
        later_off = torch.ones_like(prefix_ok)
        for i in reversed(range(self.p.G)):  # stops, in reverse priority order
            stop = on[i] & (m <= i) & later_off & self.units[i].can_stop(state) & (mode[:, i] == RUN)
            on[i] = on[i] & ~stop
            later_off = later_off & ~on[i]
        return torch.stack(on, dim=1)

    def apply(self, state, proposal, trace):
        soft = proposal["gensets"]
        m = proposal.get("gensets_count")
        if m is None:
            m = soft.detach().round().clamp(0, self.p.G)
        on = self.commit(state, m)
        idx = torch.arange(self.p.G, device=soft.device, dtype=soft.dtype)
        relaxed = (soft[:, None] - idx[None, :]).clamp(0, 1)  # genset i is "soft-on" by the count above i
        if trace is not None:
            want = (idx[None, :] < m[:, None]).float()
            mode, run = state["mode"], state["run"]
            wanted_off = (want == 0) & on
            wanted_on = (want == 1) & ~on
            self.note(
                trace,
                "cmd",
                want,
                on.float(),
                [
                    (
                        (wanted_off & (mode == RUN) & (run < self.p.min_run)).any(1),
                        f"minimum run time ({self.p.min_run} min) not reached",
                    ),
                    ((wanted_off & (mode == WARM)).any(1), "a warm-up runs to completion"),
                    ((wanted_on & (mode == COOL)).any(1), "cooling down: no restart before the cool-down ends"),
                    (torch.ones_like(m, dtype=torch.bool), "priority order (start 1, 2, ...; stop in reverse)"),
                ],
            )
        proposal["cmd"] = straight_through(on.to(soft.dtype), relaxed)
        return proposal


class BatteryUnit(ShieldUnit):
    """Battery set-point within power, the normal SoC band and the energy the look-ahead reserves."""

    name = "battery"
    guarantees = ("battery.soc_band", "battery.reserve_only")

    def __init__(self, p: Params):
        self.p = p
        super().__init__()

    def apply(self, state, proposal, trace):
        p = self.p
        soc = state["soc"]
        e = p.b_cap * 60.0
        hi = ((soc - p.soc_min) * e).clamp(0, p.b_power)
        lo = -((p.soc_max - soc) * e / p.eta).clamp(0, p.b_power)
        cap = proposal.get("battery_max_kw")
        floor = proposal.get("battery_min_kw")
        b = proposal["battery_kw"] if "battery_kw" in proposal else self.from_genset_load(state, proposal)
        b1 = torch.maximum(torch.minimum(b, hi), lo)
        b2 = b1 if cap is None else torch.minimum(b1, torch.maximum(cap, lo))
        b3 = b2 if floor is None else torch.maximum(b2, torch.minimum(floor, hi))
        if trace is not None:
            reasons = [
                ((b > hi) & (b1 == hi), "discharge limited by power or the SoC floor of the normal band"),
                ((b < lo) & (b1 == lo), "charge limited by power or the SoC ceiling of the normal band"),
            ]
            if cap is not None:
                reasons.append((b2 < b1, "energy kept for the worst case of the look-ahead"))
            if floor is not None:
                reasons.append((b3 > b2, "no charging from gensets near their rolling-average limit"))
            self.note(trace, "battery_kw", b, b3, reasons)
        proposal["battery_kw"] = b3
        return proposal

    def from_genset_load(self, state, proposal) -> torch.Tensor:
        """The set-point that leaves each running genset at the proposed load, were last minute's net load to
        repeat: ``net - warm-up output - running * (min_load + u (rated - min_load))``. The battery covers the
        rest (discharging) or takes the surplus (charging); with no genset running it covers the whole net load.
        The commitment enters with its straight-through gradient, so the count learns what the battery gains."""
        p = self.p
        mode, cmd = state["mode"], proposal["cmd"]
        running = cmd * ((mode == RUN) | (mode == COOL) | ((mode == OFF) & (p.warmup == 0))).to(cmd.dtype)
        warming = cmd * ((mode == WARM) | ((mode == OFF) & (p.warmup > 0))).to(cmd.dtype)
        load = p.min_load + proposal["genset_load"].clamp(0, 1) * (p.rated - p.min_load)
        net = state["d_prev"] - state["w_prev"]
        return net - warming.sum(1) * p.warmup_kw - running.sum(1) * load


class WindUnit(ShieldUnit):
    """Wind is never curtailed by command: the plant curtails only a surplus nothing else can absorb."""

    name = "wind"
    guarantees = ("wind.curtail_only_surplus",)

    def __init__(self, p: Params):
        self.p = p
        super().__init__()

    def apply(self, state, proposal, trace):
        ref = state["soc"]
        cap = torch.full_like(ref, self.p.w_rated)
        if "wind_cap_kw" in proposal and trace is not None:
            self.note(
                trace,
                "wind_cap_kw",
                proposal["wind_cap_kw"],
                cap,
                [(torch.ones_like(ref, dtype=torch.bool), "curtailment is left to the plant (surplus only)")],
            )
        proposal["wind_cap_kw"] = cap
        return proposal


class DemandUnit(ShieldUnit):
    """No deliberate load shedding."""

    name = "demand"
    guarantees = ("demand.no_shedding",)

    def apply(self, state, proposal, trace):
        ref = state["soc"]
        zero = torch.zeros_like(ref)
        if "shed_kw" in proposal and trace is not None:
            self.note(
                trace,
                "shed_kw",
                proposal["shed_kw"],
                zero,
                [(torch.ones_like(ref, dtype=torch.bool), "load shedding is not allowed")],
            )
        proposal["shed_kw"] = zero
        return proposal


class MicrogridUnit(ShieldUnit):
    """Worst-case look-ahead: commit enough gensets in time; reserve battery energy (see module docstring)."""

    name = "microgrid"
    guarantees = ("demand.served", "genset.rolling_average")

    def __init__(self, p: Params):
        self.p = p
        self.group = GensetGroupUnit(p)
        super().__init__([self.group, BatteryUnit(p), WindUnit(p), DemandUnit()])

    def worst_net(self, state) -> torch.Tensor:
        """Worst-case net load ``[B, H + 1]`` for minutes ``t .. t + H``."""
        p = self.p
        h = torch.arange(p.horizon + 1, device=state["soc"].device, dtype=state["soc"].dtype) + 1
        d = torch.minimum(state["d_prev"][:, None] + p.ramp_d * h, torch.full_like(h, p.d_max)[None, :])
        w = (state["w_prev"][:, None] - p.ramp_w_down * h).clamp_min(0)
        return d - w

    def capacity(self, state, on: torch.Tensor) -> torch.Tensor:
        """Genset capacity ``[B, H + 1]`` if ``on`` is committed now and the rest start as soon as they can."""
        p = self.p
        mode, timer = state["mode"], state["timer"]
        h = torch.arange(p.horizon + 1, device=mode.device, dtype=mode.dtype)[None, :]
        caps = []
        prev_start = torch.full_like(timer[:, 0], -BIG)
        for i in range(p.G):
            warm_now = mode[:, i] == WARM
            run_now = mode[:, i] == RUN
            starting = on[:, i] & (mode[:, i] == OFF)
            # full capacity from minute `full`; warm-up output from `start` to `full`
            full = torch.where(run_now & on[:, i], 0.0, torch.where(warm_now, timer[:, i], float(p.warmup)))
            start = torch.where(run_now & on[:, i], -BIG, torch.where(warm_now, timer[:, i] - p.warmup, 0.0))
            not_on = ~on[:, i]
            # not committed now: earliest start decision (next minute, or when the cool-down ends)
            cool_left = torch.where(
                mode[:, i] == COOL, timer[:, i], torch.where(run_now, float(p.cooldown), 0.0)
            )  # stopped now: cools first
            s = torch.maximum(torch.maximum(cool_left, torch.ones_like(cool_left)), prev_start)
            start = torch.where(not_on, s, torch.where(starting, 0.0, start))
            full = torch.where(not_on, s + p.warmup, full)
            prev_start = torch.where(on[:, i], prev_start, start)
            c = torch.where(h >= full[:, None], p.rated, torch.where(h >= start[:, None], p.warmup_kw, 0.0))
            caps.append(c)
        return torch.stack(caps, 0).sum(0)

    def apply(self, state, proposal, trace):
        p = self.p
        soc = state["soc"]
        soft = proposal["gensets"]
        m_prop = soft.detach().round().clamp(0, p.G)
        net = self.worst_net(state)
        floor = p.soc_rmin if p.plan_with_reserve else p.soc_min
        energy = ((soc - floor) * p.b_cap).clamp_min(0)
        safe, rest, need = [], [], []
        for m in range(p.G + 1):
            on = self.group.commit(state, torch.full_like(m_prop, float(m)))
            short = (net - self.capacity(state, on)).clamp_min(0)
            ok = (short.amax(1) <= p.b_power + 1e-6) & (short.sum(1) / 60.0 <= energy + 1e-6)
            safe.append(ok)
            rest.append(short[:, 1:].sum(1))
            need.append(short.sum(1) / 60.0)
        safe_t = torch.stack(safe, 1)
        rest_t = torch.stack(rest, 1)
        need_t = torch.stack(need, 1)
        # near the rolling-average limit: commit every genset
        mode = state["mode"]
        committed = (mode == WARM) | (mode == RUN)
        near = (committed & (state["avg_sum"] / p.window >= p.avg_limit - p.avg_margin)).any(1)
        ms = torch.arange(p.G + 1, device=soc.device)[None, :]
        allowed = safe_t & (ms >= m_prop[:, None]) & (~near[:, None] | (ms == p.G))
        allowed = torch.where(allowed.any(1, keepdim=True), allowed, ms == p.G)
        m = (torch.where(allowed, ms, p.G + 1)).amin(1).to(soft.dtype)
        rest_m = rest_t.gather(1, m.long()[:, None])[:, 0]
        if trace is not None:
            self.note(
                trace,
                "gensets",
                m_prop,
                m,
                [
                    (near, "a genset's 48 h average load is near its limit: all gensets share the load"),
                    (
                        torch.ones_like(near),
                        f"worst case (demand +{p.ramp_d:g} kW/min, wind -{p.ramp_w_down:g} kW/min) "
                        f"over {p.horizon} min needs more gensets committed now",
                    ),
                ],
            )
        # straight-through: the agent's count keeps its gradient; a surrogate gradient says how the count
        # the shield forces falls as the battery holds more energy (a sigmoid of the energy margin at the
        # agent's own count), so that training sees the value of stored energy
        need_p = need_t.gather(1, m_prop.long()[:, None])[:, 0]
        margin = torch.sigmoid((need_p - energy) / p.surrogate_kwh)
        gap = (m_prop < p.G).to(soft.dtype) * p.surrogate_gain
        proposal["gensets"] = soft + (m - m_prop) + gap * (margin - margin.detach())
        proposal["gensets_count"] = m
        proposal["battery_max_kw"] = (energy * 60.0 - rest_m).clamp_min(0)
        if bool(near.any()):
            proposal["battery_min_kw"] = torch.where(near, torch.zeros_like(soc), torch.full_like(soc, -BIG))
        return proposal


def build_hierarchy(p: Params) -> MicrogridUnit:
    return MicrogridUnit(p)
