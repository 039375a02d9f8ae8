"""Train the shipped two-stage VM-rescheduling policy on synthetic Medium snapshots.

1. Behaviour cloning of the non-stopping greedy (the best single migration each step, even when it
   raises FR) on training snapshots: maximum likelihood of its ``[vm, slot]`` actions under the two-stage
   distribution, so PPO starts from a policy that already reads the move features.
2. The library's generic PPO (:func:`opsrl.algos.ppo.train`, unchanged) with the group baseline
   (each training snapshot rolled out ``group`` times, the advantage is the return minus the mean of the
   other rollouts), keeping the parameters best on dev snapshots (greedy decoding).

Writes ``opsrl/vm/data/two_stage_l1.pt`` and ``.json`` (the teacher of the shipped policy), the learning curve as
``benchmarks/results/vm_train_curve.json`` and ``docs/figures/vm_gnn_training.png``.

    python benchmarks/vm_train_gnn.py --minutes 15
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from opsrl.algos import ppo
from opsrl.core import SolveContext, evaluate, generator, validate
from opsrl.nn.two_stage import TwoStageActorCritic
from opsrl.vm import baselines
from opsrl.vm.problem import build

ROOT = Path(__file__).resolve().parent.parent


def clone(problem, ac, scenarios, steps, batch, lr, seed):
    """Behaviour cloning of the non-stopping greedy on ``scenarios``; returns (nll, agreement)."""
    teacher = baselines.Greedy(problem, stop=False)
    feats, acts = [], []
    state = problem.initial_state(scenarios)
    with torch.no_grad():
        for t in range(problem.periods):
            a = teacher(state, t)
            ok = a[:, 0] >= 0
            f = ac.encode(state, t)
            feats.append({k: v[ok] for k, v in f.items()})
            acts.append(a[ok])
            state, _ = problem.post_decision(state, a)
    f_all = {k: torch.cat([f[k] for f in feats]) for k in feats[0]}
    a_all = torch.cat(acts)
    n = a_all.shape[0]
    g = generator(seed, "train", "vm_clone")
    opt = torch.optim.Adam(ac.parameters(), lr=lr)
    for _ in range(steps):
        j = torch.randint(n, (min(batch, n),), generator=g)
        loss = -ac.distribution({k: v[j] for k, v in f_all.items()}).log_prob(a_all[j]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ac.parameters(), 1.0)
        opt.step()
    with torch.no_grad():
        j = torch.randperm(n, generator=g)[:256]
        mode = ac.distribution({k: v[j] for k, v in f_all.items()}).mode()
        agree = float((mode == a_all[j]).all(1).float().mean())
    return float(loss.detach()), agree, n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=15.0, help="PPO wall-time budget")
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--mnl", type=int, default=10, help="episode length while training")
    ap.add_argument("--batch", type=int, default=4, help="training snapshots per PPO iteration")
    ap.add_argument("--group", type=int, default=4, help="rollouts per training snapshot (group baseline)")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--clone-steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "opsrl" / "vm" / "data" / "two_stage_l1.pt")
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run (writes to /tmp)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    cfg = {"generator": "medium", "mnl": a.mnl}
    if a.quick:
        cfg.update(pms=30, vms=220)
        a.out = Path("/tmp/vm_two_stage_quick.pt")
        a.iterations, a.clone_steps = 3, 5
    problem = build(cfg, "benchmarks/vm_train_gnn.py")
    ac = TwoStageActorCritic(problem, a.width, a.layers)
    t0 = time.perf_counter()
    pool = problem.sample(32, "train", a.seed + 1)
    nll, agree, n = clone(problem, ac, pool, a.clone_steps, 16, 3e-3, a.seed)
    dev = problem.sample(8, "dev", a.seed)
    clone_dev = evaluate(problem, ac, dev).mean
    greedy_dev = evaluate(problem, baselines.Greedy(problem), dev).mean
    print(
        f"cloned greedy on {n} states in {time.perf_counter() - t0:.0f} s: nll {nll:.3f}, agreement {agree:.2f}, "
        f"dev FR change {clone_dev:.4f} (greedy {greedy_dev:.4f})",
        flush=True,
    )
    options = validate(
        {
            "lr": 1e-3,
            "batch_size": a.batch,
            "group_size": a.group,
            "baseline": "group",
            "train_scenarios": 64,
            "iterations": a.iterations,
            "epochs": 1,
            "minibatches": 2,
            "entropy_coef": 0.001,
            "dev_scenarios": 8,
            "eval_every": 5,
            "lr_decay": False,
            "time_limit": a.minutes * 60,
            "max_grad_norm": 0.5,
        },
        ppo.OPTIONS,
        "benchmarks/vm_train_gnn.py",
    )
    options["_start_info"] = {"clone_nll": nll, "clone_agreement": agree}
    ctx = SolveContext(seed=a.seed, progress=True, log=lambda m: print(m, flush=True))
    ac, curve = ppo.train(problem, ac, options, ctx)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ac.state_dict(), a.out)
    best = min(curve, key=lambda e: e["dev_cost"])
    meta = {
        "width": a.width,
        "layers": a.layers,
        "trained_on": f"synthetic Medium, MNL {a.mnl}",
        "clone": {"states": n, "steps": a.clone_steps, "nll": nll, "agreement": agree, "dev": clone_dev},
        "greedy_dev": greedy_dev,
        "best_dev": best["dev_cost"],
        "best_iteration": best["iteration"],
        "iterations": curve[-1]["iteration"],
        "seconds": time.perf_counter() - t0,
        "ppo": {k: v for k, v in options.items() if not k.startswith("_")},
    }
    a.out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    if a.quick:
        print(json.dumps(meta, indent=1))
        return
    res = ROOT / "benchmarks" / "results" / "vm_train_curve.json"
    res.write_text(json.dumps({"meta": meta, "curve": curve}, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(
        [e["seconds"] / 60 for e in curve], [e["dev_cost"] for e in curve], marker="o", ms=3, label="two-stage policy"
    )
    ax.axhline(greedy_dev, color="k", ls="--", lw=1, label="greedy")
    ax.set_xlabel("training minutes (one core)")
    ax.set_ylabel(f"dev FR change (MNL {a.mnl})")
    ax.set_title("PPO on synthetic Medium (8 dev snapshots, greedy decoding)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "figures" / "vm_gnn_training.png", dpi=120)
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
