"""Batched linear programmes in one stated form, and the stage LP of the contract.

A problem whose stage decision is a linear programme states it once, as :class:`StageLP`, through
``Problem.stage_lp(state, scenarios, t)``; the simulator, Lagrangian decision rules (TS-DDR), SDDP and
perfect-information bounds all read that one model.

The form (row bounds, as HiGHS states LPs)::

    minimise    c . x + const
    subject to  row_lo <= A x <= row_hi      (an equality row has row_lo == row_hi)
                lb <= x <= ub                (bounds may be -inf / inf)

Everything is batch-first: ``c``, ``lb``, ``ub`` are ``[B, n]``, ``row_lo`` and ``row_hi`` ``[B, m]``,
``A`` is ``[m, n]`` (shared by the batch) or ``[B, m, n]``. :func:`solve` returns the primal solution, the
optimal value and the row duals ``y`` with the sensitivity sign convention ``y_i = d value / d (active
bound of row i)``: for an equality row ``d value / d rhs``; for a ``<=`` row that binds, ``y_i <= 0``
in a minimisation. The duals of the rows that carry the incoming state give the value's gradient with
respect to that state (:meth:`StageLP.state_gradient`): the envelope theorem that TS-DDR and SDDP use.

Three back ends share the interface: ``"highs"`` (HiGHS through ``highspy``, one LP per batch row on the
CPU, exact simplex duals), ``"torch"`` (a batched interior-point solver on the whole batch, on any
device; :mod:`opsrl.core.lp_torch`) and ``"basis_cache"`` (optimal HiGHS bases re-used by batched linear
algebra for LPs that share the matrix and costs; :mod:`opsrl.core.lp_cache`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

__all__ = ["LP", "LPSolution", "StageLP", "solve", "solve_highs", "silence_banner", "BACKENDS"]

BACKENDS = ("highs", "torch", "basis_cache")


@dataclass
class LP:
    """``min c.x + const  s.t.  row_lo <= A x <= row_hi,  lb <= x <= ub``, batched (see the module text)."""

    c: torch.Tensor  # [B, n]
    A: torch.Tensor  # [m, n] or [B, m, n]
    row_lo: torch.Tensor  # [B, m]
    row_hi: torch.Tensor  # [B, m]
    lb: torch.Tensor  # [B, n]
    ub: torch.Tensor  # [B, n]
    const: torch.Tensor | None = None  # [B] objective constant

    @property
    def batch(self) -> int:
        return self.c.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)``: rows and columns."""
        return self.A.shape[-2], self.A.shape[-1]

    def matrix(self, b: int) -> torch.Tensor:
        """The constraint matrix of batch row ``b``."""
        return self.A if self.A.dim() == 2 else self.A[b]

    def check(self) -> None:
        """Raise ``ValueError`` on inconsistent shapes, NaN or crossed bounds."""
        B, n = self.c.shape
        m = self.A.shape[-2]
        if self.A.shape[-1] != n or (self.A.dim() == 3 and self.A.shape[0] != B):
            raise ValueError(f"LP: A has shape {tuple(self.A.shape)}, expected [{m}, {n}] or [{B}, {m}, {n}]")
        for name, t, cols in (
            ("row_lo", self.row_lo, m),
            ("row_hi", self.row_hi, m),
            ("lb", self.lb, n),
            ("ub", self.ub, n),
        ):
            if tuple(t.shape) != (B, cols):
                raise ValueError(f"LP: {name} has shape {tuple(t.shape)}, expected [{B}, {cols}]")
        for name, t in (
            ("c", self.c),
            ("A", self.A),
            ("row_lo", self.row_lo),
            ("row_hi", self.row_hi),
            ("lb", self.lb),
            ("ub", self.ub),
        ):
            if torch.isnan(t).any():
                raise ValueError(f"LP: {name} contains NaN")
        if (self.row_lo > self.row_hi).any():
            raise ValueError("LP: a row's lower bound exceeds its upper bound")
        if (self.lb > self.ub).any():
            raise ValueError("LP: a column's lower bound exceeds its upper bound")

    def add_rows(self, A_new: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> LP:
        """This LP with rows ``lo <= A_new x <= hi`` appended (``A_new`` ``[k, n]`` or ``[B, k, n]``)."""
        A = _cat_rows(self.A, A_new, self.batch)
        return replace(self, A=A, row_lo=torch.cat([self.row_lo, lo], 1), row_hi=torch.cat([self.row_hi, hi], 1))

    def add_columns(self, c_new: torch.Tensor, A_new: torch.Tensor, lb: torch.Tensor, ub: torch.Tensor) -> LP:
        """This LP with columns appended: costs ``c_new`` ``[B, k]``, coefficients ``A_new`` ``[m, k]`` or
        ``[B, m, k]`` in the existing rows, bounds ``lb``, ``ub`` ``[B, k]``."""
        if self.A.dim() == 2 and A_new.dim() == 2:
            A = torch.cat([self.A, A_new], 1)
        else:
            A = torch.cat([_batched(self.A, self.batch), _batched(A_new, self.batch)], 2)
        return replace(
            self, c=torch.cat([self.c, c_new], 1), A=A, lb=torch.cat([self.lb, lb], 1), ub=torch.cat([self.ub, ub], 1)
        )


def _batched(A: torch.Tensor, B: int) -> torch.Tensor:
    return A if A.dim() == 3 else A.unsqueeze(0).expand(B, *A.shape)


def _cat_rows(A: torch.Tensor, A_new: torch.Tensor, B: int) -> torch.Tensor:
    if A.dim() == 2 and A_new.dim() == 2:
        return torch.cat([A, A_new], 0)
    return torch.cat([_batched(A, B), _batched(A_new, B)], 1)


@dataclass
class LPSolution:
    """``x`` ``[B, n]``, ``value`` ``[B]`` (with the constant), row duals ``y`` ``[B, m]`` (see the module text),
    reduced costs ``z`` ``[B, n]`` (``c - A^T y``) and ``status`` per row (``"optimal"``, ``"infeasible"``,
    ``"unbounded"``, ``"iteration_limit"`` ...)."""

    x: torch.Tensor
    value: torch.Tensor
    y: torch.Tensor
    z: torch.Tensor
    status: list[str]
    info: dict = field(default_factory=dict)

    @property
    def optimal(self) -> bool:
        return all(s == "optimal" for s in self.status)


@dataclass
class StageLP:
    """One stage's decision as an LP, given the incoming state ``x_in`` and what is known at the stage.

    The incoming state enters the row bounds linearly: ``row_lo = lo0 + S x_in`` and ``row_hi = hi0 + S
    x_in`` with ``S = state_in`` ``[m, k]`` (zero rows where a row does not depend on the state), so the
    gradient of the stage's optimal value with respect to ``x_in`` is ``S^T y``. The columns
    ``state_out`` ``[k]`` hold the outgoing state (end-of-stage values). ``blocks`` names column ranges for
    reporting (``{"thermal": slice(...), ...}``); the problem's ``stage_cost`` reads the true stage cost from
    them (see docs/architecture.md).
    """

    lp: LP
    x_in: torch.Tensor  # [B, k]
    state_in: torch.Tensor  # [m, k]
    state_out: torch.Tensor  # [k] long: column index of each state variable's end-of-stage value
    blocks: dict[str, slice] = field(default_factory=dict)

    @property
    def n_state(self) -> int:
        return self.state_out.numel()

    def state_gradient(self, sol: LPSolution) -> torch.Tensor:
        """``d value / d x_in`` ``[B, k]`` from the row duals (envelope theorem)."""
        return sol.y @ self.state_in.to(sol.y.dtype)

    def outgoing(self, sol: LPSolution) -> torch.Tensor:
        """The end-of-stage state ``[B, k]`` of a solution."""
        return sol.x[:, self.state_out]

    def with_target(self, target: torch.Tensor, penalty: float | torch.Tensor) -> tuple[StageLP, slice]:
        """The stage LP with a target on the outgoing state: rows ``x_out + d_plus - d_minus = target`` and
        ``penalty * (d_plus + d_minus)`` in the objective (``d >= 0``). Returns the new stage LP and the
        slice of the target rows, whose duals are ``d value / d target``."""
        B, k = target.shape
        lp = self.lp
        m, n = lp.shape
        dev, dt = lp.c.device, lp.c.dtype
        pen = torch.as_tensor(penalty, dtype=dt, device=dev)
        pen = pen.expand(B, k) if pen.dim() < 2 else pen
        zeros_k = torch.zeros(B, k, dtype=dt, device=dev)
        inf_k = torch.full((B, k), math.inf, dtype=dt, device=dev)
        # columns d_plus, d_minus (no coefficient in the existing rows)
        lp = lp.add_columns(
            torch.cat([pen, pen], 1),
            torch.zeros(m, 2 * k, dtype=dt, device=dev),
            torch.cat([zeros_k, zeros_k], 1),
            torch.cat([inf_k, inf_k], 1),
        )
        rows = torch.zeros(k, n + 2 * k, dtype=dt, device=dev)
        eye = torch.eye(k, dtype=dt, device=dev)
        rows[torch.arange(k, device=dev), self.state_out.to(dev)] = 1.0
        rows[:, n : n + k] = eye
        rows[:, n + k :] = -eye
        target = target.to(dt)
        lp = lp.add_rows(rows, target, target)
        S = torch.cat([self.state_in.to(dev, dt), torch.zeros(k, k, dtype=dt, device=dev)], 0)
        return StageLP(lp, self.x_in, S, self.state_out, dict(self.blocks)), slice(m, m + k)


def solve(lp: LP, backend: str = "highs", **options) -> LPSolution:
    """Solve every LP of the batch with ``backend`` (``"highs"``, ``"torch"`` or ``"basis_cache"``: HiGHS's optimal
    bases re-used for LPs of the same matrix and costs, :mod:`opsrl.core.lp_cache`)."""
    if backend == "highs":
        return solve_highs(lp, **options)
    if backend == "torch":
        from .lp_torch import solve_torch

        return solve_torch(lp, **options)
    if backend == "basis_cache":
        from .lp_cache import solve_cached

        return solve_cached(lp, **options)
    raise ValueError(f"unknown LP back end {backend!r}; allowed: {', '.join(BACKENDS)}")


_HIGHS_STATUS = {
    "Optimal": "optimal",
    "Infeasible": "infeasible",
    "Unbounded": "unbounded",
    "Primal infeasible or unbounded": "infeasible_or_unbounded",
    "Iteration limit reached": "iteration_limit",
    "Time limit reached": "time_limit",
}
# tried in turn until HiGHS reports an optimum it can stand behind: as set up (warm from the previous batch row's
# basis where the matrix is shared), from scratch, without presolve (HiGHS 1.16 reports "Solve error" on a few badly
# scaled LPs with many cuts, which solve without presolve), and by the interior-point method
_ATTEMPTS = ({}, {}, {"presolve": "off"}, {"solver": "ipm"})
_DEFAULTS = {"presolve": "choose", "solver": "choose"}
_SILENCED = False


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def silence_banner() -> None:
    """HiGHS prints its banner on stdout when a process makes its first ``Highs`` object, which would break
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


def solve_highs(
    lp: LP,
    time_limit: float | None = None,
    threads: int = 1,
    warm: bool = True,
    bases: bool = False,
    session: dict | None = None,
) -> LPSolution:
    """HiGHS (simplex) per batch row, on the CPU; results on the LP's device and dtype.

    Where the batch shares its matrix (``A`` ``[m, n]``) the model is passed once, and each next row changes only
    the bounds and costs that differ and re-solves from the previous basis (``warm``), which is several times
    faster on the many LPs of a DP grid, an SDDP pass or a batch of scenarios. A warm answer is kept only when its
    duals certify it (sign-feasible, dual objective equal to the value): HiGHS's warm starts after bound changes
    occasionally stop on a feasible, non-optimal basis and report it optimal; such a row is solved again from
    scratch. Reduced costs are ``c - A^T y`` of the stated LP. With ``bases``, ``info["bases"]`` lists each row's
    optimal basis as ``(col_status, row_status)`` int8 arrays of HiGHS's basis status codes (``None`` where not
    optimal), which the basis-cache back end (:mod:`opsrl.core.lp_cache`) keeps. A ``session`` dict (kept by the
    caller for LPs of one shared matrix) holds the HiGHS model between calls, so that the next call's first row is
    warm too.
    """
    import highspy

    silence_banner()
    B = lp.batch
    m, n = lp.shape
    inf = highspy.kHighsInf
    fin = lambda a: np.where(np.isposinf(a), inf, np.where(np.isneginf(a), -inf, a))  # noqa: E731
    c = _np(lp.c)
    lo, hi, lb, ub = fin(_np(lp.row_lo)), fin(_np(lp.row_hi)), fin(_np(lp.lb)), fin(_np(lp.ub))
    A_all = _np(lp.A)
    shared = A_all.ndim == 2
    sess = session if (session is not None and shared and warm) else None
    held = sess is not None and sess.get("shape") == (m, n) and "h" in sess
    h = sess["h"] if held else highspy.Highs()
    if sess is not None:
        sess["h"], sess["shape"] = h, (m, n)
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", int(threads))
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    X, Y, Z, V = np.zeros((B, n)), np.zeros((B, m)), np.zeros((B, n)), np.full(B, np.nan)
    status: list[str] = []
    stats = {"cold": 0}
    kept: list = []
    for b in range(B):
        A = A_all if shared else A_all[b]
        if (b == 0 and not held) or not shared or not warm:
            h.clearModel()
            h.passModel(_highs_model(highspy, A, c[b], lo[b], hi[b], lb[b], ub[b]))
        else:
            prev = sess["last"] if b == 0 else (c[b - 1], lo[b - 1], hi[b - 1], lb[b - 1], ub[b - 1])
            _change(h, lo[b], hi[b], prev[1], prev[2], rows=True)
            _change(h, lb[b], ub[b], prev[3], prev[4], rows=False)
            d = np.nonzero(c[b] != prev[0])[0]
            if len(d):
                h.changeColsCost(len(d), d.astype(np.int32), c[b, d])
        warm_row = shared and warm and (b > 0 or held)
        st = "Not solved"
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
                z = c[b] - A.T @ y
                val = h.getInfo().objective_function_value
                if not warm_row or attempt > 0 or _certified(val, y, z, lo[b], hi[b], lb[b], ub[b], inf):
                    break
                st = "Not certified"  # a warm start that stopped short: once more from scratch
            elif st in ("Infeasible", "Unbounded"):
                break
            h.clearSolver()
            stats["cold"] += 1
        status.append(_HIGHS_STATUS.get(st, st.lower().replace(" ", "_")))
        if status[-1] == "optimal":
            X[b], Y[b], Z[b], V[b] = x, y, z, val
        if bases:
            hb = h.getBasis() if status[-1] == "optimal" else None
            kept.append(
                (
                    np.fromiter((int(s) for s in hb.col_status), np.int8, n),
                    np.fromiter((int(s) for s in hb.row_status), np.int8, m),
                )
                if hb is not None and hb.valid
                else (None, None)
            )
    if sess is not None and B:
        sess["last"] = (c[B - 1].copy(), lo[B - 1].copy(), hi[B - 1].copy(), lb[B - 1].copy(), ub[B - 1].copy())
    const = _np(lp.const) if lp.const is not None else 0.0
    like = dict(dtype=lp.c.dtype, device=lp.c.device)
    return LPSolution(
        torch.as_tensor(X, **like),
        torch.as_tensor(V + const, **like),
        torch.as_tensor(Y, **like),
        torch.as_tensor(Z, **like),
        status,
        {"backend": "highs", "warm": warm and shared, **stats, **({"bases": kept} if bases else {})},
    )


def _highs_model(highspy, A: np.ndarray, c, lo, hi, lb, ub):
    start, index, value = _csc(A)
    model = highspy.HighsLp()
    model.num_col_, model.num_row_ = A.shape[1], A.shape[0]
    model.col_cost_, model.col_lower_, model.col_upper_ = c, lb, ub
    model.row_lower_, model.row_upper_ = lo, hi
    model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    model.a_matrix_.start_, model.a_matrix_.index_, model.a_matrix_.value_ = start, index, value
    return model


def _change(h, lo: np.ndarray, hi: np.ndarray, lo0: np.ndarray, hi0: np.ndarray, rows: bool) -> None:
    """Pass to HiGHS the row (or column) bounds ``lo``, ``hi`` that differ from those it holds (``lo0``, ``hi0``)."""
    d = np.nonzero((lo != lo0) | (hi != hi0))[0]
    if len(d):
        (h.changeRowsBounds if rows else h.changeColsBounds)(len(d), d.astype(np.int32), lo[d], hi[d])


def _certified(value: float, y: np.ndarray, z: np.ndarray, lo, hi, lb, ub, inf: float, rtol: float = 1e-7) -> bool:
    """Whether the duals prove ``value`` optimal: they are sign-feasible (a positive dual sits on a finite lower
    bound, a negative one on a finite upper bound) and the dual objective equals ``value``."""
    tol = 1e-7 * max(1.0, float(np.abs(y).max(initial=0.0)), float(np.abs(z).max(initial=0.0)))
    if np.any((y > tol) & (lo <= -inf)) or np.any((y < -tol) & (hi >= inf)):
        return False
    if np.any((z > tol) & (lb <= -inf)) or np.any((z < -tol) & (ub >= inf)):
        return False
    fin = lambda a: np.where(np.abs(a) >= inf, 0.0, a)  # noqa: E731
    dual = np.where(y > 0, y * fin(lo), y * fin(hi)).sum() + np.where(z > 0, z * fin(lb), z * fin(ub)).sum()
    return abs(dual - value) <= rtol * max(1.0, abs(value)) + 1e-7


def _csc(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column-wise sparse form of a dense matrix: ``(start, index, value)``."""
    nz = A != 0.0
    counts = nz.sum(0)
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    col, row = np.nonzero(nz.T)  # column-major order: for each column, its rows
    return start, row.astype(np.int32), A[row, col]
