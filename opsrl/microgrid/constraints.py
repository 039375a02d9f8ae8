"""An independent checker of every microgrid operating rule, from the recorded trajectory only.

It shares no code with the shields or the plant's dispatch: it reads what happened in each minute (the
genset modes during the minute, outputs, battery power, state of charge before and after, wind, demand,
unserved and dumped energy) and the scenario's history, keeps its own genset counters and rolling-average
sums, and counts violations by constraint name:

* ``genset{i}.warmup``: a start goes through exactly ``warmup_minutes`` of warm-up at ``warmup_kw``;
* ``genset{i}.cooldown``: a stop goes through exactly ``cooldown_minutes`` at 0 kW; no restart meanwhile;
* ``genset{i}.min_run_time``: a genset runs ``min_run_minutes`` before it is stopped;
* ``genset.priority``: the gensets that are warming up or running are always a prefix of the priority order;
* ``genset.equal_share``: running gensets carry equal loads;
* ``genset.min_load``, ``genset.max_load``: running output within ``[min_load, rated * (1 + overload)]``;
  off and cooling gensets produce nothing (counted under ``genset{i}.cooldown``/``genset.off_output``);
* ``genset.reserve_only``: output above rated only when the battery's normal-band discharge is exhausted;
* ``genset.rolling_average``: the 48 h average load of each genset stays within its limit;
* ``battery.power``, ``battery.soc_band`` (reserve band), ``battery.dynamics`` (state of charge follows the
  power with the charge efficiency), ``battery.reserve_only``: the state of charge moves outside the
  normal band only when nothing else is left (discharge: gensets at their overload limit; charge: wind
  fully curtailed and running gensets at minimum load);
* ``wind.curtail_only_surplus``: wind is curtailed only when the battery charges at its normal-band limit
  and running gensets are at minimum load;
* ``demand.served`` (no unserved energy), ``demand.no_shedding``;
* ``energy_balance``: demand - unserved = wind used + gensets + battery - dumped.

Counts are (scenario, minute) pairs in violation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import torch

OFF, WARM, RUN, COOL = 0, 1, 2, 3


class ConstraintChecker:
    """Feed it ``(before, after, t)`` for every step (``after`` holds the step's outcome); read ``counts``."""

    def __init__(
        self,
        params,
        history: torch.Tensor,
        initial: Mapping[str, torch.Tensor],
        kw_tol: float = 1e-2,
        soc_tol: float = 1e-5,
    ):
        self.p = params
        self.kw, self.stol = kw_tol, soc_tol
        self.history = history.double()
        self.counts: Counter = Counter()
        mode0 = initial["mode"].long()
        self.prev = mode0.clone()
        self.warm_left = torch.where(
            mode0 == WARM, initial["timer"].double(), torch.zeros_like(initial["timer"].double())
        )
        self.cool_left = torch.where(
            mode0 == COOL, initial["timer"].double(), torch.zeros_like(initial["timer"].double())
        )
        self.run_len = initial["run"].double().clone()
        self.window_sum = self.history.sum(dim=2) * 60.0 * (params.window / (60.0 * history.shape[2]))
        B = mode0.shape[0]
        self.fuel = torch.zeros(B, dtype=torch.float64)
        self.unserved_kwh = torch.zeros(B, dtype=torch.float64)
        self.dump_kwh = torch.zeros(B, dtype=torch.float64)
        self.by_scenario = torch.zeros(B, dtype=torch.long)
        # minutes in which a reserve was drawn (genset overload, or discharge below the normal SoC band):
        # allowed, but with plan_with_reserve off the shield plans never to need them within the ramp limits
        self.reserve_minutes = torch.zeros(B, dtype=torch.long)

    def _count(self, name: str, bad: torch.Tensor) -> None:
        n = int(bad.sum())
        if n:
            self.counts[name] += n
            self.by_scenario += bad.long()

    def update(self, before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor], t: int) -> None:
        p, kw, stol = self.p, self.kw, self.stol
        mode = after["out_mode"].long()
        gen = after["out_gen"].double()
        b = after["out_battery"].double()
        soc0, soc1 = before["soc"].double(), after["soc"].double()
        wu, wa = after["out_wind_used"].double(), after["out_wind"].double()
        d, un, dump = after["out_demand"].double(), after["out_unserved"].double(), after["out_dump"].double()
        shed = after["out_shed"].double()
        G = p.G
        # --- genset state machines (own counters) ---
        for i in range(G):
            pm, m = self.prev[:, i], mode[:, i]
            name = f"genset{i + 1}"
            self._count(
                f"{name}.warmup",
                ((pm == OFF) & (m == RUN) & (p.warmup > 0))
                | ((pm == WARM) & (m == WARM) & (self.warm_left[:, i] <= 0))
                | ((pm == WARM) & (m == RUN) & (self.warm_left[:, i] > 0))
                | ((pm == WARM) & (m == OFF))
                | ((pm == RUN) & (m == WARM))
                | ((m == WARM) & ((gen[:, i] - p.warmup_kw).abs() > kw)),
            )
            self._count(
                f"{name}.cooldown",
                ((pm == RUN) & (m == OFF) & (p.cooldown > 0))
                | ((pm == COOL) & (m == COOL) & (self.cool_left[:, i] <= 0))
                | ((pm == COOL) & (m == OFF) & (self.cool_left[:, i] > 0))
                | ((pm == COOL) & (m == WARM) & (self.cool_left[:, i] > 0))
                | ((pm == COOL) & (m == RUN) & ((self.cool_left[:, i] > 0) | (p.warmup > 0)))
                | ((pm == OFF) & (m == COOL))
                | ((m == COOL) & (gen[:, i].abs() > kw)),
            )
            self._count(
                f"{name}.min_run_time",
                ((pm == RUN) & ((m == COOL) | (m == OFF)) & (self.run_len[:, i] < p.min_run))
                | ((pm == WARM) & (m == COOL)),
            )
            started = ((pm == OFF) | ((pm == COOL) & (self.cool_left[:, i] <= 0))) & (m == WARM)
            self.warm_left[:, i] = torch.where(started, float(p.warmup), self.warm_left[:, i])
            self.cool_left[:, i] = torch.where((pm == RUN) & (m == COOL), float(p.cooldown), self.cool_left[:, i])
            self.run_len[:, i] = torch.where((pm != RUN) & (m == RUN), 0.0, self.run_len[:, i])
            self.warm_left[:, i] -= (m == WARM).double()
            self.cool_left[:, i] -= (m == COOL).double()
            self.run_len[:, i] += (m == RUN).double()
        self.prev = mode
        committed = (mode == WARM) | (mode == RUN)
        prefix_bad = torch.zeros_like(committed[:, 0])
        for i in range(1, G):
            prefix_bad |= committed[:, i] & ~committed[:, i - 1]
        self._count("genset.priority", prefix_bad)
        running = mode == RUN
        self._count("genset.off_output", ((mode == OFF) & (gen.abs() > kw)).any(1))
        rg = torch.where(running, gen, torch.nan)
        spread = torch.nan_to_num(rg, nan=-1e18).amax(1) - torch.nan_to_num(rg, nan=1e18).amin(1)
        self._count("genset.equal_share", (running.sum(1) > 1) & (spread > kw))
        self._count("genset.min_load", (running & (gen < p.min_load - kw)).any(1))
        self._count("genset.max_load", (running & (gen > p.rated + p.overload + kw)).any(1))
        e = p.b_cap * 60.0
        d_normal = ((soc0 - p.soc_min) * e).clamp(0, p.b_power)
        over = (running & (gen > p.rated + kw)).any(1)
        self._count("genset.reserve_only", over & (b < d_normal - kw))
        hour = min(t // 60, self.history.shape[2] - 1)
        self.window_sum = self.window_sum + gen - self.history[:, :, hour]
        self._count("genset.rolling_average", (self.window_sum / p.window > p.avg_limit + 1e-6).any(1))
        # --- battery ---
        self._count("battery.power", b.abs() > p.b_power + kw)
        self._count("battery.soc_band", (soc1 < p.soc_rmin - stol) | (soc1 > p.soc_rmax + stol))
        expect = soc0 - b.clamp_min(0) / e + p.eta * (-b).clamp_min(0) / e
        self._count("battery.dynamics", (expect - soc1).abs() > 1e-4)
        at_over = torch.where(running, gen >= p.rated + p.overload - kw, True).all(1)
        at_min = torch.where(running, gen <= p.min_load + kw, True).all(1)
        into_low = (b > kw) & (soc1 < p.soc_min - stol)
        into_high = (b < -kw) & (soc1 > p.soc_max + stol)
        self._count("battery.reserve_only", (into_low & ~at_over) | (into_high & ~((wu <= kw) & at_min)))
        self.reserve_minutes += (over | into_low).long()
        # --- wind, demand, balance ---
        c_normal = ((p.soc_max - soc0) * e / p.eta).clamp(0, p.b_power)
        curtailed = wu < wa - kw
        self._count(
            "wind.curtail_only_surplus", (wu < -kw) | (wu > wa + kw) | (curtailed & ~((b <= -c_normal + kw) & at_min))
        )
        self._count("demand.served", un > kw)
        self._count("demand.no_shedding", shed > kw)
        self._count("energy_balance", ((d - un) - (wu + gen.sum(1) + b - dump)).abs() > 10 * kw)
        on = (mode != OFF).double()
        self.fuel += ((p.fuel_a * gen + p.fuel_b * on).sum(1)) / 60.0
        self.unserved_kwh += un / 60.0
        self.dump_kwh += dump / 60.0

    @property
    def total(self) -> int:
        return int(sum(self.counts.values()))


@torch.no_grad()
def check_rollout(problem, policy, scenarios, periods: int | None = None) -> ConstraintChecker:
    """Roll ``policy`` through ``problem`` (streaming, nothing stored) and check every step."""
    periods = periods or scenarios.periods
    state = problem.initial_state(scenarios)
    checker = ConstraintChecker(problem.p, scenarios["history"], state)
    for t in range(periods):
        action = policy(state, t)
        post, _ = problem.post_decision(state, action)
        nxt, _ = problem.transition(post, scenarios, t)
        checker.update(state, nxt, t)
        state = nxt
    return checker


def check_states(params, history: torch.Tensor, states: Iterable[Mapping[str, torch.Tensor]]) -> ConstraintChecker:
    """Check a recorded trajectory: ``states`` are the states at t = 0 .. T (the last is the final state)."""
    states = list(states)
    checker = ConstraintChecker(params, history, states[0])
    for t in range(len(states) - 1):
        checker.update(states[t], states[t + 1], t)
    return checker
