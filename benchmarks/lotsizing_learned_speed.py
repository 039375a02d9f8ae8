"""Speed of the item-machine network on a CPU: one forward pass over all rows against cache-sized blocks.

The network's pair tensors are ``rows x M x I x width``; a rollout step of 64 states x 12 candidates x 8
paths puts 6,144 rows through it at once, about 350 MB per tensor on 30 x 15, far out of cache.
:meth:`opsrl.lotsizing.learned.ItemMachinePolicy.block_rows` cuts such a batch into blocks of about
``CPU_BLOCK`` numbers per tensor. Two measurements, each side by side with the unblocked pass in one run
(the order alternates, ``--repeats`` times; min and median are printed):

1. ``forward``: microseconds per row of the shipped network at several block sizes;
2. ``label``: one policy-iteration labelling call as ``benchmarks/lotsizing_learned.py`` makes it (64 states
   x 12 candidates x 8 paths x 16 periods), blocked against unblocked, and whether both chose the same labels.

    python benchmarks/lotsizing_learned_speed.py --sizes i25_m15 i30_m15 --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from opsrl.algos import rollout_pi as rpi
from opsrl.core import rollout
from opsrl.lotsizing import learned
from opsrl.lotsizing.rules import CoverRule, search_cover
from opsrl.registry import load_problem


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def forward(net, x, block: int) -> None:
    with torch.no_grad():
        for i in range(0, x.shape[0], block):
            net.masked_logits(x[i : i + block])


def label_call(p, net, rule, seed: int, states: int) -> tuple:
    """One labelling call at period 8 of ``states`` training states (the training script's candidates but the
    MIP's): the time and the labels."""
    sc = p.sample(states, "train", seed)
    with torch.no_grad():
        st = rollout(p, net, sc, record=True).states[8]
    keep = lambda s, t: s["setup"].argmax(-1).unsqueeze(1)  # noqa: E731
    cands = rpi.candidate_fn(p, [net, rule], [keep], net, 3, seed)
    t0 = time.perf_counter()
    y = rpi.label_states(p, net, st, 8, cands, 16, 8, 1, seed, 64)
    return time.perf_counter() - t0, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["i25_m15", "i30_m15"])
    ap.add_argument("--blocks", nargs="+", type=int, default=[32, 64, 128, 256, 1024])
    ap.add_argument("--rows", type=int, default=6144, help="rows of the forward measurement")
    ap.add_argument("--states", type=int, default=64, help="states of the labelling measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = {"threads": a.threads, "cpu_block": learned.CPU_BLOCK, "sizes": {}}
    for name in a.sizes:
        p = load_problem(f"lotsizing/{name}")
        net = learned.load(p)
        x = net.features(p.initial_state(p.sample(a.rows, "train", 0)), 3)
        with torch.no_grad():
            default = net.block_rows(x)
        res = {"default_block": default, "forward_us_per_row": {}}
        blocks = sorted({*a.blocks, default, a.rows})
        forward(net, x, blocks[0])  # warm up
        times = {b: [] for b in blocks}
        for r in range(a.repeats):
            for b in blocks if r % 2 == 0 else blocks[::-1]:
                times[b].append(timed(lambda b=b: forward(net, x, b)) / a.rows * 1e6)
        for b in blocks:
            mark = " (default)" if b == default else " (one pass)" if b == a.rows else ""
            print(
                f"{name} forward, block {b:5d} rows{mark}: min {min(times[b]):6.1f} us/row, "
                f"median {statistics.median(times[b]):6.1f}"
            )
            res["forward_us_per_row"][b] = {"min": min(times[b]), "median": statistics.median(times[b])}
        best, _ = search_cover(p, p.sample(256, "dev", 0))
        rule = CoverRule(p, best["low"], best["high"])
        lab = {"blocked": [], "one pass": []}
        ys = {}
        saved = learned.CPU_BLOCK
        for r in range(a.repeats):
            for mode in ("blocked", "one pass") if r % 2 == 0 else ("one pass", "blocked"):
                learned.CPU_BLOCK = saved if mode == "blocked" else 2**62
                s, ys[mode] = label_call(p, net, rule, r, a.states)
                lab[mode].append(s)
            same = float((ys["blocked"] == ys["one pass"]).all(1).float().mean())
            print(f"{name} labelling repeat {r}: same labels on {same:.0%} of states")
        learned.CPU_BLOCK = saved
        for mode, v in lab.items():
            print(
                f"{name} labelling {a.states} states, {mode}: min {min(v):.1f} s, median {statistics.median(v):.1f} s"
            )
        speed = min(lab["one pass"]) / min(lab["blocked"])
        print(f"{name} labelling speed-up (min over min): {speed:.2f}x")
        res["label_seconds"] = {k: {"min": min(v), "median": statistics.median(v)} for k, v in lab.items()}
        res["label_speedup"] = speed
        out["sizes"][name] = res
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
