"""HiGHS on a batch of LPs that share their matrix, one model kept warm across the batch.

:func:`opsrl.core.lp.solve` passes a fresh model to HiGHS for every batch row. The references of this
family (SDP on a volume grid, SDDP's backward passes, the hindsight bounds) solve many LPs that differ only
in bounds and costs; :func:`solve_warm` passes the matrix once, then changes only the bounds and costs that
differ from the previous row and re-solves from the previous basis (dual simplex), which is several times
faster and gives the same optimum (tests/hydro/test_references.py checks values and duals against
:func:`opsrl.core.lp.solve`). Results follow :class:`opsrl.core.lp.LPSolution`'s conventions.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.lp import LP, LPSolution, _HIGHS_STATUS, _csc, solve


def silence_banner() -> None:
    """HiGHS prints its banner on stdout when the first ``Highs`` object of a process is made, which would break
    ``opsrl run --json``; make that first one with stdout sent to /dev/null (later ones print nothing)."""
    global _SILENCED
    if _SILENCED:
        return
    _SILENCED = True
    import os
    import sys

    import highspy

    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


_SILENCED = False
_ATTEMPTS = ({}, {}, {"presolve": "off"}, {"solver": "ipm"})
_DEFAULTS = {"presolve": "choose", "solver": "choose"}


def _inf(a: np.ndarray, inf: float) -> np.ndarray:
    return np.where(np.isposinf(a), inf, np.where(np.isneginf(a), -inf, a))


def solve_warm(lp: LP, threads: int = 1) -> LPSolution:
    """Solve every row of a batch whose ``A`` is shared (``[m, n]``); a batched ``A`` falls back to
    :func:`opsrl.core.lp.solve`."""
    if lp.A.dim() != 2:
        return solve(lp)
    import highspy

    silence_banner()
    B = lp.batch
    m, n = lp.shape
    f = lambda t: t.detach().to("cpu", torch.float64).numpy()
    c, lo, hi, lb, ub = f(lp.c), f(lp.row_lo), f(lp.row_hi), f(lp.lb), f(lp.ub)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", int(threads))
    inf = highspy.kHighsInf
    lo, hi, lb, ub = _inf(lo, inf), _inf(hi, inf), _inf(lb, inf), _inf(ub, inf)
    A_np = f(lp.A)
    start, index, value = _csc(A_np)
    model = highspy.HighsLp()
    model.num_col_, model.num_row_ = n, m
    model.col_cost_, model.col_lower_, model.col_upper_ = c[0], lb[0], ub[0]
    model.row_lower_, model.row_upper_ = lo[0], hi[0]
    model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    model.a_matrix_.start_, model.a_matrix_.index_, model.a_matrix_.value_ = start, index, value
    h.passModel(model)
    X, Y, Z, V = np.zeros((B, n)), np.zeros((B, m)), np.zeros((B, n)), np.full(B, np.nan)
    status = []
    stats = {"cold": 0}
    for b in range(B):
        if b > 0:
            d = np.nonzero((lo[b] != lo[b - 1]) | (hi[b] != hi[b - 1]))[0]
            if len(d):
                h.changeRowsBounds(len(d), d.astype(np.int32), lo[b, d], hi[b, d])
            d = np.nonzero((lb[b] != lb[b - 1]) | (ub[b] != ub[b - 1]))[0]
            if len(d):
                h.changeColsBounds(len(d), d.astype(np.int32), lb[b, d], ub[b, d])
            d = np.nonzero(c[b] != c[b - 1])[0]
            if len(d):
                h.changeColsCost(len(d), d.astype(np.int32), c[b, d])
        # warm; then from scratch; then without presolve (HiGHS 1.16 reports "Solve error" on a few badly scaled
        # LPs with many cuts, which solve without presolve); then the interior-point method
        for attempt, opts in enumerate(_ATTEMPTS):
            for k, v in opts.items():
                h.setOptionValue(k, v)
            h.run()
            st = h.modelStatusToString(h.getModelStatus())
            for k in opts:
                h.setOptionValue(k, _DEFAULTS[k])
            if st == "Optimal":
                sol = h.getSolution()
                x, y = np.asarray(sol.col_value), np.asarray(sol.row_dual)
                z = c[b] - A_np.T @ y  # reduced costs of the intended LP, not HiGHS's internal copy
                val = h.getInfo().objective_function_value
                if attempt > 0 or _certified(val, y, z, lo[b], hi[b], lb[b], ub[b], inf):  # a cold solve is HiGHS's word
                    break
                st = "Not certified"  # a warm start that stopped short: once more from scratch
            elif st in ("Infeasible", "Unbounded"):
                break
            h.clearSolver()
            stats["cold"] += 1
        status.append(_HIGHS_STATUS.get(st, st.lower().replace(" ", "_")))
        if status[-1] == "optimal":
            X[b], Y[b], Z[b], V[b] = x, y, z, val
    const = f(lp.const) if lp.const is not None else 0.0
    like = dict(dtype=lp.c.dtype, device=lp.c.device)
    return LPSolution(torch.as_tensor(X, **like), torch.as_tensor(V + const, **like), torch.as_tensor(Y, **like),
                      torch.as_tensor(Z, **like), status, {"backend": "highs_warm", **stats})


def _certified(value: float, y: np.ndarray, z: np.ndarray, lo, hi, lb, ub, inf: float, rtol: float = 1e-7) -> bool:
    """Whether the duals prove ``value`` optimal: they are sign-feasible (a positive dual sits on a finite lower
    bound, a negative one on a finite upper bound) and the dual objective equals ``value``. HiGHS's warm
    starts after bound changes occasionally report a feasible, non-optimal basis as optimal; this catches it."""
    tol = 1e-7 * max(1.0, float(np.abs(y).max(initial=0.0)), float(np.abs(z).max(initial=0.0)))
    if np.any((y > tol) & (lo <= -inf)) or np.any((y < -tol) & (hi >= inf)):
        return False
    if np.any((z > tol) & (lb <= -inf)) or np.any((z < -tol) & (ub >= inf)):
        return False
    fin = lambda a: np.where(np.abs(a) >= inf, 0.0, a)
    dual = (np.where(y > 0, y * fin(lo), y * fin(hi)).sum() + np.where(z > 0, z * fin(lb), z * fin(ub)).sum())
    return abs(dual - value) <= rtol * max(1.0, abs(value)) + 1e-7
