"""Bad input: exit status 2, one message naming the file or flag, the key and what is allowed, no
traceback, and the results store byte for byte as it was (issue 16 and the kinds promised before).

Every case runs the real command line (``opsrl.cli.main``) against a copy of a store that holds one
run, and compares the store's bytes afterwards. Nothing here trains: every case must stop before.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from opsrl import cli

SMALL = ["--problem-set", "test.scenarios=64", "--problem-set", "test.periods=80", "--problem-set", "test.warmup=10"]
P4 = "inventory/lost_sales_p4_L1"

SINGLE = """family = "inventory"
lead_time = {L}
holding_cost = 1.0
shortage_cost = {p}
[demand]
distribution = "poisson"
mean = {mean}
"""


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory):
    """A store with one recorded run (fixed base stock, no search: instant)."""
    path = tmp_path_factory.mktemp("store") / "seeded.sqlite"
    assert cli.main(["run", P4, "base_stock", "--set", "level=6", "-q", "--store", str(path), *SMALL]) == 0
    return path


@pytest.fixture
def store(seeded_store, tmp_path):
    path = tmp_path / "store.sqlite"
    shutil.copy(seeded_store, path)
    return path


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return p


def refused(argv, store: Path, capsys, *words: str, no_train: bool = True, monkeypatch=None) -> str:
    """Run the command; assert exit 2, one line naming ``words`` (file or flag, key, what is allowed), no
    traceback, and the store's bytes unchanged. Returns the message."""
    before = store.read_bytes()
    if monkeypatch is not None and no_train:

        def no_training(*a, **k):
            raise AssertionError("training started although the input is bad")

        monkeypatch.setattr("opsrl.bench.runner.execute", no_training)
    rc = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("opsrl: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert store.read_bytes() == before
    return lines[0]


def run_args(problem, solver, store, *extra):
    return ["run", problem, solver, "-q", "--store", store, *extra]


# --- numbers: inf like NaN, magnitudes, sizes -----------------------------------------------------
@pytest.mark.parametrize(
    "text, key, words",
    [
        (SINGLE.format(L=1, p=4.0, mean="inf"), "demand.mean", "finite"),
        (SINGLE.format(L=1, p=4.0, mean="nan"), "demand.mean", "NaN"),
        (SINGLE.format(L=1, p="inf", mean=5.0), "shortage_cost", "finite"),
        (SINGLE.format(L=1000000000, p=4.0, mean=5.0), "lead_time", "from 0 to 1000"),
        (SINGLE.format(L=1, p=4.0, mean=1e12), "demand.mean", "at most 1e+06"),
        (SINGLE.format(L=1, p=4.0, mean=5.0) + "[test]\nscenarios = 1e12\n", "test.scenarios", "at most 2147483647"),
        (
            SINGLE.format(L=1, p=4.0, mean=5.0) + "[test]\nperiods = 1000000000\n",
            "test.scenarios",
            "lower 'test.scenarios' or 'test.periods'",
        ),
        # kinds promised before: unknown key, wrong type, negative cost
        ("colour = 3\n" + SINGLE.format(L=1, p=4.0, mean=5.0), "colour", "allowed keys here"),
        (SINGLE.format(L="'two'", p=4.0, mean=5.0), "lead_time", "expected an integer"),
        (SINGLE.format(L=1, p=-4.0, mean=5.0), "shortage_cost", "a number > 0"),
    ],
)
def test_bad_problem_file(tmp_path, store, capsys, monkeypatch, text, key, words):
    f = write(tmp_path, "bad.toml", text)
    refused(run_args(f, "base_stock", store), store, capsys, str(f), f"'{key}'", words, monkeypatch=monkeypatch)


@pytest.mark.parametrize(
    "flag, pair, key, words",
    [
        ("--problem-set", "demand.mean=inf", "demand.mean", "finite"),
        ("--problem-set", "test.scenarios=1e12", "test.scenarios", "at most"),
        ("--set", "lr=inf", "options.lr", "finite"),
        ("--set", "lr=1e308", "options.lr", "at most 1e+15"),
        ("--set", "lr=1e3", "options.lr", "at most 10"),
        ("--set", "dev_scenarios=1e12", "options.dev_scenarios", "at most"),
        ("--set", "train_periods=1000000000", "options.train_periods", "at most 10^6"),
        ("--set", "policy.hidden=[1000000000000]", "policy.hidden[0]", "at most"),
        ("--set", "options.lr=abc", "options.lr", "expected a number"),
        ("--set", "max_steps=-3", "options.max_steps", "a positive number of gradient steps"),
    ],
)
def test_bad_override_names_its_flag(store, capsys, monkeypatch, flag, pair, key, words):
    # a policy's keys are checked when the method builds it, before its first step
    msg = refused(
        run_args(P4, "hdpo_mlp", store, flag, pair),
        store,
        capsys,
        f"{flag}: key '{key}'",
        words,
        monkeypatch=monkeypatch,
        no_train=not key.startswith("policy."),
    )
    assert not msg.startswith("opsrl: error: /")  # the flag, not the solver or problem file, is named first


@pytest.mark.parametrize("problem", ["jobshop/ft06", "jobshop/random_15x15"])
def test_test_scenarios_bounded_in_other_families(store, capsys, monkeypatch, problem):
    refused(
        run_args(problem, "spt", store, "--problem-set", "test.scenarios=1e12"),
        store,
        capsys,
        "--problem-set",
        "'test.scenarios'",
        "at most",
        monkeypatch=monkeypatch,
    )


def test_microgrid_test_scenarios_bounded(store, capsys, monkeypatch):
    from opsrl.registry import bundled

    problem = next(n for n in bundled("problems") if n.startswith("microgrid/"))
    refused(
        run_args(problem, "operator_rules", store, "--problem-set", "test.scenarios=1e12"),
        store,
        capsys,
        "--problem-set",
        "'test.scenarios'",
        "at most",
        monkeypatch=monkeypatch,
    )


def test_generated_job_shop_size_bounded(store, capsys, monkeypatch):
    refused(
        run_args("jobshop/random_15x15", "spt", store, "--problem-set", "generator.jobs=1e9"),
        store,
        capsys,
        "--problem-set",
        "'generator.jobs'",
        "at most 1000",
        monkeypatch=monkeypatch,
    )


def test_list_longer_than_the_model_allows(tmp_path, store, capsys, monkeypatch):
    f = write(
        tmp_path,
        "serial.toml",
        'family = "inventory"\nmodel = "serial"\nstages = 2\nlead_times = [1, 2, 3]\n'
        "shortage_cost = 9.0\ndemand_mean = 5.0\ndemand_cv = 0.3\n",
    )
    refused(
        run_args(f, "echelon_stock", store),
        store,
        capsys,
        str(f),
        "'lead_times'",
        "3 values for 2 stages",
        "at most 2",
        monkeypatch=monkeypatch,
    )


# --- seeds, devices -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "problem, solver, seed",
    [
        ("jobshop/ft06", "spt", "-1"),
        (P4, "optimal_dp", "-1"),
        (P4, "hdpo_mlp", str(2**63)),
        (P4, "base_stock", "abc"),
    ],
)
def test_seed_checked_once_at_the_command_line(store, capsys, monkeypatch, problem, solver, seed):
    refused(
        run_args(problem, solver, store, "--seed", seed),
        store,
        capsys,
        "--seed",
        "0 to 2**63 - 1",
        monkeypatch=monkeypatch,
    )


@pytest.mark.parametrize(
    "device, words",
    [("tpu", "not a torch device"), ("meta", "does not run on 'meta'"), ("cuda:0", "CUDA is not available")],
)
def test_device_checked_before_anything(store, capsys, monkeypatch, device, words):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    refused(
        run_args(P4, "base_stock", store, "--device", device),
        store,
        capsys,
        "--device",
        repr(device),
        words,
        "allowed",
        monkeypatch=monkeypatch,
    )


def test_bench_on_a_missing_device_creates_no_store(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = tmp_path / "new.sqlite"
    rc = cli.main(["bench", "inventory_smoke", "--device", "cuda:0", "--store", str(path), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "--device" in err and "CUDA is not available" in err and "Traceback" not in err
    assert not path.exists()


# --- files ----------------------------------------------------------------------------------------
def test_problem_file_not_utf8(tmp_path, store, capsys, monkeypatch):
    f = write(tmp_path, "latin1.toml", SINGLE.format(L=1, p=4.0, mean=5.0).encode() + b'description = "caf\xe9"\n')
    refused(run_args(f, "base_stock", store), store, capsys, str(f), "not UTF-8", "line 8", monkeypatch=monkeypatch)


def test_weights_that_are_not_a_torch_file(tmp_path, store, capsys, monkeypatch):
    f = write(tmp_path, "weights.pt", "these are not weights\n")
    refused(
        run_args("jobshop/ft06", "gnn_greedy", store, "--set", f"weights={f}"),
        store,
        capsys,
        "--set",
        "'options.weights'",
        "not a torch weights file",
        no_train=False,
    )


def test_report_out_is_an_existing_file(tmp_path, store, capsys):
    f = write(tmp_path, "a_file.txt", "x")
    refused(["report", "--store", store, "--out", f], store, capsys, "--out", str(f), "give a folder")


def test_unreachable_ray_address_fails_fast(store, capsys):
    refused(
        ["bench", "inventory_smoke", "--executor", "ray", "--address", "127.0.0.1:1", "--store", store],
        store,
        capsys,
        "--address",
        "127.0.0.1:1",
        "ray start --head",
    )


@pytest.mark.parametrize(
    "argv, flag, words",
    [
        (["run", P4, "base_stock", "--lock-timeout", "-5"], "--lock-timeout", "0 to 86400"),
        (["run", P4, "base_stock", "--lock-timeout", "nan"], "--lock-timeout", "0 to 86400"),
        (["bench", "inventory_smoke", "--lock-timeout", "inf"], "--lock-timeout", "0 to 86400"),
        (["report", "--lock-timeout", "-1"], "--lock-timeout", "0 to 86400"),
        (["bench", "inventory_smoke", "--retries", "-1"], "--retries", "0 to 100"),
        (["run", P4, "base_stock", "--time-limit", "inf"], "--time-limit", "0 to 86400"),
    ],
)
def test_flag_ranges(store, capsys, argv, flag, words):
    refused([*argv, "--store", store], store, capsys, flag, words)


# --- sweeps: counted before they are expanded ---------------------------------------------------
def test_sweep_seed_count_in_file(tmp_path, store, capsys):
    f = write(
        tmp_path,
        "sweep.toml",
        'problems = ["inventory/lost_sales_p4_L1"]\nsolvers = ["base_stock"]\nseeds = 1000000000000\n',
    )
    refused(["bench", f, "--store", store], store, capsys, str(f), "'seeds'", "at most 10000")


def test_sweep_seed_range_on_the_command_line(store, capsys):
    refused(
        ["bench", "inventory_smoke", "--seeds", "0-100000000", "--store", store],
        store,
        capsys,
        "--seeds",
        "more than 10000",
    )


def test_sweep_cells_counted_before_expansion(tmp_path, store, capsys):
    problems = ", ".join(f'"p{i}"' for i in range(100))
    solvers = ", ".join(f'"s{i}"' for i in range(100))
    f = write(tmp_path, "big.toml", f"problems = [{problems}]\nsolvers = [{solvers}]\nseeds = 11\n")
    refused(["bench", f, "--store", store], store, capsys, str(f), "110000 cells are too many", "at most 100000")


@pytest.mark.parametrize(
    "entry, words",
    [
        ('{ name = "inventory/lost_sales_p9_L4", set = { "test.scenarios" = 2000000000 } }', ["test.scenarios"]),
        ('{ name = "inventory/lost_sales_p9_L4", set = { "test.periods" = 0 } }', ["test.periods"]),
    ],
)
def test_a_sweep_checks_every_cell_before_the_first_runs(tmp_path, store, capsys, monkeypatch, entry, words):
    """The bad cell is the sweep's last: nothing may run (or be recorded) before it is found."""
    f = write(
        tmp_path,
        "sweep.toml",
        f'problems = ["inventory/lost_sales_p4_L1", {entry}]\nsolvers = ["base_stock"]\nseeds = 2\n',
    )
    refused(["bench", f, "--store", store], store, capsys, *words, monkeypatch=monkeypatch)


def test_a_sweep_refuses_more_cpus_per_cell_than_can_exist(tmp_path, store, capsys):
    f = write(
        tmp_path,
        "sweep.toml",
        'problems = ["inventory/lost_sales_p4_L1"]\nsolvers = [{ name = "base_stock", num_cpus = 1e15 }]\n',
    )
    refused(["bench", f, "--store", store], store, capsys, str(f), "num_cpus", "at most 1024")


def test_malformed_sweep(tmp_path, store, capsys):
    f = write(tmp_path, "sweep.toml", 'problems = "inventory/lost_sales_p4_L1"\nsolvers = ["base_stock"]\n')
    refused(["bench", f, "--store", store], store, capsys, str(f), "'problems'", "expected a list")


# --- kinds promised before ------------------------------------------------------------------------
def test_missing_file_malformed_toml_unknown_names(tmp_path, store, capsys, monkeypatch):
    refused(
        run_args(tmp_path / "nope.toml", "base_stock", store),
        store,
        capsys,
        "nope.toml",
        "file not found",
        monkeypatch=monkeypatch,
    )
    f = write(tmp_path, "broken.toml", "family = \n")
    refused(run_args(f, "base_stock", store), store, capsys, str(f), "not valid TOML", monkeypatch=monkeypatch)
    refused(
        run_args("inventory/lost_sales_p4_L9", "base_stock", store),
        store,
        capsys,
        "lost_sales_p4_L9",
        "did you mean",
        monkeypatch=monkeypatch,
    )
    refused(
        run_args(P4, "hdpo_mpl", store), store, capsys, "hdpo_mpl", "did you mean hdpo_mlp", monkeypatch=monkeypatch
    )


def test_newer_schema_store_refused_before_training(tmp_path, capsys, monkeypatch):
    path = tmp_path / "newer.sqlite"
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 99")
    con.close()
    refused(
        run_args(P4, "hdpo_mlp", path), path, capsys, str(path), "newer opsrl", "upgrade opsrl", monkeypatch=monkeypatch
    )


def test_locked_store_refused_before_training(store, capsys, monkeypatch):
    con = sqlite3.connect(store, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    try:
        refused(
            run_args(P4, "hdpo_mlp", store, "--lock-timeout", "0.2"),
            store,
            capsys,
            str(store),
            "locked by another process",
            monkeypatch=monkeypatch,
        )
    finally:
        con.execute("ROLLBACK")
        con.close()


def test_damaged_store_one_clear_message(store, tmp_path, capsys, monkeypatch):
    data = bytearray(store.read_bytes())
    page = 4096 if len(data) >= 8192 else 1024
    data[page : page + 512] = os.urandom(512)  # garbage over the second page (the table's)
    store.write_bytes(bytes(data))
    for argv in (
        ["report", "--store", store, "--out", tmp_path / "rep"],
        ["bench", "inventory_smoke", "--dry-run", "--store", store],
        run_args(P4, "base_stock", store, "--set", "level=6", *SMALL),
    ):
        msg = refused(argv, store, capsys, str(store), monkeypatch=monkeypatch)
        assert "damaged" in msg or "not an opsrl results store" in msg


# --- Ctrl-C while opsrl starts up (importing torch) -----------------------------------------------
def test_ctrl_c_during_imports_gives_no_traceback(tmp_path):
    env = {**os.environ, "OPSRL_STORE": str(tmp_path / "s.sqlite"), "PYTHONDONTWRITEBYTECODE": "1"}
    # opsrl.cli imports only the standard library; main() then imports torch, which takes a second or more
    code = "from opsrl.cli import entry; print('ready', flush=True); entry(['list'])"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    if proc.returncode != 0:  # interrupted (if it finished first, it printed the list)
        assert proc.returncode == -signal.SIGINT and "interrupted" in err
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("where", ["a_file/sub", "/proc/opsrl-report"])
def test_report_to_an_unwritable_place(tmp_path, store, capsys, where):
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / where if not where.startswith("/") else Path(where)
    refused(["report", "--store", store, "--out", out], store, capsys, "--out", "cannot write the report there")


def test_report_names_incomplete_records_and_reports_the_rest(tmp_path, store, capsys):
    """Rows whose record lacks a field or holds a non-numeric test cost are named, never dropped silently."""
    import json as _json

    con = sqlite3.connect(store)
    (record,) = [_json.loads(r[0]) for r in con.execute("SELECT record FROM runs")]
    bad = [{k: v for k, v in record.items() if k != "problem"}, {**record, "test_cost": "abc", "cell": {}}]
    for i, r in enumerate(bad):
        con.execute(
            "INSERT INTO runs (created, problem, solver, seed, record, cell_key) VALUES (?, ?, ?, ?, ?, ?)",
            ("x", "p", "s", 0, _json.dumps(r), f"bad{i}"),
        )
    con.commit()
    con.close()
    assert cli.main(["report", "--store", str(store), "--out", str(tmp_path / "rep"), "--no-pictures"]) == 0
    out, err = capsys.readouterr()
    assert "run 2: 'problem' is missing" in err and "run 3: 'test_cost' is 'abc', not a finite number" in err
    assert "report of 1 runs (1 problems)" in out
    assert "run 3: 'test_cost' is 'abc'" in (tmp_path / "rep" / "report.md").read_text()
