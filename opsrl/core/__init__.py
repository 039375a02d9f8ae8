"""The contract (problems, scenarios, seeding), rollout, evaluation and config loading.

``opsrl.core`` imports nothing else of opsrl.
"""

from .config import REQUIRED, ConfigError, Field, load_toml, validate
from .problem import ActionSpec, Policy, Problem, Scenarios, State
from .rollout import Evaluation, Trajectory, evaluate, rollout, scenario_costs, summarize
from .seeding import SPLITS, generator, numpy_rng
from .solver import BoundSolver, Family, Method, Metric, RecordBound, Reference, SolveContext, SolveOutcome

__all__ = [
    "REQUIRED",
    "ConfigError",
    "Field",
    "load_toml",
    "validate",
    "ActionSpec",
    "Policy",
    "Problem",
    "Scenarios",
    "State",
    "Evaluation",
    "Trajectory",
    "evaluate",
    "rollout",
    "scenario_costs",
    "summarize",
    "SPLITS",
    "generator",
    "numpy_rng",
    "BoundSolver",
    "Family",
    "Method",
    "Metric",
    "RecordBound",
    "Reference",
    "SolveContext",
    "SolveOutcome",
]
