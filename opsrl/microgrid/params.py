"""Every number of the microgrid as a config key, validated (defaults: the published remote-microgrid study).

Units: power kW, energy kWh, time minutes, fuel litres, money in currency units (``$``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core import ConfigError, Field, validate
from ..core.config import non_negative, positive, probability

_frac = dict(allowed="a number in [0, 1]", check=probability)
_pos = dict(allowed="a positive number", check=positive)
_nonneg = dict(allowed="a number >= 0", check=non_negative)
_posint = dict(allowed="a positive integer", check=positive)
_nonnegint = dict(allowed="an integer >= 0", check=non_negative)
# durations in minutes: a day at most (each is a look-ahead, a window or a timer of the per-minute simulator,
# whose tensors grow with it)
DAY = 1440
_minutes = dict(allowed=f"minutes, an integer from 0 to {DAY} (a day)", check=non_negative, max=DAY)

GENSET = {
    "count": Field(
        int,
        2,
        allowed="an integer from 1 to 100",
        check=positive,
        max=100,
        doc="number of diesel gensets, in priority order",
    ),
    "rated_kw": Field(float, 400.0, **_pos),
    "fuel_slope": Field(float, 0.25, **_nonneg, doc="litres per kWh (fuel L/h = slope * P + intercept)"),
    "fuel_intercept": Field(float, 10.0, **_nonneg, doc="litres per hour while on (also in warm-up and cool-down)"),
    "min_run_minutes": Field(int, 30, **_minutes, doc="minimum time in running mode before a stop"),
    "warmup_minutes": Field(int, 3, **_minutes),
    "warmup_kw": Field(float, 100.0, **_nonneg, doc="fixed output during warm-up"),
    "cooldown_minutes": Field(int, 6, **_minutes, doc="minutes at 0 kW before the genset is off"),
    "min_load_kw": Field(float, 120.0, **_nonneg),
    "overload_fraction": Field(float, 0.1, **_nonneg, doc="overload above rated power, allowed only as reserve"),
    "rolling_hours": Field(
        float,
        48.0,
        allowed="hours, a number > 0 and at most 8760 (a year)",
        check=positive,
        max=8760.0,
        doc="window of the rolling average load (its hourly history is drawn with every scenario)",
    ),
    "rolling_max_fraction": Field(float, 0.7, **_frac, doc="rolling average load limit, fraction of rated"),
    "rolling_margin_kw": Field(
        float, 2.0, **_nonneg, doc="the shield commits every genset once a rolling average is this close to its limit"
    ),
}

BATTERY = {
    "power_kw": Field(float, 600.0, **_pos),
    "capacity_kwh": Field(float, 1000.0, **_pos, doc="energy capacity (not given in the study; an assumption)"),
    "soc_min": Field(float, 0.1, **_frac),
    "soc_max": Field(float, 0.9, **_frac),
    "soc_reserve_min": Field(float, 0.05, **_frac),
    "soc_reserve_max": Field(float, 0.95, **_frac),
    "charge_efficiency": Field(float, 0.95, allowed="a number in (0, 1]", check=lambda v: 0 < v <= 1),
    "replacement_cost": Field(float, 300000.0, **_nonneg, doc="cost of a new battery"),
    "cycle_life": Field(float, 5000.0, **_pos, doc="full cycles to end of life at 100% depth"),
    "depth_exponent": Field(
        float,
        1.5,
        allowed="a number >= 1",
        check=lambda v: v >= 1,
        doc="damage of one cycle of depth D is D**k / cycle_life (Woehler curve)",
    ),
    "degradation": Field(
        str,
        "auto",
        choices=("auto", "rainflow", "surrogate"),
        doc="auto: exact rainflow when gradients are off (evaluation), surrogate when on",
    ),
    "rainflow_stack": Field(
        int,
        64,
        allowed="an integer from 4 to 10000 (unclosed half-cycles kept per scenario)",
        check=lambda v: v >= 4,
        max=10_000,
    ),
    "initial_soc_low": Field(float, 0.3, **_frac),
    "initial_soc_high": Field(float, 0.7, **_frac),
}

WIND = {
    "rated_kw": Field(float, 400.0, **_pos),
    "cut_in": Field(float, 3.0, **_pos, doc="m/s"),
    "rated_speed": Field(float, 12.0, **_pos, doc="m/s"),
    "cut_out": Field(float, 25.0, **_pos, doc="m/s"),
    "mean_speed_low": Field(float, 5.0, **_pos, doc="daily mean wind speed is uniform in [low, high] m/s"),
    "mean_speed_high": Field(float, 10.0, **_pos),
    "speed_std": Field(float, 2.0, **_nonneg, doc="std of the hourly wind-speed fluctuation, m/s"),
    "ramp_down_kw_per_min": Field(float, 15.0, **_pos, doc="largest fall of available wind in one minute"),
    "ramp_up_kw_per_min": Field(float, 30.0, **_pos),
}

DEMAND = {
    "peak_kw": Field(float, 570.0, **_pos, doc="demand never exceeds this"),
    "base_kw": Field(float, 230.0, **_pos, doc="night-time level"),
    "evening_peak_kw": Field(float, 500.0, **_pos),
    "morning_peak_kw": Field(float, 400.0, **_pos),
    "day_scale_std": Field(float, 0.06, **_nonneg, doc="day-to-day scale, relative"),
    "noise_kw": Field(float, 6.0, **_nonneg, doc="std of minute-level noise"),
    "ramp_kw_per_min": Field(float, 10.0, **_pos, doc="largest change of demand in one minute"),
    "min_kw": Field(float, 100.0, **_nonneg),
}

FORECAST = {
    "leads": Field(
        list,
        [15, 30, 60, 120, 240],
        item=int,
        allowed=f"increasing minutes, each from 1 to {DAY} (a day ahead), at most 64 leads",
        check=lambda v: len(v) > 0 and all(x > 0 for x in v) and list(v) == sorted(set(v)),
        max=DAY,
        max_len=64,
    ),
    "demand_error": Field(float, 0.03, **_nonneg, doc="relative error of the demand forecast per sqrt(hour) of lead"),
    "wind_error": Field(float, 0.15, **_nonneg, doc="relative error of the wind forecast per sqrt(hour) of lead"),
}

HISTORY = {
    "low_fraction": Field(float, 0.25, **_frac, doc="hourly loads of the 48 h history, fraction of rated"),
    "high_fraction": Field(float, 0.55, **_frac),
}

COSTS = {
    "fuel_price": Field(float, 1.5, **_nonneg, doc="per litre"),
    "unserved_per_kwh": Field(float, 50.0, **_nonneg),
    "surplus_per_kwh": Field(float, 5.0, **_nonneg, doc="energy that can be neither stored nor curtailed (dump load)"),
    "terminal_kwh_value": Field(
        float,
        -1.0,
        allowed="a number >= 0, or -1 for fuel_price * fuel_slope / charge_efficiency",
        check=lambda v: v >= 0 or v == -1,
        doc="value of battery energy at the end of an episode (charged for energy used)",
    ),
    "wear_weight": Field(
        float,
        1.0,
        **_nonneg,
        doc="multiplier of the battery degradation in the cost (a price on "
        "wear for trading fuel against it; the reported degradation is unweighted)",
    ),
}

SHIELD = {
    "horizon_minutes": Field(
        int, 0, **_minutes, doc="worst-case look-ahead (0: cool-down + warm-up + 1, the time to bring any genset in)"
    ),
    "plan_with_reserve": Field(
        bool,
        False,
        doc="let the worst-case plan rely on the reserve SoC band (then routine "
        "operation may dip into the reserves; off: reserves stay for what the ramp limits miss)",
    ),
    "surrogate_kwh": Field(
        float,
        30.0,
        **_pos,
        doc="temperature of the surrogate gradient of the forced genset "
        "count with respect to stored energy (training only; the forward pass is exact)",
    ),
    "proposal": Field(
        str,
        "battery_kw",
        choices=("battery_kw", "genset_load"),
        doc="what the agent's second action component sets: battery_kw, the battery set-point "
        "(0: full charge, 1: full discharge); genset_load, the load of each running genset "
        "(0: minimum load, 1: rated), the battery taking the rest of last minute's net load",
    ),
    "surrogate_gain": Field(
        float,
        0.0,
        **_nonneg,
        doc="scale of that surrogate gradient (0: off, the default; "
        "with 1 HDPO cycled the battery more for no lower cost, see docs/microgrid.md)",
    ),
}

DATA = {
    "source": Field(str, "synthetic", choices=("synthetic", "csv", "parquet")),
    "path": Field(str, "", allowed="a CSV or Parquet file (relative paths: to the problem file)"),
    "test_days": Field(
        int,
        0,
        allowed="an integer from 0 to 10^5",
        check=non_negative,
        max=10**5,
        doc="last days of the file held out for test (0: a quarter)",
    ),
    "dev_days": Field(
        int,
        0,
        allowed="an integer from 0 to 10^5",
        check=non_negative,
        max=10**5,
        doc="days before the test days used for dev (0: a quarter)",
    ),
}

BOUND = {
    "time_step": Field(
        int, 15, allowed=f"minutes per period of the perfect-foresight bound, from 1 to {DAY}", check=positive, max=DAY
    ),
    "integer": Field(bool, False, doc="integer genset counts (only with time_step = 1)"),
    "time_limit": Field(float, 60.0, **_pos, doc="seconds per day for the solver"),
}

TEST = {
    "scenarios": Field(int, 32, **_posint, doc="held-out test days"),
    "seed": Field(int, 0, **_nonnegint),
}

SCHEMA = {
    "model": Field(str, "remote", choices=("remote",)),
    "periods": Field(int, 1440, allowed="minutes per episode, 1 .. rolling window", check=positive),
    "shielded": Field(bool, True, doc="apply the shield hierarchy to the agent's proposal inside post_decision"),
    "genset": Field(dict, {}, schema=GENSET),
    "battery": Field(dict, {}, schema=BATTERY),
    "wind": Field(dict, {}, schema=WIND),
    "demand": Field(dict, {}, schema=DEMAND),
    "forecast": Field(dict, {}, schema=FORECAST),
    "history": Field(dict, {}, schema=HISTORY),
    "costs": Field(dict, {}, schema=COSTS),
    "shield": Field(dict, {}, schema=SHIELD),
    "data": Field(dict, {}, schema=DATA),
    "bound": Field(dict, {}, schema=BOUND),
    "test": Field(dict, {}, schema=TEST),
}


@dataclass(frozen=True)
class Params:
    """The validated config, flattened for the simulator (see the schema for meanings)."""

    G: int
    rated: float
    fuel_a: float
    fuel_b: float
    min_run: int
    warmup: int
    warmup_kw: float
    cooldown: int
    min_load: float
    overload: float  # kW above rated (per genset)
    window: int  # minutes
    avg_limit: float  # kW
    avg_margin: float
    b_power: float
    b_cap: float
    soc_min: float
    soc_max: float
    soc_rmin: float
    soc_rmax: float
    eta: float
    repl_cost: float
    cycle_life: float
    depth_exp: float
    degradation: str
    rf_stack: int
    w_rated: float
    d_max: float
    ramp_d: float
    ramp_w_down: float
    fuel_price: float
    unserved_cost: float
    surplus_cost: float
    terminal_value: float
    horizon: int
    plan_with_reserve: bool
    surrogate_kwh: float
    surrogate_gain: float
    proposal: str
    wear_weight: float = 1.0

    @property
    def over_cap(self) -> float:
        return self.rated + self.overload


def check_config(cfg: Mapping[str, Any], source: str) -> dict[str, Any]:
    cfg = validate(cfg, SCHEMA, source)
    g, b, d, w, h = cfg["genset"], cfg["battery"], cfg["demand"], cfg["wind"], cfg["history"]
    window = int(round(g["rolling_hours"] * 60))
    if cfg["periods"] > window:
        raise ConfigError(
            source,
            "periods",
            f"must be at most the rolling window ({window} minutes): the 48 h "
            "history in each scenario covers what drops out of the window",
        )
    if g["min_load_kw"] > g["rated_kw"]:
        raise ConfigError(source, "genset.min_load_kw", f"must be at most genset.rated_kw ({g['rated_kw']})")
    if not b["soc_reserve_min"] <= b["soc_min"] < b["soc_max"] <= b["soc_reserve_max"]:
        raise ConfigError(source, "battery.soc_min", "need soc_reserve_min <= soc_min < soc_max <= soc_reserve_max")
    if not b["soc_min"] <= b["initial_soc_low"] <= b["initial_soc_high"] <= b["soc_max"]:
        raise ConfigError(
            source, "battery.initial_soc_low", "need soc_min <= initial_soc_low <= initial_soc_high <= soc_max"
        )
    if not w["cut_in"] < w["rated_speed"] < w["cut_out"]:
        raise ConfigError(source, "wind.rated_speed", "need cut_in < rated_speed < cut_out")
    if w["mean_speed_low"] > w["mean_speed_high"]:
        raise ConfigError(source, "wind.mean_speed_low", "must be at most wind.mean_speed_high")
    if (
        not d["min_kw"] <= d["base_kw"] <= d["peak_kw"]
        or max(d["evening_peak_kw"], d["morning_peak_kw"]) > d["peak_kw"]
    ):
        raise ConfigError(source, "demand.base_kw", "need min_kw <= base_kw and every level <= peak_kw")
    if h["low_fraction"] > h["high_fraction"]:
        raise ConfigError(source, "history.low_fraction", "must be at most history.high_fraction")
    if h["high_fraction"] > g["rolling_max_fraction"]:
        raise ConfigError(
            source,
            "history.high_fraction",
            f"must be at most genset.rolling_max_fraction "
            f"({g['rolling_max_fraction']}): the history must itself obey the limit",
        )
    if g["count"] * g["rated_kw"] < d["peak_kw"]:
        raise ConfigError(
            source,
            "demand.peak_kw",
            "exceeds the rated power of all gensets together; no shield can guarantee the demand is served",
        )
    if cfg["bound"]["integer"] and cfg["bound"]["time_step"] != 1:
        raise ConfigError(
            source, "bound.integer", "integer genset counts keep the bound valid only with bound.time_step = 1"
        )
    if cfg["data"]["source"] != "synthetic" and not cfg["data"]["path"]:
        raise ConfigError(source, "data.path", f"required for data.source = {cfg['data']['source']!r}")
    return cfg


def params_from(cfg: Mapping[str, Any]) -> Params:
    g, b, w, d, c, s = cfg["genset"], cfg["battery"], cfg["wind"], cfg["demand"], cfg["costs"], cfg["shield"]
    horizon = s["horizon_minutes"] or (g["cooldown_minutes"] + g["warmup_minutes"] + 1)
    return Params(
        G=g["count"],
        rated=g["rated_kw"],
        fuel_a=g["fuel_slope"],
        fuel_b=g["fuel_intercept"],
        min_run=g["min_run_minutes"],
        warmup=g["warmup_minutes"],
        warmup_kw=g["warmup_kw"],
        cooldown=g["cooldown_minutes"],
        min_load=g["min_load_kw"],
        overload=g["overload_fraction"] * g["rated_kw"],
        window=int(round(g["rolling_hours"] * 60)),
        avg_limit=g["rolling_max_fraction"] * g["rated_kw"],
        avg_margin=g["rolling_margin_kw"],
        b_power=b["power_kw"],
        b_cap=b["capacity_kwh"],
        soc_min=b["soc_min"],
        soc_max=b["soc_max"],
        soc_rmin=b["soc_reserve_min"],
        soc_rmax=b["soc_reserve_max"],
        eta=b["charge_efficiency"],
        repl_cost=b["replacement_cost"],
        cycle_life=b["cycle_life"],
        depth_exp=b["depth_exponent"],
        degradation=b["degradation"],
        rf_stack=b["rainflow_stack"],
        w_rated=w["rated_kw"],
        d_max=d["peak_kw"],
        ramp_d=d["ramp_kw_per_min"],
        ramp_w_down=w["ramp_down_kw_per_min"],
        fuel_price=c["fuel_price"],
        unserved_cost=c["unserved_per_kwh"],
        surplus_cost=c["surplus_per_kwh"],
        terminal_value=c["terminal_kwh_value"],
        horizon=horizon,
        plan_with_reserve=s["plan_with_reserve"],
        surrogate_kwh=s["surrogate_kwh"],
        surrogate_gain=s["surrogate_gain"],
        proposal=s["proposal"],
        wear_weight=c["wear_weight"],
    )
