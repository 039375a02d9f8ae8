"""The report's picture of a hydro run: reservoir volumes and the generation mix over the stages."""

from __future__ import annotations

from typing import Any

import numpy as np


def picture(problem, record: dict[str, Any]):
    """Volumes (each reservoir, or the largest few) of the first test scenarios, and their mean generation mix
    per stage (thermal, hydro, unserved), from the run record's ``series``; None if the run has none."""
    series = record.get("series")
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vol = np.asarray(series["volume"])  # [k, T + 1, H]
    k, T1, H = vol.shape
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    ax = axes[0]
    vmax = np.asarray(problem.case.vmax)
    show = np.argsort(-vmax)[: min(H, 4)]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, h in enumerate(show):
        for s in range(k):
            ax.plot(
                np.arange(T1),
                vol[s, :, h],
                color=colors[j % len(colors)],
                alpha=0.8,
                lw=1.2,
                label=problem.case.hydro_names[h] if s == 0 else None,
            )
    ax.set_xlabel("stage")
    ax.set_ylabel("volume (hm3)")
    ax.set_title(f"reservoir volumes, {k} test scenario(s)")
    ax.legend(fontsize=8)
    ax = axes[1]
    st = np.arange(T1 - 1)
    th = np.asarray(series["thermal_mwh"]).mean(0)
    hy = np.asarray(series["hydro_mwh"]).mean(0)
    de = np.asarray(series["deficit_mwh"]).mean(0)
    ax.stackplot(
        st, hy, th, de, labels=["hydro", "thermal", "unserved"], colors=["tab:blue", "tab:orange", "tab:red"], alpha=0.8
    )
    ax.set_xlabel("stage")
    ax.set_ylabel("energy per stage (MWh)")
    ax.set_title("generation mix (mean of those scenarios)")
    ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{record.get('problem', problem.name)} - {record.get('solver', '')}")
    fig.tight_layout()
    return fig
