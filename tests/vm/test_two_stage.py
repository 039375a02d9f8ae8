"""The two-stage policy: its distribution against a hand computation, the generic PPO builds and trains it from a
solver table, and the shipped policy's plans are valid."""

import pytest
import torch

from opsrl.algos import ppo
from opsrl.core import SolveContext, evaluate, rollout, validate
from opsrl.nn.actor_critic import build_actor_critic
from opsrl.vm import baselines
from opsrl.vm import simulator as sim
from opsrl.vm.problem import build

torch.set_num_threads(1)


def tiny():
    return build({"generator": "tiny", "mnl": 2, "block": 4.0}, "<test>")


def test_distribution_matches_hand_computation():
    p = tiny()
    torch.manual_seed(0)
    ac = build_actor_critic(p, {"kind": "two_stage", "width": 8, "layers": 1})
    with torch.no_grad():  # logits of order one, so that the check is not about near-uniform distributions
        for q in ac.parameters():
            q.normal_(0, 0.5)
    s = p.initial_state(p.sample(6, "test", 3))
    f = ac.encode(s, 0)
    d, v = ac.evaluate(f)
    m1 = p.action_mask(s)
    view = p.bipartite(s)
    l1, _, ctx = ac.net(view)
    for _ in range(20):
        a = d.sample()
        vm, slot = a[:, 0], a[:, 1]
        assert m1.gather(1, vm[:, None]).all()  # stage 1 draws only VMs with an allowed destination
        m2 = p.destination_mask(s, vm)
        assert m2.gather(1, slot[:, None]).all()  # stage 2 draws only allowed destinations
        l2 = ac.net.bin_logits(ctx, vm, p.pair_features(s, vm))
        ref1 = torch.log_softmax(l1.masked_fill(~m1, -torch.inf), 1).gather(1, vm[:, None])[:, 0]
        ref2 = torch.log_softmax(l2.masked_fill(~m2, -torch.inf), 1).gather(1, slot[:, None])[:, 0]
        assert torch.allclose(d.log_prob(a), ref1 + ref2, atol=1e-5)
        pr1 = torch.softmax(l1.masked_fill(~m1, -torch.inf), 1)
        pr2 = torch.softmax(l2.masked_fill(~m2, -torch.inf), 1)
        h = -(pr1 * pr1.clamp_min(1e-30).log()).sum(1) - (pr2 * pr2.clamp_min(1e-30).log()).sum(1)
        assert torch.allclose(d.entropy(), h, atol=1e-5)


def test_sample_logits_draws_the_categorical_distribution():
    """The one-uniform-per-row sampler of the two-stage distribution: frequencies of 40,000 draws within 4.5
    standard errors of the softmax probabilities (a hand-set row with masked entries, a row with one allowed
    entry, a near-uniform wide row), never an entry of probability zero."""
    from opsrl.nn.two_stage import sample_logits

    inf = torch.inf
    rows = torch.tensor(
        [[0.0, -inf, 1.0, -2.0, -inf, 0.5], [-inf, -inf, 3.0, -inf, -inf, -inf], [0.1, 0.0, -0.1, 0.2, 0.0, 0.05]]
    )
    n = 40_000
    torch.manual_seed(0)
    draws = sample_logits(rows.repeat(n, 1)).reshape(n, 3)
    p = torch.softmax(rows, 1)
    for r in range(3):
        freq = torch.bincount(draws[:, r], minlength=6).double() / n
        se = (p[r].double() * (1 - p[r].double()) / n).sqrt()
        assert bool(((freq - p[r].double()).abs() <= 4.5 * se + 1e-12).all()), (r, freq, p[r])
        assert bool((freq[p[r] == 0] == 0).all())


def test_generic_ppo_trains_the_two_stage_policy_on_tiny():
    p = build({"generator": "tiny", "mnl": 2, "block": 4.0, "pms": 3, "vms": 8}, "<test>")
    torch.manual_seed(0)
    ac = build_actor_critic(p, {"kind": "two_stage", "width": 16, "layers": 1})
    dev = p.sample(64, "dev", 0)
    before = evaluate(p, ac, dev).mean
    rand = evaluate(p, baselines.RandomFeasible(p, 0), dev).mean
    o = validate(
        {
            "lr": 3e-3,
            "batch_size": 8,
            "group_size": 4,
            "baseline": "group",
            "train_scenarios": 64,
            "iterations": 12,
            "epochs": 2,
            "minibatches": 1,
            "dev_scenarios": 32,
            "eval_every": 6,
            "lr_decay": False,
        },
        ppo.OPTIONS,
        "<test>",
    )
    ac, curve = ppo.train(p, ac, o, SolveContext(progress=False))
    after = evaluate(p, ac, dev).mean
    assert after < rand  # the trained policy lowers FR more than random feasible moves
    assert after <= before
    final = rollout(p, ac, dev).final_state
    assert (final["free_cpu"] >= 0).all() and (final["free_mem"] >= 0).all()


def test_shipped_policy_plans_are_valid():
    from opsrl.vm import policy as pol

    if not pol.WEIGHTS.is_file():
        pytest.skip("no shipped weights yet")
    p = build({"generator": "medium", "pms": 20, "vms": 140, "mnl": 5}, "<test>")
    ac = pol.load(p)
    sc = p.sample(2, "test", 0)
    s0 = p.initial_state(sc)
    for final in (pol.plan(p, ac, sc), pol.best_of(p, ac, sc, 4)):
        # replaying the recorded plan on the snapshot applies every move (each allowed at its turn)
        replay, applied = sim.apply_plan(s0, final["plan_vm"], final["plan_slot"])
        assert torch.equal(applied, (final["plan_vm"] >= 0).sum(1))
        assert torch.equal(replay["free_cpu"], final["free_cpu"])
        assert (replay["free_cpu"] >= 0).all() and (replay["free_mem"] >= 0).all()
        assert (sim.migrations(final) <= p.mnl).all()
    greedy_plan = pol.plan(p, ac, sc)
    best = pol.best_of(p, ac, sc, 4)
    assert (p.fr(best) <= p.fr(greedy_plan) + 1e-6).all()  # the greedy plan is one of the four


def test_ppo_solver_file_builds_the_two_stage_policy():
    from opsrl.nn.two_stage import TwoStageActorCritic
    from opsrl.registry import family, load_solver

    p = tiny()
    name, method, cfg = load_solver(
        "vm_ppo_two_stage", family("vm"), {"iterations": 2, "dev_scenarios": 8, "train_scenarios": 16}
    )
    assert method.name == "ppo" and cfg["policy"]["kind"] == "two_stage"
    out = method.fit(p, cfg["options"], cfg, SolveContext(progress=False, source=cfg["source"]))
    assert isinstance(out.policy, TwoStageActorCritic) and len(out.curve) >= 1
    final = rollout(p, out.policy, p.sample(8, "test", 0)).final_state
    assert (final["free_cpu"] >= 0).all()


def test_weights_that_are_not_torch_weights_are_one_clear_error(tmp_path):
    from opsrl.core import ConfigError
    from opsrl.vm import policy

    bad = tmp_path / "w.pt"
    bad.write_text("not weights")
    from opsrl.registry import load_problem

    with pytest.raises(ConfigError, match="options.weights.*not a torch weights file"):
        policy.load(load_problem("vm/tiny"), bad, "solvers/vm_gnn.toml")
