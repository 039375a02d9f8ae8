"""Inventory networks: learned GNN vs MLP vs heuristics vs bounds, and GNN size transfer.

    python benchmarks/inventory_networks.py --time-limit 240 --out benchmarks/results/inventory_networks.json

HDPO runs the bundled ``hdpo_gnn`` and ``hdpo_mlp_net`` settings for ``--time-limit`` seconds each
(no early stopping); ``--problems`` and ``--solvers`` pick a subset.

Every solver of a problem is evaluated on the same test scenarios (``--test-scenarios`` x
``--test-periods``, warm-up ``--test-warmup``) through :func:`opsrl.bench.runner.run`, which also
records the reference (optimum or lower bound) and the gap. Then a GNN trained on ``warehouse_n10``
is evaluated on ``warehouse_n50`` (size transfer) next to echelon stock there, and a picture of one
network trajectory is saved (``--plot``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

PROBLEMS = ["serial_K4", "warehouse_n3", "warehouse_n10", "transshipment_n5", "multi_warehouse_w3_n6", "identical_n50"]
SOLVERS = ["echelon_stock", "base_stock", "hdpo_mlp_net", "hdpo_gnn", "hindsight_lp"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", nargs="*", default=PROBLEMS)
    ap.add_argument("--solvers", nargs="*", default=SOLVERS)
    ap.add_argument("--time-limit", type=float, default=90.0, help="seconds of HDPO training per run")
    ap.add_argument("--test-scenarios", type=int, default=128)
    ap.add_argument("--test-periods", type=int, default=250)
    ap.add_argument("--test-warmup", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-transfer", action="store_true")
    ap.add_argument("--plot", default="docs/figures/inventory_network_trajectory.png")
    ap.add_argument("--out", default="benchmarks/results/inventory_networks.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from opsrl.bench.runner import run

    test = {"scenarios": a.test_scenarios, "periods": a.test_periods, "warmup": a.test_warmup}
    learned = {
        "max_steps": 100000,
        "time_limit": a.time_limit,
        "patience": 0,
        "threads": a.threads,
        "dev_scenarios": 128,
        "dev_periods": 150,
    }
    rows = []
    for prob in a.problems:
        for solver in a.solvers:
            over = dict(learned) if solver.startswith("hdpo") else {}
            if solver == "base_stock":
                over.update({"dev_scenarios": 256, "dev_periods": 200})
            t0 = time.perf_counter()
            rec = run(
                f"inventory/{prob}",
                solver,
                progress=True,
                trace=False,
                solver_overrides=over,
                problem_overrides={"test": test},
            )
            row = {
                "problem": prob,
                "solver": solver,
                "cost": rec["test_cost"],
                "stderr": rec["test_stderr"],
                "reference": rec["reference"],
                "gap_pct": rec["gap_pct"],
                "seconds": time.perf_counter() - t0,
                "train_seconds": rec["train_seconds"],
                "steps": rec["info"].get("steps"),
                "parameters": rec["info"].get("parameters"),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    transfer = None if a.no_transfer else size_transfer(a, test)
    out = {"rows": rows, "transfer": transfer, "test": test, "time_limit": a.time_limit, "threads": a.threads}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(table(rows, transfer))


def size_transfer(a, test):
    from opsrl.algos import hdpo
    from opsrl.core import SolveContext, evaluate, validate
    from opsrl.inventory import FAMILY
    from opsrl.inventory.network_refs import ECHELON_OPTIONS, fit_echelon
    from opsrl.nn import GNNPolicy
    from opsrl.registry import load_problem, load_solver

    small = load_problem("inventory/warehouse_n10")
    large = load_problem("inventory/warehouse_n50", {"test": test})
    _, _, cfg = load_solver(
        "hdpo_gnn",
        FAMILY,
        {
            "time_limit": a.time_limit,
            "patience": 0,
            "max_steps": 100000,
            "threads": a.threads,
            "dev_scenarios": 128,
            "dev_periods": 150,
        },
    )
    torch.manual_seed(0)
    pol = GNNPolicy(small, cfg["policy"]["hidden"][0], cfg["policy"]["layers"])
    pol, curve = hdpo.train(small, pol, cfg["options"], SolveContext(seed=0))
    big = GNNPolicy(large, cfg["policy"]["hidden"][0], cfg["policy"]["layers"])
    big.load_state_dict(pol.state_dict())
    ts = large.test_set()
    ev = evaluate(large, big, ts, warmup=large.test_warmup)
    ech = fit_echelon(large, validate({}, ECHELON_OPTIONS, "bench"), {}, SolveContext(), True)
    ev_e = evaluate(large, ech.policy, ts, warmup=large.test_warmup)
    ref = FAMILY.reference(large)
    res = {
        "gnn_n10_on_n50": ev.mean,
        "gnn_stderr": ev.stderr,
        "echelon_n50": ev_e.mean,
        "echelon_stderr": ev_e.stderr,
        "reference": ref.as_dict(),
        "train_seconds": curve[-1]["seconds"],
        "steps": curve[-1]["step"],
    }
    print(json.dumps(res), flush=True)
    if a.plot:
        plot(large, big, ts, a.plot)
    return res


def plot(problem, policy, scenarios, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from opsrl.core import rollout

    with torch.no_grad():
        policy.eval()
        tr = rollout(problem, policy, scenarios.select(slice(0, 1)), periods=80, record=True)
    oh = torch.stack([s["on_hand"][0] for s in tr.states]).numpy()
    fig, ax = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    ax[0].plot(oh[:, 0], color="k", label="warehouse on hand")
    ax[0].legend(loc="upper right")
    for i in range(1, 6):
        ax[1].plot(oh[:, i], label=f"store {i - 1}")
    ax[1].plot(scenarios["demand"][0, :80, 0].numpy(), "k:", lw=0.8, label="store 0 demand")
    ax[1].legend(loc="upper right", fontsize=7, ncol=3)
    ax[1].set_xlabel("period")
    ax[0].set_title("GNN trained on warehouse_n10, run on warehouse_n50 (one test scenario)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def table(rows, transfer) -> str:
    lines = ["| problem | solver | cost per store-period | reference | gap |", "| --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        ref = r["reference"]
        refs = f"{ref['value']:.3f} ({ref['kind']})" if ref else ""
        gap = f"{r['gap_pct']:.2f}%" if r["gap_pct"] is not None else ""
        lines.append(f"| {r['problem']} | {r['solver']} | {r['cost']:.3f} +- {r['stderr']:.3f} | {refs} | {gap} |")
    if transfer:
        lines.append("")
        lines.append(
            f"size transfer: GNN trained on warehouse_n10, run on warehouse_n50: "
            f"{transfer['gnn_n10_on_n50']:.3f} +- {transfer['gnn_stderr']:.3f}; echelon stock searched on "
            f"n50: {transfer['echelon_n50']:.3f} +- {transfer['echelon_stderr']:.3f}; "
            f"bound {transfer['reference']['value']:.3f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
