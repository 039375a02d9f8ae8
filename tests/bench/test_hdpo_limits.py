"""HDPO's time limit (evaluations included, said in the record) and its recovery from divergence."""

from __future__ import annotations

import pytest

from opsrl.bench.runner import execute, prepare
from opsrl.inventory import dp

P4 = "inventory/lost_sales_p4_L1"
PSET = {"test.scenarios": 64, "test.periods": 80, "test.warmup": 10}
# the smoke sweep's hdpo_mlp_short (sweeps/inventory_smoke.toml)
SHORT = {
    "eval_every": 10,
    "patience": 0,
    "batch_size": 128,
    "train_scenarios": 2048,
    "dev_scenarios": 256,
    "dev_periods": 150,
    "threads": 1,
    "policy.hidden": [32, 32],
}


def test_short_run_that_diverged_restarts_from_its_best(monkeypatch):
    """Seed 1 of the smoke sweep's short run on p = 4, L = 1 diverged: the dev cost went 5.42 (step 10),
    8.8, 10.37 and stayed at 10.4 (optimum 4.0407). Without restarts it still does here; with them
    (the default) it restores its best parameters with fresh Adam moments and gets within 10% of the
    DP optimum."""
    opt = dp.lost_sales_dp(5.0, 1, 4.0, 1.0).cost
    assert opt == pytest.approx(4.0407, abs=1e-4)  # Zipkin (2008), Table 1

    def best_dev(extra):
        prep = prepare(
            P4, "hdpo_mlp", seed=1, solver_overrides={**SHORT, "max_steps": 60, **extra}, problem_overrides=PSET
        )
        rec = execute(prep, progress=False, trace=False)
        return rec["info"], [c["dev_cost"] for c in rec["curve"]]

    info, curve = best_dev({"restart_after": 0})
    assert info["restarts"] == 0
    assert min(curve) > 1.25 * opt and curve[-1] > 2.0 * opt  # diverged and stuck
    info, curve = best_dev({})
    assert info["restarts"] >= 1
    assert info["best_dev_cost"] == min(curve) < 1.10 * opt


class FakeClock:
    """Time that passes only while HDPO works: 1 s per training step, 3 s per dev evaluation (and its
    probe, a rollout of a few periods, in proportion). What HDPO decides then depends on this clock only."""

    def __init__(self, hdpo, monkeypatch, dev_periods: int):
        self.t = 0.0
        real_rollout, real_evaluate = hdpo.rollout, hdpo.evaluate

        def rollout(problem, policy, scenarios, *, periods=None, **kw):
            self.t += 1.0 if periods is None else 3.0 * periods / dev_periods
            return real_rollout(problem, policy, scenarios, periods=periods, **kw)

        def evaluate(problem, policy, scenarios, **kw):
            self.t += 3.0 * scenarios.n / SHORT["dev_scenarios"]
            return real_evaluate(problem, policy, scenarios, **kw)

        monkeypatch.setattr(hdpo, "rollout", rollout)
        monkeypatch.setattr(hdpo, "evaluate", evaluate)
        monkeypatch.setattr(hdpo.time, "perf_counter", lambda: self.t)


def test_time_limit_holds_evaluations_included_and_is_recorded(monkeypatch):
    import opsrl.algos.hdpo as hdpo

    FakeClock(hdpo, monkeypatch, SHORT["dev_periods"])
    limit = 40.0
    prep = prepare(
        P4,
        "hdpo_mlp",
        seed=0,
        problem_overrides=PSET,
        solver_overrides={**SHORT, "max_steps": 1000, "eval_every": 5, "time_limit": limit},
    )
    rec = execute(prep, progress=False, trace=False)
    curve = rec["curve"]
    assert rec["info"]["time_limited"] is True
    assert rec["info"]["steps"] < 1000
    # 40 s = the probe (3) + steps of 1 s + an evaluation of 3 s every 5 steps: the last evaluation ends
    # within the limit, and no further step would have fitted before another evaluation
    assert curve[-1]["seconds"] <= limit
    assert curve[-1]["seconds"] + 1.0 + 1.5 * 3.0 > limit
    assert rec["reproducible"] is False and "time limit" in rec["reproducible_note"]
    # a step cap that comes first: reproducible, and said so
    prep = prepare(
        P4,
        "hdpo_mlp",
        seed=0,
        problem_overrides=PSET,
        solver_overrides={**SHORT, "max_steps": 3, "eval_every": 5, "time_limit": 1e6},
    )
    rec = execute(prep, progress=False, trace=False)
    assert rec["info"]["time_limited"] is False and rec["reproducible"] is True
    assert rec["info"]["steps"] == 3


def test_time_limit_shorter_than_one_evaluation_evaluates_what_fits(monkeypatch):
    """A busy machine: a dev evaluation takes 3 s (the probe, 10 of its 150 periods, 0.2 s, predicts it; the
    decisions count it 1.5 times), a step 1 s, the limit is 3.2 s. After the probe and one step (1.2 s)
    there are 2 s left: the only evaluation uses the first floor(256 * 2 / 4.5) = 113 dev scenarios and
    ends at 1.2 + 3 * 113 / 256 s."""
    import opsrl.algos.hdpo as hdpo

    FakeClock(hdpo, monkeypatch, SHORT["dev_periods"])
    prep = prepare(
        P4, "hdpo_mlp", seed=0, problem_overrides=PSET, solver_overrides={**SHORT, "max_steps": 1000, "time_limit": 3.2}
    )
    rec = execute(prep, progress=False, trace=False)
    (entry,) = rec["curve"]
    assert entry["step"] == 1 and entry["dev_scenarios"] == 113
    assert entry["seconds"] == pytest.approx(1.2 + 3 * 113 / 256) and entry["seconds"] <= 3.2
    assert rec["info"]["time_limited"] is True and rec["reproducible"] is False
