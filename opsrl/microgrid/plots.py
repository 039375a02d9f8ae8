"""A day's dispatch: demand and wind, genset outputs and battery power, state of charge.

:func:`dispatch_series` rolls a policy through one scenario; :func:`day_figure` draws such a series
(from tensors, or from the compact lists a run record keeps, see :func:`compact_day`);
:func:`plot_day` does both and saves a PNG; :func:`picture` is the family's report hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..core import Scenarios, rollout

SERIES = (
    "out_demand",
    "out_wind",
    "out_wind_used",
    "out_gen",
    "out_battery",
    "out_unserved",
    "out_dump",
    "out_fuel",
    "out_mode",
)


@torch.no_grad()
def dispatch_series(problem, policy, scenarios: Scenarios, index: int = 0) -> dict[str, torch.Tensor]:
    """Minute-by-minute outcome of one scenario under ``policy`` (shielded as the problem says)."""
    if getattr(policy, "training", False):
        policy.eval()
    one = scenarios.select(slice(index, index + 1))
    traj = rollout(problem, policy, one, record=True)
    outs = traj.states[1:] + [traj.final_state]
    series = {k: torch.stack([o[k][0] for o in outs]) for k in SERIES}
    series["soc"] = torch.stack([traj.states[0]["soc"][0]] + [o["soc"][0] for o in outs])
    series["cost"] = traj.costs[0].sum()
    series["start_minute"] = scenarios["start_minute"][index]
    return series


def compact_day(series: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The series as JSON-able lists (kW to 0.1, state of charge to 1e-4), for a run record."""
    out: dict[str, Any] = {}
    for k in ("out_demand", "out_wind", "out_wind_used", "out_gen", "out_battery", "out_unserved", "out_fuel"):
        out[k] = (series[k].double().cpu() * 10).round().div(10).tolist()
    out["soc"] = (series["soc"].double().cpu() * 1e4).round().div(1e4).tolist()
    out["cost"] = float(series["cost"])
    out["start_minute"] = float(series["start_minute"])
    return out


def day_figure(problem, series: Mapping[str, Any], title: str = ""):
    """A three-panel matplotlib Figure of one day's dispatch (tensors or the lists of :func:`compact_day`)."""
    from matplotlib.figure import Figure

    s = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in series.items()}
    p = problem.p
    T = s["out_demand"].shape[0]
    hours = (float(s["start_minute"]) + torch.arange(T, dtype=torch.float64)) / 60.0
    fig = Figure(figsize=(11, 8))
    ax = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [2, 2, 1]})
    ax[0].plot(hours, s["out_demand"], color="black", lw=1.2, label="demand")
    ax[0].plot(hours, s["out_wind"], color="tab:green", lw=0.8, alpha=0.6, label="wind available")
    ax[0].plot(hours, s["out_wind_used"], color="tab:green", lw=1.2, label="wind used")
    ax[0].set_ylabel("kW")
    ax[0].legend(loc="upper left", ncol=3, fontsize=8)
    colors = ["tab:red", "tab:orange", "tab:brown", "tab:pink"]
    gen = s["out_gen"].reshape(T, -1)
    for g in range(gen.shape[1]):
        ax[1].plot(hours, gen[:, g], color=colors[g % len(colors)], lw=1.0, label=f"genset {g + 1}")
    ax[1].plot(hours, s["out_battery"], color="tab:blue", lw=1.0, label="battery (+ discharge)")
    ax[1].axhline(p.rated, color="gray", ls=":", lw=0.8)
    ax[1].axhline(p.min_load, color="gray", ls=":", lw=0.8)
    ax[1].axhline(0, color="black", lw=0.5)
    ax[1].set_ylabel("kW")
    ax[1].legend(loc="upper left", ncol=4, fontsize=8)
    ax[2].plot(torch.cat([hours[:1], hours + 1 / 60.0]), s["soc"], color="tab:blue")
    for y, ls in ((p.soc_min, "--"), (p.soc_max, "--"), (p.soc_rmin, ":"), (p.soc_rmax, ":")):
        ax[2].axhline(y, color="gray", ls=ls, lw=0.8)
    ax[2].set_ylim(0, 1)
    ax[2].set_ylabel("state of charge")
    ax[2].set_xlabel("hour of day")
    fuel = float(s["out_fuel"].sum())
    unserved = float(s["out_unserved"].sum()) / 60.0
    fig.suptitle(f"{title}  fuel {fuel:.0f} L, cost {float(s['cost']):.0f}, unserved {unserved:.1f} kWh")
    fig.tight_layout()
    return fig


def plot_day(problem, policy, scenarios: Scenarios, path: str | Path, title: str = "", index: int = 0):
    """Save a three-panel figure of one day's dispatch to ``path`` (PNG); returns the series."""
    s = dispatch_series(problem, policy, scenarios, index)
    fig = day_figure(problem, s, title)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return s


def picture(problem, record: Mapping[str, Any]):
    """Report hook: the first test day's dispatch kept in the run record (None for a bound, which has none)."""
    day = record.get("day")
    if not day:
        return None
    return day_figure(problem, day, f"{record.get('solver', '')} on {record.get('problem', '')}, test day 0:")
