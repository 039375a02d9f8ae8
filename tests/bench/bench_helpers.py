"""Small sweeps for the bench tests: tiny test sets and a few-step HDPO so that cells take a second."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# every problem's test set in these tests: 64 scenarios of 80 periods, 10 of them warm-up
PROBLEM_SET = {"test.scenarios": 64, "test.periods": 80, "test.warmup": 10}
HDPO_TINY = {
    "max_steps": 6,
    "eval_every": 3,
    "patience": 0,
    "batch_size": 16,
    "train_scenarios": 64,
    "dev_scenarios": 32,
    "dev_periods": 40,
    "train_periods": 30,
    "threads": 1,
    "policy.hidden": [8],
}


def hdpo_timed(seconds: float) -> dict:
    """HDPO_TINY stopped by a training time limit of ``seconds`` instead of a step count (a cell that takes a
    while, for interrupting and killing)."""
    return {**HDPO_TINY, "max_steps": 100000, "eval_every": 20, "time_limit": seconds}


# a level of 6 on Poisson(5) demand with lead time 1: no search, so the cell is instant and exact to check
BASE_STOCK_FIXED = {"level": 6.0}

SWEEP_TOML = """
description = "bench test sweep"
problems = ["inventory/lost_sales_p4_L1", "inventory/lost_sales_p9_L2"]
solvers = [
    {{ name = "base_stock", label = "base_stock_6", set = {{ level = 6.0 }} }},
    "optimal_dp",
    {{ name = "hdpo_mlp", label = "hdpo_tiny", set = {hdpo} }},
]
seeds = [0, 1]

[problem_set]
"test.scenarios" = 64
"test.periods" = 80
"test.warmup" = 10
"""


def toml_inline(d: dict) -> str:
    def val(v):
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v) if not isinstance(v, str) else f'"{v}"'

    return "{ " + ", ".join(f'"{k}" = {val(v)}' for k, v in d.items()) + " }"


def write_sweep(tmp_path: Path, name: str = "test_sweep.toml", text: str | None = None) -> Path:
    path = tmp_path / name
    path.write_text(text if text is not None else SWEEP_TOML.format(hdpo=toml_inline(HDPO_TINY)))
    return path


def raw_rows(store: Path) -> list[tuple]:
    """The store's rows read with plain sqlite3, independently of opsrl's store code."""
    con = sqlite3.connect(store)
    try:
        return con.execute("SELECT id, problem, solver, seed, cell_key, record FROM runs ORDER BY id").fetchall()
    finally:
        con.close()
