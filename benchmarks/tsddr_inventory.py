"""TS-DDR on the inventory networks against HDPO, next to echelon base stock and the store-level bound.

    python benchmarks/tsddr_inventory.py --problems warehouse_n3 transshipment_n5 --time-limit 150 --lr 1e-2 \
        --out benchmarks/results/tsddr_inventory_lr1e-2.json
    python benchmarks/tsddr_inventory.py --problems transshipment_n5 --time-limit 150 --lr 1e-3 \
        --out benchmarks/results/tsddr_inventory_lr1e-3.json
    python benchmarks/tsddr_inventory.py --lp-speed --problems warehouse_n3 transshipment_n5 \
        --out benchmarks/results/tsddr_inventory_lp_speed.json

``--lp-speed`` measures the LP back ends on the stage LPs TS-DDR solves (:func:`lp_speed`) instead of training.
Every solver of a problem runs through :func:`opsrl.bench.runner.run` on the same test scenarios (``--test-scenarios``
x ``--test-periods``, warm-up ``--test-warmup``; the defaults are those of ``benchmarks/inventory_networks.py``
that ``benchmarks/results/inventory_networks_more.json`` was measured with). HDPO is not re-trained here (its
training is 180 s per cell): its figures are read from that file, and ``echelon_stock`` is re-run to show that
this run's test scenarios and simulator reproduce that file's echelon-stock cost exactly (same scenarios hash is
not stored there, so the cost itself is the check). HDPO's decision time per stage is timed here on the same
test batch with the same policy architecture (``hdpo_mlp_net``: weights do not change the time).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

SOLVERS = ["echelon_stock", "tsddr_inventory"]
HDPO_FILE = "benchmarks/results/inventory_networks_more.json"


def hdpo_decision_time(problem: str, test: dict, periods: int = 50) -> dict:
    """Seconds per stage of an ``hdpo_mlp_net`` policy (the architecture; untrained) on the test batch."""
    from opsrl.core import rollout
    from opsrl.nn import build_policy
    from opsrl.registry import family, load_problem, load_solver

    prob = load_problem(f"inventory/{problem}", {"test": test})
    _, _, scfg = load_solver("hdpo_mlp_net", family("inventory"))
    policy = build_policy(prob, scfg["policy"], scfg["source"]).eval()
    sc = prob.test_set()
    t0 = time.perf_counter()
    with torch.no_grad():
        rollout(prob, policy, sc, periods=periods)
    s = (time.perf_counter() - t0) / periods
    return {"decision_seconds_per_stage": s, "decision_seconds_per_stage_per_scenario": s / sc.n, "batch": sc.n}


def _stage_lps(prob, policy, scenarios, penalty) -> list:
    """The target LPs (one batch per stage) of a closed-loop rollout of ``policy`` (HiGHS)."""
    from opsrl.algos import lagrangian as L

    caught, orig = [], L.solve_lp

    def grab(lp, backend, **kw):
        caught.append(L._detached(lp))
        return orig(lp, backend, **kw)

    L.solve_lp = grab
    try:
        with torch.no_grad():
            L.rollout(prob, policy, scenarios, penalty, "highs", "none")
    finally:
        L.solve_lp = orig
    return caught


def _timed(lps, backend, **kw):
    t0 = time.perf_counter()
    sols = [solve_any(lp, backend, **kw) for lp in lps]
    return time.perf_counter() - t0, sols


def solve_any(lp, backend, **kw):
    from opsrl.core.lp import solve

    return solve(lp, backend, **kw)


def lp_speed(
    problem: str,
    train_rollouts: int = 3,
    train_batch: int = 16,
    periods: int = 40,
    big: int = 256,
    train_steps: int = 4,
) -> dict:
    """Warm HiGHS (``solve(lp, "highs")``: one model per batch, each LP warm from the previous one) against the
    basis cache (``solve(lp, "basis_cache")`` on a fresh :class:`BasisCache`, default settings, and with every
    held basis tried: ``candidates=1024``) on the target LPs of the untrained ``tsddr_inventory`` rule: the
    training batch (``train_rollouts`` rollouts of ``train_batch`` training scenarios x ``periods``) and ``big``
    dev scenarios x ``periods``. Each LP list is solved cold (the cache starts empty) and a second time (every
    LP's own optimal basis is held), with the time the cache spends in HiGHS (its misses) and the largest
    differences to HiGHS in value (relative) and in the target rows' duals. Then ``train_steps`` whole training
    steps (rollout with gradients, ``active_set`` Jacobian, backward; the rule is not updated) per back end, the
    cache (the process's) starting empty."""
    from opsrl.algos import lagrangian as L
    from opsrl.core import lp_cache
    from opsrl.registry import family, load_problem, load_solver

    prob = load_problem(f"inventory/{problem}")
    _, _, scfg = load_solver("tsddr_inventory", family("inventory"))
    policy = L.build_target_policy(prob, scfg["policy"], scfg["source"])
    P = float(prob.target_penalty)
    sets = {
        f"batch {train_batch}": [
            lp
            for s in range(train_rollouts)
            for lp in _stage_lps(prob, policy, prob.sample(train_batch, "train", s, periods), P)
        ],
        f"batch {big}": _stage_lps(prob, policy, prob.sample(big, "dev", 0, periods), P),
    }
    k = prob.topo.n
    highs_s = [0.0]
    inner = lp_cache.solve_highs

    def counted(*a, **kw):
        t0 = time.perf_counter()
        try:
            return inner(*a, **kw)
        finally:
            highs_s[0] += time.perf_counter() - t0

    out = {"problem": problem, "lp_rows_cols": list(sets[f"batch {big}"][0].shape), "target_rows": k, "sets": {}}
    lp_cache.solve_highs = counted
    try:
        for name, lps in sets.items():
            n = sum(lp.batch for lp in lps)
            th, ref = _timed(lps, "highs")
            row = {"lps": n, "batches": len(lps), "highs_lps_per_s": n / th}
            for label, cand in (("cache", 4), ("cache_all_bases", 1024)):
                cache = lp_cache.BasisCache(candidates=cand)
                for rnd in ("cold", "again"):
                    cache.stats = {s: 0 for s in cache.stats}
                    highs_s[0] = 0.0
                    tc, sols = _timed(lps, "basis_cache", cache=cache)
                    st = cache.stats
                    dv = max(float(((a.value - b.value).abs() / (1 + b.value.abs())).max()) for a, b in zip(sols, ref))
                    dy = max(float((a.y[:, -k:] - b.y[:, -k:]).abs().max()) for a, b in zip(sols, ref))
                    row[f"{label}_{rnd}"] = {
                        "lps_per_s": n / tc,
                        "speedup": th / tc,
                        "hit_rate": st["hits"] / n,
                        "bases": cache.bases,
                        "ms_per_miss_in_highs": 1e3 * highs_s[0] / max(st["misses"], 1),
                        "ms_per_lp_outside_highs": 1e3 * (tc - highs_s[0]) / n,
                        "max_rel_value_diff": dv,
                        "max_target_dual_diff": dy,
                    }
            row["highs_ms_per_lp"] = 1e3 * th / n
            out["sets"][name] = row
            print(problem, name, json.dumps(row, indent=1, default=float), flush=True)
    finally:
        lp_cache.solve_highs = inner
    # whole training steps (rollout with gradients and the backward pass; the rule is not updated) per back end
    from opsrl.core import scenario_costs

    steps = {}
    for backend in ("highs", "basis_cache"):
        lp_cache.DEFAULT_CACHE.clear()
        t0 = time.perf_counter()
        for s in range(train_steps):
            r = L.rollout(prob, policy, prob.sample(train_batch, "train", 100 + s, periods), P, backend, "active_set")
            policy.zero_grad(set_to_none=True)
            scenario_costs(prob, r["loss"]).mean().backward()
        steps[backend] = {"seconds_per_step": (time.perf_counter() - t0) / train_steps}
        if backend == "basis_cache":
            steps[backend]["hit_rate"] = lp_cache.DEFAULT_CACHE.hit_rate
    lp_cache.DEFAULT_CACHE.clear()
    out["training_steps"] = {"steps": train_steps, "batch": train_batch, "periods": periods, **steps}
    print(problem, "training steps", json.dumps(out["training_steps"], default=float), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", nargs="*", default=["warehouse_n3", "transshipment_n5"])
    ap.add_argument("--solvers", nargs="*", default=SOLVERS)
    ap.add_argument("--time-limit", type=float, default=150.0, help="seconds of TS-DDR training per run")
    ap.add_argument("--test-scenarios", type=int, default=256)
    ap.add_argument("--test-periods", type=int, default=300)
    ap.add_argument("--test-warmup", type=int, default=50)
    ap.add_argument("--lr", type=float, default=0.0, help="TS-DDR's learning rate (0: the solver file's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backend", default="", help="TS-DDR's LP back end (empty: the solver file's)")
    ap.add_argument("--lp-speed", action="store_true", help="measure the LP back ends on the stage LPs, no training")
    ap.add_argument("--hdpo", default=HDPO_FILE, help="stored HDPO results on the same test specification")
    ap.add_argument("--out", default="benchmarks/results/tsddr_inventory.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.lp_speed:
        res = {"rows": [lp_speed(p) for p in a.problems], "threads": a.threads, "load_average": os.getloadavg()}
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1, default=float))
        return
    from opsrl.bench.runner import run

    test = {"scenarios": a.test_scenarios, "periods": a.test_periods, "warmup": a.test_warmup}
    stored = json.loads(Path(a.hdpo).read_text()) if Path(a.hdpo).is_file() else {"rows": [], "test": None}
    same_spec = stored.get("test") == test
    rows = []
    for prob in a.problems:
        for solver in a.solvers:
            over = {}
            if solver.startswith(("tsddr", "tsldr")):
                over = {"time_limit": a.time_limit, "max_steps": 100000, "threads": a.threads}
                if a.lr:
                    over["lr"] = a.lr
                if a.backend:
                    over["backend"] = a.backend
            t0 = time.perf_counter()
            rec = run(
                f"inventory/{prob}",
                solver,
                progress=False,
                trace=False,
                solver_overrides=over,
                problem_overrides={"test": test},
            )
            info = rec["info"]
            row = {
                "problem": prob,
                "solver": solver,
                "cost": rec["test_cost"],
                "stderr": rec["test_stderr"],
                "reference": rec["reference"],
                "gap_pct": rec["gap_pct"],
                "scenarios_hash": rec["test"]["scenarios_hash"],
                "seconds": time.perf_counter() - t0,
                "train_seconds": rec["train_seconds"],
                "eval_seconds": rec["eval_seconds"],
                "steps": info.get("steps"),
                "best_step": info.get("best_step"),
                "parameters": info.get("parameters"),
                "target_violation_share": info.get("target_violation_share"),
                "decision_seconds_per_stage": info.get("decision_seconds_per_stage"),
                "decision_seconds_per_stage_per_scenario": info.get("decision_seconds_per_stage_per_scenario"),
                "lp_seconds_per_stage": info.get("lp_seconds_per_stage"),
                "curve": rec["curve"] if solver.startswith(("tsddr", "tsldr")) else None,
                "per_scenario": None,
                "source": "this run",
            }
            rows.append(row)
            print(
                f"{prob:18s} {solver:16s} {row['cost']:.4f} +- {row['stderr']:.4f}  gap {row['gap_pct']:+.1f}%  "
                f"train {row['train_seconds']:.0f}s steps {row['steps']}  eval {row['eval_seconds']:.0f}s",
                flush=True,
            )
        for r in stored["rows"]:
            if r["problem"] == prob and same_spec:
                rows.append({**r, "source": a.hdpo})
        if "hdpo_mlp_net" in {r["solver"] for r in rows if r["problem"] == prob}:
            rows.append({"problem": prob, "solver": "hdpo_mlp_net (decision time)", **hdpo_decision_time(prob, test)})
    checks = []
    for r in rows:
        twin = [s for s in rows if s["problem"] == r["problem"] and s["solver"] == r["solver"] and s is not r]
        if r.get("source") == "this run" and r["solver"] == "echelon_stock" and twin:
            checks.append(
                {
                    "problem": r["problem"],
                    "echelon_stock_here": r["cost"],
                    "echelon_stock_stored": twin[0]["cost"],
                    "same": abs(r["cost"] - twin[0]["cost"]) <= 1e-6 * abs(twin[0]["cost"]),
                }
            )
    out = {
        "rows": rows,
        "test": test,
        "time_limit": a.time_limit,
        "lr": a.lr or "solver file",
        "backend": a.backend or "solver file",
        "threads": a.threads,
        "same_test_set_checks": checks,
        "load_average": os.getloadavg(),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1, default=float))
    print(json.dumps(checks, indent=1))


if __name__ == "__main__":
    main()
