"""The stated LP form and its HiGHS back end: values and duals against hand solutions and finite differences."""

import math

import pytest
import torch

from opsrl.core.lp import LP, StageLP, solve

INF = math.inf
D = torch.float64


def small_lp(b0=3.0, b1=2.0, b2=0.5):
    # min x1 + 2 x2  s.t.  x1 + x2 >= b0,  x1 <= b1,  x2 - x1 = b2,  x >= 0
    # by hand: x2 = x1 + b2, 2 x1 + b2 >= b0 -> x1 = (b0 - b2) / 2 = 1.25, x2 = 1.75, value 4.75
    A = torch.tensor([[1.0, 1.0], [1.0, 0.0], [-1.0, 1.0]], dtype=D)
    return LP(
        c=torch.tensor([[1.0, 2.0]], dtype=D),
        A=A,
        row_lo=torch.tensor([[b0, -INF, b2]], dtype=D),
        row_hi=torch.tensor([[INF, b1, b2]], dtype=D),
        lb=torch.zeros(1, 2, dtype=D),
        ub=torch.full((1, 2), INF, dtype=D),
    )


def test_highs_value_and_duals_by_hand():
    sol = solve(small_lp())
    assert sol.status == ["optimal"]
    assert torch.allclose(sol.x, torch.tensor([[1.25, 1.75]], dtype=D))
    assert sol.value.item() == pytest.approx(4.75)
    # value = (b0 - b2)/2 + 2 (b0 + b2)/2 = 1.5 b0 + 0.5 b2: duals 1.5, 0 (slack row), 0.5
    assert torch.allclose(sol.y, torch.tensor([[1.5, 0.0, 0.5]], dtype=D), atol=1e-9)


@pytest.mark.parametrize("row", [0, 2])
def test_duals_are_finite_differences_of_the_value(row):
    eps = 1e-5
    base = solve(small_lp()).value.item()
    kw = {f"b{row}": [3.0, 2.0, 0.5][row] + eps}
    fd = (solve(small_lp(**kw)).value.item() - base) / eps
    assert solve(small_lp()).y[0, row].item() == pytest.approx(fd, abs=1e-6)


def test_target_rows_give_the_gradient_with_respect_to_the_target():
    # one reservoir: x_out = x_in + inflow - q, 0 <= q <= 5, x_out in [0, 10]; cost 3 (4 - q)^+ via a
    # deficit column u >= 4 - q. With target x_hat and penalty 10, the optimum hits the target when feasible.
    x_in, inflow = 6.0, 1.0
    # columns: x_out, q, u ; rows: x_out + q = x_in + inflow (state row), q + u >= 4
    A = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]], dtype=D)
    lp = LP(
        c=torch.tensor([[0.0, 0.0, 3.0]], dtype=D),
        A=A,
        row_lo=torch.tensor([[x_in + inflow, 4.0]], dtype=D),
        row_hi=torch.tensor([[x_in + inflow, INF]], dtype=D),
        lb=torch.zeros(1, 3, dtype=D),
        ub=torch.tensor([[10.0, 5.0, INF]], dtype=D),
    )
    stage = StageLP(lp, torch.tensor([[x_in]], dtype=D), torch.tensor([[1.0], [0.0]], dtype=D), torch.tensor([0]))
    target_lp, rows = stage.with_target(torch.tensor([[5.0]], dtype=D), 10.0)
    sol = solve(target_lp.lp)
    # x_out = 5 -> q = 2 -> u = 2, cost 6; raising the target by one lowers q by one: +3 per unit
    assert sol.value.item() == pytest.approx(6.0)
    assert sol.y[0, rows].item() == pytest.approx(3.0)
    # raising x_in by one (target fixed) raises q by one: -3 per unit
    assert target_lp.state_gradient(sol).item() == pytest.approx(-3.0)
    assert target_lp.outgoing(sol).item() == pytest.approx(5.0)


def test_inconsistent_lp_is_refused():
    lp = small_lp()
    lp.row_lo[0, 0] = 5.0
    lp.row_hi[0, 0] = 4.0
    with pytest.raises(ValueError, match="row's lower bound"):
        lp.check()
