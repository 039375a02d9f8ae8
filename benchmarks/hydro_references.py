"""The hydro family's references: SDP, SDDP, the hindsight bound and the myopic rule on case3 and bolivia, and
the speed of HiGHS on the stage LP.

* case3: the SDP optimum (541 volumes); SDDP's lower bound; the test cost of the SDP, SDDP and myopic policies
  and the mean hindsight bound, all on the problem's test scenarios (1000, test seed 0), with 95% intervals.
* bolivia (DC model, 96 stages): SDDP trained for ``--bolivia-seconds`` with ``--forward-paths`` paths per
  iteration (its bound, iterations, training time),
  its policy's cost on the problem's test scenarios (200) with a 95% interval and its decision time per stage,
  the myopic rule and the hindsight bound on the same scenarios. The bound is also stored in
  ``opsrl/hydro/data/references.json`` (with the problem's configuration), where the family's ``reference``
  reads it.
* stage LPs per second with HiGHS (``opsrl.core.lp.solve`` with ``warm=False``: a fresh model per LP; the warm batch
  solver, ``opsrl.core.lp.solve_highs`` with ``warm=True``) at batch 1, 64 and 1024, for both cases.

One thread. ``python benchmarks/hydro_references.py`` (about 12 minutes on one core of the build machine);
``--only speed`` / ``--only case3`` / ``--only bolivia`` run one part, and update the others' entries in --out.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from opsrl.core.lp import solve
from opsrl.hydro import REFERENCES, fingerprint
from opsrl.hydro.sddp import CutPolicy, solve_sdp, train_sddp
from opsrl.hydro.simulate import run_test
from opsrl.hydro.tree import hindsight
from opsrl.registry import load_problem


def ci(x) -> dict:
    x = np.asarray(x, dtype=np.float64)
    se = float(x.std(ddof=1) / math.sqrt(len(x)))
    return {
        "mean": float(x.mean()),
        "stderr": se,
        "ci95": [float(x.mean() - 1.96 * se), float(x.mean() + 1.96 * se)],
        "n": int(len(x)),
    }


def policy_entry(problem, sc, decider, keep: dict | None = None, name: str = "") -> dict:
    ev, m = run_test(problem, sc, decider=decider)
    if keep is not None:
        keep[name] = ev.per_scenario.numpy()
    return {
        **ci(ev.per_scenario.numpy()),
        "thermal_cost": m["thermal_cost"],
        "deficit_mwh": m["deficit_mwh"],
        "spill": m["spill"],
        "decision_seconds_per_stage_batch": m["decision_seconds_per_stage"],
        "decision_seconds_per_scenario_stage": m["decision_seconds_per_scenario_stage"],
    }


def case3(a) -> dict:
    p = load_problem("hydro/case3")
    sc = p.test_set()
    t0 = time.perf_counter()
    sdp = solve_sdp(p, 541, progress=True)
    sdp_s = time.perf_counter() - t0
    res = train_sddp(p, a.case3_iterations, 1, 0, progress=True)
    out = {
        "sdp_optimum": sdp.optimum,
        "sdp_points": len(sdp.grid),
        "sdp_seconds": sdp_s,
        "sddp_bound": res.bounds[-1],
        "sddp_iterations": res.iterations,
        "sddp_seconds": res.seconds,
        "sddp_bound_gap_pct": 100 * (sdp.optimum - res.bounds[-1]) / sdp.optimum,
        "sddp_bound_by_iteration": {str(i): res.bounds[i - 1] for i in (1, 5, 10, 20, 50, 100) if i <= res.iterations},
        "test_scenarios": sc.n,
    }
    per: dict = {}
    out["sdp_policy"] = policy_entry(p, sc, CutPolicy(p, sdp.cuts), per, "sdp")
    out["sddp_policy"] = policy_entry(p, sc, CutPolicy(p, res.cuts), per, "sddp")
    out["myopic"] = policy_entry(p, sc, CutPolicy(p, None, tie_value=1e-6), per, "myopic")
    t0 = time.perf_counter()
    per["hindsight"] = hindsight(p, sc)
    out["hindsight_bound"] = {**ci(per["hindsight"]), "seconds": time.perf_counter() - t0}
    stored = json.loads(REFERENCES.read_text()) if REFERENCES.is_file() else {}
    stored[p.name] = {
        "fingerprint": fingerprint(p),
        "sdp_optimum": sdp.optimum,
        "sdp_points": len(sdp.grid),
        "sdp_source": f"stochastic DP on {len(sdp.grid)} volumes (HiGHS stage LPs; stored by "
        "benchmarks/hydro_references.py)",
    }
    REFERENCES.write_text(json.dumps(stored, indent=1) + "\n")
    # paired on the same scenarios (common random numbers): what a 1% comparison with the SDP policy resolves
    out["paired_against_sdp_policy"] = {k: ci(per[k] - per["sdp"]) for k in ("sddp", "myopic", "hindsight")}
    return out


def bolivia(a) -> dict:
    p = load_problem("hydro/bolivia")
    sc = p.test_set()
    res = train_sddp(p, 100_000, a.forward_paths, 0, time_limit=a.bolivia_seconds, progress=True)
    out = {
        "sddp_bound": res.bounds[-1],
        "sddp_iterations": res.iterations,
        "sddp_train_seconds": res.seconds,
        "sddp_forward_paths": a.forward_paths,
        "sddp_cuts_per_stage": res.iterations * a.forward_paths,
        "sddp_time_limit": a.bolivia_seconds,
        "sddp_bound_by_iteration": {
            str(i): res.bounds[i - 1] for i in (1, 10, 25, 50, 100, 150, 200, 300) if i <= res.iterations
        },
        "test_scenarios": sc.n,
    }
    out["sddp_policy"] = policy_entry(p, sc, CutPolicy(p, res.cuts))
    # one scenario at a time: SDDP's decision time for one stage of one scenario
    one = sc.select(slice(0, 5))
    _, m = run_test(p, one.select(slice(0, 1)), decider=CutPolicy(p, res.cuts))
    out["sddp_policy"]["decision_seconds_per_stage_single_scenario"] = m["decision_seconds_per_stage"]
    out["myopic"] = policy_entry(p, sc, CutPolicy(p, None, tie_value=1e-6))
    t0 = time.perf_counter()
    out["hindsight_bound"] = {**ci(hindsight(p, sc, progress=True)), "seconds": time.perf_counter() - t0}
    stored = json.loads(REFERENCES.read_text()) if REFERENCES.is_file() else {}
    hs = out["hindsight_bound"]
    stored[p.name] = {
        "bound": res.bounds[-1],
        "fingerprint": fingerprint(p),
        "source": f"SDDP lower bound after {res.iterations} iterations of {a.forward_paths} paths "
        f"({res.seconds:.0f} s, "
        "benchmarks/hydro_references.py)",
        "hindsight_mean": hs["mean"],
        "hindsight_stderr": hs["stderr"],
        "test_scenarios": p.test_scenarios,
        "test_seed": p.test_seed,
    }
    REFERENCES.write_text(json.dumps(stored, indent=1) + "\n")
    return out


def speed(a) -> dict:
    out = {}
    for name in ("case3", "bolivia"):
        p = load_problem(f"hydro/{name}")
        sc = p.sample(1024, "train", 0)
        g = torch.Generator().manual_seed(0)
        st = {
            "volume": torch.rand(1024, p.H, generator=g, dtype=torch.float64) * p.vmax_t,
            "inflow": sc["inflow"][:, 3],
            "t": torch.full((1024,), 3.0, dtype=torch.float64),
        }
        full = p.stage_lp(st)
        m, n = full.lp.shape
        row = {"rows": m, "columns": n}
        for B in (1, 64, 1024):
            sub = {k: v[:B] for k, v in st.items()}
            lp = p.stage_lp(sub).lp
            for label, fn in (("highs", lambda lp: solve(lp, warm=False)), ("highs_warm", solve)):
                reps = max(1, 256 // B)
                t0 = time.perf_counter()
                for _ in range(reps):
                    sol = fn(lp)
                dt = (time.perf_counter() - t0) / reps
                assert sol.optimal
                row[f"{label}_batch{B}_lps_per_second"] = B / dt
        out[name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("case3", "bolivia", "speed"), default=None)
    ap.add_argument("--case3-iterations", type=int, default=100)
    ap.add_argument("--bolivia-seconds", type=float, default=360.0)
    ap.add_argument(
        "--forward-paths",
        type=int,
        default=4,
        help="bolivia SDDP: inflow paths per forward pass "
        "(4 gave a higher bound per second than 1 in a 90 s trial: 294.4k against 293.0k)",
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hydro_references.json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    results = json.loads(a.out.read_text()) if a.out.is_file() else {}
    for part, fn in (("speed", speed), ("case3", case3), ("bolivia", bolivia)):
        if a.only in (None, part):
            t0 = time.perf_counter()
            results[part] = fn(a)
            results[part]["wall_seconds"] = time.perf_counter() - t0
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(json.dumps(results, indent=1) + "\n")
            print(json.dumps({part: results[part]}, indent=1)[:3000], flush=True)


if __name__ == "__main__":
    main()
