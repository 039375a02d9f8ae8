"""What a solver method is, and what it hands back to the runner.

A :class:`Method` is a named way to control a problem (``hdpo``, ``base_stock``, ``cpsat`` ...) with a
schema for its ``[options]`` table. ``fit`` is timed as training; it returns a :class:`SolveOutcome`
holding either a policy (evaluated by the runner through :func:`opsrl.core.evaluate` on the test split)
or its own ``evaluate`` (for solvers that work per scenario, such as CP-SAT or a hindsight LP).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .config import Field
from .problem import Policy, Problem, Scenarios
from .rollout import Evaluation


@dataclass
class Reference:
    """A number to measure solvers against: ``kind`` is ``optimum``, ``lower_bound`` or ``best_known``."""

    kind: str
    value: float
    source: str = ""
    stderr: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "value": self.value, "source": self.source}
        if self.stderr is not None:
            d["stderr"] = self.stderr
        return d


@dataclass
class SolveContext:
    seed: int = 0
    device: torch.device = torch.device("cpu")
    progress: bool = True
    source: str = "<solver>"  # the solver's config file, for error messages
    log: Callable[[str], None] = lambda msg: None
    # fits another solver by name on a problem: ``fit_solver(name, problem, ctx) -> SolveOutcome``. Set by the
    # layers that know the solver files (opsrl.registry.fit_solver, used by the runner and the command line);
    # methods that start from another solver's policy (``imitate``) need it
    fit_solver: Callable[..., SolveOutcome] | None = None


@dataclass
class SolveOutcome:
    policy: Policy | None = None
    evaluate: Callable[[Scenarios], tuple[Evaluation, dict[str, Any]]] | None = None
    curve: list[dict[str, float]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


FitFn = Callable[[Problem, Mapping[str, Any], Mapping[str, Any], SolveContext], SolveOutcome]
"""``fit(problem, options, solver_config, ctx)``: options are validated against the method's schema."""


@dataclass(frozen=True)
class Method:
    name: str
    fit: FitFn
    options: Mapping[str, Field] = field(default_factory=dict)
    learns: bool = False
    description: str = ""
    # sizes that depend on the problem: ``sizes(problem, options, solver_config) -> list[Need]`` estimates the
    # memory the method will allocate (its networks, pools, plans), before anything is; it may also raise a
    # ConfigError for a value that cannot be meaningful on this problem. Options whose Field sets ``counts``
    # (scenario counts) are estimated without it (opsrl.bench.runner.check_solver_sizes).
    sizes: Callable[[Problem, Mapping[str, Any], Mapping[str, Any]], list[Any]] | None = None


@dataclass(frozen=True)
class Family:
    """A problem family: how to build its problems from config, its own methods, its references.

    ``build(config, source)`` receives the problem file's table without ``family``/``description``
    and must validate it (see :func:`opsrl.core.config.validate`). ``reference(problem)`` returns the
    optimum or a bound to report gaps against, or None.
    """

    name: str
    build: Callable[[Mapping[str, Any], str], Problem]
    methods: Mapping[str, Method] = field(default_factory=dict)
    reference: Callable[[Problem], Reference | None] = lambda problem: None
    record: Callable[[Problem, Any], dict[str, Any]] | None = None  # extra JSON fields of a run
    picture: Callable[[Problem, dict[str, Any]], Any] | None = None  # a run's picture (matplotlib Figure)
