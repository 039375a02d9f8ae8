"""The ``opsrl`` command.

``opsrl run [PROBLEM] [SOLVER]`` trains if the solver learns, evaluates on the problem's test split,
prints a summary (or one JSON object with ``--json``) and appends the run to the results store.
``opsrl list`` shows the bundled problems and solvers.
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
