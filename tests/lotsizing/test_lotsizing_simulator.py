import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from opsrl.core import Scenarios
from opsrl.lotsizing import instances
from opsrl.lotsizing.numpy_env import PlantEnv
from opsrl.lotsizing.simulator import build
from opsrl.nn.actor_critic import build_actor_critic

from .helpers import hand_problem


def _hand_scenario(p):
    demand = torch.tensor([[[0.0, 4.0], [6.0, 2.0], [2.0, 9.0]]])
    return Scenarios(
        {"demand": demand, "inventory0": torch.tensor([[3.0, 1.0]]), "setup0": torch.tensor([[1, 0]])}, "test", 0, 3
    )


def test_trajectory_by_hand():
    """2 items x 2 machines, three periods worked out on paper (see the comments)."""
    p = hand_problem()
    sc = _hand_scenario(p)
    s = p.initial_state(sc)
    actions = [[1, 2], [0, 2], [1, 1]]
    # t0: m1 keeps item 1 (+10, no setup); m2 idle -> item 2: cost 2, loss 1 (+5). post [13, 6]; demand [0, 4]
    #     -> [13, 2], item 1 capped at 12 (1 unit discarded); holding 0.5 * 12 + 0.25 * 2 = 6.5
    # t1: m1 idle (forgets its setup), m2 keeps item 2 (+6). post [12, 8]; demand [6, 2] -> [6, 6]; holding 4.5
    # t2: m1 idle -> item 1: cost 5, loss 1 (+9); m2 item 2 -> item 1: cost 3, loss 2 (+2). post [17, 6];
    #     demand [2, 9] -> [15, -3]: 3 lost at 3 = 9, item 1 capped at 12, holding 6
    want_post = [[13, 6], [12, 8], [17, 6]]
    want_setup = [[1, 2], [0, 2], [1, 1]]
    want_dec, want_exo = [2.0, 0.0, 8.0], [6.5, 4.5, 15.0]
    want_inv = [[12, 2], [6, 6], [12, 0]]
    for t, a in enumerate(actions):
        post, c1 = p.post_decision(s, torch.tensor([a]))
        assert post["inventory"][0].tolist() == want_post[t]
        assert post["setup"][0].argmax(-1).tolist() == want_setup[t]
        s, c2 = p.transition(post, sc, t)
        assert s["inventory"][0].tolist() == want_inv[t]
        assert c1.item() == pytest.approx(want_dec[t]) and c2.item() == pytest.approx(want_exo[t])


def test_against_numpy_reimplementation_of_the_authors_step():
    """The batched step equals a one-environment loop of the published semantics, on random actions."""
    p = build({"items": 25, "machines": 15, "seed": 2515}, "x.toml")
    sc = p.sample(6, "test", 3, periods=40)
    s = p.initial_state(sc)
    g = torch.Generator().manual_seed(0)
    envs = [PlantEnv(p.inst) for _ in range(sc.n)]
    for b, e in enumerate(envs):
        e.reset(sc["inventory0"][b].numpy(), sc["setup0"][b].numpy(), sc["demand"][b].numpy())
    for t in range(40):
        a = torch.randint(0, p.K, (sc.n, p.M), generator=g)  # unmasked: impossible setups included
        post, c1 = p.post_decision(s, a)
        s, c2 = p.transition(post, sc, t)
        for b, e in enumerate(envs):
            setup, lost, hold = e.step(a[b].numpy())
            assert c1[b].item() == pytest.approx(setup, abs=1e-3)
            assert c2[b].item() == pytest.approx(lost + hold, abs=1e-3)
            np.testing.assert_allclose(s["inventory"][b].numpy(), e.inventory, atol=1e-4)
            assert s["setup"][b].argmax(-1).tolist() == e.setup.tolist()


def test_soft_one_hot_action_equals_index_action_and_carries_gradients():
    p = build({"items": 6, "machines": 3, "seed": 7}, "x.toml")
    sc = p.sample(4, "train", 0, periods=5)
    s = p.initial_state(sc)
    a = torch.tensor([[1, 0, 2], [3, 3, 0], [0, 0, 0], [6, 5, 4]]) % p.K
    a = torch.where(p.action_mask(s).gather(2, a.unsqueeze(-1)).squeeze(-1), a, torch.zeros_like(a))
    post_i, c_i = p.post_decision(s, a)
    logits = torch.zeros(4, p.M, p.K, requires_grad=True)
    y = torch.softmax(logits, -1)
    hard = torch.nn.functional.one_hot(a, p.K).float()
    post_s, c_s = p.post_decision(s, hard - y.detach() + y)
    assert torch.equal(post_i["inventory"], post_s["inventory"]) and torch.allclose(c_i, c_s)
    nxt, c2 = p.transition(post_s, sc, 0)
    (c_s.sum() + c2.sum()).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@settings(max_examples=25, deadline=None)
@given(items=st.integers(1, 8), machines=st.integers(1, 5), seed=st.integers(0, 10_000), idle=st.booleans())
def test_masks_never_allow_an_impossible_setup(items, machines, seed, idle):
    try:
        p = build({"items": items, "machines": machines, "seed": seed, "idle": idle}, "x.toml")
    except Exception as e:  # a generated plant where idle = false leaves a machine nothing is refused, never run
        assert "no action" in str(e)
        return
    sc = p.sample(16, "train", seed % 7, periods=3)
    s = p.initial_state(sc)
    mask = p.action_mask(s)
    cap = p.cap
    assert mask.shape == (16, machines, items + 1)
    assert torch.equal(mask[..., 1:], (cap > 0).expand(16, -1, -1))
    assert bool(mask[..., 0].all()) == idle and not bool(mask[..., 0].any()) == (not idle)
    # the initial setups are makeable items (idle only for a machine that can make nothing)
    chosen = s["setup"].argmax(-1)
    made = cap.expand(16, -1, -1).gather(2, (chosen - 1).clamp_min(0).unsqueeze(-1)).squeeze(-1)
    assert bool(torch.where(chosen > 0, made > 0, ~(cap > 0).any(1).expand(16, -1)).all())
    # samples of the factorised masked head with random logits only take allowed choices
    ac = build_actor_critic(p, {"hidden": [8]})
    torch.manual_seed(seed)
    with torch.no_grad():
        ac.actor[-1].weight.normal_(0, 3.0)
        for t in range(3):
            d = ac.distribution(ac.encode(s, t))
            a = ac.to_action(d.sample()).reshape(16, machines)
            assert bool(mask.gather(2, a.unsqueeze(-1)).all())
            post, _ = p.post_decision(s, a)
            s, _ = p.transition(post, sc, t)


def test_generator_follows_the_published_distributions():
    inst = instances.generate(400, 100, 1)
    cap = inst.capacity
    assert abs((cap == 0).mean() - 0.4) < 0.01 and cap.max() == 40 and set(np.unique(cap)) <= set(range(41))
    assert set(np.unique(inst.setup_cost)) == set(range(15, 31)) and abs((inst.setup_cost == 15).mean() - 0.2) < 0.01
    assert set(np.unique(inst.setup_loss)) == {1, 2, 3} and abs((inst.setup_loss == 1).mean() - 0.7) < 0.01
    assert set(np.unique(inst.lost_sales_cost)) == {0.1, 1.1}
    assert (inst.holding_cost == 0.01).all() and (inst.max_inventory == 100).all()
    assert inst.initial_inventory.max() <= 50 and set(np.unique(inst.initial_setup)) <= set(range(401))
    old = instances.generate(15, 5, 1505, "older")
    assert set(np.unique(old.setup_cost)) <= {1, 2} and (old.setup_loss == 1).all()
    assert (old.lost_sales_cost == 0.2).all() and (old.initial_inventory == 0).all()
    # documented seeds give the same instance every time, and every item has a machine
    again = instances.generate(400, 100, 1)
    assert np.array_equal(again.capacity, cap) and (cap.sum(0) > 0).all()


@pytest.mark.parametrize(
    "demand,mean,var",
    [
        ({}, 8.0, 4.8),
        ({"distribution": "poisson", "mean": 3.5}, 3.5, 3.5),
        ({"distribution": "pmf", "values": [0, 5, 10], "probs": [0.5, 0.25, 0.25]}, 3.75, 17.1875),
    ],
)
def test_demand_distributions(demand, mean, var):
    p = build({"items": 5, "machines": 2, "seed": 3, "demand": demand}, "x.toml")
    d = p.sample(400, "train", 0)["demand"].double()
    assert p.mean_demand == pytest.approx(mean)
    assert d.mean().item() == pytest.approx(mean, rel=0.01)
    assert d.var().item() == pytest.approx(var, rel=0.03)


def test_random_initial_state_is_the_authors_reset():
    p = build({"items": 10, "machines": 4, "seed": 11}, "x.toml")
    sc = p.sample(2000, "test", 0)
    inv = sc["inventory0"]
    assert inv.min() == 0 and inv.max() == 99  # numpy randint(0, 100)
    assert inv.mean().item() == pytest.approx(49.5, abs=0.5)
    setup = sc["setup0"]
    can = torch.as_tensor(p.inst.capacity > 0)
    for m in range(p.M):  # uniform over the makeable items of each machine
        counts = torch.bincount(setup[:, m] - 1, minlength=p.I).double() / sc.n
        allowed = can[m].double() / can[m].sum()
        assert torch.allclose(counts, allowed, atol=0.04)


def test_index_observation_is_the_authors_state_normalised():
    p = build({"items": 3, "machines": 2, "seed": 5, "observation": "index"}, "x.toml")
    state = {
        "inventory": torch.tensor([[50.0, 0.0, 100.0]]),
        "setup": torch.nn.functional.one_hot(torch.tensor([[3, 0]]), 4).float(),
    }
    assert p.observe(state).tolist() == [[0.5, 0.0, 1.0, 1.0, 0.0]]
    assert build({"items": 3, "machines": 2, "seed": 5}, "x.toml").observe(state).shape == (1, 3 + 2 * 4)
