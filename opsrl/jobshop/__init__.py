"""Job-shop scheduling: a batched simulator, dispatching rules, CP-SAT, standard instances, Gantt charts.

Problems (``problems/jobshop/*.toml``): one per standard instance (``jobshop/ft06``, ``jobshop/ta01`` ...),
one per family and size class (``jobshop/ta_15x15``, ``jobshop/dmu_50x20`` ...), per family
(``jobshop/ta_all``), a stochastic example (``jobshop/ft10_noisy``) and random instances
(``jobshop/random_15x15``). See ``docs/jobshop.md``.

Methods of this family: the dispatching rules ``spt``, ``lpt``, ``mwkr``, ``lwkr``, ``mopnr``, ``fifo``,
``fdd_mwkr`` (batched policies, :mod:`.rules`), ``cpsat`` (OR-Tools CP-SAT per instance, :mod:`.cpsat`) and the
shipped learned dispatcher, ``gnn_greedy`` and ``gnn_sample128`` (:mod:`.dispatcher`; trained by the generic
``ppo`` with ``policy.kind = "graph"``).

The test cost of a run is the makespan (the mean over the instances of a set, or over the noise
scenarios). The reference of a deterministic problem is the optimum (``optimum``, every instance closed)
or the best-known makespan (``best_known``); for a set it is the mean of the per-instance values, so the
run's ``gap_pct`` is the gap of the mean makespan to the mean bound; the run record's ``jobshop`` entry adds
each instance's makespan, bound and gap, the mean of the per-instance gaps (``mean_gap_pct``) and the
schedule of the first test instance (``gantt``, drawn by the report's picture hook :func:`picture`).
Stochastic and generated problems have no reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from tqdm.auto import tqdm

from ..core import (
    ConfigError,
    Family,
    Field,
    Method,
    Metric,
    RecordBound,
    Reference,
    Scenarios,
    SolveContext,
    SolveOutcome,
    rollout,
    summarize,
)
from ..core.config import non_negative, positive, size
from . import check, cpsat, instances, rules
from .instances import Instance
from .simulator import JobShop, build, metrics

__all__ = [
    "FAMILY",
    "METHODS",
    "JobShop",
    "build",
    "reference",
    "record",
    "instances",
    "rules",
    "cpsat",
    "check",
    "schedules",
    "run_policy",
]


def reference(problem: JobShop) -> Reference | None:
    if not isinstance(problem, JobShop) or not problem.instances or problem.stochastic:
        return None
    if any(_bounds(i) is None for i in problem.instances):  # an instance of the user's own: no known bound
        return None
    names = [i.name for i in problem.instances]
    value = sum(instances.best_known(n) for n in names) / len(names)
    closed = all(instances.is_closed(n) for n in names)
    src = "ScheduleOpt/benchmarks bks.json, CC BY-SA 4.0"
    if len(names) > 1:
        src = f"mean over {len(names)} instances of the {'optima' if closed else 'best-known makespans'}; {src}"
    return Reference("optimum" if closed else "best_known", value, src)


def _bounds(inst: Instance) -> dict | None:
    """The published bounds of a bundled instance (:func:`instances.load` keeps them), else None."""
    return inst.meta.get("bounds")


def schedules(state: dict, problem: JobShop | None = None) -> list[dict[str, list[list[float]]]]:
    """The schedule of every scenario of a (final) state: ``{"start": [[...]], "end": [[...]]}`` per job."""
    n_ops = state["n_ops"].tolist()
    start, end = state["start"].tolist(), state["end"].tolist()
    return [
        {
            "start": [start[b][j][:n] for j, n in enumerate(row) if n > 0],
            "end": [end[b][j][:n] for j, n in enumerate(row) if n > 0],
        }
        for b, row in enumerate(n_ops)
    ]


@torch.no_grad()
def run_policy(problem: JobShop, policy, scenarios: Scenarios | None = None):
    """Roll ``policy`` out on ``scenarios`` (default: the test set); return ``(final_state, metrics)``."""
    scenarios = problem.test_set() if scenarios is None else scenarios
    traj = rollout(problem, policy, scenarios)
    return traj.final_state, metrics(traj.final_state)


def _instance_rows(problem: JobShop, scenarios: Scenarios, makespan: torch.Tensor) -> list[dict[str, Any]]:
    """Per-instance mean makespan, its bound and gap (deterministic standard instances only)."""
    idx = scenarios["instance"].tolist()
    rows = []
    for i, inst in enumerate(problem.instances):
        sel = [b for b, k in enumerate(idx) if k == i]
        if not sel:
            continue
        ms = float(makespan[sel].double().mean())
        b = _bounds(inst)
        if b is None:  # an instance of the user's own
            rows.append({"instance": inst.name, "makespan": ms})
            continue
        row = {
            "instance": inst.name,
            "makespan": ms,
            "best_known": b["upper_bound"],
            "lower_bound": b["lower_bound"],
            "closed": b["status"] == "closed",
        }
        if not problem.stochastic:
            row["gap_pct"] = 100.0 * (ms - b["upper_bound"]) / b["upper_bound"]
        rows.append(row)
    return rows


def record(problem: JobShop, outcome: SolveOutcome) -> dict[str, Any]:
    """Extra fields of a run: the generation scheme, per-instance makespans and gaps, flow time, tardiness."""
    out: dict[str, Any] = {"schedule": problem.schedule, "noise": problem.noise if problem.stochastic else "none"}
    rows = outcome.info.get("per_instance")
    gantt = outcome.info.get("gantt")
    if rows is None and outcome.policy is not None:
        sc = problem.test_set()
        final, m = run_policy(problem, outcome.policy, sc)
        gantt = {"instance": _scenario_name(problem, sc, 0), "machine": _routes(sc, 0), **schedules(final)[0]}
        out["flow_time"] = float(m["flow_time"].double().mean())
        tard = m["tardiness"]
        out["tardiness"] = None if torch.isnan(tard).all() else float(tard.double().mean())
        if problem.instances:
            rows = _instance_rows(problem, sc, m["makespan"])
    if rows:
        out["instances"] = rows
        gaps = [r["gap_pct"] for r in rows if r.get("gap_pct") is not None]
        out["mean_gap_pct"] = sum(gaps) / len(gaps) if gaps else None
    if gantt and sum(map(len, gantt["machine"])) <= GANTT_MAX_OPERATIONS:
        out["gantt"] = gantt
    return {"jobshop": out}


GANTT_MAX_OPERATIONS = 2000  # a run record keeps the schedule of its first test instance up to this size


def _routes(scenarios: Scenarios, b: int) -> list[list[int]]:
    n_ops, mach = scenarios["n_ops"][b].tolist(), scenarios["machine"][b].tolist()
    return [mach[j][:n] for j, n in enumerate(n_ops) if n > 0]


def _scenario_name(problem: JobShop, scenarios: Scenarios, b: int) -> str:
    return problem.instances[int(scenarios["instance"][b])].name if problem.instances else f"scenario {b}"


def picture(problem: JobShop, record: Mapping[str, Any]):
    """Report hook: the Gantt chart of the first test instance's schedule kept in the run record."""
    from .plot import gantt

    g = (record.get("jobshop") or {}).get("gantt")
    if not g:
        return None
    ms = max((e for row in g["end"] for e in row), default=0.0)
    return gantt(
        g["machine"],
        g["start"],
        g["end"],
        f"{record.get('solver', '')} on {g['instance']} ({problem.schedule} schedule): makespan {ms:g}",
    )


# --- methods ---------------------------------------------------------------------------------
def _check_problem(problem, ctx: SolveContext) -> None:
    if not isinstance(problem, JobShop):
        raise ConfigError(ctx.source, "method", "this method applies to job-shop problems")


def _rule_method(name: str) -> Method:
    def fit(problem, options, config, ctx) -> SolveOutcome:
        _check_problem(problem, ctx)
        return SolveOutcome(policy=rules.DispatchRule(name), info={"rule": name, "schedule": problem.schedule})

    return Method(name, fit, {}, description=f"dispatching rule: {rules.DESCRIPTIONS[name]}")


CPSAT_OPTIONS = {
    "time_limit": Field(float, 10.0, allowed="a positive number of seconds per instance", check=positive),
    "workers": size(2, 256, allowed="CP-SAT workers, from 1 to 256"),
    "seed": Field(int, 0, allowed="an integer >= 0 (CP-SAT random seed)", check=non_negative),
    "warm_start": Field(bool, True, doc="hint the best dispatching rule's schedule"),
    "log": Field(bool, False, doc="print CP-SAT's search log"),
}


def _scenario_instance(scenarios: Scenarios, b: int) -> Instance:
    n_ops = scenarios["n_ops"][b].tolist()
    mach, dur = scenarios["machine"][b].tolist(), scenarios["duration"][b].tolist()
    return Instance(
        f"scenario_{b}",
        [mach[j][:n] for j, n in enumerate(n_ops) if n > 0],
        [dur[j][:n] for j, n in enumerate(n_ops) if n > 0],
        "generated",
    )


def _fit_cpsat(problem, o, config, ctx) -> SolveOutcome:
    _check_problem(problem, ctx)
    info: dict[str, Any] = {"time_limit": o["time_limit"], "workers": o["workers"], "warm_start": o["warm_start"]}

    def evaluate(scenarios: Scenarios):
        idx = scenarios["instance"].tolist()
        if problem.instances:
            groups: dict[int, list[int]] = {}
            for b, k in enumerate(idx):
                groups.setdefault(k, []).append(b)
            insts = {k: problem.instances[k] for k in groups}
        else:
            groups = {b: [b] for b in range(scenarios.n)}
            insts = {b: _scenario_instance(scenarios, b) for b in groups}
        keys = list(groups)
        hints = dict(zip(keys, cpsat.best_rule_schedules([insts[k] for k in keys]))) if o["warm_start"] else {}
        per = torch.full((scenarios.n,), math.nan, dtype=torch.float64)
        rows, invalid = [], []
        bar = tqdm(keys, desc=f"cpsat {problem.name}", disable=not ctx.progress or len(keys) < 2)
        for k in bar:
            inst = insts[k]
            hint = hints.get(k)
            res = cpsat.solve(inst, o["time_limit"], o["workers"], hint["start"] if hint else None, o["seed"], o["log"])
            if res.status not in ("optimal", "feasible"):
                rows.append({"instance": inst.name, "status": res.status, "lower_bound": res.lower_bound})
                continue
            v = check.violations(inst.machine, inst.duration, res.start, res.end, res.makespan)
            if v:
                invalid.append({"instance": inst.name, "violations": v[:5]})
            sel = groups[k]
            if problem.stochastic:
                per[sel] = cpsat.execute(inst, res.start, scenarios["realized"][sel].cpu()).double()
            else:
                per[sel] = res.makespan
            row = {
                "instance": inst.name,
                "status": res.status,
                "makespan": res.makespan,
                "lower_bound": res.lower_bound,
                "seconds": res.seconds,
                "hint_makespan": res.hint_makespan,
                "hint_rule": f"{hint['rule']}/{hint['schedule']}" if hint else None,
            }
            if problem.stochastic:
                row["mean_executed_makespan"] = float(per[sel].mean())
            b = _bounds(inst) if problem.instances else None
            if b is not None:
                row.update(best_known=b["upper_bound"], closed=b["status"] == "closed")
                if not problem.stochastic:
                    row["gap_pct"] = 100.0 * (res.makespan - b["upper_bound"]) / b["upper_bound"]
            rows.append(row)
            if "gantt" not in info:
                info["gantt"] = {"instance": inst.name, "machine": inst.machine, "start": res.start, "end": res.end}
            bar.set_postfix(makespan=res.makespan, status=res.status)
        ev = summarize(problem, per, scenarios.periods)
        info["per_instance"] = rows
        eval_info = {
            "per_instance": rows,
            "invalid_schedules": invalid,
            "optimal": sum(r["status"] == "optimal" for r in rows),
            "solved": len(rows),
        }
        return ev, eval_info

    return SolveOutcome(evaluate=evaluate, info=info)


GNN_OPTIONS = {
    "weights": Field(str, "", allowed="a path to dispatcher weights ('': the shipped ones)"),
    "samples": size(
        1,
        10**5,
        allowed="schedules per instance, from 1 (greedy) to 10^5 (the best of that many, the "
        "first greedy, the others sampled)",
    ),
    "seed": Field(int, 0, allowed="an integer >= 0 (sampling seed)", check=non_negative),
    "max_nodes": size(200_000, 10**8, allowed="graph nodes per batch, from 1 to 10^8"),
}


def _fit_gnn(problem, o, config, ctx) -> SolveOutcome:
    from pathlib import Path

    from . import dispatcher

    _check_problem(problem, ctx)
    if o["weights"] and not Path(o["weights"]).is_file():
        raise ConfigError(ctx.source, "options.weights", f"file not found: {o['weights']}")
    ac = dispatcher.load(problem, o["weights"] or None, ctx.source)
    info: dict[str, Any] = {"samples": o["samples"], "weights": o["weights"] or str(dispatcher.WEIGHTS)}
    if o["samples"] == 1:
        return SolveOutcome(policy=ac, info=info)

    def evaluate(scenarios: Scenarios):
        best, sched = dispatcher.best_of(problem, ac, scenarios, o["samples"], o["seed"] + ctx.seed, o["max_nodes"])
        invalid = []
        for b in range(scenarios.n):
            inst = _scenario_instance(scenarios, b)
            v = check.violations(inst.machine, inst.duration, sched["start"][b], sched["end"][b], float(best[b]))
            if v:
                invalid.append({"scenario": b, "violations": v[:5]})
        rows = _instance_rows(problem, scenarios, best) if problem.instances else None
        if rows is not None:
            info["per_instance"] = rows
        return summarize(problem, best, scenarios.periods), {"per_instance": rows, "invalid_schedules": invalid}

    return SolveOutcome(evaluate=evaluate, info=info)


def _gnn_method(name: str, samples: int) -> Method:
    opts = dict(GNN_OPTIONS)
    opts["samples"] = size(samples, 10**5, allowed=GNN_OPTIONS["samples"].allowed)
    what = "greedy" if samples == 1 else f"best of {samples} sampled schedules"
    return Method(
        name, _fit_gnn, opts, description=f"the shipped GNN dispatcher (imitation and self-labelling), {what}"
    )


METHODS: dict[str, Method] = {name: _rule_method(name) for name in rules.RULES}
METHODS["gnn_greedy"] = _gnn_method("gnn_greedy", 1)
METHODS["gnn_sample128"] = _gnn_method("gnn_sample128", 128)
METHODS["cpsat"] = Method(
    "cpsat",
    _fit_cpsat,
    CPSAT_OPTIONS,
    description="OR-Tools CP-SAT per instance, warm-started from the best dispatching rule",
)


def _instance_makespans(rec: Mapping[str, Any]) -> dict[str, tuple[float, float | None]] | None:
    """Report hook: each standard instance's makespan in a run, with its optimum or best-known makespan."""
    js = rec.get("jobshop") or {}
    nominal = js.get("noise", "none") == "none"  # a noisy run's makespans are not comparable with the optimum
    rows = js.get("instances") or []
    out = {
        r["instance"]: (float(r["makespan"]), r.get("best_known") if nominal else None)
        for r in rows
        if r.get("makespan") is not None
    }
    return out or None


def _mean_bound(rows: Any) -> float | None:
    """CP-SAT's proven lower bounds, averaged over the instances, if every instance has one."""
    if not rows or any(not isinstance(r.get("lower_bound"), (int, float)) for r in rows):
        return None
    return sum(float(r["lower_bound"]) for r in rows) / len(rows)


def _fixed(rec: Mapping[str, Any]) -> bool:
    """Named standard instances without noise: the test set is that fixed class, not a sample."""
    cfg = (rec.get("config") or {}).get("problem") or {}
    return bool(cfg.get("instances")) and (rec.get("jobshop") or {}).get("noise", "none") == "none"


FAMILY = Family(
    "jobshop",
    build,
    METHODS,
    reference,
    record,
    picture,
    metric=Metric("makespan", "time units", "min"),
    references=("optimum", "best_known"),
    record_bounds=(
        RecordBound(
            "cpsat",
            "CP-SAT proven lower bound (mean over the instances)",
            lambda r: (
                None
                if (r.get("jobshop") or {}).get("noise", "none")
                != "none"  # a bound on nominal, not executed, makespans
                else _mean_bound((r.get("info") or {}).get("per_instance"))
            ),
        ),
    ),
    instances=_instance_makespans,
    fixed_instances=_fixed,
)
