"""TS-DDR (MLP, LSTM) and TS-LDR on the hydro family, against the SDP optimum (case3) and SDDP (bolivia).

* case3: the SDP optimum (opsrl.hydro.sddp.solve_sdp, 541 volumes) and its policy's cost on the problem's 1000 test
  scenarios; each rule is trained (``--seconds`` of training each, the bundled solver's other options) and
  evaluated on the same scenarios through the problem's own stage LP (opsrl.hydro.simulate.run_test, HiGHS, the
  problem's target penalty), so the gap to the SDP policy is a paired difference with its standard error.
* bolivia (DC model, 96 stages): TS-DDR (MLP) trained for ``--seconds``, its cost on the problem's 200 test
  scenarios, training time and decision time per stage; SDDP's bound and its policy's cost on the same scenarios
  (problem test seed 0) are read from benchmarks/results/hydro_references.json (benchmarks/hydro_references.py).

One thread. ``python benchmarks/tsddr_hydro.py --only case3 --seconds 200`` (torch LPs in training, batch 64) and
``--only bolivia --seconds 480``;
each part updates its entry in --out (benchmarks/results/tsddr_hydro.json).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from opsrl.core import SolveContext
from opsrl.hydro.sddp import CutPolicy, solve_sdp
from opsrl.hydro.simulate import run_test
from opsrl.registry import family, load_problem, load_solver

ROOT = Path(__file__).resolve().parent


def stats(x) -> dict:
    x = np.asarray(x, dtype=np.float64)
    se = float(x.std(ddof=1) / math.sqrt(len(x)))
    return {"mean": float(x.mean()), "stderr": se, "n": int(len(x))}


def fit(problem, solver: str, seconds: float, seed: int, overrides: dict | None = None):
    _, method, cfg = load_solver(
        solver, family("hydro"), {"time_limit": float(seconds), "max_steps": 100000, **(overrides or {})}
    )
    ctx = SolveContext(seed=seed, progress=True, source=cfg["source"], log=print)
    t0 = time.perf_counter()
    outcome = method.fit(problem, cfg["options"], cfg, ctx)
    return outcome, time.perf_counter() - t0, cfg


def entry(problem, scenarios, outcome, train_s, cfg, ref_cost=None) -> dict:
    ev, m = run_test(problem, scenarios, policy=outcome.policy, per_scenario=True)
    cost = m["by_scenario"]["cost"].numpy()
    out = {
        "test": stats(cost),
        "train_seconds": train_s,
        "steps": outcome.info["steps"],
        "best_step": outcome.info["best_step"],
        "parameters": outcome.info["parameters"],
        "options": {k: v for k, v in cfg["options"].items()},
        "policy": cfg.get("policy", {}),
        "thermal_cost": m["thermal_cost"],
        "deficit_mwh": m["deficit_mwh"],
        "spill": m["spill"],
        "target_violation_share": m["target_violation_share"],
        "decision_seconds_per_stage_batch": m["decision_seconds_per_stage"],
        "decision_seconds_per_scenario_stage": m["decision_seconds_per_scenario_stage"],
        "curve": [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in e.items()} for e in outcome.curve
        ],
    }
    if ref_cost is not None:
        d = cost - ref_cost
        out["paired_gap"] = stats(d)
    return out


def case3(args) -> dict:
    p = load_problem("hydro/case3")
    sc = p.test_set()
    t0 = time.perf_counter()
    sdp = solve_sdp(p, 541)
    sdp_s = time.perf_counter() - t0
    _, m = run_test(p, sc, decider=CutPolicy(p, sdp.cuts), per_scenario=True)
    ref = m["by_scenario"]["cost"].numpy()
    out = {
        "sdp_optimum": sdp.optimum,
        "sdp_seconds": sdp_s,
        "test_scenarios": sc.n,
        "sdp_policy": stats(ref),
        "seconds_per_rule": args.seconds,
        "seed": args.seed,
    }
    over = {"backend": args.backend, "batch_size": args.batch}
    for solver in args.solvers:
        outcome, train_s, cfg = fit(p, solver, args.seconds, args.seed, over)
        e = entry(p, sc, outcome, train_s, cfg, ref)
        e["gap_to_sdp_policy_pct"] = 100 * e["paired_gap"]["mean"] / out["sdp_policy"]["mean"]
        e["gap_to_sdp_policy_stderr_pct"] = 100 * e["paired_gap"]["stderr"] / out["sdp_policy"]["mean"]
        e["gap_to_optimum_pct"] = 100 * (e["test"]["mean"] - sdp.optimum) / sdp.optimum
        e["gap_to_optimum_stderr_pct"] = 100 * e["test"]["stderr"] / sdp.optimum
        out[solver] = e
        print(
            f"case3 {solver}: {e['test']['mean']:.1f} +- {e['test']['stderr']:.1f}; paired gap to the SDP policy "
            f"{e['gap_to_sdp_policy_pct']:.2f}% +- {e['gap_to_sdp_policy_stderr_pct']:.2f}%; {train_s:.0f} s"
        )
    return out


def bolivia(args) -> dict:
    p = load_problem("hydro/bolivia")
    sc = p.test_set()
    refs = json.loads((ROOT / "results" / "hydro_references.json").read_text()).get("bolivia", {})
    out = {
        "test_scenarios": sc.n,
        "seconds_per_rule": args.seconds,
        "seed": args.seed,
        "sddp": {
            k: refs.get(k)
            for k in ("sddp_bound", "sddp_iterations", "sddp_train_seconds", "sddp_policy", "myopic", "hindsight_bound")
        },
        "sddp_source": "benchmarks/results/hydro_references.json (benchmarks/hydro_references.py), same test "
        "scenarios (problem test seed 0)",
    }
    over = {
        "batch_size": args.batch,
        "dev_scenarios": args.dev,
        "eval_every": args.eval_every,
        "train_scenarios": 1024,
        **({"lr": args.lr} if args.lr else {}),
        **({"policy.output": args.output} if args.output else {}),
    }
    for solver in args.solvers:
        outcome, train_s, cfg = fit(p, solver, args.seconds, args.seed, over)
        e = entry(p, sc, outcome, train_s, cfg)
        sddp = (refs.get("sddp_policy") or {}).get("mean")
        if sddp:
            e["gap_to_sddp_policy_pct"] = 100 * (e["test"]["mean"] - sddp) / sddp
        out[solver] = e
        print(
            f"bolivia {solver}: {e['test']['mean']:.1f} +- {e['test']['stderr']:.1f} (SDDP policy {sddp}); "
            f"{train_s:.0f} s, {e['steps']} steps"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=("case3", "bolivia"), required=True)
    ap.add_argument("--seconds", type=float, default=240.0, help="training seconds per rule")
    ap.add_argument("--solvers", nargs="+", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=0, help="scenarios per step (0: 64 on case3, 8 on bolivia)")
    ap.add_argument("--backend", default="torch", help="case3: LP back end of training (the test uses HiGHS)")
    ap.add_argument("--dev", type=int, default=16, help="bolivia: dev scenarios")
    ap.add_argument("--eval-every", type=int, default=10, help="bolivia: steps between dev evaluations")
    ap.add_argument("--lr", type=float, default=0.0, help="bolivia: learning rate (0: the solver file's)")
    ap.add_argument("--output", default="", help="bolivia: the rule's policy.output (e.g. residual)")
    ap.add_argument("--out", default=str(ROOT / "results" / "tsddr_hydro.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.batch = args.batch or (64 if args.only == "case3" else 8)
    args.solvers = args.solvers or (["tsddr", "tsddr_lstm", "tsldr"] if args.only == "case3" else ["tsddr"])
    t0 = time.perf_counter()
    res = case3(args) if args.only == "case3" else bolivia(args)
    res["wall_seconds"] = time.perf_counter() - t0
    path = Path(args.out)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[args.only] = {**data.get(args.only, {}), **res}  # a run of some rules keeps the others' entries
    path.write_text(json.dumps(data, indent=1))
    print(f"wrote {path} ({res['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
