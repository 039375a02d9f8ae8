"""How the network problems plug into the inventory family: references and network methods.

* reference: the Clark-Scarf optimum (serial, Poisson demand), ``n`` x the single-store optimum
  (identical stores), otherwise the store-level lower bound (:func:`.hindsight.store_bound`);
* ``echelon_stock``: echelon base stock, levels exact (serial) or searched on dev scenarios;
  ``base_stock`` on a network is the installation (local position) version of the same policy;
* ``hindsight_lp``: the perfect-information bound of each test scenario (an LP per scenario with
  OR-Tools GLOP or PDLP); a bound, not a policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..core import ConfigError, Field, Method, Reference, SolveContext, SolveOutcome, summarize
from ..core.config import size
from .network_heuristics import EchelonStock, clark_scarf, search_levels
from .networks import Network


def serial_optimum(problem: Network):
    """The Clark-Scarf solution of a serial problem with Poisson demand, or None."""
    if problem.model != "serial" or problem.distribution != "poisson":
        return None
    t = problem.topo
    return clark_scarf(
        float(t.mean[0]), problem.meta["lead_times"], problem.meta["echelon_holding"], float(t.shortage[0])
    )


def network_reference(problem: Network, dp_optimum: Callable[[float, int, float, float], float]) -> Reference | None:
    from . import dp, heuristics
    from .hindsight import store_bound

    t = problem.topo
    if problem.model == "serial":
        cs = serial_optimum(problem)
        if cs is not None:
            return Reference(
                "optimum",
                cs.network_cost,
                "Clark-Scarf echelon base stock, exact recursion "
                "(Gallego-Zipkin 1999) on Poisson demand; in-transit holding excluded",
            )
    if problem.model == "identical" and t.ship_cost.sum() == 0:
        i = problem.stores[0]
        m, L, h, p = float(t.mean[i]), int(t.lead[i]), float(t.holding[i]), float(t.shortage[i])
        # per store: the total is n x the single-store optimum, reported per store
        if problem.distribution == "poisson" and problem.unmet == "lost_sales":
            return Reference(
                "optimum",
                dp_optimum(m, L, p, h),
                f"{problem.n_locations} x the single-store lost-sales DP optimum (per store)",
            )
        if problem.distribution == "poisson":
            return Reference(
                "optimum",
                heuristics.level_cost_backlog(m, L, h, p)[1],
                f"{problem.n_locations} x the single-store optimal base stock (per store)",
            )
        if t.cv[i] <= 1 / 3:
            return Reference(
                "optimum",
                dp.normal_backlog_base_stock(m, m * t.cv[i], L, h, p)[1],
                f"{problem.n_locations} x the single-store closed form (per store)",
            )
    value, source = store_bound(problem)
    return Reference("lower_bound", value, source)


ECHELON_OPTIONS = {
    "dev_scenarios": size(256, 10**7, allowed="dev scenarios, from 1 to 10^7", counts="scenarios:dev_periods"),
    "dev_periods": size(200, 10**6, allowed="periods per dev scenario, from 1 to 10^6"),
    "levels": Field(
        str,
        "auto",
        choices=("auto", "search", "clark_scarf"),
        doc="clark_scarf: the exact optimal levels (serial, Poisson); search: safety factors "
        "searched on dev; auto: clark_scarf where it applies, else search",
    ),
}

HINDSIGHT_OPTIONS = {
    "solver": Field(str, "glop", choices=("glop", "pdlp")),
}


def fit_echelon(
    problem: Network, o: Mapping[str, Any], config, ctx: SolveContext, echelon: bool = True
) -> SolveOutcome:
    if not isinstance(problem, Network):
        raise ConfigError(
            ctx.source,
            "method",
            "echelon_stock applies to network problems (model = serial, "
            "warehouse, transshipment, multi_warehouse, identical)",
        )
    mode = o.get("levels", "search")
    cs = serial_optimum(problem) if echelon else None
    if mode == "clark_scarf" and cs is None:
        raise ConfigError(ctx.source, "options.levels", "clark_scarf levels need a serial problem with Poisson demand")
    if cs is not None and mode in ("auto", "clark_scarf"):
        return SolveOutcome(
            policy=EchelonStock(problem, cs.levels), info={"levels": cs.levels.tolist(), "source": "clark_scarf"}
        )
    if o["dev_periods"] <= problem.test_warmup:
        raise ConfigError(
            ctx.source, "options.dev_periods", f"must exceed the problem's test warm-up ({problem.test_warmup})"
        )
    dev = problem.sample(o["dev_scenarios"], "dev", ctx.seed, o["dev_periods"], ctx.device)
    r = search_levels(problem, dev, echelon)
    return SolveOutcome(
        policy=EchelonStock(problem, r.levels, echelon),
        info={
            "levels": r.levels.tolist(),
            "z_store": r.z_store,
            "z_up": r.z_up,
            "dev_cost": r.dev_cost,
            "source": "search",
        },
    )


def _fit_echelon(problem, o, config, ctx):
    return fit_echelon(problem, o, config, ctx, echelon=True)


def _fit_hindsight(problem, o, config, ctx: SolveContext) -> SolveOutcome:
    from .hindsight import hindsight_bounds

    if not isinstance(problem, Network):
        raise ConfigError(ctx.source, "method", "hindsight_lp applies to network problems")
    out = SolveOutcome(info={"bound": True})

    def evaluate(scenarios):
        v = hindsight_bounds(problem, scenarios, problem.test_warmup, o["solver"], ctx.progress)
        out.info["per_scenario_bound"] = [float(x) for x in v]
        return summarize(problem, torch.as_tensor(v), scenarios.periods, problem.test_warmup), {}

    out.evaluate = evaluate
    return out


NETWORK_METHODS = (
    Method(
        "echelon_stock",
        _fit_echelon,
        ECHELON_OPTIONS,
        description="echelon base stock with proportional allocation (networks); Clark-Scarf levels on serial",
    ),
    Method(
        "hindsight_lp",
        _fit_hindsight,
        HINDSIGHT_OPTIONS,
        description="perfect-information LP bound per test scenario (OR-Tools GLOP/PDLP); a bound, not a policy",
    ),
)
