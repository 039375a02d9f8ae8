"""Closed-loop simulation on test scenarios, for LP policies (SDDP, SDP, myopic) and for target policies alike.

:func:`run_test` steps through the stages on every scenario at once. A *decider* (``decide(state, t) ->
(stage LP, solution)``, such as :class:`.sddp.CutPolicy`) solves its own LP; a *policy* (``policy(state, t)
-> action`` in [0, 1]^H, such as TS-DDR's or HDPO's) proposes target volumes that the stage LP with the target
rows and the problem's ``target_penalty`` makes feasible, exactly as :meth:`Hydro.post_decision` does. The
metrics are episode totals per scenario (means over scenarios): ``thermal_cost``, ``deficit_mwh``, ``spill``
(hm3), and ``target_violation_share`` (the target penalty's share of the cost including it; 0 without
targets), plus a few scenarios' volumes and generation mix per stage for the report's picture.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ..core import Scenarios, summarize
from ..core.rollout import Evaluation
from .model import Hydro


@torch.no_grad()
def run_test(
    problem: Hydro,
    scenarios: Scenarios,
    policy=None,
    decider=None,
    keep: int = 3,
    per_scenario: bool = False,
    penalty: float | None = None,
) -> tuple[Evaluation, dict[str, Any]]:
    """See the module text; ``penalty`` is the target penalty of a policy's stage LPs (default the problem's)."""
    P = problem.target_penalty if penalty is None else float(penalty)
    if (policy is None) == (decider is None):
        raise ValueError("run_test needs exactly one of policy or decider")
    if policy is not None and getattr(policy, "training", False):
        policy.eval()
    state = problem.initial_state(scenarios)
    n, T = scenarios.n, scenarios.periods
    z = lambda: torch.zeros(n, dtype=torch.float64)
    total, penalty = z(), z()
    sums = {k: z() for k in ("thermal_cost", "deficit_mwh", "spill", "thermal_mwh", "hydro_mwh")}
    k = min(keep, n)
    series = {"volume": [state["volume"][:k].double().cpu()], "thermal_mwh": [], "hydro_mwh": [], "deficit_mwh": []}
    decide_s = 0.0
    for t in range(T):
        t0 = time.perf_counter()
        if decider is not None:
            stage, sol = decider.decide(state, t)
            pen = torch.zeros(n, dtype=torch.float64)
        else:
            base = problem.stage_lp(state, t=t)
            stage, _ = base.with_target(problem.target_of(state, policy(state, t)), P)
            sol = problem.solve_stage(stage)
            n0 = base.lp.shape[1]
            pen = (stage.lp.c[:, n0:] * sol.x[:, n0:]).sum(1).double().cpu()
        decide_s += time.perf_counter() - t0
        cost = problem.stage_cost(stage, sol).double().cpu()
        rec = {kk: v.double().cpu() for kk, v in problem.stage_record(stage, sol).items()}
        post = problem.stage_post(state, stage, sol, t)
        state, c2 = problem.transition(post, scenarios, t)
        total += cost + c2.double().cpu()
        penalty += pen
        for kk in sums:
            sums[kk] += rec[kk]
        series["volume"].append(post["volume"][:k].double().cpu())
        for kk in ("thermal_mwh", "hydro_mwh", "deficit_mwh"):
            series[kk].append(rec[kk][:k])
    ev = summarize(problem, total, T)
    denom = float(total.sum() + penalty.sum())
    metrics: dict[str, Any] = {kk: float(v.mean()) for kk, v in sums.items()}
    metrics["target_violation_share"] = float(penalty.sum()) / denom if denom > 0 else 0.0
    metrics["target_penalty_cost"] = float(penalty.mean())
    metrics["decision_seconds_per_stage"] = decide_s / T  # for the whole batch of scenarios
    metrics["decision_seconds_per_scenario_stage"] = decide_s / (T * n)
    metrics["series"] = {
        "volume": torch.stack(series["volume"], 1).tolist(),  # [k, T + 1, H]
        **{kk: torch.stack(v, 1).tolist() for kk, v in series.items() if kk != "volume"},
    }
    if per_scenario:
        metrics["by_scenario"] = {"cost": total, "penalty": penalty, **sums}
    return ev, metrics
