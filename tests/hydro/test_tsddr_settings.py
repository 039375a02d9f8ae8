"""TS-DDR's options for hydro (solvers/tsddr_lstm_bolivia.toml): the residual rule anchored at the stage LP's own
decision, the reachable-range step unit, a large target penalty and the basis-cache back end."""

import numpy as np
import pytest
import torch

from opsrl.algos import lagrangian as L
from opsrl.hydro.sddp import CutPolicy
from opsrl.hydro.simulate import run_test
from opsrl.registry import family, load_problem, load_solver

SMALL = {"test_scenarios": 24, "sdp_points": 55}


def test_the_anchored_rule_starts_at_the_myopic_rule():
    """At its start (zero output) the rule's targets are the outgoing volumes of the stage LP pulled by 1e-6 per
    hm3 towards vmax, which is the myopic rule with its 1e-6 tie value; with a penalty far above the water's
    value (1e5 per hm3) the stage LP follows them, so the costs are the myopic rule's, scenario by scenario."""
    p = load_problem("hydro/case3", SMALL)
    sc = p.test_set()
    torch.manual_seed(0)
    pol = L.build_target_policy(p, {"kind": "lstm", "output": "residual", "anchor": "lp"}, "<test>")
    r = L.rollout(p, pol, sc, 1e5, "highs", "none")
    _, m = run_test(p, sc, decider=CutPolicy(p, None, tie_value=1e-6), per_scenario=True)
    np.testing.assert_allclose(r["cost"].sum(1).numpy(), m["by_scenario"]["cost"].numpy(), rtol=1e-9)
    assert float(r["penalty_cost"].abs().max()) < 1e-6  # the targets are met
    # through the problem's own stage LPs (TargetRule -> run_test), with the same penalty
    _, m2 = run_test(p, sc, policy=L.TargetRule(p, pol), per_scenario=True, penalty=1e5)
    np.testing.assert_allclose(m2["by_scenario"]["cost"].numpy(), m["by_scenario"]["cost"].numpy(), rtol=1e-9)


def test_reach_share_is_the_reachable_range():
    """case3 (one reservoir, spill unbounded, 12 stages): a scenario that keeps its volume v0 can reach
    [vmin, min(vmax, v0 + k w_t)] at stage t (spill everything, or turbine and spill nothing), so the share is the
    mean of that width over the stages and the 16 dev scenarios' inflows, over vmax - vmin."""
    p = load_problem("hydro/case3")
    share = float(L.reach_share(p)[0])
    c = p.case
    w = p.sample(16, "dev", 0)["inflow"][:, :, 0].numpy()
    width = np.minimum(c.vmax[0], p.v0[0] + p.k * w) - c.vmin[0]
    assert share == pytest.approx(float(width.mean() / (c.vmax[0] - c.vmin[0])), rel=1e-9)
    pol = L.build_target_policy(p, {"output": "residual", "step": "reach"}, "<test>")
    assert float(pol.step_frac[0]) == pytest.approx(share, rel=1e-12)
    # the default unit stays the whole range (earlier runs unchanged)
    assert float(L.build_target_policy(p, {"output": "residual"}, "<test>").step_frac[0]) == 1.0


def test_rollouts_with_the_basis_cache_equal_highs_on_case3():
    p = load_problem("hydro/case3", SMALL)
    sc = p.test_set()
    torch.manual_seed(1)
    pol = L.build_target_policy(p, {"kind": "mlp", "hidden": [16]}, "<test>")
    a = L.rollout(p, pol, sc, p.target_penalty, "highs", "active_set")
    b = L.rollout(p, pol, sc, p.target_penalty, "basis_cache", "active_set")
    np.testing.assert_allclose(b["loss"].detach().numpy(), a["loss"].detach().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(b["cost"].numpy(), a["cost"].numpy(), rtol=1e-9, atol=1e-9)


def test_the_bolivia_solver_file():
    _, method, cfg = load_solver("tsddr_lstm_bolivia", family("hydro"))
    assert method.name == "tsddr_lstm"
    o, pol = cfg["options"], cfg["policy"]
    assert (o["penalty"], o["backend"], pol["output"], pol["anchor"], pol["step"]) == (
        1e5,
        "basis_cache",
        "residual",
        "lp",
        "reach",
    )
