"""What identifies a run: its cell (problem, solver, seed, config hash).

A cell's config hash covers everything that decides its result apart from the seed: the problem file's
content with its overrides applied (not its path, so that the same sweep resumes from another
checkout or on another machine), the problem's test set, and the solver's validated configuration
(method, policy, options) with its label. Device, versions and hardware are recorded with the run but
are not part of the cell: a cell is the same experiment wherever it runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core import Problem, Scenarios, load_toml
from ..core.config import set_dotted


def _digest(obj: Any, n: int = 16) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def problem_spec(problem: Problem, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The problem's file content (overrides applied, description dropped) and its test set.

    A problem built from a table (:func:`opsrl.registry.build_problem`) stands for its table; one built in
    Python for its class and a fingerprint of its attributes (:func:`object_fingerprint`).
    """
    origin = getattr(problem, "origin", None) or {}
    spec: dict[str, Any] = {"family": problem.family, "name": problem.name}
    if "table" in origin:
        raw = copy.deepcopy(origin["table"])
    elif "file" in origin:
        raw = load_toml(origin["file"])
    elif isinstance(getattr(problem, "source", None), str) and Path(problem.source).is_file():
        raw = load_toml(problem.source)
    else:
        raw = None
        spec["object"] = f"{type(problem).__module__}.{type(problem).__qualname__}"
        spec["fingerprint"] = object_fingerprint(problem)
    if raw is not None:
        for k, v in (overrides or {}).items():
            set_dotted(raw, k, v)
        raw.pop("description", None)
        raw.pop("name", None)
        spec["file"] = raw
    return {
        **spec,
        "test": {
            "scenarios": problem.test_scenarios,
            "periods": problem.test_periods,
            "seed": problem.test_seed,
            "warmup": problem.test_warmup,
        },
    }


_SKIP = (str, int, float, bool, type(None))


def object_fingerprint(obj: Any) -> str:
    """A digest of what a problem object holds: its public attributes, recursively (numbers, strings, lists,
    dicts, tensors and arrays by their bytes, other objects by their own attributes, at most 6 levels deep).

    Two objects built with the same numbers have the same fingerprint; callables and private attributes
    (caches) are left out."""
    h = hashlib.sha256()

    def feed(x: Any, depth: int) -> None:
        if isinstance(x, _SKIP):
            h.update(repr(x).encode())
        elif isinstance(x, torch.Tensor):
            v = x.detach().to("cpu").contiguous()
            h.update(f"tensor{v.dtype}{tuple(v.shape)}".encode())
            h.update(v.view(torch.uint8).numpy().tobytes() if v.numel() else b"")
        elif hasattr(x, "dtype") and hasattr(x, "tobytes") and hasattr(x, "shape"):  # numpy arrays and scalars
            h.update(f"array{x.dtype}{tuple(x.shape)}".encode())
            h.update(x.tobytes() if str(x.dtype) != "object" else repr(x).encode())
        elif depth <= 0 or callable(x):
            h.update(type(x).__name__.encode())
        elif isinstance(x, Mapping):
            h.update(b"{")
            for k in sorted(x, key=str):
                if isinstance(k, str) and k.startswith("_"):
                    continue
                h.update(str(k).encode())
                feed(x[k], depth - 1)
            h.update(b"}")
        elif isinstance(x, (list, tuple, set, frozenset)):
            h.update(b"[")
            for v in sorted(x, key=repr) if isinstance(x, (set, frozenset)) else x:
                feed(v, depth - 1)
            h.update(b"]")
        elif isinstance(x, (torch.dtype, torch.device, Path)):
            h.update(str(x).encode())
        elif hasattr(x, "__dict__"):
            h.update(type(x).__qualname__.encode())
            feed(vars(x), depth - 1)
        else:
            h.update(type(x).__name__.encode())

    feed(obj, 6)
    return h.hexdigest()[:16]


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
