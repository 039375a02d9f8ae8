"""A day's dispatch: demand and wind, genset outputs and battery power, state of charge."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core import Scenarios, rollout


@torch.no_grad()
def dispatch_series(problem, policy, scenarios: Scenarios, index: int = 0) -> dict[str, torch.Tensor]:
    """Minute-by-minute outcome of one scenario under ``policy`` (shielded as the problem says)."""
    if getattr(policy, "training", False):
        policy.eval()
    one = scenarios.select(slice(index, index + 1))
    traj = rollout(problem, policy, one, record=True)
    outs = traj.states[1:] + [traj.final_state]
    series = {k: torch.stack([o[k][0] for o in outs]) for k in
              ("out_demand", "out_wind", "out_wind_used", "out_gen", "out_battery", "out_unserved", "out_dump",
               "out_fuel", "out_mode")}
    series["soc"] = torch.stack([traj.states[0]["soc"][0]] + [o["soc"][0] for o in outs])
    series["cost"] = traj.costs[0].sum()
    return series


def plot_day(problem, policy, scenarios: Scenarios, path: str | Path, title: str = "", index: int = 0):
    """Save a three-panel figure of one day's dispatch to ``path`` (PNG); returns the series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = dispatch_series(problem, policy, scenarios, index)
    p = problem.p
    T = s["out_demand"].shape[0]
    start = float(scenarios["start_minute"][index])
    hours = (start + torch.arange(T, dtype=torch.float64)) / 60.0
    fig, ax = plt.subplots(3, 1, figsize=(11, 8), sharex=True, gridspec_kw={"height_ratios": [2, 2, 1]})
    ax[0].plot(hours, s["out_demand"], color="black", lw=1.2, label="demand")
    ax[0].plot(hours, s["out_wind"], color="tab:green", lw=0.8, alpha=0.6, label="wind available")
    ax[0].plot(hours, s["out_wind_used"], color="tab:green", lw=1.2, label="wind used")
    ax[0].set_ylabel("kW")
    ax[0].legend(loc="upper left", ncol=3, fontsize=8)
    colors = ["tab:red", "tab:orange", "tab:brown", "tab:pink"]
    for g in range(p.G):
        ax[1].plot(hours, s["out_gen"][:, g], color=colors[g % len(colors)], lw=1.0, label=f"genset {g + 1}")
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
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return s
