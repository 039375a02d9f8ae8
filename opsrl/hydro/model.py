"""The hydro-thermal dispatch problem: reservoirs in cascades, thermal units and a DC network, one LP per stage.

The stage problem (stated once, :meth:`Hydro.stage_lp`; the same model the source exports from
HydroPowerModels.jl as ``DCPPowerModel.mof.json``, see docs/hydro.md)::

    minimise   hours * ( sum_g c_g pg_g + sum_h c_h pf_h q_h / baseMVA + cost_deficit * baseMVA * sum_n def_n )
               + sum_h spill_cost_h s_h  [ - final_water_value * sum_h v_h   at the last stage ]
    subject to v_h + k q_h + s_h - k sum_{j -> h turbined} q_j - sum_{j -> h spilled} s_j = v_in_h + k inflow_h
               sum_{g at n} pg_g + sum_{h at n} pf_h q_h / baseMVA
                 + def_n + sum_{l into n} p_l - sum_{l out of n} p_l = pd_n
               p_l = b_l (va_from(l) - va_to(l)),   angmin_l <= va_from(l) - va_to(l) <= angmax_l
               vmin <= v <= vmax, 0 <= q <= min(max_turn, pmax baseMVA / pf), s >= 0, pmin <= pg <= pmax,
               def >= 0, |p_l| <= rate_a_l, va = 0 at one reference bus per island

with ``k = 0.0036 * stage_hours`` (one m3/s over one hour is 0.0036 hm3), volumes ``v`` (end of stage) and
spill ``s`` in hm3, turbined outflow ``q`` in m3/s, powers in p.u. The inflow of a stage is known when the
stage is decided (it is in the state). Scenarios draw each stage's inflow row on its own, with the stage's
probabilities (one scenario index for all reservoirs, as the source does, which keeps their spatial
correlation); an AR(1) model fitted to the inflow table is an option (``inflow_model = "ar1"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..core import ActionSpec, ConfigError, Field, Problem, Scenarios, State, numpy_rng, validate
from ..core.config import size
from ..core.lp import LP, LPSolution, StageLP, solve
from .cases import Case, case_folder, load_case

K_HM3 = 0.0036  # hm3 per (m3/s x hour)

SCHEMA: dict[str, Field] = {
    "case": Field(str, allowed="a bundled case (case3, bolivia) or a case folder"),
    "stages": size(
        0,
        10_000,
        low=0,
        allowed="an integer from 0 (the inflow file's rows) to 10000",
        doc="stages of an episode; longer than the inflow file cycles its rows",
    ),
    "stage_hours": Field(
        float, 0.0, allowed="a positive number of hours (0: hydro.json's stage_hours)", check=lambda v: v >= 0
    ),
    "load_scale": Field(float, 1.0, allowed="a positive multiplier of every load", check=lambda v: v > 0),
    "demand_file": Field(bool, False, doc="read per-bus loads per stage from the case's _demand.csv"),
    "deficit": Field(bool, True, doc="allow unserved load at cost_deficit (at every bus, as the source)"),
    "inflow_model": Field(str, "independent", choices=("independent", "ar1")),
    "initial_volume": Field(
        list, [], item=float, allowed="a list of one volume (hm3) per reservoir, or [] for hydro.json's"
    ),
    "final_water_value": Field(float, 0.0, allowed="a value per hm3 left at the end (>= 0)", check=lambda v: v >= 0),
    "target_penalty": Field(
        float,
        0.0,
        allowed="a penalty per hm3 of |volume - target| (0: the largest cost "
        "coefficient of the stage LP, as DecisionRules.jl's :auto)",
        check=lambda v: v >= 0,
    ),
    "sdp_points": size(541, 100_000, low=3, doc="volumes of the SDP grid behind the reference of one-reservoir cases"),
    "test_scenarios": size(1000, 100_000),
    "test_seed": Field(int, 0, allowed="an integer >= 0", check=lambda v: v >= 0),
}


class Hydro(Problem):
    """Long-term hydro-thermal dispatch on a DC network; the state is ``volume`` [B, H] (start of stage),
    ``inflow`` [B, H] (this stage's, m3/s) and ``t`` [B] (stage index)."""

    family = "hydro"
    metric = "total"
    dtype = torch.float64

    def __init__(self, case: Case, cfg: Mapping[str, Any], source: str = "<problem>"):
        self.case, self.cfg, self.config, self.source = case, dict(cfg), dict(cfg), source
        c = case
        self.H, self.N, self.G, self.L = c.H, c.N, c.G, c.L
        self.periods = int(cfg["stages"]) or c.rows
        self.hours = float(cfg["stage_hours"]) or c.stage_hours
        self.k = K_HM3 * self.hours
        self.test_scenarios = int(cfg["test_scenarios"])
        self.test_seed = int(cfg["test_seed"])
        self.action_spec = ActionSpec("continuous", (c.H,), 0.0, 1.0)
        self.action_scale = 0.5
        self.n_locations = 1
        v0 = cfg["initial_volume"]
        if v0:
            if len(v0) != c.H:
                raise ConfigError(source, "initial_volume", f"{len(v0)} values; one per reservoir ({c.H}) is required")
            v0 = np.asarray(v0, dtype=np.float64)
            bad = np.nonzero((v0 < c.vmin) | (v0 > c.vmax))[0]
            if len(bad):
                i = int(bad[0])
                raise ConfigError(
                    source, f"initial_volume[{i}]", f"{v0[i]:g} is outside [{c.vmin[i]:g}, {c.vmax[i]:g}]"
                )
            self.v0 = v0
        else:
            self.v0 = c.v0.copy()
        self.inflow_model = cfg["inflow_model"]
        if self.inflow_model == "ar1":
            self.ar1 = fit_ar1(c.inflow)
        self._build()
        pen = float(cfg["target_penalty"])
        self.target_penalty = pen if pen > 0 else float(self._c.abs().max())

    # --- the stage LP, built once --------------------------------------------------------------
    def _build(self) -> None:
        c, H, N, G, L = self.case, self.H, self.N, self.G, self.L
        base, hours, k = c.base_mva, self.hours, self.k
        self.cols = cols = {}
        o = 0
        for name, w in (
            ("volume", H),
            ("turbine", H),
            ("spill", H),
            ("thermal", G),
            ("deficit", N),
            ("angle", N),
            ("flow", L),
        ):
            cols[name] = slice(o, o + w)
            o += w
        n = o
        self.rows = rows = {}
        o = 0
        for name, w in (("water", H), ("bus", N), ("ohm", L), ("angle", L)):
            rows[name] = slice(o, o + w)
            o += w
        m = o
        A = np.zeros((m, n))
        cv, cq, cs, cg = (np.arange(n)[cols[x]] for x in ("volume", "turbine", "spill", "thermal"))
        cd, ca, cp = (np.arange(n)[cols[x]] for x in ("deficit", "angle", "flow"))
        rw, rb, ro, rg = (np.arange(m)[rows[x]] for x in ("water", "bus", "ohm", "angle"))
        # water balance
        A[rw, cv] = 1.0
        A[rw, cq] = k
        A[rw, cs] = 1.0
        for j in range(H):
            for h in c.down_turn[j]:
                A[rw[h], cq[j]] -= k
            for h in c.down_spill[j]:
                A[rw[h], cs[j]] -= 1.0
        # bus balance
        A[rb[c.gen_bus], cg] = 1.0
        has = c.hydro_bus >= 0
        self.mw_per_flow = np.where(has, c.production_factor, 0.0)  # MW per m3/s of each plant
        A[rb[c.hydro_bus[has]], cq[has]] = c.production_factor[has] / base
        A[rb, cd] = 1.0
        A[rb[c.br_to], cp] += 1.0
        A[rb[c.br_from], cp] -= 1.0
        # Ohm's law and angle differences
        A[ro, cp] = 1.0
        A[ro, ca[c.br_from]] = -c.br_b
        A[ro, ca[c.br_to]] = c.br_b
        A[rg, ca[c.br_from]] = 1.0
        A[rg, ca[c.br_to]] = -1.0
        # costs (per stage)
        cost = np.zeros(n)
        cost[cg] = c.gen_cost * hours
        cost[cq] = np.where(has, c.hydro_cost * c.production_factor / base, 0.0) * hours
        cost[cs] = c.spill_cost
        cost[cd] = c.cost_deficit * base * hours
        self.const = float(c.gen_const.sum() + c.hydro_const[has].sum()) * hours
        # bounds
        lb, ub = np.zeros(n), np.zeros(n)
        lb[cv], ub[cv] = c.vmin, c.vmax
        qmax = np.where(
            has & (c.production_factor > 0),
            np.minimum(c.max_turn, c.hydro_pmax * base / np.maximum(c.production_factor, 1e-300)),
            c.max_turn,
        )
        lb[cq] = np.where(
            has & (c.production_factor > 0), c.hydro_pmin * base / np.maximum(c.production_factor, 1e-300), 0
        )
        ub[cq] = qmax
        lb[cs], ub[cs] = 0.0, math.inf
        lb[cg], ub[cg] = c.gen_pmin, c.gen_pmax
        lb[cd], ub[cd] = 0.0, (math.inf if self.cfg["deficit"] else 0.0)
        lb[ca], ub[ca] = -math.inf, math.inf
        lb[ca[c.ref_buses]], ub[ca[c.ref_buses]] = 0.0, 0.0
        lb[cp], ub[cp] = -c.br_rate, c.br_rate
        lo, hi = np.zeros(m), np.zeros(m)
        lo[rg], hi[rg] = c.br_angmin, c.br_angmax
        # loads per bus (p.u.), per stage row of the demand file if used
        pd = np.zeros(N)
        np.add.at(pd, c.load_bus, c.load_pd)
        self.pd_rows = (c.demand if c.demand is not None else pd[None, :]) * float(self.cfg["load_scale"])
        S = np.zeros((m, H))
        S[rw, np.arange(H)] = 1.0
        t = lambda a: torch.as_tensor(a, dtype=torch.float64)
        self._A, self._c, self._lb, self._ub, self._lo, self._hi, self._S = (
            t(A),
            t(cost),
            t(lb),
            t(ub),
            t(lo),
            t(hi),
            t(S),
        )
        self._n, self._m = n, m
        self._state_out = torch.as_tensor(cv, dtype=torch.long)
        self.vmin_t, self.vmax_t = t(c.vmin), t(c.vmax)

    def row_of(self, t: int) -> int:
        """The inflow row of stage ``t`` (the file's rows cycle, as DecisionRules.jl's read_inflow)."""
        return t % self.case.rows

    def loads(self, t: int) -> np.ndarray:
        return self.pd_rows[t % self.pd_rows.shape[0]]

    def stage_lp(self, state: State, scenarios: Scenarios | None = None, t: int | None = None) -> StageLP:
        """The LP of stage ``t`` (default: the state's ``t``) given the state's volumes and this stage's inflow."""
        v, w = state["volume"], state["inflow"]
        if t is None:
            t = int(state["t"].reshape(-1)[0].item())
        B, dev, dt = v.shape[0], v.device, v.dtype
        like = dict(device=dev, dtype=dt)
        rw, rb = self.rows["water"], self.rows["bus"]
        lo = self._lo.to(**like).expand(B, -1).clone()
        hi = self._hi.to(**like).expand(B, -1).clone()
        water = v + self.k * w
        lo[:, rw] = water
        hi[:, rw] = water
        pd = torch.as_tensor(self.loads(t), **like)
        lo[:, rb] = pd
        hi[:, rb] = pd
        c = self._c.to(**like).expand(B, -1).clone()
        if t == self.periods - 1 and self.cfg["final_water_value"] > 0:
            c[:, self.cols["volume"]] -= self.cfg["final_water_value"]
        lp = LP(
            c=c,
            A=self._A.to(**like),
            row_lo=lo,
            row_hi=hi,
            lb=self._lb.to(**like).expand(B, -1).clone(),
            ub=self._ub.to(**like).expand(B, -1).clone(),
            const=torch.full((B,), self.const, **like),
        )
        return StageLP(lp, v, self._S.to(**like), self._state_out.to(dev), dict(self.cols))

    def stage_post(self, state: State, stage: StageLP, sol: LPSolution, t: int | None = None) -> State:
        v = torch.minimum(torch.maximum(stage.outgoing(sol), self.vmin_t.to(sol.x)), self.vmax_t.to(sol.x))
        return {"volume": v, "inflow": state["inflow"], "t": state["t"]}

    def stage_cost(self, stage: StageLP, sol: LPSolution) -> torch.Tensor:
        """The stage's cost proper (without any target penalty or future-cost columns)."""
        n = self._n
        return (stage.lp.c[:, :n] * sol.x[:, :n]).sum(1) + (stage.lp.const if stage.lp.const is not None else 0.0)

    def stage_record(self, stage: StageLP, sol: LPSolution) -> dict[str, torch.Tensor]:
        x, c, b, h = sol.x, stage.lp.c, self.case.base_mva, self.hours
        g, d, q, s = (self.cols[k] for k in ("thermal", "deficit", "turbine", "spill"))
        mw = torch.as_tensor(self.mw_per_flow, dtype=x.dtype, device=x.device)
        return {
            "thermal_cost": (c[:, g] * x[:, g]).sum(1) + float(self.case.gen_const.sum()) * h,
            "deficit_mwh": x[:, d].sum(1) * b * h,
            "spill": x[:, s].sum(1),
            "thermal_mwh": x[:, g].sum(1) * b * h,
            "hydro_mwh": (x[:, q] * mw).sum(1) * h,
        }

    def target_bounds(self, state: State) -> tuple[torch.Tensor, torch.Tensor]:
        v = state["volume"]
        B = v.shape[0]
        return self.vmin_t.to(v).expand(B, -1), self.vmax_t.to(v).expand(B, -1)

    def target_of(self, state: State, action: torch.Tensor) -> torch.Tensor:
        lo, hi = self.target_bounds(state)
        return lo + action.to(lo).clamp(0.0, 1.0) * (hi - lo)

    def solve_stage(self, stage: StageLP, backend: str = "highs") -> LPSolution:
        """Solve a stage LP (HiGHS: one warm model across the batch); refuse a non-optimal one."""
        sol = solve(stage.lp, backend)
        if not sol.optimal:
            bad = [s for s in sol.status if s != "optimal"]
            raise RuntimeError(
                f"{self.name}: a stage LP is not optimal ({bad[0]}, {len(bad)} of {len(sol.status)}); "
                "with deficit = false the load may exceed what the units can serve"
            )
        return sol

    # --- the contract --------------------------------------------------------------------------
    def _sample(self, n: int, split: str, seed: int, periods: int) -> dict[str, torch.Tensor]:
        c = self.case
        rng = numpy_rng(seed, split, "inflow")
        rows = np.arange(periods) % c.rows
        if self.inflow_model == "ar1":
            w = sample_ar1(self.ar1, rows, n, rng)
            omega = np.full((n, periods), -1)
        else:
            u = rng.random((n, periods))
            cdf = np.cumsum(c.prob[rows], axis=1)  # [T, S]
            omega = (u[:, :, None] > cdf[None, :, :]).sum(2).clip(max=c.scenarios - 1)  # [n, T]
            w = c.inflow[rows[None, :], :, omega]  # [n, T, H]
        return {
            "inflow": torch.as_tensor(w, dtype=torch.float64),
            "omega": torch.as_tensor(omega, dtype=torch.long),
            "volume0": torch.as_tensor(self.v0, dtype=torch.float64).expand(n, -1).clone(),
        }

    def initial_state(self, scenarios: Scenarios) -> State:
        w = scenarios["inflow"]
        return {
            "volume": scenarios["volume0"].to(w.dtype),
            "inflow": w[:, 0],
            "t": torch.zeros(w.shape[0], dtype=w.dtype, device=w.device),
        }

    def post_decision(self, state: State, action: torch.Tensor) -> tuple[State, torch.Tensor]:
        """Read ``action`` in [0, 1]^H as target end-of-stage volumes (fractions of [vmin, vmax]); the stage LP
        with the target rows and ``target_penalty`` (HiGHS) decides; the cost is the stage's cost proper.

        Where the action or the volumes carry gradients (HDPO), the outputs carry the envelope theorem's:
        the cost's gradient is that of the stage LP's optimal value (with the penalty), the target rows' duals
        with respect to the target and the water rows' duals with respect to the incoming volumes (what TS-DDR
        uses); the end volume follows the target where the target row binds (slack zero) and is otherwise
        held fixed. The values are unchanged."""
        target = self.target_of(state, action)
        stage = self.stage_lp({k: v.detach() for k, v in state.items()})
        tlp, rows = stage.with_target(target.detach(), self.target_penalty)
        sol = self.solve_stage(tlp)
        post, cost = self.stage_post(state, tlp, sol), self.stage_cost(tlp, sol)
        v = state["volume"]
        if target.requires_grad or v.requires_grad:
            lam, g_in = sol.y[:, rows].to(target), tlp.state_gradient(sol).to(v)
            cost = cost + (lam * (target - target.detach())).sum(1) + (g_in * (v - v.detach())).sum(1)
            n0 = stage.lp.shape[1]
            k = target.shape[1]
            slack = sol.x[:, n0 : n0 + k] + sol.x[:, n0 + k : n0 + 2 * k]
            binds = (slack <= 1e-9 * (1.0 + target.detach().abs())).to(target)
            post = dict(post, volume=post["volume"] + binds * (target - target.detach()))
        return post, cost

    def transition(self, post_state: State, scenarios: Scenarios, t: int) -> tuple[State, torch.Tensor]:
        w = scenarios["inflow"]
        nxt = w[:, t + 1] if t + 1 < w.shape[1] else torch.zeros_like(w[:, 0])
        v = post_state["volume"]
        return (
            {"volume": v, "inflow": nxt, "t": post_state["t"] + 1},
            torch.zeros(v.shape[0], dtype=v.dtype, device=v.device),
        )

    def observe(self, state: State) -> torch.Tensor:
        span = (self.vmax_t - self.vmin_t).to(state["volume"])
        frac = torch.where(span > 0, (state["volume"] - self.vmin_t.to(span)) / span.clamp(min=1e-12), 0.0)
        scale = torch.as_tensor(np.maximum(self.case.inflow.max((0, 2)), 1e-12)).to(span)
        return torch.cat([frac, state["inflow"] / scale, (state["t"] / self.periods).unsqueeze(1)], 1)

    def observe_post(self, post_state: State) -> torch.Tensor:
        span = (self.vmax_t - self.vmin_t).to(post_state["volume"])
        frac = torch.where(span > 0, (post_state["volume"] - self.vmin_t.to(span)) / span.clamp(min=1e-12), 0.0)
        return torch.cat([frac, (post_state["t"] / self.periods).unsqueeze(1)], 1)

    def describe(self) -> str:
        c = self.case
        return (
            f"{self.name}: {c.H} reservoirs, {c.G} thermal units, {c.N} buses, {c.L} branches, "
            f"{self.periods} stages of {self.hours:g} h, {c.scenarios} inflow scenarios per stage"
        )


# --- AR(1) inflows ----------------------------------------------------------------------------------
def fit_ar1(table: np.ndarray) -> dict[str, np.ndarray]:
    """A periodic AR(1) model of the inflow table [R, H, S], reading each scenario column as one history:
    per row and reservoir the mean and standard deviation, one lag-1 coefficient per reservoir (least squares on
    the standardised values of consecutive rows) and the correlation of the residuals across reservoirs."""
    mu, sd = table.mean(2), table.std(2, ddof=1) if table.shape[2] > 1 else np.zeros(table.shape[:2])
    z = (table - mu[:, :, None]) / np.where(sd > 0, sd, 1.0)[:, :, None]
    R, H, S = table.shape
    if R > 1:
        prev, cur = z[:-1], z[1:]
        phi = (prev * cur).sum((0, 2)) / np.maximum((prev * prev).sum((0, 2)), 1e-12)
        phi = np.clip(phi, -0.99, 0.99)
        res = (cur - phi[None, :, None] * prev).transpose(1, 0, 2).reshape(H, -1)
        corr = np.corrcoef(res) if H > 1 else np.ones((1, 1))
        corr = np.nan_to_num(corr) + 1e-9 * np.eye(H)
        np.fill_diagonal(corr, 1.0)
    else:
        phi, corr = np.zeros(H), np.eye(H)
    w, V = np.linalg.eigh(corr)
    chol = V @ np.diag(np.sqrt(np.maximum(w, 0.0)))
    return {"mu": mu, "sd": sd, "phi": phi, "chol": chol}


def sample_ar1(m: dict[str, np.ndarray], rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Inflow paths [n, T, H]: z_t = phi z_{t-1} + sqrt(1 - phi^2) e_t (e correlated across reservoirs),
    inflow = max(0, mu_row + sd_row z_t)."""
    H = m["phi"].shape[0]
    T = len(rows)
    e = rng.standard_normal((n, T, H)) @ m["chol"].T
    z = np.empty((n, T, H))
    z[:, 0] = e[:, 0]
    a = np.sqrt(1 - m["phi"] ** 2)
    for t in range(1, T):
        z[:, t] = m["phi"] * z[:, t - 1] + a * e[:, t]
    return np.maximum(0.0, m["mu"][rows][None] + m["sd"][rows][None] * z)


def build(config: Mapping[str, Any], source: str = "<problem>") -> Hydro:
    cfg = validate(config, SCHEMA, source)
    folder = case_folder(cfg["case"], source, source)
    case = load_case(folder, allow_deficit=cfg["deficit"], demand_file=cfg["demand_file"])
    return Hydro(case, cfg, source)
