"""Remote microgrid (wind, diesel gensets, battery) with shielded controller units.

Read in this order: :mod:`.params` (every number, as config keys), :mod:`.data` (synthetic days and
CSV/Parquet input), :mod:`.sim` (the simulator), :mod:`.shields` (the shield hierarchy),
:mod:`.constraints` (the independent checker), :mod:`.controllers` (operator rules, MPC),
:mod:`.planning` (the perfect-foresight bound), :mod:`.plots`.

Methods of this family (beyond the generic ``hdpo``, which trains through the shields because the
problem applies them inside ``post_decision``):

* ``operator_rules``: the rule-based plant operator;
* ``mpc``: rolling-horizon linear MPC on forecasts;
* ``soc_hysteresis``: start gensets at a low state of charge, run them at rated load (charging the
  battery) until a high one; two thresholds searched on dev days (genset-load proposals);
* ``mpc_commit``: rolling-horizon MILP with genset commitment and a price on wear (:mod:`.milp`), on the
  real forecasts or, ``forecast = "perfect"``, on the realised days (an oracle);
* ``ars_hysteresis``: ``soc_hysteresis`` with thresholds and genset load linear in the forecasts and the time
  of day, learned by augmented random search under a cap on wear (or at a price on it); shipped parameters
  in ``data/`` or trained in the run;
* ``perfect_foresight``: the perfect-foresight lower bound of each test day (not a policy);
* ``shipped_policy``: a trained network shipped in ``data/`` (e.g. ``mpc_clone_wear16``, the commitment MPC
  distilled into the PPO actor by DAgger), run greedily behind the shields.

Every run record adds ``violations`` (count by constraint, from the independent checker),
``fuel_litres``, ``degradation`` (exact rainflow cost) and ``unserved_kwh`` (means per test day), and
for a policy ``day``: the first test day's dispatch, which the report draws (:func:`.plots.picture`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field as PydanticField

from ..core import (
    BoundSolver,
    Evaluation,
    Family,
    Field,
    Method,
    Metric,
    Reference,
    Scenarios,
    SolveContext,
    SolveOutcome,
)
from ..core.config import non_negative, positive, size
from ..core.datafile import Integer, Number, Record, check, load_json
from ..core.rollout import summarize
from .constraints import ConstraintChecker
from .controllers import MPC, AdaptiveHysteresis, OperatorRules, SocHysteresis, search_hysteresis, train_adaptive
from .planning import day_bound
from .plots import compact_day, dispatch_series, picture
from .sim import Microgrid, build

__all__ = ["FAMILY", "Microgrid", "build", "run_test", "reference", "bounds"]


@torch.no_grad()
def run_test(
    problem: Microgrid, policy, scenarios: Scenarios, per_scenario: bool = False
) -> tuple[Evaluation, dict[str, Any]]:
    """One evaluation rollout with the constraint checker alongside: the test cost and the metrics (means
    over the scenarios; with ``per_scenario``, also ``by_scenario``: fuel, fuel-equivalent, degradation,
    unserved and dumped energy and SoC change of each scenario, as float64 tensors ``[n]``).

    ``fuel_eq_litres`` charges the battery energy used over the day (SoC_0 - SoC_T) at the fuel it is worth
    (``fuel_slope / charge_efficiency`` litres per kWh), so a controller cannot look better by emptying the
    battery."""
    if getattr(policy, "training", False):
        policy.eval()
    state = problem.initial_state(scenarios)
    checker = ConstraintChecker(problem.p, scenarios["history"], state)
    total = torch.zeros(scenarios.n, dtype=torch.float64)
    deg = torch.zeros(scenarios.n, dtype=torch.float64)
    soc0 = state["soc"].double().cpu()
    for t in range(scenarios.periods):
        action = policy(state, t)
        post, c1 = problem.post_decision(state, action)
        nxt, c2 = problem.transition(post, scenarios, t)
        checker.update({k: v.cpu() for k, v in state.items()}, {k: v.cpu() for k, v in nxt.items()}, t)
        total += (c1 + c2).double().cpu()
        deg += nxt["out_degradation"].double().cpu()
        state = nxt
    ev = summarize(problem, total, scenarios.periods)
    p = problem.p
    soc_change = state["soc"].double().cpu() - soc0
    by = {
        "fuel_litres": checker.fuel.double(),
        "fuel_eq_litres": checker.fuel.double() - soc_change * p.b_cap * p.fuel_a / p.eta,
        "degradation": deg,
        "unserved_kwh": checker.unserved_kwh.double(),
        "dumped_kwh": checker.dump_kwh.double(),
        "soc_change": soc_change,
    }
    metrics = {
        "violations": dict(sorted(checker.counts.items())),
        "violations_total": checker.total,
        **{k: float(v.mean()) for k, v in by.items()},
        "reserve_minutes": float(checker.reserve_minutes.double().mean()),
        "ramp_violations": scenarios.meta.get("ramp_violations"),
    }
    if per_scenario:
        metrics["by_scenario"] = by
    return ev, metrics


_BOUNDS: dict[tuple, np.ndarray] = {}


def bounds(
    problem: Microgrid,
    scenarios: Scenarios,
    step: int | None = None,
    integer: bool | None = None,
    time_limit: float | None = None,
) -> np.ndarray:
    """Perfect-foresight lower bound of each scenario's episode cost (OR-Tools)."""
    b = problem.cfg["bound"]
    step = b["time_step"] if step is None else step
    integer = b["integer"] if integer is None else integer
    time_limit = b["time_limit"] if time_limit is None else time_limit
    T = scenarios.periods
    d = scenarios["demand"][:, 1 : T + 1].double().cpu().numpy()
    w = scenarios["wind"][:, 1 : T + 1].double().cpu().numpy()
    soc = scenarios["soc0"].double().cpu().numpy()
    return np.array(
        [day_bound(problem.p, d[j], w[j], float(soc[j]), step, integer, time_limit).cost for j in range(scenarios.n)]
    )


def reference(problem: Microgrid) -> Reference | None:
    key = (id(problem), problem.test_scenarios, problem.test_seed)
    if key not in _BOUNDS:
        _BOUNDS[key] = bounds(problem, problem.test_set())
    v = _BOUNDS[key]
    step = problem.cfg["bound"]["time_step"]
    return Reference(
        "lower_bound",
        float(v.mean()),
        f"perfect-foresight LP/MILP per test day, {step}-minute periods (OR-Tools)",
        float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None,
    )


OPERATOR_OPTIONS = {
    "start_fraction": Field(float, 0.8, allowed="a number in (0, 1.1]", check=lambda v: 0 < v <= 1.1),
    "stop_fraction": Field(float, 0.6, allowed="a number in (0, 1]", check=lambda v: 0 < v <= 1),
    "min_gensets": Field(int, 1, allowed="an integer >= 0", check=non_negative),
    "battery_kw": Field(float, 0.0, allowed="a battery set-point in kW (positive: discharge)"),
}

MPC_OPTIONS = {
    "replan_minutes": size(15, 1440, allowed="minutes between plans, from 1 to 1440 (a day)"),
    "horizon_minutes": size(
        240, 1440, allowed="minutes planned ahead, from 1 to 1440 (a day; forecast leads up to it are used)"
    ),
}

HYSTERESIS_OPTIONS = {
    "start_soc": Field(float, 0.2, allowed="a state of charge in [0, 1]", check=lambda v: 0 <= v <= 1),
    "stop_soc": Field(float, 0.6, allowed="a state of charge in [0, 1]", check=lambda v: 0 <= v <= 1),
    "genset_load": Field(
        float, 1.0, allowed="a load in [0, 1] (0: minimum load, 1: rated)", check=lambda v: 0 <= v <= 1
    ),
    "search": Field(bool, True, doc="search start_soc and stop_soc on dev days (the given values are then unused)"),
    "dev_scenarios": size(16, 10**6, allowed="dev days, from 1 to 10^6", counts="scenarios"),
}

ARS_OPTIONS = {
    "params": Field(
        str,
        "",
        doc="shipped parameters: a name in opsrl/microgrid/data (NAME.json) or a .json path; empty: train them now",
    ),
    "wear_price": Field(
        float,
        -1.0,
        allowed="litres of fuel-equivalent per unit of degradation, >= 0, or -1 to cap the wear instead",
        check=lambda v: v >= 0 or v == -1,
    ),
    "wear_cap": Field(
        float,
        0.97,
        allowed="a multiple > 0 of the starting rule's degradation (on the training and the dev days)",
        check=positive,
    ),
    "adapt_load": Field(bool, True, doc="learn the genset load too (otherwise rated load, as soc_hysteresis)"),
    "iterations": size(80, 10**6, low=0, allowed="an integer from 0 to 10^6"),
    "directions": size(12, 10**4, allowed="directions per iteration, from 1 to 10^4"),
    "top": size(6, 10**4, allowed="a positive integer, at most directions"),
    "noise": Field(float, 0.02, allowed="a positive number (perturbation of the parameters)", check=positive),
    "step": Field(float, 0.01, allowed="a positive number (step size)", check=positive),
    "train_scenarios": size(48, 10**6, allowed="training days, from 1 to 10^6"),
    "dev_scenarios": size(16, 10**6, allowed="dev days, from 1 to 10^6", counts="scenarios"),
    "select_every": Field(int, 5, allowed="a positive number of iterations", check=positive),
}

COMMIT_OPTIONS = {
    "wear_price": Field(
        float,
        -1.0,
        allowed="a number >= 0 (multiplier of the throughput wear cost in the plan), "
        "or -1 for the problem's costs.wear_weight",
        check=lambda v: v >= 0 or v == -1,
    ),
    "forecast": Field(
        str,
        "real",
        choices=("real", "perfect"),
        doc="real: the state's forecasts; perfect: the realised demand and wind (an oracle)",
    ),
    "horizon_minutes": size(
        240, 1440, allowed="minutes planned ahead, from 1 to 1440 (real forecasts: at most the longest forecast lead)"
    ),
    "replan_minutes": size(15, 1440, allowed="minutes between plans, from 1 to 1440 (a day)"),
    "terminal_kwh": Field(
        float,
        -1.0,
        allowed="a value per kWh left in the battery at the end of the horizon, >= 0, or -1 for the fuel it is worth",
        check=lambda v: v >= 0 or v == -1,
    ),
    "gap": Field(float, 0.01, allowed="a relative MIP gap in (0, 1)", check=lambda v: 0 < v < 1),
}

BOUND_OPTIONS = {
    "time_step": Field(int, 0, allowed="minutes per period (0: the problem's bound.time_step)", check=non_negative),
    "integer": Field(bool, False, doc="integer genset counts (only with 1-minute periods)"),
    "time_limit": Field(float, 0.0, allowed="seconds per day (0: the problem's)", check=non_negative),
}


def _check(problem, ctx):
    from ..core import ConfigError

    if not isinstance(problem, Microgrid):
        raise ConfigError(ctx.source, "method", "this method applies to microgrid problems")
    if not problem.shielded:
        raise ConfigError(
            ctx.source,
            "method",
            "this controller proposes (gensets, battery) and needs a shielded problem (shielded = true)",
        )


def _check_genset_load(problem, ctx, controller: str) -> None:
    """:func:`_check`, and the problem must read the second action component as the running gensets' load."""
    _check(problem, ctx)
    if problem.p.proposal != "genset_load":
        from ..core import ConfigError

        raise ConfigError(
            ctx.source,
            "problem.shield.proposal",
            f"{controller} proposes genset loads: set "
            '"shield.proposal" = "genset_load" in the solver\'s [problem] table',
        )


def _policy_outcome(problem, policy, info) -> SolveOutcome:
    out = SolveOutcome(policy=policy, info=dict(info))

    def evaluate(scenarios):
        ev, metrics = run_test(problem, policy, scenarios)
        out.info["_metrics"] = metrics
        return ev, {}

    out.evaluate = evaluate
    return out


def _fit_operator(problem, o, config, ctx: SolveContext) -> SolveOutcome:
    _check(problem, ctx)
    return _policy_outcome(
        problem, OperatorRules(problem, o["start_fraction"], o["stop_fraction"], o["min_gensets"], o["battery_kw"]), {}
    )


def _fit_hysteresis(problem, o, config, ctx: SolveContext) -> SolveOutcome:
    _check_genset_load(problem, ctx, "soc_hysteresis")
    start, stop, info = o["start_soc"], o["stop_soc"], {}
    if not o["search"] and start >= stop:
        from ..core import ConfigError

        raise ConfigError(ctx.source, "options.start_soc", f"must be below options.stop_soc ({stop})")
    if o["search"]:
        dev = problem.sample(o["dev_scenarios"], "dev", ctx.seed, problem.test_periods, ctx.device)
        start, stop, cost, _ = search_hysteresis(problem, dev, o["genset_load"])
        info = {"dev_cost": cost}
    info.update(start_soc=start, stop_soc=stop, genset_load=o["genset_load"])
    return _policy_outcome(problem, SocHysteresis(problem, start, stop, o["genset_load"]), info)


def _fit_adaptive(problem, o, config, ctx: SolveContext) -> SolveOutcome:
    """Shipped or freshly trained :class:`AdaptiveHysteresis` parameters (see :data:`ARS_OPTIONS`)."""
    from ..core import ConfigError

    _check_genset_load(problem, ctx, "ars_hysteresis")
    if o["top"] > o["directions"]:
        raise ConfigError(ctx.source, "options.top", f"at most options.directions ({o['directions']}), got {o['top']}")
    if o["params"]:
        name = o["params"]
        path = Path(name) if name.endswith(".json") else DATA / f"{name}.json"
        if not path.exists():
            raise ConfigError(ctx.source, "options.params", f"no parameter file {path}")
        meta = load_json(path, ctx.source, "options.params")
        params = check(ArsParams, meta, path)
        if params.leads != list(problem.leads):
            raise ConfigError(
                ctx.source,
                "options.params",
                f"{path.name} was trained on forecast leads {params.leads}; this problem has {list(problem.leads)}",
            )
        sizes = (AdaptiveHysteresis.size(problem, False), AdaptiveHysteresis.size(problem, True))
        if len(params.theta) not in sizes:
            raise ConfigError(
                path,
                "theta",
                f"found {len(params.theta)} parameters; {sizes[0]} or {sizes[1]} are allowed "
                f"for {len(problem.leads)} forecast leads",
            )
        theta = np.asarray(params.theta, dtype=np.float64)
        info = {"params": path.name, **_scalars(meta)}
    else:
        dev = problem.sample(o["dev_scenarios"], "dev", ctx.seed, problem.test_periods, ctx.device)
        train = problem.sample(o["train_scenarios"], "train", ctx.seed, problem.test_periods, ctx.device)
        start, stop, _, _ = search_hysteresis(problem, dev, 1.0)
        theta0 = np.zeros(AdaptiveHysteresis.size(problem, o["adapt_load"]))
        theta0[:2] = start, stop
        theta, info = train_adaptive(
            problem,
            train,
            dev,
            theta0,
            wear_price=None if o["wear_price"] < 0 else o["wear_price"],
            wear_cap=o["wear_cap"],
            progress=ctx.progress,
            iterations=o["iterations"],
            directions=o["directions"],
            top=o["top"],
            noise=o["noise"],
            step=o["step"],
            seed=ctx.seed,
            select_every=o["select_every"],
        )
        info = {"start_soc": start, "stop_soc": stop, **{k: v for k, v in info.items() if k != "history"}}
        info["theta"] = [round(float(v), 6) for v in theta]
    return _policy_outcome(problem, AdaptiveHysteresis(problem, theta), info)


def _fit_mpc(problem, o, config, ctx: SolveContext) -> SolveOutcome:
    _check(problem, ctx)
    pol = MPC(problem, o["replan_minutes"], o["horizon_minutes"])
    return _policy_outcome(problem, pol, {"replan_minutes": o["replan_minutes"]})


def _fit_commit(problem, o, config, ctx: SolveContext) -> SolveOutcome:
    from .milp import CommitMPC

    _check(problem, ctx)
    wear = problem.p.wear_weight if o["wear_price"] < 0 else o["wear_price"]
    pol = CommitMPC(
        problem,
        wear,
        o["forecast"],
        problem.test_set() if o["forecast"] == "perfect" else None,
        o["replan_minutes"],
        o["horizon_minutes"],
        terminal_kwh=None if o["terminal_kwh"] < 0 else o["terminal_kwh"],
        gap=o["gap"],
    )
    out = _policy_outcome(problem, pol, {"wear_price": wear, "forecast": o["forecast"], "horizon_minutes": pol.horizon})
    if o["forecast"] == "perfect":
        plain = out.evaluate

        def evaluate(scenarios):  # the oracle reads the days it is evaluated on
            pol.bind(scenarios)
            return plain(scenarios)

        out.evaluate = evaluate
    return out


def _fit_bound(problem, o, config, ctx: SolveContext) -> SolveOutcome:
    if not isinstance(problem, Microgrid):
        from ..core import ConfigError

        raise ConfigError(ctx.source, "method", "this method applies to microgrid problems")
    out = SolveOutcome(info={"bound": True})
    if o["integer"] and (o["time_step"] or problem.cfg["bound"]["time_step"]) != 1:
        from ..core import ConfigError

        raise ConfigError(
            ctx.source,
            "options.integer",
            "integer genset counts keep the bound valid only with 1-minute periods; set options.time_step = 1",
        )

    def evaluate(scenarios):
        v = bounds(problem, scenarios, o["time_step"] or None, o["integer"], o["time_limit"] or None)
        out.info["_metrics"] = {"per_day_bound": v.tolist()}
        return summarize(problem, torch.as_tensor(v), scenarios.periods), {}

    out.evaluate = evaluate
    return out


DATA = Path(__file__).resolve().parent / "data"


class ArsParams(Record):
    """A parameter file of ``ars_hysteresis`` (``options.params``): the parameters and the forecast leads they
    were trained on (other keys say how; they are copied into the run's record)."""

    theta: list[Number] = PydanticField(min_length=1)
    leads: list[Integer]


def _scalars(meta: dict[str, Any]) -> dict[str, Any]:
    """The strings and finite numbers of a parameter file (copied into the run's record)."""
    return {k: v for k, v in meta.items() if isinstance(v, (int, str)) or (isinstance(v, float) and np.isfinite(v))}


class ShippedMeta(Record):
    """The JSON beside a shipped network's weights: its ``policy`` table (checked as a solver's) and the
    proposal it was trained on."""

    policy: dict[str, Any]
    proposal: Literal["battery_kw", "genset_load"] = "battery_kw"


SHIPPED_OPTIONS = {
    "weights": Field(
        str,
        "mpc_clone_wear16",
        allowed="the name of a network shipped in opsrl/microgrid/data (NAME.pt with NAME.json), or a path to "
        "a .pt file with its .json beside it",
    ),
    "sampling": Field(bool, False, doc="sample from the policy's distribution instead of taking its mode"),
}


def _fit_shipped(problem, o, config, ctx: SolveContext) -> SolveOutcome:
    """Load a shipped actor-critic (``NAME.json``: its ``policy`` table and the ``proposal`` it was trained on)."""
    from ..core import ConfigError
    from ..core.config import load_weights
    from ..nn.actor_critic import build_actor_critic

    _check(problem, ctx)
    name = o["weights"]
    path = Path(name) if name.endswith(".pt") else DATA / f"{name}.pt"
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise ConfigError(ctx.source, "options.weights", f"no {path} with {meta_path.name} beside it")
    meta = load_json(meta_path, ctx.source, "options.weights")
    check(ShippedMeta, meta, meta_path)
    want = meta.get("proposal", "battery_kw")
    if problem.p.proposal != want:
        raise ConfigError(
            ctx.source, "problem.shield.proposal", f"the network {name} proposes {want}: set shield.proposal = {want!r}"
        )
    ac = build_actor_critic(problem, meta["policy"], str(meta_path))
    load_weights(ac, path, ctx.source, "options.weights")
    ac.eval()
    ac.sampling = o["sampling"]
    info = {"weights": str(path.name), **_scalars(meta)}
    return _policy_outcome(problem, ac, info)


def record(problem, outcome: SolveOutcome) -> dict[str, Any]:
    """Extra fields of a run record: violations, fuel, degradation, unserved energy (test-day means)."""
    metrics = outcome.info.pop("_metrics", None)
    if metrics is None and outcome.policy is not None:
        _, metrics = run_test(problem, outcome.policy, problem.test_set())
    if metrics is None or "violations" not in metrics:
        return {
            "violations": None,
            "fuel_litres": None,
            "degradation": None,
            "unserved_kwh": None,
            **({"per_day_bound": metrics["per_day_bound"]} if metrics else {}),
        }
    if outcome.policy is not None:  # the first test day's dispatch, for the report's picture
        metrics["day"] = compact_day(dispatch_series(problem, outcome.policy, problem.test_set().select(slice(0, 1))))
    return metrics


def _sizes_adaptive(problem, o, config) -> list:
    """ARS rolls out 2 x directions candidates on every training day in one batch (when it trains)."""
    from ..core.config import Need, scenario_bytes

    if o["params"]:
        return []
    k = 2 * o["directions"] * o["train_scenarios"]
    nbytes = scenario_bytes(problem, k, problem.test_periods or problem.periods, "train")
    if nbytes is None:
        return []
    what = f"the batched ARS rollout (2 x {o['directions']} directions x {o['train_scenarios']} training days)"
    return [Need(what, nbytes, config["source"], ("options.train_scenarios", "options.directions"))]


METHODS = {
    m.name: m
    for m in (
        Method(
            "operator_rules",
            _fit_operator,
            OPERATOR_OPTIONS,
            description="rule-based operator: gensets by priority on deficit, battery as buffer",
        ),
        Method("mpc", _fit_mpc, MPC_OPTIONS, description="rolling-horizon linear MPC on forecasts (OR-Tools GLOP)"),
        Method(
            "soc_hysteresis",
            _fit_hysteresis,
            HYSTERESIS_OPTIONS,
            description="state-of-charge hysteresis: gensets at rated load from start_soc until stop_soc "
            "(thresholds searched on dev days)",
        ),
        Method(
            "ars_hysteresis",
            _fit_adaptive,
            ARS_OPTIONS,
            sizes=_sizes_adaptive,
            description="state-of-charge hysteresis whose thresholds and genset load follow the forecasts and the "
            "time of day, learned by augmented random search under a cap on wear",
        ),
        Method(
            "mpc_commit",
            _fit_commit,
            COMMIT_OPTIONS,
            description="rolling-horizon commitment MILP with a price on battery wear (HiGHS); forecast = "
            "perfect makes it an oracle",
        ),
        Method(
            "shipped_policy",
            _fit_shipped,
            SHIPPED_OPTIONS,
            description="a trained network shipped with the package (e.g. the commitment MPC distilled by DAgger), "
            "greedy behind the shields",
        ),
        Method(
            "perfect_foresight",
            _fit_bound,
            BOUND_OPTIONS,
            description="perfect-foresight LP/MILP lower bound per test day (not a policy)",
        ),
    )
}


FAMILY = Family(
    "microgrid",
    build,
    METHODS,
    reference,
    record,
    picture,
    # the cost prices fuel-equivalent litres (battery energy used counted at the fuel it is worth) plus the wear
    # term and penalties; the litres and the wear are shown beside it
    metric=Metric(
        "cost per day (fuel-equivalent, wear, penalties)",
        "",
        "min",
        beside=(("fuel-eq. L", "fuel_eq_litres"), ("wear", "degradation"), ("violations", "violations_total")),
    ),
    references=("hindsight",),
    bounds=(BoundSolver("perfect_foresight", "perfect-foresight bound"),),
    oracle=lambda rec: (
        "plans on the realised day (perfect forecasts)"
        if (((rec.get("config") or {}).get("solver") or {}).get("options") or {}).get("forecast") == "perfect"
        else None
    ),
)
