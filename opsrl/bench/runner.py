"""Run one solver on one problem: fit (timed as training), evaluate on the test split, record.

Besides the test estimate, a record carries its cell (see :mod:`opsrl.bench.cells`), a fingerprint
of the test scenarios (``test.scenarios_hash``: every solver of a problem must show the same one) and,
for solvers that hand back a policy, a short trace of that policy on the first few test scenarios
(states, actions and costs per period), which the report draws for the best solver.
"""

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
from ..core import Problem, Scenarios, SolveContext, evaluate, rollout
from .cells import cell_id, scenarios_hash
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
        progress: bool = True, log: Callable[[str], None] = lambda m: None, label: str | None = None,
        trace: bool = True) -> dict[str, Any]:
    """Run ``solver`` on ``problem`` and return the run's record (a JSON-able dict).

    ``label`` names the solver in the record instead of its file's name (a sweep comparing two
    configurations of one solver file labels them); ``trace`` records a short trace of the policy.
    """
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    prob = load_problem(problem, problem_overrides)
    fam = get_family(prob.family)
    solver_name, method, scfg = load_solver(solver, fam, solver_overrides)
    cell = cell_id(prob, solver_name, scfg, seed, label=label, problem_overrides=problem_overrides,
                   solver_overrides=solver_overrides)
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
    test_info = {**ev.as_dict(), "scenarios_hash": scenarios_hash(test)}

    ref = fam.reference(prob)
    gap = None
    if ref is not None and ref.value != 0 and math.isfinite(ev.mean):
        gap = 100.0 * (ev.mean - ref.value) / abs(ref.value)
    record: dict[str, Any] = {
        "problem": prob.name, "solver": cell.solver, "seed": seed, "method": method.name, "family": prob.family,
        "problem_description": getattr(prob, "description", ""),
        "cell": cell.as_dict(),
        "test_cost": ev.mean, "test_stderr": ev.stderr, "test": test_info,
        "reference": None if ref is None else ref.as_dict(), "gap_pct": gap,
        "gap_stderr_pct": None if gap is None else 100.0 * ev.stderr / abs(ref.value),
        "train_seconds": train_seconds, "eval_seconds": eval_seconds,
        "device": str(dev), "info": {**outcome.info, **eval_info}, "curve": outcome.curve,
        "config": {"problem": dict(prob.config), "problem_file": prob.source, "solver": scfg},
        "versions": versions(), "hardware": hardware(dev),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if trace and outcome.policy is not None:
        record["trace"] = policy_trace(prob, outcome.policy, test)
    if fam.record is not None:
        record.update(fam.record(prob, outcome))
    return record


TRACE_SCENARIOS = 3
TRACE_MAX_PERIODS = 2000  # periods rolled out for the trace
TRACE_POINTS = 240  # periods kept (evenly spaced; costs averaged over the periods in between)
TRACE_WIDTH = 16  # entries per scenario of a state tensor or an action kept in the trace
TRACE_KEYS = 8  # state tensors kept (the first ones that change over the episode)


def _compact(x: torch.Tensor) -> list:
    """Nested lists of floats with 5 significant digits (the trace is for pictures, not for numbers)."""
    return [[[float(f"{v:.5g}") for v in row] for row in scen] for scen in x.double().cpu().tolist()]


@torch.no_grad()
def policy_trace(problem: Problem, policy, test: Scenarios, scenarios: int = TRACE_SCENARIOS,
                 periods: int = TRACE_MAX_PERIODS, points: int = TRACE_POINTS) -> dict[str, Any]:
    """States, actions and costs of ``policy`` on the first test scenarios, for the report's picture.

    The first ``scenarios`` test scenarios are rolled out over the test episode (at most ``periods``
    periods); ``points`` evenly spaced periods ``t`` are kept (``stride`` apart), with the cost averaged
    over each stride. Only state tensors with at most ``TRACE_WIDTH`` entries per scenario that change
    over the episode are kept (a flat state's components, not a job shop's whole graph), at most
    ``TRACE_KEYS`` of them; the others are named in ``skipped``.
    """
    k, T = min(scenarios, test.n), min(periods, test.periods)
    stride = max(1, math.ceil(T / points))
    was_training = getattr(policy, "training", None)
    if was_training:
        policy.eval()
    try:
        traj = rollout(problem, policy, test.select(slice(0, k)), periods=T, record=True)
    except Exception as e:  # the trace is an illustration; its failure must not lose the run
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        if was_training:
            policy.train()
    t_idx = list(range(0, T, stride))
    costs = traj.costs.detach().double()
    pad = len(t_idx) * stride - T
    if pad:
        costs = torch.cat([costs, costs[:, -1:].expand(-1, pad)], dim=1)
    window_cost = costs.reshape(k, len(t_idx), stride).mean(dim=2)
    warmup = problem.test_warmup if problem.test_warmup is not None else problem.warmup
    out: dict[str, Any] = {"scenarios": k, "periods": T, "stride": stride, "t": t_idx,
                           "warmup": 0 if problem.metric == "total" else warmup,
                           "cost": _compact(window_cost[:, :, None]), "state": {}, "skipped": []}
    for name in traj.states[0] if traj.states else ():
        series = torch.stack([traj.states[t][name] for t in t_idx], dim=1).reshape(k, len(t_idx), -1)
        changes = series.dtype != torch.bool and bool((series != series[:, :1]).any())
        if series.shape[-1] <= TRACE_WIDTH and changes and len(out["state"]) < TRACE_KEYS:
            out["state"][name] = _compact(series)
        else:
            out["skipped"].append(name)
    if traj.actions:
        acts = torch.stack([traj.actions[t] for t in t_idx], dim=1).reshape(k, len(t_idx), -1)
        if acts.shape[-1] <= TRACE_WIDTH:
            out["action"] = _compact(acts)
    return out
