"""The item-decomposition Lagrangian bound against the exact perfect-information optimum, found by simulating
every plan of a small plant with the batched simulator."""

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from opsrl.lotsizing.lagrangian import item_bound

from .helpers import hand_problem


def _all_plans_cost(problem, sc, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every open-loop plan of scenario ``b`` (each machine idle or on an item it may make) and its cost."""
    allowed = problem.allowed.cpu().numpy().astype(bool)
    per_machine = [np.flatnonzero(allowed[m]) for m in range(problem.M)]
    joint = list(itertools.product(*per_machine))  # one period's choices
    T = sc["demand"].shape[1]
    plans = torch.tensor([list(p) for p in itertools.product(joint, repeat=T)])  # [N, T, M]
    N = plans.shape[0]
    one = {k: v[b : b + 1].expand(N, *v.shape[1:]) for k, v in sc.data.items()}
    state = problem.initial_state(one)
    total = torch.zeros(N, dtype=torch.float64)
    for t in range(T):
        post, c = problem.post_decision(state, plans[:, t])
        state, c2 = problem.transition(post, one, t)
        total += (c + c2).double()
    return plans, total


@pytest.mark.parametrize("idle", [True, False])  # without idling the multipliers take any sign
@pytest.mark.parametrize("b", [0, 1, 2])
def test_bound_below_the_exact_optimum_and_the_plan_is_what_it_costs(b, idle):
    p = hand_problem(periods=5, initial="random", demand={"distribution": "poisson", "mean": 4.0}, idle=idle)
    sc = p.test_set()
    plans, cost = _all_plans_cost(p, sc, b)
    opt = float(cost.min())
    r = item_bound(p, sc, b, iterations=60)
    assert r.history[0] <= r.bound <= opt + 1e-6  # a lower bound, never below its own start L(0)
    assert r.plan_cost >= opt - 1e-6
    k = int(torch.nonzero((plans == torch.as_tensor(r.plan)).flatten(1).all(1))[0])
    assert r.plan_cost == pytest.approx(float(cost[k]), abs=1e-4)  # the cost it gives is its plan's


def test_bound_is_the_optimum_when_no_machine_is_shared():
    """With each machine able to make one item only, pricing the machines changes nothing: L(0) is exact."""
    p = hand_problem(periods=5, capacity=[[10, 0], [0, 6]], initial="random", seed=3)
    sc = p.test_set()
    _, cost = _all_plans_cost(p, sc, 1)
    r = item_bound(p, sc, 1, iterations=10)
    assert r.bound == pytest.approx(float(cost.min()), abs=1e-6)
    assert r.plan_cost == pytest.approx(float(cost.min()), abs=1e-6)


def test_refuses_what_it_cannot_bound():
    p = hand_problem(periods=3)
    sc = p.test_set()
    with pytest.raises(ValueError, match="max_machines_per_item = 1"):
        item_bound(p, sc, 0, max_machines_per_item=1)
    with pytest.raises(ValueError, match="iterations and patience must be >= 1"):
        item_bound(p, sc, 0, iterations=0)
    sc = dataclasses.replace(sc, data={**sc.data, "demand": sc["demand"] + 0.5})
    with pytest.raises(ValueError, match="integer stocks"):
        item_bound(p, sc, 0)
