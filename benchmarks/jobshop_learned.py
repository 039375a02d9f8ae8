"""Policy iteration by rollouts for the job-shop dispatcher: the shipped GNN (``gnn_greedy``) relabelled by its
own rollout policy on random Taillard-style instances, then fine-tuned on the labels.

Each iteration: the current network dispatches ``--instances`` fresh random ``--size`` x ``--size`` instances
greedily; at ``--decisions`` random dispatching steps (those with two or more dispatchable jobs) the rollout
step of :mod:`opsrl.algos.rollout_pi` tries the network's ``--top`` most likely jobs, each finished by the
greedy network to the end of the schedule on the instance itself (a job shop is deterministic: one path, the
state's own processing times, as in ``benchmarks/jobshop_rollout.py``) and labels the state with the shortest;
the network takes cross-entropy steps on every label so far. ``--horizon H --tail T``: rollouts of ``H``
dispatches, then the makespan lower bound where they stop (``T = bound``) or a dispatching rule finishing the
schedule (``T = mwkr`` ...). The network with the least greedy makespan on ``--dev`` random dev instances is
kept (the start, unless one beats it); the Taillard 15x15 gap (ta01-ta10, never used to choose) is recorded
after every iteration.

    python benchmarks/jobshop_learned.py --minutes 30 --out benchmarks/results/jobshop_learned
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from jobshop_rollout import add_cut_args, check_cut_args, make_tail, own_instance
from jobshop_train_gnn import generated

from opsrl.algos import rollout_pi as rpi
from opsrl.core import evaluate
from opsrl.jobshop import dispatcher, instances
from opsrl.registry import load_problem

OUT = Path(__file__).parent / "results" / "jobshop_learned"
TAILLARD = [f"ta{i:02d}" for i in range(1, 11)]


def taillard_gap(weights: dict, nets: dict) -> float:
    """Mean greedy gap (%) to the best known makespans of the network with ``weights``."""
    gaps = []
    with torch.no_grad():
        for name, net in nets.items():
            net.load_state_dict(weights)
            ms = evaluate(net.problem, net, net.problem.test_set()).mean
            best = float(instances.best_known(name))
            gaps.append(100 * (ms - best) / best)
    return sum(gaps) / len(gaps)


def label(net, problem, sc, decisions: int, top: int, g: torch.Generator, horizon: int = 0, tail: str = ""):
    """Encoded states and their rollout labels (the best of the network's ``top`` jobs) at ``decisions``
    random dispatching steps of the network's own greedy schedules on ``sc``."""
    end = make_tail(problem, tail)
    step = rpi.RolloutStep(problem, net, horizon or problem.periods, 1, paths_fn=own_instance, tail=end)
    when = set(torch.randperm(problem.periods, generator=g)[:decisions].tolist())
    feats, ys, changed = [], [], 0
    with torch.no_grad():
        state = problem.initial_state(sc)
        for t in range(problem.periods):
            logits = net.decision_logits(state, t)
            if t in when:
                keep = (problem.action_mask(state).sum(1) >= 2).nonzero()[:, 0]
                if keep.numel():
                    sub = {k: v[keep] if isinstance(v, torch.Tensor) and v.dim() else v for k, v in state.items()}
                    cands = logits[keep].topk(min(top, logits.shape[1]), 1).indices.unsqueeze(-1)  # greedy first
                    _, choice = step.choose(sub, t, cands)
                    y = cands[torch.arange(keep.numel()), choice, 0]
                    changed += int((choice > 0).sum())
                    f = net.encode(state, t)
                    feats.append({k: v[keep] for k, v in f.items()})
                    ys.append(y)
            action = net.to_action(net.head.distribution(logits).mode())
            state, _ = problem.transition(problem.post_decision(state, action)[0], sc, t)
    return feats, ys, changed


def fit(net, feats, ys, steps: int, lr: float, batch: int, g: torch.Generator) -> float:
    f = {k: torch.cat([d[k] for d in feats]) for k in feats[0]}
    y = torch.cat(ys)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        j = torch.randint(y.shape[0], (min(batch, y.shape[0]),), generator=g)
        logits = net.evaluate({k: v[j] for k, v in f.items()})[0].logits.reshape(j.numel(), -1)
        loss = torch.nn.functional.cross_entropy(logits, y[j])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    net.eval()
    return float(loss.detach())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=15, help="n for the n x n training instances")
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--instances", type=int, default=16, help="fresh training instances per iteration")
    ap.add_argument("--decisions", type=int, default=48, help="dispatching steps labelled per instance schedule")
    ap.add_argument("--top", type=int, default=3, help="candidates per state: the network's most likely jobs")
    add_cut_args(ap)
    ap.add_argument("--steps", type=int, default=200, help="cross-entropy minibatch steps per iteration")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--dev", type=int, default=32, help="random dev instances the kept network is chosen on")
    ap.add_argument("--minutes", type=float, default=30.0, help="start no iteration after this many minutes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    for key in ("size", "iterations", "instances", "decisions", "top", "steps", "batch", "dev"):
        if getattr(a, key) < 1:
            ap.error(f"--{key} must be a positive integer; got {getattr(a, key)}")
    check_cut_args(ap, a)
    if not 0 < a.lr <= 1:
        ap.error(f"--lr must be in (0, 1]; got {a.lr}")
    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    log_file = (a.out / "train.log").open("a")

    def log(msg):
        line = f"[{time.perf_counter() - t_start:7.0f} s] {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    problem = generated(a.size, a.size)
    tai = {n: dispatcher.load(load_problem(f"jobshop/{n}")) for n in TAILLARD}  # a network bound to each
    net = dispatcher.load(problem)
    dev = problem.sample(a.dev, "dev", a.seed)

    def dev_cost():
        with torch.no_grad():
            return evaluate(problem, net, dev).mean

    best_dev, best = dev_cost(), copy.deepcopy(net.state_dict())
    gap0 = taillard_gap(net.state_dict(), tai)
    curve = {
        "args": {k: str(v) for k, v in vars(a).items()},
        "stages": [{"iteration": 0, "dev": best_dev, "taillard_gap_pct": gap0, "labels": 0}],
    }
    log(f"start (shipped gnn_greedy): dev {best_dev:.1f}, Taillard gap {gap0:.2f} %")
    g = torch.Generator().manual_seed(a.seed)
    feats, ys = [], []
    for it in range(1, a.iterations + 1):
        if time.perf_counter() - t_start > 60 * a.minutes:
            log(f"time budget of {a.minutes:g} minutes spent: no iteration {it}")
            break
        t0 = time.perf_counter()
        sc = problem.sample(a.instances, "train", a.seed * 1009 + it)
        f, y, changed = label(net, problem, sc, a.decisions, a.top, g, a.horizon, a.tail)
        feats += f
        ys += y
        n_labels = sum(int(v.numel()) for v in ys)
        loss = fit(net, feats, ys, a.steps, a.lr, a.batch, g)
        d = dev_cost()
        if d < best_dev:
            best_dev, best = d, copy.deepcopy(net.state_dict())
            torch.save(best, a.out / "best.pt")
        gap = taillard_gap(net.state_dict(), tai)
        new = sum(int(v.numel()) for v in y)
        curve["stages"].append(
            {
                "iteration": it,
                "dev": d,
                "best_dev": best_dev,
                "taillard_gap_pct": gap,
                "labels": n_labels,
                "changed": changed,
                "loss": loss,
                "seconds": time.perf_counter() - t0,
            }
        )
        (a.out / "curve.json").write_text(json.dumps(curve, indent=1))
        log(
            f"iteration {it}: {new} labels ({changed} not the greedy job), loss {loss:.3f}, dev {d:.1f} "
            f"(best {best_dev:.1f}), Taillard gap {gap:.2f} % ({time.perf_counter() - t0:.0f} s)"
        )
    net.load_state_dict(best)
    curve["best"] = {"dev": best_dev, "taillard_gap_pct": taillard_gap(net.state_dict(), tai)}
    (a.out / "curve.json").write_text(json.dumps(curve, indent=1))
    log(f"kept: dev {best_dev:.1f}, Taillard gap {curve['best']['taillard_gap_pct']:.2f} %")


if __name__ == "__main__":
    main()
