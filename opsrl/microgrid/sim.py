"""The remote microgrid: wind, diesel gensets and a battery, one-minute steps, batched over scenarios.

Timing of step ``t`` (one minute):

1. the controller sees the state: state of charge, each genset's mode and timers, its 48 h rolling
   average load, the demand and available wind of the previous minute, forecasts, time of day;
2. ``post_decision``: the full action is the genset commands (1 = be on), a battery set-point (kW,
   positive = discharge), a wind cap (kW) and deliberate load shedding (kW). With ``shielded = true``
   the agent proposes only the number of gensets and the battery set-point, and the shield hierarchy
   (:mod:`opsrl.microgrid.shields`) turns the proposal into a safe full action. Commands move the genset
   state machines: off -> warm-up (``warmup_minutes`` at a fixed ``warmup_kw``) -> running -> cool-down
   (``cooldown_minutes`` at 0 kW) -> off;
3. ``transition``: demand and wind of minute ``t`` are realised and the plant's real-time control
   balances them (:meth:`Microgrid.dispatch`): running gensets share the load equally within
   ``[min_load, rated]`` around the battery set-point; a deficit is covered by more battery discharge in
   the normal SoC band, then genset overload (the reserve), then the reserve SoC band, then it is
   unserved; a surplus by more battery charge in the normal band, then wind curtailment, then the reserve
   band, then a dump load (penalised). Fuel, degradation, penalties and the rolling averages follow.

Cost of a step (currency): ``fuel_price * litres + degradation + unserved_per_kwh * unserved kWh +
surplus_per_kwh * dumped kWh``; the last step also pays for the battery energy used over the episode
(``terminal_kwh_value * (E_0 - E_T)``, by default the fuel that energy is worth), so that no controller
gains by emptying the battery at the end of the day. The metric is the episode total (one day's cost).

The outcome of step ``t`` (per-genset output, battery power, wind used, unserved, dumped, fuel,
degradation) is stored in the next state under ``out_*`` keys, so ``rollout(record=True)`` records it
for the constraint checker and the plots.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..core import ActionSpec, Problem, Scenarios, State, generator
from ..shield import Trace, straight_through
from . import data as data_mod
from .params import Params, params_from
from .planning import terminal_value
from .rainflow import OnlineRainflow

OFF, WARM, RUN, COOL = 0, 1, 2, 3
OUT_KEYS = (
    "out_gen",
    "out_battery",
    "out_wind_used",
    "out_wind",
    "out_demand",
    "out_unserved",
    "out_dump",
    "out_fuel",
    "out_degradation",
    "out_shed",
)


class Microgrid(Problem):
    """Remote microgrid; see the module docstring. Build with :func:`build` from a config."""

    metric = "total"
    family = "microgrid"

    def __init__(self, cfg: Mapping[str, Any], source: str = "<config>", base_dir: Path | None = None, shield=None):
        self.cfg = cfg
        self.config = cfg
        self.p: Params = params_from(cfg)
        self.periods = int(cfg["periods"])
        self.warmup = 0
        self.shielded = bool(cfg["shielded"])
        self.test_scenarios = cfg["test"]["scenarios"]
        self.test_seed = cfg["test"]["seed"]
        self.test_periods = self.periods
        self.leads = list(cfg["forecast"]["leads"])
        self.name = "microgrid_remote"
        self.source = source
        self.rainflow = OnlineRainflow(self.p.depth_exp, self.p.rf_stack)
        self._file = None
        if cfg["data"]["source"] != "synthetic":
            self._file = data_mod.file_days(cfg, source, base_dir)
        G = self.p.G
        if self.shielded:
            # proposal in [0, 1]^2: fraction of the gensets to run, then (shield.proposal) the battery set-point
            # (0: full charge, 1: full discharge) or the load of each running genset (0: minimum, 1: rated)
            self.action_spec = ActionSpec("continuous", (2,), 0.0, 1.0)
        else:
            # full action in [0, 1]^(G+3): genset commands (>= 0.5: on), battery, wind cap, load shed fraction
            self.action_spec = ActionSpec("continuous", (G + 3,), 0.0, 1.0)
        self.action_scale = 1.0
        if shield is None and self.shielded:
            from .shields import build_hierarchy

            shield = build_hierarchy(self.p)
        self.shield = shield

    # --- scenarios -----------------------------------------------------------------------------
    def _sample(self, n: int, split: str, seed: int, periods: int) -> dict[str, torch.Tensor]:
        cfg, p = self.cfg, self.p
        length = periods + 1 + max(self.leads)
        if self._file is not None:
            demand, wind, start = data_mod.file_series(self._file, n, length, split, seed, periods)
        else:
            if periods >= data_mod.DAY:
                start = torch.zeros(n, dtype=torch.long)
            else:
                start = torch.randint(0, data_mod.DAY, (n,), generator=generator(seed, split, "start"))
            demand, wind = data_mod.synthetic_series(cfg, n, length, start, split, seed)
        fc_d = data_mod.forecasts(
            cfg, demand, periods, cfg["forecast"]["demand_error"], 0.0, p.d_max * 1.2, split, seed, "fc_demand"
        )
        fc_w = data_mod.forecasts(
            cfg, wind, periods, cfg["forecast"]["wind_error"], p.w_rated, p.w_rated, split, seed, "fc_wind"
        )
        g = generator(seed, split, "initial")
        h = cfg["history"]
        hist = p.rated * (
            h["low_fraction"]
            + (h["high_fraction"] - h["low_fraction"])
            * torch.rand(n, p.G, int(math.ceil(p.window / 60)), generator=g, dtype=torch.float64)
        )
        b = cfg["battery"]
        soc0 = b["initial_soc_low"] + (b["initial_soc_high"] - b["initial_soc_low"]) * torch.rand(
            n, generator=g, dtype=torch.float64
        )
        # initial gensets: the first one running (free to stop), the others off
        mode0 = torch.full((n, p.G), float(OFF), dtype=torch.float64)
        mode0[:, 0] = RUN
        run0 = torch.zeros(n, p.G, dtype=torch.float64)
        run0[:, 0] = p.min_run
        dt = self.dtype
        return {
            "demand": demand.to(dt),
            "wind": wind.to(dt),
            "fc_demand": fc_d.to(dt),
            "fc_wind": fc_w.to(dt),
            "start_minute": start.to(dt),
            "history": hist.to(dt),
            "soc0": soc0.to(dt),
            "mode0": mode0.to(dt),
            "timer0": torch.zeros(n, p.G, dtype=dt),
            "run0": run0.to(dt),
        }

    def sample(self, n, split, seed, periods=None, device="cpu") -> Scenarios:
        sc = super().sample(n, split, seed, periods, device)
        sc.meta["ramp_violations"] = data_mod.ramp_violations(
            sc["demand"][:, : sc.periods + 1],
            sc["wind"][:, : sc.periods + 1],
            self.p.ramp_d,
            self.p.ramp_w_down,
            self.p.d_max,
        )
        return sc

    # --- dynamics ------------------------------------------------------------------------------
    def initial_state(self, sc: Scenarios) -> State:
        p = self.p
        B = sc.n
        z = torch.zeros(B, dtype=sc["soc0"].dtype, device=sc.device)
        hist = sc["history"]
        state = {
            "soc": sc["soc0"],
            "mode": sc["mode0"],
            "timer": sc["timer0"],
            "run": sc["run0"],
            "avg_sum": hist.sum(dim=2) * 60.0 * (p.window / (60.0 * hist.shape[2])),
            "d_prev": sc["demand"][:, 0],
            "w_prev": sc["wind"][:, 0],
            "fc_d": sc["fc_demand"][:, 0],
            "fc_w": sc["fc_wind"][:, 0],
            "step": z.clone(),
            "tod": sc["start_minute"] % data_mod.DAY,
            **self.rainflow.init(sc["soc0"]),
        }
        state["out_gen"] = torch.zeros_like(sc["mode0"])
        state["out_mode"] = sc["mode0"]
        for k in OUT_KEYS[1:]:
            state[k] = z.clone()
        return state

    def full_action(self, state: State, action: torch.Tensor, trace: Trace | None = None) -> dict[str, torch.Tensor]:
        """The full action of a step: the shield's output (shielded) or the raw action decoded."""
        p = self.p
        a = action.reshape(action.shape[0], -1)
        if self.shielded:
            proposal = {"gensets": a[:, 0] * p.G}
            if p.proposal == "genset_load":
                proposal["genset_load"] = a[:, 1]
            else:
                proposal["battery_kw"] = (2 * a[:, 1] - 1) * p.b_power
            return self.shield(state, proposal, trace)
        cmd = straight_through((a[:, : p.G] >= 0.5).to(a.dtype), a[:, : p.G])
        return {
            "cmd": cmd,
            "battery_kw": (2 * a[:, p.G] - 1) * p.b_power,
            "wind_cap_kw": a[:, p.G + 1] * p.w_rated,
            "shed_kw": a[:, p.G + 2] * p.d_max,
        }

    def post_decision(self, state: State, action: torch.Tensor) -> tuple[State, torch.Tensor]:
        full = self.full_action(state, action)
        return self.apply_commands(state, full), torch.zeros(
            action.shape[0], dtype=state["soc"].dtype, device=action.device
        )

    def apply_commands(self, state: State, full: Mapping[str, torch.Tensor]) -> State:
        """Move the genset state machines by the commands (obediently: the rules are the shield's job)."""
        p = self.p
        mode, timer, run = state["mode"], state["timer"], state["run"]
        on = full["cmd"].detach() >= 0.5
        start = (mode == OFF) & on
        abort = (mode == WARM) & ~on
        stop = (mode == RUN) & ~on
        restart = (mode == COOL) & on
        new_mode = mode.clone()
        new_timer = timer.clone()
        new_run = run.clone()
        if p.warmup > 0:
            new_mode = torch.where(start, float(WARM), new_mode)
            new_timer = torch.where(start, float(p.warmup), new_timer)
        else:
            new_mode = torch.where(start, float(RUN), new_mode)
        new_run = torch.where(start | restart, 0.0, new_run)
        new_mode = torch.where(abort, float(OFF), new_mode)
        new_timer = torch.where(abort, 0.0, new_timer)
        if p.cooldown > 0:
            new_mode = torch.where(stop, float(COOL), new_mode)
            new_timer = torch.where(stop, float(p.cooldown), new_timer)
        else:
            new_mode = torch.where(stop, float(OFF), new_mode)
        new_mode = torch.where(restart, float(RUN), new_mode)
        new_timer = torch.where(restart, 0.0, new_timer)
        post = dict(state)
        post.update(
            mode=new_mode,
            timer=new_timer,
            run=new_run,
            cmd=full["cmd"],
            b_set=full["battery_kw"],
            w_cap=full.get("wind_cap_kw", torch.full_like(state["soc"], p.w_rated)),
            shed=full.get("shed_kw", torch.zeros_like(state["soc"])),
        )
        return post

    def battery_limits(self, soc: torch.Tensor) -> dict[str, torch.Tensor]:
        """Discharge (``d_*``) and charge (``c_*``) power limits, kW, for one minute from ``soc``."""
        p = self.p
        e = p.b_cap * 60.0
        return {
            "d_n": ((soc - p.soc_min) * e).clamp(0, p.b_power),
            "d_r": ((soc - p.soc_rmin) * e).clamp(0, p.b_power),
            "d_phys": (soc * e).clamp(0, p.b_power),
            "c_n": ((p.soc_max - soc) * e / p.eta).clamp(0, p.b_power),
            "c_r": ((p.soc_rmax - soc) * e / p.eta).clamp(0, p.b_power),
            "c_phys": ((1 - soc) * e / p.eta).clamp(0, p.b_power),
        }

    def dispatch(self, post: State, demand: torch.Tensor, wind: torch.Tensor) -> dict[str, torch.Tensor]:
        """The plant's real-time balancing of minute ``t`` (see the module docstring for the order)."""
        p = self.p
        mode, soc = post["mode"], post["soc"]
        running = (mode == RUN).to(soc.dtype)
        warming = (mode == WARM).to(soc.dtype)
        k = running.sum(1)
        lim = self.battery_limits(soc)
        b0 = torch.maximum(torch.minimum(post["b_set"], lim["d_phys"]), -lim["c_phys"])
        shed = torch.minimum(post["shed"].clamp_min(0), demand)
        load = demand - shed
        w = torch.minimum(wind, post["w_cap"].clamp_min(0))
        fixed = warming.sum(1) * p.warmup_kw
        R = load - w - fixed - b0
        ks = k.clamp_min(1)
        g = torch.where(k > 0, (R / ks).clamp(p.min_load, p.rated), torch.zeros_like(R))
        e = R - k * g
        deficit, surplus = e.clamp_min(0), (-e).clamp_min(0)
        x1 = torch.minimum(deficit, (lim["d_n"] - b0).clamp_min(0))
        r1 = deficit - x1
        x2 = torch.minimum(r1, k * p.overload)
        r2 = r1 - x2
        x3 = torch.minimum(r2, (lim["d_r"] - b0 - x1).clamp_min(0))
        unserved = r2 - x3
        y1 = torch.minimum(surplus, (b0 + lim["c_n"]).clamp_min(0))
        s1 = surplus - y1
        y2 = torch.minimum(s1, w)
        s2 = s1 - y2
        y3 = torch.minimum(s2, (b0 - y1 + lim["c_r"]).clamp_min(0))
        dump = s2 - y3
        battery = b0 + x1 + x3 - y1 - y3
        per = g + x2 / ks
        gen = running * per[:, None] + warming * p.warmup_kw
        return {
            "gen": gen,
            "battery": battery,
            "wind_used": w - y2,
            "unserved": unserved + shed,
            "dump": dump,
            "shed": shed,
            "b0": b0,
        }

    def transition(self, post: State, sc: Scenarios, t: int) -> tuple[State, torch.Tensor]:
        p = self.p
        d = sc["demand"][:, t + 1]
        wa = sc["wind"][:, t + 1]
        out = self.dispatch(post, d, wa)
        soc = post["soc"]
        b = out["battery"]
        soc_next = soc - b.clamp_min(0) / (60.0 * p.b_cap) + p.eta * (-b).clamp_min(0) / (60.0 * p.b_cap)
        mode = post["mode"]
        on = (mode != OFF).to(soc.dtype)
        cmd = post["cmd"]
        on_ste = on + (cmd - cmd.detach())  # straight-through: the idle fuel's gradient reaches the commitment
        fuel = (p.fuel_a * out["gen"] + p.fuel_b * on_ste).sum(1) / 60.0
        # degradation
        mode_deg = p.degradation
        if mode_deg == "auto":
            mode_deg = "surrogate" if torch.is_grad_enabled() else "rainflow"
        scale = p.repl_cost / p.cycle_life
        final = t == sc.periods - 1
        rf = {k: post[k] for k in ("rf_stack", "rf_len", "rf_last", "rf_dir")}
        if mode_deg == "rainflow":
            rf, dmg = self.rainflow.step(rf, soc_next, final=final)
            deg = scale * dmg
        else:
            deg = scale * 0.5 * (soc_next - soc).abs()
        cost = (
            p.fuel_price * fuel
            + p.wear_weight * deg
            + p.unserved_cost * out["unserved"] / 60.0
            + p.surplus_cost * out["dump"] / 60.0
        )
        if final:  # energy taken from (or left in) the battery over the episode, at its fuel value
            cost = cost + terminal_value(p) * (sc["soc0"] - soc_next) * p.b_cap
        # genset timers and rolling averages
        running = mode == RUN
        warming = mode == WARM
        cooling = mode == COOL
        timer = post["timer"] - (warming | cooling).to(soc.dtype)
        done_warm = warming & (timer <= 0)
        done_cool = cooling & (timer <= 0)
        new_mode = torch.where(done_warm, float(RUN), torch.where(done_cool, float(OFF), mode))
        timer = torch.where(done_warm | done_cool, 0.0, timer)
        run = torch.where(running, post["run"] + 1, post["run"])
        run = torch.where(done_warm, 0.0, run)
        hist = sc["history"]
        drop = hist[:, :, min(t // 60, hist.shape[2] - 1)]
        avg_sum = post["avg_sum"] + out["gen"] - drop
        nxt = min(t + 1, sc.periods - 1)
        state = {
            "soc": soc_next,
            "mode": new_mode,
            "timer": timer,
            "run": run,
            "avg_sum": avg_sum,
            "d_prev": d,
            "w_prev": wa,
            "fc_d": sc["fc_demand"][:, nxt],
            "fc_w": sc["fc_wind"][:, nxt],
            "step": post["step"] + 1,
            "tod": (post["tod"] + 1) % data_mod.DAY,
            **rf,
            "out_gen": out["gen"],
            "out_battery": b,
            "out_wind_used": out["wind_used"],
            "out_wind": wa,
            "out_demand": d,
            "out_unserved": out["unserved"],
            "out_dump": out["dump"],
            "out_fuel": fuel,
            "out_degradation": deg,
            "out_shed": out["shed"],
            "out_mode": mode,
        }
        return state, cost

    # --- views ---------------------------------------------------------------------------------
    def observe(self, state: State) -> torch.Tensor:
        p = self.p
        mode = state["mode"]
        onehot = torch.stack([(mode == m).to(state["soc"].dtype) for m in (OFF, WARM, RUN, COOL)], dim=2).flatten(1)
        ang = 2 * math.pi * state["tod"] / data_mod.DAY
        return torch.cat(
            [
                state["soc"][:, None],
                onehot,
                state["timer"] / 10.0,
                (state["run"] / max(p.min_run, 1)).clamp(max=2.0),
                state["avg_sum"] / (p.window * p.avg_limit),
                (state["d_prev"] / p.d_max)[:, None],
                (state["w_prev"] / p.w_rated)[:, None],
                state["fc_d"] / p.d_max,
                state["fc_w"] / p.w_rated,
                torch.sin(ang)[:, None],
                torch.cos(ang)[:, None],
            ],
            dim=1,
        )

    def observe_post(self, post: State) -> torch.Tensor:
        """Post-decision features (for PDPPO's second critic): :meth:`observe` of the state after the commands
        (genset modes and timers moved by them) and the battery set-point the shields settled on."""
        return torch.cat([self.observe(post), (post["b_set"] / self.p.b_power)[:, None]], dim=1)

    def describe(self) -> str:
        p = self.p
        return (
            f"remote microgrid: {p.G} x {p.rated:g} kW gensets, battery {p.b_power:g} kW / {p.b_cap:g} kWh, "
            f"wind {p.w_rated:g} kW, demand up to {p.d_max:g} kW, {self.periods} one-minute steps"
            + (", shielded" if self.shielded else ", unshielded")
        )

    def explain(self, policy, scenarios: Scenarios, step: int, index: int = 0) -> list[str]:
        """Run ``policy`` to ``step`` and return which shield unit changed the proposal there, and why."""
        if not self.shielded:
            raise ValueError("explain needs a shielded problem")
        with torch.no_grad():
            state = self.initial_state(scenarios)
            for t in range(step + 1):
                action = policy(state, t)
                if t == step:
                    trace = Trace()
                    self.full_action(state, action, trace)
                    return trace.explain(index) or ["no unit changed the proposal"]
                post, _ = self.post_decision(state, action)
                state, _ = self.transition(post, scenarios, t)
        return []


def build(config: Mapping[str, Any], source: str) -> Microgrid:
    from .params import check_config

    cfg = check_config(config, source)
    return Microgrid(cfg, source)  # a relative data.path starts at the problem file's folder
