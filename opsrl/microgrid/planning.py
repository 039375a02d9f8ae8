"""Linear dispatch models solved with OR-Tools: the perfect-foresight bound and the MPC's plan.

One model, ``plan(...)``: periods ``i`` of ``L_i`` minutes with mean demand ``D_i`` and mean available
wind ``W_i``; per period the mean genset output ``p_i``, the mean number of gensets on ``n_i``, battery
charge ``c_i`` and discharge ``e_i``, wind used, unserved and dumped power; battery energy at the period
boundaries. Cost = fuel (``fuel_price * (slope * p + intercept * n)``) + penalties + optional linear
degradation + terminal value of the battery energy.

Perfect-foresight lower bound (``bound=True``). Take any trajectory of the simulator over a day and
average every quantity over each period: the averages satisfy every constraint of the model, because
each one is linear and holds minute by minute: the balance ``p + wind_used + e - c - dump + unserved =
demand``; ``p <= (rated + overload) * n`` (``n`` counts every genset that is on, warm-up and cool-down
included, whose output is at most the overload limit); ``0 <= wind_used <= wind``; battery power limits;
the energy balance (linear in the powers); the reserve SoC band at period boundaries (a subset of the
minutes). Fuel, penalties and terminal value are linear, so the averaged trajectory costs exactly what
the day cost, except degradation, which enters with 0 (or, for ``depth_exponent = 1``, with its exact
linear form ``0.5 |dSoC|``, which the averages do not exceed). The rules the model leaves out (minimum
load, warm-up, cool-down, minimum run time, priority, rolling average, integrality of ``n`` when
``L_i > 1``) only remove constraints. Hence the optimum is a valid lower bound on every controller's
day cost. With one-minute periods and ``integer=True`` the on-count is integer (a MILP solved by SCIP).

MPC (``bound=False``): the same model on forecasts, with the minimum load ``p >= min_load * n``, the
normal SoC band and the throughput degradation surrogate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.linear_solver import pywraplp


@dataclass
class Plan:
    cost: float
    gensets: np.ndarray
    genset_kw: np.ndarray
    battery_kw: np.ndarray  # discharge - charge
    energy: np.ndarray  # kWh at period boundaries
    status: str


def terminal_value(p) -> float:
    """Value of one kWh left in the battery at the end of an episode (what it saves in fuel)."""
    return p.fuel_price * p.fuel_a / p.eta if p.terminal_value < 0 else p.terminal_value


def plan(
    p,
    demand: np.ndarray,
    wind: np.ndarray,
    lengths: np.ndarray,
    soc0: float,
    *,
    bound: bool,
    integer: bool = False,
    time_limit: float = 60.0,
) -> Plan:
    """Solve the dispatch model (see the module docstring)."""
    solver = pywraplp.Solver.CreateSolver("SCIP" if integer else "GLOP")
    if solver is None:  # pragma: no cover
        raise RuntimeError("OR-Tools solver not available")
    solver.SetTimeLimit(int(time_limit * 1000))
    N = len(demand)
    inf = solver.infinity()
    lo, hi = (p.soc_rmin, p.soc_rmax) if bound else (p.soc_min, p.soc_max)
    cap_kw = p.rated + p.overload if bound else p.rated
    E = [solver.NumVar(-inf, inf, "E0")]
    solver.Add(E[0] == soc0 * p.b_cap)
    obj = 0
    ps, ns, cs, es = [], [], [], []
    scale = p.repl_cost / p.cycle_life
    deg_lin = (not bound) or abs(p.depth_exp - 1.0) < 1e-12
    for i in range(N):
        h = lengths[i] / 60.0
        pg = solver.NumVar(0, p.G * cap_kw, f"p{i}")
        n = solver.IntVar(0, p.G, f"n{i}") if integer else solver.NumVar(0, p.G, f"n{i}")
        c = solver.NumVar(0, p.b_power, f"c{i}")
        e = solver.NumVar(0, p.b_power, f"e{i}")
        wu = solver.NumVar(0, max(float(wind[i]), 0.0), f"w{i}")
        un = solver.NumVar(0, max(float(demand[i]), 0.0), f"u{i}")
        du = solver.NumVar(0, inf, f"s{i}")
        solver.Add(pg + wu + e - c - du + un == float(demand[i]))
        solver.Add(pg <= cap_kw * n)
        if not bound:
            solver.Add(pg >= p.min_load * n)
        En = solver.NumVar(lo * p.b_cap, hi * p.b_cap, f"E{i + 1}")
        solver.Add(En == E[-1] + h * (p.eta * c - e))
        E.append(En)
        obj += h * (p.fuel_price * (p.fuel_a * pg + p.fuel_b * n) + p.unserved_cost * un + p.surplus_cost * du)
        if deg_lin:
            obj += scale * 0.5 * h * (p.eta * c + e) / p.b_cap
        ps.append(pg), ns.append(n), cs.append(c), es.append(e)
    obj += -terminal_value(p) * (E[-1] - soc0 * p.b_cap)
    solver.Minimize(obj)
    status = solver.Solve()
    names = {pywraplp.Solver.OPTIMAL: "optimal", pywraplp.Solver.FEASIBLE: "feasible"}
    if status not in names:
        raise RuntimeError(f"dispatch model not solved (status {status})")
    if bound and status != pywraplp.Solver.OPTIMAL:
        # a time-limited MILP: its best dual bound is still a valid lower bound
        cost = solver.Objective().BestBound()
    else:
        cost = solver.Objective().Value()
    return Plan(
        cost,
        np.array([v.solution_value() for v in ns]),
        np.array([v.solution_value() for v in ps]),
        np.array([e.solution_value() - c.solution_value() for c, e in zip(cs, es)]),
        np.array([v.solution_value() for v in E]),
        names[status],
    )


def day_bound(
    p, demand: np.ndarray, wind: np.ndarray, soc0: float, step: int, integer: bool = False, time_limit: float = 60.0
) -> Plan:
    """Perfect-foresight lower bound on one episode's cost: ``demand``/``wind`` are the realised minutes."""
    T = len(demand)
    edges = list(range(0, T, step)) + [T]
    D = np.array([demand[a:b].mean() for a, b in zip(edges, edges[1:])])
    W = np.array([wind[a:b].mean() for a, b in zip(edges, edges[1:])])
    L = np.diff(edges).astype(float)
    return plan(p, D, W, L, soc0, bound=True, integer=integer and step == 1, time_limit=time_limit)
