"""Runs through the runner: the record's hydro fields, the SDP reference, the picture; a generic target policy
(what TS-DDR and HDPO hand back) through the contract's post_decision."""

import pytest
import torch

from opsrl.bench.report import picture_hook
from opsrl.bench.runner import run
from opsrl.core import evaluate
from opsrl.registry import load_problem

SMALL = {"test_scenarios": 30, "sdp_points": 55}


def test_runner_records_hydro_fields_and_draws_them():
    rec = run("hydro/case3", "myopic", progress=False, problem_overrides=SMALL)
    assert rec["reference"]["kind"] == "optimum" and rec["test_cost"] > rec["reference"]["value"]
    for k in ("thermal_cost", "deficit_mwh", "spill", "target_violation_share"):
        assert rec[k] is not None
    # case3's stage cost is all thermal (no deficit at the optimum of the myopic rule here, no spill cost)
    assert rec["thermal_cost"] + 100.1 * rec["deficit_mwh"] == pytest.approx(rec["test_cost"], rel=1e-9)
    assert rec["target_violation_share"] == 0.0
    vol = rec["series"]["volume"]
    assert len(vol) == 3 and len(vol[0]) == 13 and vol[0][0] == [0.18]
    fig = picture_hook("hydro")(load_problem("hydro/case3"), rec)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3
    bound = run("hydro/case3", "hindsight_lp", progress=False, problem_overrides=SMALL)
    assert bound["test_cost"] <= rec["test_cost"] and bound["info"]["solver"] == "glop"  # the shared solver file


def test_generic_target_policy_through_post_decision():
    p = load_problem("hydro/case3", SMALL)
    sc = p.test_set()
    pol = lambda s, t: torch.full((s["volume"].shape[0], 1), 0.25, dtype=torch.float64)
    ev = evaluate(p, pol, sc)
    from opsrl.hydro.simulate import run_test

    ev2, m = run_test(p, sc, policy=pol)
    assert ev.mean == pytest.approx(ev2.mean, rel=1e-9)  # the family's rollout is the contract's rollout
    assert 0 < m["target_violation_share"] < 1
