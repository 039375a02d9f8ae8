"""A batched LP solver in torch: a primal-dual interior point method with Mehrotra's predictor-corrector.

It solves the whole batch of an :class:`~opsrl.core.lp.LP` at once, on the LP's device and in its dtype
(float64 is the default and what the accuracy tests use), and returns the same :class:`LPSolution` as the
HiGHS back end: primal ``x``, ``value`` (with the constant), row duals ``y`` with ``y_i = d value / d (active
bound of row i)``, reduced costs ``z = c - A^T y`` and a status per batch row.

Method. Each row gets a slack ``s = A x`` so that the LP reads ``min c.x  s.t.  [A, -I] (x, s) = 0,
l <= (x, s) <= u`` with ``l = (lb, row_lo)`` and ``u = (ub, row_hi)``. Variables with equal bounds (equality
rows, fixed columns) are held at their value; the others stay strictly inside their bounds, and the
equality rows are reached by an infeasible-start Newton method on the perturbed KKT conditions. Each
iteration solves the dense normal equations ``[A, -I] Theta [A, -I]^T dy = r`` (``m x m``, batched Cholesky)
twice, for Mehrotra's affine and corrector directions, with separate primal and dual step lengths per batch
row. Free variables get a tiny primal regularisation, rank-deficient rows a tiny dual one. Before solving,
the matrix is equilibrated (Ruiz scaling of rows and columns) and the costs and bounds are scaled to unit
size; everything is unscaled on return. A batch row stops (its steps are frozen) once its relative primal
and dual residuals and its relative duality gap are below ``tol``.

Status: ``"optimal"`` when converged; ``"infeasible"`` when the dual iterates diverge while the primal
residual stays (a primal infeasibility certificate grows), ``"unbounded"`` when the primal iterates
diverge; ``"iteration_limit"`` otherwise. On degenerate LPs (non-unique duals) the interior point method
returns duals in the relative interior of the optimal dual face, not a vertex as the simplex method does:
the values agree, the duals need not.
"""

from __future__ import annotations

import math

import torch

from .lp import LP, LPSolution

__all__ = ["solve_torch"]


def _ruiz(A: torch.Tensor, iters: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column scale factors ``r`` ``[B, m]``, ``s`` ``[B, n]`` with ``diag(r) A diag(s)`` equilibrated."""
    B, m, n = A.shape
    r = torch.ones(B, m, dtype=A.dtype, device=A.device)
    s = torch.ones(B, n, dtype=A.dtype, device=A.device)
    M = A.abs()
    for _ in range(iters):
        Ms = M * r.unsqueeze(2) * s.unsqueeze(1)
        rn = Ms.amax(2)
        cn = Ms.amax(1)
        r = r / torch.where(rn > 0, rn.sqrt(), torch.ones_like(rn))
        s = s / torch.where(cn > 0, cn.sqrt(), torch.ones_like(cn))
    return r, s


def solve_torch(
    lp: LP,
    *,
    tol: float = 1e-10,
    max_iter: int = 100,
    dtype: torch.dtype | None = None,
    step: float = 0.995,
    scale: bool = True,
    refine: int = 2,
) -> LPSolution:
    """Solve every LP of the batch by a primal-dual interior point method (see the module text).

    ``dtype`` is the working precision (default: float64, whatever the LP's dtype); the solution comes back
    in the LP's dtype and on its device. ``tol`` is the relative tolerance on the primal and dual residuals
    and the duality gap; ``max_iter`` the most iterations; ``step`` the fraction of the step to the boundary.
    """
    out_dtype, dev = lp.c.dtype, lp.c.device
    dt = dtype or torch.float64
    B = lp.batch
    m, n = lp.shape
    N = n + m
    c = lp.c.to(dt)
    A = lp.A.to(dt)
    A = A.unsqueeze(0).expand(B, m, n) if A.dim() == 2 else A
    lb, ub, lo, hi = lp.lb.to(dt), lp.ub.to(dt), lp.row_lo.to(dt), lp.row_hi.to(dt)

    # --- scaling: x = cs * x', rows scaled by rs; costs by 1/cscale, bounds by 1/bscale -------------------
    if scale and m > 0:
        rs, cs = _ruiz(A)
    else:
        rs = torch.ones(B, m, dtype=dt, device=dev)
        cs = torch.ones(B, n, dtype=dt, device=dev)
    As = A * rs.unsqueeze(2) * cs.unsqueeze(1)
    cS = c * cs
    lbS, ubS = lb / cs, ub / cs
    loS, hiS = lo * rs, hi * rs
    fin = lambda t: torch.where(torch.isfinite(t), t.abs(), torch.zeros_like(t))  # noqa: E731
    if scale:
        cscale = cS.abs().amax(1).clamp_min(1e-12)
        bscale = (
            torch.cat([fin(lbS), fin(ubS), fin(loS), fin(hiS)], 1).amax(1).clamp_min(1.0)
            if N
            else torch.ones(B, dtype=dt, device=dev)
        )
    else:
        cscale = torch.ones(B, dtype=dt, device=dev)
        bscale = torch.ones(B, dtype=dt, device=dev)
    cS = cS / cscale.unsqueeze(1)
    l = torch.cat([lbS, loS], 1) / bscale.unsqueeze(1)
    u = torch.cat([ubS, hiS], 1) / bscale.unsqueeze(1)
    cv = torch.cat([cS, torch.zeros(B, m, dtype=dt, device=dev)], 1)
    G = torch.cat([As, -torch.eye(m, dtype=dt, device=dev).expand(B, m, m)], 2)  # [B, m, N]

    hasL, hasU = torch.isfinite(l), torch.isfinite(u)
    fixed = hasL & hasU & (u - l <= 1e-12 * (1 + l.abs()))
    hasL, hasU = hasL & ~fixed, hasU & ~fixed
    one = torch.ones_like(l)
    lz = torch.where(hasL, l, torch.zeros_like(l))
    uz = torch.where(hasU, u, torch.zeros_like(u))

    # --- starting point: x inside its box, s = A x pushed inside its box ------------------------------
    def interior(v0: torch.Tensor) -> torch.Tensor:
        width = torch.where(hasL & hasU, u - l, torch.full_like(l, math.inf))
        gap = torch.clamp(0.5 * width, max=1.0)
        v = torch.where(hasL, torch.maximum(v0, lz + gap), v0)
        v = torch.where(hasU, torch.minimum(v, uz - gap), v)
        v = torch.where(hasL & hasU & (width < 2.0), 0.5 * (lz + uz), v)
        return torch.where(fixed, torch.where(torch.isfinite(l), l, torch.zeros_like(l)), v)

    v = interior(torch.zeros(B, N, dtype=dt, device=dev))
    v = torch.cat([v[:, :n], torch.bmm(As, v[:, :n].unsqueeze(2)).squeeze(2) / 1.0], 1) if m else v
    v = interior(v)
    y = torch.zeros(B, m, dtype=dt, device=dev)
    zl = torch.where(hasL, one, torch.zeros_like(l))
    zu = torch.where(hasU, one, torch.zeros_like(u))
    nbound = (hasL.sum(1) + hasU.sum(1)).clamp_min(1).to(dt)
    reg_p = 1e-10
    reg_d = 1e-12
    eye_K = torch.eye(n + m, dtype=dt, device=dev)
    At = As.transpose(1, 2)

    def residuals(v, y, zl, zu):
        rp = -torch.bmm(G, v.unsqueeze(2)).squeeze(2)  # b - G v with b = 0
        rd = cv - torch.bmm(G.transpose(1, 2), y.unsqueeze(2)).squeeze(2) - zl + zu
        rd = torch.where(fixed, torch.zeros_like(rd), rd)
        return rp, rd

    def slacks(v):
        wl = torch.where(hasL, v - lz, one)
        wu = torch.where(hasU, uz - v, one)
        return wl, wu

    def max_step(w, dw, mask):
        ratio = torch.where(mask & (dw < 0), -w / dw.clamp(max=-1e-300), torch.full_like(w, math.inf))
        return (
            ratio.amin(1).clamp(max=1.0 / step)
            if ratio.shape[1]
            else torch.full((B,), 1.0 / step, dtype=dt, device=dev)
        )

    active = torch.ones(B, dtype=torch.bool, device=dev)
    status_code = torch.zeros(B, dtype=torch.long, device=dev)  # 0 running, 1 optimal, 2 infeasible, 3 unbounded
    cnorm = 1 + cv.abs().amax(1)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is reported)
        wl, wu = slacks(v)
        rp, rd = residuals(v, y, zl, zu)
        pobj = (cv * v).sum(1)
        dobj = (
            (lz * zl).sum(1)
            - (uz * zu).sum(1)
            + torch.where(
                fixed,
                l.nan_to_num(0.0) * (cv - torch.bmm(G.transpose(1, 2), y.unsqueeze(2)).squeeze(2)),
                torch.zeros_like(v),
            ).sum(1)
        )
        vnorm = 1 + v.abs().amax(1)
        pres = rp.abs().amax(1) / vnorm if m else torch.zeros(B, dtype=dt, device=dev)
        dres = rd.abs().amax(1) / cnorm
        gap = (pobj - dobj).abs() / (1 + pobj.abs())
        done = (pres < tol) & (dres < tol) & (gap < tol)
        newly = active & done
        status_code = torch.where(newly, torch.ones_like(status_code), status_code)
        # divergence: a certificate of infeasibility (dual ray) or unboundedness (primal ray)
        ynorm = (y.abs().amax(1) if m else torch.zeros(B, dtype=dt, device=dev)) + zl.amax(1) + zu.amax(1)
        infeas = active & ~done & (ynorm > 1e10)
        unb = active & ~done & (v.abs().amax(1) > 1e10)
        status_code = torch.where(infeas, torch.full_like(status_code, 2), status_code)
        status_code = torch.where(unb & ~infeas, torch.full_like(status_code, 3), status_code)
        active = active & ~done & ~infeas & ~unb
        if not bool(active.any()):
            break
        mu = (
            (wl * zl).where(hasL, torch.zeros_like(v)).sum(1) + (wu * zu).where(hasU, torch.zeros_like(v)).sum(1)
        ) / nbound
        theta_inv = torch.where(hasL, zl / wl, torch.zeros_like(v)) + torch.where(hasU, zu / wu, torch.zeros_like(v))
        # the Newton system with the slacks eliminated, a quasi-definite [n + m] system LU-factored once for
        # both directions:  -Dx dx + A^T dy = h_x,   A dx + F dy = rp - h_s / Ds   (F = 1 / Ds; equality rows
        # F = reg_d), then ds = -(dy + h_s) / Ds; a fixed column's row reads dx_j = 0
        dinv = theta_inv + reg_p
        fx, fs = fixed[:, :n], fixed[:, n:]
        Ds = dinv[:, n:]
        F = torch.where(fs, torch.full_like(Ds, reg_d), 1.0 / Ds)
        K = torch.zeros(B, n + m, n + m, dtype=dt, device=dev)
        K[:, :n, :n] = torch.diag_embed(torch.where(fx, torch.ones_like(dinv[:, :n]), -dinv[:, :n]))
        K[:, :n, n:] = torch.where(fx.unsqueeze(2), torch.zeros_like(At), At)
        K[:, n:, :n] = As
        K[:, n:, n:] = torch.diag_embed(F)
        K = torch.where(active.view(B, 1, 1), K, eye_K)  # frozen rows: any solvable system
        LU, piv, _ = torch.linalg.lu_factor_ex(K)

        def direction(rl, ru):
            h = torch.where(fixed, torch.zeros_like(v), rd - rl + ru)
            hx, hs = h[:, :n], h[:, n:]
            rhs = torch.cat([hx, rp - torch.where(fs, torch.zeros_like(hs), hs / Ds)], 1).unsqueeze(2)
            sol = torch.linalg.lu_solve(LU, piv, rhs)
            for _ in range(refine):  # iterative refinement (the system's scale spans many decades)
                sol = sol + torch.linalg.lu_solve(LU, piv, rhs - torch.bmm(K, sol))
            sol = sol.squeeze(2)
            dx, dy = sol[:, :n], sol[:, n:]
            ds = torch.where(fs, torch.zeros_like(dy), -(dy + hs) / Ds)
            dv = torch.cat([dx, ds], 1)
            dzl = torch.where(hasL, rl - zl / wl * dv, torch.zeros_like(v))
            dzu = torch.where(hasU, ru + zu / wu * dv, torch.zeros_like(v))
            return dv, dy, dzl, dzu

        # predictor (affine scaling)
        rl = torch.where(hasL, -zl, torch.zeros_like(v))
        ru = torch.where(hasU, -zu, torch.zeros_like(v))
        dv, dy, dzl, dzu = direction(rl, ru)
        ap = torch.minimum(max_step(wl, dv, hasL), max_step(wu, -dv, hasU)).clamp(max=1.0)
        ad = torch.minimum(max_step(zl, dzl, hasL), max_step(zu, dzu, hasU)).clamp(max=1.0)
        wl_a = wl + ap.unsqueeze(1) * dv
        wu_a = wu - ap.unsqueeze(1) * dv
        zl_a = zl + ad.unsqueeze(1) * dzl
        zu_a = zu + ad.unsqueeze(1) * dzu
        mu_aff = (
            (wl_a * zl_a).where(hasL, torch.zeros_like(v)).sum(1)
            + (wu_a * zu_a).where(hasU, torch.zeros_like(v)).sum(1)
        ) / nbound
        sigma = (mu_aff / mu.clamp_min(1e-300)).clamp(0, 1) ** 3
        smu = (sigma * mu).unsqueeze(1)
        # corrector
        rl = torch.where(hasL, (smu - wl * zl - dv * dzl) / wl, torch.zeros_like(v))
        ru = torch.where(hasU, (smu - wu * zu + dv * dzu) / wu, torch.zeros_like(v))
        dv, dy, dzl, dzu = direction(rl, ru)
        ap = (step * torch.minimum(max_step(wl, dv, hasL), max_step(wu, -dv, hasU))).clamp(max=1.0)
        ad = (step * torch.minimum(max_step(zl, dzl, hasL), max_step(zu, dzu, hasU))).clamp(max=1.0)
        ap = torch.where(active, ap, torch.zeros_like(ap)).unsqueeze(1)
        ad = torch.where(active, ad, torch.zeros_like(ad)).unsqueeze(1)
        keep = active.unsqueeze(1)  # frozen rows keep their iterate (0 * NaN would not)
        v = torch.where(keep, v + ap * dv, v)
        if m:
            y = torch.where(keep, y + ad * dy, y)
        zl = torch.where(keep, zl + ad * dzl, zl)
        zu = torch.where(keep, zu + ad * dzu, zu)
        # keep the strict interior after rounding
        v = torch.where(hasL, torch.maximum(v, lz + 1e-15 * (1 + lz.abs())), v)
        v = torch.where(hasU, torch.minimum(v, uz - 1e-15 * (1 + uz.abs())), v)

    # --- unscale ------------------------------------------------------------------------------------
    x = v[:, :n] * bscale.unsqueeze(1) * cs
    y_out = y * rs * cscale.unsqueeze(1)
    z = c - torch.bmm(A.transpose(1, 2), y_out.unsqueeze(2)).squeeze(2)
    value = (c * x).sum(1)
    if lp.const is not None:
        value = value + lp.const.to(dt)
    names = {0: "iteration_limit", 1: "optimal", 2: "infeasible", 3: "unbounded"}
    status = [names[int(k)] for k in status_code.tolist()]
    value = torch.where(status_code == 1, value, torch.full_like(value, math.nan))
    return LPSolution(
        x.to(out_dtype),
        value.to(out_dtype),
        y_out.to(out_dtype),
        z.to(out_dtype),
        status,
        {"backend": "torch", "iterations": it, "primal_residual": pres, "dual_residual": dres, "gap": gap},
    )
