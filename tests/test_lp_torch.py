"""The batched torch LP solver against HiGHS (a peer solver) and hand solutions."""

import math

import pytest
import torch

from opsrl.core.lp import LP, StageLP, solve

INF = math.inf
D = torch.float64


def random_lp(B, m, n, seed, shared=False):
    """A feasible, bounded LP per batch row, often degenerate: every row kind (equality, <=, >=, range, free)
    and column kind (box, lower, upper, free). Feasible through a point x0; bounded because c = A^T y + z
    with signs that make (y, z) dual feasible."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: 0.1 + torch.rand(*s, generator=g, dtype=D)  # noqa: E731
    A = torch.randn(*((m, n) if shared else (B, m, n)), generator=g, dtype=D)
    A = A * (torch.rand(A.shape, generator=g) < 0.7)
    x0 = torch.randn(B, n, generator=g, dtype=D)
    Ax = x0 @ A.T if shared else torch.bmm(A, x0.unsqueeze(2)).squeeze(2)
    kind = torch.randint(0, 5, (B, m), generator=g)  # 0 eq, 1 <=, 2 >=, 3 range, 4 free
    lo = torch.where(kind == 0, Ax, torch.where((kind == 2) | (kind == 3), Ax - r(B, m), -INF))
    hi = torch.where(kind == 0, Ax, torch.where((kind == 1) | (kind == 3), Ax + r(B, m), INF))
    ck = torch.randint(0, 4, (B, n), generator=g)  # 0 box, 1 lower, 2 upper, 3 free
    lb = torch.where((ck == 0) | (ck == 1), x0 - r(B, n), -INF)
    ub = torch.where((ck == 0) | (ck == 2), x0 + r(B, n), INF)
    y = torch.randn(B, m, generator=g, dtype=D)
    y = torch.where(kind == 1, -y.abs(), torch.where(kind == 2, y.abs(), torch.where(kind == 4, 0.0, y)))
    z = torch.randn(B, n, generator=g, dtype=D)
    z = torch.where(ck == 1, z.abs(), torch.where(ck == 2, -z.abs(), torch.where(ck == 3, 0.0, z)))
    c = (y @ A if shared else torch.bmm(y.unsqueeze(1), A).squeeze(1)) + z
    return LP(c, A, lo, hi, lb, ub, torch.randn(B, generator=g, dtype=D))


def nondegenerate_lp(B, m, n, seed, shared=False):
    """An LP per batch row built around a known optimal vertex x* with strictly complementary duals (y*, z*):
    a random set of n active constraints (rows, equality or one-sided, and column bounds) holds at x*,
    every other constraint is strictly slack (finite or infinite, free rows and free columns among them),
    and c = A^T y* + z* with y*, z* nonzero exactly on the active ones, with the right signs. x*, y*, z* are
    then the unique solution (the active matrix is almost surely nonsingular)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: 0.2 + torch.rand(*s, generator=g, dtype=D)  # noqa: E731
    A = torch.randn(*((m, n) if shared else (B, m, n)), generator=g, dtype=D)
    Ab = A.expand(B, m, n) if shared else A
    x = torch.randn(B, n, generator=g, dtype=D)
    Ax = torch.bmm(Ab, x.unsqueeze(2)).squeeze(2)
    k_rows = torch.randint(1, min(m, n) + 1, (B,), generator=g)
    # the first k_rows rows of a random permutation are active, and n - k_rows columns
    row_act = torch.argsort(torch.rand(B, m, generator=g), 1).argsort(1) < k_rows.unsqueeze(1)
    col_act = torch.argsort(torch.rand(B, n, generator=g), 1).argsort(1) < (n - k_rows).unsqueeze(1)
    side_r = torch.randint(0, 3, (B, m), generator=g)  # active: 0 equality, 1 at lower, 2 at upper
    slack_r = torch.randint(0, 4, (B, m), generator=g)  # slack: 0 range, 1 only lower, 2 only upper, 3 free
    far = lambda t: torch.where(torch.rand(t.shape, generator=g) < 0.5, t, torch.full_like(t, INF))  # noqa: E731
    lo = torch.where(
        row_act,
        torch.where(side_r == 2, Ax - far(r(B, m)), Ax),
        torch.where((slack_r == 0) | (slack_r == 1), Ax - r(B, m), -INF),
    )
    hi = torch.where(
        row_act,
        torch.where(side_r == 1, Ax + far(r(B, m)), Ax),
        torch.where((slack_r == 0) | (slack_r == 2), Ax + r(B, m), INF),
    )
    mag_y = r(B, m)
    y = torch.where(
        row_act,
        torch.where(
            side_r == 2,
            -mag_y,
            torch.where(side_r == 1, mag_y, mag_y * torch.sign(torch.randn(B, m, generator=g, dtype=D))),
        ),
        0.0,
    )
    side_c = torch.randint(0, 2, (B, n), generator=g)  # active: 0 at lower, 1 at upper
    slack_c = torch.randint(0, 4, (B, n), generator=g)
    lb = torch.where(
        col_act,
        torch.where(side_c == 0, x, x - far(r(B, n))),
        torch.where((slack_c == 0) | (slack_c == 1), x - r(B, n), -INF),
    )
    ub = torch.where(
        col_act,
        torch.where(side_c == 1, x, x + far(r(B, n))),
        torch.where((slack_c == 0) | (slack_c == 2), x + r(B, n), INF),
    )
    z = torch.where(col_act, torch.where(side_c == 0, 1.0, -1.0) * r(B, n), 0.0)
    c = torch.bmm(y.unsqueeze(1), Ab).squeeze(1) + z
    const = torch.randn(B, generator=g, dtype=D)
    return LP(c, A, lo, hi, lb, ub, const), x, y, z


@pytest.mark.parametrize("seed,shared", [(0, True), (1, False), (2, True), (3, False)])
def test_nondegenerate_lps_agree_with_highs_and_the_known_vertex(seed, shared):
    lp, x_star, y_star, z_star = nondegenerate_lp(48, 7, 11, seed, shared)
    h, t = solve(lp, "highs"), solve(lp, "torch")
    assert h.optimal and t.optimal
    assert torch.allclose(h.x, x_star, atol=1e-7) and torch.allclose(h.y, y_star, atol=1e-7)  # the construction
    value = (lp.c * x_star).sum(1) + lp.const
    assert torch.allclose(t.value, value, rtol=1e-8, atol=1e-8)
    assert torch.allclose(t.x, h.x, atol=1e-6)
    assert torch.allclose(t.y, h.y, atol=1e-6)
    assert torch.allclose(t.z, h.z, atol=1e-6)


@pytest.mark.parametrize("seed,shared", [(4, True), (5, False)])
def test_degenerate_random_lps_values_and_optimality_conditions(seed, shared):
    lp = random_lp(48, 7, 11, seed, shared)
    h, t = solve(lp, "highs"), solve(lp, "torch")
    assert h.optimal and t.optimal
    assert torch.all((t.value - h.value).abs() <= 1e-7 * (1 + h.value.abs()))
    A = lp.A.expand(lp.batch, *lp.shape) if lp.A.dim() == 2 else lp.A
    act = torch.bmm(A, t.x.unsqueeze(2)).squeeze(2)
    tol = 1e-7
    # primal feasibility
    assert torch.all(act >= lp.row_lo - tol) and torch.all(act <= lp.row_hi + tol)
    assert torch.all(t.x >= lp.lb - tol) and torch.all(t.x <= lp.ub + tol)
    # dual feasibility and complementary slackness: y > 0 only on an active lower bound, y < 0 on an upper
    for dual, val, low, high in ((t.y, act, lp.row_lo, lp.row_hi), (t.z, t.x, lp.lb, lp.ub)):
        pos, neg = dual.clamp(min=0), (-dual).clamp(min=0)
        assert torch.all(torch.where(torch.isinf(low), pos, 0.0) <= tol)
        assert torch.all(torch.where(torch.isinf(high), neg, 0.0) <= tol)
        assert torch.all(pos * torch.nan_to_num(val - low, posinf=0.0) <= 1e-6)
        assert torch.all(neg * torch.nan_to_num(high - val, posinf=0.0) <= 1e-6)
    assert torch.allclose(t.z, lp.c - torch.bmm(t.y.unsqueeze(1), A).squeeze(1), atol=1e-9)


def test_hand_solution_and_finite_difference_duals():
    # min x1 + 2 x2  s.t.  x1 + x2 >= 3,  x1 <= 2,  x2 - x1 = 0.5,  x >= 0: x = (1.25, 1.75), value 4.75,
    # value = 1.5 b0 + 0.5 b2 -> duals (1.5, 0, 0.5)
    A = torch.tensor([[1.0, 1.0], [1.0, 0.0], [-1.0, 1.0]], dtype=D)
    lp = LP(
        torch.tensor([[1.0, 2.0]], dtype=D),
        A,
        torch.tensor([[3.0, -INF, 0.5]], dtype=D),
        torch.tensor([[INF, 2.0, 0.5]], dtype=D),
        torch.zeros(1, 2, dtype=D),
        torch.full((1, 2), INF, dtype=D),
    )
    sol = solve(lp, "torch")
    assert sol.status == ["optimal"]
    assert torch.allclose(sol.x, torch.tensor([[1.25, 1.75]], dtype=D), atol=1e-8)
    assert sol.value.item() == pytest.approx(4.75, abs=1e-8)
    assert torch.allclose(sol.y, torch.tensor([[1.5, 0.0, 0.5]], dtype=D), atol=1e-7)
    assert torch.allclose(sol.z, torch.zeros(1, 2, dtype=D), atol=1e-7)


def test_degenerate_lp_values_and_optimality_conditions():
    # a repeated row (its dual splits in any proportion) and a cost tie (a face of optimal x):
    # min x1 + x2  s.t.  x1 + x2 >= 1 (twice),  0 <= x <= 1: value 1 for any split
    A = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=D)
    B = 3
    lp = LP(
        torch.ones(B, 2, dtype=D),
        A,
        torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.5, 1.0]], dtype=D),
        torch.full((B, 2), INF, dtype=D),
        torch.zeros(B, 2, dtype=D),
        torch.ones(B, 2, dtype=D),
    )
    h, t = solve(lp, "highs"), solve(lp, "torch")
    assert t.optimal
    assert torch.allclose(t.value, h.value, atol=1e-8)
    assert torch.allclose(t.value, torch.ones(B, dtype=D), atol=1e-8)
    act = t.x @ A.T
    assert torch.all(act >= lp.row_lo - 1e-8) and torch.all((t.x >= -1e-9) & (t.x <= 1 + 1e-9))
    # dual feasibility: >= rows have y >= 0, duals sum to the cost; complementary slackness
    assert torch.all(t.y >= -1e-9)
    assert torch.allclose(t.y.sum(1), torch.ones(B, dtype=D), atol=1e-7)
    assert torch.allclose(t.y * (act - lp.row_lo), torch.zeros_like(t.y), atol=1e-7)
    assert torch.allclose(t.z, torch.zeros(B, 2, dtype=D), atol=1e-7)  # x interior of [0, 1]: no bound active
    # the row that is slack in batch row 2 (lo = 0.5) carries no dual
    assert t.y[2, 0].item() == pytest.approx(0.0, abs=1e-7)


def test_infeasible_and_unbounded_are_reported():
    one = torch.ones(1, 1, dtype=D)
    infeasible = LP(one, one, one, torch.full((1, 1), INF, dtype=D), torch.full((1, 1), -INF, dtype=D), 0 * one)
    unbounded = LP(-one, one, one, torch.full((1, 1), INF, dtype=D), 0 * one, torch.full((1, 1), INF, dtype=D))
    assert solve(infeasible, "torch").status == ["infeasible"]
    assert solve(unbounded, "torch").status == ["unbounded"]
    assert math.isnan(solve(infeasible, "torch").value.item())


def test_float32_input_comes_back_in_float32_and_agrees():
    lp = random_lp(8, 5, 6, 7)
    lp32 = LP(*(t.float() for t in (lp.c, lp.A, lp.row_lo, lp.row_hi, lp.lb, lp.ub)), lp.const.float())
    t = solve(lp32, "torch")
    h = solve(lp, "highs")
    assert t.x.dtype == torch.float32 and t.optimal
    assert torch.allclose(t.value.double(), h.value, atol=1e-4)


def test_target_rows_give_the_same_gradients_as_highs():
    # one reservoir (tests/test_lp.py): x_out + q = x_in + inflow, q + u >= 4, cost 3 u; target 5, penalty 10
    x_in, inflow = 6.0, 1.0
    A = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]], dtype=D)
    lp = LP(
        torch.tensor([[0.0, 0.0, 3.0]], dtype=D),
        A,
        torch.tensor([[x_in + inflow, 4.0]], dtype=D),
        torch.tensor([[x_in + inflow, INF]], dtype=D),
        torch.zeros(1, 3, dtype=D),
        torch.tensor([[10.0, 5.0, INF]], dtype=D),
    )
    stage = StageLP(lp, torch.tensor([[x_in]], dtype=D), torch.tensor([[1.0], [0.0]], dtype=D), torch.tensor([0]))
    target_lp, rows = stage.with_target(torch.tensor([[5.0]], dtype=D), 10.0)
    sol = solve(target_lp.lp, "torch")
    assert sol.value.item() == pytest.approx(6.0, abs=1e-7)
    assert sol.y[0, rows].item() == pytest.approx(3.0, abs=1e-6)
    assert target_lp.state_gradient(sol).item() == pytest.approx(-3.0, abs=1e-6)
