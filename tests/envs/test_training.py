"""It really trains: SB3 PPO and sb3-contrib MaskablePPO through the adapters, measured by opsrl on the test split.

The budgets and settings are those of benchmarks/envs_train.py (run there in full); the references are the DP
optimum (relative value iteration) and the random masked policy on the same test episode. Seeded, one torch
thread: the same result on every run on one machine.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

pytest.importorskip("sb3_contrib")

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "envs_train.py"
_spec = importlib.util.spec_from_file_location("envs_train", _PATH)
envs_train = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(envs_train)


@pytest.mark.slow
def test_sb3_ppo_on_lost_sales_within_5_percent_of_the_dp_optimum():
    torch.set_num_threads(1)
    r = envs_train.inventory(500_000, seed=0)  # about 30 s of training on a busy 2-core machine
    assert r["gap_pct"] < 5.0, r


def test_maskable_ppo_on_ft06_beats_the_random_policy():
    torch.set_num_threads(1)
    r = envs_train.jobshop(40_000, seed=0)  # about 10 s
    assert r["random_makespan"] > 65.0  # 68.4: the mean of 200 random masked schedules
    assert r["test_makespan"] <= r["random_makespan"] - 6.0, r
    assert r["test_makespan"] >= r["optimum"]  # 55, proven by CP-SAT (tests/jobshop/test_jobshop_cpsat.py)
