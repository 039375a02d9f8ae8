"""The perfect-foresight bound lies below every controller's cost on the same days; runs record metrics."""

import numpy as np
import pytest
import torch

from opsrl.microgrid import bounds, run_test
from opsrl.microgrid.adversarial import adversarial_policy
from opsrl.microgrid.controllers import MPC, OperatorRules
from opsrl.microgrid.planning import day_bound

from .conftest import make_problem


def test_bound_below_every_controller_on_the_same_days():
    prob = make_problem(periods=360)
    sc = prob.sample(4, "test", 0, periods=360)
    lb = bounds(prob, sc)
    costs = {}
    for name, pol in [
        ("operator", OperatorRules(prob)),
        ("mpc", MPC(prob, replan_minutes=30)),
        ("random", adversarial_policy(prob, 0, 7)),
    ]:
        ev, metrics = run_test(prob, pol, sc)
        assert metrics["violations_total"] == 0
        costs[name] = ev.per_scenario.numpy()
        assert np.all(lb <= costs[name] + 1e-6), name
    # the bound is informative: within the operator's cost but not trivially small
    assert np.all(lb > 0.3 * costs["operator"])
    # the MPC plans with forecasts and beats the operator on average
    assert costs["mpc"].mean() < costs["operator"].mean()


def test_coarse_lp_bound_is_below_the_one_minute_milp():
    # averaging the one-minute MILP's solution over 15-minute periods is feasible for the coarse LP,
    # so LP(15) <= MILP(1) <= any controller
    prob = make_problem(periods=60)
    sc = prob.sample(2, "test", 1, periods=60)
    d = sc["demand"][:, 1:61].double().numpy()
    w = sc["wind"][:, 1:61].double().numpy()
    for j in range(2):
        soc = float(sc["soc0"][j])
        lp = day_bound(prob.p, d[j], w[j], soc, 15).cost
        milp = day_bound(prob.p, d[j], w[j], soc, 1, integer=True, time_limit=30).cost
        lp1 = day_bound(prob.p, d[j], w[j], soc, 1).cost
        assert lp <= lp1 + 1e-6 <= milp + 2e-6
        ev, _ = run_test(prob, OperatorRules(prob), sc.select(slice(j, j + 1)))
        assert milp <= ev.mean + 1e-6


def test_bound_by_hand_for_a_flat_day():
    # constant 300 kW demand for 2 h, no wind, battery at 0.5. A genset kWh costs at best
    # price * (0.25 + 10/440) (gensets at full overload); a battery kWh costs its terminal value
    # price * 0.25 / 0.95, which is less, so the bound first empties the battery down to the reserve
    # floor (0.45 * 1000 kWh) and buys the remaining 600 - 450 kWh from the gensets.
    prob = make_problem(periods=120)
    p = prob.p
    plan = day_bound(p, np.full(120, 300.0), np.zeros(120), 0.5, 15)
    genset_kwh = p.fuel_price * (0.25 + 10 / 440)
    battery_kwh = p.fuel_price * 0.25 / 0.95
    assert battery_kwh < genset_kwh
    expect = 450 * battery_kwh + 150 * genset_kwh
    assert plan.cost == pytest.approx(expect, rel=1e-6)
    assert plan.energy[-1] == pytest.approx(50.0, abs=1e-6)


def test_opsrl_run_records_microgrid_metrics(tmp_path):
    from opsrl.bench.runner import run

    rec = run(
        "microgrid/remote", "operator_rules", progress=False, problem_overrides={"periods": 120, "test.scenarios": 3}
    )
    assert rec["violations"] == {} and rec["unserved_kwh"] == 0.0
    assert rec["fuel_litres"] > 0 and rec["degradation"] >= 0
    # the record keeps test day 0's dispatch for the report's picture; it is the evaluated day
    from opsrl.bench.report import picture_hook
    from opsrl.registry import load_problem

    day = rec["day"]
    assert len(day["out_demand"]) == 120 and len(day["soc"]) == 121
    served = torch.tensor(day["out_demand"]) - torch.tensor(day["out_unserved"])
    supplied = (
        torch.tensor(day["out_wind_used"]) + torch.tensor(day["out_gen"]).sum(1) + torch.tensor(day["out_battery"])
    )
    assert torch.all(supplied >= served - 0.3)  # kW rounded to 0.1; any surplus is dumped
    fig = picture_hook("microgrid")(load_problem("microgrid/remote", {"periods": 120}), rec)
    assert len(fig.axes) == 3 and len(fig.axes[1].lines) == 2 + 1 + 3  # two gensets, battery, three guides
    assert rec["reference"]["kind"] == "lower_bound" and rec["reference"]["value"] <= rec["test_cost"]
    rec = run(
        "microgrid/remote", "perfect_foresight", progress=False, problem_overrides={"periods": 120, "test.scenarios": 3}
    )
    assert rec["test_cost"] == pytest.approx(rec["reference"]["value"])


def test_dispatch_plot_is_written(tmp_path):
    from opsrl.microgrid.plots import plot_day

    prob = make_problem(periods=60)
    sc = prob.sample(2, "test", 0, periods=60)
    s = plot_day(prob, OperatorRules(prob), sc, tmp_path / "day.png", "operator", index=1)
    assert (tmp_path / "day.png").stat().st_size > 10_000
    # what is plotted balances: demand = wind used + gensets + battery - dump (+ unserved)
    lhs = s["out_demand"] - s["out_unserved"]
    rhs = s["out_wind_used"] + s["out_gen"].sum(1) + s["out_battery"] - s["out_dump"]
    assert torch.allclose(lhs, rhs, atol=1e-2)


def test_soc_hysteresis_rule_and_its_batched_search():
    from opsrl.core import evaluate
    from opsrl.microgrid.controllers import SocHysteresis, search_hysteresis

    from .conftest import OFF, RUN, fixed_scenario

    prob = make_problem(periods=120, shield={"proposal": "genset_load"})
    # the rule: below start_soc start one genset; between the thresholds keep what is committed; above, release
    rule = SocHysteresis(prob, 0.2, 0.6)
    cases = [
        (0.15, [OFF, OFF], 0.5),
        (0.15, [RUN, OFF], 0.5),
        (0.4, [RUN, OFF], 0.5),
        (0.4, [OFF, OFF], 0.0),
        (0.4, [RUN, RUN], 1.0),
        (0.7, [RUN, OFF], 0.0),
    ]
    for soc, mode, fraction in cases:
        sc = fixed_scenario(prob, [300.0] * 3, [100.0] * 3, soc0=soc, mode0=[mode])
        assert rule(prob.initial_state(sc))[0].tolist() == pytest.approx([fraction, 1.0]), (soc, mode)
    with pytest.raises(ValueError, match="shield.proposal"):
        SocHysteresis(make_problem(periods=10), 0.2, 0.6)
    from opsrl.core import ConfigError, SolveContext, validate
    from opsrl.microgrid import METHODS

    m = METHODS["soc_hysteresis"]
    with pytest.raises(ConfigError, match=r"s.toml: key 'options.start_soc'.*below options.stop_soc"):
        m.fit(
            prob,
            validate({"search": False, "start_soc": 0.6, "stop_soc": 0.4}, m.options, "s.toml"),
            {},
            SolveContext(progress=False, source="s.toml"),
        )
    # the search evaluates every candidate in one batch: its best cost is what the chosen rule costs alone
    dev = prob.sample(4, "dev", 0, periods=120)
    start, stop, cost, costs = search_hysteresis(prob, dev, starts=(0.15, 0.3), stops=(0.4, 0.8))
    assert len(costs) == 4 and cost == min(costs.values()) and start < stop
    with torch.no_grad():
        alone = evaluate(prob, SocHysteresis(prob, start, stop), dev).mean
    assert alone == pytest.approx(cost, rel=1e-5)
    ev, m = run_test(prob, SocHysteresis(prob, start, stop), dev)
    assert m["violations"] == {} and m["unserved_kwh"] == 0.0
    assert bounds(prob, dev).mean() <= ev.mean


def test_constant_proposals_per_scenario_and_per_scenario_metrics():
    """One batch of per-scenario constant proposals gives, scenario by scenario, what each constant gives
    alone; ``per_scenario`` metrics average to the reported means."""
    from opsrl.microgrid.controllers import ConstantProposal

    prob = make_problem(periods=90)
    days = prob.sample(3, "dev", 0, periods=90)
    props = torch.tensor([[0.0, 0.5], [0.5, 1.0], [1.0, 0.0]])
    ev, m = run_test(prob, ConstantProposal(prob, props), days, per_scenario=True)
    by = m["by_scenario"]
    for key in ("fuel_litres", "fuel_eq_litres", "degradation", "unserved_kwh", "dumped_kwh", "soc_change"):
        assert by[key].shape == (3,) and by[key].mean().item() == pytest.approx(m[key], rel=1e-9, abs=1e-12)
    # fuel-equivalent: battery energy drawn over the day at its fuel value (litres per kWh: slope / efficiency)
    p = prob.p
    drawn_kwh = -by["soc_change"] * p.b_cap
    assert torch.allclose(by["fuel_eq_litres"], by["fuel_litres"] + drawn_kwh * p.fuel_a / p.eta)
    for b in range(3):
        one = days.select(torch.tensor([b]))
        ev1, m1 = run_test(prob, ConstantProposal(prob, props[b]), one)
        assert ev1.mean == pytest.approx(float(ev.per_scenario[b]), rel=1e-5)
        assert m1["fuel_litres"] == pytest.approx(float(by["fuel_litres"][b]), rel=1e-5)
    # the proposals differ, and so do the days they make
    assert len({round(float(f), 3) for f in by["fuel_litres"]}) == 3
    with pytest.raises(ValueError, match="shielded"):
        ConstantProposal(make_problem(periods=10, shielded=False), [0.0, 0.5])
    with pytest.raises(ValueError, match=r"\[2\] or \[B, 2\]"):
        ConstantProposal(prob, [0.0, 0.5, 1.0])
