"""Demand histories: HDPO (MLP on inventory, past demand and calendar) vs the newsvendor baselines.

    python benchmarks/inventory_history.py --time-limit 120 --seeds 0 1 2

On a data-driven problem (default: the bundled synthetic example ``inventory/history_example``) every
method is fitted on the train periods only (HDPO selects its parameters on dev) and evaluated on the same
test windows (the last 20% of the history, one window per series, warm-up excluded): the newsvendor
baselines ``newsvendor_saa``, ``newsvendor_normal``, ``newsvendor_seasonal`` and ``hdpo_mlp`` (the
bundled solver, with ``--time-limit`` seconds of training per seed). Costs are per series and period in
the data's units; the gap of each method to the best baseline is paired (same series, same windows), with
its standard error over series. Per-series costs are printed too. Writes a JSON file (``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

BASELINES = ["newsvendor_saa", "newsvendor_normal", "newsvendor_seasonal"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problem", default="inventory/history_example")
    ap.add_argument("--solver", default="hdpo_mlp")
    ap.add_argument("--time-limit", type=float, default=120.0, help="seconds of HDPO training per seed")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/inventory_history.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from opsrl.core import SolveContext, evaluate
    from opsrl.registry import family, load_problem, load_solver

    prob = load_problem(a.problem)
    fam = family(prob.family)
    test = prob.test_set()
    print(prob.describe())
    per: dict[str, torch.Tensor] = {}
    rows = []

    def record(label, policy, seconds, extra=None):
        ev = evaluate(prob, policy, test, warmup=prob.test_warmup)
        per[label] = ev.per_scenario
        rows.append({"solver": label, "cost": ev.mean, "stderr": ev.stderr, "train_seconds": seconds, **(extra or {})})
        print(f"{label:>22}: {ev.mean:9.3f} +- {ev.stderr:.3f}  ({seconds:.1f} s)", flush=True)

    for name in BASELINES:
        _, method, cfg = load_solver(name, fam)
        t0 = time.perf_counter()
        out = method.fit(prob, cfg["options"], cfg, SolveContext(progress=False, source=cfg["source"]))
        record(name, out.policy, time.perf_counter() - t0)
    over = {"time_limit": a.time_limit, "max_steps": 100000, "patience": 0, "threads": a.threads}
    for seed in a.seeds:
        _, method, cfg = load_solver(a.solver, fam, over)
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        out = method.fit(prob, cfg["options"], cfg, SolveContext(seed=seed, progress=True, source=cfg["source"]))
        record(
            f"{a.solver} (seed {seed})",
            out.policy,
            time.perf_counter() - t0,
            {"steps": out.info.get("steps"), "best_dev_cost": out.info.get("best_dev_cost")},
        )

    best = min(BASELINES, key=lambda n: per[n].mean().item())
    ref = per[best]
    for r in rows:
        diff = per[r["solver"]] - ref
        n = diff.numel()
        r["gap_to_best_baseline_pct"] = 100 * diff.mean().item() / ref.mean().item()
        r["gap_stderr_pct"] = 100 * (diff.std().item() / math.sqrt(n) if n > 1 else math.nan) / ref.mean().item()
        r["per_series"] = dict(
            zip(
                prob.history.items[:n] if n <= len(prob.history.items) else map(str, range(n)),
                per[r["solver"]].tolist(),
            )
        )
    print(f"\n| method | test cost | gap to {best} |\n| --- | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['solver']} | {r['cost']:.2f} +- {r['stderr']:.2f} | "
            f"{r['gap_to_best_baseline_pct']:+.1f}% +- {r['gap_stderr_pct']:.1f}% |"
        )
    items = prob.history.items[: test.n]
    print("\nper series: | method | " + " | ".join(items) + " |")
    for r in rows:
        print(f"| {r['solver']} | " + " | ".join(f"{v:.2f}" for v in r["per_series"].values()) + " |")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(
        json.dumps(
            {
                "problem": a.problem,
                "description": prob.describe(),
                "best_baseline": best,
                "time_limit": a.time_limit,
                "rows": rows,
            },
            indent=1,
        )
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
