"""PPO against PDPPO (the post-decision dual critic) on the same problem, same budget, several seeds.

Both run the same code (:mod:`opsrl.algos.ppo`) with the same options; PDPPO switches the
post-decision critic on (advantage rule ``max``). Learning curves (dev cost per iteration, mean and
range over seeds) go to ``docs/ppo_vs_pdppo.png``; the final policies are evaluated on the problem's test
split (4096 scenarios x 600 periods, 100 left out) against the DP optimum.

    python benchmarks/ppo_vs_pdppo.py --problem inventory/lost_sales_p9_L2 --seeds 0 1 2 --iterations 60
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from opsrl.algos import METHODS, ppo
from opsrl.core import SolveContext, evaluate, validate
from opsrl.inventory import dp_optimum
from opsrl.registry import load_problem

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problem", default="inventory/lost_sales_p9_L2")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--levels", type=int, default=0, help="categorical orders 0..levels-1 (0: Gaussian head)")
    ap.add_argument("--test-scenarios", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ppo_vs_pdppo.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "ppo_vs_pdppo.png")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    problem = load_problem(args.problem)
    opt = dp_optimum(problem.mean, problem.L, problem.p, problem.h)
    test = problem.sample(args.test_scenarios, "test", 0, periods=600)
    opts = {
        "iterations": args.iterations,
        "batch_size": 128,
        "train_periods": 100,
        "dev_scenarios": 512,
        "dev_periods": 300,
        "eval_every": 5,
        "lr": 1e-3,
    }
    policy = {"levels": [args.levels]} if args.levels else {}
    runs = []
    for method in ("ppo", "pdppo"):
        for seed in args.seeds:
            t0 = time.perf_counter()
            out = METHODS[method].fit(
                problem,
                validate(opts, ppo.OPTIONS, "bench"),
                {"policy": policy},
                SolveContext(seed=seed, progress=True),
            )
            secs = time.perf_counter() - t0
            ev = evaluate(problem, out.policy, test, warmup=100)
            run = {
                "method": method,
                "seed": seed,
                "train_seconds": secs,
                "test_cost": ev.mean,
                "test_stderr": ev.stderr,
                "gap_pct": 100 * (ev.mean - opt) / opt,
                "curve": [
                    {"iteration": e["iteration"], "dev_cost": e["dev_cost"], "seconds": e["seconds"]} for e in out.curve
                ],
            }
            runs.append(run)
            print(json.dumps({k: v for k, v in run.items() if k != "curve"}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "dp_optimum": opt,
                "options": opts,
                "policy": policy,
                "runs": runs,
            },
            indent=1,
        )
    )
    print(f"\nDP optimum {opt:.4f}")
    print("| method | test cost per seed | mean gap % | mean train s |\n| --- | --- | ---: | ---: |")
    for method in ("ppo", "pdppo"):
        rs = [r for r in runs if r["method"] == method]
        costs = ", ".join(f"{r['test_cost']:.4f}" for r in rs)
        print(
            f"| {method} | {costs} | "
            f"{sum(r['gap_pct'] for r in rs) / len(rs):.2f} | {sum(r['train_seconds'] for r in rs) / len(rs):.0f} |"
        )
    plot(runs, opt, args.plot, args.problem)


def plot(runs, opt, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for c, method in zip(("C0", "C3"), ("ppo", "pdppo")):
        rs = [r for r in runs if r["method"] == method]
        its = [e["iteration"] for e in rs[0]["curve"]]
        ys = torch.tensor([[e["dev_cost"] for e in r["curve"]] for r in rs])
        ax.plot(its, ys.mean(0), color=c, label=f"{method} (mean of {len(rs)} seeds)")
        ax.fill_between(its, ys.min(0).values, ys.max(0).values, color=c, alpha=0.2)
    ax.axhline(opt, color="k", ls="--", lw=0.8, label="DP optimum")
    ax.set_ylim(opt * 0.98, opt * 1.3)
    ax.set_xlabel("iteration (128 scenarios x 100 periods each)")
    ax.set_ylabel("dev cost per period (greedy)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1:])
