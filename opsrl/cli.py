"""The ``opsrl`` command.

``opsrl run [PROBLEM] [SOLVER]`` trains if the solver learns, evaluates on the problem's test split,
prints a summary (or one JSON object with ``--json``) and appends the run to the results store.
``opsrl list`` shows the bundled problems and solvers.
``opsrl bench [SWEEP]`` runs a sweep (problems x solvers x seeds) into the results store, resumably,
locally or on a Ray cluster; ``opsrl report`` writes the solver-comparison report of a store.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Sequence

from .core import ConfigError

DEFAULT_PROBLEM = "inventory/lost_sales_p9_L4"
DEFAULT_SOLVER = "hdpo_mlp"


def _overrides(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    from .core.config import parse_value

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(flag, pair, "expected KEY=VALUE")
        out[key.strip()] = parse_value(value.strip())
    return out


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def summary(rec: dict[str, Any]) -> str:
    ref = rec["reference"]
    lines = [f"problem   {rec['problem']}", f"solver    {rec['solver']} (method {rec['method']}, seed {rec['seed']})",
             f"test cost {_fmt(rec['test_cost'])} +- {_fmt(rec['test_stderr'])} (standard error, "
             f"{rec['test']['n']} scenarios)"]
    if ref is not None:
        lines.append(f"reference {_fmt(ref['value'])} ({ref['kind']}: {ref.get('source', '')})")
        lines.append(f"gap       {_fmt(rec['gap_pct'], 3)}% +- {_fmt(rec['gap_stderr_pct'], 3)}%")
    lines.append(f"time      train {rec['train_seconds']:.1f} s, evaluation {rec['eval_seconds']:.1f} s")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    from .bench.runner import run
    from .bench.store import ResultsStore

    store = None if args.no_store else ResultsStore(args.store)
    log = (lambda m: print(m, file=sys.stderr)) if args.verbose else (lambda m: None)
    rec = run(args.problem, args.solver, seed=args.seed, device=args.device,
              solver_overrides=_overrides(args.set, "--set"),
              problem_overrides=_overrides(args.problem_set, "--problem-set"),
              progress=not args.quiet and sys.stderr.isatty() or args.progress, log=log)
    if store is not None:
        rec["run_id"] = store.append(rec)
        rec["store"] = str(store.path)
    if args.json:
        print(json.dumps({k: v for k, v in rec.items() if k != "curve"} if not args.curve else rec,
                         default=str))
    else:
        print(summary(rec))
        if store is not None:
            print(f"recorded  run {rec['run_id']} in {store.path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import FAMILY_MODULES, bundled, family, generic_methods, load_toml

    kinds = [args.kind] if args.kind else ["problems", "solvers"]
    for kind in kinds:
        print(f"{kind}:")
        for name, path in bundled(kind).items():
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
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.store import ResultsStore
    from .bench.sweep import bundled_sweeps, describe_cells, executor, load_sweep, run_sweep

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
    seeds = _seeds(args.seeds) if args.seeds is not None else None
    sweep = load_sweep(args.sweep, problems=args.problem, solvers=args.solver, seeds=seeds,
                       problem_set=_overrides(args.problem_set, "--problem-set"),
                       solver_set=_overrides(args.set, "--set"), device=args.device)
    store = ResultsStore(args.store, timeout=args.lock_timeout)
    left_out: dict[str, list[str]] = {}
    for p, s, _ in sweep.skipped:
        left_out.setdefault(p, []).append(s)
    for p, solvers in left_out.items():
        print(f"opsrl: note: {', '.join(solvers)} left out of {p} (their methods do not apply to its family)",
              file=sys.stderr)
    if args.dry_run:
        print("\n".join(describe_cells(sweep, store)))
        return 0
    ex = executor(args.executor, args.address, sweep.retries if args.retries is None else args.retries)
    show = not args.quiet and (sys.stderr.isatty() or args.progress)
    try:
        res = run_sweep(sweep, store, ex, progress=show, fail_fast=args.fail_fast)
    except KeyboardInterrupt:
        done = len(store.finished(c.key for c in sweep.cells))
        print(f"opsrl: interrupted; {done} of {len(sweep.cells)} cells are recorded in {store.path}; "
              "run the same command again to resume", file=sys.stderr)
        return 130
    print(f"sweep {sweep.name or sweep.source}: {res.cells} cells, {res.already} already recorded, "
          f"{len(res.recorded)} run and recorded, {len(res.failed)} failed; store {store.path}")
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


def _seeds(text: str) -> list[int] | int:
    """``3`` (a count: 0, 1, 2), ``0,4,7`` or ``2-5``."""
    try:
        if "," in text or "-" in text:
            out: list[int] = []
            for part in text.split(","):
                lo, sep, hi = part.strip().partition("-")
                out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
            return out
        n = int(text)
    except ValueError:
        raise ConfigError("--seeds", text, "expected a count (3), a list (0,4,7) or a range (2-5)") from None
    if n <= 0:
        raise ConfigError("--seeds", text, "a count of seeds must be positive")
    return n


def cmd_report(args: argparse.Namespace) -> int:
    from .bench.report import write_report
    from .bench.store import ResultsStore

    store = ResultsStore(args.store, timeout=args.lock_timeout)
    out = write_report(store, args.out, title=args.title, pictures=not args.no_pictures,
                       problems=args.problem or None, sweeps=args.sweep or None, progress=sys.stderr.isatty())
    print(f"report of {out['runs']} runs ({len(out['problems'])} problems) written to {out['html']} "
          f"and {out['markdown']}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="opsrl", description="Operations simulators, learned policies and exact references.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train (if the solver learns) and evaluate one solver on one problem")
    r.add_argument("problem", nargs="?", default=DEFAULT_PROBLEM, help=f"problem file or bundled name (default {DEFAULT_PROBLEM})")
    r.add_argument("solver", nargs="?", default=DEFAULT_SOLVER, help=f"solver file or bundled name (default {DEFAULT_SOLVER})")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--curve", action="store_true", help="include the learning curve in the JSON")
    r.add_argument("--store", default=None, help="results store (SQLite; default $OPSRL_STORE or ./opsrl-results.sqlite)")
    r.add_argument("--no-store", action="store_true", help="do not record the run")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a solver option (e.g. --set max_steps=500 or --set policy.hidden=[32,32])")
    r.add_argument("--problem-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a problem key (e.g. --problem-set test.scenarios=1024)")
    r.add_argument("--progress", action="store_true", help="show progress bars even when not on a terminal")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    r.add_argument("-v", "--verbose", action="store_true", help="log training progress to stderr")
    r.set_defaults(func=cmd_run)
    ls = sub.add_parser("list", help="list bundled problems, solvers and methods")
    ls.add_argument("kind", nargs="?", choices=["problems", "solvers"])
    ls.set_defaults(func=cmd_list)

    b = sub.add_parser("bench", help="run a sweep of problems x solvers x seeds into the results store",
                       description="Run every cell (problem, solver, seed) of a sweep that the store does not "
                       "hold yet; running it again resumes it. See docs/bench.md for the sweep file.")
    b.add_argument("sweep", nargs="?", help="sweep file or bundled sweep name (see --list)")
    b.add_argument("--problem", action="append", metavar="NAME", help="problem(s) to sweep (replace the file's)")
    b.add_argument("--solver", action="append", metavar="NAME", help="solver(s) to sweep (replace the file's)")
    b.add_argument("--seeds", help="seeds: a count (3), a list (0,4,7) or a range (2-5); replace the file's")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every solver")
    b.add_argument("--problem-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override for every problem (e.g. test.scenarios=1024)")
    b.add_argument("--device", default=None, help="torch device of every cell (default: the sweep's, else cpu)")
    b.add_argument("--store", default=None, help="results store (default $OPSRL_STORE or ./opsrl-results.sqlite)")
    b.add_argument("--lock-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for a store locked by another process (default 10)")
    b.add_argument("--executor", default="local", choices=["local", "ray"], help="where cells run (default local)")
    b.add_argument("--address", default=None, help="Ray cluster address (default: start a local one; 'auto': join)")
    b.add_argument("--retries", type=int, default=None, help="Ray: retries of a cell whose worker died (default: the sweep's, 2)")
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
    rp.add_argument("--lock-timeout", type=float, default=10.0, metavar="S",
                    help="seconds to wait for a store locked by another process (default 10)")
    rp.set_defaults(func=cmd_report)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .bench.store import StoreError

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, StoreError, ValueError) as e:
        print(f"opsrl: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("opsrl: interrupted; nothing was recorded for the unfinished run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
