"""Gantt chart of a job-shop schedule (matplotlib): one row per machine, one colour per job."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["gantt"]


def gantt(
    machine: Sequence[Sequence[int]],
    start: Sequence[Sequence[float]],
    end: Sequence[Sequence[float]],
    title: str = "",
    ax=None,
    labels: bool | None = None,
):
    """Draw the schedule (``start``/``end`` per job and operation) of an instance with routes ``machine``.

    Returns the matplotlib Figure. Operations are labelled with their job index when there is room
    (``labels=None``: when the instance has at most 20 jobs).
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    n_jobs = len(machine)
    n_machines = 1 + max((m for row in machine for m in row), default=0)
    if ax is None:
        fig = Figure(figsize=(min(20, 6 + 0.08 * sum(map(len, machine))), 1 + 0.4 * n_machines))
        ax = fig.subplots()
    else:
        fig = ax.figure
    cmap = colormaps["tab20" if n_jobs <= 20 else "turbo"]
    labels = n_jobs <= 20 if labels is None else labels
    makespan = 0.0
    for j, row in enumerate(machine):
        colour = cmap(j % 20) if n_jobs <= 20 else cmap(j / max(1, n_jobs - 1))
        for k, m in enumerate(row):
            s, e = float(start[j][k]), float(end[j][k])
            makespan = max(makespan, e)
            ax.broken_barh([(s, e - s)], (m - 0.4, 0.8), facecolors=colour, edgecolor="black", linewidth=0.4)
            if labels and e - s > 0:
                ax.text((s + e) / 2, m, str(j), ha="center", va="center", fontsize=7)
    ax.set_yticks(range(n_machines), [f"M{m}" for m in range(n_machines)])
    ax.invert_yaxis()
    ax.set_xlim(0, makespan * 1.01 if makespan > 0 else 1)
    ax.set_xlabel("time")
    ax.axvline(makespan, color="red", linewidth=1, linestyle="--")
    ax.set_title(title or f"makespan {makespan:g}")
    fig.tight_layout()
    return fig
