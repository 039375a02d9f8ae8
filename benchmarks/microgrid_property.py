"""Zero violations over many full simulated days under random and adversarial proposals.

    python benchmarks/microgrid_property.py [--days 10000] [--batch 1000] [--minutes 1440]

Each day has a random initial state (any genset modes and timers, SoC in [0.3, 0.9]); a third of the
days have demand rising and wind falling at the largest ramps the shield assumes; proposals come from six
strategies (uniform random, no gensets + full discharge, all gensets + full charge, bang-bang, an
'attack' that stops whatever runs and drains the battery when low, sticky random). Every minute is
checked by the independent checker (opsrl.microgrid.constraints). Prints the violation counts.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch
from tqdm.auto import tqdm

from opsrl.microgrid import build
from opsrl.microgrid.adversarial import adversarial_exogenous, adversarial_policy, random_initial_states
from opsrl.microgrid.constraints import check_rollout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--minutes", type=int, default=1440)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    prob = build({"periods": args.minutes}, "<property>")
    counts: Counter = Counter()
    fuel = unserved = 0.0
    reserve = 0
    t0 = time.perf_counter()
    done = 0
    for k in tqdm(range(0, args.days, args.batch), desc="batches"):
        n = min(args.batch, args.days - k)
        sc = prob.sample(n, "train", 1000 + k, periods=args.minutes)
        sc = adversarial_exogenous(prob, random_initial_states(prob, sc, k), k)
        ch = check_rollout(prob, adversarial_policy(prob, k, 1 + k % 37), sc)
        counts.update(ch.counts)
        fuel += float(ch.fuel.sum())
        unserved += float(ch.unserved_kwh.sum())
        reserve += int(ch.reserve_minutes.sum())
        done += n
    secs = time.perf_counter() - t0
    print(f"days simulated: {done} x {args.minutes} minutes in {secs:.0f} s")
    print(f"violations: {dict(counts) or 'none'} (total {sum(counts.values())})")
    print(
        f"unserved energy: {unserved:.3f} kWh; reserve minutes (overload or SoC below the normal band): "
        f"{reserve}; fuel {fuel / done:.0f} L per day"
    )


if __name__ == "__main__":
    main()
