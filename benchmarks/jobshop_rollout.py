"""Rollouts over the shipped GNN dispatcher (``gnn_greedy``) on Taillard instances: the rollout step of
:mod:`opsrl.algos.rollout_pi` with the network's ``--top`` most likely jobs as candidates, each finished by
the greedy network to the end of the schedule (deterministic instances: one path, the instance itself).

The continuation of a job shop is its own instance, not a fresh draw: ``paths_fn`` hands every candidate the
state's own processing times. Prints the gap to the best known makespan per instance and the mean, next to
the network's greedy gap. ``--horizon H --tail bound``: rollouts of ``H`` dispatches, then the makespan lower
bound of the state where they stop (``problem.cost_to_go_bound``); ``--tail mwkr``: then the rule finishes the
schedule (a rule's dispatch costs far less than the network's).

    python benchmarks/jobshop_rollout.py --instances ta01 ta02 ta03 ta04 ta05 ta06 ta07 ta08 ta09 ta10 --top 3 \
        --json benchmarks/results/jobshop_rollout_ta15.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from opsrl.algos import rollout_pi as rpi
from opsrl.core import Scenarios, evaluate
from opsrl.jobshop import dispatcher, instances
from opsrl.jobshop.rules import RULES, DispatchRule
from opsrl.registry import load_problem


def own_instance(state, t, n_paths, rnd):
    """Continuations of a deterministic job shop: the state's own processing times, ``n_paths`` times."""
    d = state["duration"].repeat_interleave(n_paths, 0)
    return Scenarios({"realized": d}, "train", 0, int(d.shape[1] * d.shape[2]))


def add_cut_args(ap: argparse.ArgumentParser) -> None:
    """``--horizon`` and ``--tail``: rollouts cut short, and what finishes them."""
    ap.add_argument("--horizon", type=int, default=0, help="dispatches per rollout (0: to the end of the schedule)")
    ap.add_argument(
        "--tail",
        default="",
        choices=["", "bound", *RULES],
        help="what a rollout cut short by --horizon adds: 'bound' (the makespan lower bound where it stops) or a "
        "dispatching rule that finishes the schedule; '': nothing",
    )


def check_cut_args(ap: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    if a.horizon < 0:
        ap.error(f"--horizon must be >= 0 (0: to the end); got {a.horizon}")


def make_tail(problem, tail: str):
    """``--tail``: '' (none), 'bound' (the makespan lower bound) or a dispatching rule finishing the schedule."""
    if not tail:
        return None
    return rpi.bound_tail(problem) if tail == "bound" else rpi.policy_tail(problem, DispatchRule(tail))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", nargs="+", default=[f"ta{i:02d}" for i in range(1, 11)])
    ap.add_argument("--top", type=int, default=3, help="candidates per decision: the network's most likely jobs")
    add_cut_args(ap)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    check_cut_args(ap, a)
    torch.set_num_threads(1)
    rows = []
    for name in a.instances:
        p = load_problem(f"jobshop/{name}")
        test = p.test_set()
        net = dispatcher.load(p)
        t0 = time.perf_counter()
        greedy = evaluate(p, net, test).mean

        def cands(state, t, net=net):
            logits = net.decision_logits(state, t)
            return logits.topk(min(a.top, logits.shape[1]), 1).indices.unsqueeze(-1)  # [B, K, 1], greedy first

        horizon = a.horizon or p.periods
        tail = make_tail(p, a.tail)
        pol = rpi.RolloutPolicy(p, net, cands, horizon=horizon, paths=1, paths_fn=own_instance, tail=tail)
        t1 = time.perf_counter()
        roll = evaluate(p, pol, test).mean
        secs = time.perf_counter() - t1
        best = float(instances.best_known(name))
        row = {
            "instance": name,
            "best_known": best,
            "greedy": greedy,
            "rollout": roll,
            "greedy_gap_pct": 100 * (greedy - best) / best,
            "rollout_gap_pct": 100 * (roll - best) / best,
            "rollout_seconds": secs,
            "greedy_seconds": t1 - t0,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    g, r = np.mean([x["greedy_gap_pct"] for x in rows]), np.mean([x["rollout_gap_pct"] for x in rows])
    secs = np.mean([x["rollout_seconds"] for x in rows])
    how = f"horizon {a.horizon}{' + ' + a.tail if a.tail else ''}" if a.horizon else "to the end"
    print(f"mean gap: greedy {g:.2f} %, rollout (top {a.top}, {how}) {r:.2f} %, {secs:.1f} s per instance", flush=True)
    if a.json:
        out = {"top": a.top, "horizon": a.horizon, "tail": a.tail, "rows": rows, "greedy_gap_pct": g}
        out.update(rollout_gap_pct=r, rollout_seconds_mean=secs)
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
