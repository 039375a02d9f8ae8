import itertools

import numpy as np
import pytest
import torch

from opsrl.core import Scenarios, rollout
from opsrl.lotsizing import mip
from opsrl.lotsizing.rules import CoverRule
from opsrl.lotsizing.simulator import build

from .helpers import hand_problem

DEMAND = [[5.0, 4.0], [6.0, 2.0], [2.0, 9.0], [7.0, 3.0]]


def _brute_force(p, demand, inv0, setup0):
    """Minimum total cost over every masked action sequence, through the batched simulator."""
    allowed = [[k for k in range(p.K) if p.allowed[m, k]] for m in range(p.M)]
    joint = list(itertools.product(*allowed))
    seqs = torch.tensor(list(itertools.product(range(len(joint)), repeat=len(demand))))
    acts = torch.tensor(joint)[seqs]  # [S, T, M]
    S = acts.shape[0]
    sc = Scenarios(
        {
            "demand": torch.tensor(demand).expand(S, -1, -1),
            "inventory0": torch.tensor(inv0).expand(S, -1),
            "setup0": torch.tensor(setup0).expand(S, -1),
        },
        "test",
        0,
        len(demand),
    )
    traj = rollout(p, lambda s, t: acts[:, t], sc)
    return traj.costs.sum(1).min().item()


@pytest.mark.parametrize("inv0,setup0", [([3.0, 1.0], [1, 0]), ([11.0, 0.0], [0, 2]), ([0.0, 12.0], [0, 0])])
def test_perfect_information_mip_equals_brute_force(inv0, setup0):
    p = hand_problem(periods=4)
    best = _brute_force(p, DEMAND, inv0, setup0)
    kw = dict(
        cap=p.inst.capacity,
        sc=p.inst.setup_cost,
        sl=p.inst.setup_loss,
        h=p.inst.holding_cost,
        ls=p.inst.lost_sales_cost,
        max_inv=p.inst.max_inventory,
        inv0=np.array(inv0),
        setup0=np.array(setup0),
        demand=np.array(DEMAND),
        time_limit=20,
    )
    exact = mip.plan(**kw, exact_cap=True)
    assert exact.status == "optimal" and exact.objective == pytest.approx(best, abs=1e-6)
    # the plan it returns costs that much in the simulator
    sc = Scenarios(
        {"demand": torch.tensor([DEMAND]), "inventory0": torch.tensor([inv0]), "setup0": torch.tensor([setup0])},
        "test",
        0,
        4,
    )
    acts = torch.as_tensor(exact.actions)
    assert rollout(p, lambda s, t: acts[t].unsqueeze(0), sc).costs.sum().item() == pytest.approx(best, abs=1e-5)
    relaxed = mip.plan(**kw, exact_cap=False)  # free disposal: a relaxation
    assert relaxed.objective <= best + 1e-6
    static = mip.plan(**kw, static=True, exact_cap=True)  # one choice per machine over the horizon: a restriction
    assert static.objective >= best - 1e-6


def test_bound_below_every_policy_on_the_same_scenarios():
    p = build({"items": 4, "machines": 2, "seed": 42, "periods": 10}, "small.toml")
    sc = p.sample(3, "test", 0)
    bounds = torch.tensor([mip.hindsight(p, sc, b, time_limit=3).bound for b in range(sc.n)])
    g = torch.Generator().manual_seed(0)

    def random_policy(s, t):
        a = torch.randint(0, p.K, (s["inventory"].shape[0], p.M), generator=g)
        return torch.where(p.action_mask(s).gather(2, a.unsqueeze(-1)).squeeze(-1), a, torch.zeros_like(a))

    policies = {
        "idle": lambda s, t: torch.zeros(s["inventory"].shape[0], p.M, dtype=torch.long),
        "keep": lambda s, t: s["setup"].argmax(-1),
        "random": random_policy,
        "cover": CoverRule(p, 2.0, 6.0),
        "mpc": mip.RollingMIP(p, horizon=4, time_limit=0.5),
    }
    for name, pol in policies.items():
        cost = rollout(p, pol, sc).costs.sum(1)
        assert bool((bounds <= cost + 1e-4).all()), name
    # and the bound is not trivial: above zero on every scenario
    assert bool((bounds > 0).all())


def test_an_lp_stopped_before_its_optimum_gives_no_bound():
    """GLOP cut short by its time limit returns a primal value above the LP optimum (it once reported 3,976 on an
    i25_m10 scenario whose LP optimum is 120 and whose policies cost 2,700): never a bound. A 1 ms limit on a
    100-period 25 x 10 relaxation (GLOP needs seconds) stops it every time."""
    p = build({"items": 25, "machines": 10, "seed": 2510, "periods": 100}, "i25_m10.toml")
    sc = p.sample(1, "test", 0)
    data = dict(
        **mip._arrays(p),
        inv0=sc["inventory0"][0].double().numpy(),
        setup0=sc["setup0"][0].numpy(),
        demand=sc["demand"][0].double().numpy(),
    )
    r = mip.plan(**data, relax=True, time_limit=0.001)
    assert r.status.startswith("lp_") and r.status != "lp_optimal"
    assert np.isnan(r.bound) and np.isnan(r.objective)


def test_cover_rule_on_a_hand_state():
    """Item 1 is short (cover 0.5 period) and item 2 full; machine 1 is set up for nothing, machine 2 for item 2."""
    p = hand_problem()
    mean = p.mean_demand  # 8
    state = {
        "inventory": torch.tensor([[4.0, 96.0]]),
        "setup": torch.nn.functional.one_hot(torch.tensor([[0, 2]]), 3).float(),
    }
    a = CoverRule(p, low=2.0, high=6.0)(state, 0)
    # machine 1 (can make item 1 only) switches to item 1; machine 2 keeps item 2 (cover 12 >= high, but item 1,
    # the only item below low, is taken by machine 1 with the larger capacity, so nothing is left to switch to)
    assert a.tolist() == [[1, 2]]
    assert 4.0 / mean < 2.0
    state["inventory"] = torch.tensor([[40.0, 10.0]])  # item 1 cover 5, item 2 cover 1.25
    a = CoverRule(p, low=2.0, high=6.0)(state, 0)
    assert a.tolist() == [[0, 2]]  # machine 1 idle and nothing it can make is urgent; machine 2 keeps item 2
