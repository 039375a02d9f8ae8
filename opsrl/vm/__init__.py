"""VM rescheduling: a batched data-centre simulator, baselines, CP-SAT references, a learned two-stage policy.

Problems (``problems/vm/*.toml``): ``vm/tiny`` (exact checks), ``vm/medium_mnl5`` ... ``vm/medium_mnl50``,
``vm/large_mnl50``, ``vm/multi_resource_mnl50``; a snapshot file (VMR2L JSON, Azure Packing Trace 2020,
Huawei-East-1) with ``generator = "file"``. See ``docs/vm.md``.

Methods of this family: ``greedy`` (the best single migration each step, over all candidates at once),
``ffd`` (first-fit-decreasing repacking), ``random_feasible``, ``cpsat`` (OR-Tools CP-SAT per snapshot,
warm-started from greedy) and ``gnn`` (the shipped two-stage policy trained by the generic ``ppo``;
``samples = 64``: risk-seeking best of 64 plans in one batch). The test cost of a run is the change of
fragment rate (final minus initial; negative is better); the run record's ``vm`` entry adds
``initial_fr``, ``final_fr``, ``migrations``, ``blocks_gained``, ``plan_seconds`` and the free CPU of each
NUMA node of the first test snapshot before and after (drawn by :func:`picture`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import torch
from tqdm.auto import tqdm

from ..core import ConfigError, Family, Field, Method, Metric, RecordBound, Scenarios, SolveOutcome, rollout, summarize
from ..core.config import non_negative, positive, size, threads
from . import baselines, simulator
from .problem import VMRescheduling, build
from .snapshots import Snapshot, check_snapshot, generate, stack

__all__ = [
    "FAMILY",
    "METHODS",
    "VMRescheduling",
    "build",
    "record",
    "picture",
    "plan_metrics",
    "Snapshot",
    "generate",
    "stack",
    "check_snapshot",
    "simulator",
    "baselines",
]


def _check_problem(problem, ctx) -> None:
    if not isinstance(problem, VMRescheduling):
        raise ConfigError(ctx.source, "method", "this method applies to VM-rescheduling problems")


def plan_metrics(
    problem: VMRescheduling,
    initial: Mapping[str, torch.Tensor],
    final: Mapping[str, torch.Tensor],
    seconds: torch.Tensor | float,
) -> dict[str, Any]:
    """The record fields of a batch of plans: means over the snapshots, and the first snapshot's nodes."""
    fr0, fr1 = problem.fr(initial), problem.fr(final)
    b0, b1 = simulator.blocks(initial, problem.block), simulator.blocks(final, problem.block)
    secs = torch.as_tensor(seconds, dtype=torch.float64).expand(fr0.shape[0])
    real = initial["pm_mask"][0]
    return {
        "initial_fr": float(fr0.double().mean()),
        "final_fr": float(fr1.double().mean()),
        "migrations": float(simulator.migrations(final).double().mean()),
        "blocks_gained": float((b1 - b0).double().mean()),
        "plan_seconds": float(secs.mean()),
        "per_snapshot": {"initial_fr": fr0.tolist(), "final_fr": fr1.tolist(), "plan_seconds": secs.tolist()},
        "nodes_before": initial["free_cpu"][0][real].reshape(-1).tolist(),
        "nodes_after": final["free_cpu"][0][real].reshape(-1).tolist(),
        "block": problem.block,
    }


@torch.no_grad()
def record(problem: VMRescheduling, outcome: SolveOutcome) -> dict[str, Any]:
    """Extra fields of a run (see the module docstring); a policy is rolled out once more on the test set, timed."""
    if "vm" in outcome.info:
        return {"vm": outcome.info["vm"]}
    if outcome.policy is None:
        return {}
    sc = problem.test_set()
    t0 = time.perf_counter()
    traj = rollout(problem, outcome.policy, sc)
    secs = (time.perf_counter() - t0) / sc.n
    return {"vm": plan_metrics(problem, problem.initial_state(sc), traj.final_state, secs)}


def picture(problem: VMRescheduling, record: Mapping[str, Any]):
    """Report hook: each NUMA node's free CPU in the first test snapshot before and after the plan (heat strips),
    with the fragments (free mod block) below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    v = record.get("vm") or {}
    if not v.get("nodes_before"):
        return None
    blk = v.get("block", 16.0)
    before, after = np.asarray(v["nodes_before"]), np.asarray(v["nodes_after"])
    fig, axes = plt.subplots(4, 1, figsize=(11, 4.2), sharex=True, gridspec_kw={"hspace": 0.5})
    vmax = max(before.max(), after.max(), 1)
    for ax, x, title in (
        (axes[0], before, "free CPU before"),
        (axes[1], after, "free CPU after"),
        (axes[2], np.mod(before, blk), f"fragments (free mod {blk:g}) before"),
        (axes[3], np.mod(after, blk), f"fragments (free mod {blk:g}) after"),
    ):
        im = ax.imshow(
            x[None, :],
            aspect="auto",
            cmap="viridis",
            vmin=0,
            vmax=vmax if "fragments" not in title else blk,
            interpolation="nearest",
        )
        ax.set_yticks([])
        ax.set_title(title, fontsize=9, loc="left")
        if len(x) <= 48:  # small clusters: the numbers too
            for i, val in enumerate(x):
                ax.text(i, 0, f"{val:g}", ha="center", va="center", fontsize=7, color="w")
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    axes[-1].set_xlabel("NUMA node (PM-major)")
    fig.suptitle(
        f"{record.get('solver', '')}: FR {v.get('initial_fr', math.nan):.3f} -> {v.get('final_fr', math.nan):.3f} "
        f"(mean over test snapshots), {v.get('migrations', 0):.1f} migrations",
        fontsize=10,
    )
    return fig


# --- methods ---------------------------------------------------------------------------------------
def _policy_method(name: str, make, description: str) -> Method:
    def fit(problem, options, config, ctx) -> SolveOutcome:
        _check_problem(problem, ctx)
        return SolveOutcome(policy=make(problem, ctx), info={"policy": name})

    return Method(name, fit, {}, description=description)


CPSAT_OPTIONS = {
    "time_limit": Field(float, 60.0, allowed="a positive number of seconds per snapshot", check=positive),
    "workers": size(2, 256, allowed="CP-SAT workers, from 1 to 256"),
    "seed": Field(int, 0, allowed="an integer >= 0 (CP-SAT random seed)", check=non_negative),
    "warm_start": Field(bool, True, doc="hint a plan's final placement (``hint`` says whose)"),
    "hint": Field(
        str,
        "greedy",
        allowed="'greedy' (the greedy plan) or 'policy' (the shipped policy's best of ``hint_samples``; its time "
        "counts in plan_seconds)",
        choices=("greedy", "policy"),
    ),
    "hint_samples": size(
        64, 10**5, allowed="plans the policy samples for the hint, from 1 to 10^5", counts="test_copies"
    ),
    "candidates": Field(
        int,
        100,
        allowed="VMs that may move: that many with the best single-move FR change, plus "
        "the hinted ones (0: all; the full model)",
        check=non_negative,
    ),
    "destinations": Field(
        int, 32, allowed="destinations per VM: its that many best at the snapshot (0: all)", check=non_negative
    ),
    "log": Field(bool, False, doc="print CP-SAT's search log"),
}


def _fit_cpsat(problem, o, config, ctx) -> SolveOutcome:
    from . import cpsat

    _check_problem(problem, ctx)
    if abs(problem.block - round(problem.block)) > 1e-9 or (
        problem.objective == "multi" and abs(problem.mem_block * cpsat.MEM_SCALE % 1) > 1e-9
    ):
        raise ConfigError(ctx.source, "method", "CP-SAT needs an integer block size")
    info: dict[str, Any] = dict(o)

    def evaluate(scenarios: Scenarios):
        s0 = problem.initial_state(scenarios)
        B, T = scenarios.n, problem.periods
        hints, hint_plans = [None] * B, [None] * B
        hint_secs = 0.0
        if o["warm_start"]:
            t0 = time.perf_counter()
            if o["hint"] == "policy":
                from . import policy as pol

                g = pol.best_of(problem, pol.load(problem, None, ctx.source), scenarios, o["hint_samples"])
            else:
                g = rollout(problem, baselines.Greedy(problem), scenarios).final_state
            hint_secs = (time.perf_counter() - t0) / B  # the batch's time, shared by its snapshots
            moved = (g["vm_pm"] != s0["vm_pm"]) | (g["vm_node"] != s0["vm_node"])
            own = simulator.own_slot(g)
            hints = [{int(v): int(own[b, v]) for v in moved[b].nonzero()[:, 0]} for b in range(B)]
            pv, ps = g["plan_vm"].cpu(), g["plan_slot"].cpu()  # the hint's moves in order (-1: none)
            hint_plans = [[(int(v), int(s)) for v, s in zip(pv[b], ps[b]) if v >= 0] for b in range(B)]
        plan_vm = -torch.ones(B, T, dtype=torch.long)
        plan_slot = -torch.ones(B, T, dtype=torch.long)
        rows, secs = [], torch.zeros(B, dtype=torch.float64)
        bar = tqdm(range(B), desc=f"cpsat {problem.name}", disable=not ctx.progress or B < 2)
        for b in bar:
            r = cpsat.solve(
                s0,
                b,
                problem.mnl,
                problem.block,
                problem.objective,
                problem.mem_block,
                o["time_limit"],
                o["workers"],
                hints[b],
                o["seed"] + ctx.seed,
                o["log"],
                o["candidates"],
                o["destinations"],
                hint_plans[b],
            )
            secs[b] = r.seconds + hint_secs
            for t, (v, s) in enumerate(r.plan[:T]):
                plan_vm[b, t], plan_slot[b, t] = v, s
            rows.append(
                {
                    "status": r.status,
                    "scope": r.scope,
                    "fr": r.fr,
                    "source": r.source,
                    "model_fr": r.model_fr,
                    "bound_fr": r.bound_fr,
                    "hint_fr": r.hint_fr,
                    "seconds": r.seconds,
                    "moves": len(r.plan),
                    "unordered": r.unordered,
                    **r.info,
                }
            )
            bar.set_postfix(fr=f"{r.fr:.4f}", status=r.status)
        dev = s0["free_cpu"].device
        planned, _ = simulator.apply_plan(s0, plan_vm.to(dev), plan_slot.to(dev))
        planned.update(plan_vm=plan_vm.to(dev), plan_slot=plan_slot.to(dev))
        final = planned
        if problem.drift_on():
            lat = (
                secs.to(dev, s0["free_cpu"].dtype)
                if problem.drift["measured_latency"]
                else torch.full((B,), problem.drift["latency"], dtype=s0["free_cpu"].dtype, device=dev)
            )
            final = problem.under_drift(planned, scenarios, lat)
        per = (problem.fr(final) - problem.fr(s0)).double().cpu()
        metrics = plan_metrics(problem, s0, final, secs)
        metrics["bound_fr"] = sum(r["bound_fr"] for r in rows) / len(rows)
        metrics["optimal"] = sum(r["status"] == "optimal" for r in rows)
        metrics["snapshots"] = rows
        info["vm"] = metrics
        return summarize(problem, per, scenarios.periods), {"snapshots": rows}

    return SolveOutcome(evaluate=evaluate, info=info)


GNN_OPTIONS = {
    "weights": Field(str, "", allowed="a path to two-stage policy weights ('': the shipped ones)"),
    "samples": size(
        1,
        10**5,
        allowed="plans per snapshot, from 1 (greedy decoding) to 10^5 (the best of that many in "
        "one batch: the first greedy, the others sampled)",
        counts="test_copies",
    ),
    "seed": Field(int, 0, allowed="an integer >= 0 (sampling seed)", check=non_negative),
    "threads": threads(
        1,
        allowed="torch threads while planning (0: leave torch's setting; 1 by default: best of 64 on "
        "Medium took 1.6 s per snapshot with one thread and 7.3 s with two on the shared 2-core machine)",
    ),
}


def _fit_gnn(problem, o, config, ctx) -> SolveOutcome:
    from . import policy as pol

    _check_problem(problem, ctx)
    ac = pol.load(problem, o["weights"] or None, ctx.source)
    info: dict[str, Any] = {"samples": o["samples"], "weights": o["weights"] or str(pol.WEIGHTS)}

    def evaluate(scenarios: Scenarios):
        """Greedy decoding or best of K through the fast planner (:func:`.policy.fast_plan`: the same moves as
        rolling out the policy through the contract), timed; under drift the plan is applied at the measured
        time (``drift.measured_latency``) or at ``drift.latency``."""
        s0 = problem.initial_state(scenarios)
        threads = torch.get_num_threads()
        if o["threads"]:
            torch.set_num_threads(o["threads"])
        try:
            t0 = time.perf_counter()
            if o["samples"] == 1:
                final = pol.fast_plan(problem, ac, scenarios)
            else:
                final = pol.best_of(problem, ac, scenarios, o["samples"], o["seed"] + ctx.seed)
            secs = (time.perf_counter() - t0) / scenarios.n
        finally:
            torch.set_num_threads(threads)
        if problem.drift_on():
            lat = torch.full(
                (scenarios.n,),
                secs if problem.drift["measured_latency"] else problem.drift["latency"],
                dtype=s0["free_cpu"].dtype,
                device=s0["free_cpu"].device,
            )
            final = problem.under_drift(final, scenarios, lat)
        per = (problem.fr(final) - problem.fr(s0)).double().cpu()
        info["vm"] = plan_metrics(problem, s0, final, secs)
        return summarize(problem, per, scenarios.periods), {}

    return SolveOutcome(policy=ac, evaluate=evaluate, info=info)


METHODS: dict[str, Method] = {
    "greedy": _policy_method(
        "greedy",
        lambda p, ctx: baselines.Greedy(p),
        "the allowed migration that lowers FR most, each step (all candidates at once)",
    ),
    "ffd": _policy_method(
        "ffd",
        lambda p, ctx: baselines.FFD(p),
        "first-fit-decreasing repacking (drain the least-loaded nodes into the most-loaded)",
    ),
    "random_feasible": _policy_method(
        "random_feasible", lambda p, ctx: baselines.RandomFeasible(p, ctx.seed), "a random allowed migration each step"
    ),
    "cpsat": Method(
        "cpsat",
        _fit_cpsat,
        CPSAT_OPTIONS,
        description="OR-Tools CP-SAT per snapshot with the MNL, warm-started from greedy",
    ),
    "gnn": Method(
        "gnn",
        _fit_gnn,
        GNN_OPTIONS,
        description="the shipped two-stage graph policy (PPO on synthetic Medium): greedy or best of K",
    ),
}


def _cpsat_bound(rec: Mapping[str, Any]) -> float | None:
    """CP-SAT's proven bound on the mean final fragment rate: only from the full model (a restricted model's
    bound bounds that model only) and without drift (the bound is on the planned state)."""
    opts = ((rec.get("config") or {}).get("solver") or {}).get("options") or {}
    v = rec.get("vm") or {}
    if opts.get("candidates") or opts.get("destinations") or not isinstance(v.get("bound_fr"), (int, float)):
        return None
    drift = ((rec.get("config") or {}).get("problem") or {}).get("drift") or {}
    if drift.get("arrival_rate") or drift.get("departure_rate"):
        return None
    return float(v["bound_fr"])


def _cpsat_bounds(rec: Mapping[str, Any]) -> list[float] | None:
    """CP-SAT's proven bound of each test snapshot (where :func:`_cpsat_bound` holds)."""
    if _cpsat_bound(rec) is None:
        return None
    rows = (rec.get("vm") or {}).get("snapshots") or []
    vals = [r.get("bound_fr") for r in rows]
    return [float(v) for v in vals] if vals and all(isinstance(v, (int, float)) for v in vals) else None


def _snapshots(rec: Mapping[str, Any]) -> dict[str, tuple[float, float | None]] | None:
    """Report hook: the final fragment rate of each test snapshot (no per-snapshot reference)."""
    fr = ((rec.get("vm") or {}).get("per_snapshot") or {}).get("final_fr")
    return {f"snapshot {i}": (float(x), None) for i, x in enumerate(fr)} if fr else None


FAMILY = Family(
    "vm",
    build,
    METHODS,
    lambda problem: None,
    record,
    picture,
    # the test cost is the change in fragment rate (negative: better); the report compares the final rate
    metric=Metric(
        "final fragment rate",
        "",
        "min",
        value="vm.final_fr",
        per_scenario="vm.per_snapshot.final_fr",
        beside=(("migrations", "vm.migrations"), ("plan s", "vm.plan_seconds")),
    ),
    references=("cpsat_bound",),
    record_bounds=(RecordBound("cpsat", "CP-SAT proven bound (full model)", _cpsat_bound, "lower", _cpsat_bounds),),
    instances=_snapshots,
)
