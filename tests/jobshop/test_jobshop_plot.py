import matplotlib

matplotlib.use("Agg")

from jobshop_helpers import run_rules  # noqa: E402

from opsrl.jobshop import instances as I  # noqa: E402
from opsrl.jobshop import plot


def test_gantt_draws_one_bar_per_operation_on_its_machine_row(tmp_path):
    inst = I.load("ft06")
    ms, start, end = run_rules([inst], ["spt"])["spt"][0]
    fig = plot.gantt(inst.machine, start, end, "ft06 spt")
    ax = fig.axes[0]
    bars = ax.collections
    assert len(bars) == 36
    rows = sorted(round(b.get_paths()[0].vertices[:, 1].mean()) for b in bars)
    assert rows == sorted(m for r in inst.machine for m in r)
    assert ax.get_xlim()[1] >= ms == 88
    fig.savefig(tmp_path / "g.png")
