"""Multi-stage LPs over the stage LP: the perfect-information (hindsight) bound and the extensive form.

Both are one LP whose nodes are stage LPs (:meth:`Hydro.stage_lp`, so the same model), the incoming volumes of
a node being the outgoing volumes of its parent:

* :func:`hindsight` -- a chain per scenario, all inflows known in advance: a lower bound on any policy's cost
  on that scenario (a bound, never a policy);
* :func:`extensive_form` -- the whole scenario tree of a short horizon (every inflow row's scenarios at every
  stage, node weights the path probabilities): the exact optimum of the stochastic problem, the independent
  reference that the SDP and SDDP tests check against.

Solved with HiGHS (sparse, through ``highspy``) or OR-Tools GLOP.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from tqdm import tqdm

from .model import Hydro


def _node_data(problem: Hydro, t: int, inflow: np.ndarray, v_in: np.ndarray | None):
    """Stage ``t``'s LP (one batch row) as numpy: c, lo, hi, lb, ub, const."""
    H = problem.H
    state = {
        "volume": torch.as_tensor((v_in if v_in is not None else np.zeros(H))[None], dtype=torch.float64),
        "inflow": torch.as_tensor(inflow[None], dtype=torch.float64),
        "t": torch.full((1,), float(t), dtype=torch.float64),
    }
    lp = problem.stage_lp(state, t=t).lp
    f = lambda x: x[0].numpy()
    return f(lp.c), f(lp.row_lo), f(lp.row_hi), f(lp.lb), f(lp.ub), float(lp.const[0])


def build_tree(
    problem: Hydro, stages: list[int], parents: list[int], inflows: np.ndarray, weights: np.ndarray, v0: np.ndarray
):
    """The LP of a tree of stage nodes: node ``i`` is stage ``stages[i]`` with inflow ``inflows[i]`` [H], parent
    ``parents[i]`` (-1: the root, whose incoming volumes are ``v0``) and objective weight ``weights[i]``.
    Returns (A csc, c, lo, hi, lb, ub, const)."""
    A0 = sp.csr_matrix(problem._A.numpy())
    m, n = A0.shape
    K = len(stages)
    rw = np.arange(m)[problem.rows["water"]]
    cv = np.arange(n)[problem.cols["volume"]]
    blocks = sp.block_diag([A0] * K, format="coo")
    # coupling: the water rows of node i carry -1 x the parent's outgoing volumes
    child = np.array([i for i in range(K) if parents[i] >= 0], dtype=np.int64)
    r = (child[:, None] * m + rw[None, :]).ravel()
    col = (np.asarray(parents)[child][:, None] * n + cv[None, :]).ravel()
    link = sp.coo_matrix((-np.ones(len(r)), (r, col)), shape=(K * m, K * n))
    A = (blocks + link).tocsc()
    c, lo, hi, lb, ub = (np.zeros(K * n), np.zeros(K * m), np.zeros(K * m), np.zeros(K * n), np.zeros(K * n))
    const = 0.0
    for i in range(K):
        ci, loi, hii, lbi, ubi, k0 = _node_data(problem, stages[i], inflows[i], v0 if parents[i] < 0 else None)
        c[i * n : (i + 1) * n] = weights[i] * ci
        lo[i * m : (i + 1) * m], hi[i * m : (i + 1) * m] = loi, hii
        lb[i * n : (i + 1) * n], ub[i * n : (i + 1) * n] = lbi, ubi
        const += weights[i] * k0
    return A, c, lo, hi, lb, ub, const


class TreeSolver:
    """One HiGHS model of a tree LP; :meth:`resolve` changes the row bounds (other inflows) and re-solves warm."""

    def __init__(self, A, c, lo, hi, lb, ub, const):
        import highspy

        self.h = h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        inf = highspy.kHighsInf
        fx = lambda a: np.where(np.isposinf(a), inf, np.where(np.isneginf(a), -inf, a))
        model = highspy.HighsLp()
        model.num_col_, model.num_row_ = A.shape[1], A.shape[0]
        model.col_cost_, model.col_lower_, model.col_upper_ = c, fx(lb), fx(ub)
        model.row_lower_, model.row_upper_ = fx(lo), fx(hi)
        model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        model.a_matrix_.start_ = A.indptr.astype(np.int32)
        model.a_matrix_.index_ = A.indices.astype(np.int32)
        model.a_matrix_.value_ = A.data.astype(np.float64)
        h.passModel(model)
        self.const, self.fx, self.lo, self.hi = const, fx, lo, hi

    def run(self) -> tuple[float, np.ndarray]:
        self.h.run()
        st = self.h.modelStatusToString(self.h.getModelStatus())
        if st != "Optimal":
            raise RuntimeError(f"a multi-stage LP is not optimal ({st})")
        return self.h.getInfo().objective_function_value + self.const, np.asarray(self.h.getSolution().col_value)

    def resolve(self, lo: np.ndarray, hi: np.ndarray, const: float) -> tuple[float, np.ndarray]:
        d = np.nonzero((lo != self.lo) | (hi != self.hi))[0]
        if len(d):
            self.h.changeRowsBounds(len(d), d.astype(np.int32), self.fx(lo[d]), self.fx(hi[d]))
        self.lo, self.hi, self.const = lo, hi, const
        return self.run()


class GlopTree:
    """The same tree LP in OR-Tools GLOP (pywraplp); :meth:`resolve` changes row bounds and re-solves."""

    def __init__(self, A, c, lo, hi, lb, ub, const):
        from ortools.linear_solver import pywraplp

        self.s = s = pywraplp.Solver.CreateSolver("GLOP")
        self.inf = inf = s.infinity()
        self.fx = lambda v: inf if v == np.inf else (-inf if v == -np.inf else float(v))
        x = [s.NumVar(self.fx(lb[j]), self.fx(ub[j]), "") for j in range(A.shape[1])]
        Ar = A.tocsr()
        self.rows = []
        for i in range(A.shape[0]):
            row = s.Constraint(self.fx(lo[i]), self.fx(hi[i]))
            for p in range(Ar.indptr[i], Ar.indptr[i + 1]):
                row.SetCoefficient(x[Ar.indices[p]], float(Ar.data[p]))
            self.rows.append(row)
        obj = s.Objective()
        for j in np.nonzero(c)[0]:
            obj.SetCoefficient(x[j], float(c[j]))
        obj.SetMinimization()
        self.obj, self.lo, self.hi, self.const = obj, lo, hi, const

    def run(self) -> tuple[float, None]:
        from ortools.linear_solver import pywraplp

        if self.s.Solve() != pywraplp.Solver.OPTIMAL:
            raise RuntimeError("GLOP: a multi-stage LP is not optimal")
        return self.obj.Value() + self.const, None

    def resolve(self, lo: np.ndarray, hi: np.ndarray, const: float) -> tuple[float, None]:
        for i in np.nonzero((lo != self.lo) | (hi != self.hi))[0]:
            self.rows[i].SetBounds(self.fx(lo[i]), self.fx(hi[i]))
        self.lo, self.hi, self.const = lo, hi, const
        return self.run()


def hindsight(problem: Hydro, scenarios, solver: str = "highs", progress: bool = False) -> np.ndarray:
    """The perfect-information optimum of each scenario (one LP over all stages): a lower bound, per scenario,
    on the cost of any policy on it."""
    w = scenarios["inflow"].double().cpu().numpy()
    v0 = scenarios["volume0"].double().cpu().numpy()
    n, T, _ = w.shape
    stages, parents = list(range(T)), [-1] + list(range(T - 1))
    out = np.zeros(n)
    A, c, lo, hi, lb, ub, const = build_tree(problem, stages, parents, w[0], np.ones(T), v0[0])
    solver_obj = (GlopTree if solver == "glop" else TreeSolver)(A, c, lo, hi, lb, ub, const)
    m = problem._m
    rw = np.arange(m)[problem.rows["water"]]
    water = np.arange(T)[:, None] * m + rw[None, :]  # [T, H] rows of the water balances
    for j in tqdm(range(n), desc="hindsight LPs", disable=not progress):
        if j == 0:
            out[j] = solver_obj.run()[0]
            continue
        # same matrix and costs; only the water rows' right-hand sides (inflows, initial volumes) differ
        rhs = problem.k * w[j]
        rhs[0] += v0[j]
        lo_j, hi_j = lo.copy(), hi.copy()
        lo_j[water], hi_j[water] = rhs, rhs
        out[j] = solver_obj.resolve(lo_j, hi_j, const)[0]
    return out


def extensive_form(problem: Hydro, stages: int | None = None) -> float:
    """The optimum of the stochastic problem over ``stages`` stages by its scenario-tree LP (every path of
    stage-wise independent inflow scenarios; exact, exponential in the horizon: keep it short)."""
    T = problem.periods if stages is None else stages
    c = problem.case
    st, par, inf, wt = [], [], [], []
    level = [(-1, 1.0)]
    for t in range(T):
        r = problem.row_of(t)
        nxt = []
        for parent, p in level:
            for s in range(c.scenarios):
                if c.prob[r, s] <= 0:
                    continue
                st.append(t)
                par.append(parent)
                inf.append(c.inflow[r, :, s])
                wt.append(p * c.prob[r, s])
                nxt.append((len(st) - 1, p * c.prob[r, s]))
        level = nxt
    saved = problem.periods
    problem.periods = T  # the last stage of the short horizon carries the final water value
    try:
        A, cc, lo, hi, lb, ub, const = build_tree(problem, st, par, np.asarray(inf), np.asarray(wt), problem.v0)
    finally:
        problem.periods = saved
    return TreeSolver(A, cc, lo, hi, lb, ub, const).run()[0]
