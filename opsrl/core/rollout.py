"""One rollout, used by training and by evaluation alike."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .problem import Policy, Problem, Scenarios, State

Shield = Callable[[State, torch.Tensor], torch.Tensor]


@dataclass
class Trajectory:
    """Per-period costs ``[B, T]`` of a rollout, and the states and actions when recorded."""

    costs: torch.Tensor
    states: list[State] = field(default_factory=list)
    actions: list[torch.Tensor] = field(default_factory=list)
    final_state: State | None = None


def rollout(
    problem: Problem,
    policy: Policy,
    scenarios: Scenarios,
    *,
    periods: int | None = None,
    shield: Shield | None = None,
    record: bool = False,
) -> Trajectory:
    """Run ``policy`` through ``problem`` on every scenario at once.

    A step is ``action = policy(state, t)``, optionally made safe by ``shield(state, action)``, then
    ``post_decision`` and ``transition``; the period's cost is the sum of both parts. Gradients flow
    through everything that is differentiable, which is what HDPO uses.
    """
    periods = scenarios.periods if periods is None else periods
    if periods > scenarios.periods:
        raise ValueError(f"rollout of {periods} periods on scenarios of {scenarios.periods}")
    state = problem.initial_state(scenarios)
    costs, states, actions = [], [], []
    for t in range(periods):
        action = policy(state, t)
        if shield is not None:
            action = shield(state, action)
        if record:
            states.append({k: v.detach() for k, v in state.items()})
            actions.append(action.detach())
        post, c1 = problem.post_decision(state, action)
        state, c2 = problem.transition(post, scenarios, t)
        costs.append(c1 + c2)
    return Trajectory(torch.stack(costs, dim=1), states, actions, state)


@dataclass
class Evaluation:
    """Test estimate: ``mean`` over scenarios of each scenario's cost, with its standard error.

    A scenario's cost is its mean cost per period after warm-up and per location (metric ``mean``), or
    its episode total (metric ``total``, e.g. a makespan).
    """

    mean: float
    stderr: float
    n: int
    per_scenario: torch.Tensor
    metric: str
    warmup: int
    periods: int

    def as_dict(self) -> dict:
        return {
            "mean": self.mean,
            "stderr": self.stderr,
            "n": self.n,
            "metric": self.metric,
            "warmup": self.warmup,
            "periods": self.periods,
        }


def scenario_costs(problem: Problem, costs: torch.Tensor, warmup: int | None = None) -> torch.Tensor:
    """Reduce per-period costs ``[B, T]`` to one number per scenario, as evaluation does."""
    if problem.metric == "total":
        return costs.sum(dim=1)
    warmup = problem.warmup if warmup is None else warmup
    if warmup >= costs.shape[1]:
        raise ValueError(f"warm-up of {warmup} periods leaves nothing of a {costs.shape[1]}-period rollout")
    return costs[:, warmup:].mean(dim=1) / problem.n_locations


def summarize(problem: Problem, per_scenario: torch.Tensor, periods: int, warmup: int | None = None) -> Evaluation:
    x = per_scenario.detach().double().cpu()
    n = x.numel()
    std = x.std(unbiased=True).item() if n > 1 else math.nan
    warmup = problem.warmup if warmup is None else warmup
    return Evaluation(
        x.mean().item(), std / math.sqrt(n), n, x, problem.metric, 0 if problem.metric == "total" else warmup, periods
    )


@torch.no_grad()
def evaluate(
    problem: Problem,
    policy: Policy,
    scenarios: Scenarios,
    *,
    warmup: int | None = None,
    shield: Shield | None = None,
    chunk: int | None = None,
) -> Evaluation:
    """Evaluate ``policy`` on ``scenarios`` without gradients (in chunks of ``chunk`` scenarios)."""
    was_training = getattr(policy, "training", None)
    if was_training:
        policy.eval()
    try:
        chunk = chunk or scenarios.n
        parts = []
        for i in range(0, scenarios.n, chunk):
            traj = rollout(problem, policy, scenarios.select(slice(i, i + chunk)), shield=shield)
            parts.append(scenario_costs(problem, traj.costs, warmup))
    finally:
        if was_training:
            policy.train()
    return summarize(problem, torch.cat(parts), scenarios.periods, warmup)
