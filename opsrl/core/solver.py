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
class Metric:
    """What a family's runs are compared on in the report (see :mod:`opsrl.bench.report`).

    ``value`` and ``per_scenario`` are dotted paths into a run record (``"vm.final_fr"``); the default reads
    the test cost and the per-scenario test costs the runner stores (``test.per_scenario``). ``beside`` names
    other record fields shown next to it (label, dotted path), e.g. the microgrid's battery wear. ``ratio``
    says the metric is a positive quantity, so a percentage gap to a reference means something; a change
    (which may be negative or near zero) gets differences, never percentages.
    """

    name: str = "mean cost per period"
    unit: str = ""
    direction: str = "min"  # "min": smaller is better (every family today)
    value: str = "test_cost"
    per_scenario: str = "test.per_scenario"
    beside: tuple[tuple[str, str], ...] = ()
    ratio: bool = True


@dataclass(frozen=True)
class BoundSolver:
    """A method whose result is a bound on the metric, not a policy's cost: drawn as a bound, never ranked.

    ``value`` is the dotted path of the bound in its run record (default its test cost); ``loose_on`` lists
    problem-name patterns (``fnmatch``) where the bound is trivially loose, with ``loose_why``: it is shown
    there, but no gap is taken against it.
    """

    method: str
    kind: str  # "hindsight bound", "item bound", "perfect-foresight bound" ...
    value: str = "test_cost"
    loose_on: tuple[str, ...] = ()
    loose_why: str = ""


@dataclass(frozen=True)
class RecordBound:
    """A bound that a solver's run carries beside its own result (CP-SAT's proven bound, SDDP's bound).

    ``value(record) -> float | None`` reads it, None where the run has none (or where it is not a bound of
    the problem, such as CP-SAT's bound on a restricted model). ``sense`` is ``"lower"`` (a minimisation's
    bound).
    """

    method: str
    kind: str
    value: Callable[[Mapping[str, Any]], float | None]
    sense: str = "lower"
    # the bound of each test scenario, in the order of the metric's ``per_scenario`` (for paired gaps), or None
    per_scenario: Callable[[Mapping[str, Any]], list[float] | None] | None = None


@dataclass(frozen=True)
class Family:
    """A problem family: how to build its problems from config, its own methods, its references.

    ``build(config, source)`` receives the problem file's table without ``family``/``description``
    and must validate it (see :func:`opsrl.core.config.validate`). ``reference(problem)`` returns the
    optimum or a bound to report gaps against, or None. The fields after ``picture`` declare what the report
    shows: the family's natural metric, its references, which of its methods are bounds (and where they are
    trivially loose), and how a run splits into instances.
    """

    name: str
    build: Callable[[Mapping[str, Any], str], Problem]
    methods: Mapping[str, Method] = field(default_factory=dict)
    reference: Callable[[Problem], Reference | None] = lambda problem: None
    record: Callable[[Problem, Any], dict[str, Any]] | None = None  # extra JSON fields of a run
    picture: Callable[[Problem, dict[str, Any]], Any] | None = None  # a run's picture (matplotlib Figure)
    # what the report compares on and against (see opsrl.bench.report); defaults fit a mean cost per period
    metric: Metric = Metric()
    references: tuple[str, ...] = ()  # the kinds of reference this family can have, tightest first, for the docs
    bounds: tuple[BoundSolver, ...] = ()  # methods that compute bounds: declared, never ranked
    record_bounds: tuple[RecordBound, ...] = ()  # bounds carried in other runs' records
    # a run's metric per named instance (a job-shop class, VM snapshots), for per-instance gaps, wins and the
    # performance profile: ``instances(record) -> {name: (value, reference or None)}``; None: the problem is one
    instances: Callable[[Mapping[str, Any]], dict[str, tuple[float, float | None]] | None] | None = None
    # True where a problem's test scenarios are a fixed set of instances (a Taillard class), not a random sample:
    # its intervals then cover the seed-to-seed spread only
    fixed_instances: Callable[[Mapping[str, Any]], bool] | None = None
    # why a run's policy reads the future (an oracle such as an MPC on perfect forecasts), or None: such runs are
    # shown apart, never ranked and never a reference (only bounds may read the future)
    oracle: Callable[[Mapping[str, Any]], str | None] | None = None
