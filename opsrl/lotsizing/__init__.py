"""Capacitated multi-item lot sizing with setups (Felizardo et al., PDPPO), its references and methods.

Read in this order: :mod:`.instances` (the published generator, documented seeds), :mod:`.simulator` (the
batched post-decision MDP), :mod:`.rules` (the cover rule), :mod:`.mip` (perfect-information bound and
rolling-horizon MIP, OR-Tools SCIP), :mod:`.relaxed` (straight-through Gumbel-softmax for HDPO),
:mod:`.numpy_env` (a one-environment NumPy re-implementation of the authors' simulator, for checks and speed).

Problems: ``lotsizing/i15_m5`` ... ``lotsizing/i30_m15`` (the six published sizes) and ``lotsizing/i15_m5_older``.
The generic ``ppo`` and ``pdppo`` run on them with a per-machine factorised, masked categorical head.
Methods of this family:

* ``cover_rule``: set machines up for the items with the fewest periods of cover (two thresholds searched on
  dev scenarios);
* ``rolling_mip``: rolling-horizon MIP on the expected demand (one small MIP per scenario and period);
* ``hindsight_mip``: the perfect-information MIP of each test scenario, reported as a lower bound (never a
  policy), with the incumbent plan's cost alongside;
* ``hdpo_gumbel``: HDPO (the generic trainer of :mod:`opsrl.algos.hdpo`) on a straight-through Gumbel-softmax
  relaxation of the setup choices;
* ``graph_policy``: the item-machine network of :mod:`.learned` (one set of weights for every plant size),
  trained by cloning the rolling MIP and policy iteration by rollouts; shipped as ``lotsizing_learned``.

A run record adds ``lotsizing``: the mean setup, holding and lost-sales costs per episode, setups and lost
units per episode, and the first test scenario's stock and setups over time, which :func:`picture` draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..algos import hdpo
from ..core import (
    BoundSolver,
    ConfigError,
    Family,
    Field,
    Method,
    Metric,
    Scenarios,
    SolveContext,
    SolveOutcome,
    summarize,
)
from ..core.config import non_negative, positive, size, threads, widths
from . import instances, lagrangian, learned, mip, rules
from .relaxed import GumbelSetupPolicy
from .rules import CoverRule, search_cover
from .simulator import LotSizing, build

__all__ = ["FAMILY", "METHODS", "LotSizing", "build", "run_policy", "record", "picture", "instances", "mip", "rules"]


@torch.no_grad()
def run_policy(problem: LotSizing, policy, scenarios: Scenarios) -> dict[str, Any]:
    """Roll ``policy`` out on ``scenarios``: per-scenario totals ``[n]`` of every cost part (float64), setups and
    lost units, and the first scenario's stock ``[T + 1, I]`` and choices ``[T, M]``."""
    if getattr(policy, "training", False):
        policy.eval()
    state = problem.initial_state(scenarios)
    n = scenarios.n
    tot = {
        k: torch.zeros(n, dtype=torch.float64)
        for k in ("setup_cost", "holding_cost", "lost_sales_cost", "setups", "lost_units")
    }
    stock, choices = [state["inventory"][0].tolist()], []
    for t in range(scenarios.periods):
        action = policy(state, t)
        d = problem.decide(state, action)
        post = {"inventory": state["inventory"] + d["production"], "setup": d["setup"]}
        s = problem.serve(post, scenarios["demand"][:, t].to(post["inventory"].dtype))
        tot["setup_cost"] += d["setup_cost"].double().cpu()
        tot["setups"] += d["change"].sum((1, 2)).double().cpu()
        tot["holding_cost"] += s["holding_cost"].double().cpu()
        tot["lost_sales_cost"] += s["lost_sales_cost"].double().cpu()
        tot["lost_units"] += s["lost"].sum(1).double().cpu()
        state = {"inventory": s["inventory"], "setup": d["setup"]}
        stock.append(state["inventory"][0].tolist())
        choices.append(d["setup"][0].argmax(-1).tolist())
    tot["total"] = tot["setup_cost"] + tot["holding_cost"] + tot["lost_sales_cost"]
    return {"by_scenario": tot, "stock": stock, "choices": choices}


def _summary(res: Mapping[str, Any]) -> dict[str, Any]:
    by = res["by_scenario"]
    out = {k: float(v.mean()) for k, v in by.items() if k != "total"}
    out["scenarios"] = int(by["total"].numel())
    out["first_scenario"] = {"stock": [[round(x, 3) for x in row] for row in res["stock"]], "choices": res["choices"]}
    return out


def record(problem: LotSizing, outcome: SolveOutcome) -> dict[str, Any]:
    """Extra fields of a run: mean cost parts per episode and the first test scenario's trajectory."""
    if "lotsizing" in outcome.info:
        return {"lotsizing": outcome.info["lotsizing"]}
    if outcome.policy is None:
        return {}
    return {"lotsizing": _summary(run_policy(problem, outcome.policy, problem.test_set()))}


def picture(problem: LotSizing, rec: Mapping[str, Any]):
    """Report hook: stock of every item and the machines' setups over the first test scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ls = (rec.get("lotsizing") or {}).get("first_scenario")
    if not ls:
        return None
    stock = np.asarray(ls["stock"])
    ch = np.asarray(ls["choices"], dtype=float)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for i in range(stock.shape[1]):
        a1.plot(np.arange(stock.shape[0]), stock[:, i], lw=0.9, alpha=0.8)
    a1.set_ylabel("stock after demand")
    a1.set_title(f"{rec.get('solver', '')} on {problem.name}: first test scenario")
    masked = np.ma.masked_where(ch.T == 0, ch.T)
    im = a2.imshow(
        masked,
        aspect="auto",
        interpolation="nearest",
        cmap="tab20",
        vmin=1,
        vmax=problem.I,
        extent=(0, ch.shape[0], problem.M - 0.5, -0.5),
    )
    a2.set_ylabel("machine")
    a2.set_xlabel("period (white: idle)")
    fig.colorbar(im, ax=a2, label="item set up")
    fig.tight_layout()
    return fig


# --- methods -----------------------------------------------------------------------------------
def _check(problem, ctx: SolveContext) -> None:
    if not isinstance(problem, LotSizing):
        raise ConfigError(ctx.source, "method", "this method applies to lot-sizing problems")


COVER_OPTIONS = {
    "low": Field(
        float, 0.0, allowed="periods of cover below which an item is urgent (0: search on dev)", check=non_negative
    ),
    "high": Field(
        float,
        0.0,
        allowed="periods of cover up to which a machine keeps its setup (0: search on dev)",
        check=non_negative,
    ),
    "dev_scenarios": size(256, 10**7, allowed="dev scenarios for the search, from 1 to 10^7", counts="scenarios"),
}


def _fit_cover(problem, o, config, ctx) -> SolveOutcome:
    _check(problem, ctx)
    info: dict[str, Any] = {}
    low, high = o["low"], o["high"]
    if not low or not high:
        dev = problem.sample(o["dev_scenarios"], "dev", ctx.seed, device=ctx.device)
        best, grid = search_cover(problem, dev)
        low, high = (low or best["low"]), (high or best["high"])
        info.update(dev_cost=best["cost"], grid=grid)
    info.update(low=low, high=high)
    return SolveOutcome(policy=CoverRule(problem, low, high), info=info)


MPC_OPTIONS = {
    "horizon": size(8, 10**4, allowed="periods planned ahead, from 1 to 10^4"),
    "time_limit": Field(float, 1.0, allowed="seconds per MIP", check=positive),
    "scenarios": Field(
        int, 10, allowed="how many of the test scenarios are run (one MIP per scenario and period)", check=positive
    ),
    "static": Field(
        bool,
        True,
        doc="each machine keeps one choice over the planning horizon (a small MIP); false: "
        "period-by-period setups (much harder to solve in time)",
    ),
    "backend": Field(str, "SCIP", choices=("SCIP", "CBC", "CP_SAT")),
}


def _fit_mpc(problem, o, config, ctx) -> SolveOutcome:
    _check(problem, ctx)
    info: dict[str, Any] = {k: o[k] for k in MPC_OPTIONS}

    def evaluate(scenarios: Scenarios):
        sc = scenarios.select(slice(0, min(o["scenarios"], scenarios.n)))
        pol = _MPCPolicy(problem, o, ctx)
        res = run_policy(problem, pol, sc)
        pol.bar.close()
        s = _summary(res)
        info["lotsizing"] = s
        ev = summarize(problem, res["by_scenario"]["total"], sc.periods)
        return ev, {"solves": pol.mpc.solves, "not_optimal": pol.mpc.not_optimal, "solve_seconds": pol.mpc.seconds}

    return SolveOutcome(evaluate=evaluate, info=info)


class _MPCPolicy:
    def __init__(self, problem, o, ctx):
        self.mpc = mip.RollingMIP(problem, o["horizon"], o["time_limit"], o["backend"], static=o["static"])
        self.bar = tqdm(
            total=problem.periods, desc=f"rolling mip {problem.name}", disable=not ctx.progress, leave=False
        )

    def __call__(self, state, t):
        out = self.mpc(state, t)
        self.bar.update(1)
        return out


HINDSIGHT_OPTIONS = {
    "time_limit": Field(float, 30.0, allowed="seconds per scenario", check=positive),
    "scenarios": Field(int, 10, allowed="how many of the test scenarios are solved", check=positive),
    "backend": Field(str, "SCIP", choices=("SCIP", "CBC", "CP_SAT")),
    "exact_cap": Field(
        bool,
        False,
        doc="model the cap's discard exactly (a binary per item and period); false: free disposal, a relaxation",
    ),
    "threads": threads(1, low=1, allowed="solver threads"),
    "item_bound_steps": Field(
        int,
        0,
        allowed="0 (off) or a number of subgradient steps up to 10^6",
        check=non_negative,
        max=10**6,
        doc="also the item-decomposition Lagrangian bound (lagrangian.py); each scenario keeps the larger bound",
    ),
}


def _fit_hindsight(problem, o, config, ctx) -> SolveOutcome:
    _check(problem, ctx)
    info: dict[str, Any] = {k: o[k] for k in HINDSIGHT_OPTIONS}

    def evaluate(scenarios: Scenarios):
        n = min(o["scenarios"], scenarios.n)
        bounds, rows = [], []
        for b in tqdm(range(n), desc=f"hindsight mip {problem.name}", disable=not ctx.progress, leave=False):
            r = mip.hindsight(
                problem,
                scenarios,
                b,
                time_limit=o["time_limit"],
                backend=o["backend"],
                exact_cap=o["exact_cap"],
                threads=o["threads"],
            )
            row = {"scenario": b, "status": r.status, "bound": r.bound, "plan_cost": r.objective, "seconds": r.seconds}
            row.update(r.parts)
            if o["item_bound_steps"] and "item_bound_refused" not in info:
                try:
                    lag = lagrangian.item_bound(problem, scenarios, b, iterations=o["item_bound_steps"])
                except ValueError as e:  # too many machines per item, or stocks that are not integers
                    info["item_bound_refused"] = str(e)
                else:
                    row.update(item_bound=lag.bound, item_plan_cost=lag.plan_cost, item_seconds=lag.seconds)
                    row["mip_bound"] = row["bound"]
                    if not lag.bound <= row["bound"]:
                        row.update(bound=lag.bound, bound_from="item_lagrangian")
            bounds.append(row["bound"])
            rows.append(row)
        per = torch.tensor(bounds, dtype=torch.float64)
        info["per_scenario"] = rows
        found = [r for r in rows if math.isfinite(r["plan_cost"])]  # a plan within the time limit
        ev_info = {
            "kind": "lower_bound",
            "optimal": sum(r["status"] == "optimal" for r in rows),
            "solved": n,
            "with_plan": len(found),
            "mean_plan_cost": float(np.mean([r["plan_cost"] for r in found])) if found else None,
            "mean_gap_pct": float(
                np.mean([100 * (r["plan_cost"] - r["bound"]) / max(abs(r["plan_cost"]), 1e-9) for r in found])
            )
            if found
            else None,
        }
        return summarize(problem, per, scenarios.periods), ev_info

    return SolveOutcome(evaluate=evaluate, info=info)


HDPO_OPTIONS = {
    **hdpo.OPTIONS,
    "temperature": Field(float, 1.0, allowed="a positive Gumbel-softmax temperature", check=positive),
    "hidden": widths([128, 128]),
}


def _sizes_hdpo(problem, o, config) -> list:
    """HDPO's pools and the setup policy's MLP (widths ``options.hidden``, one logit per machine and choice)."""
    return hdpo.sizes(problem, o, config, policy={"kind": "mlp", "hidden": o["hidden"]})


def _fit_hdpo(problem, o, config, ctx) -> SolveOutcome:
    _check(problem, ctx)
    if o["imitate"]:
        raise ConfigError(ctx.source, "options.imitate", "not available for the relaxed setup policy")
    torch.manual_seed(ctx.seed)
    policy = GumbelSetupPolicy(problem, o["hidden"], "tanh", o["temperature"])
    opts = {k: v for k, v in o.items() if k in hdpo.OPTIONS}
    policy, curve = hdpo.train(problem, policy, opts, ctx)
    best = min(curve, key=lambda e: e["dev_cost"])
    return SolveOutcome(
        policy=policy,
        curve=curve,
        info={
            "best_dev_cost": best["dev_cost"],
            "best_step": best["step"],
            "steps": curve[-1]["step"],
            "relaxation": "straight-through Gumbel-softmax",
            "temperature": o["temperature"],
        },
    )


METHODS: dict[str, Method] = {
    "cover_rule": Method(
        "cover_rule",
        _fit_cover,
        COVER_OPTIONS,
        description="set machines up for the items with the fewest periods of cover",
    ),
    "rolling_mip": Method(
        "rolling_mip",
        _fit_mpc,
        MPC_OPTIONS,
        description="rolling-horizon MIP on expected demand (OR-Tools SCIP), first period applied",
    ),
    "hindsight_mip": Method(
        "hindsight_mip",
        _fit_hindsight,
        HINDSIGHT_OPTIONS,
        description="perfect-information MIP per test scenario: a lower bound, not a policy",
    ),
    "hdpo_gumbel": Method(
        "hdpo_gumbel",
        _fit_hdpo,
        HDPO_OPTIONS,
        sizes=_sizes_hdpo,
        learns=True,
        description="HDPO through a straight-through Gumbel-softmax relaxation of the setups",
    ),
    "graph_policy": learned.METHOD,
}


def reference(problem) -> None:
    """No closed-form optimum; the perfect-information bound is a solver (``lotsizing_hindsight``), since it
    takes a MIP per scenario (see docs/lotsizing.md for the bounds next to every learned cost)."""
    return None


FAMILY = Family(
    "lotsizing",
    build,
    METHODS,
    reference,
    record,
    picture,
    metric=Metric("total cost over the episode", "", "min"),
    references=("hindsight", "item_bound"),
    # per scenario the larger of SCIP's best bound and (item_bound_steps > 0) the item Lagrangian bound
    bounds=(BoundSolver("hindsight_mip", "perfect-information bound (MIP's bound, or the item bound if larger)"),),
)
