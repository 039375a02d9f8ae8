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

    def spy(p, demand, wind, lengths, soc0, on0, must, wear, tv, *rest, **kw):
        seen.append((round(float(lengths.sum())), tv, kw.get("terminal_above")))
        return commit_plan(p, demand, wind, lengths, soc0, on0, must, wear, tv, *rest, **kw)

    monkeypatch.setattr(milp, "commit_plan", spy)
    step = (300.0, 0.35)
    pol = CommitMPC(prob, 0.0, "perfect", sc, horizon_minutes=30, terminal_kwh=0.4, final_kwh=0.3, terminal_above=step)
    run_test(prob, pol, sc)
    # plans at minutes 0, 15, 30, 45 over min(30, 60 - t) minutes: those from minute 30 reach the end, where
    # the value is the final one and linear
    assert seen == [(30, 0.4, step), (30, 0.4, step), (30, 0.3, None), (15, 0.3, None)]
    # unchanged default: without final_kwh every plan gets terminal_kwh
    seen.clear()
    run_test(prob, CommitMPC(prob, 0.0, "perfect", sc, horizon_minutes=30, terminal_kwh=0.4), sc)
    assert [tv for _, tv, _ in seen] == [0.4] * 4


def test_terminal_above_a_level_charges_to_the_level():
    p = make_problem().p
    D, W, L = np.array([200.0, 200.0]), np.zeros(2), np.full(2, 15.0)
    level = p.soc_min * p.b_cap + 50.0
    above = 0.9 * terminal_value(p)
    plan = commit_plan(
        p, D, W, L, p.soc_min, 1, np.array([1, 1]), 0.0, midday_kwh(p), gap=1e-9, terminal_above=(level, above)
    )
    # below the level a stored kWh gains (midday - fuel value) per kWh, above it loses 0.1 x fuel value:
    # the plan stores exactly 50 kWh, i.e. 50 / eta kWh more genset output than the 2 x 0.25 h x 200 kWh load
    assert plan.energy[-1] == pytest.approx(level, abs=1e-6)
    fuel = p.fuel_price * (p.fuel_a * (2 * 0.25 * 200 + 50 / p.eta) + p.fuel_b * 2 * 0.25)
    assert plan.cost == pytest.approx(fuel - midday_kwh(p) * 50.0, rel=1e-9)
    with pytest.raises(ValueError, match="at most"):
        commit_plan(p, D, W, L, p.soc_min, 1, np.array([1, 1]), 0.0, 0.3, terminal_above=(level, 0.31))
