"""The rollout policy (opsrl.algos.rollout_pi) over the cover rule against the cover rule itself, paired on the
same test scenarios of a lot-sizing problem.

Candidates per state: the cover rule's action (the base, first: ties keep it), "keep every setup", and the cover
rule with other thresholds. Rollouts of ``--horizon`` periods of the cover rule on ``--paths`` fresh demand paths
drawn from the problem's own generator (never the test scenario's future), shared by the candidates of a state.

    python benchmarks/lotsizing_rollout.py lotsizing/i15_m5 --horizon 8 --paths 8 --scenarios 100
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from opsrl.algos import rollout_pi as rp
from opsrl.core import SolveContext, evaluate
from opsrl.lotsizing.rules import CoverRule
from opsrl.registry import fit_solver, load_problem


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("problem", nargs="?", default="lotsizing/i15_m5")
    ap.add_argument("--horizon", type=int, default=8)
    ap.add_argument("--paths", type=int, default=8)
    ap.add_argument("--halving", type=int, default=0)
    ap.add_argument("--scenarios", type=int, default=100, help="the first N test scenarios")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    p = load_problem(a.problem)
    cover = fit_solver("lotsizing_cover_rule", p, SolveContext(seed=0, progress=False)).policy
    lo, hi = cover.low, cover.high
    variants = [CoverRule(p, lo2, hi2) for lo2, hi2 in ((lo + 1, hi), (max(lo - 1, 0.5), hi), (lo, hi * 2), (lo, lo))]

    def keep(state, t):
        return state["setup"].argmax(-1).unsqueeze(1)

    cands = rp.candidate_fn(p, [cover, *variants], extra=[keep])
    pol = rp.RolloutPolicy(p, cover, cands, a.horizon, a.paths, a.halving, seed=1, chunk=64)
    test = p.test_set().select(slice(0, a.scenarios))
    t0 = time.time()
    base = evaluate(p, cover, test)
    t1 = time.time()
    roll = evaluate(p, pol, test)
    t2 = time.time()
    d = (roll.per_scenario - base.per_scenario).double()
    se = float(d.std(unbiased=True)) / math.sqrt(d.numel())
    print(f"problem {p.name}, cover rule low={lo:g} high={hi:g}, {test.n} test scenarios x {p.periods} periods")
    print(f"cover rule        {base.mean:10.2f} +- {base.stderr:.2f}   ({t1 - t0:.1f} s)")
    print(
        f"rollout H={a.horizon} R={a.paths} halving={a.halving} K={1 + len(variants) + 1}"
        f"  {roll.mean:10.2f} +- {roll.stderr:.2f}   ({t2 - t1:.1f} s, {(t2 - t1) / p.periods:.2f} s per period)"
    )
    print(
        f"paired difference (rollout - rule) {float(d.mean()):.2f} +- {se:.2f} "
        f"(95% interval {float(d.mean()) - 1.96 * se:.2f} .. {float(d.mean()) + 1.96 * se:.2f}); "
        f"rollout better on {int((d < 0).sum())} of {d.numel()}"
    )


if __name__ == "__main__":
    main()
