"""The basis-cache LP back end (opsrl.core.lp_cache) against HiGHS solving every LP afresh."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from opsrl.core.lp import LP, solve, solve_highs
from opsrl.core.lp_cache import BasisCache

torch.set_num_threads(1)


def vertex_lp(m: int, n: int, B: int, seed: int, spread: float) -> LP:
    """LPs sharing ``A`` and ``c`` (always the same) whose bounds are those of one nondegenerate optimal vertex,
    moved at random (stream ``seed``) by up to ``spread``: every kind of row (equality, <=, >=, range) and column
    (box, one-sided, free)."""
    g = np.random.default_rng(12345)
    A = g.normal(size=(m, n))
    x0 = g.normal(size=n)
    # the first m columns are basic (strictly inside their bounds), the rest sit at a bound; rows: some binding
    kinds = np.arange(m) % 4  # 0 equality, 1 <= binding, 2 >= binding, 3 range (slack basic)
    act = A @ x0
    lo, hi = np.full(m, -math.inf), np.full(m, math.inf)
    lo[kinds == 0], hi[kinds == 0] = act[kinds == 0], act[kinds == 0]
    hi[kinds == 1] = act[kinds == 1]
    lo[kinds == 2] = act[kinds == 2]
    lo[kinds == 3], hi[kinds == 3] = act[kinds == 3] - 1.0, act[kinds == 3] + 1.0
    lb, ub = x0 - 1.0, x0 + 1.0
    lb[n // 3 :: 5] = -math.inf  # one-sided and free columns
    ub[n // 2 :: 7] = math.inf
    nonbasic = np.arange(n) >= n - (m - (kinds == 3).sum())
    at_lo = nonbasic & (np.arange(n) % 2 == 0)
    at_hi = nonbasic & ~at_lo
    lb[at_lo], ub[at_lo] = x0[at_lo], x0[at_lo] + 1.0
    lb[at_hi], ub[at_hi] = x0[at_hi] - 1.0, x0[at_hi]
    # duals that make the vertex optimal: y of the right sign on binding rows, z on the nonbasic columns
    y = np.zeros(m)
    y[kinds == 0] = g.normal(size=(kinds == 0).sum())
    y[kinds == 1] = -g.uniform(0.5, 1.5, (kinds == 1).sum())
    y[kinds == 2] = g.uniform(0.5, 1.5, (kinds == 2).sum())
    z = np.zeros(n)
    z[at_lo] = g.uniform(0.5, 1.5, at_lo.sum())
    z[at_hi] = -g.uniform(0.5, 1.5, at_hi.sum())
    c = A.T @ y + z
    T = lambda a: torch.as_tensor(np.tile(a, (B, 1)), dtype=torch.float64)  # noqa: E731
    lp = LP(T(c), torch.as_tensor(A), T(lo), T(hi), T(lb), T(ub), torch.full((B,), 2.5, dtype=torch.float64))
    # move the finite bounds (a pair keeps its order)
    g = np.random.default_rng(seed)
    for t in (lp.row_lo, lp.row_hi, lp.lb, lp.ub):
        shift = torch.as_tensor(g.uniform(-spread, spread, (B, 1)) * g.normal(size=(B, t.shape[1])))
        t.add_(torch.where(torch.isfinite(t), shift, torch.zeros_like(t)))
    lp.row_hi.copy_(torch.maximum(lp.row_hi, lp.row_lo))
    lp.ub.copy_(torch.maximum(lp.ub, lp.lb))
    eq = torch.as_tensor(kinds == 0).expand(B, -1)
    lp.row_hi.copy_(torch.where(eq, lp.row_lo, lp.row_hi))
    return lp


def close(a, b, tol):
    return float((a - b).abs().max()) <= tol * (1 + float(b.abs().max()))


@pytest.mark.parametrize("spread", [1e-3, 0.3])
def test_cached_bases_give_highs_answers_on_random_bounds(spread):
    m, n = 12, 20
    cache = BasisCache()
    seen = solve_highs(vertex_lp(m, n, 40, 0, spread))  # (the reference for the first batch)
    assert seen.optimal
    cache.solve(vertex_lp(m, n, 40, 0, spread))  # fills the cache from HiGHS's bases
    for seed in (1, 2, 3):
        lp = vertex_lp(m, n, 60, seed, spread)
        ref = solve_highs(lp, warm=False)
        before = cache.stats["hits"]
        sol = cache.solve(lp)
        ok = [s == "optimal" for s in ref.status]
        assert sol.status == ref.status
        assert close(sol.value[ok], ref.value[ok], 1e-9)
        # nondegenerate vertices: the solution and the duals are unique
        assert close(sol.x[ok], ref.x[ok], 1e-7)
        assert close(sol.y[ok], ref.y[ok], 1e-7)
        assert close(sol.z[ok], ref.z[ok], 1e-7)
        hits = cache.stats["hits"] - before
        if spread < 0.01:
            assert hits == 60  # every LP stays at the vertex's basis
    if spread > 0.1:
        assert cache.stats["misses"] > 40  # large moves leave the first basis: HiGHS was asked again


def test_a_basis_is_not_reused_where_its_duals_have_the_wrong_sign():
    """min x1 - x2 s.t. x1 + x2 = 1, 0 <= x1 <= u1, 0 <= x2 <= u2. With u2 = 0 (x2 fixed at 0) HiGHS may keep
    x2 nonbasic at its lower bound with reduced cost -2 < 0; when x2's bounds open that basis is not optimal."""
    cache = BasisCache()

    def lp(u2):
        B = len(u2)
        f = lambda *v: torch.tensor([list(v)] * B, dtype=torch.float64)  # noqa: E731
        ub = f(1.0, 1.0)
        ub[:, 1] = torch.tensor(u2, dtype=torch.float64)
        return LP(f(1.0, -1.0), torch.tensor([[1.0, 1.0]], dtype=torch.float64), f(1.0), f(1.0), f(0.0, 0.0), ub)

    first = cache.solve(lp([0.0]))
    assert first.value.tolist() == pytest.approx([1.0])
    sol = cache.solve(lp([0.0, 0.5, 1.0]))
    # by hand: u2 = 0 -> x = (1, 0), value 1; u2 = 0.5 -> (0.5, 0.5), value 0; u2 = 1 -> (0, 1), value -1
    assert sol.value.tolist() == pytest.approx([1.0, 0.0, -1.0])
    assert sol.x.reshape(-1).tolist() == pytest.approx([1.0, 0.0, 0.5, 0.5, 0.0, 1.0])


def test_the_back_end_on_hydro_stage_lps():
    """bolivia's TS-DDR stage LPs (with target rows) at random volumes, inflows and targets near the volumes:
    values, duals and feasibility as HiGHS's, through ``solve(lp, "basis_cache")``."""
    from opsrl.registry import load_problem

    p = load_problem("hydro/bolivia")
    cache = BasisCache()
    for seed in range(3):
        B, t = 64, 5 * seed
        sc = p.sample(B, "train", seed, periods=t + 1)
        g = torch.Generator().manual_seed(seed)
        vol = torch.rand(B, p.H, generator=g, dtype=torch.float64) * p.vmax_t * 0.01
        st = {"volume": vol, "inflow": sc["inflow"][:, t], "t": torch.full((B,), float(t), dtype=torch.float64)}
        lo, hi = p.target_bounds(st)
        target = (vol + 0.01 * (torch.rand(vol.shape, generator=g, dtype=torch.float64) - 0.5)).clamp(lo, hi)
        lp = p.stage_lp(st, None, t).with_target(target, p.target_penalty)[0].lp
        ref = solve(lp, "highs")
        sol = solve(lp, "basis_cache", cache=cache)
        assert sol.optimal and ref.optimal
        assert close(sol.value, ref.value, 1e-10)
        act = sol.x @ lp.A.T
        for viol in (lp.row_lo - act, act - lp.row_hi, lp.lb - sol.x, sol.x - lp.ub):
            assert float(viol.clamp(min=0).max()) <= 1e-8
        # the duals certify the value: c.x = dual objective (the same value as HiGHS's, strong duality)
        assert close(sol.z, lp.c - sol.y @ lp.A, 1e-10)
    assert cache.stats["hits"] > 0
