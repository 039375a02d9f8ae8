"""Mixed-integer models of the lot-sizing problem (OR-Tools ``pywraplp``: SCIP, or CP-SAT through the same API).

One model, :func:`plan`, serves two references:

* the **perfect-information bound** (:func:`hindsight`): the plan of one scenario knowing its whole demand
  path. Every policy's trajectory on that scenario is a feasible plan of the model with the same cost, so its
  optimum (or, past the time limit, the solver's best bound) is a lower bound on any policy's cost there;
* the **rolling-horizon MIP** (:class:`RollingMIP`): at each period, plan ``horizon`` periods ahead on the
  expected demand and apply the first period's setups.

Variables per makeable pair ``(m, i)`` and period ``t``: ``y`` (machine ``m`` makes item ``i``; at most one item
per machine, exactly one when idling is not allowed) and ``z = y_t (1 - y_{t-1})`` (a setup is paid; fixed
exactly by three inequalities); per item and period: stock ``s`` in ``[0, cap]``, lost units ``l >= 0`` and
discarded units ``w >= 0``, with ``s_{t+1} = s_t + sum_m (c y - sl z) - d_t + l - w``. The simulator only
discards above the cap; with ``exact_cap`` a binary per item and period forces ``s = cap`` where ``w > 0``
(the exact simulator), without it ``w`` is free disposal (a relaxation, so still a valid lower bound; it can
only matter to save holding cost at h = 0.01 per unit and period).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["PlanResult", "plan", "hindsight", "RollingMIP"]


@dataclass
class PlanResult:
    status: str
    objective: float  # cost of the best plan found (nan if none)
    bound: float  # the solver's lower bound (= objective when optimal)
    seconds: float
    actions: np.ndarray | None = None  # [T, M] choices 0..I
    parts: dict = field(default_factory=dict)


def plan(
    cap: np.ndarray,
    sc: np.ndarray,
    sl: np.ndarray,
    h: np.ndarray,
    ls: np.ndarray,
    max_inv: np.ndarray,
    inv0: np.ndarray,
    setup0: np.ndarray,
    demand: np.ndarray,
    idle: bool = True,
    time_limit: float = 10.0,
    backend: str = "SCIP",
    exact_cap: bool = False,
    threads: int = 1,
    gap: float = 1e-4,
    first_only: bool = False,
    static: bool = False,
    relax: bool = False,
) -> PlanResult:
    """Optimal setups over ``demand [T, I]`` from stock ``inv0 [I]`` and setups ``setup0 [M]`` (0 idle, 1-based).

    ``cap, sc, sl`` are ``[M, I]``; ``h, ls, max_inv`` ``[I]``. Returns the plan, its cost and the bound.
    ``static``: every machine keeps one choice over the whole horizon (a restriction: setups are only paid in the
    first period; the small model the rolling-horizon MIP solves each period). ``relax``: the LP relaxation
    (GLOP), whose optimum is a lower bound of the MIP's."""
    from ortools.linear_solver import pywraplp

    T, I = demand.shape
    M = cap.shape[0]
    if relax:
        backend = "GLOP"
    solver = pywraplp.Solver.CreateSolver(backend)
    if solver is None:
        raise ValueError(f"OR-Tools backend {backend!r} is not available")
    pairs = [(m, i) for m in range(M) for i in range(I) if cap[m, i] > 0]
    integer = backend.upper() in ("CP_SAT", "SAT")  # CP-SAT wants integer variables (all data are integers)
    y, z = {}, {}
    for t in range(T):
        for m, i in pairs:
            if static and t > 0:
                y[m, i, t] = y[m, i, 0]
                continue
            y[m, i, t] = solver.NumVar(0, 1, f"y{m}_{i}_{t}") if relax else solver.BoolVar(f"y{m}_{i}_{t}")
            z[m, i, t] = solver.BoolVar(f"z{m}_{i}_{t}") if integer else solver.NumVar(0, 1, f"z{m}_{i}_{t}")
    mk = (lambda lo, hi, n: solver.IntVar(lo, hi, n)) if integer else (lambda lo, hi, n: solver.NumVar(lo, hi, n))
    big = float(demand.max() + cap.sum(0).max() + max_inv.max() + 1)
    s = {(i, t): mk(0, float(max_inv[i]), f"s{i}_{t}") for i in range(I) for t in range(T)}
    lost = {(i, t): mk(0, float(demand[t, i]), f"l{i}_{t}") for i in range(I) for t in range(T)}
    w = {(i, t): mk(0, big, f"w{i}_{t}") for i in range(I) for t in range(T)}
    for t in range(T):
        for m in range(M):
            row = [y[m, i, t] for (mm, i) in pairs if mm == m]
            if row and not (static and t > 0):
                (solver.Add(sum(row) <= 1) if idle else solver.Add(sum(row) == 1))
        for m, i in pairs:
            if (m, i, t) not in z:
                continue
            prev = (1.0 if setup0[m] == i + 1 else 0.0) if t == 0 else y[m, i, t - 1]
            solver.Add(z[m, i, t] >= y[m, i, t] - prev)
            solver.Add(z[m, i, t] <= y[m, i, t])
            solver.Add(z[m, i, t] <= 1 - prev)
        for i in range(I):
            before = float(inv0[i]) if t == 0 else s[i, t - 1]
            prod = sum(
                float(cap[m, i]) * y[m, i, t] - (float(sl[m, i]) * z[m, i, t] if (m, i, t) in z else 0)
                for (m, ii) in pairs
                if ii == i
            )
            solver.Add(s[i, t] == before + prod - float(demand[t, i]) + lost[i, t] - w[i, t])
            if exact_cap:
                o = solver.NumVar(0, 1, f"o{i}_{t}") if relax else solver.BoolVar(f"o{i}_{t}")
                solver.Add(w[i, t] <= big * o)
                solver.Add(s[i, t] >= float(max_inv[i]) * o)
    setup_cost = sum(float(sc[m, i]) * v for (m, i, t), v in z.items())
    holding = sum(float(h[i]) * s[i, t] for i in range(I) for t in range(T))
    lost_cost = sum(float(ls[i]) * lost[i, t] for i in range(I) for t in range(T))
    solver.Minimize(setup_cost + holding + lost_cost)
    solver.SetTimeLimit(int(time_limit * 1000))
    solver.SetNumThreads(threads)
    params = pywraplp.MPSolverParameters()
    if not relax:
        params.SetDoubleParam(pywraplp.MPSolverParameters.RELATIVE_MIP_GAP, gap)
    t0 = time.perf_counter()
    status = solver.Solve(params)
    secs = time.perf_counter() - t0
    names = {
        pywraplp.Solver.OPTIMAL: "optimal",
        pywraplp.Solver.FEASIBLE: "feasible",
        pywraplp.Solver.INFEASIBLE: "infeasible",
        pywraplp.Solver.NOT_SOLVED: "not_solved",
    }
    st = names.get(status, "error")
    if st not in ("optimal", "feasible") or (relax and st != "optimal"):
        # an LP stopped before its optimum (GLOP at its time limit) has a primal value above the LP optimum:
        # not a lower bound, so nothing is returned
        return PlanResult(f"lp_{st}" if relax else st, math.nan, math.nan, secs)
    obj = solver.Objective().Value()
    bound = solver.Objective().BestBound() if st == "feasible" else obj
    if (integer and st == "optimal") or relax:
        bound = obj
    if relax:
        return PlanResult("lp_optimal" if st == "optimal" else st, obj, obj, secs)
    steps = 1 if first_only else T
    acts = np.zeros((steps, M), dtype=np.int64)
    for t in range(steps):
        for m, i in pairs:
            if y[m, i, t].solution_value() > 0.5:
                acts[t, m] = i + 1
    parts = {}
    if not first_only:
        parts = {
            "setup_cost": sum(float(sc[m, i]) * v.solution_value() for (m, i, t), v in z.items()),
            "holding_cost": sum(float(h[i]) * s[i, t].solution_value() for i in range(I) for t in range(T)),
            "lost_sales_cost": sum(float(ls[i]) * lost[i, t].solution_value() for i in range(I) for t in range(T)),
        }
    return PlanResult(st, obj, min(bound, obj), secs, acts, parts)


def _arrays(problem):
    i = problem.inst
    return dict(
        cap=i.capacity,
        sc=i.setup_cost,
        sl=i.setup_loss,
        h=i.holding_cost,
        ls=i.lost_sales_cost,
        max_inv=i.max_inventory,
    )


def hindsight(problem, scenarios, b: int, **kw) -> PlanResult:
    """The perfect-information plan of scenario ``b`` (its whole demand path known). The bound is the larger of
    the MIP solver's best bound and the LP relaxation's optimum (GLOP): where the MIP solver stops at its time
    limit before its root is solved it has no bound, the LP still gives one."""
    data = dict(
        **_arrays(problem),
        inv0=scenarios["inventory0"][b].cpu().double().numpy(),
        setup0=scenarios["setup0"][b].cpu().numpy(),
        demand=scenarios["demand"][b].cpu().double().numpy(),
        idle=problem.idle,
    )
    r = plan(**data, **kw)
    if r.status != "optimal":
        # the LP of 100 periods takes GLOP 10-20 s on one core: a generous limit, and no bound if it is hit
        lp_time = max(300.0, float(kw.get("time_limit", 10.0)))
        lp = plan(**data, relax=True, exact_cap=kw.get("exact_cap", False), time_limit=lp_time)
        if math.isfinite(lp.bound) and not (lp.bound <= r.bound):
            r.bound = lp.bound
            r.parts = {**r.parts, "bound_from": "lp_relaxation"}
    return r


class RollingMIP:
    """Rolling-horizon MIP on the expected demand: at each period, the optimal plan for the next ``horizon``
    periods (fewer near the end of the episode) when every demand equals its mean; the first period's setups
    are applied. ``static`` (default): each machine holds one choice over the planning horizon, a small model
    solved to optimality in well under a second on these sizes (the period-by-period model is not: SCIP leaves
    a gap after a minute on 10 periods of 15 x 5). A policy ``(state, t) -> [B, M]``: one MIP per scenario and period
    (a loop over the batch,
    unavoidable for a per-scenario solver). With a fractional mean demand the plan uses the mean as it is."""

    def __init__(
        self,
        problem,
        horizon: int = 8,
        time_limit: float = 1.0,
        backend: str = "SCIP",
        exact_cap: bool = False,
        static: bool = True,
    ):
        self.static = static
        self.problem, self.horizon, self.time_limit, self.backend = problem, int(horizon), float(time_limit), backend
        self.exact_cap = exact_cap
        self.arrays = _arrays(problem)
        self.solves, self.not_optimal, self.seconds = 0, 0, 0.0

    def __call__(self, state, t: int) -> torch.Tensor:
        p = self.problem
        inv = state["inventory"].detach().cpu().double().numpy()
        setup = state["setup"].detach().argmax(-1).cpu().numpy()
        H = max(1, min(self.horizon, p.periods - t))
        demand = np.full((H, p.I), p.mean_demand)
        out = np.zeros((inv.shape[0], p.M), dtype=np.int64)
        for b in range(inv.shape[0]):
            r = plan(
                **self.arrays,
                inv0=inv[b],
                setup0=setup[b],
                demand=demand,
                idle=p.idle,
                time_limit=self.time_limit,
                backend=self.backend,
                exact_cap=self.exact_cap,
                first_only=True,
                static=self.static,
            )
            self.solves += 1
            self.seconds += r.seconds
            if r.status != "optimal":
                self.not_optimal += 1
            if r.actions is not None:
                out[b] = r.actions[0]
            else:  # no plan within the time limit: keep the current setups (never worse than a blind switch)
                out[b] = setup[b]
        return torch.as_tensor(out, device=state["inventory"].device)
