"""A basis-cache LP back end: optimal bases from HiGHS, re-used by batched linear algebra where they still fit.

Many batched LPs share their matrix ``A`` and costs ``c`` and differ only in their bounds (the stage LPs of a
decision rule or of an SDDP policy: incoming volumes, inflows and targets enter row bounds only). An optimal
simplex basis of one such LP stays optimal for any other bounds under which its basic solution is primal
feasible: dual feasibility (reduced costs of the right sign at the nonbasic variables' bounds) involves ``A`` and
``c`` only. So for a batch, :func:`solve_cached` tries the bases it holds for ``(A, c)``: each basis gives every
LP's basic solution by one matrix product (the solution is affine in the bounds), a vectorised check keeps the
rows where it is primal feasible (and dual feasible for their bounds, which matters only where a bound pair
collapses or opens), and the duals come with the basis (``y`` from ``B^T y = c_B``, ``z = c - A^T y``). Rows that
no held basis fits are solved by HiGHS (:func:`opsrl.core.lp.solve_highs`), whose optimal bases join the cache.
Answers are those of an optimal basis: the value equals HiGHS's (to round-off); where the LP has several optimal
vertices (degenerate ties) the vertex may be another optimal one than a fresh HiGHS solve would return.

Bound entries that vary: a cache key holds the bound vector ``b = (row_lo, row_hi, lb, ub)`` of the first LP it
saw and the set ``V`` of entries that have differed from it since; a basis is stored as the affine map from
``b[V]`` to the columns and row activities (``(n + m) x |V|`` numbers), with the ``b[V]`` of the LP it was found
on: each LP tries the ``candidates`` bases found on the nearest bounds (one batched product per round). When a new
entry starts to vary, the key's bases are dropped and re-learned (for the hydro stage LPs ``V`` is fixed after the
first batch: the water and target rows).

``solve(lp, backend="basis_cache")`` uses one cache per process (:data:`DEFAULT_CACHE`); pass ``cache=`` for
another. ``cache.stats`` counts hits (rows solved from the cache) and misses (rows HiGHS solved). Memory: a basis
holds ``|V| (n + m)`` doubles (49 KB for bolivia's target LPs, 64 KB for its SDDP LPs with 116 cuts), so the
defaults (1024 bases for each of up to 128 keys) can reach gigabytes where bases do not repeat (an SDDP policy
has one key per stage); pass a :class:`BasisCache` with smaller limits there. Measured hit rates and speeds:
docs/lagrangian.md (case3: 95% of the LPs, 15x warm HiGHS; bolivia: 46-60%, slower than warm HiGHS).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch

from .lp import LP, LPSolution, solve_highs

__all__ = ["BasisCache", "DEFAULT_CACHE", "solve_cached"]

# HighsBasisStatus values (highspy): kLower 0, kBasic 1, kUpper 2, kZero 3, kNonbasic 4
LOWER, BASIC, UPPER, ZERO = 0, 1, 2, 3


@dataclass
class _Key:
    """The bases of one ``(A, c)``, in slots of growing buffers (CPU, float64: torch's BLAS, which keeps to its
    thread setting). Slot ``j``: ``Q[j]`` ``[|V|, n + m]`` and ``q0[j]`` ``[n + m]`` map ``b[V]`` to the basic
    solution and its row activities; ``rep[j]`` is the ``b[V]`` of the LP it was found on (candidates are tried
    nearest first); ``used[j]`` marks the varying entries its nonbasic variables sit at; ``y``, ``z`` its duals."""

    A: np.ndarray
    c: np.ndarray
    b_ref: np.ndarray  # [2m + 2n]
    V: np.ndarray  # [2m + 2n] bool: entries that have varied
    count: int = 0
    Q: torch.Tensor | None = None
    q0: torch.Tensor | None = None
    rep: torch.Tensor | None = None
    used: torch.Tensor | None = None
    y: np.ndarray | None = None
    z: np.ndarray | None = None
    hits: np.ndarray | None = None
    loose: dict = field(default_factory=dict)  # slot -> b indices where the dual sign needs lower == upper
    sigs: list = field(default_factory=list)  # slot -> status signature
    seen: dict = field(default_factory=dict)  # signature -> slot
    session: dict = field(default_factory=dict)  # the HiGHS model of this matrix, kept warm between calls

    def reset(self) -> None:
        self.count, self.Q, self.q0, self.rep, self.used, self.y, self.z, self.hits = 0, *([None] * 7)
        self.loose, self.sigs, self.seen = {}, [], {}


class BasisCache:
    """Optimal bases per ``(A, c)`` (see the module text). ``max_bases`` per key (the least used slot is reused),
    ``max_keys`` keys (least recently used go first); ``tol``: relative primal feasibility tolerance;
    ``candidates``: the held bases tried per LP, nearest first (by the bounds of the LP each was found on)."""

    def __init__(self, max_bases: int = 1024, max_keys: int = 128, tol: float = 1e-9, candidates: int = 4):
        self.max_bases, self.max_keys, self.tol, self.candidates = max_bases, max_keys, tol, candidates
        self.keys: OrderedDict[bytes, _Key] = OrderedDict()
        self.stats = {"hits": 0, "misses": 0, "resets": 0}

    def clear(self) -> None:
        self.keys.clear()
        self.stats = {k: 0 for k in self.stats}

    @property
    def hit_rate(self) -> float:
        n = self.stats["hits"] + self.stats["misses"]
        return self.stats["hits"] / n if n else 0.0

    @property
    def bases(self) -> int:
        return sum(k.count for k in self.keys.values())

    # --- keys ------------------------------------------------------------------------------------------------
    def _key(self, A: np.ndarray, c: np.ndarray, b: np.ndarray) -> _Key:
        h = hashlib.blake2b(digest_size=16)
        h.update(np.asarray(A.shape, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(A).tobytes())
        h.update(np.ascontiguousarray(c).tobytes())
        k = h.digest()
        if k in self.keys:
            self.keys.move_to_end(k)
            return self.keys[k]
        entry = _Key(A.copy(), c.copy(), b[0].copy(), np.zeros(b.shape[1], dtype=bool))
        self.keys[k] = entry
        while len(self.keys) > self.max_keys:
            self.keys.popitem(last=False)
        return entry

    def _vary(self, key: _Key, b: np.ndarray) -> None:
        """Mark the entries of ``b`` that differ from the key's reference; drop the bases if new ones do."""
        diff = ~((b == key.b_ref[None, :]) | (np.isnan(b) & np.isnan(key.b_ref[None, :]))).all(0)
        new = diff & ~key.V
        if new.any():
            key.V |= new
            if key.count:
                self.stats["resets"] += 1
            key.reset()

    # --- bases -----------------------------------------------------------------------------------------------
    def _add(self, key: _Key, col_status: np.ndarray, row_status: np.ndarray, bV: np.ndarray) -> None:
        sig = col_status.tobytes() + row_status.tobytes()
        if sig in key.seen:
            return
        A, c = key.A, key.c
        m, n = A.shape
        bc, br = col_status == BASIC, row_status == BASIC
        if bc.sum() != (~br).sum() or np.any(row_status >= ZERO) or np.any(col_status > ZERO):
            return  # not a square basis we can read
        # the bound each nonbasic column / row sits at, as an index into b = (row_lo, row_hi, lb, ub)
        cols_b, cols_n, rows_n = np.nonzero(bc)[0], np.nonzero(~bc)[0], np.nonzero(~br)[0]
        cs, rs = col_status[cols_n], row_status[rows_n]
        czero = cs == ZERO
        cidx = np.where(cs == UPPER, 2 * m + n + cols_n, 2 * m + cols_n)
        ridx = np.where(rs == UPPER, m + rows_n, rows_n)
        if not np.isfinite(key.b_ref[cidx[~czero & ~key.V[cidx]]]).all():
            return  # a nonbasic column at an infinite bound
        Vi = np.nonzero(key.V)[0]
        bref = np.where(np.isfinite(key.b_ref) & ~key.V, key.b_ref, 0.0)
        # x_N = E_c b (0 for free nonbasic columns); A[Nr, Bc] x_B = E_r b - A[Nr, Nc] x_N; affine in b[V]
        PN = ((cidx[:, None] == Vi[None, :]) & ~czero[:, None]).astype(np.float64)  # [|Nc|, |V|]
        xN0 = np.where(czero, 0.0, bref[cidx])
        T = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        ANN = T(A[np.ix_(rows_n, cols_n)])
        Er = T((ridx[:, None] == Vi[None, :]).astype(np.float64))
        rhs = torch.cat([Er - ANN @ T(PN), (T(bref[ridx]) - ANN @ T(xN0))[:, None]], 1)
        lu, piv, info = torch.linalg.lu_factor_ex(T(A[np.ix_(rows_n, cols_b)]))
        if int(info) != 0:
            return  # a singular basis matrix
        sol = torch.linalg.lu_solve(lu, piv, rhs)
        yN = torch.linalg.lu_solve(lu, piv, T(c[cols_b]).unsqueeze(1), adjoint=True)[:, 0].numpy()
        if not (bool(torch.isfinite(sol).all()) and np.isfinite(yN).all()):
            return
        Qx = torch.zeros(n, len(Vi) + 1, dtype=torch.float64)
        Qx[T(cols_n), :-1] = T(PN)
        Qx[T(cols_n), -1] = T(xN0)
        Qx[T(cols_b)] = sol
        full = torch.cat([Qx, T(A) @ Qx], 0)  # [n + m, |V| + 1]: x and the row activities
        y = np.zeros(m)
        y[rows_n] = yN
        z = c - A.T @ y
        z[cols_b] = 0.0
        # dual sign at each nonbasic bound; a wrong sign is fine only where that bound pair is equal
        tol = 1e-7 * (1.0 + max(float(np.abs(y).max(initial=0.0)), float(np.abs(z).max(initial=0.0))))
        zn = z[cols_n]
        if (czero & (np.abs(zn) > tol)).any():
            return  # a free nonbasic column with a nonzero reduced cost: optimal for no bounds
        bad_c = ((cs == LOWER) & (zn < -tol)) | ((cs == UPPER) & (zn > tol))
        bad_r = ((rs == LOWER) & (yN < -tol)) | ((rs == UPPER) & (yN > tol))
        loose = np.concatenate([rows_n[bad_r], 2 * m + cols_n[bad_c]])
        used = np.zeros(len(key.V), dtype=bool)
        used[np.concatenate([cidx[~czero], ridx])] = True
        j = self._slot(key, len(Vi), n, m)
        key.Q[j], key.q0[j] = full[:, :-1].T, full[:, -1]
        key.rep[j], key.used[j] = T(bV), T(used[key.V])
        key.y[j], key.z[j], key.hits[j] = y, z, 0
        key.loose.pop(j, None)
        if len(loose):
            key.loose[j] = loose
        if j < len(key.sigs):
            key.seen.pop(key.sigs[j], None)
            key.sigs[j] = sig
        else:
            key.sigs.append(sig)
        key.seen[sig] = j

    def _slot(self, key: _Key, v: int, n: int, m: int) -> int:
        """A free slot (the buffers grow by doubling up to ``max_bases``; then the least used slot)."""
        if key.Q is None:
            cap = min(16, self.max_bases)
            key.Q = torch.zeros(cap, v, n + m, dtype=torch.float64)
            key.q0 = torch.zeros(cap, n + m, dtype=torch.float64)
            key.rep = torch.zeros(cap, v, dtype=torch.float64)
            key.used = torch.zeros(cap, v, dtype=torch.bool)
            key.y, key.z, key.hits = np.zeros((cap, m)), np.zeros((cap, n)), np.zeros(cap, dtype=np.int64)
        cap = key.Q.shape[0]
        if key.count < cap:
            key.count += 1
            return key.count - 1
        if cap < self.max_bases:
            new = min(2 * cap, self.max_bases)
            grow = lambda t: torch.cat([t, torch.zeros(new - cap, *t.shape[1:], dtype=t.dtype)], 0)  # noqa: E731
            key.Q, key.q0, key.rep, key.used = grow(key.Q), grow(key.q0), grow(key.rep), grow(key.used)
            key.y = np.concatenate([key.y, np.zeros((new - cap, m))])
            key.z = np.concatenate([key.z, np.zeros((new - cap, n))])
            key.hits = np.concatenate([key.hits, np.zeros(new - cap, dtype=np.int64)])
            key.count += 1
            return key.count - 1
        return int(np.argmin(key.hits))

    def _fits(self, key: _Key, b: np.ndarray, bV: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``(slot [R], x [R, n])``: for each row of ``b`` a held basis that is optimal for it (-1: none; the
        ``candidates`` nearest are tried, nearest first) and that basis's solution."""
        m, n = key.A.shape
        R, K = b.shape[0], key.count
        tol = self.tol
        lower = torch.from_numpy(np.concatenate([b[:, 2 * m : 2 * m + n], b[:, :m]], 1))
        upper = torch.from_numpy(np.concatenate([b[:, 2 * m + n :], b[:, m : 2 * m]], 1))
        lower, upper = lower - tol * (1 + lower.abs()), upper + tol * (1 + upper.abs())
        infV = ~torch.isfinite(torch.from_numpy(b[:, key.V]))
        reps = key.rep[:K]
        scale = 1.0 / (reps.abs().amax(0) + 1e-12)
        d = torch.cdist(bV * scale, reps * scale)  # [R, K]
        near = torch.topk(d, min(self.candidates, K), dim=1, largest=False).indices  # [R, c]
        slot = np.full(R, -1)
        X = np.zeros((R, n))
        left = torch.arange(R)
        for j in range(near.shape[1]):
            if not len(left):
                break
            cand = near[left, j]
            out = torch.bmm(bV[left].unsqueeze(1), key.Q[cand]).squeeze(1) + key.q0[cand]  # [r, n + m]
            ok = ((out >= lower[left]) & (out <= upper[left])).all(1)
            bad_inf = infV[left] & key.used[cand]
            ok &= ~bad_inf.any(1)
            cand_np = cand.numpy()
            for i in np.nonzero(ok.numpy())[0]:
                lo_i = key.loose.get(int(cand_np[i]))
                if lo_i is not None:
                    r = int(left[i])
                    hi_i = np.where(lo_i < m, lo_i + m, lo_i + n)
                    ok[i] = bool((b[r, lo_i] == b[r, hi_i]).all())
            okn = ok.numpy()
            got = left[ok].numpy()
            slot[got] = cand_np[okn]
            X[got] = out[ok, :n].numpy()
            left = left[~ok]
        return slot, X

    # --- solving ---------------------------------------------------------------------------------------------
    def solve(self, lp: LP, **highs_options) -> LPSolution:
        """Solve the batch (see the module text)."""
        if lp.A.dim() != 2:
            sol = solve_highs(lp, **highs_options)
            sol.info["backend"] = "basis_cache"
            return sol
        f = lambda t: t.detach().to("cpu", torch.float64).numpy()  # noqa: E731
        c_all = f(lp.c)
        groups = [np.arange(lp.batch)] if (c_all == c_all[0]).all() else None
        if groups is None:
            _, inv = np.unique(c_all, axis=0, return_inverse=True)
            groups = [np.nonzero(inv.reshape(-1) == g)[0] for g in range(int(inv.max()) + 1)]
        B = lp.batch
        m, n = lp.shape
        X, Y, Z, V = np.zeros((B, n)), np.zeros((B, m)), np.zeros((B, n)), np.full(B, np.nan)
        status = ["optimal"] * B
        A = f(lp.A)
        b_all = np.concatenate([f(lp.row_lo), f(lp.row_hi), f(lp.lb), f(lp.ub)], 1)
        for rows in groups:
            c = c_all[rows[0]]
            b = b_all[rows]
            key = self._key(A, c, b)
            self._vary(key, b)
            bV_np = np.where(np.isfinite(b[:, key.V]), b[:, key.V], 0.0)
            bV = torch.from_numpy(bV_np)
            left = np.arange(len(rows))
            if key.count:
                slot, x = self._fits(key, b, bV)
                hit = slot >= 0
                if hit.any():
                    g, s_hit = rows[hit], slot[hit]
                    X[g], Y[g], Z[g] = x[hit], key.y[s_hit], key.z[s_hit]
                    V[g] = X[g] @ c
                    np.add.at(key.hits, s_hit, 1)
                    self.stats["hits"] += int(hit.sum())
                    left = left[~hit]
            if len(left):
                g = rows[left]
                sub = LP(lp.c[g], lp.A, lp.row_lo[g], lp.row_hi[g], lp.lb[g], lp.ub[g], None)  # constant added below
                sol = solve_highs(sub, bases=True, session=key.session, **highs_options)
                self.stats["misses"] += len(left)
                X[g], Y[g], Z[g] = f(sol.x), f(sol.y), f(sol.z)
                V[g] = f(sol.value)
                for j, st in enumerate(sol.status):
                    status[g[j]] = st
                for j, (cs, rs) in enumerate(sol.info.get("bases", [])):
                    if cs is not None:
                        self._add(key, cs, rs, bV_np[left[j]])
        const = f(lp.const) if lp.const is not None else 0.0
        like = dict(dtype=lp.c.dtype, device=lp.c.device)
        return LPSolution(
            torch.as_tensor(X, **like),
            torch.as_tensor(V + const, **like),
            torch.as_tensor(Y, **like),
            torch.as_tensor(Z, **like),
            status,
            {"backend": "basis_cache", **self.stats},
        )


DEFAULT_CACHE = BasisCache()


def solve_cached(lp: LP, cache: BasisCache | None = None, **highs_options) -> LPSolution:
    """``solve(lp, backend="basis_cache")``: :meth:`BasisCache.solve` on ``cache`` (default: the process's)."""
    return (cache or DEFAULT_CACHE).solve(lp, **highs_options)
