"""The Ray executor on a local cluster started here: a worker is killed mid-sweep, the sweep completes with
every cell recorded exactly once, and Ray's numbers equal the local executor's."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

ray = pytest.importorskip("ray", reason="the Ray executor needs Ray (pip install 'opsrl[ray]')")
psutil = pytest.importorskip("psutil", reason="killing a Ray worker needs psutil (installed with ray[default])")

from bench_helpers import PROBLEM_SET, hdpo_timed, raw_rows, toml_inline, write_sweep  # noqa: E402

from opsrl.bench.store import ResultsStore  # noqa: E402
from opsrl.bench.sweep import RayExecutor, load_sweep, run_cell, run_sweep  # noqa: E402

TRAIN_2S = hdpo_timed(2.0)


class WorkerKiller(threading.Thread):
    """Kills (SIGKILL) the first Ray worker process seen running a sweep cell."""

    def __init__(self):
        super().__init__(daemon=True)
        self.killed: list[int] = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set() and not self.killed:
            for p in psutil.process_iter(["cmdline"]):
                cmd = p.info["cmdline"] or []
                if cmd and cmd[0].startswith("ray::ray_cell"):
                    try:
                        p.send_signal(signal.SIGKILL)
                    except psutil.Error:
                        continue
                    self.killed.append(p.pid)
                    break
            time.sleep(0.02)


def test_ray_sweep_completes_once_per_cell_after_a_worker_dies(tmp_path):
    text = f"""
problems = ["inventory/lost_sales_p4_L1"]
solvers = [
    {{ name = "hdpo_mlp", label = "hdpo_2s", set = {toml_inline(TRAIN_2S)} }},
    {{ name = "base_stock", label = "base_stock_6", set = {{ level = 6.0 }} }},
    "optimal_dp",
]
seeds = [0, 1]
problem_set = {toml_inline(PROBLEM_SET)}
"""
    sweep = load_sweep(write_sweep(tmp_path, "ray.toml", text))
    store = ResultsStore(tmp_path / "ray.sqlite")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 2**20)
    killer = WorkerKiller()
    try:
        killer.start()
        messages = []
        result = run_sweep(
            sweep,
            store,
            RayExecutor(retries=3),
            progress=False,
            on_message=lambda cell, m: messages.append((cell.id.solver, m)),
        )
    finally:
        killer.stop.set()
        ray.shutdown()
    assert len(killer.killed) == 1  # a worker really died mid-sweep
    assert result.failed == [] and result.complete
    assert len(result.recorded) == len(sweep.cells) == 6
    rows = raw_rows(store.path)
    assert sorted(r[4] for r in rows) == sorted(c.key for c in sweep.cells)  # each cell exactly once

    # the cluster computed what this process computes for the same cells
    recs = {r[4]: json.loads(r[5]) for r in rows}
    for cell in sweep.cells:
        if cell.id.solver in ("base_stock_6", "optimal_dp"):
            local = run_cell(cell.payload())
            assert recs[cell.key]["test_cost"] == pytest.approx(local["test_cost"], rel=1e-9)
            assert recs[cell.key]["test"]["scenarios_hash"] == local["test"]["scenarios_hash"]
    # training progress came back from the workers while the cells ran
    assert {s for s, _ in messages} == {"hdpo_2s"} and all(m.startswith("step ") for _, m in messages)
    assert all(recs[k]["host"] for k in recs) and all(
        len(recs[c.key]["curve"]) >= 1 for c in sweep.cells if c.id.solver == "hdpo_2s"
    )


def test_a_family_suite_runs_unchanged_on_ray(tmp_path):
    """A bundled family suite (jobshop_taillard_quick) as Ray tasks: every cell recorded once, and the
    deterministic cells (rules, the greedy GNN) give the makespans this process computes."""
    sweep = load_sweep("jobshop_taillard_quick")
    store = ResultsStore(tmp_path / "suite.sqlite")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 2**20)
    try:
        result = run_sweep(sweep, store, RayExecutor(retries=1), progress=False)
    finally:
        ray.shutdown()
    assert result.failed == [] and result.complete
    rows = raw_rows(store.path)
    assert sorted(r[4] for r in rows) == sorted(c.key for c in sweep.cells)
    recs = {r[4]: json.loads(r[5]) for r in rows}
    for cell in sweep.cells:
        if cell.id.solver in ("spt", "mwkr", "fdd_mwkr", "gnn_greedy"):
            assert recs[cell.key]["test_cost"] == run_cell(cell.payload())["test_cost"]
