"""The simulator against trajectories computed by hand."""

import pytest
import torch

from opsrl.core import Scenarios, rollout
from opsrl.inventory.single_store import SingleStore


def scen(demand, initial):
    d = torch.tensor([demand], dtype=torch.float32)
    return Scenarios({"demand": d, "initial": torch.tensor([initial], dtype=torch.float32)}, "test", 0, d.shape[1])


class Fixed:
    def __init__(self, orders):
        self.orders = orders

    def __call__(self, state, t):
        return torch.tensor([[self.orders[t]]], dtype=torch.float32)


def test_lost_sales_lead_time_2_by_hand():
    # h = 1, p = 4, L = 2; state (on hand, q1); orders 3, 0, 5, 1
    prob = SingleStore(2, 1.0, 4.0, 5.0, periods=4, warmup=0)
    sc = scen([4, 6, 2, 7], [5, 2])
    traj = rollout(prob, Fixed([3, 0, 5, 1]), sc, record=True)
    # t0: on hand 5, d=4 -> left 1, cost 1; arrival q1=2 -> on hand 3, pipeline (3)
    # t1: on hand 3, d=6 -> lost 3, cost 12; arrival 3 -> on hand 3, pipeline (0)
    # t2: on hand 3, d=2 -> left 1, cost 1; arrival 0 -> on hand 1, pipeline (5)
    # t3: on hand 1, d=7 -> lost 6, cost 24; arrival 5 -> on hand 5, pipeline (1)
    assert traj.costs.tolist() == [[1.0, 12.0, 1.0, 24.0]]
    assert [s["x"].tolist() for s in traj.states] == [[[5, 2]], [[3, 3]], [[3, 0]], [[1, 5]]]
    assert traj.final_state["x"].tolist() == [[5, 1]]


def test_backlog_lead_time_1_by_hand():
    prob = SingleStore(1, 2.0, 3.0, 5.0, unmet="backlog", periods=3, warmup=0)
    sc = scen([6, 1, 4], [4])
    traj = rollout(prob, Fixed([1, 2, 0]), sc, record=True)
    # t0: 4-6 = -2 -> cost 3*2=6; + order 1 -> -1
    # t1: -1-1 = -2 -> cost 6; + 2 -> 0
    # t2: 0-4 = -4 -> cost 12; + 0 -> -4
    assert traj.costs.tolist() == [[6.0, 6.0, 12.0]]
    assert traj.final_state["x"].tolist() == [[-4.0]]


def test_zero_lead_time_orders_serve_this_period():
    prob = SingleStore(0, 1.0, 9.0, 5.0, periods=2, warmup=0, ordering_cost=0.5)
    sc = scen([5, 5], [1])
    traj = rollout(prob, Fixed([6, 0]), sc)
    # t0: on hand 1 + 6 = 7, d=5 -> left 2, cost 2 + ordering 3; t1: on hand 2, d=5 -> lost 3 -> 27
    assert traj.costs.tolist() == [[5.0, 27.0]]


def test_pathwise_gradient_of_lost_sales_cost():
    """d cost / d order: +h per unit left over, -p per unit short, at the period the order arrives."""
    prob = SingleStore(1, 1.0, 4.0, 5.0, periods=2, warmup=0)
    a = torch.tensor([[2.0]], requires_grad=True)
    policy = lambda s, t: a if t == 0 else torch.zeros(1, 1)
    cost_short = rollout(prob, policy, scen([0, 9], [0])).costs.sum()
    (g,) = torch.autograd.grad(cost_short, a)
    assert g.item() == pytest.approx(-4.0)
    cost_over = rollout(prob, policy, scen([0, 1], [0])).costs.sum()
    (g,) = torch.autograd.grad(cost_over, a)
    assert g.item() == pytest.approx(1.0)


def test_negative_orders_are_clipped_and_batch_is_independent():
    prob = SingleStore(2, 1.0, 4.0, 5.0, periods=5, warmup=0)
    sc = prob.sample(32, "test", 1, 5)
    full = rollout(prob, lambda s, t: torch.full((s["x"].shape[0], 1), -3.0), sc).costs
    zero = rollout(prob, lambda s, t: torch.zeros(s["x"].shape[0], 1), sc).costs
    assert torch.equal(full, zero)
    half = rollout(prob, lambda s, t: torch.zeros(s["x"].shape[0], 1), sc.select(slice(0, 16))).costs
    assert torch.equal(half, zero[:16])
