"""The learned hysteresis (``ars_hysteresis``): zero weights are the rule, the training loop's rollout agrees with
the constraint checker, a wear price orders the wear, and the shipped parameters load."""

import json

import numpy as np
import pytest
import torch

from opsrl.core import ConfigError, SolveContext
from opsrl.microgrid import run_test
from opsrl.microgrid.controllers import AdaptiveHysteresis, SocHysteresis, fuel_and_wear, train_adaptive
from opsrl.registry import family, load_for_solver, load_solver


def _problem(periods=180, overrides=None):
    _, _, cfg = load_solver("ars_hysteresis", family("microgrid"), overrides or {})
    return cfg, load_for_solver("microgrid/remote", cfg, {"periods": periods, "test.scenarios": 4})


def test_zero_weights_are_the_rule_and_the_fast_rollout_matches_the_checker():
    _, prob = _problem()
    days = prob.sample(4, "test", 0, periods=180)
    for adapt_load in (False, True):
        theta = np.zeros(AdaptiveHysteresis.size(prob, adapt_load))
        theta[:2] = 0.4, 0.6  # high thresholds: the gensets start and stop within three hours
        ev_a, m_a = run_test(prob, AdaptiveHysteresis(prob, theta), days, per_scenario=True)
        ev_r, m_r = run_test(prob, SocHysteresis(prob, 0.4, 0.6), days, per_scenario=True)
        assert torch.equal(ev_a.per_scenario, ev_r.per_scenario)
    assert m_r["by_scenario"]["degradation"].min() > 0
    feq, deg = fuel_and_wear(prob, SocHysteresis(prob, 0.4, 0.6), days)
    assert torch.allclose(feq, m_r["by_scenario"]["fuel_eq_litres"], rtol=1e-6)
    assert torch.allclose(deg, m_r["by_scenario"]["degradation"], rtol=1e-6)


def test_the_thresholds_follow_the_features():
    _, prob = _problem()
    days = prob.sample(2, "test", 0, periods=60)
    state = prob.initial_state(days)
    F = len(prob.leads) + 2
    theta = np.zeros(2 * F + 2)
    theta[:2] = 0.2, 0.5
    theta[2 + F - 1] = 1.0  # start threshold + cos(time of day): at midnight 1.2 -> clamped to 0.9
    state["soc"] = torch.full_like(state["soc"], 0.8)
    state["tod"] = torch.zeros_like(state["tod"])
    a = AdaptiveHysteresis(prob, theta)(state)
    assert torch.all(a[:, 0] > 0)  # soc 0.8 < start 0.9: a genset is asked for
    state["tod"] = torch.full_like(state["tod"], 720.0)  # noon: cos = -1, start -0.8 -> clamped to 0.05
    assert torch.all(AdaptiveHysteresis(prob, theta)(state)[:, 0] == 0)
    with pytest.raises(ValueError, match="parameters"):
        AdaptiveHysteresis(prob, np.zeros(5))


def test_a_high_wear_price_learns_less_wear_than_a_low_one_on_the_same_days():
    _, prob = _problem(periods=240)
    train = prob.sample(6, "train", 0, periods=240)
    dev = prob.sample(4, "dev", 0, periods=240)
    theta0 = np.zeros(AdaptiveHysteresis.size(prob, True))
    theta0[:2] = 0.3, 0.6
    kw = dict(iterations=12, directions=4, top=2, noise=0.05, step=0.05, select_every=4)
    low, _ = train_adaptive(prob, train, dev, theta0, wear_price=0.0, **kw)
    high, info = train_adaptive(prob, train, dev, theta0, wear_price=50.0, **kw)
    days = prob.sample(6, "test", 0, periods=240)
    _, d_low = fuel_and_wear(prob, AdaptiveHysteresis(prob, low), days)
    _, d_high = fuel_and_wear(prob, AdaptiveHysteresis(prob, high), days)
    assert d_high.mean() < d_low.mean()
    assert info["kept_iteration"] > 0


def test_the_shipped_parameters_load_and_bad_options_are_named():
    cfg, prob = _problem(periods=60)
    fam = family("microgrid")
    out = fam.methods["ars_hysteresis"].fit(prob, cfg["options"], cfg, SolveContext(seed=0, progress=False))
    meta = json.loads((prob_dir() / "ars_hysteresis.json").read_text())
    assert out.info["params"] == "ars_hysteresis.json" and len(meta["theta"]) == AdaptiveHysteresis.size(prob, True)
    _, m = run_test(prob, out.policy, prob.sample(2, "test", 0, periods=60))
    assert m["violations_total"] == 0
    bad, prob2 = _problem(60, {"options.top": 20})
    with pytest.raises(ConfigError, match="options.top"):
        fam.methods["ars_hysteresis"].fit(prob2, bad["options"], bad, SolveContext(seed=0, progress=False))
    cfg3, _ = _problem(60)
    prob3 = load_for_solver("microgrid/remote", cfg3, {"periods": 60, "forecast.leads": [15, 60]})
    with pytest.raises(ConfigError, match="forecast leads"):
        fam.methods["ars_hysteresis"].fit(prob3, cfg3["options"], cfg3, SolveContext(seed=0, progress=False))


def prob_dir():
    from opsrl.microgrid import DATA

    return DATA
