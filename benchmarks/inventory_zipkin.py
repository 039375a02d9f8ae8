"""HDPO and the classic heuristics on the 16 lost-sales cells of Zipkin (2008), against the exact DP optimum.

    python benchmarks/inventory_zipkin.py [--cells p9_L4,p4_L1] [--solvers hdpo_mlp,capped_base_stock]
        [--time-limit 240] [--out benchmarks/results/inventory_zipkin.md] [--update]

Every solver is evaluated on the problem's test split (8,192 scenarios x 600 periods, the first 100 left
out). Besides the gap to the DP optimum with its standard error, the table gives the *paired* gap: the
DP's optimal policy is simulated on the same test scenarios, and the mean difference of the two costs
(common random numbers) estimates the gap with a far smaller standard error.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from opsrl.core import SolveContext, evaluate
from opsrl.inventory import FAMILY, DPPolicy, solve_dp
from opsrl.registry import load_problem, load_solver

CELLS = [f"p{p}_L{L}" for p in (4, 9, 19, 39) for L in (1, 2, 3, 4)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--solvers", default="hdpo_mlp,base_stock,capped_base_stock,myopic")
    ap.add_argument("--time-limit", type=float, default=0.0, help="HDPO training seconds per cell (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/inventory_zipkin.md")
    ap.add_argument(
        "--update",
        action="store_true",
        help="merge into the rows already in OUT's .json (replacing the cells and solvers run now)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    cells = args.cells.split(",")
    solvers = args.solvers.split(",")
    for cell in tqdm(cells, desc="cells"):
        name = f"inventory/lost_sales_{cell}"
        prob = load_problem(name)
        test = prob.test_set()
        dpres = solve_dp(prob.mean, prob.L, prob.p, prob.h)
        opt_sim = evaluate(prob, DPPolicy(dpres), test, warmup=prob.test_warmup).per_scenario
        for solver in solvers:
            over = {"time_limit": args.time_limit} if solver.startswith("hdpo") and args.time_limit else {}
            _, method, cfg = load_solver(solver, FAMILY, over)
            torch.manual_seed(args.seed)
            t0 = time.perf_counter()
            outcome = method.fit(
                prob, cfg["options"], cfg, SolveContext(seed=args.seed, progress=False, source=cfg["source"])
            )
            train_seconds = time.perf_counter() - t0
            ev = evaluate(prob, outcome.policy, test, warmup=prob.test_warmup)
            rec = {
                "test_cost": ev.mean,
                "test_stderr": ev.stderr,
                "gap_pct": 100 * (ev.mean / dpres.cost - 1),
                "gap_stderr_pct": 100 * ev.stderr / dpres.cost,
                "train_seconds": train_seconds,
                "info": outcome.info,
            }
            diff = ev.per_scenario - opt_sim
            paired = 100 * diff.mean().item() / dpres.cost
            paired_se = 100 * diff.std().item() / math.sqrt(diff.numel()) / dpres.cost
            rows.append(
                {
                    "cell": cell,
                    "solver": solver,
                    "optimum": dpres.cost,
                    "test_cost": rec["test_cost"],
                    "test_stderr": rec["test_stderr"],
                    "gap_pct": rec["gap_pct"],
                    "gap_stderr_pct": rec["gap_stderr_pct"],
                    "paired_gap_pct": paired,
                    "paired_gap_stderr_pct": paired_se,
                    "train_seconds": rec["train_seconds"],
                    "steps": rec["info"].get("steps"),
                }
            )
            tqdm.write(
                f"{cell:8s} {solver:18s} cost {rec['test_cost']:.4f} opt {dpres.cost:.4f} "
                f"gap {rec['gap_pct']:.3f}% (paired {paired:.3f} +- {paired_se:.3f}%) "
                f"train {rec['train_seconds']:.0f}s"
            )
    out = Path(args.out)
    if args.update and out.with_suffix(".json").is_file():  # keep the other (cell, solver) rows of an earlier run
        done = {(r["cell"], r["solver"]) for r in rows}
        old = json.loads(out.with_suffix(".json").read_text())
        rows = [r for r in old if (r["cell"], r["solver"]) not in done] + rows
    out.parent.mkdir(parents=True, exist_ok=True)
    text = table(rows)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(text)


def table(rows: list[dict]) -> str:
    """One line per cell: the DP optimum, HDPO's test cost and paired gap, and the other solvers' gaps."""
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    learned = [s for s in solvers if s.startswith("hdpo")]
    others = [s for s in solvers if s not in learned]
    by = {(r["cell"], r["solver"]): r for r in rows}
    cells = [c for c in CELLS if any(k[0] == c for k in by)] + sorted({r["cell"] for r in rows} - set(CELLS))
    head = ["cell", "DP optimum"]
    for s in learned:
        head += [f"{s} test cost +- s.e.", f"{s} gap % (paired +- s.e.)", f"{s} train s"]
    head += [f"{s} gap %" for s in others]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for c in cells:
        opt = next(by[k]["optimum"] for k in by if k[0] == c)
        line = [c, f"{opt:.4f}"]
        for s in learned:
            r = by.get((c, s))
            line += (
                [
                    f"{r['test_cost']:.4f} +- {r['test_stderr']:.4f}",
                    f"{r['paired_gap_pct']:.3f} +- {r['paired_gap_stderr_pct']:.3f}",
                    f"{r['train_seconds']:.0f}",
                ]
                if r
                else ["", "", ""]
            )
        line += [f"{by[(c, s)]['paired_gap_pct']:.2f}" if (c, s) in by else "" for s in others]
        lines.append("| " + " | ".join(line) + " |")
    lines.append("")
    for s in solvers:
        sub = [r for r in rows if r["solver"] == s]
        within = sum(r["paired_gap_pct"] <= 0.25 for r in sub)
        worst = max(sub, key=lambda r: r["paired_gap_pct"])
        lines.append(
            f"- {s}: mean paired gap {sum(r['paired_gap_pct'] for r in sub) / len(sub):.3f}%, {within} of "
            f"{len(sub)} cells within 0.25%, worst {worst['paired_gap_pct']:.3f}% ({worst['cell']})"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"total {time.time() - t0:.0f} s")
