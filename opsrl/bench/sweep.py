"""Benchmark sweeps: problems x solvers x seeds, run cell by cell into the results store.

A sweep file (TOML) names the problems, the solvers and the seeds::

    description = "lost-sales heuristics against the DP optimum"
    problems = ["inventory/lost_sales_p4_L1", {name = "inventory/lost_sales_p9_L2", set = {"test.scenarios" = 2048}}]
    solvers = ["base_stock", "optimal_dp", {name = "hdpo_mlp", label = "hdpo_small", set = {max_steps = 500}}]
    seeds = [0, 1, 2]            # or a count: seeds = 3 means 0, 1, 2
    device = "cpu"               # torch device of every cell
    retries = 2                  # Ray: re-runs of a cell whose worker died

    [problem_set]                # overrides for every problem (dotted keys or nested tables)
    "test.scenarios" = 4096

    [solver_set]                 # overrides for every solver
    threads = 1

A solver entry may also declare ``num_cpus`` and ``num_gpus`` (resources of its cells on Ray; by
default 1 CPU, plus 1 GPU when the device is CUDA) and its own ``device``.

Every cell of a problem is evaluated on that problem's test scenarios (fixed by the problem's test
seed), so every solver and seed faces the same randomness. A cell is identified by its problem,
solver label, seed and config hash (:mod:`opsrl.bench.cells`); cells already in the store are
skipped, so running a sweep again resumes it. Each finished cell is written at once, by this process
only, in one transaction, at most once.

A solver whose method does not apply to a problem's family (``optimal_dp`` on a job shop) is left
out of that problem, and said so; so is a cell whose method refuses its problem when fitting (it raises
:class:`~opsrl.core.ConfigError` on the key ``method``, e.g. ``optimal_dp`` on a backlog problem):
such cells are reported as not applicable, not as failures, and nothing is recorded for them. Every
other bad name or key stops the sweep before anything runs.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import socket
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import ConfigError, Field, load_toml, validate
from ..core.config import non_negative
from ..registry import bundled, family, load_problem, methods_for, resolve
from .cells import CellId, cell_id
from .store import ResultsStore, deferred_interrupt

ENTRY_PROBLEM = {
    "name": Field(str, allowed="a problem file or bundled name"),
    "set": Field(dict, {}, allowed="a table of problem overrides"),
}

ENTRY_SOLVER = {
    "name": Field(str, allowed="a solver file or bundled name"),
    "label": Field(str, "", allowed="the solver's name in results (default: its file's name)"),
    "set": Field(dict, {}, allowed="a table of solver overrides"),
    "device": Field(str, "", allowed="a torch device (default: the sweep's)"),
    "num_cpus": Field(float, 1.0, allowed="CPUs per cell, a number from 0 to 1024", check=non_negative, max=1024),
    "num_gpus": Field(
        float,
        -1.0,
        allowed="GPUs per cell, a number from 0 to 64 (default: 1 on CUDA, else 0)",
        check=lambda v: v >= 0 or v == -1.0,
        max=64,
    ),
}

MAX_SEEDS = 10_000  # seeds of one sweep
MAX_CELLS = 100_000  # cells of one sweep (problems x solvers x seeds), counted before they are built

SWEEP_SCHEMA = {
    "description": Field(str, ""),
    "problems": Field(list, [], allowed="a list of problem names or tables {name, set}"),
    "solvers": Field(list, [], allowed="a list of solver names or tables {name, label, set, num_cpus, num_gpus}"),
    "seeds": Field(
        list,
        [0],
        item=int,
        allowed="a list of seeds >= 0 or a count",
        check=lambda v: len(v) > 0 and all(s >= 0 for s in v) and len(set(v)) == len(v),
    ),
    "device": Field(str, "cpu", allowed="a torch device such as cpu or cuda"),
    "retries": Field(int, 2, allowed="an integer >= 0", check=non_negative),
    "problem_set": Field(dict, {}, allowed="a table of overrides for every problem"),
    "solver_set": Field(dict, {}, allowed="a table of overrides for every solver"),
}


@dataclass
class Cell:
    """One run of a sweep: what the worker needs (plain data, picklable) and its identity."""

    problem: str  # file path (absolute) or bundled name
    solver: str
    seed: int
    device: str
    label: str | None
    problem_overrides: dict[str, Any]
    solver_overrides: dict[str, Any]
    id: CellId
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    sweep: str | None = None

    @property
    def key(self) -> str:
        return self.id.key

    def payload(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "solver": self.solver,
            "seed": self.seed,
            "device": self.device,
            "label": self.label,
            "problem_overrides": self.problem_overrides,
            "solver_overrides": self.solver_overrides,
            "key": self.key,
            "sweep": self.sweep,
            "num_cpus": self.num_cpus,
        }


@dataclass
class Sweep:
    name: str | None
    source: str
    description: str
    seeds: list[int]
    cells: list[Cell]
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (problem, solver, why)
    retries: int = 2
    problems: list[str] = field(default_factory=list)
    solvers: list[str] = field(default_factory=list)


# --- sweep files ---------------------------------------------------------------------------------
def bundled_sweeps() -> dict[str, Path]:
    return bundled("sweeps")


def resolve_sweep(name: str | Path) -> Path:
    path = Path(name)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise ConfigError(path, None, "sweep file not found")
        return path
    names = bundled_sweeps()
    if str(name) in names:
        return names[str(name)]
    close = difflib.get_close_matches(str(name), names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `opsrl bench --list` shows the bundled sweeps"
    raise ConfigError(name, None, f"no such sweep file or bundled sweep{hint}")


def _flatten(table: Mapping[str, Any], source: str, key: str, prefix: str = "") -> dict[str, Any]:
    """``{"test": {"scenarios": 8}}`` and ``{"test.scenarios": 8}`` both give ``{"test.scenarios": 8}``."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        if not isinstance(k, str) or not k or any(not part for part in k.split(".")):
            raise ConfigError(source, f"{key}.{k}", "not a valid dotted key")
        if isinstance(v, dict) and v:
            out.update(_flatten(v, source, key, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _entries(items: list, schema: Mapping[str, Field], source: str, key: str) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise ConfigError(source, where, f"expected a name or a table with a 'name', got {item!r}")
        entry = validate(item, schema, source, prefix=where + ".")
        entry["set"] = _flatten(entry["set"], source, where + ".set")
        entry["where"] = where
        out.append(entry)
    return out


def _ref(kind: str, name: str, source: str, where: str) -> str:
    """A name a worker can resolve: a bundled name as is, a file as an absolute path."""
    try:
        path = resolve(kind, name)
    except ConfigError as e:
        raise ConfigError(source, where, f"{name!r}: {e.message}") from None
    return name if name in bundled(kind) and not Path(name).is_file() else str(path.resolve())


def load_sweep(
    name: str | Path | None = None,
    *,
    problems: Sequence[str] | None = None,
    solvers: Sequence[str] | None = None,
    seeds: Sequence[int] | int | None = None,
    problem_set: Mapping[str, Any] | None = None,
    solver_set: Mapping[str, Any] | None = None,
    device: str | None = None,
) -> Sweep:
    """Read a sweep file (or none) and the command line's additions; build and check every cell.

    ``problems``, ``solvers`` and ``seeds`` replace the file's; ``problem_set`` and ``solver_set``
    are applied last, on top of the file's global and per-entry overrides. Every problem and solver is loaded and
    validated here, so a
    bad name or key stops the sweep before it runs anything.
    """
    if name is not None:
        path = resolve_sweep(name)
        source = str(path)
        raw = load_toml(path)
        names = bundled_sweeps()
        sweep_name = next((n for n, p in names.items() if p.resolve() == path.resolve()), path.stem)
    else:
        source, raw, sweep_name = "<command line>", {}, None
    if isinstance(raw.get("seeds"), int) and not isinstance(raw.get("seeds"), bool):
        if not 0 < raw["seeds"] <= MAX_SEEDS:
            raise ConfigError(
                source,
                "seeds",
                f"{raw['seeds']!r} is not allowed; expected a positive count of at most {MAX_SEEDS} or a list",
            )
        raw["seeds"] = list(range(raw["seeds"]))
    if isinstance(raw.get("seeds"), list) and len(raw["seeds"]) > MAX_SEEDS:
        raise ConfigError(source, "seeds", f"{len(raw['seeds'])} seeds are too many; at most {MAX_SEEDS}")
    cfg = validate(raw, SWEEP_SCHEMA, source)
    p_key, s_key = "problems", "solvers"
    if problems:
        cfg["problems"], p_key = list(problems), "--problem"
    if solvers:
        cfg["solvers"], s_key = list(solvers), "--solver"
    if seeds is not None:
        if isinstance(seeds, int) and not 0 < seeds <= MAX_SEEDS:
            raise ConfigError("--seeds", None, f"{seeds!r} is not allowed; expected a count from 1 to {MAX_SEEDS}")
        seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
        if len(seeds) > MAX_SEEDS:
            raise ConfigError("--seeds", None, f"{len(seeds)} seeds are too many; at most {MAX_SEEDS}")
        if not seeds or any(s < 0 or s >= 2**63 for s in seeds) or len(set(seeds)) != len(seeds):
            raise ConfigError(
                "--seeds", None, f"{seeds!r} is not allowed; expected distinct seeds from 0 to 2**63 - 1, or a count"
            )
        cfg["seeds"] = seeds
    if device:
        cfg["device"] = device
    from .runner import check_device, prepare

    check_device(cfg["device"], "--device" if device else source, None if device else "device", here=False)
    p_source = source if p_key == "problems" else "<command line>"
    s_source = source if s_key == "solvers" else "<command line>"
    if not cfg["problems"]:
        raise ConfigError(
            source, "problems", "missing or empty; name at least one problem (in the file or with --problem)"
        )
    if not cfg["solvers"]:
        raise ConfigError(
            source, "solvers", "missing or empty; name at least one solver (in the file or with --solver)"
        )
    n_cells = len(cfg["problems"]) * len(cfg["solvers"]) * len(cfg["seeds"])
    if n_cells > MAX_CELLS:
        raise ConfigError(
            source,
            "seeds",
            f"{len(cfg['problems'])} problems x {len(cfg['solvers'])} solvers x "
            f"{len(cfg['seeds'])} seeds = {n_cells} cells are too many; at most {MAX_CELLS} per sweep",
        )
    p_entries = _entries(cfg["problems"], ENTRY_PROBLEM, p_source, p_key)
    s_entries = _entries(cfg["solvers"], ENTRY_SOLVER, s_source, s_key)
    for e in s_entries:
        if e["device"]:
            check_device(e["device"], s_source, f"{e['where']}.device", here=False)
    g_problem = _flatten(cfg["problem_set"], source, "problem_set")
    g_solver = _flatten(cfg["solver_set"], source, "solver_set")

    for e in s_entries:
        e["ref"] = _ref("solvers", e["name"], s_source, e["where"])
        e["label"] = e["label"] or None
    seen: dict[str, str] = {}
    for e in s_entries:
        label = e["label"] or _solver_display_name(e["ref"])
        if label in seen:
            raise ConfigError(
                s_source,
                e["where"],
                f"solver {label!r} is already in the sweep ({seen[label]}); give each configuration its own label",
            )
        seen[label] = e["where"]

    cells: list[Cell] = []
    skipped: list[tuple[str, str, str]] = []
    seen_problems: dict[str, str] = {}
    problem_names: list[str] = []
    for pe in p_entries:
        pref = _ref("problems", pe["name"], p_source, pe["where"])
        p_over = {**g_problem, **pe["set"], **dict(problem_set or {})}
        with _context(p_source, pe["where"]):
            prob = load_problem(pref, p_over)
        if prob.name in seen_problems:
            raise ConfigError(
                p_source,
                pe["where"],
                f"problem {prob.name!r} is already in the sweep "
                f"({seen_problems[prob.name]}); a sweep runs each problem once",
            )
        seen_problems[prob.name] = pe["where"]
        problem_names.append(prob.name)
        fam = family(prob.family, prob.source)
        allowed = methods_for(fam)
        for se in s_entries:
            s_over = {**g_solver, **se["set"], **dict(solver_set or {})}
            raw = load_toml(resolve("solvers", se["ref"]))
            method = s_over.get("method", raw.get("method"))
            written_for = s_over.get("family", raw.get("family", []))  # the families the solver file is written for
            written_for = [written_for] if isinstance(written_for, str) else written_for
            why = None
            if isinstance(method, str) and method not in allowed:
                why = f"method {method!r} does not apply to {fam.name} problems"
            elif isinstance(written_for, list) and written_for and fam.name not in written_for:
                why = f"the solver is written for {' and '.join(map(str, written_for))} problems"
            if why is not None:
                skipped.append((prob.name, se["label"] or _solver_display_name(se["ref"]), why))
                continue
            dev = se["device"] or cfg["device"]
            # the checks of `opsrl run` (prepare: the solver's own problem keys, sizes, the test set's memory) for
            # every cell before the first one runs; a device of another machine (Ray) is checked by name above
            # and the memory estimate is then made for the CPU, where the scenarios are drawn
            here = dev if dev.split(":")[0] == "cpu" else "cpu"
            with _context(s_source, se["where"]), _context(p_source, pe["where"]):
                prep = prepare(
                    pref,
                    se["ref"],
                    seed=cfg["seeds"][0],
                    device=here,
                    solver_overrides=s_over,
                    problem_overrides=p_over,
                    label=se["label"],
                )
            gpus = se["num_gpus"] if se["num_gpus"] >= 0 else (1.0 if dev.startswith("cuda") else 0.0)
            for seed in cfg["seeds"]:
                cid = cell_id(
                    prep.problem,
                    prep.solver_name,
                    prep.config,
                    seed,
                    label=se["label"],
                    problem_overrides=p_over,
                    solver_overrides=s_over,
                )
                cells.append(
                    Cell(pref, se["ref"], seed, dev, se["label"], p_over, s_over, cid, se["num_cpus"], gpus, sweep_name)
                )
    if not cells:
        raise ConfigError(
            source,
            "solvers",
            "no solver applies to any problem of this sweep: "
            + "; ".join(f"{p}/{s}: {why}" for p, s, why in skipped[:3]),
        )
    return Sweep(
        sweep_name, source, cfg["description"], cfg["seeds"], cells, skipped, cfg["retries"], problem_names, list(seen)
    )


@contextlib.contextmanager
def _context(source: str, where: str):
    """Say which sweep entry a problem's or solver's own error comes from."""
    try:
        yield
    except ConfigError as e:
        if e.source == source:
            raise
        raise ConfigError(e.source, e.key, f"{e.message} (from {source}, {where})") from None


def _solver_display_name(ref: str) -> str:
    path = Path(ref)
    if path.is_absolute():
        for n, p in bundled("solvers").items():
            if p.resolve() == path.resolve():
                return n
        return path.stem
    return ref


# --- executors -----------------------------------------------------------------------------------
def run_cell(
    payload: Mapping[str, Any], progress: bool = False, log: Callable[[str], None] = lambda m: None
) -> dict[str, Any]:
    """Run one cell (in this process or on a Ray worker) and return its record; writes nothing.

    ``log`` receives the method's progress messages (HDPO: one per evaluation on dev).
    """
    import torch

    from .runner import run

    threads = torch.get_num_threads()
    # the cell's declared CPUs (Ray also sets OMP_NUM_THREADS), at most this machine's
    if payload.get("num_cpus", 0) >= 1:
        torch.set_num_threads(min(int(payload["num_cpus"]), os.cpu_count() or 1))
    try:
        rec = run(
            payload["problem"],
            payload["solver"],
            seed=payload["seed"],
            device=payload["device"],
            solver_overrides=payload["solver_overrides"],
            problem_overrides=payload["problem_overrides"],
            label=payload["label"],
            progress=progress,
            log=log,
        )
    finally:
        torch.set_num_threads(threads)
    if rec["cell"]["key"] != payload["key"]:
        raise RuntimeError(
            f"cell {payload['key']} ran with another configuration ({rec['cell']['key']}): its problem "
            "or solver file, or opsrl, changed since the sweep started or differs on this worker; "
            "run the sweep again"
        )
    rec["sweep"] = payload.get("sweep")
    rec["host"] = socket.gethostname()
    return rec


def ray_cell(payload: Mapping[str, Any], messages=None) -> tuple[str, Any]:
    """A Ray task: ``("ok", record)`` or ``("error", {...})``; only a dead worker raises (and is retried).

    ``messages`` (a :class:`Messages` actor) forwards the cell's progress messages to the driver.
    """
    log = (lambda m: messages.post.remote(payload["key"], m)) if messages is not None else (lambda m: None)
    try:
        return "ok", run_cell(payload, log=log)
    except Exception as e:
        return "error", {
            "type": type(e).__name__,
            "message": str(e),
            "config": isinstance(e, ConfigError),
            "source": getattr(e, "source", None),
            "key": getattr(e, "key", None),
            "detail": getattr(e, "message", None),
            "traceback": traceback.format_exc(),
        }


class CellFailed(Exception):
    """A cell's exception, carried back from a Ray worker."""

    def __init__(self, info: Mapping[str, Any]):
        super().__init__(info["message"])
        self.info = dict(info)


class Messages:
    """A mailbox (a Ray actor) through which cells on workers report their progress to the driver."""

    def __init__(self):
        self.items: list[tuple[str, str]] = []

    def post(self, key: str, message: str) -> None:
        self.items.append((key, message))

    def drain(self) -> list[tuple[str, str]]:
        out, self.items = self.items, []
        return out


OnResult = Callable[["Cell", dict[str, Any]], None]
OnError = Callable[["Cell", BaseException], None]
OnMessage = Callable[["Cell", str], None]


class LocalExecutor:
    """Runs cells one after another in this process (the default); training shows its own progress."""

    name = "local"

    def run(
        self,
        cells: Sequence[Cell],
        on_result: OnResult,
        on_error: OnError,
        progress: bool = True,
        on_message: OnMessage | None = None,
    ) -> None:
        for cell in cells:
            log = (lambda m, c=cell: on_message(c, m)) if on_message is not None else (lambda m: None)
            try:
                rec = run_cell(cell.payload(), progress=progress, log=log)
            except Exception as e:  # one failing cell must not stop the others
                on_error(cell, e)
            else:
                on_result(cell, rec)


class RayExecutor:
    """Runs cells as Ray tasks, each declaring its CPUs and GPUs.

    Joins the running Ray session if there is one, else ``ray.init(address)`` (``None`` starts a
    local cluster, ``"auto"`` joins the one on this machine). A task whose worker dies is retried up
    to ``retries`` times by Ray; a cell that raises is not retried (it would fail again). Results
    come back to this process, which alone writes them.
    """

    name = "ray"

    def __init__(self, address: str | None = None, retries: int = 2, init_kwargs: Mapping[str, Any] | None = None):
        self.address = address
        self.retries = retries
        self.init_kwargs = dict(init_kwargs or {})

    @staticmethod
    def _import():
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "--executor",
                None,
                "the ray executor needs Ray; install it with pip install 'opsrl[ray]' (or pip install 'ray[default]')",
            ) from None
        return ray

    def run(
        self,
        cells: Sequence[Cell],
        on_result: OnResult,
        on_error: OnError,
        progress: bool = True,
        on_message: OnMessage | None = None,
    ) -> None:
        ray = self._import()
        started = False
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, log_to_driver=False, **self.init_kwargs)
            except ConnectionError as e:
                raise ConfigError(
                    "--address",
                    None,
                    f"cannot join the Ray cluster at {self.address} ({e}); start "
                    "one with `ray start --head`, or leave out --address",
                ) from None
            started = True
        remote = ray.remote(ray_cell)
        by_key = {c.key: c for c in cells}
        hub = ray.remote(num_cpus=0)(Messages).remote() if on_message is not None else None

        def relay():
            if hub is not None:
                for key, message in ray.get(hub.drain.remote()):
                    if key in by_key:
                        on_message(by_key[key], message)

        pending: dict[Any, Cell] = {}
        try:
            for cell in cells:
                ref = remote.options(
                    num_cpus=cell.num_cpus, num_gpus=cell.num_gpus, max_retries=self.retries, retry_exceptions=False
                ).remote(cell.payload(), hub)
                pending[ref] = cell
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                relay()
                for ref in done:
                    cell = pending.pop(ref)
                    try:
                        status, value = ray.get(ref)
                    except ray.exceptions.RayError as e:  # worker died more often than retries allow, ...
                        on_error(cell, e)
                        continue
                    if status == "ok":
                        on_result(cell, value)
                    elif value["config"]:
                        on_error(cell, ConfigError(value["source"], value["key"], value["detail"]))
                    else:
                        on_error(cell, CellFailed(value))
            relay()
        except BaseException:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
        finally:
            if started:
                ray.shutdown()


def check_ray_address(address: str, timeout: float = 3.0) -> None:
    """Fail fast, before anything is created, when no Ray cluster answers at ``address``
    (``host:port`` or ``ray://host:port``): one TCP connection attempt of at most ``timeout`` seconds."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            "--address", None, f"{address!r} is not a Ray address; expected host:port, ray://host:port or auto"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConfigError(
            "--address",
            None,
            f"no Ray cluster answers at {address} ({e.strerror or e}); start one "
            "with `ray start --head` there, or leave out --address to start a local one",
        ) from None


def executor(name: str, address: str | None = None, retries: int = 2):
    if name == "local":
        if address:
            raise ConfigError("--address", None, "only the ray executor takes an address")
        return LocalExecutor()
    if name == "ray":
        if address and address != "auto":
            check_ray_address(address)
        RayExecutor._import()  # fail before anything is created or run
        return RayExecutor(address, retries)
    raise ConfigError("--executor", None, f"{name!r} is not an executor; allowed: local, ray")


# --- running a sweep -----------------------------------------------------------------------------
@dataclass
class SweepResult:
    cells: int
    already: int  # finished before this run
    recorded: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # finished by someone else meanwhile
    failed: list[tuple[str, str]] = field(default_factory=list)
    not_applicable: list[tuple[str, str]] = field(default_factory=list)  # the method refused the problem

    @property
    def complete(self) -> bool:
        done = self.already + len(self.recorded) + len(self.duplicates) + len(self.not_applicable)
        return not self.failed and done == self.cells


_deferred_interrupt = deferred_interrupt  # the store's: holds Ctrl-C while a finished cell is written


def run_sweep(
    sweep: Sweep,
    store: ResultsStore,
    executor: Any | None = None,
    *,
    progress: bool = True,
    cell_progress: bool | None = None,
    fail_fast: bool = False,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
    on_message: OnMessage | None = None,
) -> SweepResult:
    """Run every cell of ``sweep`` not yet in ``store``; write each one as soon as it finishes.

    ``progress`` shows the bar over cells; ``cell_progress`` (default: as ``progress``) lets local
    cells show their own bars. Cells' progress messages (HDPO's evaluations), from any executor, go to
    ``on_message`` and, with ``progress``, to the bar's status line.
    """
    from tqdm.auto import tqdm

    executor = executor or LocalExecutor()
    store.check_writable()
    finished = store.finished(c.key for c in sweep.cells)
    todo = [c for c in sweep.cells if c.key not in finished]
    result = SweepResult(len(sweep.cells), len(sweep.cells) - len(todo))
    if result.already:
        log(f"{result.already} of {len(sweep.cells)} cells already in {store.path}; skipping them")
    bar = tqdm(
        total=len(todo), desc=f"sweep {sweep.name or ''}".strip(), unit="cell", disable=not progress, dynamic_ncols=True
    )

    class _Stop(Exception):
        pass

    def on_result(cell: Cell, rec: dict[str, Any]) -> None:
        rec["executor"] = executor.name
        with deferred_interrupt(reraise=False) as caught:
            _, written, _ = store.record(rec, once=True)
            (result.recorded if written else result.duplicates).append(cell.key)
        if caught:  # Ctrl-C during the write: the cell is recorded (and counted); stop now
            raise KeyboardInterrupt
        bar.set_postfix_str(f"{cell.id.problem} {cell.id.solver} seed {cell.seed}: {rec['test_cost']:.4g}")
        bar.update(1)

    def on_error(cell: Cell, e: BaseException) -> None:
        if isinstance(e, ConfigError) and e.key == "method":  # the family's way to say "not for this problem"
            result.not_applicable.append((cell.key, e.message))
            bar.update(1)
            return
        msg = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
        result.failed.append((cell.key, msg))
        bar.update(1)
        (bar.write if progress else log)(f"cell {cell.key} failed: {msg}")
        if not isinstance(e, ConfigError) and os.environ.get("OPSRL_TRACEBACK"):
            log(e.info["traceback"] if isinstance(e, CellFailed) else "".join(traceback.format_exception(e)))
        if fail_fast:
            raise _Stop

    def on_cell_message(cell: Cell, message: str) -> None:
        if progress:
            bar.set_postfix_str(f"{cell.id.problem} {cell.id.solver} seed {cell.seed}: {message}"[:100])
        if on_message is not None:
            on_message(cell, message)

    try:
        executor.run(
            todo,
            on_result,
            on_error,
            progress if cell_progress is None else cell_progress,
            on_cell_message if (progress or on_message is not None) else None,
        )
    except _Stop:
        pass
    finally:
        bar.close()
    return result


def describe_cells(sweep: Sweep, store: ResultsStore) -> list[str]:
    """One line per cell with its state in ``store`` (for ``opsrl bench --dry-run``)."""
    finished = store.finished(c.key for c in sweep.cells)
    lines = [
        f"{'recorded' if c.key in finished else 'to run':<9} {c.id.problem}  {c.id.solver}  seed {c.seed}  "
        f"[{c.id.config_hash}] cpus={c.num_cpus:g} gpus={c.num_gpus:g} device={c.device}"
        for c in sweep.cells
    ]
    lines += [f"{'skipped':<9} {p}  {s}  ({why})" for p, s, why in sweep.skipped]
    return lines
