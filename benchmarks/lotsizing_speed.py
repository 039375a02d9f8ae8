"""Environment steps per second: the batched lot-sizing simulator against a one-environment NumPy
re-implementation of the authors' ``SimplePlant`` step (:mod:`opsrl.lotsizing.numpy_env`), same instance, same
pre-drawn random allowed actions, in one run (one thread).

    python benchmarks/lotsizing_speed.py --problem i25_m15 --out benchmarks/results/lotsizing_speed.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from opsrl.lotsizing.numpy_env import PlantEnv
from opsrl.registry import load_problem


def actions(p, n, T, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, p.K, (n, T, p.M), generator=g)
    ok = p.allowed[torch.arange(p.M), x]  # [n, T, M]
    return torch.where(ok, x, torch.zeros_like(x))


def torch_steps_per_s(p, n, T, device="cpu", repeats=3):
    sc = p.sample(n, "test", 0, periods=T, device=device)
    acts = actions(p, n, T).to(device)
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            if device != "cpu":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            s = p.initial_state(sc)
            for t in range(T):
                post, _ = p.post_decision(s, acts[:, t])
                s, _ = p.transition(post, sc, t)
            if device != "cpu":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
    return n * T / best


def numpy_steps_per_s(p, n, T):
    sc = p.sample(n, "test", 0, periods=T)
    acts = actions(p, n, T).numpy()
    env = PlantEnv(p.inst)
    t0 = time.perf_counter()
    for b in range(n):
        env.reset(sc["inventory0"][b].numpy(), sc["setup0"][b].numpy(), sc["demand"][b].numpy())
        for t in range(T):
            env.step(acts[b, t])
    return n * T / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", default="i25_m15")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 64, 1024, 8192])
    ap.add_argument("--numpy-episodes", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/results/lotsizing_speed.json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    p = load_problem(f"lotsizing/{a.problem}")
    T = p.periods
    res = {
        "problem": a.problem,
        "periods": T,
        "threads": 1,
        "device": a.device,
        "numpy_one_env_steps_per_s": numpy_steps_per_s(p, a.numpy_episodes, T),
        "batched": {},
    }
    for n in a.batches:
        res["batched"][str(n)] = torch_steps_per_s(p, n, T, a.device)
    base = res["numpy_one_env_steps_per_s"]
    print(f"{a.problem}: NumPy one environment {base:,.0f} steps/s")
    for n, v in res["batched"].items():
        print(f"  batched, {n:>5} scenarios: {v:,.0f} steps/s ({v / base:.1f}x)")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
