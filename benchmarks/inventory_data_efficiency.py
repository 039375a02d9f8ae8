"""Data efficiency and size transfer of HDPO policies on one-warehouse networks: GNN against the flat MLP.

For each problem (``warehouse_n3``, ``warehouse_n10``, ``warehouse_n50``), each policy (``hdpo_gnn``,
``hdpo_mlp_net``, their bundled settings) and each training-set size (the pool of training scenarios HDPO
draws its batches from: 128, 1024, 8192), HDPO trains for ``--time-limit`` seconds (one thread, seed 0,
no early stopping, best on 128 dev scenarios kept), and the policy is evaluated on the problem's test
scenarios (the same for every cell of a problem). The table reports each cost and how far it is above
the same policy's best over the three sizes. ``--transfer``: a GNN trained on ``warehouse_n10`` (8192
scenarios) runs unchanged on 30 and 50 stores, next to echelon stock searched on each.

    python benchmarks/inventory_data_efficiency.py --problems warehouse_n3 warehouse_n10 --out a.json
    python benchmarks/inventory_data_efficiency.py --problems warehouse_n50 --transfer --out b.json
    python benchmarks/inventory_data_efficiency.py --table a.json b.json

Rows are written after every cell; ``--update`` keeps the cells already in ``--out`` and runs the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from opsrl.core import SolveContext, evaluate
from opsrl.registry import family, fit_solver, load_problem, load_solver

SIZES = (128, 1024, 8192)
SOLVERS = ("hdpo_gnn", "hdpo_mlp_net")


def train(problem, solver: str, n: int, a) -> tuple[torch.nn.Module, dict]:
    over = {
        "train_scenarios": n,
        "time_limit": a.time_limit,
        "max_steps": 100000,
        "patience": 0,
        "threads": a.threads,
        "dev_scenarios": 128,
        "dev_periods": 150,
    }
    _, method, cfg = load_solver(solver, family("inventory"), over)
    torch.manual_seed(0)
    out = method.fit(
        problem, cfg["options"], cfg, SolveContext(seed=0, progress=True, source=cfg["source"], fit_solver=fit_solver)
    )
    return out.policy, out.info


def write(path: str, rows: list[dict], transfer: dict | None) -> None:
    tmp = path + ".tmp"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w") as f:
        json.dump({"rows": rows, "transfer": transfer}, f, indent=1)
    os.replace(tmp, path)


def transfer(a) -> dict:
    from opsrl.core import validate
    from opsrl.inventory.network_refs import ECHELON_OPTIONS, fit_echelon
    from opsrl.nn import build_policy

    small = load_problem("inventory/warehouse_n10", {"test": TEST(a)})
    pol, info = train(small, "hdpo_gnn", 8192, a)
    res = {"steps": info.get("steps"), "sizes": {}}
    for n in (10, 30, 50):
        big = load_problem("inventory/warehouse_n50", {"stores": n, "test": TEST(a)}) if n != 10 else small
        ts = big.test_set()
        moved = pol
        if n != 10:  # the same network (weights shared over nodes and lanes) on the larger graph
            moved = build_policy(big, load_solver("hdpo_gnn", family("inventory"))[2]["policy"])
            moved.load_state_dict(pol.state_dict())
        moved.eval()
        with torch.no_grad():
            ev = evaluate(big, moved, ts, warmup=big.test_warmup)
        ech = fit_echelon(big, validate({}, ECHELON_OPTIONS, "bench"), {}, SolveContext(), True)
        with torch.no_grad():
            ev_e = evaluate(big, ech.policy, ts, warmup=big.test_warmup)
        res["sizes"][str(n)] = {
            "gnn_trained_on_10": ev.mean,
            "gnn_stderr": ev.stderr,
            "echelon": ev_e.mean,
            "echelon_stderr": ev_e.stderr,
            "gap_to_echelon_pct": 100 * (ev.mean - ev_e.mean) / ev_e.mean,
        }
        print(json.dumps({"stores": n, **res["sizes"][str(n)]}), flush=True)
    return res


def TEST(a) -> dict:
    return {"scenarios": a.test_scenarios, "periods": a.test_periods, "warmup": a.test_warmup}


def table(paths: list[str]) -> str:
    rows, transfers = [], []
    for p in paths:
        d = json.loads(Path(p).read_text())
        rows += d["rows"]
        if d.get("transfer"):
            transfers.append(d["transfer"])
    best = {}
    for r in rows:
        k = (r["problem"], r["solver"])
        best[k] = min(best.get(k, float("inf")), r["cost"])
    lines = ["| problem | policy | 128 scenarios | 1024 | 8192 |", "| --- | --- | ---: | ---: | ---: |"]
    for prob in dict.fromkeys(r["problem"] for r in rows):
        for solver in SOLVERS:
            cells = {r["scenarios"]: r for r in rows if r["problem"] == prob and r["solver"] == solver}
            if not cells:
                continue
            b = best[(prob, solver)]
            txt = [
                f"{cells[n]['cost']:.3f} (+{100 * (cells[n]['cost'] - b) / b:.1f}%, {cells[n]['steps']} steps)"
                if n in cells
                else ""
                for n in SIZES
            ]
            lines.append(f"| {prob} | {solver} | " + " | ".join(txt) + " |")
    for t in transfers:
        lines += [
            "",
            "| stores | GNN trained on 10 stores | echelon stock searched there | GNN vs echelon |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for n, v in t["sizes"].items():
            lines.append(
                f"| {n} | {v['gnn_trained_on_10']:.3f} +- {v['gnn_stderr']:.3f} | {v['echelon']:.3f} +- "
                f"{v['echelon_stderr']:.3f} | {v['gap_to_echelon_pct']:+.1f}% |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", nargs="*", default=["warehouse_n3", "warehouse_n10", "warehouse_n50"])
    ap.add_argument("--solvers", nargs="*", default=list(SOLVERS))
    ap.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    ap.add_argument("--time-limit", type=float, default=100.0, help="seconds of HDPO training per cell")
    ap.add_argument("--test-scenarios", type=int, default=256)
    ap.add_argument("--test-periods", type=int, default=300)
    ap.add_argument("--test-warmup", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--transfer", action="store_true", help="also the size transfer 10 -> 30, 50 stores")
    ap.add_argument("--out", default="benchmarks/results/inventory_data_efficiency.json")
    ap.add_argument("--update", action="store_true", help="keep the cells already in --out")
    ap.add_argument("--table", nargs="*", default=None, help="only print the table of these result files")
    a = ap.parse_args()
    if a.table is not None:
        print(table(a.table or [a.out]))
        return
    torch.set_num_threads(a.threads)
    old = json.loads(Path(a.out).read_text()) if a.update and Path(a.out).exists() else {"rows": [], "transfer": None}
    rows, tr = old["rows"], old.get("transfer")
    done = {(r["problem"], r["solver"], r["scenarios"]) for r in rows}
    for prob_name in a.problems:
        prob = load_problem(f"inventory/{prob_name}", {"test": TEST(a)})
        ref = family("inventory").reference(prob)
        test = prob.test_set()
        for solver in a.solvers:
            for n in a.sizes:
                if (prob_name, solver, n) in done:
                    continue
                t0 = time.perf_counter()
                pol, info = train(prob, solver, n, a)
                with torch.no_grad():
                    ev = evaluate(prob, pol, test, warmup=prob.test_warmup)
                row = {
                    "problem": prob_name,
                    "solver": solver,
                    "scenarios": n,
                    "cost": ev.mean,
                    "stderr": ev.stderr,
                    "steps": info.get("steps"),
                    "best_dev_cost": info.get("best_dev_cost"),
                    "seconds": time.perf_counter() - t0,
                    "reference": None if ref is None else ref.as_dict(),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                write(a.out, rows, tr)
    if a.transfer and tr is None:
        tr = transfer(a)
        write(a.out, rows, tr)
    print(table([a.out]))


if __name__ == "__main__":
    main()
