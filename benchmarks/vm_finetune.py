"""Fine-tune the distilled VM-rescheduling student for best of K by risk-seeking PPO at MNL 50.

The distilled student (``opsrl/vm/data/two_stage_distilled.pt``, from ``vm_distill_gnn.py``) imitates a
policy trained at MNL 10, where greedy is already optimal, yet it is used as the best of 64 sampled plans at
MNL 50. This script trains it for that use: the library's generic PPO (:func:`opsrl.algos.ppo.train`) on
MNL 50 episodes with the risk-seeking group baseline (``baseline = "top"``: each training snapshot rolled out
``group`` times, only the plans in the group's best ``top`` fraction are reinforced, by how much they beat the
group's quantile) and the dev cost measured as the best of ``dev-samples`` sampled plans (``dev_samples``),
so that the parameters kept are those whose best of K is lowest on dev snapshots. The shipped policy
(``opsrl/vm/data/two_stage.pt``) is three such rounds, each started from the one before:

    python benchmarks/vm_finetune.py --minutes 40 --out /tmp/vm_ft.pt
    python benchmarks/vm_finetune.py --minutes 45 --init /tmp/vm_ft.pt --out /tmp/vm_ft2.pt --seed 1
    python benchmarks/vm_finetune.py --minutes 38 --init /tmp/vm_ft2.pt --out /tmp/vm_ft3.pt --seed 2 --dev 8 --ship
    python benchmarks/vm_benchmark.py fr --mnl 50 --snapshots 8 --methods best --samples 64
    python benchmarks/vm_finetune.py --plot     # docs/figures/vm_finetune.png from the curve below

Writes the weights and a JSON (width, layers, settings, the dev curve) next to them; ``--ship`` also writes
them over the shipped policy. ``benchmarks/results/vm_finetune_curve.json`` holds the shipped rounds' curves.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from opsrl.algos import ppo
from opsrl.core import SolveContext, validate
from opsrl.vm import policy as pol
from opsrl.vm.problem import build

ROOT = Path(__file__).resolve().parent.parent


def plot(curve_file: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = json.loads(curve_file.read_text())["rounds"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    offset = 0
    for i, r in enumerate(rounds):
        x = [offset + e["iteration"] for e in r]
        ax.plot(x, [e["dev_cost"] for e in r], marker="o", ms=3, label=f"round {i + 1}")
        offset = x[-1]
    ax.set_xlabel("PPO iterations (2 snapshots x 16 plans of MNL 50 each)")
    ax.set_ylabel("dev FR change, best of 16")
    ax.set_title("Risk-seeking PPO fine-tuning of the distilled student (4, 4 and 8 dev snapshots)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    print(png)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="PPO wall-time budget")
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--mnl", type=int, default=50)
    ap.add_argument("--batch", type=int, default=2, help="training snapshots per PPO iteration")
    ap.add_argument("--group", type=int, default=16, help="rollouts per training snapshot")
    ap.add_argument("--top", type=float, default=0.25, help="fraction of each group reinforced")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--dev", type=int, default=4, help="dev snapshots")
    ap.add_argument("--dev-samples", type=int, default=16, help="plans per dev snapshot (best of K)")
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--init", default="", help="weights to start from (default: the distilled student)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/vm_finetune.pt"))
    ap.add_argument("--ship", action="store_true", help="write over the shipped policy")
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run (small snapshots, writes to /tmp)")
    ap.add_argument("--plot", action="store_true", help="only draw the shipped rounds' dev curves")
    a = ap.parse_args(argv)
    if a.plot:
        plot(ROOT / "benchmarks" / "results" / "vm_finetune_curve.json", ROOT / "docs" / "figures" / "vm_finetune.png")
        return
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    cfg = {"generator": "medium", "mnl": a.mnl}
    if a.quick:
        cfg.update(pms=30, vms=220, mnl=5)
        a.iterations, a.group, a.dev, a.dev_samples, a.eval_every = 2, 4, 2, 4, 1
        a.out, a.ship = Path("/tmp/vm_finetune_quick.pt"), False
    problem = build(cfg, "benchmarks/vm_finetune.py")
    init = a.init or str(pol.DATA / "two_stage_distilled.pt")
    ac = pol.load(problem, init, "--init")
    meta_file = Path(init).with_suffix(".json")
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    meta.pop("curve", None)
    options = validate(
        {
            "lr": a.lr,
            "batch_size": a.batch,
            "group_size": a.group,
            "baseline": "top",
            "top_fraction": a.top,
            "train_scenarios": 64,
            "iterations": a.iterations,
            "epochs": 2,
            "minibatches": 4,
            "entropy_coef": 0.0,
            "dev_scenarios": a.dev,
            "dev_samples": a.dev_samples,
            "eval_every": a.eval_every,
            "lr_decay": False,
            "time_limit": a.minutes * 60,
            "max_grad_norm": 0.5,
        },
        ppo.OPTIONS,
        "benchmarks/vm_finetune.py",
    )
    options["_start_info"] = {"start": init}  # the start's dev cost is the curve's first point (and kept if best)
    ctx = SolveContext(seed=a.seed, progress=True, log=lambda m: print(m, flush=True))
    t0 = time.perf_counter()
    ac, curve = ppo.train(problem, ac, options, ctx)
    best = min(curve, key=lambda e: e["dev_cost"])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ac.state_dict(), a.out)
    info = {
        "width": int(meta.get("width", 8)),
        "layers": int(meta.get("layers", 0)),
        "trained_on": f"synthetic Medium, MNL {cfg['mnl']}, fine-tuned from {Path(init).name}",
        "start_dev": curve[0]["dev_cost"],
        "best_dev": best["dev_cost"],
        "best_iteration": best["iteration"],
        "iterations": curve[-1]["iteration"],
        "seconds": time.perf_counter() - t0,
        "ppo": {k: v for k, v in options.items() if not k.startswith("_")},
        "start_meta": meta,
    }
    a.out.with_suffix(".json").write_text(json.dumps({**info, "curve": curve}, indent=1))
    print(json.dumps(info, indent=1))
    if a.ship:
        shutil.copy(a.out, pol.WEIGHTS)
        pol.META.write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
