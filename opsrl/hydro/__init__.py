"""Hydro-thermal dispatch (long-term, DC network): the stage LP of the TS-DDR contract, SDP and SDDP references.

Read in this order: :mod:`.cases` (reading and checking a case folder), :mod:`.model` (the problem and its
stage LP), :mod:`.sddp` (SDDP, grid SDP, the cut policy),
:mod:`.tree` (hindsight and extensive-form LPs), :mod:`.simulate` (closed-loop test runs), :mod:`.plots`.

Methods of this family (beside the generic ones, and TS-DDR, which read the contract):

* ``sddp``: SDDP cuts on the outgoing volumes (HiGHS stage LPs); its lower bound, and its policy simulated;
* ``hydro_sdp``: stochastic DP on a fine volume grid, one-reservoir cases (the optimum of case3);
* ``hindsight_lp``: the perfect-information LP of each test scenario (a bound, not a policy);
* ``myopic``: each stage's LP with no value on stored water.

``hindsight_lp`` and ``myopic`` share their names (and solver files) with the inventory family's methods: a
solver file names a method, and each family resolves it to its own.

Every run record adds ``thermal_cost``, ``deficit_mwh``, ``spill`` (hm3) and ``target_violation_share``
(episode totals, means over the test scenarios) and ``series`` (volumes and generation mix per stage of the
first test scenarios), which the report draws (:func:`.plots.picture`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import ConfigError, Family, Field, Method, Reference, SolveContext, SolveOutcome, summarize
from ..core.config import size
from .model import Hydro, build
from .plots import picture
from .sddp import CutPolicy, solve_sdp, train_sddp
from .simulate import run_test
from .tree import hindsight

__all__ = ["FAMILY", "Hydro", "build", "run_test", "reference"]

SDP_POINTS = 541  # volumes of the grid (case3: steps of 0.001 hm3; the initial 0.18 lies on it)
REFERENCES = Path(__file__).resolve().parent / "data" / "references.json"  # written by benchmarks/hydro_references.py
_CACHE: dict[str, Reference] = {}


def fingerprint(problem: Hydro) -> str:
    """The problem's config without the keys that leave its optimum alone (test set, target penalty, the SDP
    grid of the reference), as sorted JSON: what a stored reference was computed on."""
    cfg = {
        k: v for k, v in problem.cfg.items() if k not in ("test_scenarios", "test_seed", "target_penalty", "sdp_points")
    }
    return json.dumps(cfg, sort_keys=True)


def _case_digest(problem: Hydro) -> str:
    """A digest of the case's data (every array and number of :class:`Case`), for the in-process cache."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(vars(problem.case).items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes() if isinstance(v, np.ndarray) else repr(v).encode())
    return h.hexdigest()[:16]


def _check(problem, ctx: SolveContext, what: str) -> None:
    if not isinstance(problem, Hydro):
        raise ConfigError(ctx.source, "method", f"{what} applies to hydro problems")


def reference(problem: Hydro) -> Reference | None:
    """case3 and other one-reservoir cases: the SDP optimum (stored by benchmarks/hydro_references.py for this
    configuration and grid, or computed now). Otherwise the larger of the SDDP lower bound and
    the mean hindsight bound on the test scenarios that benchmarks/hydro_references.py stored for this exact
    configuration, if any, else the mean hindsight bound computed now (all lower bounds)."""
    if problem.inflow_model != "independent":
        return None  # SDP and SDDP assume stage-wise independent inflows
    key = fingerprint(problem) + f"|{problem.test_scenarios}|{problem.test_seed}|{problem.cfg['sdp_points']}"
    key += "|" + _case_digest(problem)  # a case folder edited between two problems of one session
    if key in _CACHE:
        return _CACHE[key]
    stored = json.loads(REFERENCES.read_text()) if REFERENCES.is_file() else {}
    hit = stored.get(problem.name)
    if hit and hit.get("fingerprint") != fingerprint(problem):
        hit = None
    if problem.H == 1:
        if hit and "sdp_optimum" in hit and hit.get("sdp_points") == problem.cfg["sdp_points"]:
            ref = Reference("optimum", float(hit["sdp_optimum"]), hit["sdp_source"])
        else:
            r = solve_sdp(problem, problem.cfg["sdp_points"])
            ref = Reference("optimum", r.optimum, f"stochastic DP on {len(r.grid)} volumes (HiGHS stage LPs)")
    else:
        if hit:
            ref = Reference("lower_bound", float(hit["bound"]), hit.get("source", "SDDP lower bound"))
            same_test = (hit.get("test_scenarios"), hit.get("test_seed")) == (problem.test_scenarios, problem.test_seed)
            if same_test and "hindsight_mean" in hit and hit["hindsight_mean"] > ref.value:
                # the mean perfect-information value of these very test scenarios is the tighter bound
                ref = Reference(
                    "lower_bound",
                    float(hit["hindsight_mean"]),
                    "perfect-information LP per test scenario (HiGHS; stored by benchmarks/hydro_references.py)",
                    float(hit["hindsight_stderr"]),
                )
        else:
            v = hindsight(problem, problem.test_set())
            ref = Reference(
                "lower_bound",
                float(v.mean()),
                "perfect-information LP per test scenario (HiGHS)",
                float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None,
            )
    _CACHE[key] = ref
    return ref


def _lp_outcome(problem: Hydro, decider, info: dict[str, Any]) -> SolveOutcome:
    out = SolveOutcome(info=dict(info))

    def evaluate(scenarios):
        ev, metrics = run_test(problem, scenarios, decider=decider)
        out.hydro_metrics = metrics  # read by record (kept out of info, which the record copies whole)
        return ev, {}

    out.evaluate = evaluate
    return out


SDDP_OPTIONS = {
    "iterations": size(100, 100_000, doc="SDDP iterations (forward and backward passes)"),
    "forward_paths": size(1, 10_000, doc="inflow paths per forward pass (each adds one cut per stage)"),
    "time_limit": Field(float, 0.0, allowed="seconds (0: none)", check=lambda v: v >= 0),
    "tol": Field(
        float,
        0.0,
        allowed="a relative change of the bound over 5 iterations that stops training (0: none)",
        check=lambda v: 0 <= v < 1,
    ),
}


def _fit_sddp(problem, o, config, ctx: SolveContext) -> SolveOutcome:
    _check(problem, ctx, "sddp")
    if problem.inflow_model != "independent":
        raise ConfigError(
            ctx.source, "method", "sddp assumes stage-wise independent inflows; the problem has inflow_model = 'ar1'"
        )
    res = train_sddp(
        problem, o["iterations"], o["forward_paths"], ctx.seed, o["time_limit"] or None, ctx.progress, o["tol"], ctx.log
    )
    out = _lp_outcome(
        problem,
        CutPolicy(problem, res.cuts, "sddp"),
        {
            "bound": res.bounds[-1],
            "iterations": res.iterations,
            "cuts_per_stage": res.iterations * o["forward_paths"],
            "train_seconds_sddp": res.seconds,
            "time_limited": res.time_limited,
        },
    )
    out.curve = [{"iteration": i + 1, "bound": b} for i, b in enumerate(res.bounds)]
    return out


SDP_OPTIONS = {"points": size(SDP_POINTS, 100_000, low=3, doc="volumes of the grid (equally spaced)")}


def _fit_sdp(problem, o, config, ctx: SolveContext) -> SolveOutcome:
    _check(problem, ctx, "hydro_sdp")
    if problem.H != 1:
        raise ConfigError(
            ctx.source,
            "method",
            f"hydro_sdp applies to one-reservoir problems; {problem.name} has {problem.H} reservoirs (use sddp)",
        )
    if problem.inflow_model != "independent":
        raise ConfigError(ctx.source, "method", "hydro_sdp assumes stage-wise independent inflows")
    r = solve_sdp(problem, o["points"], ctx.progress)
    return _lp_outcome(
        problem,
        CutPolicy(problem, r.cuts, "sdp"),
        {"optimum": r.optimum, "points": len(r.grid), "sdp_seconds": r.seconds},
    )


def _fit_myopic(problem, o, config, ctx: SolveContext) -> SolveOutcome:
    _check(problem, ctx, "myopic")
    # no value on stored water; 1e-6 per hm3 only breaks ties between keeping and spilling water
    return _lp_outcome(problem, CutPolicy(problem, None, "myopic", tie_value=1e-6), {"tie_value_per_hm3": 1e-6})


HINDSIGHT_OPTIONS = {"solver": Field(str, "highs", choices=("highs", "glop"))}


def _fit_hindsight(problem, o, config, ctx: SolveContext) -> SolveOutcome:
    _check(problem, ctx, "hindsight_lp")
    out = SolveOutcome(info={"bound": True, "solver": o["solver"]})

    def evaluate(scenarios):
        v = hindsight(problem, scenarios, o["solver"], ctx.progress)
        out.hydro_metrics = {"per_scenario_bound": [float(x) for x in v]}
        return summarize(problem, torch.as_tensor(v), scenarios.periods), {}

    out.evaluate = evaluate
    return out


def record(problem, outcome: SolveOutcome) -> dict[str, Any]:
    """Extra fields of a run record (see the module text); a generic policy is simulated here on the test set."""
    metrics = getattr(outcome, "hydro_metrics", None)
    if metrics is None and outcome.policy is not None and isinstance(problem, Hydro):
        # a target policy (TS-DDR, HDPO ...): its stage LPs with the penalty it was evaluated with, if it says
        pen = outcome.info.get("penalty")
        pen = float(pen) if isinstance(pen, (int, float)) and not isinstance(pen, bool) and pen > 0 else None
        _, metrics = run_test(problem, problem.test_set(), policy=outcome.policy, penalty=pen)
    if metrics is None or "thermal_cost" not in metrics:
        return {
            "thermal_cost": None,
            "deficit_mwh": None,
            "spill": None,
            "target_violation_share": None,
            **(metrics or {}),
        }
    return metrics


METHODS = {
    m.name: m
    for m in (
        Method(
            "sddp",
            _fit_sddp,
            SDDP_OPTIONS,
            description="SDDP with HiGHS stage LPs (cuts on the outgoing volumes, shared across a stage's scenarios)",
        ),
        Method(
            "hydro_sdp",
            _fit_sdp,
            SDP_OPTIONS,
            description="stochastic DP on a fine volume grid (one reservoir): the optimum",
        ),
        Method(
            "hindsight_lp",
            _fit_hindsight,
            HINDSIGHT_OPTIONS,
            description="perfect-information LP per test scenario (HiGHS or GLOP); a bound, not a policy",
        ),
        Method("myopic", _fit_myopic, {}, description="each stage's LP with no value on stored water"),
    )
}


FAMILY = Family("hydro", build, METHODS, reference, record, picture)
