"""The Python entry points of opsrl: :func:`problem`, :func:`solver`, :func:`run`, :func:`compare`, :func:`results`.

A thin layer over :mod:`opsrl.registry` (problem and solver files, families) and :mod:`opsrl.bench` (one run,
sweeps, the results store): ``opsrl.run`` is ``opsrl run``, ``opsrl.compare`` is ``opsrl bench``, with the same
checks, the same cells and the same records. What the API adds is that a problem may be an object built in
Python with the user's own numbers (a :class:`~opsrl.inventory.SingleStore`, a
:class:`~opsrl.jobshop.JobShop` of the user's instances, a lot-sizing plant ...) or a table (a dict such as
a problem file holds), and a solver may be a :class:`~opsrl.core.Method` of the user's own. See ``docs/api.md``.

Bad input stops with one :class:`~opsrl.core.ConfigError` (a ``ValueError``) naming the argument or file, the
key and what is allowed, before anything is trained or written.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core import ConfigError, Method, Problem

__all__ = ["problem", "solver", "run", "compare", "results", "export", "Solver", "Result", "COLUMNS"]

PathLike = str | os.PathLike


# --- problems and solvers ------------------------------------------------------------------------
def _flatten(table: Mapping[str, Any], source: str, prefix: str = "") -> dict[str, Any]:
    """``{"test": {"scenarios": 8}}`` and ``{"test.scenarios": 8}`` both as ``{"test.scenarios": 8}``."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        if not isinstance(k, str) or not k or any(not part for part in k.split(".")):
            raise ConfigError(source, f"{prefix}{k}", "not a valid dotted key")
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, source, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def problem(spec: PathLike | Mapping[str, Any] | Problem, /, **overrides: Any) -> Problem:
    """The problem object of a bundled name (``"inventory/lost_sales_p9_L4"``), a problem file (TOML), or a
    table (a dict with ``family`` and the family's keys, as a problem file holds; relative file paths in it
    resolve against the working directory, in a file against the file's folder).

    ``overrides`` set keys before validation, as ``opsrl run --problem-set`` does: dotted keys through
    ``**{"test.scenarios": 64}``, or nested tables (``test={"scenarios": 64}`` sets only that key).
    A problem object is returned as it is (with overrides: built again from its file or table).
    """
    from .bench.runner import _from_flag
    from .registry import build_problem, load_for_solver, load_problem

    over = _flatten(overrides, "overrides")
    with _from_flag(over, "overrides"):
        if isinstance(spec, Problem):
            if not over:
                return spec
            if getattr(spec, "origin", None) is None:
                raise ConfigError(
                    "overrides",
                    next(iter(over)),
                    f"a {type(spec).__name__} built in Python takes no overrides; set the value when building it",
                )
            return load_for_solver(spec, {"problem": {}}, over)
        if isinstance(spec, Mapping):
            return build_problem(spec, "<dict>", over)
        if isinstance(spec, (str, os.PathLike)):
            return load_problem(os.fspath(spec), over)
    raise ConfigError(
        "problem",
        None,
        f"a {type(spec).__name__} is not allowed; a bundled name, a problem file, a table (dict) or a problem object",
    )


@dataclass(frozen=True)
class Solver:
    """A solver configuration: a solver file (or bundled name) with option overrides, checked.

    ``config`` is the validated configuration (``method``, ``policy``, ``options`` with every default filled
    in, ``problem``: keys it sets on the problems it runs on); ``families`` the problem families it applies
    to (``("*",)``: every family). Made by :func:`solver`; print it to see what it runs.
    """

    name: str
    path: str
    method: str
    config: Mapping[str, Any]
    overrides: Mapping[str, Any] = field(default_factory=dict)
    families: tuple[str, ...] = ()
    label: str | None = None

    def __repr__(self) -> str:
        over = f", overrides={dict(self.overrides)!r}" if self.overrides else ""
        lab = f", label={self.label!r}" if self.label else ""
        return f"Solver({self.name!r}, method={self.method!r}{over}{lab})"

    def __str__(self) -> str:
        lines = [f"solver {self.label or self.name}: method {self.method} ({self.path})"]
        if self.config.get("description"):
            lines.append(f"  {self.config['description']}")
        for key in ("policy", "options", "problem"):
            table = self.config.get(key) or {}
            if table:
                lines.append(f"  {key}: " + ", ".join(f"{k} = {v!r}" for k, v in table.items()))
        lines.append("  applies to: " + ("every family" if self.families == ("*",) else ", ".join(self.families)))
        return "\n".join(lines)


def _method_families(method: str) -> list[tuple[str, Method]]:
    """``(family, method)`` for each family whose problems ``method`` applies to (``"*"``: a generic method,
    every family). One name may be a method of several families, with options of its own in each (``cpsat``)."""
    from .registry import FAMILY_MODULES, family, generic_methods

    generic = generic_methods()
    if method in generic:
        return [("*", generic[method])]
    out = []
    for name in FAMILY_MODULES:
        try:
            fam = family(name)
        except ConfigError:  # a family not available in this version
            continue
        if method in fam.methods:
            out.append((name, fam.methods[method]))
    return out


def solver(spec: PathLike | Solver, /, *, label: str | None = None, **options: Any) -> Solver:
    """A solver configuration from a bundled name (``"hdpo_mlp"``, ``"cpsat"``) or a solver file (TOML).

    ``options`` set keys before validation, as ``opsrl run --set`` does: a key of the ``[options]`` table
    (``max_steps=200``), or ``policy``/``options``/``problem`` tables (nested dicts, or dotted keys through
    ``**{"policy.hidden": [32, 32]}``). ``label`` names the solver in results (default: its name); give two
    configurations of one solver different labels to compare them. A :class:`Solver` is returned with the new
    options and label applied.
    """
    from .bench.runner import _from_flag, method_config
    from .core import load_toml, validate
    from .core.config import set_dotted
    from .registry import SOLVER_SCHEMA, _bundled_name, resolve, solver_table

    if isinstance(spec, Solver):
        return solver(spec.path, label=label or spec.label, **{**spec.overrides, **_flatten(options, "options")})
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(
            "solver", None, f"a {type(spec).__name__} is not allowed; a bundled name, a solver file or a Solver"
        )
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise ConfigError("label", None, f"{label!r} is not allowed; a non-empty string")
    over = _flatten(options, "options")
    path = resolve("solvers", os.fspath(spec))
    source = str(path)
    raw = load_toml(path)
    with _from_flag(over, "options"):
        for k, v in over.items():
            top = k.split(".")[0]
            set_dotted(raw, k if top in SOLVER_SCHEMA else f"options.{k}", v)
        cfg = validate(solver_table(raw), SOLVER_SCHEMA, source)
        candidates = _method_families(cfg["method"])
        if not candidates:
            raise ConfigError(
                source, "method", f"{cfg['method']!r} is not a method of opsrl; `opsrl list` shows the methods"
            )
        fits, first_error = [], None
        for fam_name, method in candidates:  # the options must be those of the method in at least one family
            try:
                fits.append((fam_name, method_config(method, cfg["options"])["options"]))
            except ConfigError as e:
                first_error = first_error or e
        if not fits:
            raise ConfigError(source, first_error.key, first_error.message)
    cfg["options"] = fits[0][1]
    families = tuple(f for f, _ in fits)
    if cfg["family"]:  # the families the file is written for, of those its method applies to
        written = tuple(f for f in cfg["family"] if families == ("*",) or f in families)
        if not written:
            raise ConfigError(
                source,
                "family",
                f"{cfg['method']!r} applies to {', '.join(families)} problems, not to those of "
                f"{', '.join(cfg['family'])}",
            )
        families = written
        cfg["options"] = next(o for f, o in fits if f in ("*", families[0]))  # that family's options
    cfg["source"] = source
    name = _bundled_name("solvers", path) or path.stem
    return Solver(name, source, cfg["method"], cfg, over, families, label)


_make_solver = solver  # (``run`` and ``compare`` take an argument named ``solver``)


# --- one run -------------------------------------------------------------------------------------
class Result:
    """One finished run: the record's fields as attributes (``test_cost``, ``test_stderr``, ``gap_pct``,
    ``reference``, ``train_seconds``, ``solver`` and ``problem`` (their names), ``cell`` ..., see
    :meth:`to_dict`), the fitted ``policy`` (callable on states of the problem: ``policy(state, t) -> action``;
    use it with :func:`opsrl.core.evaluate` on scenarios of your own), ``problem_object`` (the problem it ran
    on, as the solver configured it) and the method's ``outcome``. Solvers that solve each test scenario
    themselves (CP-SAT, hindsight bounds) hand back no policy: ``policy`` is None.
    """

    def __init__(self, record: dict[str, Any], outcome: Any, problem: Problem, family: Any):
        self.record = record
        self.outcome = outcome
        self.policy = getattr(outcome, "policy", None)
        self.problem_object = problem
        self._family = family

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("record", "outcome", "policy", "problem_object"):
            raise AttributeError(name)
        try:
            return self.record[name]
        except KeyError:
            raise AttributeError(
                f"a Result has no field {name!r}; fields: {', '.join(sorted(self.record))}, policy, "
                "problem_object, outcome"
            ) from None

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.record))

    def __repr__(self) -> str:
        def finite(x):
            return isinstance(x, (int, float)) and math.isfinite(x)

        gap, err = self.record.get("gap_pct"), self.record.get("test_stderr")
        gap_txt = f", gap {gap:.2f}%" if finite(gap) else ""
        err_txt = f" ± {err:.2g}" if finite(err) else ""
        return (
            f"Result({self.record['solver']} on {self.record['problem']}, seed {self.record['seed']}: "
            f"test cost {self.record['test_cost']:.6g}{err_txt}{gap_txt})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The run's record (a JSON-able dict), exactly as the results store keeps it."""
        return copy.deepcopy(self.record)

    def plot(self):
        """The family's picture of this run (a matplotlib Figure: a Gantt chart, a dispatch, a plan ...)."""
        picture = getattr(self._family, "picture", None)
        if picture is None:
            from .registry import FAMILY_MODULES, family

            having = []
            for name in FAMILY_MODULES:
                with contextlib.suppress(ConfigError):
                    if family(name).picture is not None:
                        having.append(name)
            raise ValueError(
                f"{self.record['family']} problems have no picture; families with one: {', '.join(having)}"
            )
        return picture(self.problem_object, self.record)


def _check_seed(seed: Any, source: str = "seed") -> int:
    from .bench.runner import check_seed

    return check_seed(seed, source)


def _solver_arg(spec: Any, source: str = "solver") -> tuple[Any, dict[str, Any] | None, str | None]:
    """``(what prepare takes, solver overrides, label)`` of a solver argument."""
    if isinstance(spec, Solver):
        return spec.path, dict(spec.overrides) or None, spec.label
    if isinstance(spec, Method):
        return spec, None, None
    if isinstance(spec, (str, os.PathLike)):
        return os.fspath(spec), None, None
    raise ConfigError(
        source,
        None,
        f"a {type(spec).__name__} is not allowed; a bundled name, a solver file, a Solver (opsrl.solver) or a Method",
    )


def _problem_arg(spec: Any, source: str = "problem") -> Any:
    if isinstance(spec, (Problem, Mapping)):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        return os.fspath(spec)
    raise ConfigError(
        source,
        None,
        f"a {type(spec).__name__} is not allowed; a bundled name, a problem file, a table (dict) or a problem object",
    )


def _store(store: PathLike | None, argument: str = "store", *, write: bool = True, lock_timeout: float = 10.0):
    """The results store at ``store`` (checked: created or migrated and writable, or an existing store to read),
    or None; a file that is not a results store is one :class:`ConfigError` naming the argument."""
    if store is None:
        return None
    from .bench.store import ResultsStore, StoreError

    if not isinstance(store, (str, os.PathLike)):
        raise ConfigError(argument, None, f"a {type(store).__name__} is not allowed; a path to a results store")
    st = ResultsStore(os.fspath(store), timeout=lock_timeout)
    allowed = "an opsrl results store (the SQLite file opsrl run, opsrl bench or opsrl.run(store=...) write)"
    try:
        if write:
            st.check_writable()
        else:
            if not st.path.exists():
                raise ConfigError(argument, None, f"{st.path}: no results store there; allowed: {allowed}")
            st.count()
    except StoreError as e:
        raise ConfigError(argument, None, f"{e}; allowed: {allowed}") from None
    return st


def run(
    problem: PathLike | Mapping[str, Any] | Problem,
    solver: PathLike | Solver | Method,
    seed: int = 0,
    device: str = "cpu",
    store: PathLike | None = None,
    *,
    label: str | None = None,
    progress: bool = False,
    trace: bool = True,
    **options: Any,
) -> Result:
    """Run ``solver`` on ``problem``: fit (timed as training), evaluate on the problem's test scenarios, and
    with ``store`` record the run there exactly as ``opsrl run`` does. Returns a :class:`Result`.

    ``problem``: a bundled name, a problem file, a table (dict) or a problem object (from :func:`problem`
    or built in Python). ``solver``: a bundled name, a solver file, a :class:`Solver` (from :func:`solver`)
    or a :class:`~opsrl.core.Method` of your own (``fit(problem, options, config, ctx) -> SolveOutcome``;
    its name labels the run). ``label`` names the solver in the record (default: its name). Other keywords
    are the solver's options, as :func:`solver` takes them (``opsrl.run(p, "hdpo_mlp", max_steps=200)``).
    """
    from .bench.runner import check_device, execute_outcome, prepare
    from .bench.store import deferred_interrupt

    _check_seed(seed)
    check_device(device, "device")
    if options and isinstance(solver, Method):
        from .bench.runner import _from_flag, method_config

        s_arg, s_over, s_label = solver, _flatten(options, "options"), None
        with _from_flag(s_over, "options"):
            method_config(solver, s_over)  # a bad option is named as the caller's, before anything runs
    else:
        s_arg, s_over, s_label = _solver_arg(_make_solver(solver, **options) if options else solver)
    prep = prepare(
        _problem_arg(problem), s_arg, seed=seed, device=device, solver_overrides=s_over, label=label or s_label
    )
    st = _store(store)  # a foreign, damaged, locked or newer store stops the run before training
    rec, outcome = execute_outcome(prep, progress=progress, trace=trace)
    if st is not None:
        with deferred_interrupt():
            rec["run_id"], _, _ = st.record(rec)
            rec["store"] = str(st.path)
    return Result(rec, outcome, prep.problem, prep.family)


# --- many runs -----------------------------------------------------------------------------------
def _as_list(x: Any) -> list:
    if isinstance(x, (str, os.PathLike, Mapping, Problem, Solver, Method)):
        return [x]
    return list(x)


def _seeds(seeds: int | Iterable[int]) -> list[int]:
    from .bench.sweep import MAX_SEEDS

    if isinstance(seeds, bool):
        raise ConfigError("seeds", None, f"{seeds!r} is not allowed; a count from 1 to {MAX_SEEDS} or a list of seeds")
    if isinstance(seeds, int):
        if not 0 < seeds <= MAX_SEEDS:
            raise ConfigError("seeds", None, f"{seeds!r} is not allowed; a count from 1 to {MAX_SEEDS} or a list")
        return list(range(seeds))
    out = list(seeds)
    if not out or len(out) > MAX_SEEDS or len(set(out)) != len(out):
        raise ConfigError("seeds", None, f"{out!r} is not allowed; 1 to {MAX_SEEDS} distinct seeds, or a count")
    for s in out:
        _check_seed(s, "seeds")
    return out


def compare(
    problems: Any,
    solvers: Any,
    seeds: int | Iterable[int] = 1,
    store: PathLike | None = None,
    executor: str = "local",
    *,
    device: str = "cpu",
    address: str | None = None,
    retries: int = 2,
    progress: bool = False,
):
    """Run every solver on every problem for every seed, as ``opsrl bench`` does, and return a pandas
    DataFrame with one row per run (columns :data:`COLUMNS`).

    ``problems`` and ``solvers`` are one or a list of what :func:`run` takes; ``seeds`` a count (``3``: seeds
    0, 1, 2) or a list. The cells are those of ``opsrl bench`` (problem, solver label, seed, config hash):
    with ``store`` every finished run is recorded there at once, and cells already recorded are not run again
    (a second call resumes); without, the runs go to a temporary store. A solver whose method does not apply
    to a problem's family, or whose file is written for other families, is left out of that problem, with a
    warning (so is a run whose method refuses the problem when fitting, such as ``optimal_dp`` on a backlog
    store). ``executor`` is ``"local"`` or ``"ray"``
    (``address``: a running Ray cluster; default: start a local one). A cell that fails raises a
    ``RuntimeError`` naming it, after the others have run (and are recorded in ``store``).
    """
    from .bench.cells import cell_id
    from .bench.runner import check_device, prepare
    from .bench.sweep import MAX_CELLS, Cell, Sweep, run_sweep
    from .bench.sweep import executor as make_executor
    from .registry import bundled, resolve

    pd = _pandas("opsrl.compare")
    check_device(device, "device", here=executor != "ray")
    if not isinstance(executor, str):
        raise ConfigError("executor", None, f"{executor!r} is not allowed; allowed: local, ray")
    if executor not in ("local", "ray"):
        raise ConfigError("executor", None, f"{executor!r} is not allowed; allowed: local, ray")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError(
                "executor", None, "'ray' needs Ray: pip install 'opsrl[ray]' (or 'ray[default]'); or use 'local'"
            ) from None
    if address is not None and executor != "ray":
        raise ConfigError("address", None, "only the ray executor takes an address")
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise ConfigError("retries", None, f"{retries!r} is not allowed; an integer from 0 to 100")
    p_list, s_list, seed_list = _as_list(problems), _as_list(solvers), _seeds(seeds)
    if not p_list:
        raise ConfigError("problems", None, "empty; give at least one problem")
    if not s_list:
        raise ConfigError("solvers", None, "empty; give at least one solver")
    if len(p_list) * len(s_list) * len(seed_list) > MAX_CELLS:
        raise ConfigError("seeds", None, f"more than {MAX_CELLS} runs; compare fewer problems, solvers or seeds")
    cells, skipped, names, labels = [], [], {}, {}
    for i, p in enumerate(p_list):
        p_arg = _problem_arg(p, f"problems[{i}]")
        if isinstance(p_arg, str):  # a name a worker resolves: a bundled name as is, a file as an absolute path
            path = resolve("problems", p_arg)
            p_arg = p_arg if p_arg in bundled("problems") and not Path(p_arg).is_file() else str(path.resolve())
        p_name = None
        for j, s in enumerate(s_list):
            s_arg, s_over, s_label = _solver_arg(s, f"solvers[{j}]")
            try:  # checked once per problem and solver; a seed changes only the cell's identity
                prep = prepare(p_arg, s_arg, seed=seed_list[0], device="cpu", solver_overrides=s_over, label=s_label)
            except ConfigError as e:
                if e.key in ("method", "family"):  # the solver does not fit this problem's family
                    skipped.append((f"problems[{i}]", f"solvers[{j}]", e.message))
                    continue
                raise
            for seed in seed_list:
                cid = cell_id(
                    prep.problem,
                    prep.solver_name,
                    prep.config,
                    seed,
                    label=s_label,
                    problem_overrides=prep.problem_overrides,
                    solver_overrides=prep.solver_overrides,
                )
                if p_name is None:
                    p_name = prep.problem.name
                    if p_name in names:
                        raise ConfigError(
                            f"problems[{i}]",
                            None,
                            f"problem {p_name!r} is already compared ({names[p_name]}); give each problem its own "
                            "name (a table's 'name' key, or problem.name = ...)",
                        )
                    names[p_name] = f"problems[{i}]"
                lab = cid.solver
                if labels.setdefault(lab, j) != j:
                    raise ConfigError(
                        f"solvers[{j}]",
                        None,
                        f"solver {lab!r} is already compared (solvers[{labels[lab]}]); give each configuration "
                        "its own label (opsrl.solver(..., label=...), or another Method name)",
                    )
                over = dict(prep.problem_overrides or {}) if isinstance(p_arg, str) else {}
                gpus = 1.0 if str(device).startswith("cuda") else 0.0
                cell_problem = _pristine(p_arg)
                cells.append(Cell(cell_problem, s_arg, seed, device, s_label, over, dict(s_over or {}), cid, 1.0, gpus))
    for where_p, where_s, why in skipped:
        warnings.warn(f"{where_s} left out of {where_p}: {why}", stacklevel=2)
    if not cells:
        raise ConfigError("solvers", None, "no solver applies to any problem: " + "; ".join(w for *_, w in skipped[:3]))
    sweep = Sweep(None, "opsrl.compare", "", seed_list, cells, [], retries, list(names), list(labels))
    ex = make_executor(executor, address, retries)
    with contextlib.ExitStack() as stack:
        if store is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="opsrl-compare-"))
            st = _store(Path(folder) / "runs.sqlite")
        else:
            st = _store(store)
        res = run_sweep(sweep, st, ex, progress=progress, log=lambda m: None)
        for key, why in res.not_applicable:  # the method refused the problem when fitting (no row for it)
            warnings.warn(f"{key} not applicable: {why}", stacklevel=2)
        if res.failed:
            where = f"; the others are recorded in {st.path}" if store is not None else ""
            raise RuntimeError(
                f"{len(res.failed)} of {len(cells)} runs failed{where}: "
                + "; ".join(f"{key}: {msg}" for key, msg in res.failed[:5])
            )
        keys = {c.key for c in cells}
        latest: dict[str, dict[str, Any]] = {}
        for rec in st.records():
            key = (rec.get("cell") or {}).get("key")
            if key in keys:
                latest[key] = rec
        rows = [_row(latest[c.key]) for c in cells if c.key in latest]
    return pd.DataFrame(rows, columns=COLUMNS)


def _pristine(problem: Any) -> Any:
    """A copy of a problem object built in Python for one cell, as it is before any run: its cell is a digest of
    its attributes, which a method's fit must not be able to change for the cells after it."""
    if not isinstance(problem, Problem) or getattr(problem, "origin", None) is not None:
        return problem  # names, tables and registry-built problems are built afresh by each cell
    try:
        return copy.deepcopy(problem)
    except Exception:  # an object that cannot be copied runs as it is
        return problem


# --- reading the store ---------------------------------------------------------------------------
COLUMNS = (
    "run_id",
    "created",
    "sweep",
    "family",
    "problem",
    "solver",
    "method",
    "seed",
    "metric",
    "test_cost",
    "test_stderr",
    "test_scenarios",
    "reference_kind",
    "reference_value",
    "gap_pct",
    "gap_stderr_pct",
    "train_seconds",
    "eval_seconds",
    "reproducible",
    "device",
    "executor",
    "host",
    "config_hash",
    "cell_key",
)
"""The columns of :func:`results`, :func:`compare` and ``opsrl export``: one row per run."""


def _row(rec: Mapping[str, Any]) -> dict[str, Any]:
    test = rec.get("test") or {}
    ref = rec.get("reference") or {}
    cell = rec.get("cell") or {}

    def num(x):
        return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else math.nan

    return {
        "run_id": rec.get("id", rec.get("run_id")),
        "created": rec.get("created"),
        "sweep": rec.get("sweep"),
        "family": rec.get("family"),
        "problem": rec.get("problem"),
        "solver": rec.get("solver"),
        "method": rec.get("method"),
        "seed": rec.get("seed"),
        "metric": test.get("metric"),
        "test_cost": num(rec.get("test_cost")),
        "test_stderr": num(rec.get("test_stderr")),
        "test_scenarios": test.get("n"),
        "reference_kind": ref.get("kind"),
        "reference_value": num(ref.get("value")),
        "gap_pct": num(rec.get("gap_pct")),
        "gap_stderr_pct": num(rec.get("gap_stderr_pct")),
        "train_seconds": num(rec.get("train_seconds")),
        "eval_seconds": num(rec.get("eval_seconds")),
        "reproducible": rec.get("reproducible"),
        "device": rec.get("device"),
        "executor": rec.get("executor"),
        "host": rec.get("host"),
        "config_hash": cell.get("config_hash"),
        "cell_key": cell.get("key"),
    }


def _pandas(what: str):
    try:
        import pandas as pd
    except ImportError:
        raise ConfigError(
            what, None, "returns a pandas DataFrame and needs pandas: pip install pandas (or 'opsrl[parquet]')"
        ) from None
    return pd


def _names(x: str | Sequence[str] | None, argument: str) -> list[str] | None:
    if x is None:
        return None
    out = [x] if isinstance(x, str) else list(x)
    if not out or not all(isinstance(v, str) and v for v in out):
        raise ConfigError(argument, None, f"{x!r} is not allowed; a name or a list of names")
    return out


def results(
    store: PathLike,
    problem: str | Sequence[str] | None = None,
    solver: str | Sequence[str] | None = None,
    *,
    _argument: str = "store",
):
    """The runs of a results store as a pandas DataFrame, one row per run, oldest first (columns
    :data:`COLUMNS`); ``problem`` and ``solver`` keep only the runs of these names (one or a list).
    The store is only read, never changed."""
    pd = _pandas("opsrl.results")
    probs, solvs = _names(problem, "problem"), _names(solver, "solver")
    st = _store(store, _argument, write=False)
    from .bench.store import StoreError

    try:
        recs = list(st.records())
    except StoreError as e:
        raise ConfigError(_argument, None, str(e)) from None
    rows = [
        _row(r)
        for r in recs
        if (probs is None or r.get("problem") in probs) and (solvs is None or r.get("solver") in solvs)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


EXPORT_FORMATS = {".csv": "CSV", ".parquet": "Parquet"}


def export(
    store: PathLike,
    out: PathLike,
    *,
    force: bool = False,
    problem: str | Sequence[str] | None = None,
    solver: str | Sequence[str] | None = None,
    _arguments: tuple[str, str, str] = ("store", "out", "force"),
) -> int:
    """Write the runs of ``store`` (as :func:`results`) to ``out``: a ``.csv`` or ``.parquet`` file (Parquet
    needs pyarrow). An existing ``out`` is refused unless ``force``; nothing is written on any error, and the
    file appears whole (written beside it, then renamed). Returns the number of runs written."""
    a_store, a_out, a_force = _arguments
    if not isinstance(out, (str, os.PathLike)):
        raise ConfigError(a_out, None, f"a {type(out).__name__} is not allowed; a path ending in .csv or .parquet")
    path = Path(os.fspath(out))
    fmt = EXPORT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(a_out, None, f"{str(path)!r}: allowed: a path ending in .csv or .parquet")
    if path.is_dir():
        raise ConfigError(a_out, None, f"{path} is a folder; allowed: a file path ending in {path.suffix}")
    if path.exists() and not force:
        raise ConfigError(a_out, None, f"{path} exists; allowed: a new path, or {a_force} to replace it")
    if not path.parent.is_dir():
        raise ConfigError(a_out, None, f"{path.parent} is not a folder; allowed: a file in an existing folder")
    if fmt == "Parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError(
                a_out, None, "writing Parquet needs pyarrow: pip install pyarrow (or 'opsrl[parquet]'); or write .csv"
            ) from None
    frame = results(store, problem, solver, _argument=a_store)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if fmt == "CSV":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return len(frame)
