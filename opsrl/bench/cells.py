"""What identifies a run: its cell (problem, solver, seed, config hash).

A cell's config hash covers everything that decides its result apart from the seed: the problem file's
content with its overrides applied (not its path, so that the same sweep resumes from another
checkout or on another machine), the problem's test set, and the solver's validated configuration
(method, policy, options) with its label. Device, versions and hardware are recorded with the run but
are not part of the cell: a cell is the same experiment wherever it runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core import Problem, Scenarios, load_toml
from ..core.config import set_dotted
from ..registry import resolve


def _digest(obj: Any, n: int = 16) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def problem_spec(problem: Problem, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The problem's file content (overrides applied, description dropped) and its test set."""
    raw = load_toml(problem.source if Path(problem.source).is_file() else resolve("problems", problem.name))
    for k, v in (overrides or {}).items():
        set_dotted(raw, k, v)
    raw.pop("description", None)
    return {
        "family": problem.family,
        "name": problem.name,
        "file": raw,
        "test": {
            "scenarios": problem.test_scenarios,
            "periods": problem.test_periods,
            "seed": problem.test_seed,
            "warmup": problem.test_warmup,
        },
    }


def solver_spec(label: str, config: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "label": label,
        "method": config["method"],
        "policy": config.get("policy", {}),
        "options": config.get("options", {}),
    }


@dataclass(frozen=True)
class CellId:
    problem: str
    solver: str
    seed: int
    config_hash: str
    problem_hash: str
    solver_hash: str
    problem_overrides: dict[str, Any] = field(default_factory=dict)
    solver_overrides: dict[str, Any] = field(default_factory=dict)
    solver_name: str = ""

    @property
    def key(self) -> str:
        return f"{self.problem}|{self.solver}|{self.seed}|{self.config_hash}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "config_hash": self.config_hash,
            "problem_hash": self.problem_hash,
            "solver_hash": self.solver_hash,
            "solver_name": self.solver_name,
            "problem_overrides": dict(self.problem_overrides),
            "solver_overrides": dict(self.solver_overrides),
        }


def cell_id(
    problem: Problem,
    solver_name: str,
    solver_config: Mapping[str, Any],
    seed: int,
    *,
    label: str | None = None,
    problem_overrides: Mapping[str, Any] | None = None,
    solver_overrides: Mapping[str, Any] | None = None,
) -> CellId:
    label = label or solver_name
    p_hash = _digest(problem_spec(problem, problem_overrides))
    s_hash = _digest(solver_spec(label, solver_config))
    return CellId(
        problem.name,
        label,
        int(seed),
        _digest([p_hash, s_hash]),
        p_hash,
        s_hash,
        dict(problem_overrides or {}),
        dict(solver_overrides or {}),
        solver_name,
    )


def scenarios_hash(scenarios: Scenarios) -> str:
    """A fingerprint of scenario tensors: equal fingerprints mean solvers faced the same randomness."""
    h = hashlib.sha256()
    for k in sorted(scenarios.data):
        v = scenarios.data[k].detach().to("cpu").contiguous()
        h.update(k.encode())
        h.update(str(v.dtype).encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()[:16]
