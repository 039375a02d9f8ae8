"""The fast best-of-K planner (opsrl.vm.policy.fast_plan) against the straightforward path through the policy's
generic contract methods: the same logits, the same random draws and so the same plans, bit for bit."""

import pytest
import torch

from opsrl.nn.actor_critic import build_actor_critic
from opsrl.vm import policy as pol
from opsrl.vm import simulator as sim
from opsrl.vm.problem import build

torch.set_num_threads(1)


def _setup(**extra):
    p = build({"generator": "medium", "pms": 12, "vms": 70, "mnl": 6, **extra}, "<test>")
    torch.manual_seed(0)
    ac = build_actor_critic(p, {"kind": "two_stage", "width": 8, "layers": 2})
    with torch.no_grad():  # logits of order one: sampling is far from uniform and argmax far from ties
        for q in ac.parameters():
            q.normal_(0, 0.5)
    ac.eval()
    return p, ac


@pytest.mark.parametrize("extra", [{}, {"objective": "multi", "anti_affinity": {"groups": 3, "size": 2}}])
def test_fast_step_has_the_reference_logits(extra):
    p, ac = _setup(**extra)
    s = p.initial_state(p.sample(5, "test", 1))
    # a few random allowed moves first, so that the state is not the snapshot
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        m1 = p.action_mask(s)
        vm = torch.multinomial(m1.float() + 1e-9, 1, generator=g)[:, 0]
        m2 = p.destination_mask(s, vm)
        slot = torch.multinomial(m2.float() + 1e-9, 1, generator=g)[:, 0]
        s, _ = p.post_decision(s, torch.stack([vm, slot], 1))
    with torch.no_grad():
        d, _ = ac.evaluate(ac.encode(s, 0))
        item = d.cat1.sample()
        ref2 = d._second(item).logits
        fit = sim.kind_fit(s)
        src = sim.source_delta(s, p.block, p.objective, p.mem_block)
        best, _ = sim.vm_best_moves(
            s,
            p.block,
            p.objective,
            p.mem_block,
            fit=fit,
            dest=sim.kind_dest_delta(s, p.block, p.objective, p.mem_block),
            src=src,
        )
        view = p.bipartite(s, src=src, best=best)
        l1, _, ctx = ac.net(view, critic=False)
        ok = sim.destination_mask(s, item)
        pair = p.pair_features_of(s, item, src, ok)
        assert torch.equal(pair, p.pair_features(s, item))
        fast1 = pol._masked_logits(l1, sim.first_stage_mask(s, fit))
        fast2 = torch.distributions.Categorical(
            logits=pol._masked_logits(ac.net.bin_logits(ctx, item, pair), ok)
        ).logits
    assert torch.equal(fast1, d.logits1)
    assert torch.equal(fast2, ref2)
    assert torch.isfinite(fast1).sum() > 5  # a real choice, not one allowed item


def test_fast_best_of_makes_the_reference_plans():
    p, ac = _setup()
    sc = p.sample(3, "test", 2)
    k = 8
    n = sc.n
    rep = sc.select(torch.arange(n).repeat_interleave(k))
    sample_rows = torch.arange(n * k) % k != 0
    torch.manual_seed(5)
    ref = pol.sampled_plan(p, ac, rep, sample_rows)
    torch.manual_seed(5)
    fast = pol.fast_plan(p, ac, rep, sample_rows)
    for key in ("plan_vm", "plan_slot", "vm_pm", "vm_node", "free_cpu", "free_mem"):
        assert torch.equal(fast[key], ref[key]), key
    # the sampled plans differ from one another (the check is about sampling, not K copies of greedy)
    assert len({tuple(r) for r in ref["plan_vm"].tolist()}) > k
    assert torch.equal(pol.fast_plan(p, ac, sc)["plan_vm"], pol.plan(p, ac, sc)["plan_vm"])
    a, b = pol.best_of(p, ac, sc, k, 7), pol.best_of_reference(p, ac, sc, k, 7)
    assert torch.equal(a["plan_vm"], b["plan_vm"]) and torch.equal(p.fr(a), p.fr(b))


@pytest.mark.parametrize("extra", [{}, {"objective": "multi", "anti_affinity": {"groups": 3, "size": 2}}])
def test_kind_tensors_kept_up_to_date_equal_recomputing_them(extra):
    """The kind tensors updated on the two PMs a move touches (policy._Kinds) equal kind_fit and kind_dest_delta
    of the whole state, after every move of random feasible plans (anti-affinity included)."""
    p = build({"generator": "medium", "pms": 12, "vms": 70, "mnl": 6, **extra}, "<test>")
    s = p.initial_state(p.sample(4, "test", 3))
    kinds = pol._Kinds(p, s)
    g = torch.Generator().manual_seed(1)
    for _ in range(8):
        vm = torch.multinomial(p.action_mask(s).float() + 1e-9, 1, generator=g)[:, 0]
        slot = torch.multinomial(p.destination_mask(s, vm).float() + 1e-9, 1, generator=g)[:, 0]
        src = s["vm_pm"].gather(1, vm[:, None])[:, 0]
        s, _ = p.post_decision(s, torch.stack([vm, slot], 1))
        kinds.moved(s, torch.stack([src, slot // 2], 1))
        assert torch.equal(kinds.fit, sim.kind_fit(s))
        assert torch.equal(kinds.dest, sim.kind_dest_delta(s, p.block, p.objective, p.mem_block))
        assert torch.equal(kinds.n_fit, sim.kind_fit(s).sum(-1))
        src_all = sim.source_delta(s, p.block, p.objective, p.mem_block)
        assert torch.equal(
            sim.vm_best_values(s, kinds.fit, kinds.dest, src_all),
            sim.vm_best_moves(s, p.block, p.objective, p.mem_block)[0],
        )
        bi, vi = torch.nonzero(s["vm_mask"], as_tuple=True)
        assert torch.equal(sim.source_delta(s, p.block, p.objective, p.mem_block, (bi, vi)), src_all[bi, vi])


@pytest.mark.parametrize("extra", [{}, {"objective": "multi", "anti_affinity": {"groups": 3, "size": 2}}])
def test_incremental_flat_network_makes_the_reference_plans(extra):
    """A network without message passing (layers = 0) runs incrementally in fast_plan (only the embedding rows
    whose features changed are recomputed): the same K plans as the generic contract path, bit for bit, on
    small snapshots; every move of the best plan is allowed at its turn and its FR is the replayed FR."""
    from opsrl.nn.two_stage import TwoStageActorCritic

    p = build({"generator": "medium", "pms": 12, "vms": 70, "mnl": 6, **extra}, "<test>")
    torch.manual_seed(0)
    ac = TwoStageActorCritic(p, 16, 0)
    with torch.no_grad():
        for q in ac.parameters():
            q.normal_(0, 0.5)
    ac.eval()
    sc = p.sample(3, "test", 2)
    k, n = 8, sc.n
    rep = sc.select(torch.arange(n).repeat_interleave(k))
    sample_rows = torch.arange(n * k) % k != 0
    torch.manual_seed(5)
    ref = pol.sampled_plan(p, ac, rep, sample_rows)
    torch.manual_seed(5)
    stats = {}
    fast = pol.fast_plan(p, ac, rep, sample_rows, rep=k, stats=stats)
    for key in ("plan_vm", "plan_slot", "vm_pm", "vm_node", "free_cpu", "free_mem"):
        assert torch.equal(fast[key], ref[key]), key
    assert len({tuple(r) for r in ref["plan_vm"].tolist()}) > k
    # incremental: fewer embedding rows recomputed than a full recomputation every step
    assert 0 < stats["items"] < stats["B"] * stats["V"] * p.periods
    assert torch.equal(pol.fast_plan(p, ac, sc)["plan_vm"], pol.plan(p, ac, sc)["plan_vm"])
    best = pol.best_of(p, ac, sc, k, 7)
    assert torch.equal(best["plan_vm"], pol.best_of_reference(p, ac, sc, k, 7)["plan_vm"])
    s = p.initial_state(sc)
    for t in range(p.periods):
        vm, slot = best["plan_vm"][:, t], best["plan_slot"][:, t]
        assert bool((sim.move_allowed(s, vm, slot) | (vm < 0)).all())
        s, _ = p.post_decision(s, torch.stack([vm, slot], 1))
    assert torch.equal(p.fr(s), p.fr(best))
