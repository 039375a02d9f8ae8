"""The one contract every opsrl simulator follows: a batched post-decision MDP.

A problem draws all exogenous randomness up front (:meth:`Problem.sample`), then a step is split in a
deterministic part (:meth:`Problem.post_decision`) and an exogenous part (:meth:`Problem.transition`).
States are dicts of batch-first tensors; device and dtype follow the scenario tensors.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .seeding import SPLITS

State = dict[str, torch.Tensor]
Policy = Callable[[State, int], torch.Tensor]
"""A policy maps the state at period ``t`` to a batch of actions. It sees nothing of the future."""


@dataclass(frozen=True)
class ActionSpec:
    """The domain of an action.

    ``kind`` is ``"continuous"`` (a box ``[low, high]`` of ``shape``, ``integer`` if only whole numbers
    are meaningful; learned policies round at evaluation time) or ``"discrete"`` (``n`` choices, masked
    by :meth:`Problem.action_mask`).
    """

    kind: str
    shape: tuple[int, ...] = (1,)
    low: float = 0.0
    high: float = math.inf
    integer: bool = False
    n: int = 0

    def __post_init__(self):
        if self.kind not in ("continuous", "discrete"):
            raise ValueError(f"ActionSpec.kind must be 'continuous' or 'discrete', got {self.kind!r}")


@dataclass
class Scenarios:
    """Exogenous paths and initial states of ``n`` scenarios: a dict of tensors ``[n, ...]``."""

    data: dict[str, torch.Tensor]
    split: str
    seed: int
    periods: int
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.data[key]

    def __contains__(self, key: str) -> bool:
        return key in self.data

    @property
    def n(self) -> int:
        return next(iter(self.data.values())).shape[0]

    @property
    def device(self) -> torch.device:
        return next(iter(self.data.values())).device

    def to(self, device: str | torch.device) -> Scenarios:
        return Scenarios(
            {k: v.to(device) for k, v in self.data.items()}, self.split, self.seed, self.periods, dict(self.meta)
        )

    def select(self, index: torch.Tensor | slice) -> Scenarios:
        """The sub-batch of scenarios at ``index`` (a minibatch)."""
        return Scenarios(
            {k: v[index] for k, v in self.data.items()}, self.split, self.seed, self.periods, dict(self.meta)
        )


class Problem(ABC):
    """Base class of every simulator.

    Subclasses set ``name``, ``periods`` (episode length in decision periods), ``warmup`` (periods
    excluded from evaluation), ``n_locations`` and ``action_spec``, and ``metric``: ``"mean"`` (mean
    cost per period after warm-up, per location) or ``"total"`` (episode total, e.g. a makespan).
    """

    name: str = "problem"
    family: str = ""
    periods: int = 1
    warmup: int = 0
    n_locations: int = 1
    metric: str = "mean"
    action_spec: ActionSpec = ActionSpec("continuous")
    action_scale: float = 1.0  # typical size of an action, so that untrained policies start sensibly
    dtype: torch.dtype = torch.float32
    config: Mapping[str, Any] = {}
    # the test set every solver of this problem is measured on (same scenarios for all solvers/seeds)
    test_scenarios: int = 1000
    test_periods: int | None = None
    test_seed: int = 0
    test_warmup: int | None = None  # None: same as ``warmup``

    # --- scenarios -----------------------------------------------------------------------------
    def sample(
        self, n: int, split: str, seed: int, periods: int | None = None, device: str | torch.device = "cpu"
    ) -> Scenarios:
        """Draw ``n`` scenarios of ``periods`` periods for ``split`` from ``seed``.

        Same arguments give identical tensors on any device (drawn on the CPU, then moved).
        """
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
        if n <= 0:
            raise ValueError(f"number of scenarios must be positive, got {n}")
        periods = self.periods if periods is None else int(periods)
        if periods <= 0:
            raise ValueError(f"periods must be positive, got {periods}")
        data = self._sample(n, split, seed, periods)
        return Scenarios(data, split, seed, periods).to(device)

    @abstractmethod
    def _sample(self, n: int, split: str, seed: int, periods: int) -> dict[str, torch.Tensor]:
        """Draw the scenario tensors on the CPU."""

    def test_set(self, device: str | torch.device = "cpu") -> Scenarios:
        """The held-out test scenarios of this problem (fixed seed, so common to every solver)."""
        return self.sample(self.test_scenarios, "test", self.test_seed, self.test_periods, device)

    # --- dynamics ------------------------------------------------------------------------------
    @abstractmethod
    def initial_state(self, scenarios: Scenarios) -> State:
        """The state at period 0 of each scenario."""

    @abstractmethod
    def post_decision(self, state: State, action: torch.Tensor) -> tuple[State, torch.Tensor]:
        """Deterministic part of a step: ``(post_state, cost[B])``."""

    @abstractmethod
    def transition(self, post_state: State, scenarios: Scenarios, t: int) -> tuple[State, torch.Tensor]:
        """Exogenous part of step ``t``: ``(next_state, cost[B])``."""

    # --- views for policies --------------------------------------------------------------------
    @abstractmethod
    def observe(self, state: State) -> torch.Tensor:
        """A flat, roughly normalised feature vector ``[B, d]`` of what is known at decision time."""

    def observe_post(self, post_state: State) -> torch.Tensor:
        """Features of the post-decision state (for post-decision critics)."""
        raise NotImplementedError(f"{type(self).__name__} has no post-decision features")

    def graph(self, state: State):
        """A ``torch_geometric`` batch of the state, one graph per scenario, for GNN policies."""
        raise NotImplementedError(f"{type(self).__name__} has no graph view")

    def action_mask(self, state: State) -> torch.Tensor | None:
        """Boolean ``[B, n]`` of allowed discrete actions, or None where every action is allowed."""
        return None

    def cost_to_go_bound(self, state: State, t: int) -> torch.Tensor:
        """Optional: a lower bound ``[B]`` of the cost still to come from ``state`` at period ``t`` (to the
        episode's end), from what the state knows. Rollouts cut short add it as their tail
        (``rollout_pi``'s ``tail = "bound"``)."""
        raise NotImplementedError(f"{type(self).__name__} has no cost-to-go bound")

    @property
    def obs_dim(self) -> int:
        """Size of :meth:`observe`'s output (computed once on a one-scenario batch)."""
        if not hasattr(self, "_obs_dim"):
            sc = self.sample(1, "dev", 0, periods=1)
            self._obs_dim = int(self.observe(self.initial_state(sc)).shape[-1])
        return self._obs_dim

    def describe(self) -> str:
        return self.name
