"""Rollout and policy iteration by simulation (opsrl.algos.rollout_pi), checked against exhaustive simulation:
every candidate, every path, one scenario row at a time with explicit loops."""

import importlib.util
import itertools
from pathlib import Path

import pytest
import torch

from opsrl.algos import rollout_pi as rp
from opsrl.core import ConfigError, SolveContext, evaluate, rollout, validate
from opsrl.lotsizing.rules import CoverRule

# the hand-made plant of tests/lotsizing/helpers.py (2 items, 2 machines; machine 2 makes both items), loaded by path:
# tests/algos is not a package beside tests/lotsizing
_spec = importlib.util.spec_from_file_location(
    "lotsizing_hand_plant", Path(__file__).parents[1] / "lotsizing" / "helpers.py"
)
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
HAND, hand_problem = _helpers.HAND, _helpers.hand_problem


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _plant(periods=6):
    return hand_problem(periods=periods, initial="random", demand={"distribution": "poisson", "mean": 4.0})


def _every_action(problem):
    """Every joint action of the plant (each machine idle or on an item it may make): ``[N, M]``."""
    allowed = problem.allowed
    per_machine = [torch.nonzero(allowed[m]).flatten().tolist() for m in range(problem.M)]
    return torch.tensor(list(itertools.product(*per_machine)))


def _row(state, b):
    return {k: v[b : b + 1].clone() for k, v in state.items()}


def _by_hand(problem, base, state, t, action, paths, r, horizon):
    """Cost of ``action`` at ``t`` then ``base`` on path ``r`` alone: one row, a plain loop over periods."""
    s = state
    sc = paths.select(slice(r, r + 1))
    total = 0.0
    for u in range(t, min(t + horizon, paths.periods)):
        a = action.view(1, -1) if u == t else base(s, u)
        post, c1 = problem.post_decision(s, a)
        s, c2 = problem.transition(post, sc, u)
        total += float(c1 + c2)
    return total


def _mid_episode(problem, rule, n, t):
    sc = problem.sample(n, "dev", 3)
    return rollout(problem, rule, sc, record=True).states[t]


def test_rollout_step_picks_the_exhaustive_best_with_the_same_paths():
    p = _plant()
    rule = CoverRule(p)
    B, R, H, t = 3, 6, 3, 2
    state = _mid_episode(p, rule, B, t)
    acts = _every_action(p)
    K = acts.shape[0]
    cands = acts.unsqueeze(0).expand(B, -1, -1).clone()
    paths = p.sample(B * R, "train", 11)
    step = rp.RolloutStep(p, rule, H, R, paths_fn=lambda s, tt, n, rnd: paths)
    chosen, idx = step.choose(state, t, cands)
    values = rp.rollout_values(p, rule, state, t, cands, paths, H)
    for b in range(B):
        own = paths.select(torch.arange(b * R, (b + 1) * R))
        means = [sum(_by_hand(p, rule, _row(state, b), t, acts[k], own, r, H) for r in range(R)) / R for k in range(K)]
        best = min(range(K), key=lambda k: (round(means[k], 6), k))  # ties: the first
        assert int(idx[b]) == best
        assert torch.equal(chosen[b], acts[best])
        assert values[b].mean(1).tolist() == pytest.approx(means, abs=1e-4)
    # sequential halving on the same paths every round keeps the same winner (means are unchanged)
    halving = rp.RolloutStep(p, rule, H, R, halving_rounds=2, paths_fn=lambda s, tt, n, rnd: paths)
    assert torch.equal(halving.choose(state, t, cands)[1], idx)


def test_two_candidates_ranked_as_by_hand_with_shared_paths():
    p = _plant()
    rule = CoverRule(p)
    B, R, H, t = 2, 4, 4, 1
    state = _mid_episode(p, rule, B, t)
    keep = state["setup"].argmax(-1)  # keep every setup
    idle = torch.zeros_like(keep)
    cands = torch.stack([idle, keep], 1)
    paths = p.sample(B * R, "train", 5)
    values = rp.rollout_values(p, rule, state, t, cands, paths, H)  # [B, 2, R]
    for b in range(B):
        own = paths.select(torch.arange(b * R, (b + 1) * R))
        by_hand = [[_by_hand(p, rule, _row(state, b), t, cands[b, k], own, r, H) for r in range(R)] for k in range(2)]
        assert values[b].tolist() == [pytest.approx(v, abs=1e-4) for v in by_hand]
        diff = [by_hand[1][r] - by_hand[0][r] for r in range(R)]  # paired, path by path
        step = rp.RolloutStep(p, rule, H, R, paths_fn=lambda s, tt, n, rnd: paths)
        _, idx = step.choose(state, t, cands)
        assert int(idx[b]) == (1 if sum(diff) < 0 else 0)


def test_rollout_policy_evaluates_and_does_not_lose_to_its_rule_with_every_action():
    p = _plant(periods=8)
    rule = CoverRule(p)
    acts = _every_action(p)
    every = lambda s, t: acts.unsqueeze(0).expand(s["inventory"].shape[0], -1, -1)  # noqa: E731
    pol = rp.RolloutPolicy(p, rule, rp.candidate_fn(p, [rule], extra=[every]), horizon=8, paths=32, seed=1)
    test = p.test_set()
    base, roll = evaluate(p, rule, test), evaluate(p, pol, test)
    assert roll.mean < base.mean  # 32 fresh paths to the end of the episode: a clear improvement here


def test_policy_iteration_never_ends_worse_than_its_rule_on_dev():
    p = _plant(periods=8)
    rule = CoverRule(p)
    acts = _every_action(p)
    every = lambda s, t: acts.unsqueeze(0).expand(s["inventory"].shape[0], -1, -1)  # noqa: E731
    best, curve = rp.policy_iteration(
        p, rule, iterations=2, states=96, horizon=4, paths=4, extra=[every], dev_scenarios=48, steps=150, seed=0
    )
    dev = p.sample(48, "dev", 0)
    start = evaluate(p, rule, dev).mean
    assert curve[0]["dev_cost"] == pytest.approx(start)
    final = evaluate(p, best, dev).mean
    assert final <= start + 1e-9
    assert final == pytest.approx(min(c["dev_cost"] for c in curve))
    assert len(curve) == 3


def test_dagger_iterations_fit_the_teacher_and_the_window_keeps_the_newest_labels():
    """A teacher that leaves every machine idle: after one DAgger iteration the classifier is that teacher, so
    its dev cost equals the idle plan's, simulated directly. With ``window`` the fit sees the newest labels
    only: 16 per iteration here (8 scenarios x 2 periods), at most 20 kept."""
    p = _plant(periods=8)
    rule = CoverRule(p)
    idle = lambda s, t: torch.zeros(s["inventory"].shape[0], p.M, dtype=torch.long)  # noqa: E731
    dev = p.sample(48, "dev", 0)
    best, curve = rp.policy_iteration(
        p, rule, iterations=2, states=16, periods_per_iteration=2, horizon=4, paths=2, teacher=idle, dagger=1,
        window=20, dev_scenarios=48, steps=200, seed=0,
    )  # fmt: skip
    assert [c.get("by") for c in curve[1:]] == ["teacher", "rollouts"]
    assert curve[1]["dev_cost"] == pytest.approx(evaluate(p, idle, dev).mean)
    assert [c["labels"] for c in curve[1:]] == [16, 20]
    assert evaluate(p, best, dev).mean == pytest.approx(min(c["dev_cost"] for c in curve))
    with pytest.raises(ValueError, match="teacher"):
        rp.policy_iteration(p, rule, iterations=1, dagger=1)


def test_teacher_and_dagger_options_must_come_together():
    from opsrl import registry

    p = _plant()
    ctx = SolveContext(seed=0, progress=False, fit_solver=registry.fit_solver, source="s.toml")
    base = {"start": "lotsizing_cover_rule", "iterations": 1}
    bad = [
        ({"dagger": 1}, "options.dagger.*teacher"),
        ({"teacher": "lotsizing_cover_rule"}, "options.teacher.*dagger 0"),
        ({"teacher": "lotsizing_cover_rule", "dagger": 2}, "options.dagger.*at most options.iterations"),
        ({"teacher": "no_such_solver", "dagger": 1}, "options.teacher"),
    ]
    for extra, msg in bad:
        o = validate({**base, **extra}, rp.OPTIONS, "s.toml", prefix="options.")
        with pytest.raises(ConfigError, match=msg):
            rp.fit(p, o, {}, ctx)
    with pytest.raises(ConfigError, match="window"):
        validate({**base, "window": -1}, rp.OPTIONS, "s.toml", prefix="options.")


def test_solver_file_fits_through_the_registry():
    from opsrl import registry

    p = _plant(periods=6)
    ctx = SolveContext(seed=0, progress=False, fit_solver=registry.fit_solver)
    out = registry.fit_solver("lotsizing_rollout", p, ctx)
    dev = p.sample(64, "dev", 0)
    assert evaluate(p, out.policy, dev).mean <= evaluate(p, CoverRule(p), dev).mean + 1e-9
    assert out.info["start_dev_cost"] == pytest.approx(out.curve[0]["dev_cost"])


def test_bad_options_are_one_clear_error():
    p = _plant()
    rule = CoverRule(p)
    with pytest.raises(ConfigError, match="horizon"):
        rp.RolloutStep(p, rule, 0, 4, source="s.toml")
    with pytest.raises(ConfigError, match="horizon"):
        validate({"start": "x", "horizon": 0}, rp.OPTIONS, "s.toml", prefix="options.")
    with pytest.raises(ConfigError, match="paths"):
        validate({"start": "x", "paths": 10**6}, rp.OPTIONS, "s.toml", prefix="options.")
    with pytest.raises(ConfigError, match="paths"):  # within the key's bound, but not within memory
        rp.RolloutStep(p, rule, 5, 4096, source="s.toml").check_memory(10**6, 64)
    state = p.initial_state(p.sample(2, "dev", 0))
    none = lambda s, t: torch.zeros(2, 0, p.M, dtype=torch.long)  # noqa: E731
    with pytest.raises(ConfigError, match="candidates"):
        rp.RolloutPolicy(p, rule, none, 3, 2, source="s.toml")(state, 0)


def test_job_shop_rollout_and_iteration_from_a_dispatching_rule():
    from opsrl.jobshop.rules import DispatchRule
    from opsrl.registry import load_problem

    p = load_problem("jobshop/ft06")
    spt = DispatchRule("spt")
    every = lambda s, t: torch.arange(p.jobs).expand(s["mask"].shape[0], -1)  # noqa: E731
    test = p.test_set()
    base = evaluate(p, spt, test).mean
    pol = rp.RolloutPolicy(p, spt, rp.candidate_fn(p, [spt], extra=[every]), horizon=p.periods, paths=1)
    # a deterministic instance, the rule among the candidates and rollouts to the end: never worse than the rule
    roll = evaluate(p, pol, test).mean
    assert 55 <= roll < base  # ft06's optimum is 55 (Fisher and Thompson; problems/jobshop/ft06.toml)
    best, curve = rp.policy_iteration(
        p, spt, iterations=1, states=24, periods_per_iteration=6, horizon=p.periods, paths=1, extra=[every], steps=100
    )
    assert evaluate(p, best, p.sample(64, "dev", 0)).mean <= curve[0]["dev_cost"] + 1e-9
    assert curve[1]["dev_cost"] < curve[0]["dev_cost"]  # one iteration already improves on the rule


def test_vm_two_stage_rollout_and_iteration_from_a_repacking_rule():
    """VM rescheduling (two decisions per step, a mask on the first only): rollouts over FFD with the greedy
    move as the other candidate beat FFD on tiny (deterministic, so rollouts to the end are exact and, FFD's
    own move being a candidate, never worse than FFD); policy iteration from FFD runs and keeps the best on
    dev."""
    from opsrl.registry import load_problem
    from opsrl.vm.baselines import FFD, Greedy

    p = load_problem("vm/tiny")
    test = p.test_set()
    ffd, greedy = FFD(p), Greedy(p)
    base = evaluate(p, ffd, test).mean
    pol = rp.RolloutPolicy(p, ffd, [ffd, greedy], horizon=p.periods, paths=1)
    roll = evaluate(p, pol, test).mean
    assert roll < base - 0.01  # -0.0510 against FFD's -0.0152 (fragment-rate change, lower is better)
    best, curve = rp.policy_iteration(
        p,
        ffd,
        iterations=1,
        states=16,
        periods_per_iteration=2,
        horizon=p.periods,
        paths=1,
        teachers=[greedy],
        steps=50,
    )
    assert evaluate(p, best, p.sample(64, "dev", 0)).mean <= curve[0]["dev_cost"] + 1e-9


def test_job_shop_rollouts_cut_short_add_the_makespan_bound_as_tail():
    """Two jobs on two machines, J0 = (m0, 3), (m1, 2) and J1 = (m0, 2), (m1, 5); either job may go first. By
    hand: J0 first ends at 10 whatever follows, J1 first at 9; after one dispatch the partial makespans are 3 and
    2, the makespan bounds 10 and 9 (see tests/jobshop)."""
    from opsrl.jobshop import instances as I
    from opsrl.jobshop import simulator as S

    p = S.JobShop([I.read_text("2 2\n0 3 1 2\n0 2 1 5", "two")])
    st = p.initial_state(p.test_set())
    cands = torch.tensor([[[0], [1]]])
    first = lambda s, t: s["mask"].float().argmax(1)  # noqa: E731 (the lowest allowed job)
    paths = p.test_set()

    def values(h, tail=None):
        return rp.rollout_values(p, first, st, 0, cands, paths, h, tail).view(-1).tolist()

    assert values(p.periods) == [10, 9]  # to the end: the makespans
    assert values(p.periods, rp.bound_tail(p)) == [10, 9]  # nothing is left to bound
    assert values(1) == [3, 2]  # one dispatch: the partial makespans
    assert values(1, rp.bound_tail(p)) == [10, 9]  # ... plus the bound's tail (7 and 7)
    assert values(1, rp.policy_tail(p, first)) == [10, 9]  # ... or the rule finishing the schedule


def test_tail_option_bound_or_a_finishing_rule():
    from opsrl import registry
    from opsrl.jobshop.rules import DispatchRule
    from opsrl.registry import load_problem

    ctx = SolveContext(seed=0, progress=False, fit_solver=registry.fit_solver, source="s.toml")
    o = validate({"start": "lotsizing_cover_rule", "iterations": 0, "tail": "bound"}, rp.OPTIONS, "s.toml", "options.")
    with pytest.raises(ConfigError, match="options.tail.*has none"):
        rp.fit(_plant(), o, {}, ctx)
    p = load_problem("jobshop/ft06")
    o = validate({"start": "spt", "iterations": 0, "tail": "no_such_rule"}, rp.OPTIONS, "s.toml", "options.")
    with pytest.raises(ConfigError, match="options.tail.*no_such_rule"):
        rp.fit(p, o, {}, ctx)
    o = validate(
        {"start": "spt", "iterations": 0, "tail": "bound", "horizon": 12, "paths": 1, "output": "rollout"},
        rp.OPTIONS,
        "s.toml",
        "options.",
    )
    assert 55 <= evaluate(p, rp.fit(p, o, {}, ctx).policy, p.test_set()).mean  # ft06's optimum
    # with the base rule as the tail, a rollout cut at 12 dispatches is the rollout to the end: same schedule
    o = validate({**o, "tail": "spt", "candidates": ["mwkr", "lpt"]}, rp.OPTIONS, "s.toml", "options.")
    cut = evaluate(p, rp.fit(p, o, {}, ctx).policy, p.test_set()).mean
    o = validate({**o, "tail": "none", "horizon": p.periods}, rp.OPTIONS, "s.toml", "options.")
    full = evaluate(p, rp.fit(p, o, {}, ctx).policy, p.test_set()).mean
    assert cut == full < evaluate(p, DispatchRule("spt"), p.test_set()).mean
