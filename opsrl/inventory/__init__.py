"""Inventory control: the single store (this module's problems), its exact references and heuristics.

Methods of this family (beyond the generic ``hdpo``):

* ``optimal_dp``: the optimal policy from value iteration (lost sales, Poisson demand);
* ``base_stock``, ``capped_base_stock``: levels searched on dev scenarios through the simulator;
* ``myopic``: Zipkin's myopic policy (integer demand);
* ``newsvendor_saa``, ``newsvendor_normal``, ``newsvendor_seasonal``: critical-fractile baselines of the
  data-driven problem (``model = "data_driven"``, demand histories from CSV/Parquet, :mod:`.history`).

References: the DP optimum (lost sales, Poisson), the exact optimal base-stock cost (backlog, Poisson),
the closed form (backlog, Normal); cached on disk under ``$OPSRL_CACHE`` (default ``~/.cache/opsrl``).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..core import BoundSolver, ConfigError, Family, Field, Method, Metric, Reference, SolveContext, SolveOutcome
from ..core.config import size
from . import dp, heuristics
from .history import HISTORY_METHODS, DemandHistory
from .history import build as build_history
from .networks import Network, build_network
from .single_store import SingleStore
from .single_store import build as build_single_store

__all__ = ["SingleStore", "Network", "DemandHistory", "FAMILY", "dp", "heuristics", "reference", "build"]


def build(config: Mapping[str, Any], source: str):
    """``model = "single_store"`` (the default), ``"data_driven"`` (:mod:`.history`) or a network model."""
    if config.get("model", "single_store") == "single_store":
        return build_single_store(config, source)
    if config.get("model") == "data_driven":
        return build_history(config, source)
    return build_network(config, source)


def _cache_dir() -> Path:
    return Path(os.environ.get("OPSRL_CACHE", Path.home() / ".cache" / "opsrl"))


@functools.lru_cache(maxsize=32)
def solve_dp(mean: float, L: int, p: float, h: float) -> dp.DPResult:
    return dp.lost_sales_dp(mean, L, p, h)


def dp_optimum(mean: float, L: int, p: float, h: float) -> float:
    """The DP optimum, cached on disk (a few seconds to compute for L = 4)."""
    key = f"lost_sales_poisson_m{mean:g}_L{L}_p{p:g}_h{h:g}"
    path = _cache_dir() / "dp" / f"{key}.json"
    try:
        return float(json.loads(path.read_text())["cost"])
    except (OSError, ValueError, KeyError):
        pass
    cost = solve_dp(mean, L, p, h).cost
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"cost": cost}))
        tmp.replace(path)
    except OSError:
        pass
    return cost


def reference(problem: SingleStore) -> Reference | None:
    if isinstance(problem, Network):
        from .network_refs import network_reference

        return network_reference(problem, dp_optimum)
    if isinstance(problem, DemandHistory):  # real data: no known optimum; baselines are compared directly
        return None
    if problem.c != 0:
        return None
    if problem.unmet == "lost_sales" and problem.distribution == "poisson":
        return Reference(
            "optimum",
            dp_optimum(problem.mean, problem.L, problem.p, problem.h),
            "relative value iteration (opsrl.inventory.dp)",
        )
    if problem.unmet == "backlog" and problem.distribution == "poisson":
        return Reference(
            "optimum",
            heuristics.level_cost_backlog(problem.mean, problem.L, problem.h, problem.p)[1],
            "optimal base stock, exact Poisson lead-time demand",
        )
    if problem.unmet == "backlog" and problem.distribution == "normal" and problem.std <= problem.mean / 3:
        return Reference(
            "optimum",
            dp.normal_backlog_base_stock(problem.mean, problem.std, problem.L, problem.h, problem.p)[1],
            "closed form, base stock at the p/(p+h) quantile (demand clipping at 0 neglected)",
        )
    return None


SEARCH_OPTIONS = {
    "dev_scenarios": size(1024, 10**7, allowed="dev scenarios, from 1 to 10^7", counts="scenarios:dev_periods"),
    "dev_periods": size(300, 10**6, allowed="periods per dev scenario, from 1 to 10^6"),
    "level": Field(float, -1.0, allowed="a fixed base-stock level >= 0 (default: searched)"),
    "cap": Field(float, -1.0, allowed="a fixed order cap >= 0 (capped base stock; default: searched)"),
}


def _dev(problem: SingleStore, o: Mapping[str, Any], ctx: SolveContext):
    if o["dev_periods"] <= problem.warmup:
        raise ConfigError(ctx.source, "options.dev_periods", f"must exceed the problem's warm-up ({problem.warmup})")
    return problem.sample(o["dev_scenarios"], "dev", ctx.seed, o["dev_periods"], ctx.device)


def _fit_base_stock(problem, o, config, ctx) -> SolveOutcome:
    if isinstance(problem, Network):
        from .network_refs import fit_echelon

        return fit_echelon(problem, o, config, ctx, echelon=False)
    _check_single(problem, ctx)
    if o["level"] >= 0:
        level, dev_cost = o["level"], None
    else:
        level, dev_cost = heuristics.search_base_stock(problem, _dev(problem, o, ctx))
    return SolveOutcome(
        policy=heuristics.BaseStock(level, integer=problem.integer), info={"level": level, "dev_cost": dev_cost}
    )


def _fit_capped(problem, o, config, ctx) -> SolveOutcome:
    _check_single(problem, ctx)
    if o["level"] >= 0 and o["cap"] >= 0:
        level, cap, dev_cost = o["level"], o["cap"], None
    else:
        level, cap, dev_cost = heuristics.search_capped_base_stock(problem, _dev(problem, o, ctx))
    return SolveOutcome(
        policy=heuristics.BaseStock(level, cap, integer=problem.integer),
        info={"level": level, "cap": cap, "dev_cost": dev_cost},
    )


def _fit_myopic(problem, o, config, ctx) -> SolveOutcome:
    _check_single(problem, ctx)
    if not problem.integer:
        raise ConfigError(ctx.source, "method", "myopic needs integer (Poisson) demand")
    return SolveOutcome(policy=heuristics.Myopic(problem).to(ctx.device))


class DPPolicy(torch.nn.Module):
    """The optimal policy of the lost-sales DP, looked up for each (integer) state."""

    def __init__(self, result: dp.DPResult):
        super().__init__()
        self.result = result

    def forward(self, state, t=0):
        x = state["x"]
        orders = self.result.order(x.round().long().cpu().numpy())
        return torch.as_tensor(orders, dtype=x.dtype, device=x.device)[:, None]


def _fit_dp(problem, o, config, ctx) -> SolveOutcome:
    _check_single(problem, ctx)
    if problem.unmet != "lost_sales" or not problem.integer or problem.c != 0:
        raise ConfigError(
            ctx.source, "method", "optimal_dp applies to lost-sales problems with Poisson demand and no ordering cost"
        )
    res = solve_dp(problem.mean, problem.L, problem.p, problem.h)
    return SolveOutcome(
        policy=DPPolicy(res),
        info={
            "dp_cost": res.cost,
            "dp_gain_bounds": [res.lower, res.upper],
            "dp_iterations": res.iterations,
            "truncation": [res.S, res.A],
        },
    )


def _check_single(problem, ctx):
    if not isinstance(problem, SingleStore):
        raise ConfigError(ctx.source, "method", "this method applies to single-store problems")


from .network_refs import NETWORK_METHODS  # noqa: E402

METHODS = {
    m.name: m
    for m in (
        *NETWORK_METHODS,
        *HISTORY_METHODS,
        Method("optimal_dp", _fit_dp, {}, description="optimal policy by relative value iteration"),
        Method("base_stock", _fit_base_stock, SEARCH_OPTIONS, description="order up to a level searched on dev"),
        Method("capped_base_stock", _fit_capped, SEARCH_OPTIONS, description="base stock with an order cap (Xin 2021)"),
        Method("myopic", _fit_myopic, {}, description="minimise the expected cost of the arrival period (Zipkin 2008)"),
    )
}


FAMILY = Family(
    "inventory",
    build,
    METHODS,
    reference,
    metric=Metric("expected cost per period and location", "", "min"),
    references=("optimum", "lower_bound"),
    bounds=(
        BoundSolver(
            "hindsight_lp",
            "perfect-information (hindsight) LP bound",
            # knowing every store's demand, stock is pre-positioned at no cost: the LP is about 0 on these networks
            loose_on=(
                "inventory/warehouse_*",
                "inventory/multi_warehouse_*",
                "inventory/transshipment_*",
                "inventory/serial_*",
                "inventory/identical_*",
            ),
            loose_why="perfect information pre-positions the stock at no cost (the LP is about 0 here); "
            "the store-level bound is the reference",
        ),
    ),
)
