"""Run one solver on one problem: fit (timed as training), evaluate on the test split, record.

Besides the test estimate, a record carries its cell (see :mod:`opsrl.bench.cells`), a fingerprint
of the test scenarios (``test.scenarios_hash``: every solver of a problem must show the same one) and,
for solvers that hand back a policy, a trace of that policy on the first few test scenarios (states,
actions and costs per period, recorded during the evaluation itself), which the report draws for the
best solver.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..core import ConfigError, Method, Problem, Scenarios, SolveContext, State, evaluate, rollout, validate
from ..core.config import Need, check_memory, check_needs, scenario_bytes
from ..faults import point as fault_point
from ..registry import build_problem, family_of, fit_solver, load_for_solver, load_problem, load_solver
from ..registry import family as get_family
from .cells import cell_id, scenarios_hash


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

    hw = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        hw["gpu"] = torch.cuda.get_device_name(device)
    return hw


@dataclass
class Prepared:
    """A run with every input checked and nothing trained yet (see :func:`prepare`)."""

    problem: Problem
    family: Any
    solver_name: str
    method: Any
    config: dict[str, Any]
    cell: Any
    seed: int
    device: torch.device
    solver_overrides: dict[str, Any] | None = None
    problem_overrides: dict[str, Any] | None = None


def check_device(
    device: str | torch.device, source: str = "--device", key: str | None = None, here: bool = True
) -> torch.device:
    """The torch device named ``device`` if this machine can run on it, else one :class:`ConfigError`.

    Checked once, before anything is loaded, run or created: an unknown name (``tpu``), a device
    without storage (``meta``), and with ``here`` (the run happens on this machine) CUDA or MPS where
    there is none, a CUDA index beyond the GPUs present. A sweep for Ray workers checks the name only.
    """
    allowed = "cpu, cuda or cuda:N (with CUDA), mps (with MPS)"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(source, key, f"{str(device)!r} is not a torch device; allowed: {allowed}") from None
    if dev.type == "cpu" or (not here and dev.type in ("cuda", "mps")):
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(source, key, f"{str(device)!r}: CUDA is not available on this machine; allowed here: cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ConfigError(
                source, key, f"{str(device)!r}: this machine has {n} CUDA device(s), cuda:0 .. cuda:{n - 1}"
            )
        return dev
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(source, key, f"{str(device)!r}: MPS is not available on this machine; allowed here: cpu")
        return dev
    raise ConfigError(source, key, f"{str(device)!r}: opsrl does not run on {dev.type!r} devices; allowed: {allowed}")


def check_test_memory(prob: Problem, device: torch.device) -> float | None:
    """Refuse a test set that would not fit in memory (estimated from a one-scenario sample); its bytes, or None
    where nothing is estimated."""
    n = int(prob.test_scenarios or 0)
    periods = int(prob.test_periods or prob.periods)
    if n <= 0:
        return None
    nbytes = scenario_bytes(prob, n, periods, "test")
    if nbytes is not None:
        check_memory(
            nbytes,
            prob.source,
            "test.scenarios",
            f"the test set ({n} scenarios x {periods} periods)",
            device,
            lower="'test.scenarios' or 'test.periods'",
        )
    return nbytes


def check_solver_sizes(
    prob: Problem, method: Any, scfg: dict[str, Any], device: torch.device, test: float | None
) -> None:
    """Refuse a run whose solver would allocate more than half the memory free: the test set (``test``: its
    bytes, from :func:`check_test_memory`), the options that count scenarios (``Field.counts``) and what the
    method's ``sizes`` hook estimates (networks, plans), together, before anything is allocated; the message
    names the keys of the largest part."""
    src = scfg["source"]
    n_test = int(prob.test_scenarios or 0)
    periods = int(prob.test_periods or prob.periods)
    needs = []
    if test is not None:
        needs.append(
            Need(f"the test set ({n_test} scenarios x {periods} periods)", test, prob.source, ("test.scenarios",))
        )
    opts = scfg["options"]
    for name, field in method.options.items():
        value = opts.get(name)
        if not field.counts or isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            continue
        key = f"options.{name}"
        kind, _, periods_key = field.counts.partition(":")  # "scenarios:dev_periods": their periods set there
        if kind == "test_copies":
            if test is not None:
                needs.append(
                    Need(f"{value} copies of the test set ({key})", test * value, src, (key, "test.scenarios"))
                )
            continue
        p = int(opts.get(periods_key) or 0) or periods
        nbytes = scenario_bytes(prob, value, p, "dev")
        if nbytes is not None:
            keys = (key, f"options.{periods_key}") if periods_key else (key,)
            needs.append(Need(f"{value} scenarios x {p} periods ({key})", nbytes, src, keys))
    if method.sizes is not None:
        needs += list(method.sizes(prob, scfg["options"], scfg) or [])
    check_needs(needs, device)


def prepare(
    problem: str | Path | Mapping[str, Any] | Problem,
    solver: str | Path | Method,
    *,
    seed: int = 0,
    device: str = "cpu",
    solver_overrides: dict[str, Any] | None = None,
    problem_overrides: dict[str, Any] | None = None,
    label: str | None = None,
) -> Prepared:
    """Load and check the problem and the solver (names, keys, values, device, sizes); train nothing.

    ``problem`` is a problem file, a bundled name, a table (a dict such as a problem file holds, with
    ``family``) or a problem object (:class:`~opsrl.core.Problem`, built in Python or by
    :func:`opsrl.registry.load_problem`); ``solver`` is a solver file, a bundled name or a
    :class:`~opsrl.core.Method` (its name labels the run; ``solver_overrides`` are its options).
    Every bad input stops here with one :class:`ConfigError`, before a store is opened or a step is run.
    """
    check_seed(seed)
    dev = check_device(device)
    with _from_flag(solver_overrides, "--set"), _from_flag(problem_overrides, "--problem-set"):
        if isinstance(problem, Problem):
            if problem_overrides:
                if getattr(problem, "origin", None) is None:
                    raise ConfigError(
                        "problem_overrides",
                        next(iter(problem_overrides)),
                        f"a {type(problem).__name__} built in Python takes no overrides; set the value when "
                        "building it (or build it with opsrl.problem(name, **overrides))",
                    )
                prob = load_for_solver(problem, {"problem": {}}, problem_overrides)
            else:
                prob = problem
            fam = family_of(prob)
            prob.family = fam.name
            if not isinstance(getattr(prob, "source", None), str):
                prob.source = f"<{type(prob).__name__} object>"
            problem_overrides = dict((getattr(prob, "origin", None) or {}).get("overrides") or {})
        elif isinstance(problem, Mapping):
            prob = build_problem(problem, "<dict>", problem_overrides)
            fam = get_family(prob.family)
        else:
            prob = load_problem(problem, problem_overrides)
            fam = get_family(prob.family)
        if isinstance(solver, Method):
            solver_name, method, scfg = solver.name, solver, method_config(solver, solver_overrides)
        else:
            solver_name, method, scfg = load_solver(solver, fam, solver_overrides)
        if scfg["problem"]:  # the solver sets problem keys (how the problem reads its action, ...)
            prob = load_for_solver(prob if not isinstance(problem, (str, Path)) else problem, scfg, problem_overrides)
            prob.family = fam.name
        check_solver_sizes(prob, method, scfg, dev, check_test_memory(prob, dev))
    cell = cell_id(
        prob,
        solver_name,
        scfg,
        seed,
        label=label,
        problem_overrides=problem_overrides,
        solver_overrides=solver_overrides,
    )
    return Prepared(prob, fam, solver_name, method, scfg, cell, int(seed), dev, solver_overrides, problem_overrides)


def method_config(method: Method, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The solver configuration of a :class:`Method` object: its options (``options`` over the schema's
    defaults) validated, as :func:`opsrl.registry.load_solver` gives for a solver file."""
    source = f"<method {method.name}>"
    if not isinstance(method.name, str) or not method.name.strip():
        raise ConfigError("solver", "name", f"{method.name!r} is not allowed; a Method needs a non-empty name")
    opts = {}
    from ..core.config import set_dotted

    for k, v in (options or {}).items():
        set_dotted(opts, k.removeprefix("options."), v)
    return {
        "method": method.name,
        "description": method.description,
        "policy": {},
        "options": validate(opts, method.options, source, prefix="options."),
        "problem": {},
        "source": source,
    }


@contextlib.contextmanager
def _from_flag(overrides: dict[str, Any] | None, flag: str):
    """A bad value given on the command line is reported against its flag, not against the file it
    overrides: ``--set options.lr=abc`` names ``--set``."""
    try:
        yield
    except ConfigError as e:
        keys = set(overrides or {})
        key = e.key or ""
        hit = next(
            (
                k
                for k in keys
                if key == k
                or key.endswith("." + k)
                or key.startswith(k + ".")
                or key.startswith(k + "[")
                or key == f"options.{k}"
                or key.startswith(f"options.{k}[")
            ),
            None,
        )
        if hit is None or e.source.startswith("--"):
            raise
        raise ConfigError(flag, e.key, f"{e.message} (overriding {e.source})") from None


def check_seed(seed: Any, source: str = "--seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ConfigError(source, None, f"{seed!r} is not allowed; a seed is an integer from 0 to 2**63 - 1")
    return seed


def run(
    problem: str | Path | Mapping[str, Any] | Problem,
    solver: str | Path | Method,
    *,
    seed: int = 0,
    device: str = "cpu",
    solver_overrides: dict[str, Any] | None = None,
    problem_overrides: dict[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda m: None,
    label: str | None = None,
    trace: bool = True,
) -> dict[str, Any]:
    """Run ``solver`` on ``problem`` and return the run's record (a JSON-able dict).

    ``label`` names the solver in the record instead of its file's name (a sweep comparing two
    configurations of one solver file labels them); ``trace`` records the policy's trace (see :class:`TraceRecorder`).
    """
    prep = prepare(
        problem,
        solver,
        seed=seed,
        device=device,
        solver_overrides=solver_overrides,
        problem_overrides=problem_overrides,
        label=label,
    )
    return execute(prep, progress=progress, log=log, trace=trace)


def execute(
    prep: Prepared,
    *,
    progress: bool = True,
    log: Callable[[str], None] = lambda m: None,
    trace: bool = True,
    stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fit (timed as training), evaluate on the test split and build the record of a prepared run.

    ``log`` receives the method's progress messages; ``stage`` (if given) one message per stage."""
    return execute_outcome(prep, progress=progress, log=log, trace=trace, stage=stage)[0]


def execute_outcome(
    prep: Prepared,
    *,
    progress: bool = True,
    log: Callable[[str], None] = lambda m: None,
    trace: bool = True,
    stage: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], Any]:
    """:func:`execute`, returning the record and the method's :class:`~opsrl.core.SolveOutcome` (its fitted
    policy, for :func:`opsrl.run`)."""
    prob, fam, method, scfg, seed, dev = prep.problem, prep.family, prep.method, prep.config, prep.seed, prep.device
    cell = prep.cell
    torch.manual_seed(seed)
    ctx = SolveContext(seed=seed, device=dev, progress=progress, source=scfg["source"], log=log, fit_solver=fit_solver)

    t0 = time.perf_counter()
    with _from_flag(prep.solver_overrides, "--set"), _from_flag(prep.problem_overrides, "--problem-set"):
        fault_point("fit")
        outcome = method.fit(prob, scfg["options"], scfg, ctx)  # (a policy's keys are checked when it is built)
    train_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    if stage is not None:
        stage(
            f"evaluating on the test split ({prob.test_scenarios or 'all'} scenarios"
            f"{f' x {prob.test_periods or prob.periods} periods' if prob.metric == 'mean' else ''})"
        )
    test = prob.test_set(dev)
    if outcome.evaluate is not None:
        ev, eval_info = outcome.evaluate(test)
    else:
        recorder = TraceRecorder(prob, test.periods) if trace else None
        ev, eval_info = evaluate(recorder or prob, outcome.policy, test, warmup=prob.test_warmup), {}
    eval_seconds = time.perf_counter() - t0
    test_info = {**ev.as_dict(), "scenarios_hash": scenarios_hash(test), **per_scenario_costs(ev)}

    ref = fam.reference(prob)
    gap = None
    if ref is not None and ref.value != 0 and math.isfinite(ev.mean):
        gap = 100.0 * (ev.mean - ref.value) / abs(ref.value)
    time_limited = outcome.info.get("time_limited")
    if time_limited is None:  # a method that does not say: a learning method with a time limit may have hit it
        time_limited = bool(method.learns and (scfg["options"].get("time_limit") or 0) > 0)
    record: dict[str, Any] = {
        "problem": prob.name,
        "solver": cell.solver,
        "seed": seed,
        "method": method.name,
        "family": prob.family,
        "problem_description": getattr(prob, "description", ""),
        "cell": cell.as_dict(),
        "test_cost": ev.mean,
        "test_stderr": ev.stderr,
        "test": test_info,
        "reference": None if ref is None else ref.as_dict(),
        "gap_pct": gap,
        "gap_stderr_pct": None if gap is None or not math.isfinite(ev.stderr) else 100.0 * ev.stderr / abs(ref.value),
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "reproducible": not time_limited,
        "device": str(dev),
        "info": {**outcome.info, **eval_info},
        "curve": outcome.curve,
        "config": {"problem": dict(prob.config), "problem_file": prob.source, "solver": scfg},
        "versions": versions(),
        "hardware": hardware(dev),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    origin = getattr(prob, "origin", None) or {}
    if "table" in origin:  # a problem built from a table (opsrl.problem(dict)): the table rebuilds it
        record["config"]["problem_table"] = {"table": origin["table"], "overrides": origin["overrides"]}
    elif not origin and not Path(str(prob.source)).is_file():  # built in Python: no file or table rebuilds it
        record["config"]["problem_object"] = f"{type(prob).__module__}.{type(prob).__qualname__}"
    if time_limited:
        record["reproducible_note"] = (
            "training stopped (or may have stopped) at its time limit, so the number "
            "of steps (and the result) depends on the machine and its load; set "
            "max_steps without time_limit for a reproducible run"
        )
    if trace and outcome.evaluate is None:
        record["trace"] = recorder.trace()
    elif trace and outcome.policy is not None:  # the family evaluates its policy itself: one more short rollout
        record["trace"] = policy_trace(prob, outcome.policy, test, eval_seconds)
    if fam.record is not None:
        record.update(fam.record(prob, outcome))
    return record, outcome


TRACE_SCENARIOS = 3
TRACE_MAX_PERIODS = 2000  # periods of the test episode covered by the trace
TRACE_POINTS = 240  # periods kept (evenly spaced; costs averaged over the periods in between)
TRACE_WIDTH = 16  # entries per scenario of a state tensor or an action kept in the trace
TRACE_KEYS = 8  # state tensors kept (the first ones that change over the episode)
PER_SCENARIO_MAX = 65_536  # per-scenario test costs kept in a record up to this many scenarios


def per_scenario_costs(ev) -> dict[str, Any]:
    """The test cost of every scenario, in the test set's order (7 significant digits; None where not finite), for
    the report's paired comparisons: every solver of a problem is evaluated on the same scenarios. A solver that
    evaluates only the first n scenarios (a MIP per scenario) stores those n."""
    x = ev.per_scenario.detach().double().cpu().reshape(-1).tolist()
    if len(x) > PER_SCENARIO_MAX:
        return {"per_scenario_note": f"{len(x)} scenarios: per-scenario costs not kept (more than {PER_SCENARIO_MAX})"}
    return {"per_scenario": [float(f"{v:.7g}") if math.isfinite(v) else None for v in x]}


def _compact(x: torch.Tensor) -> list:
    """Nested lists of floats with 5 significant digits (the trace is for pictures, not for numbers)."""
    return [[[float(f"{v:.5g}") for v in row] for row in scen] for scen in x.double().cpu().tolist()]


class TraceRecorder:
    """Stands in for the problem during the test evaluation and records its first scenarios.

    Every call goes to the problem unchanged (so the evaluation's numbers are the problem's own);
    ``post_decision`` and ``transition`` also keep, for the first ``scenarios`` scenarios of the first
    rollout, the state and the action at evenly spaced periods (``stride`` apart, at most ``points``
    of the first ``TRACE_MAX_PERIODS`` periods) and the cost of every period. The trace thus costs no
    extra rollout, which matters for policies that solve an optimisation per period.
    """

    def __init__(self, problem: Problem, periods: int, scenarios: int = TRACE_SCENARIOS, points: int = TRACE_POINTS):
        self._problem, self._k = problem, scenarios
        self._T = min(periods, TRACE_MAX_PERIODS)
        self._stride = max(1, math.ceil(self._T / points))
        self._rollouts, self._t = 0, 0
        self._states: list[State] = []
        self._actions: list[torch.Tensor] = []
        self._costs: list[torch.Tensor] = []
        self._pending_cost: torch.Tensor | None = None
        self._k_seen = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._problem, name)

    def _recording(self) -> bool:
        return self._rollouts == 1 and self._t < self._T

    def initial_state(self, scenarios):
        self._rollouts += 1
        self._t = 0
        if self._rollouts == 1:
            self._k_seen = min(self._k, scenarios.n)
        return self._problem.initial_state(scenarios)

    def post_decision(self, state, action):
        post, cost = self._problem.post_decision(state, action)
        if self._recording():
            k = self._k_seen
            if self._t % self._stride == 0:
                self._states.append(
                    {
                        n: v[:k].detach().clone()
                        for n, v in state.items()
                        if v.dim() >= 1 and v[:1].numel() <= TRACE_WIDTH
                    }
                )
                self._actions.append(action[:k].detach().clone())
            self._pending_cost = cost[:k].detach().clone()
        return post, cost

    def transition(self, post_state, scenarios, t):
        state, cost = self._problem.transition(post_state, scenarios, t)
        if self._recording():
            self._costs.append((self._pending_cost + cost[: self._k_seen].detach()).double())
        self._t += 1
        return state, cost

    def trace(self) -> dict[str, Any]:
        """The recorded trace as JSON-able lists (see :func:`opsrl.bench.report.trace_figure`)."""
        if not self._costs:
            return {"note": "the evaluation made no rollout to trace"}
        k, T, stride = self._k_seen, len(self._costs), self._stride
        t_idx = list(range(0, T, stride))
        costs = torch.stack(self._costs, dim=1)
        pad = len(t_idx) * stride - T
        if pad:
            costs = torch.cat([costs, costs[:, -1:].expand(-1, pad)], dim=1)
        window = costs.reshape(k, len(t_idx), stride).mean(dim=2)
        p = self._problem
        warmup = p.test_warmup if p.test_warmup is not None else p.warmup
        out: dict[str, Any] = {
            "scenarios": k,
            "periods": T,
            "stride": stride,
            "t": t_idx,
            "warmup": 0 if p.metric == "total" else warmup,
            "cost": _compact(window[:, :, None]),
            "state": {},
            "skipped": [],
        }
        states = self._states[: len(t_idx)]
        for name in states[0] if states else ():
            if any(name not in s for s in states):
                continue
            series = torch.stack([s[name] for s in states], dim=1).reshape(k, len(states), -1)
            changes = series.dtype != torch.bool and bool((series != series[:, :1]).any())
            if changes and len(out["state"]) < TRACE_KEYS:
                out["state"][name] = _compact(series)
            else:
                out["skipped"].append(name)
        acts = self._actions[: len(t_idx)]
        if acts and acts[0][:1].numel() <= TRACE_WIDTH:
            out["action"] = _compact(torch.stack(acts, dim=1).reshape(k, len(acts), -1))
        return out


TRACE_BUDGET_SECONDS = 60.0


@torch.no_grad()
def policy_trace(problem: Problem, policy, test: Scenarios, eval_seconds: float = 0.0) -> dict[str, Any]:
    """The trace of ``policy`` from a rollout of its own on the first test scenarios.

    For solvers whose family evaluates the policy itself (so :class:`TraceRecorder` cannot ride along).
    Skipped when the test evaluation took more than ``TRACE_BUDGET_SECONDS`` (the rollout could cost
    as much again); a failing rollout is noted, never raised: the trace must not cost the run.
    """
    if eval_seconds > TRACE_BUDGET_SECONDS:
        return {"note": f"no trace: the test evaluation took {eval_seconds:.0f} s and a trace could take as long"}
    recorder = TraceRecorder(problem, test.periods)
    k = min(TRACE_SCENARIOS, test.n)
    was_training = getattr(policy, "training", None)
    if was_training:
        policy.eval()
    try:
        rollout(recorder, policy, test.select(slice(0, k)), periods=recorder._T)
    except Exception as e:
        return {"note": f"no trace: {type(e).__name__}: {e}"}
    finally:
        if was_training:
            policy.train()
    return recorder.trace()
