"""Exact references: the lost-sales DP against Zipkin (2008), the DP policy in the simulator, closed forms."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from opsrl.core import evaluate
from opsrl.inventory import dp, heuristics
from opsrl.inventory.single_store import SingleStore

# Zipkin (2008), "Old and new methods for lost-sales inventory systems", Operations Research 56(5),
# Table 1: optimal average cost, Poisson(5) demand, h = 1. Rows p, columns L = 1..4.
ZIPKIN = {
    4: [4.04, 4.40, 4.60, 4.73],
    9: [5.44, 6.09, 6.53, 6.84],
    19: [6.68, 7.66, 8.36, 8.89],
    39: [7.84, 9.11, 10.04, 10.79],
}


@pytest.mark.parametrize("p", [4, 9, 19, 39])
def test_dp_reproduces_zipkin_table(p):
    for L in (1, 2, 3, 4):
        r = dp.lost_sales_dp(5.0, L, p, 1.0)
        assert r.upper - r.lower < 1e-5
        assert round(r.cost, 2) == pytest.approx(ZIPKIN[p][L - 1], abs=1e-9), (p, L, r.cost)


def test_dp_truncation_does_not_bind():
    base = dp.lost_sales_dp(5.0, 3, 19, 1.0)
    wide = dp.lost_sales_dp(5.0, 3, 19, 1.0, S=base.S + 12, A=base.A + 8)
    assert wide.cost == pytest.approx(base.cost, abs=1e-6)


def test_dp_policy_simulated_matches_dp_value():
    """The DP's own policy, run through the torch simulator, costs what the DP says (within 3 s.e.)."""
    from opsrl.inventory import DPPolicy

    prob = SingleStore(2, 1.0, 9.0, 5.0)
    r = dp.lost_sales_dp(5.0, 2, 9.0, 1.0)
    ev = evaluate(prob, DPPolicy(r), prob.sample(4096, "test", 0, 400), warmup=50)
    assert abs(ev.mean - r.cost) < 3 * ev.stderr, (ev.mean, ev.stderr, r.cost)


def test_zero_lead_time_dp_is_newsvendor_fractile():
    """With L = 0 and lost sales, stock never needs to exceed the order-up-to level, so the optimum is the
    newsvendor: order up to the smallest y with P(D <= y) >= p / (p + h)."""
    r = dp.lost_sales_dp(5.0, 0, 9.0, 1.0)
    y = int(stats.poisson.ppf(0.9, 5.0))
    assert r.cost == pytest.approx(float(dp.period_cost(np.array([y]), 5.0, 1.0, 9.0)[0]), abs=1e-6)


def test_normal_backlog_closed_form_matches_simulated_base_stock():
    L, h, p, m, s = 2, 1.0, 9.0, 10.0, 2.0
    level, cost = dp.normal_backlog_base_stock(m, s, L, h, p)
    assert level == pytest.approx(30 + math.sqrt(3) * 2 * 1.2815516, abs=1e-5)
    prob = SingleStore(L, h, p, m, s, distribution="normal", unmet="backlog")
    ev = evaluate(prob, heuristics.BaseStock(level), prob.sample(4096, "test", 0, 300), warmup=20)
    assert abs(ev.mean - cost) < 3 * ev.stderr, (ev.mean, ev.stderr, cost)


def test_poisson_backlog_exact_level_and_search_agree():
    prob = SingleStore(3, 1.0, 9.0, 5.0, unmet="backlog")
    level, cost = heuristics.level_cost_backlog(5.0, 3, 1.0, 9.0)
    assert level == int(stats.poisson.ppf(0.9, 20.0))  # critical fractile of 4-period demand
    found, dev_cost = heuristics.search_base_stock(prob, prob.sample(2048, "dev", 0, 300))
    assert found == level
    ev = evaluate(prob, heuristics.BaseStock(level), prob.sample(4096, "test", 0, 300), warmup=20)
    assert abs(ev.mean - cost) < 3 * ev.stderr


def test_myopic_equals_hand_computed_argmin_and_is_optimal_under_backlog():
    # lost sales, L = 1, state x: order a minimising E c((x - D)^+ + a)
    prob = SingleStore(1, 1.0, 9.0, 5.0)
    pol = heuristics.Myopic(prob)
    xs = torch.arange(0, 15, dtype=torch.float32)[:, None]
    got = pol({"x": xs}).squeeze(1).numpy()
    k = np.arange(200)
    pmf = stats.poisson.pmf(k, 5.0)
    for x, a_got in zip(range(15), got):
        left = np.maximum(x - k, 0)
        exp = [np.sum(pmf * dp.period_cost(left + a, 5.0, 1.0, 9.0)) for a in range(30)]
        assert a_got == int(np.argmin(exp)), x
    # backlog: myopic is base stock at the critical fractile, which is optimal
    prob = SingleStore(2, 1.0, 9.0, 5.0, unmet="backlog")
    level, cost = heuristics.level_cost_backlog(5.0, 2, 1.0, 9.0)
    ev = evaluate(prob, heuristics.Myopic(prob), prob.sample(2048, "test", 0, 300), warmup=20)
    assert abs(ev.mean - cost) < 3 * ev.stderr


def test_capped_base_stock_beats_base_stock_on_lost_sales():
    prob = SingleStore(4, 1.0, 9.0, 5.0)
    dev = prob.sample(256, "dev", 0, 150)
    _, bs = heuristics.search_base_stock(prob, dev)
    S, r, cbs = heuristics.search_capped_base_stock(prob, dev)
    opt = dp.lost_sales_dp(5.0, 4, 9.0, 1.0).cost
    assert opt < cbs < bs
    assert (cbs - opt) / opt < 0.03  # Xin (2021): capped base stock is within a few percent here
