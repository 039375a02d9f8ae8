"""A Lagrangian lower bound of the perfect-information lot-sizing problem, by items.

Knowing a scenario's whole demand path, the best any policy can do is the optimum of one deterministic
problem. Its items are linked only by the machines (each machine makes at most one item a period, exactly
one when idling is not allowed): a machine's setup for item ``i`` depends only on whether it made ``i`` the
period before. Pricing that link with multipliers ``lam[m, t]`` splits the problem into one small problem per
item, solved exactly by dynamic programming over (stock ``0..cap``, which of the item's machines are on it):

    L(lam) = sum_i min_plan_i [ cost_i(plan_i) + sum_{m,t} lam[m, t] y_i[m, t] ] - sum_{m,t} lam[m, t]

is a lower bound on the optimum for every ``lam >= 0`` (any sign when idling is not allowed). Unlike the LP
relaxation of :func:`opsrl.lotsizing.mip.plan`, which lets a machine share itself between items within a
period and so never pays for changing over, each item's plan here is whole: serving an item in turns costs
its setups. The multipliers follow projected subgradient steps (Polyak's, towards the best plan found);
every iteration also repairs the item plans into one feasible plan (a machine claimed by several items makes
the first of them in an order drawn anew each iteration, the dearest lost sales first at the start) and
simulates it, so the result carries a feasible plan and its cost too.

The item problems follow the simulator exactly (``simulator.py``): setup cost and loss on a change, the
stock after production and demand clipped to ``[0, cap]``, lost units (possibly more than the demand when a
setup loses more than the machine makes) and holding on what is left. Stocks must be integers (they are
with the built-in demand distributions and integer data); the work per period is ``I x 4^k x (cap + 1)`` for
``k`` the most machines that can make one item, so it is refused above ``max_machines_per_item``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core import rollout

__all__ = ["LagrangianBound", "item_bound", "plan_cost"]


@dataclass
class LagrangianBound:
    bound: float  # the best L(lam) found: a lower bound on the scenario's perfect-information optimum
    plan_cost: float  # cost of the best feasible plan found (an upper bound on that optimum)
    plan: np.ndarray  # [T, M] choices 0..I of that plan
    iterations: int
    seconds: float
    history: list[float] = field(default_factory=list)  # L(lam) per iteration


def plan_cost(problem, scenarios, b: int, actions) -> float:
    """Cost of the open-loop plan ``actions [T, M]`` (choices 0..I) on scenario ``b``, simulated."""
    plan = torch.as_tensor(np.asarray(actions), dtype=torch.long)
    with torch.no_grad():
        traj = rollout(problem, lambda state, t: plan[t][None], scenarios.select(slice(b, b + 1)))
    return float(traj.costs.double().sum())


def _groups(problem, inv0, setup0, demand, max_machines_per_item: int) -> list[_Items]:
    """The item problems, one group per number of machines that can make an item (so that none is padded)."""
    inst = problem.inst
    allowed = problem.allowed[:, 1:].cpu().numpy().astype(bool)  # [M, I]
    counts = allowed.sum(0)
    if counts.max() > max_machines_per_item:
        raise ValueError(
            f"the item bound needs 4^k work per stock level and period; here k = {counts.max()} machines can make "
            f"one item (allowed: at most max_machines_per_item = {max_machines_per_item})"
        )
    data = [np.asarray(inv0, dtype=np.float64), np.asarray(demand, dtype=np.float64)]
    data += [inst.capacity, inst.setup_loss, inst.max_inventory]
    if any(not np.allclose(x, np.round(x)) for x in data):
        raise ValueError("the item bound needs integer stocks: integer demand, capacity, loss, cap and stock")
    return [_Items(problem, inv0, setup0, demand, np.flatnonzero(counts == c), allowed) for c in np.unique(counts)]


class _Items:
    """The problems of the items ``items`` of one scenario (each with the same number ``k`` of machines)."""

    def __init__(self, problem, inv0, setup0, demand, items: np.ndarray, allowed: np.ndarray):
        inst = problem.inst
        self.items = items
        self.I = len(items)
        self.T = demand.shape[0]
        machines = [np.flatnonzero(allowed[:, i]) for i in items]
        k = max(1, max(len(m) for m in machines))
        n = 2**k
        self.k, self.n = k, n
        bits = (np.arange(n)[:, None] >> np.arange(k)[None]) & 1  # [n, k]
        mach = np.full((self.I, k), -1)
        valid = np.zeros((self.I, k), dtype=bool)
        for i, ms in enumerate(machines):
            mach[i, : len(ms)], valid[i, : len(ms)] = ms, True
        gather = lambda a: np.where(valid, a.T[items[:, None], np.maximum(mach, 0)], 0.0)  # [I, k]
        cap, sc, sl = (
            gather(np.asarray(a, dtype=np.float64)) for a in (inst.capacity, inst.setup_cost, inst.setup_loss)
        )
        # a subset that uses a padding slot is not a plan
        feasible = ~((bits[None, :, :] == 1) & ~valid[:, None, :]).any(-1)  # [I, n]
        new = bits[None, None, :, :] * (1 - bits[None, :, None, :])  # [1, S, S', k]: on now, not before
        self.bits = torch.as_tensor(bits, dtype=torch.float64)
        self.mach, self.valid = mach, valid
        self.setup_cost = torch.as_tensor((new * sc[:, None, None, :]).sum(-1))  # [I, S, S']
        prod = (bits[None] * cap[:, None, :]).sum(-1)[:, None, :] - (new * sl[:, None, None, :]).sum(-1)
        self.prod = torch.as_tensor(prod)  # [I, S, S']
        self.block = torch.as_tensor(np.where(feasible, 0.0, math.inf))[:, None, :]  # [I, 1, S']
        self.item_cap = torch.as_tensor(np.asarray(inst.max_inventory, dtype=np.float64)[items])
        self.cap = int(round(float(self.item_cap.max())))
        self.h = torch.as_tensor(np.asarray(inst.holding_cost, dtype=np.float64)[items])
        self.ls = torch.as_tensor(np.asarray(inst.lost_sales_cost, dtype=np.float64)[items])
        self.demand = torch.as_tensor(np.asarray(demand, dtype=np.float64)[:, items])  # [T, I]
        self.s0 = np.rint(np.asarray(inv0)[items]).astype(np.int64)
        if (self.s0 < 0).any() or (self.s0 > self.item_cap.numpy()).any():
            raise ValueError("the item bound needs initial stocks within [0, cap]")
        on0 = np.zeros((self.I, k), dtype=np.int64)
        for i in range(self.I):
            for j in range(k):
                on0[i, j] = int(valid[i, j] and setup0[mach[i, j]] == items[i] + 1)
        self.S0 = (on0 << np.arange(k)[None]).sum(1)  # [I]
        self.levels = torch.arange(self.cap + 1, dtype=torch.float64)

    def solve(self, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each item's best plan under the prices ``lam [M, T]``: values ``[I]`` and machine use ``[I, T, k]``."""
        I, n, T, C = self.I, self.n, self.T, self.cap + 1
        price = torch.as_tensor(np.where(self.valid[:, None, :], lam[np.maximum(self.mach, 0)].transpose(0, 2, 1), 0.0))
        use_cost = price @ self.bits.T  # [I, T, S']
        V = torch.zeros(I, n, C, dtype=torch.float64)  # value from t on, by (S, stock)
        choice = []
        s = self.levels[None, None, None, :]
        for t in range(T - 1, -1, -1):
            x = s + self.prod[..., None] - self.demand[t][:, None, None, None]  # [I, S, S', C]
            lost = torch.relu(-x)
            nxt = torch.minimum(torch.relu(x), self.item_cap[:, None, None, None])
            stage = self.ls[:, None, None, None] * lost + self.h[:, None, None, None] * nxt
            idx = nxt.long()  # [I, S, S', C]
            Vn = V[:, None, :, :].expand(I, n, n, C).gather(3, idx)
            Q = stage + Vn + (self.setup_cost + use_cost[:, t][:, None, :] + self.block)[..., None]
            V, arg = Q.min(2)  # [I, S, C]
            choice.append(arg)
        choice.reverse()
        values = V[torch.arange(I), torch.as_tensor(self.S0), torch.as_tensor(self.s0)].numpy()
        use = np.zeros((I, T, self.k))
        S, stock = torch.as_tensor(self.S0), torch.as_tensor(self.s0)
        bits = self.bits.numpy()
        items = torch.arange(I)
        for t in range(T):
            Sn = choice[t][items, S, stock]
            x = stock.double() + self.prod[items, S, Sn] - self.demand[t]
            stock = torch.minimum(torch.relu(x), self.item_cap).long()
            S = Sn
            use[:, t] = bits[S.numpy()]
        return values, use


def _repair(groups, solved, order, idle: bool, problem) -> np.ndarray:
    """One feasible plan ``[T, M]`` from the item plans: a machine claimed by several items makes the first of
    them in ``order``; a machine that must not idle keeps its previous choice (or its first allowed item)."""
    T = solved[0][1].shape[1]
    plan = np.zeros((T, problem.M), dtype=np.int64)
    for item in order:  # the first in order claims first; later ones only take what is free
        for grp, (_, use) in zip(groups, solved):
            hit = np.flatnonzero(grp.items == item)
            if hit.size:
                i = hit[0]
                for j in range(grp.k):
                    if grp.valid[i, j]:
                        m = grp.mach[i, j]
                        on = (use[i, :, j] > 0.5) & (plan[:, m] == 0)
                        plan[on, m] = item + 1
    if not idle:
        allowed = problem.allowed[:, 1:].cpu().numpy().astype(bool)
        first = np.where(allowed.any(1), allowed.argmax(1) + 1, 0)
        for t in range(T):
            gap = plan[t] == 0
            plan[t, gap] = plan[t - 1, gap] if t else first[gap]
    return plan


def item_bound(
    problem,
    scenarios,
    b: int,
    iterations: int = 300,
    step: float = 0.05,
    patience: int = 5,
    max_machines_per_item: int = 7,
    upper: float | None = None,
) -> LagrangianBound:
    """The item-decomposition bound of scenario ``b`` of ``scenarios`` (projected subgradient, Polyak steps
    towards ``upper``, or towards the best plan found; the step factor halves after ``patience`` iterations
    without a better bound)."""
    if int(iterations) < 1 or not step > 0 or int(patience) < 1:
        raise ValueError(
            f"item_bound: iterations and patience must be >= 1 and step > 0, got {iterations}, {patience}, {step}"
        )
    t0 = time.perf_counter()
    inv0 = scenarios["inventory0"][b].cpu().double().numpy()
    setup0 = scenarios["setup0"][b].cpu().numpy()
    demand = scenarios["demand"][b].cpu().double().numpy()
    groups = _groups(problem, inv0, setup0, demand, max_machines_per_item)
    M, T, I = problem.M, demand.shape[0], problem.I
    idle = bool(problem.idle)
    lam = np.zeros((M, T))
    best, best_plan, best_cost, since, mu, history = -math.inf, None, math.inf, 0, float(step), []
    rng = np.random.default_rng(0)
    for it in range(int(iterations)):
        solved = [g.solve(lam) for g in groups]
        L = float(sum(v.sum() for v, _ in solved) - lam.sum())
        history.append(L)
        plan = _repair(
            groups, solved, np.argsort(-problem.inst.lost_sales_cost) if it == 0 else rng.permutation(I), idle, problem
        )
        cost = plan_cost(problem, scenarios, b, plan)
        if cost < best_cost:
            best_cost, best_plan = cost, plan
        if L > best + 1e-9:
            best, since = L, 0
        else:
            since += 1
            if since >= patience:
                mu, since = mu / 2, 0
        g = -np.ones((M, T))  # machine use minus 1: the subgradient of L
        for grp, (_, use) in zip(groups, solved):
            for i in range(grp.I):
                for j in range(grp.k):
                    if grp.valid[i, j]:
                        g[grp.mach[i, j]] += use[i, :, j]
        if idle:
            g = np.where((lam <= 0) & (g < 0), 0.0, g)  # the projection onto lam >= 0 stops these
        norm = float((g**2).sum())
        target = upper if upper is not None else best_cost
        if norm == 0 or best >= target - 1e-9 or mu < 1e-4:
            break
        lam = lam + mu * (target - L) / norm * g
        if idle:
            lam = np.maximum(lam, 0.0)
    return LagrangianBound(best, best_cost, best_plan, len(history), time.perf_counter() - t0, history)
