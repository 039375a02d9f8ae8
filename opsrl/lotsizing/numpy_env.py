"""A one-environment NumPy re-implementation of the authors' ``SimplePlant`` step (leokan92/pdppo,
``code/Lot-sizing/envs/simplePlant.py``: ``_post_decision`` and ``_satisfy_demand``), written here from the
published semantics with the same per-machine and per-item Python loops, so that the batched simulator can be
checked against it step by step and timed side by side (``benchmarks/lotsizing_speed.py``). It is not used by
any solver."""

from __future__ import annotations

import numpy as np

__all__ = ["PlantEnv"]


class PlantEnv:
    """One plant. ``reset(inventory, setup, demand [T, I])``, then ``step(action [M])`` returns
    ``(setup_cost, lost_sales_cost, holding_cost)`` of the period."""

    def __init__(self, inst):
        self.cap = inst.capacity.tolist()
        self.sc = inst.setup_cost.tolist()
        self.sl = inst.setup_loss.tolist()
        self.h = inst.holding_cost.tolist()
        self.ls = inst.lost_sales_cost.tolist()
        self.max_inv = inst.max_inventory.tolist()
        self.I, self.M = inst.items, inst.machines

    def reset(self, inventory, setup, demand):
        self.inventory = np.array(inventory, dtype=float)
        self.setup = np.array(setup, dtype=np.int64)
        self.demand = np.asarray(demand, dtype=float)
        self.t = 0
        return self.inventory.copy(), self.setup.copy()

    def step(self, action):
        setup_cost, lost_cost, holding = 0.0, 0.0, 0.0
        for m in range(self.M):  # decision: setups and production
            a = int(action[m])
            if a != 0:
                loss = 0.0
                if self.setup[m] != a:
                    setup_cost += self.sc[m][a - 1]
                    loss = self.sl[m][a - 1]
                self.setup[m] = a
                self.inventory[a - 1] += self.cap[m][a - 1] - loss
            else:
                self.setup[m] = 0
        d = self.demand[self.t]
        for i in range(self.I):  # demand, lost sales, the cap, holding
            self.inventory[i] -= d[i]
            if self.inventory[i] < 0:
                lost_cost -= self.inventory[i] * self.ls[i]
                self.inventory[i] = 0.0
            elif self.inventory[i] > self.max_inv[i]:
                self.inventory[i] = self.max_inv[i]
            holding += self.inventory[i] * self.h[i]
        self.t += 1
        return setup_cost, lost_cost, holding
