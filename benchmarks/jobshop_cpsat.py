"""CP-SAT on standard job-shop instances: proofs of optimality and gaps to the best-known makespans.

Every CP-SAT schedule is checked by the independent validator (opsrl.jobshop.check). Examples:

    python benchmarks/jobshop_cpsat.py --instances ft06 la01 ta01 --time-limit 600      # proofs
    python benchmarks/jobshop_cpsat.py --taillard --time-limit 60 --workers 2           # all 80
    python benchmarks/jobshop_cpsat.py --taillard --json out.json --update              # resume / extend
    python benchmarks/jobshop_cpsat.py --taillard --per-class 2 --time-limit 60         # 2 per size class
    python benchmarks/jobshop_cpsat.py --all --time-limit 2                             # validity everywhere

Reference: Da Col and Teppan (2022) report CP-SAT (4 workers, 600 s) at 0.05% mean gap on Taillard
15x15 and 1.54% over all 80 instances.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict

from tqdm import tqdm

from opsrl.jobshop import check, cpsat
from opsrl.jobshop import instances as I


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", nargs="*", default=[], help="instance names")
    ap.add_argument("--taillard", action="store_true", help="ta01-ta80, grouped by size class")
    ap.add_argument("--all", action="store_true", help="all 242 standard instances")
    ap.add_argument("--per-class", type=int, default=10, help="with --taillard: first N instances of each class")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-warm-start", action="store_true")
    ap.add_argument("--json", default="", help="write the per-instance results to this file")
    ap.add_argument(
        "--update",
        action="store_true",
        help="with --json: keep that file's rows (same time limit and workers), solve only the "
        "instances it lacks, and rewrite it after every instance",
    )
    args = ap.parse_args()
    if args.update and not args.json:
        ap.error("--update needs --json FILE")

    names = list(args.instances)
    if args.taillard:
        names += [f"ta{10 * c + i:02d}" for c in range(8) for i in range(1, args.per_class + 1)]
    if args.all:
        names += I.names()
    if not names:
        ap.error("give --instances, --taillard or --all")
    kept = _kept_rows(args) if args.update else []
    done = {r["instance"] for r in kept}
    names = [n for n in names if n not in done]
    insts = [I.load(n) for n in names]
    hints = {} if args.no_warm_start else {i.name: h for i, h in zip(insts, cpsat.best_rule_schedules(insts))}

    rows = list(kept)
    if kept:
        print(f"kept {len(kept)} instances from {args.json}; solving {len(names)}")
    print(
        f"CP-SAT, time limit {args.time_limit:g} s, {args.workers} workers, "
        f"warm start {'off' if args.no_warm_start else 'best dispatching rule'}"
    )
    print(
        f"{'instance':<9}{'size':>8}{'hint':>8}{'CP-SAT':>8}{'bound':>8}{'best known':>11}{'gap %':>8}"
        f"{'status':>10}{'seconds':>9}{'valid':>7}"
    )
    for inst in tqdm(insts, desc="cpsat", leave=False):
        h = hints.get(inst.name)
        t0 = time.perf_counter()
        r = cpsat.solve(inst, args.time_limit, args.workers, h["start"] if h else None)
        secs = time.perf_counter() - t0
        viol = (
            check.violations(inst.machine, inst.duration, r.start, r.end, r.makespan)
            if r.status in ("optimal", "feasible")
            else [f"no schedule ({r.status})"]
        )
        ok = not viol
        bk = I.best_known(inst.name)
        gap = 100.0 * (r.makespan - bk) / bk
        rows.append(
            {
                "instance": inst.name,
                "size": inst.size,
                "hint": h["makespan"] if h else None,
                "makespan": r.makespan,
                "lower_bound": r.lower_bound,
                "best_known": bk,
                "gap_pct": gap,
                "status": r.status,
                "seconds": secs,
                "valid": ok,
                "violations": viol[:5],
            }
        )
        tqdm.write(
            f"{inst.name:<9}{inst.size:>8}{(h['makespan'] if h else float('nan')):>8.0f}{r.makespan:>8.0f}"
            f"{r.lower_bound:>8.0f}{bk:>11}{gap:>8.2f}{r.status:>10}{secs:>9.1f}{str(ok):>7}"
        )
        if args.update:
            _write(args, rows)
    rows.sort(key=lambda r: _order(r["instance"]))
    by_size = defaultdict(list)
    for r in rows:
        by_size[f"{r['instance'].rstrip('0123456789')} {r['size']}" if args.all else r["size"]].append(r)
    print(f"\n{'size class':<12}{'n':>4}{'mean gap %':>12}{'optimal':>9}{'valid':>7}")
    for size, rs in by_size.items():
        print(
            f"{size:<12}{len(rs):>4}{statistics.mean(r['gap_pct'] for r in rs):>12.2f}"
            f"{sum(r['status'] == 'optimal' for r in rs):>9}{sum(r['valid'] for r in rs):>7}"
        )
    print(
        f"{'all':<12}{len(rows):>4}{statistics.mean(r['gap_pct'] for r in rows):>12.2f}"
        f"{sum(r['status'] == 'optimal' for r in rows):>9}{sum(r['valid'] for r in rows):>7}"
    )
    if args.json:
        _write(args, rows)


def _order(name: str) -> tuple[str, int]:
    stem = name.rstrip("0123456789")
    return stem, int(name[len(stem) :] or 0)


def _kept_rows(args) -> list[dict]:
    """Rows of an earlier run measured under the same time limit and worker count."""
    try:
        with open(args.json) as f:
            old = json.load(f)
    except FileNotFoundError:
        return []
    if (old.get("time_limit"), old.get("workers")) != (args.time_limit, args.workers):
        raise SystemExit(
            f"{args.json}: measured with time_limit={old.get('time_limit')}, "
            f"workers={old.get('workers')}; this run asks for {args.time_limit:g} s and "
            f"{args.workers} workers, so its rows cannot be merged"
        )
    return old["rows"]


def _write(args, rows: list[dict]) -> None:
    """Write through a temporary file so an interrupted run never leaves a truncated table."""
    tmp = args.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(
            {
                "time_limit": args.time_limit,
                "workers": args.workers,
                "rows": sorted(rows, key=lambda r: _order(r["instance"])),
            },
            f,
            indent=1,
        )
    os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
