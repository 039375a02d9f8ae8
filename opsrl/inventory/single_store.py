"""One store, one product, periodic review, lead time L >= 0.

Timing of a period t:

1. the state is ``x = (on_hand, q_1, ..., q_{L-1})``: stock on hand after this period's arrival and the
   orders that arrive in 1 .. L-1 periods (``x = (on_hand,)`` when L <= 1);
2. the policy orders ``a >= 0`` (post-decision state ``(on_hand, q_1, ..., q_{L-1}, a)``; with L = 0 the
   order is added to stock at once);
3. demand ``d_t`` is served from stock; unmet demand is lost (``lost_sales``) or backlogged (``backlog``,
   stock may go negative); the period's cost is ``h * leftover + p * shortage`` (+ ``c * a``);
4. the oldest pipeline order arrives: the order placed at t serves demand at t + L.

This is the convention of Zipkin (2008), "Old and new methods for lost-sales inventory systems".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ..core import ActionSpec, ConfigError, Field, Problem, Scenarios, State, generator, validate
from ..core.config import non_negative, positive

DEMAND_SCHEMA = {
    "distribution": Field(str, "poisson", choices=("poisson", "normal"), doc="demand law per period"),
    "mean": Field(float, allowed="a positive number, at most 10^6", check=positive, max=1e6),
    "std": Field(float, 0.0, allowed="a number >= 0 (normal demand only)", check=non_negative),
}

INITIAL_SCHEMA = {
    "low": Field(float, 0.0, allowed="a number >= 0", check=non_negative),
    "high": Field(float, -1.0, allowed="a number >= low (default: 2 x mean demand)"),
}

TEST_SCHEMA = {
    "scenarios": Field(int, 8192, allowed="a positive integer", check=positive),
    "periods": Field(int, 600, allowed="a positive integer", check=positive),
    "warmup": Field(int, 100, allowed="an integer >= 0", check=non_negative),
    "seed": Field(int, 0, allowed="an integer >= 0", check=non_negative),
}

SCHEMA = {
    "model": Field(str, "single_store", choices=("single_store",)),
    "lead_time": Field(int, allowed="an integer from 0 to 1000", check=non_negative, max=1000),
    "holding_cost": Field(float, allowed="a number >= 0", check=non_negative),
    "shortage_cost": Field(float, allowed="a number > 0", check=positive),
    "ordering_cost": Field(float, 0.0, allowed="a number >= 0", check=non_negative),
    "unmet": Field(str, "lost_sales", choices=("lost_sales", "backlog")),
    "periods": Field(int, 100, allowed="a positive integer (training episode length)", check=positive),
    "warmup": Field(int, 20, allowed="an integer >= 0 (periods left out of the training loss)", check=non_negative),
    "demand": Field(dict, allowed="a table", schema=DEMAND_SCHEMA),
    "initial": Field(dict, {}, schema=INITIAL_SCHEMA),
    "test": Field(dict, {}, schema=TEST_SCHEMA),
}


class SingleStore(Problem):
    """Single-store inventory control; see the module docstring for the timing."""

    def __init__(
        self,
        lead_time: int,
        holding_cost: float,
        shortage_cost: float,
        demand_mean: float,
        demand_std: float = 0.0,
        distribution: str = "poisson",
        unmet: str = "lost_sales",
        ordering_cost: float = 0.0,
        periods: int = 100,
        warmup: int = 20,
        initial: tuple[float, float] | None = None,
        test: Mapping[str, int] | None = None,
    ):
        if lead_time < 0:
            raise ValueError(f"lead_time must be >= 0, got {lead_time}")
        if shortage_cost <= 0 or holding_cost < 0 or demand_mean <= 0:
            raise ValueError("need shortage_cost > 0, holding_cost >= 0, demand_mean > 0")
        if warmup >= periods:
            raise ValueError(f"warmup ({warmup}) must be shorter than periods ({periods})")
        self.L, self.h, self.p, self.c = int(lead_time), float(holding_cost), float(shortage_cost), float(ordering_cost)
        self.mean, self.std, self.distribution, self.unmet = float(demand_mean), float(demand_std), distribution, unmet
        self.periods, self.warmup = int(periods), int(warmup)
        self.initial = initial if initial is not None else (0.0, 2.0 * demand_mean)
        test = dict(test or {})
        self.test_scenarios = test.get("scenarios", 8192)
        self.test_periods = test.get("periods", 600)
        self.test_warmup = test.get("warmup", 100)
        self.test_seed = test.get("seed", 0)
        self.integer = distribution == "poisson"
        self.action_spec = ActionSpec("continuous", (1,), 0.0, math.inf, integer=self.integer)
        self.action_scale = self.mean
        self.name = f"single_store_L{self.L}"
        self.config = {
            "lead_time": self.L,
            "holding_cost": self.h,
            "shortage_cost": self.p,
            "ordering_cost": self.c,
            "unmet": unmet,
            "demand": {"distribution": distribution, "mean": self.mean, "std": self.std},
            "periods": self.periods,
            "warmup": self.warmup,
        }

    @property
    def state_dim(self) -> int:
        return max(self.L, 1)

    # --- scenarios -----------------------------------------------------------------------------
    def _sample(self, n: int, split: str, seed: int, periods: int) -> dict[str, torch.Tensor]:
        g = generator(seed, split, "demand")
        if self.distribution == "poisson":
            demand = torch.poisson(torch.full((n, periods), self.mean, dtype=torch.float64), generator=g)
        else:
            demand = (self.mean + self.std * torch.randn(n, periods, generator=g, dtype=torch.float64)).clamp_min(0.0)
        lo, hi = self.initial
        g0 = generator(seed, split, "initial")
        x0 = lo + (hi - lo) * torch.rand(n, self.state_dim, generator=g0, dtype=torch.float64)
        if self.integer:
            x0 = x0.round()
        return {"demand": demand.to(self.dtype), "initial": x0.to(self.dtype)}

    # --- dynamics ------------------------------------------------------------------------------
    def initial_state(self, scenarios: Scenarios) -> State:
        return {"x": scenarios["initial"]}

    def post_decision(self, state: State, action: torch.Tensor) -> tuple[State, torch.Tensor]:
        a = action.reshape(-1, 1).clamp_min(0.0)
        x = state["x"]
        if self.L == 0:
            post = x + a
        else:
            post = torch.cat([x, a], dim=1)
        return {"x": post}, self.c * a[:, 0]

    def transition(self, post_state: State, scenarios: Scenarios, t: int) -> tuple[State, torch.Tensor]:
        post = post_state["x"]
        d = scenarios["demand"][:, t]
        on_hand = post[:, 0]
        if self.unmet == "lost_sales":
            sales = torch.minimum(on_hand, d)
            left = on_hand - sales
            cost = self.h * left + self.p * (d - sales)
        else:
            left = on_hand - d
            cost = self.h * left.clamp_min(0.0) + self.p * (-left).clamp_min(0.0)
        if self.L == 0:
            nxt = left[:, None]
        else:
            nxt = torch.cat([(left + post[:, 1])[:, None], post[:, 2:]], dim=1)
        return {"x": nxt}, cost

    # --- views ---------------------------------------------------------------------------------
    def observe(self, state: State) -> torch.Tensor:
        x = state["x"] / self.mean
        return torch.cat([x, x.sum(dim=1, keepdim=True)], dim=1)

    def observe_post(self, post_state: State) -> torch.Tensor:
        x = post_state["x"] / self.mean
        return torch.cat([x, x.sum(dim=1, keepdim=True)], dim=1)

    @staticmethod
    def inventory_position(state: State) -> torch.Tensor:
        return state["x"].sum(dim=1)

    def lead_time_demand(self) -> tuple[float, float]:
        """Mean and standard deviation of demand over L + 1 periods (the base-stock protection period)."""
        sd = math.sqrt(self.mean) if self.distribution == "poisson" else self.std
        return (self.L + 1) * self.mean, math.sqrt(self.L + 1) * sd

    def describe(self) -> str:
        law = f"Poisson({self.mean:g})" if self.distribution == "poisson" else f"Normal({self.mean:g}, {self.std:g})"
        return f"single store, {self.unmet.replace('_', ' ')}, L={self.L}, h={self.h:g}, p={self.p:g}, demand {law}"


def build(config: Mapping[str, Any], source: str) -> SingleStore:
    cfg = validate(config, SCHEMA, source)
    dem = cfg["demand"]
    if dem["distribution"] == "normal" and dem["std"] <= 0:
        raise ConfigError(source, "demand.std", "normal demand needs std > 0")
    if dem["distribution"] == "poisson" and dem["std"] != 0:
        raise ConfigError(source, "demand.std", "Poisson demand has no std; remove the key")
    if cfg["warmup"] >= cfg["periods"]:
        raise ConfigError(source, "warmup", f"must be less than periods ({cfg['periods']})")
    if cfg["test"]["warmup"] >= cfg["test"]["periods"]:
        raise ConfigError(source, "test.warmup", f"must be less than test.periods ({cfg['test']['periods']})")
    init = cfg["initial"]
    high = init["high"] if init["high"] >= 0 else 2.0 * dem["mean"]
    if high < init["low"]:
        raise ConfigError(source, "initial.high", f"must be >= initial.low ({init['low']})")
    problem = SingleStore(
        cfg["lead_time"],
        cfg["holding_cost"],
        cfg["shortage_cost"],
        dem["mean"],
        dem["std"],
        dem["distribution"],
        cfg["unmet"],
        cfg["ordering_cost"],
        cfg["periods"],
        cfg["warmup"],
        (init["low"], high),
        cfg["test"],
    )
    problem.config = cfg
    return problem
