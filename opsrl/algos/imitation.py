"""Imitation starts for the learning methods: clone another solver's policy before training.

``imitate = "<solver>"`` (an option of ``ppo``, ``pdppo`` and ``hdpo``) fits that solver on the problem (a
rule, a searched heuristic, ...), rolls its policy out on training scenarios, and fits the learner to its
actions: PPO maximises the likelihood of the teacher's actions under its action head, HDPO regresses its
actions onto the teacher's (mean squared error in the problem's action space). The learner's dev cost
right after cloning is the first point of its learning curve, so keeping the best-on-dev parameters never
ends worse than the clone. A method that starts from a good rule can then spend its budget on what the
rule cannot express instead of rediscovering it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..core import ConfigError, Problem, Scenarios, SolveContext, generator


def load_teacher(problem: Problem, name: str, ctx: SolveContext) -> torch.nn.Module:
    """Fit the solver ``name`` (bundled name or file, of the problem's family) through ``ctx.fit_solver``
    and return its policy."""
    if ctx.fit_solver is None:
        raise ConfigError(
            ctx.source,
            "options.imitate",
            "needs a context that can fit other solvers "
            "(SolveContext.fit_solver, e.g. opsrl.registry.fit_solver; the runner and the "
            "opsrl command set it)",
        )
    try:
        out = ctx.fit_solver(name, problem, ctx)
    except ConfigError as e:
        raise ConfigError(ctx.source, "options.imitate", f"cannot fit solver {name!r}: {e}") from None
    if out.policy is None:
        raise ConfigError(ctx.source, "options.imitate", f"solver {name!r} gives no policy to imitate")
    return out.policy


def teacher_scenarios(problem: Problem, o: dict[str, Any], ctx: SolveContext, periods: int) -> Scenarios:
    """A batch of training scenarios (``batch_size`` of them) for the teacher's rollout."""
    pool = problem.sample(o["train_scenarios"], "train", ctx.seed, periods, ctx.device)
    g = generator(ctx.seed, "train", "imitate_scenarios")
    return pool.select(torch.randint(pool.n, (min(o["batch_size"], pool.n),), generator=g).to(ctx.device))


def teacher_rollout(
    problem: Problem, teacher, scenarios: Scenarios, periods: int, keep: Callable[[dict, int, torch.Tensor], Any]
) -> list[Any]:
    """Roll ``teacher`` out and return ``keep(state, t, action)`` for every step."""
    if getattr(teacher, "training", False):
        teacher.eval()
    state = problem.initial_state(scenarios)
    kept = []
    with torch.no_grad():
        for t in range(periods):
            a = teacher(state, t)
            kept.append(keep(state, t, a))
            post, _ = problem.post_decision(state, a)
            state, _ = problem.transition(post, scenarios, t)
    return kept


def fit_steps(
    params,
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    steps: int,
    ctx: SolveContext,
    lr: float = 1e-3,
    batch: int = 4096,
) -> float:
    """``steps`` Adam steps on ``loss_of(indices)`` over random minibatches of ``n`` samples; the last loss."""
    g = generator(ctx.seed, "train", "imitate")
    opt = torch.optim.Adam(params, lr=lr)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        j = torch.randint(n, (min(n, batch),), generator=g)
        loss = loss_of(j)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss.detach())


def labelled_rollout(
    problem: Problem,
    actor,
    label: Callable[[dict, int], torch.Tensor],
    scenarios: Scenarios,
    periods: int,
    at: Callable[[int], bool],
) -> tuple[list[dict], list[torch.Tensor], list[int]]:
    """DAgger's data: roll ``actor`` (the learner, or the teacher itself) out and, at every step ``t`` with
    ``at(t)``, ask ``label(state, t)`` for the teacher's action in the state the actor reached. Returns the
    labelled states (each a dict of ``[B, ...]`` tensors), their labels ``[B, ...]`` and their steps."""
    if getattr(actor, "training", False):
        actor.eval()
    state = problem.initial_state(scenarios)
    states, labels, steps = [], [], []
    with torch.no_grad():
        for t in range(periods):
            if at(t):
                states.append({k: v.clone() for k, v in state.items()})
                labels.append(label(state, t))
                steps.append(t)
            post, _ = problem.post_decision(state, actor(state, t))
            state, _ = problem.transition(post, scenarios, t)
    return states, labels, steps
