"""Classic inventory policies, with parameters searched through the same simulator.

* base stock: order ``(S - IP)^+`` where IP is the inventory position (on hand + pipeline);
* capped base stock (Xin 2021): ``min((S - IP)^+, r)``;
* myopic (Zipkin 2008): order what minimises the expected cost of the period in which the order
  arrives, given the exact distribution of stock then (integer demand).

Searches evaluate every candidate on the same dev scenarios (common random numbers), all candidates in
one batch.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from scipy import stats

from ..core import Scenarios, State
from ..core.search import grid_search
from .dp import period_cost
from .single_store import SingleStore


class BaseStock(torch.nn.Module):
    """Order up to ``level`` (a number, or one level per scenario ``[B]``), optionally capped at ``cap``."""

    def __init__(self, level, cap=None, integer: bool = False):
        super().__init__()
        self.level = torch.as_tensor(level, dtype=torch.float32)
        self.cap = None if cap is None else torch.as_tensor(cap, dtype=torch.float32)
        self.integer = integer

    def forward(self, state: State, t: int = 0) -> torch.Tensor:
        ip = state["x"].sum(dim=1)
        order = (self.level.to(ip) - ip).clamp_min(0.0)
        if self.cap is not None:
            order = torch.minimum(order, self.cap.to(ip))
        if self.integer:
            order = order.round()
        return order[:, None]


def level_grid(problem: SingleStore, points: int = 0) -> np.ndarray:
    """Candidate base-stock levels: every integer (integer demand) or a fine grid around lead-time demand."""
    mu, sd = problem.lead_time_demand()
    hi = mu + 5 * sd + problem.mean
    if problem.integer:
        return np.arange(0, math.ceil(hi) + 1, dtype=float)
    return np.linspace(max(0.0, mu - 3 * sd), hi, points or 161)


def search_base_stock(problem: SingleStore, scenarios: Scenarios) -> tuple[float, float]:
    grid = level_grid(problem)[:, None]
    best, costs = grid_search(problem, scenarios, grid, lambda p: BaseStock(p[:, 0], integer=problem.integer))
    return float(best[0]), float(costs.min())


def search_capped_base_stock(problem: SingleStore, scenarios: Scenarios) -> tuple[float, float, float]:
    levels = level_grid(problem, 81)
    caps = (
        np.arange(0, math.ceil(4 * problem.mean) + 1, dtype=float)
        if problem.integer
        else np.linspace(0.25 * problem.mean, 4 * problem.mean, 41)
    )
    grid = np.array(list(itertools.product(levels, caps)))
    best, costs = grid_search(problem, scenarios, grid, lambda p: BaseStock(p[:, 0], p[:, 1], integer=problem.integer))
    return float(best[0]), float(best[1]), float(costs.min())


class Myopic(torch.nn.Module):
    """Zipkin's myopic policy for integer (Poisson) demand, batched.

    For each scenario it propagates the exact distribution of on-hand stock over the L - 1 periods before
    the order arrives (lost sales or backlog), then picks the order minimising the expected cost of the
    arrival period. Stock levels are tracked on ``0 .. top`` (lost sales) or ``-top .. top`` (backlog).
    """

    def __init__(self, problem: SingleStore, top: int | None = None):
        super().__init__()
        if not problem.integer:
            raise ValueError("the myopic policy needs integer (Poisson) demand")
        self.problem = problem
        mu, sd = problem.lead_time_demand()
        self.top = top or int(mu + 6 * sd + 4 * problem.mean)
        self.lost = problem.unmet == "lost_sales"
        n = self.top + 1
        self.offset = 0 if self.lost else self.top  # index of stock level 0
        levels = np.arange(-self.offset, self.top + 1)
        pmf = stats.poisson.pmf(np.arange(2 * n + 1), problem.mean)
        # K[i, j]: P(stock level j after demand | level i); lost sales floor at 0, backlog clipped at -top
        Km = np.zeros((len(levels), len(levels)))
        for i, lv in enumerate(levels):
            for d, pr in enumerate(pmf):
                after = lv - d
                after = max(after, 0) if self.lost else max(after, -self.offset)
                Km[i, after + self.offset] += pr
            Km[i, 0] += 1.0 - Km[i].sum()  # demand beyond the tracked range (negligible mass)
        self.register_buffer("K", torch.as_tensor(Km, dtype=torch.float64))
        c = period_cost(np.arange(-self.offset, 2 * n + 1), problem.mean, problem.h, problem.p)
        self.register_buffer("cost", torch.as_tensor(c, dtype=torch.float64))

    def forward(self, state: State, t: int = 0) -> torch.Tensor:
        x = state["x"].round().long()
        B, L = x.shape[0], self.problem.L
        n = self.K.shape[0]
        top = self.top
        dist = torch.zeros(B, n, dtype=torch.float64, device=x.device)
        dist.scatter_(1, (x[:, :1].clamp(-self.offset, top) + self.offset), 1.0)
        if L >= 1:
            for k in range(1, L):
                dist = dist @ self.K
                dist = _shift(dist, x[:, k])
            dist = dist @ self.K  # demand of the last period before the order arrives
        # expected cost of the arrival period for every order a = 0 .. top
        idx = torch.arange(n, device=x.device)[:, None] + torch.arange(top + 1, device=x.device)[None, :]
        table = self.cost[idx]  # [level index, a]
        expected = dist @ table  # [B, top + 1]
        return expected.argmin(dim=1).to(state["x"].dtype)[:, None]


def _shift(dist: torch.Tensor, by: torch.Tensor) -> torch.Tensor:
    """Shift each row of ``dist`` right by ``by[b]`` places, lumping overflow in the last column."""
    B, n = dist.shape
    j = torch.arange(n, device=dist.device)[None, :] - by[:, None]
    out = torch.where(j >= 0, dist.gather(1, j.clamp(0, n - 1)), torch.zeros((), dtype=dist.dtype, device=dist.device))
    lost = 1.0 - out.sum(dim=1)
    out[:, -1] += lost
    return out


def level_cost_backlog(mean: float, L: int, h: float, p: float) -> tuple[int, float]:
    """Optimal integer base-stock level and its exact cost, backlog with Poisson demand."""
    mu = (L + 1) * mean
    cost = period_cost(np.arange(int(stats.poisson.ppf(1 - 1e-12, mu)) + 2), mu, h, p)
    S = int(np.argmin(cost))
    return S, float(cost[S])
