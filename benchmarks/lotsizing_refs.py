"""Non-learned references of the lot-sizing problems on their first test scenarios (resumable JSON).

For each problem: the cover rule (thresholds searched on 256 dev scenarios), two trivial policies (keep the
initial setups for ever; uniformly random allowed choices), the rolling-horizon MIP on expected demand
(``lotsizing_mpc``'s settings), the perfect-information MIP bound (SCIP, ``--bound-time`` seconds per
scenario; the solver's best bound, and its incumbent plan's cost) and the item-decomposition Lagrangian bound
(``opsrl.lotsizing.lagrangian``, ``--lagrangian-iterations`` subgradient steps; and its repaired plan's
cost); the cheap ones on the first ``--scenarios`` test scenarios, the MIPs and the item bound on the first
``--mpc-scenarios`` / ``--bound-scenarios``, every per-scenario cost kept, so that learned policies can be
compared on the same ones.

    python benchmarks/lotsizing_refs.py --problems i25_m10 i25_m15 --scenarios 10 \
        --out benchmarks/results/lotsizing_refs.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from opsrl.core import rollout
from opsrl.lotsizing import lagrangian, mip
from opsrl.lotsizing.rules import CoverRule, search_cover
from opsrl.registry import load_problem


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", nargs="+", default=["i25_m10", "i25_m15"])
    ap.add_argument("--scenarios", type=int, default=10)
    ap.add_argument("--mpc-scenarios", type=int, default=5, help="first test scenarios run by the rolling MIP")
    ap.add_argument("--bound-scenarios", type=int, default=5, help="first test scenarios given the bound")
    ap.add_argument("--mpc-horizon", type=int, default=8)
    ap.add_argument("--mpc-time", type=float, default=1.0)
    ap.add_argument("--bound-time", type=float, default=20.0)
    ap.add_argument("--out", default="benchmarks/results/lotsizing_refs.json")
    ap.add_argument("--lagrangian-iterations", type=int, default=150, help="subgradient steps of the item bound")
    ap.add_argument(
        "--only", choices=("rules", "mpc", "bound", "lagrangian"), default=None, help="compute only this part"
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    data = json.loads(out.read_text()) if out.is_file() else {}
    for name in a.problems:
        p = load_problem(f"lotsizing/{name}")
        test = p.test_set()
        sc = test.select(slice(0, a.scenarios))
        row = data.setdefault(name, {"scenarios": a.scenarios})

        def save():
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(data, indent=1))

        if "cover_rule" not in row and a.only in (None, "rules"):
            best, _ = search_cover(p, p.sample(256, "dev", 0))
            rule = CoverRule(p, best["low"], best["high"])
            row["cover_rule_thresholds"] = [best["low"], best["high"]]
            row["cover_rule_per_scenario"] = rollout(p, rule, sc).costs.sum(1).tolist()
            row["cover_rule"] = float(np.mean(row["cover_rule_per_scenario"]))
            row["cover_rule_all_test"] = rollout(p, rule, test).costs.sum(1).mean().item()
            g = torch.Generator().manual_seed(0)

            def rnd(s, t):
                x = torch.randint(0, p.K, (s["inventory"].shape[0], p.M), generator=g)
                return torch.where(p.action_mask(s).gather(2, x.unsqueeze(-1)).squeeze(-1), x, torch.zeros_like(x))

            row["random_per_scenario"] = rollout(p, rnd, sc).costs.sum(1).tolist()
            row["keep_per_scenario"] = rollout(p, lambda s, t: s["setup"].argmax(-1), sc).costs.sum(1).tolist()
            row["random"], row["keep"] = (
                float(np.mean(row["random_per_scenario"])),
                float(np.mean(row["keep_per_scenario"])),
            )
            save()
            print(name, "cover", row["cover_rule"], "random", row["random"], "keep", row["keep"], flush=True)
        if "mpc" not in row and a.only in (None, "mpc"):
            t0 = time.perf_counter()
            pol = mip.RollingMIP(p, a.mpc_horizon, a.mpc_time)
            row["mpc_per_scenario"] = rollout(p, pol, test.select(slice(0, a.mpc_scenarios))).costs.sum(1).tolist()
            row["mpc"] = float(np.mean(row["mpc_per_scenario"]))
            row["mpc_info"] = {
                "horizon": a.mpc_horizon,
                "time_limit": a.mpc_time,
                "solves": pol.solves,
                "not_optimal": pol.not_optimal,
                "seconds": time.perf_counter() - t0,
            }
            save()
            print(name, "mpc", row["mpc"], row["mpc_info"], flush=True)
        if "bound" not in row and a.only in (None, "bound"):
            rs = [mip.hindsight(p, sc, b, time_limit=a.bound_time) for b in range(min(a.bound_scenarios, sc.n))]
            row["bound_per_scenario"] = [r.bound for r in rs]
            row["bound_from"] = [r.parts.get("bound_from", "mip") for r in rs]
            row["plan_per_scenario"] = [r.objective for r in rs]
            row["bound_status"] = [r.status for r in rs]
            row["bound"] = float(np.mean(row["bound_per_scenario"]))
            row["plan"] = float(np.mean(row["plan_per_scenario"]))
            row["bound_time_limit"] = a.bound_time
            save()
            print(name, "bound", row["bound"], "plan", row["plan"], row["bound_status"], flush=True)
        if "lagrangian" not in row and a.only in (None, "lagrangian"):
            torch.set_num_threads(2)
            t0 = time.perf_counter()
            try:
                rs = [
                    lagrangian.item_bound(p, sc, b, iterations=a.lagrangian_iterations)
                    for b in tqdm(range(min(a.bound_scenarios, sc.n)), desc=f"{name} item bound", unit="scenario")
                ]
            except ValueError as e:  # too many machines per item for the item DP
                print(name, "item bound not computed:", e, flush=True)
            else:
                row["lagrangian_per_scenario"] = [r.bound for r in rs]
                row["lagrangian_plan_per_scenario"] = [r.plan_cost for r in rs]
                row["lagrangian"] = float(np.mean(row["lagrangian_per_scenario"]))
                row["lagrangian_plan"] = float(np.mean(row["lagrangian_plan_per_scenario"]))
                row["lagrangian_info"] = {
                    "iterations": [r.iterations for r in rs],
                    "max_iterations": a.lagrangian_iterations,
                    "seconds": time.perf_counter() - t0,
                }
                save()
                print(name, "item bound", row["lagrangian"], "its plan", row["lagrangian_plan"], flush=True)
            torch.set_num_threads(1)


if __name__ == "__main__":
    main()
