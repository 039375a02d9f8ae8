"""A price on wear (``costs.wear_weight``): it enters the cost only, and a policy trained under a high price
wears the battery less than one trained under a low price, on the same days."""

import torch

from opsrl.core import SolveContext
from opsrl.microgrid import run_test
from opsrl.microgrid.controllers import ConstantProposal
from opsrl.registry import family, load_for_solver, load_solver

from .conftest import make_problem


def test_wear_weight_scales_the_degradation_in_the_cost_only():
    sc_prob = make_problem(periods=60)
    sc = sc_prob.sample(3, "test", 0, periods=60)
    pol = [0.0, 1.0]  # no genset proposed, full discharge: the battery cycles
    ev1, m1 = run_test(sc_prob, ConstantProposal(sc_prob, pol), sc, per_scenario=True)
    heavy = make_problem(periods=60, costs={"wear_weight": 5.0})
    ev5, m5 = run_test(heavy, ConstantProposal(heavy, pol), sc, per_scenario=True)
    deg = m1["by_scenario"]["degradation"]
    assert deg.min() > 0 and torch.equal(deg, m5["by_scenario"]["degradation"])
    assert torch.allclose(ev5.per_scenario.double() - ev1.per_scenario.double(), 4.0 * deg, rtol=1e-4, atol=1e-3)


def _train(weight: float):
    # HDPO through the shields with the battery set-point proposal: the wear's pathwise gradient reaches it
    _, method, cfg = load_solver(
        "hdpo_scu",
        family("microgrid"),
        {
            "options.max_steps": 10,
            "options.batch_size": 16,
            "options.train_scenarios": 64,
            "options.train_periods": 30,
            "options.dev_scenarios": 2,
            "options.dev_periods": 30,
            "options.eval_every": 10,
        },
    )
    prob = load_for_solver("microgrid/remote", cfg, {"periods": 60, "costs.wear_weight": weight})
    out = method.fit(prob, cfg["options"], cfg, SolveContext(seed=0, progress=False))
    return prob, out.policy


def test_a_high_wear_price_trains_a_policy_that_wears_the_battery_less():
    low_prob, low = _train(0.0)
    high_prob, high = _train(200.0)
    days = low_prob.sample(8, "test", 0, periods=60)  # the same days for both (the weight is not in the data)
    _, m_low = run_test(low_prob, low, days)
    _, m_high = run_test(high_prob, high, days)
    assert m_low["violations_total"] == 0 and m_high["violations_total"] == 0
    assert m_high["degradation"] < m_low["degradation"]
