"""The report picture of hydro policies, saved for docs/hydro.md: reservoir volumes and generation mix over the
stages of the first three test scenarios.

    python benchmarks/hydro_figures.py   # docs/figures/hydro_case3_sdp.png, hydro_bolivia_sddp.png (~2 min)

bolivia's SDDP here trains for --sddp-seconds (default 60; the benchmark's policy trains longer).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from opsrl.hydro.plots import picture
from opsrl.hydro.sddp import CutPolicy, solve_sdp, train_sddp
from opsrl.hydro.simulate import run_test
from opsrl.registry import load_problem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sddp-seconds", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "figures")
    a = ap.parse_args()
    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    p = load_problem("hydro/case3")
    sdp = solve_sdp(p, 541)
    _, m = run_test(p, p.test_set().select(slice(0, 3)), decider=CutPolicy(p, sdp.cuts))
    picture(p, {"problem": p.name, "solver": "hydro_sdp", **m}).savefig(a.out / "hydro_case3_sdp.png", dpi=110)
    p = load_problem("hydro/bolivia")
    res = train_sddp(p, 100_000, 1, 0, time_limit=a.sddp_seconds)
    _, m = run_test(p, p.test_set().select(slice(0, 3)), decider=CutPolicy(p, res.cuts))
    picture(p, {"problem": p.name, "solver": f"sddp ({res.iterations} iterations)", **m}).savefig(
        a.out / "hydro_bolivia_sddp.png", dpi=110
    )


if __name__ == "__main__":
    main()
