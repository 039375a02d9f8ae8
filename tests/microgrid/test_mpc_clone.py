"""The shipped clone of the commitment MPC (``mpc_clone_wear16``, solver method ``shipped_policy``): its plan is
valid under the shields on a test day (the independent checker finds no violation, no energy goes unserved),
and its decisions are the MILP's: on states of its own test-day trajectory, a fresh solve of the commitment
MPC it was distilled from (HiGHS) proposes the same number of gensets and nearly the same battery set-point."""

import pytest
import torch

from opsrl.algos.imitation import labelled_rollout
from opsrl.core import ConfigError, SolveContext
from opsrl.microgrid import run_test
from opsrl.microgrid.milp import CommitMPC
from opsrl.registry import family, load_for_solver, load_solver


def _clone(name="mpc_clone_wear16", periods=1440, over=None):
    _, method, cfg = load_solver(name, family("microgrid"), over or {})
    prob = load_for_solver("microgrid/remote", cfg, {"periods": periods, "test.scenarios": 2})
    out = method.fit(prob, cfg["options"], cfg, SolveContext(seed=0, progress=False))
    return prob, out.policy


def test_the_shipped_clone_plans_a_valid_day_under_the_shields():
    torch.set_num_threads(1)
    prob, pol = _clone()
    day = prob.test_set().select(slice(0, 1))
    _, m = run_test(prob, pol, day)
    assert m["violations_total"] == 0 and all(v == 0 for v in m["violations"].values())
    assert m["unserved_kwh"] == 0.0 and m["reserve_minutes"] == 0.0
    assert m["fuel_litres"] > 0


def test_the_clone_decides_as_the_milp_on_its_own_trajectory():
    torch.set_num_threads(1)
    prob, pol = _clone()
    day = prob.test_set().select(slice(1, 2))
    mpc = CommitMPC(prob, 16.0, "real")
    states, labels, steps = labelled_rollout(prob, pol, mpc._solve, day, 480, lambda t: t % 60 == 30)
    assert steps == list(range(30, 480, 60))
    with torch.no_grad():
        mine = torch.cat([pol(s, t) for s, t in zip(states, steps)])
    milp = torch.cat(labels)
    same_count = (mine[:, 0] - milp[:, 0]).abs() < 1e-6
    kw = ((mine[:, 1] - milp[:, 1]).abs() * 2 * prob.p.b_power)[same_count]
    assert int(same_count.sum()) >= 7  # of 8 states
    assert float(kw.max()) <= 50.0  # within two of the clone's 25 kW set-point levels


def test_shipped_policy_errors_name_the_key():
    with pytest.raises(ConfigError, match="options.weights"):
        _clone(over={"options.weights": "no_such_network"})
    _, method, cfg = load_solver("mpc_clone_wear16", family("microgrid"), {})
    prob = load_for_solver("microgrid/remote", cfg, {"periods": 60, "shield.proposal": "genset_load"})
    with pytest.raises(ConfigError, match="shield.proposal"):
        method.fit(prob, cfg["options"], cfg, SolveContext(seed=0, progress=False))
