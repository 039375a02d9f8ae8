"""Run one solver on one problem: fit (timed as training), evaluate on the test split, record."""

from __future__ import annotations

import datetime as _dt
import math
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import torch

from .. import __version__
from ..core import SolveContext, evaluate
from ..registry import family as get_family
from ..registry import load_problem, load_solver


def versions() -> dict[str, str]:
    out = {"opsrl": __version__, "python": platform.python_version()}
    for pkg in ("torch", "numpy", "scipy", "ortools", "torch-geometric"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def hardware(device: torch.device) -> dict[str, Any]:
    import os

    hw = {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count(),
          "torch_threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        hw["gpu"] = torch.cuda.get_device_name(device)
    return hw


def run(problem: str | Path, solver: str | Path, *, seed: int = 0, device: str = "cpu",
        solver_overrides: dict[str, Any] | None = None, problem_overrides: dict[str, Any] | None = None,
        progress: bool = True, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Run ``solver`` on ``problem`` and return the run's record (a JSON-able dict)."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    prob = load_problem(problem, problem_overrides)
    fam = get_family(prob.family)
    solver_name, method, scfg = load_solver(solver, fam, solver_overrides)
    torch.manual_seed(seed)
    ctx = SolveContext(seed=seed, device=dev, progress=progress, source=scfg["source"], log=log)

    t0 = time.perf_counter()
    outcome = method.fit(prob, scfg["options"], scfg, ctx)
    train_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    test = prob.test_set(dev)
    if outcome.evaluate is not None:
        ev, eval_info = outcome.evaluate(test)
    else:
        ev, eval_info = evaluate(prob, outcome.policy, test, warmup=prob.test_warmup), {}
    eval_seconds = time.perf_counter() - t0

    ref = fam.reference(prob)
    gap = None
    if ref is not None and ref.value != 0 and math.isfinite(ev.mean):
        gap = 100.0 * (ev.mean - ref.value) / abs(ref.value)
    record: dict[str, Any] = {
        "problem": prob.name, "solver": solver_name, "seed": seed, "method": method.name,
        "test_cost": ev.mean, "test_stderr": ev.stderr, "test": ev.as_dict(),
        "reference": None if ref is None else ref.as_dict(), "gap_pct": gap,
        "gap_stderr_pct": None if gap is None else 100.0 * ev.stderr / abs(ref.value),
        "train_seconds": train_seconds, "eval_seconds": eval_seconds,
        "device": str(dev), "info": {**outcome.info, **eval_info}, "curve": outcome.curve,
        "config": {"problem": dict(prob.config), "problem_file": prob.source, "solver": scfg},
        "versions": versions(), "hardware": hardware(dev),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if fam.record is not None:
        record.update(fam.record(prob, outcome))
    return record
