"""TS-DDR (MLP, LSTM) and TS-LDR on the hydro family, against the SDP optimum (case3) and SDDP (bolivia).

* case3: the SDP optimum (opsrl.hydro.sddp.solve_sdp, 541 volumes) and its policy's cost on the problem's 1000 test
  scenarios; each rule is trained (``--seconds`` of training each, the bundled solver's other options) and
  evaluated on the same scenarios through the problem's own stage LP (opsrl.hydro.simulate.run_test, HiGHS, the
  problem's target penalty), so the gap to the SDP policy is a paired difference with its standard error.
* bolivia (DC model, 96 stages): TS-DDR (MLP) trained for ``--seconds``, its cost on the problem's 200 test
  scenarios, training time and decision time per stage; SDDP's bound and its policy's cost on the same scenarios
  (problem test seed 0) are read from benchmarks/results/hydro_references.json (benchmarks/hydro_references.py).

* decide: decision time per scenario-stage of the trained bolivia rule (results/tsddr_bolivia_<solver>.pt, written
  by the bolivia part) and of SDDP's policy (the reference's cuts, results/hydro_bolivia_sddp_cuts.npz, trained
  and stored on the first run) on the same test scenarios, each batched over all of them, with HiGHS and with the
  basis-cache back end (hit rates, and the costs of both back ends side by side).

One thread. ``python benchmarks/tsddr_hydro.py --only case3 --seconds 200`` (torch LPs in training, batch 64),
``--only bolivia --seconds 540 --solvers tsddr_lstm_bolivia --solver-file-settings`` (the solver file's batch, dev
set and options) and ``--only decide --solvers tsddr_lstm_bolivia``; each part updates its entry in --out
(benchmarks/results/tsddr_hydro.json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from opsrl.algos.lagrangian import anchored, build_target_policy, features
from opsrl.core import SolveContext
from opsrl.core.lp import solve
from opsrl.hydro.sddp import CutPolicy, Cuts, solve_sdp, train_sddp, with_future
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
    # the stage LPs of the test use the penalty the rule was trained and evaluated with (the problem's by default)
    ev, m = run_test(problem, scenarios, policy=outcome.policy, per_scenario=True, penalty=outcome.info["penalty"])
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
        "target_penalty": outcome.info["penalty"],
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
    over = (
        {}
        if args.solver_file_settings
        else {
            "batch_size": args.batch,
            "dev_scenarios": args.dev,
            "eval_every": args.eval_every,
            "train_scenarios": 1024,
        }
    )
    over.update({"lr": args.lr} if args.lr else {})
    over.update({"policy.output": args.output} if args.output else {})
    for solver in args.solvers:
        outcome, train_s, cfg = fit(p, solver, args.seconds, args.seed, over)
        # the trained rule, for the decision-time part (--only decide)
        torch.save(
            {"policy": cfg.get("policy", {}), "state": outcome.policy.policy.state_dict(), "info": outcome.info},
            ROOT / "results" / f"tsddr_bolivia_{solver}.pt",
        )
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


def _sddp_cuts(p):
    """SDDP cuts of the reference configuration (29 iterations of 4 forward paths, seed 0: the bound 295558 and
    the policy cost 298227 of benchmarks/results/hydro_references.json), stored in results/ after the first run."""
    path = ROOT / "results" / "hydro_bolivia_sddp_cuts.npz"
    if path.is_file():
        z = np.load(path)
        return [Cuts(z[f"alpha{t}"], z[f"beta{t}"]) for t in range(p.periods)], {"source": str(path.name)}
    t0 = time.perf_counter()
    res = train_sddp(p, 29, 4, 0)
    arrays = {f"alpha{t}": c.alpha for t, c in enumerate(res.cuts)} | {
        f"beta{t}": c.beta for t, c in enumerate(res.cuts)
    }
    np.savez_compressed(path, **arrays)
    return res.cuts, {"source": "trained now", "seconds": time.perf_counter() - t0, "bound": res.bounds[-1]}


def _clock():
    return time.perf_counter()


@torch.no_grad()
def tsddr_pass(p, policy, sc, P: float, backend: str) -> dict:
    """One closed-loop pass of the target rule on ``sc`` (all scenarios at once), timing each part of a decision."""
    state = p.initial_state(sc)
    memory = policy.reset(sc.n, state["volume"])
    part = dict.fromkeys(("policy", "lp_build", "anchor_lp", "target_lp"), 0.0)
    cost = torch.zeros(sc.n, dtype=torch.float64)
    for t in range(sc.periods):
        t0 = _clock()
        raw, memory = policy.step(features(p, state, t, policy.time), memory)
        lo, hi = p.target_bounds(state)
        t1 = _clock()
        stage = p.stage_lp(state, sc, t)
        t2 = _clock()
        base = anchored(p, policy, stage, hi, backend, "none")
        t3 = _clock()
        target = policy.target(raw, lo, hi, base)
        tlp, _ = stage.with_target(target, P)
        t4 = _clock()
        sol = solve(tlp.lp, backend)
        t5 = _clock()
        assert sol.optimal
        part["policy"] += t1 - t0
        part["lp_build"] += (t2 - t1) + (t4 - t3)
        part["anchor_lp"] += t3 - t2
        part["target_lp"] += t5 - t4
        cost += p.stage_cost(tlp, sol)
        post = p.stage_post(state, tlp, sol, t)
        state, _ = p.transition(post, sc, t)
    return {"cost": cost, "parts": part}


@torch.no_grad()
def sddp_pass(p, cuts, sc, backend: str) -> dict:
    """One closed-loop pass of the SDDP policy (stage LP with the stage's cuts) on ``sc``, timed the same way."""
    state = p.initial_state(sc)
    part = dict.fromkeys(("lp_build", "lp"), 0.0)
    cost = torch.zeros(sc.n, dtype=torch.float64)
    for t in range(sc.periods):
        t0 = _clock()
        stage = with_future(p, p.stage_lp(state, t=t), cuts[t] if t < p.periods - 1 else None)
        t1 = _clock()
        sol = solve(stage.lp, backend)
        t2 = _clock()
        assert sol.optimal
        part["lp_build"] += t1 - t0
        part["lp"] += t2 - t1
        cost += p.stage_cost(stage, sol)
        post = p.stage_post(state, stage, sol, t)
        state, _ = p.transition(post, sc, t)
    return {"cost": cost, "parts": part}


def decide(args) -> dict:
    """Decision time per scenario-stage of the trained TS-DDR rule and of SDDP's policy on the same test
    scenarios, both batched over all of them (wall time of policy, LP build and LP solve, summed over the stages,
    divided by stages x scenarios), with HiGHS and with the basis-cache back end (warmed first by one pass over
    as many training scenarios, as training leaves it); the costs of both back ends side by side."""
    from opsrl.core.lp_cache import DEFAULT_CACHE

    p = load_problem("hydro/bolivia")
    sc = p.test_set()
    sc = sc.select(slice(0, args.decide_scenarios)) if args.decide_scenarios else sc
    warm = p.sample(sc.n, "train", 1)
    cuts, cut_info = _sddp_cuts(p)
    saved = torch.load(ROOT / "results" / f"tsddr_bolivia_{args.solvers[0]}.pt", weights_only=False)
    policy = build_target_policy(p, saved["policy"], "<benchmark>")
    policy.load_state_dict(saved["state"])
    policy.eval()
    P = float(saved["info"]["penalty"])
    out = {
        "scenarios": sc.n,
        "stages": sc.periods,
        "rule": args.solvers[0],
        "penalty": P,
        "sddp_cuts": {**cut_info, "per_stage": len(cuts[0])},
        "load_average_at_start": os.getloadavg(),
        "timing": "wall time of each part summed over the 96 stages of one pass over all test scenarios at once, "
        "divided by stages x scenarios; one thread",
    }
    runs = {}
    for backend in ("highs", "basis_cache"):
        if backend == "basis_cache":
            DEFAULT_CACHE.clear()
            tsddr_pass(p, policy, warm, P, backend)
            sddp_pass(p, cuts, warm, backend)
        for name, fn in (
            ("tsddr", lambda b: tsddr_pass(p, policy, sc, P, b)),
            ("sddp", lambda b: sddp_pass(p, cuts, sc, b)),
        ):
            before = dict(DEFAULT_CACHE.stats)
            t0 = _clock()
            r = fn(backend)
            wall = _clock() - t0
            per = sc.periods * sc.n
            e = {
                "test": stats(r["cost"].numpy()),
                "ms_per_scenario_stage": 1e3 * sum(r["parts"].values()) / per,
                "parts_ms_per_scenario_stage": {k: 1e3 * v / per for k, v in r["parts"].items()},
                "pass_wall_seconds": wall,
            }
            if backend == "basis_cache":
                hits = DEFAULT_CACHE.stats["hits"] - before["hits"]
                miss = DEFAULT_CACHE.stats["misses"] - before["misses"]
                e["hit_rate"] = hits / max(hits + miss, 1)
                e["bases_held"] = DEFAULT_CACHE.bases
            runs[(name, backend)] = r
            out[f"{name}_{backend}"] = e
            print(f"{name} {backend}: {e['ms_per_scenario_stage']:.3f} ms per scenario-stage {e}", flush=True)
    gap = (runs[("tsddr", "highs")]["cost"] - runs[("sddp", "highs")]["cost"]).numpy()
    out["paired_tsddr_minus_sddp_highs"] = {
        **stats(gap),
        "pct": 100 * float(gap.mean()) / out["sddp_highs"]["test"]["mean"],
    }
    for name in ("tsddr", "sddp"):
        d = (runs[(name, "basis_cache")]["cost"] - runs[(name, "highs")]["cost"]).numpy()
        out[f"{name}_cost_difference_cache_minus_highs"] = {**stats(d), "max_abs": float(np.abs(d).max())}
    f = lambda a, b: out[a]["ms_per_scenario_stage"] / out[b]["ms_per_scenario_stage"]  # noqa: E731
    out["ratio_tsddr_cache_to_sddp_highs"] = f("tsddr_basis_cache", "sddp_highs")
    out["ratio_tsddr_cache_to_sddp_cache"] = f("tsddr_basis_cache", "sddp_basis_cache")
    out["ratio_tsddr_highs_to_sddp_highs"] = f("tsddr_highs", "sddp_highs")
    out["load_average_at_end"] = os.getloadavg()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=("case3", "bolivia", "decide"), required=True)
    ap.add_argument("--seconds", type=float, default=240.0, help="training seconds per rule")
    ap.add_argument("--solvers", nargs="+", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=0, help="scenarios per step (0: 64 on case3, 8 on bolivia)")
    ap.add_argument("--backend", default="torch", help="case3: LP back end of training (the test uses HiGHS)")
    ap.add_argument("--dev", type=int, default=16, help="bolivia: dev scenarios")
    ap.add_argument("--eval-every", type=int, default=10, help="bolivia: steps between dev evaluations")
    ap.add_argument("--lr", type=float, default=0.0, help="bolivia: learning rate (0: the solver file's)")
    ap.add_argument("--output", default="", help="bolivia: the rule's policy.output (e.g. residual)")
    ap.add_argument(
        "--solver-file-settings",
        action="store_true",
        help="bolivia: keep the solver file's batch, dev set and evaluation period (for tsddr_lstm_bolivia)",
    )
    ap.add_argument("--decide-scenarios", type=int, default=0, help="decide: test scenarios (0: all 200)")
    ap.add_argument("--out", default=str(ROOT / "results" / "tsddr_hydro.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.batch = args.batch or (64 if args.only == "case3" else 8)
    args.solvers = (
        args.solvers
        or {
            "case3": ["tsddr", "tsddr_lstm", "tsldr"],
            "bolivia": ["tsddr"],
            "decide": ["tsddr_lstm_bolivia"],
        }[args.only]
    )
    t0 = time.perf_counter()
    res = {"case3": case3, "bolivia": bolivia, "decide": decide}[args.only](args)
    res["wall_seconds"] = time.perf_counter() - t0
    path = Path(args.out)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[args.only] = {**data.get(args.only, {}), **res}  # a run of some rules keeps the others' entries
    path.write_text(json.dumps(data, indent=1))
    print(f"wrote {path} ({res['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
