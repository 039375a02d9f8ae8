"""Rolling-horizon MILP with genset commitment and a price on battery wear (HiGHS through highspy).

``commit_plan(...)`` plans periods ``i`` of ``L_i`` minutes (mean demand ``D_i``, mean available wind
``W_i``) with

* an integer number of gensets on ``n_i in {0..G}`` and genset starts ``s_i >= n_i - n_{i-1}``; each start
  costs the fuel of its warm-up and cool-down at idle (``fuel_intercept * (warmup + cooldown) / 60``
  litres); aggregated minimum run time: ``n_i >= sum of the starts in the periods that begin less than
  ``min_run_minutes`` before period ``i``; gensets that run now with their minimum run time not reached
  stay on for the rest of it;
* genset output ``min_load * n_i <= p_i <= rated * n_i`` and fuel ``fuel_slope * p_i + fuel_intercept * n_i``
  litres per hour: the idle fuel is paid per genset on, which a linear relaxation (the old ``mpc``) smears
  over the output and so never sees the saving of running one genset flat out and then none;
* battery charge ``c_i``, discharge ``e_i``, energy in the normal SoC band, and a **reserve for the shield**:
  while no genset is on the energy must stay ``margin_i`` above the floor, the
  worst-case energy the shield keeps for the ``horizon`` minutes it needs to bring a genset in (net load at
  the period's mean, demand rising and wind falling at their ramp limits); without it the plan counts on
  energy that the shield will not let it use, and the shield starts gensets the plan did not ask for;
* wind used, unserved and dumped power (penalised as in the simulator);
* **wear**: ``wear_price * (replacement_cost / cycle_life) * 0.5 * throughput / capacity``, throughput
  ``(eta c + e) h`` kWh. For a depth exponent ``k = 1`` this is the exact rainflow cost of the SoC path
  (every half-cycle of depth D costs ``0.5 D``); for ``k > 1`` rainflow charges deep cycles more per kWh
  than shallow ones, so ``wear_price`` is a multiplier swept to trace a frontier, not a calibrated price
  (``wear_price = 1`` is the throughput surrogate that the simulator uses in training);
* a terminal value of the battery energy left at the end of the horizon (``terminal_kwh`` per kWh, by
  default the fuel a kWh is worth, ``fuel_price * fuel_slope / eta``, which is what the simulator and
  ``fuel_eq_litres`` credit at the end of the day). Mid-day that value is the break-even of charging from a
  running genset, so a plan that cannot use the energy within its horizon is indifferent between rated and
  part load and the rolling MPC runs its gensets at part load; :func:`midday_kwh` values a kWh at the fuel it
  displaces from a genset at rated load, idle included. ``CommitMPC(final_kwh=...)`` keeps the simulator's
  value for the plans whose horizon reaches the end of the episode; ``terminal_above = (level_kwh, value)``
  values the energy above a level at ``value`` instead (concave: room kept for wind beyond the horizon).

:class:`CommitMPC` replans every ``replan_minutes`` from the current state (SoC, committed gensets, run
timers, time of day) over ``horizon_minutes`` (cut at the end of the episode, where the terminal value of
the simulator applies) on 15-minute periods, and proposes the first period's genset count and the genset
load (``shield.proposal = "genset_load"``) or battery set-point. ``forecast = "perfect"`` reads the
realised demand and wind of the scenarios (an oracle: the frontier no forecast-based controller can pass,
up to the period averaging); ``forecast = "real"`` reads only the state's forecasts (means over the next
15/30/60/120/240 minutes), split into 15-minute periods with each segment's mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.lp import silence_banner
from .planning import terminal_value
from .sim import RUN, WARM

GAP = 1e-2  # relative MIP gap of each solve (a 16-period plan solves in about 0.1 s)


@dataclass
class CommitPlan:
    cost: float
    gensets: np.ndarray
    genset_kw: np.ndarray
    battery_kw: np.ndarray  # discharge - charge
    energy: np.ndarray  # kWh at period boundaries
    status: str


def midday_kwh(p) -> float:
    """Value of a kWh stored beyond the horizon: the fuel a genset at rated load burns for it, idle included,
    over the charge efficiency (``fuel_price * (fuel_slope + fuel_intercept / rated) / eta``)."""
    return p.fuel_price * (p.fuel_a + p.fuel_b / p.rated) / p.eta


def start_litres(p) -> float:
    """Fuel of a genset start beyond its output: idle fuel over warm-up and cool-down."""
    return p.fuel_b * (p.warmup + p.cooldown) / 60.0


def shield_margin_kwh(p, demand: np.ndarray, wind: np.ndarray) -> np.ndarray:
    """Energy above the SoC floor the shield keeps while no genset runs (worst case over its horizon)."""
    H = p.horizon
    ramp = np.arange(1, H + 1)
    net = (demand[..., None] + p.ramp_d * ramp) - np.clip(wind[..., None] - p.ramp_w_down * ramp, 0, None)
    return np.clip(net, 0, None).sum(-1) / 60.0


def commit_plan(
    p,
    demand: np.ndarray,
    wind: np.ndarray,
    lengths: np.ndarray,
    soc0: float,
    on0: int = 0,
    must_run: np.ndarray | None = None,
    wear_price: float = 1.0,
    terminal_kwh: float | None = None,
    time_limit: float = 10.0,
    gap: float | None = None,
    integer_periods: int | None = None,
    terminal_above: tuple[float, float] | None = None,
) -> CommitPlan:
    """Solve the commitment MILP (module docstring) with HiGHS. ``on0``: gensets on before period 0;
    ``must_run[i]``: gensets that must be on in period ``i`` (minimum run time of those running now);
    ``terminal_above = (level_kwh, value)``: the energy above ``level_kwh`` at the horizon end is worth
    ``value`` per kWh instead of the terminal value (a concave value: ``value`` at most the terminal value)."""
    import highspy

    N, G, V = len(demand), p.G, 9
    NV, SV, PV, CV, EV, WV, UV, DV, QV = range(
        V
    )  # n, starts, genset kW, charge, discharge, wind, unserved, dump, energy
    inf = highspy.kHighsInf
    tv = terminal_value(p) if terminal_kwh is None else terminal_kwh
    scale = p.repl_cost / p.cycle_life
    margin = shield_margin_kwh(p, demand, wind)
    starts_at = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    lo = np.zeros(N * V)
    hi = np.full(N * V, inf)
    cost = np.zeros(N * V)
    rows, cols, vals, rlo, rhi = [], [], [], [], []

    def row(entries, a, b):
        r = len(rlo)
        for j, v in entries:
            rows.append(r), cols.append(j), vals.append(v)
        rlo.append(a), rhi.append(b)

    for i in range(N):
        x = lambda k: V * i + k  # noqa: E731
        h = lengths[i] / 60.0
        lo[x(NV)] = int(must_run[i]) if must_run is not None else 0
        hi[x(NV)] = G
        hi[x(SV)] = G
        hi[x(PV)] = G * p.rated
        hi[x(CV)] = hi[x(EV)] = p.b_power
        hi[x(WV)] = max(float(wind[i]), 0.0)
        hi[x(UV)] = max(float(demand[i]), 0.0)
        lo[x(QV)], hi[x(QV)] = p.soc_min * p.b_cap, p.soc_max * p.b_cap
        row(
            [(x(PV), 1), (x(WV), 1), (x(EV), 1), (x(CV), -1), (x(DV), -1), (x(UV), 1)],
            float(demand[i]),
            float(demand[i]),
        )
        row([(x(PV), 1), (x(NV), -p.rated)], -inf, 0)
        row([(x(PV), 1), (x(NV), -p.min_load)], 0, inf)
        if i == 0:
            row([(x(SV), 1), (x(NV), -1)], -float(on0), inf)
        else:
            row([(x(SV), 1), (x(NV), -1), (V * (i - 1) + NV, 1)], 0, inf)
        window = [V * j + SV for j in range(i) if starts_at[i] - starts_at[j] < p.min_run]
        if window:  # aggregated minimum run time: gensets started in the last min_run minutes are still on
            row([(x(NV), 1), (x(SV), -1)] + [(j, -1) for j in window], 0, inf)
        flow = [(x(QV), 1), (x(CV), -h * p.eta), (x(EV), h)]
        if i == 0:
            row(flow, soc0 * p.b_cap, soc0 * p.b_cap)
        else:
            row(flow + [(V * (i - 1) + QV, -1)], 0, 0)
        room = max(0.0, min(float(margin[i]), (p.soc_max - p.soc_min) * p.b_cap))
        # n >= 1 makes this row looser than the energy's lower bound; n = 0 keeps the shield's margin
        row([(x(QV), 1), (x(NV), room)], p.soc_min * p.b_cap + room, inf)
        cost[x(NV)] = h * p.fuel_price * p.fuel_b
        cost[x(SV)] = p.fuel_price * start_litres(p)
        cost[x(PV)] = h * p.fuel_price * p.fuel_a
        cost[x(CV)] = wear_price * scale * 0.5 * h * p.eta / p.b_cap
        cost[x(EV)] = wear_price * scale * 0.5 * h / p.b_cap
        cost[x(UV)] = h * p.unserved_cost
        cost[x(DV)] = h * p.surplus_cost
    cost[V * (N - 1) + QV] -= tv
    NX = N * V
    if terminal_above is not None:  # z >= E_N - level, z >= 0, priced (tv - value): z = max(0, E_N - level)
        level, above = float(terminal_above[0]), float(terminal_above[1])
        if not above <= tv:
            raise ValueError(f"terminal_above: the value above the level ({above}) must be at most {tv}")
        lo, hi, cost = np.append(lo, 0.0), np.append(hi, inf), np.append(cost, tv - above)
        row([(NX, 1), (V * (N - 1) + QV, -1)], -level, inf)
        NX += 1
    from scipy.sparse import csc_matrix

    A = csc_matrix((vals, (rows, cols)), shape=(len(rlo), NX))
    model = highspy.HighsLp()
    model.num_col_, model.num_row_ = NX, len(rlo)
    model.col_cost_, model.col_lower_, model.col_upper_ = cost, lo, hi
    model.row_lower_, model.row_upper_ = np.array(rlo, float), np.array(rhi, float)
    model.offset_ = tv * soc0 * p.b_cap
    model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    model.a_matrix_.start_ = A.indptr.astype(np.int32)
    model.a_matrix_.index_ = A.indices.astype(np.int32)
    model.a_matrix_.value_ = A.data.astype(np.float64)
    integ = [highspy.HighsVarType.kContinuous] * NX
    for i in range(N if integer_periods is None else min(N, integer_periods)):
        integ[V * i + NV] = highspy.HighsVarType.kInteger
    model.integrality_ = integ
    silence_banner()
    hs = highspy.Highs()
    hs.setOptionValue("output_flag", False)
    hs.setOptionValue("threads", 1)
    hs.setOptionValue("time_limit", float(time_limit))
    hs.setOptionValue("mip_rel_gap", float(GAP if gap is None else gap))
    hs.passModel(model)
    hs.run()
    st = hs.getModelStatus()
    ok = {highspy.HighsModelStatus.kOptimal: "optimal", highspy.HighsModelStatus.kTimeLimit: "time limit"}
    sol = np.array(hs.getSolution().col_value)
    if st not in ok or len(sol) != NX:
        raise RuntimeError(f"commitment model not solved (status {hs.modelStatusToString(st)})")
    X = sol[: N * V].reshape(N, V)
    return CommitPlan(
        float(hs.getInfo().objective_function_value),
        np.round(X[:, NV]),
        X[:, PV],
        X[:, EV] - X[:, CV],
        np.concatenate([[soc0 * p.b_cap], X[:, QV]]),
        ok[st],
    )


def _segments15(leads: list[int], means: np.ndarray, step: int = 15) -> np.ndarray:
    """Per-``step``-minute means from forecasts of the mean over the next ``lead`` minutes (each segment
    between two leads keeps its own mean)."""
    leads_a = np.asarray(leads, dtype=float)
    total = means * leads_a
    seg = np.diff(np.concatenate([[0.0], total])) / np.diff(np.concatenate([[0.0], leads_a]))
    edges = np.concatenate([[0], leads_a])
    mids = np.arange(0, leads_a[-1], step) + step / 2
    return seg[np.searchsorted(edges, mids, side="right") - 1]


class CommitMPC(torch.nn.Module):
    """Rolling-horizon commitment MILP (module docstring) as a policy of the shielded microgrid."""

    def __init__(
        self,
        problem,
        wear_price: float = 1.0,
        forecast: str = "real",
        scenarios=None,
        replan_minutes: int = 15,
        horizon_minutes: int = 240,
        step_minutes: int = 15,
        terminal_kwh: float | None = None,
        time_limit: float = 10.0,
        gap: float | None = None,
        final_kwh: float | None = None,
        terminal_above: tuple[float, float] | None = None,
    ):
        super().__init__()
        if forecast not in ("real", "perfect"):
            raise ValueError(f"forecast must be 'real' or 'perfect', got {forecast!r}")
        if forecast == "perfect" and scenarios is None:
            raise ValueError("forecast = 'perfect' needs the scenarios it is evaluated on")
        if forecast == "real" and horizon_minutes > max(problem.leads):
            horizon_minutes = max(problem.leads)
        self.problem, self.p = problem, problem.p
        self.wear_price, self.forecast, self.scenarios = float(wear_price), forecast, scenarios
        self.replan, self.horizon, self.step = replan_minutes, horizon_minutes, step_minutes
        self.terminal_kwh, self.time_limit, self.gap = terminal_kwh, time_limit, gap
        self.final_kwh, self.terminal_above = final_kwh, terminal_above
        self.held: torch.Tensor | None = None
        self.solves = 0
        self.plans: list = []

    def bind(self, scenarios) -> CommitMPC:
        """Evaluate on other scenarios (perfect forecasts read them)."""
        self.scenarios = scenarios
        self.held = None
        return self

    def forward(self, state, t=0):
        if self.held is None or t % self.replan == 0 or self.held.shape[0] != state["soc"].shape[0]:
            self.held = self._solve(state, t)
        return self.held

    def _inputs(self, state, t: int, T: int):
        p, S = self.p, self.step
        H = min(self.horizon, T - t)
        n_per = max(1, int(np.ceil(H / S)))
        L = np.full(n_per, float(S))
        L[-1] = H - S * (n_per - 1)
        if self.forecast == "perfect":
            sc = self.scenarios
            rows = self._rows(state, t)
            d = sc["demand"][rows, t + 1 : t + 1 + H].double().cpu().numpy()
            w = sc["wind"][rows, t + 1 : t + 1 + H].double().cpu().numpy()
            edges = np.concatenate([[0], np.cumsum(L)]).astype(int)
            D = np.stack([d[:, a:b].mean(1) for a, b in zip(edges, edges[1:])], 1)
            W = np.stack([w[:, a:b].mean(1) for a, b in zip(edges, edges[1:])], 1)
        else:
            fd = state["fc_d"].double().cpu().numpy()
            fw = state["fc_w"].double().cpu().numpy()
            leads = self.problem.leads
            D = np.stack([_segments15(leads, fd[j], S)[:n_per] for j in range(len(fd))])
            W = np.stack([_segments15(leads, fw[j], S)[:n_per] for j in range(len(fw))])
        return np.clip(D, 0, None), np.clip(W, 0, p.w_rated), L

    def _rows(self, state, t: int) -> torch.Tensor:
        """The scenario of each state row: the bound scenarios' own order when the batch is theirs, else the
        scenario whose demand and wind at minute ``t`` are the state's last ones (a subset, e.g. one day)."""
        sc = self.scenarios
        if sc.n == state["soc"].shape[0]:
            return torch.arange(sc.n)
        gap = (sc["demand"][None, :, t] - state["d_prev"][:, None]).abs() + (
            sc["wind"][None, :, t] - state["w_prev"][:, None]
        ).abs()
        best = gap.min(1)
        if bool((best.values > 1e-6).any()):
            raise ValueError("perfect forecasts: these states are not from the bound scenarios (call bind)")
        return best.indices.cpu()

    def _solve(self, state, t: int):
        p = self.p
        T = self.scenarios.periods if self.scenarios is not None else self.problem.periods
        D, W, L = self._inputs(state, t, T)
        soc = state["soc"].double().cpu().numpy()
        mode = state["mode"].cpu().numpy()
        run = state["run"].cpu().numpy()
        committed = ((mode == WARM) | (mode == RUN)).sum(1)
        starts_at = np.concatenate([[0.0], np.cumsum(L)[:-1]])
        B = len(soc)
        n_out, g_out, b_out = np.zeros(B), np.zeros(B), np.zeros(B)
        # a plan whose horizon reaches the end of the episode ends where the simulator's terminal value applies
        ends = self.final_kwh is not None and t + self.horizon >= T
        tv = self.final_kwh if ends else self.terminal_kwh
        above = None if ends else self.terminal_above
        for j in range(B):
            left = np.where(mode[j] == RUN, np.clip(p.min_run - run[j], 0, None), 0)
            left = np.where(mode[j] == WARM, p.min_run, left)
            must = np.array([(left > a).sum() for a in starts_at])
            pl = commit_plan(
                p,
                D[j],
                W[j],
                L,
                float(np.clip(soc[j], p.soc_min, p.soc_max)),
                int(committed[j]),
                must,
                self.wear_price,
                tv,
                self.time_limit,
                self.gap,
                terminal_above=above,
            )
            self.solves += 1
            n_out[j] = pl.gensets[0]
            g_out[j] = pl.genset_kw[0] / max(pl.gensets[0], 1)
            b_out[j] = pl.battery_kw[0]
        dt, dev = state["soc"].dtype, state["soc"].device
        n_t = torch.as_tensor(n_out / p.G, dtype=dt, device=dev).clamp(0, 1)
        if p.proposal == "genset_load":
            span = max(p.rated - p.min_load, 1e-9)
            second = torch.as_tensor((g_out - p.min_load) / span, dtype=dt, device=dev).clamp(0, 1)
        else:
            second = torch.as_tensor((b_out / p.b_power + 1) / 2, dtype=dt, device=dev).clamp(0, 1)
        return torch.stack([n_t, second], dim=1)
