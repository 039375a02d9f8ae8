"""The ``opsrl`` command.

``opsrl run [PROBLEM] [SOLVER]`` trains if the solver learns, evaluates on the problem's test split,
prints a summary (or one JSON object with ``--json``) and appends the run to the results store.
``opsrl list`` shows the bundled problems and solvers.
``opsrl bench [SWEEP]`` runs a sweep (problems x solvers x seeds) into the results store, resumably,
locally or on a Ray cluster; ``opsrl report`` writes the solver-comparison report of a store;
``opsrl export`` writes its runs as a CSV or Parquet table.

Every input is checked before anything runs or is created: bad input stops with one message naming
the file or flag, the key and what is allowed, and exit status 2. ``opsrl run`` checks its store
(lock, schema) before training and commits its row with Ctrl-C held, so a run is either recorded
(and says so, exit 0) or not recorded at all. This module imports nothing heavy at import time, so
that Ctrl-C while torch loads is an ordinary interruption.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

from .faults import point as fault_point

DEFAULT_PROBLEM = "inventory/lost_sales_p9_L4"
DEFAULT_SOLVER = "hdpo_mlp"
# the main job (`opsrl run` with no problem and no solver) takes about this many seconds in all: its training
# budget is what is left after the test evaluation, predicted from a few periods of it, and at least
# MAIN_JOB_MIN_TRAIN_SECONDS
MAIN_JOB_SECONDS = 120.0
MAIN_JOB_MIN_TRAIN_SECONDS = 20.0
MAIN_JOB_TRAIN_SECONDS = 90.0  # at most
# on a busy machine the main job evaluates on fewer test scenarios (at least MAIN_JOB_MIN_TEST), so that
# the evaluation takes about MAIN_JOB_EVAL_SECONDS; the full run always uses the whole test split
MAIN_JOB_EVAL_SECONDS = 40.0
MAIN_JOB_MIN_TEST = 1024
PROGRESS_EVERY = 10.0  # seconds between one-line progress messages when stderr is not a terminal


def _config_error(source: str, key: str | None, message: str):
    from .core import ConfigError

    return ConfigError(source, key, message)


def _overrides(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    from .core.config import parse_value

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise _config_error(flag, pair, "expected KEY=VALUE")
        out[key.strip()] = parse_value(value.strip())
    return out


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _known(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def summary(rec: dict[str, Any]) -> str:
    ref = rec["reference"]
    n = rec["test"]["n"]
    cost = f"test cost {_fmt(rec['test_cost'])}"
    if _known(rec["test_stderr"]):
        cost += f" +- {_fmt(rec['test_stderr'])} (standard error, {n} scenarios)"
    else:
        cost += f" ({n} scenario{'s' if n != 1 else ''}: no standard error)"
    lines = [
        f"problem   {rec['problem']}",
        f"solver    {rec['solver']} (method {rec['method']}, seed {rec['seed']})",
        cost,
    ]
    if ref is not None:
        lines.append(f"reference {_fmt(ref['value'])} ({ref['kind']}: {ref.get('source', '')})")
        if rec["gap_pct"] is None:
            lines.append("gap       n/a")
        elif _known(rec.get("gap_stderr_pct")):
            lines.append(f"gap       {_fmt(rec['gap_pct'], 3)}% +- {_fmt(rec['gap_stderr_pct'], 3)}%")
        else:
            lines.append(f"gap       {_fmt(rec['gap_pct'], 3)}%")
    lines += _status_lines(rec)
    lines.append(f"time      train {rec['train_seconds']:.1f} s, evaluation {rec['eval_seconds']:.1f} s")
    if rec.get("reproducible") is False:
        lines.append(
            "note      training stopped at its time limit: the result depends on the machine's speed "
            "and load (not reproducible); set max_steps without time_limit to reproduce it"
        )
    return "\n".join(lines)


def _status_lines(rec: dict[str, Any]) -> list[str]:
    """What a per-instance solver (CP-SAT) proved: optimal, or feasible with its bound."""
    rows = (rec.get("info") or {}).get("per_instance") or []
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and "status" in r for r in rows):
        return []
    unproven = [r for r in rows if r["status"] != "optimal"]
    if not unproven:
        return [f"status    optimal on all {len(rows)} instance{'s' if len(rows) != 1 else ''} (proven)"]
    shown = ", ".join(
        f"{r.get('instance', '?')} {r.get('makespan', 'none')} >= bound {r.get('lower_bound', '?')}"
        for r in unproven[:3]
    ) + (" ..." if len(unproven) > 3 else "")
    limit = ((rec.get("config") or {}).get("solver") or {}).get("options", {}).get("time_limit")
    more = f" (time_limit was {limit:g} s; e.g. --set time_limit={max(60, 6 * limit):g})" if _known(limit) else ""
    return [
        f"status    {len(rows) - len(unproven)} of {len(rows)} proven optimal; "
        f"{rows[0]['status'] if len(unproven) == 1 else 'not proven'}: {shown}",
        f"          the optimum may be proven with more time{more}",
    ]


class _Progress:
    """One-line progress on stderr when it is not a terminal, so that a log file shows the run is alive:
    each message at once (at most one per ``every`` seconds unless verbose), and while nothing new comes,
    a line every ``every`` seconds repeating the latest one with the time elapsed."""

    def __init__(self, every: float = PROGRESS_EVERY, verbose: bool = False, heartbeat: bool = True):
        import threading

        self.every, self.verbose, self.last, self.latest = every, verbose, -math.inf, ""
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True) if heartbeat else None
        if self._thread is not None:
            self._thread.start()

    def _print(self, message: str) -> None:
        now = time.monotonic()
        self.last = now
        print(f"opsrl: [{now - self.t0:6.1f} s] {message}", file=sys.stderr, flush=True)

    def __call__(self, message: str) -> None:
        with self._lock:
            self.latest = message
            if self.verbose or time.monotonic() - self.last >= self.every:
                self._print(message)

    def _beat(self) -> None:
        while not self._stop.wait(self.every / 2):
            with self._lock:
                if self.latest and time.monotonic() - self.last >= self.every:
                    self._print(f"still going: {self.latest}")

    def close(self) -> None:
        self._stop.set()


def cmd_run(args: argparse.Namespace) -> int:
    from .bench.runner import execute, prepare
    from .bench.store import ResultsStore

    main_job = args.problem is None and args.solver is None
    problem = args.problem or DEFAULT_PROBLEM
    solver = args.solver or DEFAULT_SOLVER
    solver_set = _overrides(args.set, "--set")
    started = time.monotonic()
    limit = args.time_limit
    tty = sys.stderr.isatty()
    bars = not args.quiet and (tty or args.progress)
    prep = prepare(
        problem,
        solver,
        seed=args.seed,
        device=args.device,
        solver_overrides=solver_set,
        problem_overrides=_overrides(args.problem_set, "--problem-set"),
    )
    evaluation, problem_set, fewer = None, _overrides(args.problem_set, "--problem-set"), None
    if main_job and limit is None and "time_limit" not in solver_set:
        evaluation = _predict_evaluation(prep)
        n_test = int(prep.problem.test_scenarios)
        if evaluation > MAIN_JOB_EVAL_SECONDS and n_test > MAIN_JOB_MIN_TEST and "test.scenarios" not in problem_set:
            k = max(MAIN_JOB_MIN_TEST, 2 ** int(math.log2(n_test * MAIN_JOB_EVAL_SECONDS / evaluation)))
            if k < n_test:  # a busy machine: fewer test scenarios, said in the output and kept in the record
                fewer = (k, n_test, evaluation)
                problem_set = {**problem_set, "test.scenarios": k}
                evaluation *= k / n_test
                prep = prepare(
                    problem,
                    solver,
                    seed=args.seed,
                    device=args.device,
                    solver_overrides=solver_set,
                    problem_overrides=problem_set,
                )
        limit = min(
            MAIN_JOB_TRAIN_SECONDS,
            max(MAIN_JOB_MIN_TRAIN_SECONDS, MAIN_JOB_SECONDS - (time.monotonic() - started) - 1.2 * evaluation),
        )
        limit = float(f"{limit:.0f}")
    if limit:
        if "time_limit" not in prep.method.options:
            raise _config_error("--time-limit", None, f"method {prep.method.name!r} has no training time limit")
        if args.time_limit is not None or "time_limit" not in solver_set:
            solver_set = {**solver_set, "time_limit": float(limit)}
            prep = prepare(
                problem,
                solver,
                seed=args.seed,
                device=args.device,
                solver_overrides=solver_set,
                problem_overrides=problem_set,
            )
    store = None if args.no_store else ResultsStore(args.store, timeout=args.lock_timeout)
    if store is not None:
        store.check_writable()  # a locked, foreign, damaged or newer store stops the run before training
    if main_job and not args.json and not args.quiet:
        predicted = f" (predicted: {evaluation:.0f} s)" if evaluation is not None else ""
        print(
            f"opsrl: the main job: {solver} on {problem}, training for at most {limit:g} s, then the test "
            f"evaluation{predicted}, about {MAIN_JOB_SECONDS / 60:g} minutes in all; the full run: "
            f"opsrl run {problem} {solver}",
            file=sys.stderr,
            flush=True,
        )
        if fewer is not None:
            print(
                f"opsrl: note: this machine is busy (all {fewer[1]} test scenarios would take about {fewer[2]:.0f} s "
                f"to evaluate): the main job evaluates on {fewer[0]} of them (the full run uses all)",
                file=sys.stderr,
                flush=True,
            )
        if evaluation is not None and limit <= MAIN_JOB_MIN_TRAIN_SECONDS:
            print(
                f"opsrl: note: this machine is busy (the test evaluation alone is predicted to take "
                f"{evaluation:.0f} s), so training gets only {limit:g} s and the result will be far from what it "
                "reaches on a quiet machine; the run will also take longer than planned",
                file=sys.stderr,
                flush=True,
            )
    log = _Progress(verbose=args.verbose) if (args.verbose or (not tty and not args.quiet)) else (lambda m: None)
    log(f"training {prep.cell.solver} on {prep.problem.name} (seed {prep.seed})")
    try:
        rec = execute(prep, progress=bars, log=log, stage=log)
    finally:
        if isinstance(log, _Progress):
            log.close()
    if store is not None:
        from .bench.store import deferred_interrupt

        fault_point("before_commit")
        with deferred_interrupt(reraise=False) as caught:
            rec["run_id"], _, _ = store.record(rec)
            rec["store"] = str(store.path)
            # from here on the outcome is decided: a Ctrl-C still says so, but the status stays 0
            _settle(0, f"interrupted after the run was recorded (run {rec['run_id']} in {store.path})")
        fault_point("after_commit")
        _print_run(rec, args, store)
        fault_point("after_print")
        if caught:
            print(f"opsrl: {_outcome['message']}", file=sys.stderr)
        return 0
    _print_run(rec, args, None)
    return 0


def _predict_evaluation(prep, periods: int = 5) -> float:
    """Seconds the test evaluation of the main job's policy will take, from ``periods`` periods of it run
    by an untrained network of the same shape (what a period costs does not depend on the weights)."""
    import torch

    from .core import rollout
    from .nn import build_policy

    prob = prep.problem
    total = int(prob.test_periods or prob.periods)
    k = min(periods, total)
    torch.manual_seed(0)
    policy = build_policy(prob, prep.config.get("policy", {}), prep.config["source"]).to(prep.device).eval()
    test = prob.sample(prob.test_scenarios, "test", prob.test_seed, k, prep.device)
    t0 = time.perf_counter()
    with torch.no_grad():
        rollout(prob, policy, test, periods=k)
    return (time.perf_counter() - t0) * total / k


def _print_run(rec: dict[str, Any], args: argparse.Namespace, store) -> None:
    if args.json:
        drop = {k for k, want in (("curve", args.curve), ("trace", args.trace)) if not want}
        print(json.dumps({k: v for k, v in rec.items() if k not in drop}, default=str))
    else:
        print(summary(rec))
        if store is not None:
            print(f"recorded  run {rec['run_id']} in {store.path}")


def cmd_list(args: argparse.Namespace) -> int:
    from .core import ConfigError
    from .registry import FAMILY_MODULES, bundled, family, generic_methods, load_toml, roots

    kinds = [args.kind] if args.kind else ["problems", "solvers"]
    empty = []
    for kind in kinds:
        print(f"{kind}:")
        found = bundled(kind)
        if not found:
            empty.append(kind)
        for name, path in found.items():
            try:
                desc = load_toml(path).get("description", "")
            except ConfigError:
                desc = "(unreadable)"
            print(f"  {name:<36} {desc}")
    if not args.kind:
        print("methods:")
        for name, m in generic_methods().items():
            print(f"  {name:<36} {m.description} (any family)")
        for fam_name in FAMILY_MODULES:
            try:
                fam = family(fam_name)
            except ConfigError:
                continue
            for name, m in fam.methods.items():
                print(f"  {name:<36} {m.description} ({fam_name})")
    if empty:
        looked = ", ".join(str(r) for r in roots())
        print(
            f"opsrl: found no bundled {' or '.join(empty)}; looked in: {looked} (each for problems/, solvers/ "
            "and sweeps/). Reinstall opsrl, or add folders with OPSRL_PATH",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.store import ResultsStore
    from .bench.sweep import bundled_sweeps, describe_cells, executor, load_sweep, run_sweep
    from .core import ConfigError

    if args.list:
        for name, path in bundled_sweeps().items():
            try:
                desc = load_toml_description(path)
            except ConfigError:
                desc = "(unreadable)"
            print(f"  {name:<36} {desc}")
        return 0
    if args.sweep is None and not (args.problem and args.solver):
        raise ConfigError("opsrl bench", None, "name a sweep file or bundled sweep, or give --problem and --solver")
    from .bench.runner import check_device

    local = args.executor == "local"
    if args.device is not None:  # the name always; whether it is here only where the cells run here
        check_device(args.device, here=local and not args.dry_run)
    if args.executor == "ray" and args.address and args.address != "auto" and not args.dry_run:
        from .bench.sweep import check_ray_address

        check_ray_address(args.address)  # before the sweep is loaded or the store touched
    seeds = _seeds(args.seeds) if args.seeds is not None else None
    sweep = load_sweep(
        args.sweep,
        problems=args.problem,
        solvers=args.solver,
        seeds=seeds,
        problem_set=_overrides(args.problem_set, "--problem-set"),
        solver_set=_overrides(args.set, "--set"),
        device=args.device,
    )
    if local and not args.dry_run:
        for cell_device in sorted({c.device for c in sweep.cells}):
            check_device(
                cell_device, "--device" if args.device else str(sweep.source), None if args.device else "device"
            )
    ex = (
        None
        if args.dry_run
        else executor(args.executor, args.address, sweep.retries if args.retries is None else args.retries)
    )
    store = ResultsStore(args.store, timeout=args.lock_timeout)
    left_out: dict[str, list[str]] = {}
    for p, s, _ in sweep.skipped:
        left_out.setdefault(p, []).append(s)
    for p, solvers in left_out.items():
        print(
            f"opsrl: note: {', '.join(solvers)} left out of {p} (their methods do not apply to its family)",
            file=sys.stderr,
        )
    if args.dry_run:
        print("\n".join(describe_cells(sweep, store)))
        return 0
    show = not args.quiet and (sys.stderr.isatty() or args.progress)
    try:
        res = run_sweep(sweep, store, ex, progress=show, fail_fast=args.fail_fast)
        _settle(
            0 if res.complete else 1,
            f"interrupted after the sweep ended ({len(res.recorded)} cells run and recorded in {store.path})",
        )
    except KeyboardInterrupt:
        try:
            done = len(store.finished(c.key for c in sweep.cells))
            where = f"{done} of {len(sweep.cells)} cells are recorded in {store.path}"
        except Exception:  # the store cannot be read now: say so rather than guess
            where = f"the cells finished before are recorded in {store.path}"
        print(f"opsrl: interrupted; {where}; run the same command again to resume", file=sys.stderr)
        return 130
    print(
        f"sweep {sweep.name or sweep.source}: {res.cells} cells, {res.already} already recorded, "
        f"{len(res.recorded)} run and recorded, {len(res.failed)} failed; store {store.path}"
    )
    if res.not_applicable:
        print(f"  {len(res.not_applicable)} cells not applicable (nothing recorded):")
        for why, keys in _group(res.not_applicable).items():
            print(f"    {why}: {', '.join(keys)}")
    for key, msg in res.failed:
        print(f"  failed {key}: {msg}")
    if res.duplicates:
        print(f"  {len(res.duplicates)} cells were recorded meanwhile by another run; kept the first record")
    if not res.failed:
        print(f"report: opsrl report --store {store.path}")
    return 0 if res.complete else 1


def _group(pairs) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, why in pairs:
        out.setdefault(why, []).append(key.rsplit("|", 1)[0])
    return out


def load_toml_description(path) -> str:
    from .core import load_toml

    return str(load_toml(path).get("description", ""))


MAX_SEEDS = 10_000


def _seeds(text: str) -> list[int] | int:
    """``3`` (a count: 0, 1, 2), ``0,4,7`` or ``2-5``; counted before anything is expanded."""
    bad = _config_error(
        "--seeds",
        None,
        f"{text!r} is not allowed; expected a count (3), a list (0,4,7) or a "
        f"range (2-5) of seeds from 0 to 2**63 - 1, at most {MAX_SEEDS} of them",
    )
    parts: list[tuple[int, int]] = []
    try:
        if "," in text or "-" in text:
            for part in text.split(","):
                lo, sep, hi = part.strip().partition("-")
                parts.append((int(lo), int(hi) if sep else int(lo)))
        else:
            n = int(text)
            if not 0 < n <= MAX_SEEDS:
                raise bad
            return n
    except ValueError:
        raise bad from None
    total = 0
    for lo, hi in parts:
        if lo < 0 or hi < lo or hi >= 2**63:
            raise bad
        total += hi - lo + 1
        if total > MAX_SEEDS:
            raise _config_error(
                "--seeds", None, f"{text!r} names more than {MAX_SEEDS} seeds; at most {MAX_SEEDS} per sweep"
            )
    return [s for lo, hi in parts for s in range(lo, hi + 1)]


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .bench.report import write_report
    from .bench.store import ResultsStore

    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise _config_error(
            "--out", None, f"{out_dir} is a file; give a folder for the report (it is created if missing)"
        )
    store = ResultsStore(args.store, timeout=args.lock_timeout)
    if not store.path.exists():
        raise _config_error(
            "--store",
            None,
            f"{store.path}: no results store there; record runs with opsrl run or opsrl bench first, or give --store",
        )
    try:
        out = write_report(
            store,
            args.out,
            title=args.title,
            pictures=not args.no_pictures,
            problems=args.problem or None,
            sweeps=args.sweep or None,
            progress=sys.stderr.isatty(),
        )
    except OSError as e:  # the output folder cannot be created or written (the store is only read)
        raise _config_error(
            "--out", None, f"{out_dir}: cannot write the report there ({e.strerror or e}); give a writable folder"
        ) from None
    for why in out["left_out"]:
        print(f"opsrl: note: left out of the report, incomplete in the store: {why}", file=sys.stderr)
    print(
        f"report of {out['runs']} runs ({len(out['problems'])} problems) written to {out['html']} and {out['markdown']}"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .api import export
    from .bench.store import default_path

    store = args.store if args.store is not None else str(default_path())
    n = export(
        store,
        args.out,
        force=args.force,
        problem=args.problem or None,
        solver=args.solver or None,
        _arguments=("--store", "--out", "--force"),
    )
    print(f"wrote {n} runs of {store} to {args.out}")
    return 0


# --- argument types: a bad value is an argparse error (exit 2) that names its flag -------------------
def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed; a seed is an integer from 0 to 2**63 - 1") from None
    if not 0 <= v < 2**63:
        raise argparse.ArgumentTypeError(f"{v} is out of range; a seed is an integer from 0 to 2**63 - 1")
    return v


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or not 0 <= v <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; expected seconds from 0 to 86400")
    return v


def _retries(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if not 0 <= v <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; expected an integer from 0 to 100")
    return v


def _lock_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="seconds to wait for a store locked by another process (0 to 86400, default 10)",
    )


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the flag (exit status 2), like every other bad input."""

    def error(self, message: str):
        print(f"opsrl: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="opsrl", description="Operations simulators, learned policies and exact references.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "run",
        help="train (if the solver learns) and evaluate one solver on one problem",
        description=f"With no problem and no solver: the main job, {DEFAULT_SOLVER} on "
        f"{DEFAULT_PROBLEM}, planned to take about {MAIN_JOB_SECONDS:g} s in all: the test evaluation "
        "is predicted from a few periods of it (on a busy machine it uses fewer test scenarios) and "
        f"training gets the time left ({MAIN_JOB_MIN_TRAIN_SECONDS:g} to {MAIN_JOB_TRAIN_SECONDS:g} "
        "s); name them for the full run.",
    )
    r.add_argument("problem", nargs="?", default=None, help=f"problem file or bundled name (default {DEFAULT_PROBLEM})")
    r.add_argument("solver", nargs="?", default=None, help=f"solver file or bundled name (default {DEFAULT_SOLVER})")
    r.add_argument("--seed", type=_seed, default=0, help="an integer from 0 to 2**63 - 1 (default 0)")
    r.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda or cuda:1")
    r.add_argument(
        "--time-limit",
        type=_seconds,
        default=None,
        metavar="S",
        help="seconds of training at most (learning methods; 0: none; default: the solver's, and "
        "the main job's budget for the main job). A time-limited run is not reproducible",
    )
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--curve", action="store_true", help="include the learning curve in the JSON")
    r.add_argument("--trace", action="store_true", help="include the policy's trace in the JSON (always in the store)")
    r.add_argument(
        "--store", default=None, help="results store (SQLite; default $OPSRL_STORE or ./opsrl-results.sqlite)"
    )
    r.add_argument("--no-store", action="store_true", help="do not record the run")
    _lock_timeout(r)
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a solver option (e.g. --set max_steps=500 or --set policy.hidden=[32,32])",
    )
    r.add_argument(
        "--problem-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a problem key (e.g. --problem-set test.scenarios=1024)",
    )
    r.add_argument("--progress", action="store_true", help="show progress bars even when not on a terminal")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bars or progress lines")
    r.add_argument("-v", "--verbose", action="store_true", help="log every training evaluation to stderr")
    r.set_defaults(func=cmd_run)
    ls = sub.add_parser("list", help="list bundled problems, solvers and methods")
    ls.add_argument("kind", nargs="?", choices=["problems", "solvers"])
    ls.set_defaults(func=cmd_list)

    b = sub.add_parser(
        "bench",
        help="run a sweep of problems x solvers x seeds into the results store",
        description="Run every cell (problem, solver, seed) of a sweep that the store does not "
        "hold yet; running it again resumes it. See docs/bench.md for the sweep file.",
    )
    b.add_argument("sweep", nargs="?", help="sweep file or bundled sweep name (see --list)")
    b.add_argument("--problem", action="append", metavar="NAME", help="problem(s) to sweep (replace the file's)")
    b.add_argument("--solver", action="append", metavar="NAME", help="solver(s) to sweep (replace the file's)")
    b.add_argument(
        "--seeds", help=f"seeds: a count (3), a list (0,4,7) or a range (2-5), at most {MAX_SEEDS}; replace the file's"
    )
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every solver")
    b.add_argument(
        "--problem-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override for every problem (e.g. test.scenarios=1024)",
    )
    b.add_argument("--device", default=None, help="torch device of every cell (default: the sweep's, else cpu)")
    b.add_argument("--store", default=None, help="results store (default $OPSRL_STORE or ./opsrl-results.sqlite)")
    _lock_timeout(b)
    b.add_argument("--executor", default="local", choices=["local", "ray"], help="where cells run (default local)")
    b.add_argument("--address", default=None, help="Ray cluster address (default: start a local one; 'auto': join)")
    b.add_argument(
        "--retries",
        type=_retries,
        default=None,
        help="Ray: retries of a cell whose worker died, 0 to 100 (default: the sweep's, 2)",
    )
    b.add_argument("--fail-fast", action="store_true", help="stop at the first failing cell")
    b.add_argument("--dry-run", action="store_true", help="list the cells and whether they are recorded; run nothing")
    b.add_argument("--list", action="store_true", help="list the bundled sweeps")
    b.add_argument("--progress", action="store_true", help="show progress bars even when not on a terminal")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_bench)

    rp = sub.add_parser("report", help="write the solver-comparison report (HTML and Markdown) of a results store")
    rp.add_argument("--store", default=None, help="results store (default $OPSRL_STORE or ./opsrl-results.sqlite)")
    rp.add_argument("--out", default="opsrl-report", help="output folder (default ./opsrl-report)")
    rp.add_argument("--problem", action="append", metavar="NAME", help="report only these problems")
    rp.add_argument("--sweep", action="append", metavar="NAME", help="report only the runs of these sweeps")
    rp.add_argument("--title", default="opsrl solver comparison")
    rp.add_argument("--no-pictures", action="store_true", help="leave out the problems' own pictures")
    _lock_timeout(rp)
    rp.set_defaults(func=cmd_report)

    ex = sub.add_parser("export", help="write the runs of a results store as a table (CSV or Parquet)")
    ex.add_argument("--store", default=None, help="results store (default $OPSRL_STORE or ./opsrl-results.sqlite)")
    ex.add_argument("--out", required=True, help="output file: runs.csv or runs.parquet (Parquet needs pyarrow)")
    ex.add_argument("--force", action="store_true", help="replace the output file if it exists")
    ex.add_argument("--problem", action="append", metavar="NAME", help="export only the runs of these problems")
    ex.add_argument("--solver", action="append", metavar="NAME", help="export only the runs of these solvers")
    ex.set_defaults(func=cmd_export)
    return p


_INTERRUPTED = {
    "run": "nothing was recorded for the unfinished run",
    "bench": "every cell finished before is recorded; run the same command again to resume",
    "report": "the report may be incomplete; the store is unchanged",
    "export": "nothing was written; the store is unchanged",
}


# What the running command has committed (see :func:`_settle`); reset by each :func:`main`.
_outcome: dict[str, Any] = {"status": None, "message": "", "interrupted": False}


def _settle(status: int, message: str) -> None:
    """The command's exit status is decided: its results are committed. A Ctrl-C after this point prints
    ``message`` and leaves the status as it is (a run is recorded and exits 0, never 'interrupted')."""
    _outcome["status"], _outcome["message"] = status, message


def _on_sigint(signum, frame):
    """Python's own Ctrl-C (a KeyboardInterrupt), noted first: an interrupt that a library turns into
    another exception (a compiled module whose initialisation it cut short raises ImportError) is still
    reported as an interrupt, not as a crash."""
    _outcome["interrupted"] = True
    raise KeyboardInterrupt


def _interrupted(args) -> int:
    if _outcome["status"] is not None:
        print(f"opsrl: {_outcome['message']}", file=sys.stderr)
        return _outcome["status"]
    what = _INTERRUPTED.get(getattr(args, "command", None), "nothing was done")
    print(f"opsrl: interrupted; {what}", file=sys.stderr)
    return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``opsrl`` command in this process and return its exit status (130: interrupted)."""
    import signal
    import threading

    _outcome.update(status=None, message="", interrupted=False)
    args = None
    handler = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _on_sigint) if handler else None
    try:
        try:
            try:
                args = parser().parse_args(argv)
            except SystemExit as e:  # a usage error (printed as one line by _Parser.error) or --help
                return e.code if isinstance(e.code, int) else 2
            fault_point("start")
            from .bench.store import StoreError  # the first heavy import (torch): Ctrl-C here is handled below
            from .core import ConfigError

            try:
                return args.func(args)
            except (ConfigError, StoreError, ValueError) as e:
                if _outcome["interrupted"]:
                    return _interrupted(args)
                print(f"opsrl: error: {e}", file=sys.stderr)
                return 2
            except MemoryError:
                print(
                    "opsrl: error: out of memory; lower the sizes of the run (scenarios, periods, batch size, "
                    "layer widths)",
                    file=sys.stderr,
                )
                return 2
        except BrokenPipeError:  # the output went to a pipe that closed (| head): not an error of opsrl
            sys.stderr.close()
            return 0
        except KeyboardInterrupt:
            return _interrupted(args)
        except Exception:
            if _outcome["interrupted"]:  # a Ctrl-C that a library turned into another exception
                return _interrupted(args)
            raise
    finally:
        if handler:
            signal.signal(signal.SIGINT, previous)


def entry(argv: Sequence[str] | None = None) -> None:
    """The ``opsrl`` command: :func:`main`'s exit status, and on Ctrl-C the exit of an interrupted program.

    An interrupted run ends as Python ends one, by SIGINT after the normal shutdown (a shell shows status
    130 and stops a loop that runs it; a Python parent sees ``-SIGINT``), not by ``exit(130)``: under
    ``python -m``, CPython 3.11 ends by SIGINT anyway when the Ctrl-C landed inside ``exec`` of a string
    (as the imports of sympy and dataclasses do) even though :func:`main` caught it, so only this way does
    the outcome not depend on where the Ctrl-C landed. Any other status is final once :func:`main` has
    returned it: Ctrl-C is ignored during the shutdown that follows, so a recorded run never ends as an
    interrupted one.
    """
    import signal

    try:
        code = main(argv)
    except KeyboardInterrupt:  # landed in main's own bookkeeping, after its handlers
        code = _interrupted(None) if _outcome["status"] is None else _outcome["status"]
    if code == 130:
        sys.excepthook = lambda *exc: None  # main() has said what was kept
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the status is decided; the shutdown is not interruptible
    fault_point("shutdown")
    sys.exit(code)


if __name__ == "__main__":
    entry()
