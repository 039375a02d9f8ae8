"""A pathwise (HDPO-style) trainer for the GNN dispatcher through a relaxed dispatch, against PPO.

The dispatch is a straight-through Gumbel-softmax sample ``y`` (one-hot forward, softmax gradient) over the
allowed jobs. Next to the exact simulator (which builds the graph the network reads), a relaxed copy of
the times carries the gradient: start ``s = sum_j y_j est_j``, end ``e = s + sum_j y_j p_j``, the
chosen job's and machine's ready times move to ``e`` in proportion to ``y``, makespan ``max(makespan, e)``;
forward values equal the exact simulator's. The loss is the mean makespan of a batch; its gradient
reaches the logits through every later start time (no score-function term).

Both trainers start from the same untrained network, get the same CPU time on random n x n Taillard-
generator instances, and are compared on 64 dev instances (greedy):

    python benchmarks/jobshop_pathwise.py --size 6 --minutes 4
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from opsrl.algos import ppo
from opsrl.core import SolveContext, evaluate, validate
from opsrl.jobshop import JobShop
from opsrl.nn.gnn_dispatch import GraphActorCritic

ROOT = Path(__file__).resolve().parent.parent


def pathwise(ac, problem, minutes, batch, lr, tau, dev, seed, log):
    opt = torch.optim.Adam(ac.parameters(), lr=lr)
    t0, it, curve = time.perf_counter(), 0, []
    best, best_state = float("inf"), copy.deepcopy(ac.state_dict())
    while time.perf_counter() - t0 < 60 * minutes:
        it += 1
        sc = problem.sample(batch, "train", seed * 1000 + it)
        state = problem.initial_state(sc)
        B = sc.n
        jr = state["job_ready"].clone().masked_fill(~torch.isfinite(state["job_avail"]), 0.0)
        mr = state["mach_ready"].clone()
        ms = torch.zeros(B)
        for t in range(problem.periods):
            with torch.no_grad():
                f = ac.encode(state, t)
            logits = ac.distribution(f).logits.reshape(B, -1)
            g = -torch.log(-torch.log(torch.rand_like(logits).clamp_min(1e-10)))
            soft = ((logits + g) / tau).softmax(-1)
            hard = torch.zeros_like(soft).scatter(1, soft.argmax(1, keepdim=True), 1.0)
            y = hard + soft - soft.detach()
            live = state["mask"].any(1)
            m = state["m_next"]
            est = torch.maximum(jr, mr.gather(1, m))
            est = torch.where(state["mask"], est, torch.zeros_like(est))
            s = (y * est).sum(1)
            e = s + (y * state["p_next"]).sum(1)
            yl = y * live[:, None]
            jr = jr + yl * (e[:, None] - jr)
            ym = torch.zeros_like(mr).scatter_add(1, m, yl)
            mr = mr + ym * (e[:, None] - mr)
            ms = torch.where(live, torch.maximum(ms, e), ms)
            a = hard.argmax(1)
            state, _ = problem.transition(problem.post_decision(state, a)[0], sc, t)
        assert torch.allclose(ms.detach(), state["makespan"])  # the relaxed times are the exact ones
        loss = (ms / state["scale"]).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ac.parameters(), 1.0)
        opt.step()
        if it % 5 == 0:
            d = evaluate(problem, ac, dev).mean
            curve.append(
                {
                    "iteration": it,
                    "seconds": time.perf_counter() - t0,
                    "dev_cost": d,
                    "train_makespan": float(ms.mean()),
                }
            )
            if d < best:
                best, best_state = d, copy.deepcopy(ac.state_dict())
            log(f"pathwise {it}: dev {d:.2f} (best {best:.2f})")
    ac.load_state_dict(best_state)
    return curve


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=6)
    ap.add_argument("--minutes", type=float, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--tau", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "jobshop_pathwise.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    problem = JobShop(
        generator_cfg={"kind": "taillard", "jobs": args.size, "machines": args.size, "low": 1, "high": 99}
    )
    dev = problem.sample(64, "dev", args.seed)
    log = lambda m: print(m, flush=True)
    init = GraphActorCritic(problem, 32, 3)
    start = evaluate(problem, init, dev).mean
    ac = copy.deepcopy(init)
    pw = pathwise(ac, problem, args.minutes, args.batch, args.lr, args.tau, dev, args.seed, log)
    ac2 = copy.deepcopy(init)
    o = validate(
        {
            "iterations": 100000,
            "batch_size": args.batch,
            "train_scenarios": 5000,
            "dev_scenarios": 64,
            "eval_every": 5,
            "lr": args.lr,
            "epochs": 2,
            "minibatches": 2,
            "time_limit": 60 * args.minutes,
            "lr_decay": False,
        },
        ppo.OPTIONS,
        "bench",
    )
    _, pc = ppo.train(problem, ac2, o, SolveContext(seed=args.seed, progress=False, log=log))
    res = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "untrained_dev": start,
        "pathwise_best_dev": min(e["dev_cost"] for e in pw),
        "ppo_best_dev": min(e["dev_cost"] for e in pc),
        "pathwise_curve": pw,
        "ppo_curve": [{k: e[k] for k in ("iteration", "seconds", "dev_cost")} for e in pc],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if not k.endswith("curve")}))


if __name__ == "__main__":
    main(sys.argv[1:])
