"""Sweeps: the cross product, common test scenarios, numbers against independent references, resuming,
Ctrl-C, and one clear error for each kind of bad input."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from bench_helpers import BASE_STOCK_FIXED, PROBLEM_SET, hdpo_timed, raw_rows, toml_inline, write_sweep

from opsrl import cli
from opsrl.bench.store import ResultsStore
from opsrl.bench.sweep import load_sweep, run_sweep
from opsrl.inventory import dp
from opsrl.registry import load_problem

PROBLEMS = ["inventory/lost_sales_p4_L1", "inventory/lost_sales_p9_L2"]
SOLVERS = ["base_stock_6", "optimal_dp", "hdpo_tiny"]


def test_sweep_records_every_cell_once_with_what_it_did(swept):
    path, sweep, result, messages = swept
    assert result.complete and not result.failed and result.already == 0
    rows = raw_rows(path)
    assert len(rows) == len(sweep.cells) == 2 * 3 * 2
    assert sorted((p, s, seed) for _, p, s, seed, _, _ in rows) == sorted(
        (p, s, seed) for p in PROBLEMS for s in SOLVERS for seed in (0, 1)
    )
    assert len({r[4] for r in rows}) == len(rows)  # one row per cell key
    for _, p, s, seed, key, rec in rows:
        rec = json.loads(rec)
        assert key == rec["cell"]["key"] == f"{p}|{s}|{seed}|{rec['cell']['config_hash']}"
        assert rec["versions"]["torch"] and rec["hardware"]["cpus"] and rec["config"]["solver"]["method"]
        assert rec["train_seconds"] >= 0 and rec["eval_seconds"] >= 0 and rec["sweep"] == "test_sweep"
        assert rec["test"]["n"] == 64 and rec["test"]["periods"] == 80 and rec["test"]["warmup"] == 10
        if s == "hdpo_tiny":
            assert [e["step"] for e in rec["curve"]] == [3, 6]
            # per-cell progress: one message per evaluation on dev, tagged with its cell
            assert [m.split(":")[0] for k, m in messages if k == key] == ["step 3", "step 6"]
        else:
            assert rec["curve"] == []
    assert {k for k, _ in messages} <= {r[4] for r in rows if r[2] == "hdpo_tiny"}


def test_every_solver_of_a_problem_faces_the_same_test_scenarios(swept):
    path = swept[0]
    by_problem: dict[str, set] = {}
    for _, p, _, _, _, rec in raw_rows(path):
        by_problem.setdefault(p, set()).add(json.loads(rec)["test"]["scenarios_hash"])
    assert all(len(h) == 1 for h in by_problem.values())
    assert len({next(iter(h)) for h in by_problem.values()}) == len(PROBLEMS)


def _lost_sales_base_stock_by_hand(demand: np.ndarray, x0: np.ndarray, level: float, h: float, p: float):
    """Lead time 1, lost sales, order up to ``level`` (Zipkin's timing), simulated in plain numpy.

    Returns the per-period costs, orders and stock on hand at decision time, each ``[n, T]``.
    """
    on_hand = x0.copy()
    costs, orders, stock = [], [], []
    for t in range(demand.shape[1]):
        order = np.maximum(level - on_hand, 0.0)
        stock.append(on_hand)
        orders.append(order)
        d = demand[:, t]
        sales = np.minimum(on_hand, d)
        left = on_hand - sales
        costs.append(h * left + p * (d - sales))
        on_hand = left + order
    return np.stack(costs, 1), np.stack(orders, 1), np.stack(stock, 1)


def test_cells_are_measured_on_the_problem_test_set(swept):
    path = swept[0]
    recs = {(p, s, seed): json.loads(r) for _, p, s, seed, _, r in raw_rows(path)}
    prob = load_problem("inventory/lost_sales_p4_L1", PROBLEM_SET)
    sc = prob.sample(64, "test", 0, 80)
    costs, orders, stock = _lost_sales_base_stock_by_hand(
        sc["demand"].double().numpy(), sc["initial"][:, 0].double().numpy(), BASE_STOCK_FIXED["level"], 1.0, 4.0
    )
    by_hand = float(costs[:, 10:].mean(1).mean())
    for seed in (0, 1):
        rec = recs[("inventory/lost_sales_p4_L1", "base_stock_6", seed)]
        assert rec["test_cost"] == pytest.approx(by_hand, rel=1e-6)
        # the trace the report draws is the first 3 test scenarios, period by period (80 periods: stride 1)
        tr = rec["trace"]
        assert tr["scenarios"] == 3 and tr["stride"] == 1 and tr["t"] == list(range(80)) and tr["warmup"] == 10
        np.testing.assert_allclose(np.array(tr["cost"])[:, :, 0], costs[:3], rtol=1e-4)
        np.testing.assert_allclose(np.array(tr["action"])[:, :, 0], orders[:3], rtol=1e-4)
        np.testing.assert_allclose(np.array(tr["state"]["x"])[:, :, 0], stock[:3], rtol=1e-4)
    for name, (mean, L, p) in {
        "inventory/lost_sales_p4_L1": (5.0, 1, 4.0),
        "inventory/lost_sales_p9_L2": (5.0, 2, 9.0),
    }.items():
        opt = dp.lost_sales_dp(mean, L, p, 1.0).cost
        for seed in (0, 1):
            rec = recs[(name, "optimal_dp", seed)]
            assert rec["reference"]["kind"] == "optimum" and rec["reference"]["value"] == pytest.approx(opt, rel=1e-9)
            assert rec["gap_pct"] == pytest.approx(100 * (rec["test_cost"] - opt) / opt)
            # the optimal policy on 64 x 70 periods is within sampling error of its own long-run cost
            assert abs(rec["test_cost"] - opt) < 4 * rec["test_stderr"]


def test_running_again_skips_finished_cells(swept):
    path, sweep, _, _ = swept
    before = raw_rows(path)
    again = run_sweep(sweep, ResultsStore(path), progress=False)
    assert again.already == len(sweep.cells) and again.recorded == [] and again.complete
    assert raw_rows(path) == before


def test_cli_sweep_named_on_the_command_line_with_progress(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    args = [
        "bench",
        "--problem",
        "inventory/lost_sales_p4_L1",
        "--problem",
        "inventory/backlog_poisson_L3",
        "--solver",
        "optimal_dp",
        "--seeds",
        "0,3",
        "--store",
        str(store),
    ]
    for k, v in PROBLEM_SET.items():
        args += ["--problem-set", f"{k}={v}"]
    assert cli.main(args + ["--progress"]) == 0
    cap = capsys.readouterr()
    assert "4 cells, 0 already recorded, 2 run and recorded, 0 failed" in cap.out
    # optimal_dp refuses the backlog problem: not applicable, not a failure, nothing recorded
    assert "2 cells not applicable" in cap.out and "inventory/backlog_poisson_L3|optimal_dp|0" in cap.out
    assert "sweep" in cap.err and "4/4" in cap.err  # the progress bar over cells
    assert sorted((p, s, seed) for _, p, s, seed, _, _ in raw_rows(store)) == [
        ("inventory/lost_sales_p4_L1", "optimal_dp", 0),
        ("inventory/lost_sales_p4_L1", "optimal_dp", 3),
    ]
    assert cli.main(args + ["-q"]) == 0
    assert "4 cells, 2 already recorded, 0 run and recorded" in capsys.readouterr().out
    assert cli.main(args + ["--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert sum(line.startswith("recorded") and "lost_sales_p4_L1" in line for line in lines) == 2
    assert sum(line.startswith("to run") and "backlog_poisson_L3" in line for line in lines) == 2


def test_bundled_sweep_names_resolve(capsys):
    sweep = load_sweep("inventory_smoke")
    assert sweep.name == "inventory_smoke" and sweep.source.endswith("sweeps/inventory_smoke.toml")
    assert len(sweep.cells) == len(sweep.problems) * len(sweep.solvers) * len(sweep.seeds)
    assert cli.main(["bench", "--list"]) == 0
    assert "inventory_smoke" in capsys.readouterr().out


SLOW = hdpo_timed(3.0)


def _count(store) -> int:
    try:
        con = sqlite3.connect(store, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def test_ctrl_c_keeps_finished_cells_and_the_sweep_resumes(tmp_path):
    text = f"""
problems = ["inventory/lost_sales_p4_L1"]
solvers = ["optimal_dp", {{ name = "hdpo_mlp", label = "hdpo_3s", set = {toml_inline(SLOW)} }}]
seeds = [0]
problem_set = {toml_inline(PROBLEM_SET)}
"""
    sweep_file = write_sweep(tmp_path, "interrupt.toml", text)
    store = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "opsrl.cli", "bench", str(sweep_file), "--store", str(store), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _count(store) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # while the 3-second training cell runs
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGINT, err  # ended as an interrupted program (130 in a shell)
    assert "interrupted; 1 of 2 cells are recorded" in err and "run the same command again" in err
    first = raw_rows(store)
    assert [(p, s) for _, p, s, _, _, _ in first] == [("inventory/lost_sales_p4_L1", "optimal_dp")]

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 cells, 1 already recorded, 1 run and recorded, 0 failed" in done.stdout
    rows = raw_rows(store)
    assert rows[0] == first[0]  # the finished cell was neither rerun nor rewritten
    assert [s for _, _, s, _, _, _ in rows] == ["optimal_dp", "hdpo_3s"] and len({r[4] for r in rows}) == 2


# --- bad input: one clear error each, the store unchanged -------------------------------------------
BAD_SWEEPS = {
    "not_toml": ("problems = [", "not valid TOML"),
    "unknown_key": ('problem = ["inventory/lost_sales_p4_L1"]\nsolvers = ["optimal_dp"]', "key 'problem': unknown key"),
    "negative_seed": (
        'problems = ["inventory/lost_sales_p4_L1"]\nsolvers = ["optimal_dp"]\nseeds = [-1]',
        "key 'seeds'",
    ),
    "seeds_text": ('problems = ["inventory/lost_sales_p4_L1"]\nsolvers = ["optimal_dp"]\nseeds = "all"', "key 'seeds'"),
    "entry_type": ('problems = [3]\nsolvers = ["optimal_dp"]', "key 'problems[0]'"),
    "unknown_problem": (
        'problems = ["inventory/lost_sales_p4_L9"]\nsolvers = ["optimal_dp"]',
        "key 'problems[0]': 'inventory/lost_sales_p4_L9': no such problem",
    ),
    "unknown_solver": (
        'problems = ["inventory/lost_sales_p4_L1"]\nsolvers = ["optimal_dpp"]',
        "did you mean optimal_dp",
    ),
    "duplicate_solver": (
        'problems = ["inventory/lost_sales_p4_L1"]\nsolvers = ["optimal_dp", "optimal_dp"]',
        "key 'solvers[1]': solver 'optimal_dp' is already in the sweep",
    ),
    "bad_option": (
        'problems = ["inventory/lost_sales_p4_L1"]\nsolvers = [{name = "hdpo_mlp", set = {lr = -1}}]',
        "key 'options.lr'",
    ),
    "entry_key": (
        'problems = ["inventory/lost_sales_p4_L1"]\nsolvers = [{name = "optimal_dp", cpus = 2}]',
        "key 'solvers[0].cpus': unknown key",
    ),
    "no_problems": ('problems = []\nsolvers = ["optimal_dp"]', "key 'problems': missing or empty"),
    "bad_problem_set": (
        'problems = ["inventory/lost_sales_p4_L1"]\nsolvers = ["optimal_dp"]\n[problem_set]\nlead_time = -1',
        "key 'lead_time'",
    ),
}


@pytest.fixture
def kept_store(tmp_path):
    store = tmp_path / "kept.sqlite"
    ResultsStore(store).record_cell({"created": "x", "problem": "p", "solver": "s", "seed": 0, "cell": {"key": "k"}})
    return store


@pytest.mark.parametrize("case", sorted(BAD_SWEEPS))
def test_malformed_sweep_file_gives_one_clear_error(case, tmp_path, capsys, kept_store):
    text, expected = BAD_SWEEPS[case]
    path = write_sweep(tmp_path, f"{case}.toml", text)
    before = kept_store.read_bytes()
    assert cli.main(["bench", str(path), "--store", str(kept_store), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("opsrl: error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert str(path) in err
    assert kept_store.read_bytes() == before


@pytest.mark.parametrize(
    "args, expected",
    [
        (["no_such_sweep"], "no such sweep file or bundled sweep"),
        (["inventory_smok"], "did you mean inventory_smoke"),
        (["--problem", "inventory/nope", "--solver", "optimal_dp"], "--problem"),
        (["--problem", "inventory/lost_sales_p4_L1", "--solver", "nope"], "no such solver"),
        (["--problem", "inventory/lost_sales_p4_L1", "--solver", "optimal_dp", "--seeds", "x"], "--seeds"),
        (["--problem", "inventory/lost_sales_p4_L1"], "give --problem and --solver"),
    ],
)
def test_bad_command_line_gives_one_clear_error(args, expected, tmp_path, capsys, kept_store):
    before = kept_store.read_bytes()
    fresh = tmp_path / "never.sqlite"
    for store in (kept_store, fresh):
        assert cli.main(["bench", *args, "--store", str(store), "-q"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
    assert kept_store.read_bytes() == before and not fresh.exists()


def test_ray_executor_without_ray_is_one_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    store = tmp_path / "s.sqlite"
    assert (
        cli.main(
            [
                "bench",
                "--problem",
                "inventory/lost_sales_p4_L1",
                "--solver",
                "optimal_dp",
                "-q",
                "--store",
                str(store),
                "--executor",
                "ray",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs Ray" in err and "opsrl[ray]" in err and not store.exists()


def test_a_cell_whose_configuration_changed_after_loading_is_not_recorded(tmp_path):
    solver = tmp_path / "bs.toml"
    solver.write_text('method = "base_stock"\n[options]\nlevel = 6.0\n')
    sweep = load_sweep(
        problems=["inventory/lost_sales_p4_L1"], solvers=[str(solver)], seeds=[0], problem_set=PROBLEM_SET
    )
    solver.write_text('method = "base_stock"\n[options]\nlevel = 7.0\n')  # edited while the sweep waits
    store = ResultsStore(tmp_path / "s.sqlite")
    res = run_sweep(sweep, store, progress=False, log=lambda m: None)
    assert len(res.failed) == 1 and "changed since the sweep started" in res.failed[0][1]
    assert raw_rows(store.path) == []
    # loaded again, the sweep is the new experiment and runs
    res = run_sweep(
        load_sweep(problems=["inventory/lost_sales_p4_L1"], solvers=[str(solver)], seeds=[0], problem_set=PROBLEM_SET),
        store,
        progress=False,
    )
    assert res.complete and [json.loads(r[5])["info"]["level"] for r in raw_rows(store.path)] == [7.0]
