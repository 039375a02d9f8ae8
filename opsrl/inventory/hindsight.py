"""Perfect-information (hindsight) lower bound of an inventory network, one LP per scenario (OR-Tools).

Knowing a scenario's whole demand path, the cheapest shipments solve a linear program over the same
dynamics as :class:`opsrl.inventory.networks.Network` (see its docstring). Variables per period ``t``:
shipments ``q[e, t] >= 0``; stock left after demand ``y[i, t] >= 0`` (fixed at 0 at a centre, which
cannot hold stock); at backlog stores the backlog ``m[i, t] >= 0``; at lost-sales stores the sales
``0 <= s[i, t] <= d[i, t]``. Balance of location ``i`` in period ``t``::

    y[i,t] - m[i,t] = y[i,t-1] - m[i,t-1] + arrivals[i,t] - sum_out q[e,t] - s[i,t]  (lost sales)
                                                                             - d[i,t]  (backlog)

with arrivals from ``q[e, t - L_e]`` and from the initial pipeline, ``y[i,-1] = on_hand_0``. Every
policy's shipments are feasible here (integer orders and proportional allocation only restrict it), so
the LP optimum of the evaluated objective, the mean cost per store over the periods after warm-up, is a
lower bound of every policy's cost on the same scenario. Solved with GLOP (simplex) or PDLP.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..core import Scenarios
from .networks import CENTRE, Network


class HindsightLP:
    """The LP's constraint matrix for one problem and horizon; :meth:`solve` fills in one scenario."""

    def __init__(self, problem: Network, periods: int, warmup: int):
        t = problem.topo
        self.problem, self.T, self.warmup = problem, int(periods), int(warmup)
        if self.warmup >= self.T:
            raise ValueError("warm-up must be shorter than the horizon")
        N, E, T = t.n, t.e, self.T
        lost = problem.unmet == "lost_sales"
        stores = problem.stores
        S = len(stores)
        self.lost = lost
        # column blocks: q [E, T], y [N, T], then m or s [S, T]
        self.q0, self.y0, self.z0 = 0, E * T, E * T + N * T
        nv = self.z0 + S * T
        tt = np.arange(T)
        row = lambda i, tv: tv * N + i  # noqa: E731
        rows, cols, vals = [], [], []

        def add(r, c, v):
            rows.append(np.asarray(r).ravel()), cols.append(np.asarray(c).ravel())
            vals.append(np.broadcast_to(v, np.asarray(r).shape).ravel().astype(float))

        I, Tm = np.meshgrid(np.arange(N), tt, indexing="ij")
        ycol = self.y0 + I * T + Tm
        add(row(I, Tm), ycol, 1.0)
        add(row(I[:, :-1], Tm[:, :-1] + 1), ycol[:, :-1], -1.0)
        Sx, St = np.meshgrid(np.arange(S), tt, indexing="ij")
        zcol = self.z0 + Sx * T + St
        node = stores[Sx]
        if lost:  # sales leave the stock
            add(row(node, St), zcol, 1.0)
        else:  # y - m is the net stock; the backlog carries over
            add(row(node, St), zcol, -1.0)
            add(row(node[:, :-1], St[:, :-1] + 1), zcol[:, :-1], 1.0)
        Ex, Et = np.meshgrid(np.arange(E), tt, indexing="ij")
        qcol = self.q0 + Ex * T + Et
        from_loc = t.src[Ex] >= 0
        add(row(t.src[Ex][from_loc], Et[from_loc]), qcol[from_loc], 1.0)
        arr_t = Et + t.lead[Ex]
        ok = arr_t < T
        add(row(t.dst[Ex][ok], arr_t[ok]), qcol[ok], -1.0)
        self.A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(N * T, nv))
        w = np.where(tt >= self.warmup, 1.0 / ((T - self.warmup) * problem.n_locations), 0.0)
        self.w = w
        obj = np.zeros(nv)
        obj[self.q0 : self.y0] = (t.ship_cost[:, None] * w[None, :]).ravel()
        obj[self.y0 : self.z0] = (t.holding[:, None] * w[None, :]).ravel()
        p = t.shortage[stores]
        obj[self.z0 :] = ((-p if lost else p)[:, None] * w[None, :]).ravel()
        self.obj = obj
        self.lb = np.zeros(nv)
        self.ub = np.full(nv, np.inf)
        centre = np.flatnonzero(t.kind == CENTRE)
        for c in centre:
            self.ub[self.y0 + c * T : self.y0 + (c + 1) * T] = 0.0
        self.stores = stores

    def rhs(self, demand: np.ndarray, on_hand: np.ndarray, pipe: np.ndarray) -> np.ndarray:
        t, N, T = self.problem.topo, self.problem.topo.n, self.T
        b = np.zeros((T, N))
        b[0] += on_hand
        Lm = pipe.shape[1]
        for k in range(min(Lm, T - 1)):  # pipe[:, k] is on hand at period k + 1
            np.add.at(b[k + 1], t.dst, pipe[:, k])
        if not self.lost:
            b[:, self.stores] -= demand[:T]
        return b.ravel()

    def solve(
        self, demand: np.ndarray, on_hand: np.ndarray, pipe: np.ndarray, solver: str = "glop", time_limit: float = 0.0
    ) -> float:
        """Bound for one scenario: ``demand [T, S]``, ``on_hand [N]``, ``pipe [E, Lmax]``."""
        from ortools.linear_solver.python import model_builder_helper as mbh

        ub = self.ub.copy()
        const = 0.0
        if self.lost:
            ub[self.z0 :] = demand[: self.T].T.ravel()
            const = float((self.problem.topo.shortage[self.stores][None, :] * demand[: self.T]).sum(1) @ self.w)
        b = self.rhs(demand, on_hand, pipe)
        model = mbh.ModelBuilderHelper()
        model.fill_model_from_sparse_data(self.lb, ub, self.obj, b, b, self.A)
        s = mbh.ModelSolverHelper(solver)
        if time_limit:
            s.set_time_limit_in_seconds(time_limit)
        if solver == "pdlp":
            s.set_solver_specific_parameters(
                "termination_criteria { eps_optimal_relative: 1e-8 eps_optimal_absolute: 1e-8 }"
            )
        s.solve(model)
        status = s.status()
        if status != mbh.SolveStatus.OPTIMAL:
            raise RuntimeError(f"hindsight LP not solved to optimality: {s.status_string() or status}")
        # a valid bound needs the dual bound; GLOP is exact at optimality, PDLP's gap is ~1e-8 relative
        return float(s.objective_value()) + const


def hindsight_bounds(
    problem: Network, scenarios: Scenarios, warmup: int | None = None, solver: str = "glop", progress: bool = False
) -> np.ndarray:
    """Hindsight lower bound of each scenario's cost (mean per store and period after ``warmup``)."""
    from tqdm.auto import tqdm

    warmup = problem.test_warmup if warmup is None else warmup
    lp = HindsightLP(problem, scenarios.periods, warmup)
    d = scenarios["demand"].double().cpu().numpy()
    oh = scenarios["on_hand"].double().cpu().numpy()
    pipe = scenarios["pipe"].double().cpu().numpy()
    out = np.empty(scenarios.n)
    for j in tqdm(range(scenarios.n), desc=f"hindsight LP {problem.name}", disable=not progress, leave=False):
        out[j] = lp.solve(d[j], oh[j], pipe[j], solver)
    return out


def store_bound(problem: Network) -> tuple[float, str]:
    """A lower bound of the mean cost per store and period from the stores alone.

    Each store's cost in the network is at least the optimal cost of the same store alone, supplied at
    once by an unlimited supplier: whatever the network ships, a store with lead time 0 can replicate it
    by ordering each shipment when it would have arrived, and demand is independent over time (other
    stores' past demand says nothing of this store's coming demand). With lead time 0 the optimum is the
    newsvendor cost ``min_y E[h (y - D)^+ + p (D - y)^+]`` (lost sales or backlog); for backlog stores
    fed directly by one lane, the store with its own lead time ``L`` (the base stock at the p/(p+h)
    quantile of demand over L + 1 periods) is also a valid, tighter bound. Upstream holding and shipping
    costs are at least 0.
    """
    from scipy import stats

    t = problem.topo
    total = 0.0
    L_store = t.lead[problem.primary]
    single_lane = np.bincount(t.dst, minlength=t.n) == 1
    for i in problem.stores:
        h, p, m = t.holding[i], t.shortage[i], t.mean[i]
        ell = 1 + (L_store[i] if (problem.unmet == "backlog" and single_lane[i]) else 0)
        if problem.distribution == "normal":
            sd = m * t.cv[i]
            total += _normal_newsvendor(m, sd, h, p, ell)
        else:
            mu = ell * m
            k = np.arange(int(stats.poisson.isf(1e-14, mu)) + 2)
            pmf = stats.poisson.pmf(k, mu)
            y = k[:, None]
            cost = (pmf[None, :] * (h * np.maximum(y - k, 0) + p * np.maximum(k - y, 0))).sum(1)
            total += float(cost.min())
    return total / problem.n_locations, (
        "store-level bound: each store alone with an unlimited supplier (newsvendor over its protection period)"
    )


def _normal_newsvendor(m: float, sd: float, h: float, p: float, periods: int) -> float:
    """min_y E[h (y - D)^+ + p (D - y)^+] for D the sum of ``periods`` i.i.d. Normal(m, sd) clipped at 0,
    by quadrature on the exact law of the clipped demand."""
    from scipy import stats

    if sd <= 0:
        return 0.0
    # the sum of clipped normals by convolution on a fine grid
    step = sd / 50.0
    grid = np.arange(0.0, m + 12 * sd + step, step)
    pdf = np.diff(stats.norm.cdf(np.r_[grid - step / 2, grid[-1] + step / 2], m, sd))
    pdf[0] = stats.norm.cdf(step / 2, m, sd)  # the mass clipped at 0
    dist = pdf.copy()
    for _ in range(periods - 1):
        dist = np.convolve(dist, pdf)
    dist /= dist.sum()
    x = np.arange(len(dist)) * step
    cdf = np.cumsum(dist)
    y = x[min(int(np.searchsorted(cdf, p / (p + h))), len(x) - 1)]
    return float((dist * (h * np.maximum(y - x, 0) + p * np.maximum(x - y, 0))).sum())
