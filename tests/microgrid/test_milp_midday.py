"""The value of stored energy at a plan's horizon end: the break-even value leaves the plan indifferent between
rated and part load (and a price on wear then picks part load), the midday value makes it charge at rated
(hand computations on a two-period plan); CommitMPC's ``final_kwh`` applies only to plans whose horizon
reaches the end of the episode."""

import numpy as np
import pytest
import torch

from opsrl.microgrid import milp, run_test
from opsrl.microgrid.milp import CommitMPC, commit_plan, midday_kwh
from opsrl.microgrid.planning import terminal_value

from .conftest import fixed_scenario, make_problem


def test_midday_value_closed_form():
    p = make_problem().p
    # fuel_price 1.5, (0.25 L/kWh + 10 L/h / 400 kW) / 0.95
    assert midday_kwh(p) == pytest.approx(1.5 * (0.25 + 10 / 400) / 0.95, rel=1e-12)
    assert midday_kwh(p) / terminal_value(p) == pytest.approx(1.1, rel=1e-12)


def _two_periods(p, wear, tv):
    # a genset must run in both 15-minute periods (minimum run time), the battery sits at its floor,
    # demand 200 kW, no wind: the genset's output above 200 kW can only charge the battery
    D, W, L = np.array([200.0, 200.0]), np.zeros(2), np.full(2, 15.0)
    return commit_plan(p, D, W, L, p.soc_min, 1, np.array([1, 1]), wear, tv, gap=1e-9)


def test_midday_value_charges_at_rated_load():
    p = make_problem().p
    plan = _two_periods(p, 0.0, midday_kwh(p))
    # each kWh charged costs fuel_price * fuel_slope and stores eta kWh worth midday_kwh: a gain of
    # fuel_price * fuel_intercept / rated per kWh, so the genset runs at rated (400 kW) and charges 200 kW
    assert plan.genset_kw == pytest.approx([400.0, 400.0], abs=1e-6)
    assert plan.battery_kw == pytest.approx([-200.0, -200.0], abs=1e-6)
    stored = 2 * 0.25 * p.eta * 200.0  # kWh
    cost = 2 * 0.25 * p.fuel_price * (p.fuel_a * 400 + p.fuel_b) - midday_kwh(p) * stored
    assert plan.cost == pytest.approx(cost, rel=1e-9)


def test_break_even_value_with_wear_runs_part_load():
    p = make_problem().p
    # at the break-even value (the simulator's terminal value) charging gains nothing, so any price on wear
    # makes the plan follow the load: 200 kW, no charge
    plan = _two_periods(p, 0.5, terminal_value(p))
    assert plan.genset_kw == pytest.approx([200.0, 200.0], abs=1e-6)
    assert plan.battery_kw == pytest.approx([0.0, 0.0], abs=1e-6)
    assert plan.cost == pytest.approx(2 * 0.25 * p.fuel_price * (p.fuel_a * 200 + p.fuel_b), rel=1e-9)


def test_final_value_only_where_the_horizon_reaches_the_end(monkeypatch):
    prob = make_problem(periods=60, shield={"proposal": "genset_load"})
    sc = fixed_scenario(prob, torch.full((61,), 250.0), torch.zeros(61), soc0=0.5)
    seen = []

    def spy(p, demand, wind, lengths, soc0, on0, must, wear, tv, *rest):
        seen.append((round(float(lengths.sum())), tv))
        return commit_plan(p, demand, wind, lengths, soc0, on0, must, wear, tv, *rest)

    monkeypatch.setattr(milp, "commit_plan", spy)
    pol = CommitMPC(prob, 0.0, "perfect", sc, horizon_minutes=30, terminal_kwh=0.4, final_kwh=0.3)
    run_test(prob, pol, sc)
    # plans at minutes 0, 15, 30, 45 over min(30, 60 - t) minutes: those from minute 30 reach the end
    assert seen == [(30, 0.4), (30, 0.4), (30, 0.3), (15, 0.3)]
    # unchanged default: without final_kwh every plan gets terminal_kwh
    seen.clear()
    run_test(prob, CommitMPC(prob, 0.0, "perfect", sc, horizon_minutes=30, terminal_kwh=0.4), sc)
    assert [tv for _, tv in seen] == [0.4] * 4
