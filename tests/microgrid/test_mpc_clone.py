"""The shipped clones of the commitment MPC (``mpc_clone_wear16``, ``mpc_clone_wear2``, ``ppo_scu_mpc_clone``;
solver method ``shipped_policy``): their plans are valid under the shields on test days (the independent
checker finds no violation, no energy goes unserved), the clone of the MPC at the higher wear price wears the
battery less on the same days,
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


class _RowWise(torch.nn.Module):
    """Row ``i`` of the batch driven by policy ``i``: several policies on the same day in one rollout."""

    def __init__(self, policies):
        super().__init__()
        self.policies = policies

    def forward(self, state, t=0):
        return torch.cat([p({k: v[i : i + 1] for k, v in state.items()}, t) for i, p in enumerate(self.policies)])


def test_the_shipped_networks_plan_a_valid_day_and_the_higher_wear_price_wears_less():
    torch.set_num_threads(1)
    names = ("mpc_clone_wear16", "mpc_clone_wear2", "ppo_scu_mpc_clone")
    loaded = [_clone(n) for n in names]
    prob = loaded[0][0]
    day = prob.test_set().select(torch.zeros(len(names), dtype=torch.long))  # test day 0 for each network
    _, m = run_test(prob, _RowWise([pol for _, pol in loaded]), day, per_scenario=True)
    assert m["violations_total"] == 0 and all(v == 0 for v in m["violations"].values())
    assert m["unserved_kwh"] == 0.0 and m["reserve_minutes"] == 0.0
    by = m["by_scenario"]
    assert bool((by["fuel_litres"] > 0).all())
    # cloned from the MPC at wear price 16 against 2, on the same day (the wear weight is not in the data)
    assert float(by["degradation"][0]) < float(by["degradation"][1])


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
