"""Stable-Baselines3 training through the opsrl adapters, evaluated by opsrl on the test split.

    python benchmarks/envs_train.py [--task inventory|jobshop|all] [--steps N] [--seed S] [--threads 1]

1. ``inventory``: SB3 PPO (Gaussian actions on the order quantity, rounded by the adapter as opsrl's own
   evaluation rounds) on ``inventory/lost_sales_p4_L1`` through :class:`opsrl.envs.SB3VecEnv`; the trained
   model is handed to the runner's path with :func:`opsrl.envs.external_solver` and evaluated on the test split
   (8192 scenarios of 600 periods, 100 warm-up), against the DP optimum (relative value iteration). Goal: within
   5% of the optimum.
2. ``jobshop``: sb3-contrib MaskablePPO (``MultiInputPolicy`` on the Dict observation with the action mask) on
   ``jobshop/ft06``; its greedy makespan against the random masked policy (mean of 200 episodes), the optimum
   55 and the best dispatching rule.

Everything is seeded (the adapter's scenarios, SB3's seed, one torch thread count), so a run repeats on the same
machine. Prints one line per task; ``--json FILE`` also writes them.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from opsrl.bench.external import external_solver
from opsrl.core import SolveContext, evaluate
from opsrl.envs.sb3 import SB3VecEnv
from opsrl.registry import family, load_problem


def evaluate_external(problem, model) -> tuple[float, float]:
    """The runner's evaluation of an external model: fit -> SolveOutcome.policy -> evaluate on the test split."""
    outcome = external_solver(model, name="sb3").fit(problem, {}, {}, SolveContext())
    ev = evaluate(problem, outcome.policy, problem.test_set(), warmup=problem.test_warmup)
    return ev.mean, ev.stderr


def inventory(steps: int, seed: int) -> dict:
    from stable_baselines3 import PPO

    p = load_problem("inventory/lost_sales_p4_L1")
    opt = family(p.family).reference(p).value
    # reward_scale 0.1: costs of a few units per period become rewards of order 1 (SB3's defaults expect that)
    # SB3 needs a finite box: orders up to 20 (Poisson(5) demand, lead time 1: the optimal orders stay far below)
    env = SB3VecEnv(p, 256, "train", seed, periods=p.periods, reward_scale=0.1, action_bounds=(0, 20))
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=50,
        batch_size=1600,
        n_epochs=10,
        learning_rate=1e-3,
        gamma=0.99,
        gae_lambda=0.95,
        policy_kwargs=dict(net_arch=[64, 64], log_std_init=0.5),
        seed=seed,
        device="cpu",
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    train_s = time.perf_counter() - t0
    mean, se = evaluate_external(p, model)
    return {
        "task": "inventory/lost_sales_p4_L1 SB3 PPO",
        "steps": steps,
        "train_seconds": round(train_s, 1),
        "test_cost": mean,
        "test_stderr": se,
        "dp_optimum": opt,
        "gap_pct": 100 * (mean / opt - 1),
    }


def random_makespan(problem, episodes: int, seed: int) -> float:
    """Mean makespan of the uniformly random masked policy over ``episodes`` test episodes."""
    from opsrl.envs.gym_env import VectorEnv

    env = VectorEnv(problem, episodes, "test", problem.test_seed)
    rng = np.random.default_rng(seed)
    env.reset()
    total = np.zeros(episodes)
    for _ in range(env.batch.periods):
        m = env.action_masks()
        a = np.array([rng.choice(np.flatnonzero(row)) for row in m])
        _, r, *_ = env.step(a)
        total -= r
    return float(total.mean())


def jobshop(steps: int, seed: int) -> dict:
    from sb3_contrib import MaskablePPO

    p = load_problem("jobshop/ft06")
    env = SB3VecEnv(p, 16, "train", seed)
    model = MaskablePPO(
        "MultiInputPolicy",
        env,
        n_steps=144,
        batch_size=576,
        n_epochs=10,
        learning_rate=1e-3,
        gamma=1.0,
        gae_lambda=0.95,
        ent_coef=0.01,
        policy_kwargs=dict(net_arch=[64, 64]),
        seed=seed,
        device="cpu",
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    train_s = time.perf_counter() - t0
    mean, _ = evaluate_external(p, model)
    rand = random_makespan(p, 200, seed)
    ref = family(p.family).reference(p)
    return {
        "task": "jobshop/ft06 sb3-contrib MaskablePPO",
        "steps": steps,
        "train_seconds": round(train_s, 1),
        "test_makespan": mean,
        "random_makespan": rand,
        "optimum": ref.value if ref else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=("inventory", "jobshop", "all"), default="all")
    ap.add_argument("--steps", type=int, default=0, help="training steps (default: 500000 inventory, 60000 jobshop)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: several threads on a busy machine fight)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = []
    if args.task in ("inventory", "all"):
        out.append(inventory(args.steps or 500_000, args.seed))
        print(json.dumps(out[-1]), flush=True)
    if args.task in ("jobshop", "all"):
        out.append(jobshop(args.steps or 60_000, args.seed))
        print(json.dumps(out[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
