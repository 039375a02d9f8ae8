"""Exogenous series: a seeded synthetic generator and user-supplied CSV/Parquet files.

Every scenario is one episode (a day by default) and holds, as tensors:

* ``demand``, ``wind``: ``[n, T + 1 + max_lead]`` kW; index 0 is the minute before the episode (what the
  controller last saw), index ``t + 1`` is realised in step ``t``; the tail beyond ``T + 1`` only feeds the
  forecasts of the last steps;
* ``fc_demand``, ``fc_wind``: ``[n, T, F]``, the forecast available before step ``t`` of the mean over the
  next ``lead`` minutes, for each lead of ``forecast.leads``;
* ``start_minute``: ``[n]`` minute of day of step 0;
* ``history``: ``[n, G, 48]`` hourly mean load of each genset over the 48 h before the episode (oldest
  hour first); ``soc0``: ``[n]`` initial state of charge.

Synthetic days: demand is a daily shape (night base, morning and evening peaks) scaled per day, with
hourly and minute-level noise; wind power is a power curve applied to a wind speed with a random daily
mean and hourly fluctuations. Both are clipped to the ramp limits the shield assumes
(``demand.ramp_kw_per_min``, ``wind.ramp_down_kw_per_min``) and to ``[demand.min_kw, demand.peak_kw]``.

Files (``data.source = "csv"`` or ``"parquet"``): one row per minute, consecutive, starting at midnight,
whole days; columns ``demand_kw`` and ``wind_kw`` (available wind power, before curtailment), both >= 0,
no missing values. The last ``data.test_days`` days are the test split, the ``data.dev_days`` before them
dev, the rest train. Forecasts are made from the series with the synthetic forecast-error model. Ramps
beyond the shield's assumptions are counted in ``Scenarios.meta['ramp_violations']`` (the guarantee that
demand is always served holds only within those assumptions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field as PydanticField

from ..core import ConfigError, generator, numpy_rng
from ..core.datafile import Number, Record, check_file, check_rows, read_csv, resolve

DAY = 1440


def _ramp_clip(
    x: torch.Tensor, lo: torch.Tensor | float, hi: torch.Tensor | float, down: float, up: float
) -> torch.Tensor:
    """Clip ``x [n, L]`` to ``[lo, hi]`` and to one-minute changes in ``[-down, up]`` (sequentially)."""
    x = x.clamp(lo, hi).clone()
    out = torch.empty_like(x)
    out[:, 0] = x[:, 0]
    for t in range(1, x.shape[1]):
        out[:, t] = torch.minimum(torch.maximum(x[:, t], out[:, t - 1] - down), out[:, t - 1] + up)
    return out


def _interp_hourly(values: torch.Tensor, minutes: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of hourly knots ``[n, H]`` at fractional minutes ``[n, L]``."""
    pos = minutes / 60.0
    i0 = pos.floor().long().clamp(0, values.shape[1] - 2)
    frac = (pos - i0).clamp(0, 1)
    return values.gather(1, i0) * (1 - frac) + values.gather(1, i0 + 1) * frac


def demand_shape(cfg: Mapping[str, Any], minute_of_day: torch.Tensor) -> torch.Tensor:
    h = (minute_of_day % DAY) / 60.0
    base, mp, ep = cfg["base_kw"], cfg["morning_peak_kw"], cfg["evening_peak_kw"]

    def bump(center, width):  # periodic over the day
        dist = torch.minimum((h - center).abs(), 24 - (h - center).abs())
        return torch.exp(-((dist / width) ** 2))

    return base + (mp - base) * bump(7.5, 1.5) + (ep - base) * bump(19.0, 2.0) + 0.35 * (mp - base) * bump(13.0, 3.0)


def wind_power(cfg: Mapping[str, Any], speed: torch.Tensor) -> torch.Tensor:
    ci, vr, co, rated = cfg["cut_in"], cfg["rated_speed"], cfg["cut_out"], cfg["rated_kw"]
    frac = ((speed**3 - ci**3) / (vr**3 - ci**3)).clamp(0, 1)
    return torch.where((speed < ci) | (speed > co), torch.zeros_like(speed), rated * frac)


def synthetic_series(
    cfg: Mapping[str, Any], n: int, length: int, start: torch.Tensor, split: str, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Demand and available wind ``[n, length]`` (float64) for episodes starting at ``start`` minutes."""
    d_cfg, w_cfg = cfg["demand"], cfg["wind"]
    minutes = (
        start[:, None].double() + torch.arange(length, dtype=torch.float64)[None, :]
    )  # minute of day (may pass 1440)
    hours = int(math.ceil((minutes.max().item() + 1) / 60)) + 2
    gd = generator(seed, split, "demand")
    scale = 1 + d_cfg["day_scale_std"] * torch.randn(n, 1, generator=gd, dtype=torch.float64)
    hourly = 1 + 0.04 * torch.randn(n, hours, generator=gd, dtype=torch.float64)
    noise = torch.zeros(n, length, dtype=torch.float64)
    eps = torch.randn(n, length, generator=gd, dtype=torch.float64)
    phi = 0.9
    for t in range(length):  # AR(1) minute noise with stationary std noise_kw
        noise[:, t] = (phi * noise[:, t - 1] if t else 0) + math.sqrt(1 - phi**2) * d_cfg["noise_kw"] * eps[:, t]
    demand = demand_shape(d_cfg, minutes) * scale * _interp_hourly(hourly, minutes) + noise
    demand = _ramp_clip(demand, d_cfg["min_kw"], d_cfg["peak_kw"], d_cfg["ramp_kw_per_min"], d_cfg["ramp_kw_per_min"])

    gw = generator(seed, split, "wind")
    mean = w_cfg["mean_speed_low"] + (w_cfg["mean_speed_high"] - w_cfg["mean_speed_low"]) * torch.rand(
        n, 1, generator=gw, dtype=torch.float64
    )
    z = torch.randn(n, hours, generator=gw, dtype=torch.float64)
    ar = torch.zeros(n, hours, dtype=torch.float64)
    for k in range(hours):  # hourly AR(1) of the speed around the day's mean
        ar[:, k] = (0.85 * ar[:, k - 1] if k else 0) + math.sqrt(1 - 0.85**2) * w_cfg["speed_std"] * z[:, k]
    turb = torch.zeros(n, length, dtype=torch.float64)
    e2 = torch.randn(n, length, generator=gw, dtype=torch.float64)
    for t in range(length):
        turb[:, t] = (0.95 * turb[:, t - 1] if t else 0) + math.sqrt(1 - 0.95**2) * 0.4 * e2[:, t]
    speed = (mean + _interp_hourly(ar, minutes) + turb).clamp_min(0)
    wind = _ramp_clip(
        wind_power(w_cfg, speed), 0.0, w_cfg["rated_kw"], w_cfg["ramp_down_kw_per_min"], w_cfg["ramp_up_kw_per_min"]
    )
    return demand, wind


def forecasts(
    cfg: Mapping[str, Any],
    series: torch.Tensor,
    periods: int,
    rel_error: float,
    additive_scale: float,
    hi: float,
    split: str,
    seed: int,
    stream: str,
) -> torch.Tensor:
    """Forecasts ``[n, T, F]`` of the mean of ``series[:, t+1 : t+1+lead]``, with AR(1) errors growing as
    sqrt(lead). ``additive_scale`` > 0 makes the error additive in those units (wind), else relative."""
    leads = cfg["forecast"]["leads"]
    n = series.shape[0]
    cs = torch.cat([torch.zeros(n, 1, dtype=series.dtype), series.cumsum(1)], dim=1)
    t = torch.arange(periods)
    g = generator(seed, split, stream)
    out = []
    for lead in leads:
        true = (cs[:, t + 1 + lead] - cs[:, t + 1]) / lead
        z = torch.zeros(n, periods, dtype=series.dtype)
        e = torch.randn(n, periods, generator=g, dtype=series.dtype)
        rho = 0.995
        z[:, 0] = e[:, 0]
        for k in range(1, periods):
            z[:, k] = rho * z[:, k - 1] + math.sqrt(1 - rho**2) * e[:, k]
        sigma = rel_error * math.sqrt(lead / 60.0)
        err = sigma * z * (additive_scale if additive_scale > 0 else true)
        out.append((true + err).clamp(0, hi))
    return torch.stack(out, dim=2)


class SeriesRow(Record):
    """A row of a microgrid CSV series: one minute's demand and available wind power (kW, >= 0)."""

    demand_kw: Annotated[Number, PydanticField(ge=0)]
    wind_kw: Annotated[Number, PydanticField(ge=0)]


def load_file(path: Path, kind: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Read ``demand_kw`` and ``wind_kw`` from a CSV or Parquet file (whole days of minutes). A missing file
    or a folder is an error of the problem file's ``data.path``; what is in the file, of the file."""
    if kind == "csv":
        rows = check_rows(SeriesRow, read_csv(path, ("demand_kw", "wind_kw"), source, "data.path"), str(path))
        demand = np.array([r.demand_kw for r in rows], dtype=float)
        wind = np.array([r.wind_kw for r in rows], dtype=float)
    else:
        check_file(path, source, "data.path")
        try:
            import pandas as pd  # optional: only needed for Parquet input
        except ImportError:
            raise ConfigError(
                source,
                "data.source",
                "Parquet input needs pandas and pyarrow (pip install pandas pyarrow); or use a CSV file",
            ) from None
        try:
            frame = pd.read_parquet(path)
        except ImportError as e:
            raise ConfigError(source, "data.source", f"Parquet input needs pyarrow: {e}") from None
        missing = [c for c in ("demand_kw", "wind_kw") if c not in frame.columns]
        if missing:
            raise ConfigError(
                source,
                "data.path",
                f"{path.name} lacks column(s) {', '.join(missing)}; required: demand_kw, wind_kw (one row per minute)",
            )
        demand = frame["demand_kw"].to_numpy(dtype=float)
        wind = frame["wind_kw"].to_numpy(dtype=float)
    for name, x in (("demand_kw", demand), ("wind_kw", wind)):
        if not np.all(np.isfinite(x)):
            raise ConfigError(
                source,
                "data.path",
                f"{path.name}: column {name} has missing or NaN values (first at row {int(np.argmin(np.isfinite(x)))})",
            )
        if np.any(x < 0):
            raise ConfigError(source, "data.path", f"{path.name}: column {name} has negative values")
    if len(demand) < DAY or len(demand) % DAY:
        raise ConfigError(
            source,
            "data.path",
            f"{path.name}: {len(demand)} rows is not a whole number of days "
            "(1440 rows per day, one per minute, starting at midnight)",
        )
    return demand, wind


def file_days(cfg: Mapping[str, Any], source: str, base: Path | None = None) -> dict[str, np.ndarray]:
    """The day indices of each split for a data file (a relative ``data.path`` starts at ``base``, by default
    the folder of the problem file ``source``)."""
    d = cfg["data"]
    if not d["path"]:
        raise ConfigError(source, "data.path", f"missing; data.source = {d['source']!r} needs the path of its file")
    path = Path(d["path"])
    path = base / path if base is not None and not path.is_absolute() else resolve(path, source)
    demand, wind = load_file(path, d["source"], source)
    days = len(demand) // DAY
    test = d["test_days"] or max(1, days // 4)
    dev = d["dev_days"] or max(1, days // 4)
    if test + dev >= days:
        raise ConfigError(
            source,
            "data.test_days",
            f"the file has {days} days; test_days + dev_days must leave at least one for training",
        )
    idx = np.arange(days)
    return {
        "demand": demand,
        "wind": wind,
        "train": idx[: days - test - dev],
        "dev": idx[days - test - dev : days - test],
        "test": idx[days - test :],
    }


def file_series(
    data: Mapping[str, np.ndarray], n: int, length: int, split: str, seed: int, periods: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windows of the file series for ``n`` scenarios: test days in order (cycling), other splits drawn."""
    days = data[split]
    rng = numpy_rng(seed, split, "days")
    pick = days[np.arange(n) % len(days)] if split == "test" else rng.choice(days, size=n)
    start = np.zeros(n, dtype=np.int64) if periods >= DAY else rng.integers(0, DAY, size=n)
    first = pick * DAY + start - 1  # the minute before the episode
    total = len(data["demand"])
    idx = np.clip(first[:, None] + np.arange(length)[None, :], 0, total - 1)
    return (torch.from_numpy(data["demand"][idx]), torch.from_numpy(data["wind"][idx]), torch.from_numpy(start))


def ramp_violations(demand: torch.Tensor, wind: torch.Tensor, ramp_d: float, ramp_w_down: float, d_max: float) -> int:
    tol = 1e-3  # float32 rounding of the series
    dd = demand.diff(dim=1).abs() > ramp_d + tol
    dw = -wind.diff(dim=1) > ramp_w_down + tol
    return int(dd.sum() + dw.sum() + (demand > d_max + tol).sum())
