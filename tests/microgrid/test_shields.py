"""The shield hierarchy: zero violations under random and adversarial proposals (checked independently),
worst-case look-ahead, explanations, gradients through the shields."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsrl.core import rollout
from opsrl.microgrid.adversarial import adversarial_exogenous, adversarial_policy, random_initial_states
from opsrl.microgrid.constraints import check_rollout
from opsrl.shield import Trace

from .conftest import COOL, OFF, RUN, fixed_scenario, make_problem


def test_ten_thousand_days_of_random_and_adversarial_proposals_violate_nothing():
    """10,000 scenarios (each a different day, random start time, random initial state; a third with
    worst-case ramps) over 90 minutes each; the full-day version is benchmarks/microgrid_property.py."""
    prob = make_problem(periods=90)
    sc = prob.sample(10_000, "dev", 11, periods=90)
    sc = adversarial_exogenous(prob, random_initial_states(prob, sc, 1), 2)
    checker = check_rollout(prob, adversarial_policy(prob, 3), sc)
    assert dict(checker.counts) == {}
    # within the ramp limits the shield never needs the reserves (overload, reserve SoC band)
    assert int(checker.reserve_minutes.sum()) == 0
    # the test is not vacuous: gensets really did start and stop, the battery moved into its reserve
    # band never, the shield had work to do
    assert float(checker.fuel.sum()) > 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    switch=st.integers(1, 40),
    periods=st.integers(30, 200),
    small_battery=st.booleans(),
    reserve=st.booleans(),
    genset_load=st.booleans(),
)
def test_property_zero_violations(seed, switch, periods, small_battery, reserve, genset_load):
    cfg = {
        "periods": periods,
        "shield": {"plan_with_reserve": reserve, "proposal": "genset_load" if genset_load else "battery_kw"},
    }
    if small_battery:
        cfg["battery"] = {"capacity_kwh": 250.0}
    prob = make_problem(**cfg)
    sc = prob.sample(96, "train", seed, periods=periods)
    sc = adversarial_exogenous(prob, random_initial_states(prob, sc, seed), seed)
    checker = check_rollout(prob, adversarial_policy(prob, seed, switch), sc)
    assert dict(checker.counts) == {}
    if not reserve:
        assert int(checker.reserve_minutes.sum()) == 0


def test_full_days_with_operator_like_and_random_proposals():
    prob = make_problem()
    sc = prob.sample(8, "dev", 5)
    checker = check_rollout(prob, adversarial_policy(prob, 7, 13), sc)
    assert dict(checker.counts) == {}
    assert checker.unserved_kwh.max().item() == 0.0


def test_lookahead_starts_a_genset_in_time_for_the_worst_case():
    # no genset on, demand 300 kW with 250 kW of wind, 1 kWh above the battery's floor: the agent proposes
    # no genset. Worst case the net load grows by 25 kW/min: 75 kW in this minute, 100, 125, ...; waiting a
    # minute to start a genset needs 75/60 = 1.25 kWh > 1 kWh, so the shield must start genset 1 now
    # (its warm-up gives 100 kW, then it runs from minute 3: the battery covers 25 kW in minute 2 only)
    prob = make_problem(periods=5)
    sc = fixed_scenario(prob, [300.0] * 6, [250.0] * 6, soc0=0.051)
    state = prob.initial_state(sc)
    trace = Trace()
    full = prob.full_action(state, torch.tensor([[0.0, 0.5]]), trace)
    assert full["cmd"][0].tolist() == [1.0, 0.0]
    lines = trace.explain(0)
    assert any(line.startswith("microgrid: gensets 0 -> 1 (worst case") for line in lines)
    # with a full battery no genset is needed
    sc2 = fixed_scenario(prob, [300.0] * 6, [250.0] * 6, soc0=0.8)
    full2 = prob.full_action(prob.initial_state(sc2), torch.tensor([[0.0, 0.5]]))
    assert full2["cmd"][0].tolist() == [0.0, 0.0]


def test_genset_units_and_explanations():
    prob = make_problem(periods=5)
    # genset 1 ran 10 of its 30 minutes: a proposal of 0 gensets cannot stop it
    sc = fixed_scenario(
        prob, [300.0] * 6, [0.0] * 6, soc0=0.8, mode0=[[RUN, COOL]], run0=[[10.0, 0.0]], timer0=[[0.0, 4.0]]
    )
    trace = Trace()
    full = prob.full_action(prob.initial_state(sc), torch.tensor([[0.0, 0.5]]), trace)
    assert full["cmd"][0].tolist() == [1.0, 0.0]
    assert any(line.startswith("genset_group: cmd [0, 0] -> [1, 0] (minimum run time") for line in trace.explain(0))
    # asking for both: genset 2 is cooling down and cannot restart
    trace = Trace()
    full = prob.full_action(prob.initial_state(sc), torch.tensor([[1.0, 0.5]]), trace)
    assert full["cmd"][0].tolist() == [1.0, 0.0]
    assert prob.shield.all_guarantees()["genset.priority"] == "genset_group"
    assert set(prob.shield.all_guarantees()) >= {
        "demand.served",
        "battery.soc_band",
        "genset2.cooldown",
        "wind.curtail_only_surplus",
        "demand.no_shedding",
    }
    lines = prob.explain(lambda s, t: torch.tensor([[0.0, 1.0]]).expand(s["soc"].shape[0], 2), sc, 0)
    assert lines and all(":" in line for line in lines)


def test_hdpo_gradient_flows_through_the_shields():
    from opsrl.nn import build_policy

    torch.manual_seed(0)
    prob = make_problem(periods=30)
    pol = build_policy(prob, {"hidden": [16]})
    sc = prob.sample(8, "train", 0, periods=30)
    traj = rollout(prob, pol, sc)
    traj.costs.sum().backward()
    last = pol.net[-1].weight.grad
    assert torch.isfinite(last).all()
    assert last[0].abs().sum() > 0 and last[1].abs().sum() > 0  # both the genset count and the battery


def test_genset_load_proposal_by_hand():
    # genset 1 running (free to stop), last minute 350 kW demand and 150 kW wind: net 200 kW, repeated now.
    # Rated load (u = 1): set-point 200 - 400 = -200 kW, the genset at 400 kW charges the battery with 200 kW.
    # Minimum load (u = 0): set-point 200 - 120 = 80 kW discharge, the genset at 120 kW.
    prob = make_problem(periods=2, shield={"proposal": "genset_load"})
    for u, set_point, gen in [(1.0, -200.0, 400.0), (0.0, 80.0, 120.0), (0.5, 200.0 - 260.0, 260.0)]:
        sc = fixed_scenario(prob, [350.0] * 3, [150.0] * 3, soc0=0.5, mode0=[[RUN, OFF]], run0=[[60.0, 0.0]])
        state = prob.initial_state(sc)
        action = torch.tensor([[0.5, u]])
        full = prob.full_action(state, action)
        assert full["cmd"][0].tolist() == [1.0, 0.0]
        assert full["battery_kw"].item() == pytest.approx(set_point)
        post, _ = prob.post_decision(state, action)
        nxt, _ = prob.transition(post, sc, 0)
        assert nxt["out_gen"][0].tolist() == pytest.approx([gen, 0.0])
        assert nxt["out_battery"].item() == pytest.approx(set_point)
    # no genset running or asked for: the battery takes the whole net load, whatever u says
    sc = fixed_scenario(prob, [350.0] * 3, [150.0] * 3, soc0=0.8)
    full = prob.full_action(prob.initial_state(sc), torch.tensor([[0.0, 1.0]]))
    assert full["cmd"][0].tolist() == [0.0, 0.0] and full["battery_kw"].item() == pytest.approx(200.0)
    # the baseline controllers propose set-points and refuse a problem that reads the action otherwise
    from opsrl.microgrid.controllers import OperatorRules

    with pytest.raises(ValueError, match="shield.proposal"):
        OperatorRules(prob)


def test_genset_load_gradient_reaches_the_count_through_the_battery():
    """With u at rated load, committing a genset charges the battery: the count's gradient sees that energy."""
    prob = make_problem(periods=1, shield={"proposal": "genset_load"})
    sc = fixed_scenario(prob, [350.0] * 2, [150.0] * 2, soc0=0.5, mode0=[[RUN, OFF]], run0=[[60.0, 0.0]])
    action = torch.tensor([[0.4, 1.0]], requires_grad=True)  # count 0.8, rounded to 1; away from a kink
    full = prob.full_action(prob.initial_state(sc), action)
    assert full["cmd"][0].tolist() == [1.0, 0.0]
    full["battery_kw"].sum().backward()
    # d(set-point)/d(count fraction) = -rated load * d(cmd_1)/d(count) = -400 * G (relaxed count G * a)
    assert action.grad[0, 0].item() == pytest.approx(-400.0 * prob.p.G)
    assert action.grad[0, 1].item() == pytest.approx(-(400.0 - 120.0))
