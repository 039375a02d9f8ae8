"""Rolling-horizon MIP runs for the learned lot-sizing policy: labels and the paired reference.

Two phases per problem, each saved as soon as it ends (a restart skips what is on disk):

* ``labels``: the rolling MIP (``lotsizing_mpc``'s settings) on ``--label-scenarios`` *training* scenarios;
  every visited state and the MIP's action are saved (``<problem>_mip_labels.pt``) to clone the planner;
* ``test``: the rolling MIP on the first ``--test-scenarios`` test scenarios, per-scenario episode costs
  (``<problem>_mip_test.json``), the reference the learned policy is paired with.

    python benchmarks/lotsizing_mip_runs.py --problems i15_m5 i25_m15 --label-scenarios 16 --test-scenarios 30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from opsrl.core import rollout
from opsrl.lotsizing import mip
from opsrl.registry import load_problem

OUT = Path(__file__).parent / "results" / "lotsizing_learned"


def labels(p, n: int, seed: int, path: Path) -> None:
    sc = p.sample(n, "train", seed)
    pol = mip.RollingMIP(p, 8, 1.0)
    t0 = time.perf_counter()
    tr = rollout(p, pol, sc, record=True)
    inv = torch.stack([s["inventory"] for s in tr.states[: p.periods]])  # [T, n, I]
    setup = torch.stack([s["setup"].argmax(-1) for s in tr.states[: p.periods]])  # [T, n, M]
    torch.save(
        {
            "inventory": inv,
            "setup": setup,
            "action": torch.stack([a.long() for a in tr.actions]),  # [T, n, M]
            "cost": tr.costs.sum(1),
            "seed": seed,
            "seconds": time.perf_counter() - t0,
        },
        path,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", nargs="+", default=["i15_m5", "i20_m10", "i25_m10", "i25_m15", "i30_m10", "i30_m15"])
    ap.add_argument("--label-scenarios", type=int, default=16)
    ap.add_argument("--test-scenarios", type=int, default=30)
    ap.add_argument("--phase", choices=("labels", "test", "both"), default="both")
    a = ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for phase in ("labels", "test"):
        if a.phase not in (phase, "both"):
            continue
        for name in a.problems:
            p = load_problem(f"lotsizing/{name}")
            if phase == "labels":
                path = OUT / f"{name}_mip_labels.pt"
                if not path.exists():
                    labels(p, a.label_scenarios, 7, path)
                    print(name, "labels done", flush=True)
                continue
            path = OUT / f"{name}_mip_test.json"
            done = json.loads(path.read_text()) if path.exists() else {"per_scenario": []}
            test = p.test_set()
            pol = mip.RollingMIP(p, 8, 1.0)
            before = done.get("not_optimal", 0)  # a resumed run adds to the earlier count
            t0 = time.perf_counter()
            for b in range(len(done["per_scenario"]), min(a.test_scenarios, test.n)):
                c = float(rollout(p, pol, test.select(slice(b, b + 1))).costs.sum())
                done["per_scenario"].append(c)
                done.update(solves=done.get("solves", 0) + p.periods, not_optimal=before + pol.not_optimal)
                done["seconds"] = done.get("seconds", 0.0) + time.perf_counter() - t0
                t0 = time.perf_counter()
                path.write_text(json.dumps(done))
            print(
                name,
                "test",
                len(done["per_scenario"]),
                sum(done["per_scenario"]) / max(1, len(done["per_scenario"])),
                flush=True,
            )


if __name__ == "__main__":
    main()
