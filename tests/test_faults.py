"""Faults: Ctrl-C at every named moment of ``opsrl run`` and ``opsrl bench`` (the commit included), and kills.

What must hold (issue 16): never a duplicate row, never a lost finished cell, and an exit status that
tells the truth: ``opsrl run`` exits 0 exactly when its row is in the store (and says so), and ends as an
interrupted program (by SIGINT: status 130 in a shell) when it is not; ``opsrl bench`` says how many cells
are recorded, and that is how many are. The store is read back with plain sqlite3, independently of
opsrl's store code. Cells are tiny (a fixed base-stock level,
64 test scenarios) so that every run takes well under a second after the imports.

The default suite is deterministic: a Ctrl-C is delivered at each named point of a real process
(:mod:`opsrl.faults`, ``OPSRL_FAULT_AT``) and the outcome asserted for each. The randomised versions
(Ctrl-C and kills at random moments) are soaks, marked ``soak`` and left out of the default run:
``python -m pytest -m soak tests/test_faults.py`` (``OPSRL_SOAK_TRIALS`` sets the trials per test).
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsrl import cli, registry
from opsrl.bench.store import ResultsStore
from opsrl.faults import POINTS

SMALL = ["--problem-set", "test.scenarios=64", "--problem-set", "test.periods=80", "--problem-set", "test.warmup=10"]
RUN = ["run", "inventory/lost_sales_p4_L1", "base_stock", "--set", "level=6", "-q", *SMALL]
SEEDS = 6
SWEEP = f"""description = "fault test sweep"
problems = ["inventory/lost_sales_p4_L1"]
solvers = [{{ name = "base_stock", label = "base_stock_6", set = {{ level = 6.0 }} }}]
seeds = {SEEDS}

[problem_set]
"test.scenarios" = 64
"test.periods" = 80
"test.warmup" = 10
"""


def rows(store: Path) -> list[tuple]:
    if not store.exists():
        return []
    con = sqlite3.connect(store)
    try:
        return con.execute("SELECT id, cell_key FROM runs ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # no table yet
        return []
    finally:
        con.close()


# --- Ctrl-C inside the commit (in process, at exact moments) -------------------------------------
@pytest.mark.parametrize("moment", ["insert", "after_append"])
def test_ctrl_c_during_the_commit_records_once_and_says_so(tmp_path, capsys, monkeypatch, moment):
    store = tmp_path / "s.sqlite"
    assert cli.main([*RUN, "--store", str(store)]) == 0
    capsys.readouterr()
    if moment == "insert":  # between the INSERT and the COMMIT of the transaction
        real = ResultsStore._insert

        def insert(self, con, record):
            out = real(self, con, record)
            os.kill(os.getpid(), signal.SIGINT)
            return out

        monkeypatch.setattr(ResultsStore, "_insert", insert)
    else:  # right after the COMMIT, before the command has printed anything
        real = ResultsStore.append

        def append(self, record):
            out = real(self, record)
            os.kill(os.getpid(), signal.SIGINT)
            return out

        monkeypatch.setattr(ResultsStore, "append", append)
    rc = cli.main([*RUN, "--store", str(store)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert len(rows(store)) == 2  # the first run and this one, once
    run_id = rows(store)[-1][0]
    assert f"run {run_id}" in err and "interrupted after the run was recorded" in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is restored


def test_ctrl_c_before_the_commit_records_nothing(tmp_path, capsys, monkeypatch):
    store = tmp_path / "s.sqlite"
    assert cli.main([*RUN, "--store", str(store)]) == 0
    before = store.read_bytes()

    def interrupted_fit(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("opsrl.inventory.heuristics.BaseStock.__init__", interrupted_fit)
    assert cli.main([*RUN, "--store", str(store)]) == 130
    assert "nothing was recorded" in capsys.readouterr().err
    assert store.read_bytes() == before


@pytest.mark.parametrize("how", ["-m", "script"])
@pytest.mark.parametrize("inside_exec", [False, True])
def test_an_interrupted_command_always_ends_by_sigint(tmp_path, inside_exec, how):
    """With ``python -m``, CPython 3.11 ends a process by SIGINT when a Ctrl-C landed inside ``exec`` of a
    string (as imports of sympy do) even though it was caught, and by ``exit(130)`` elsewhere (the CI run of
    stop 22 failed on that). The entry point must end the same way wherever the Ctrl-C lands: by SIGINT,
    as Python ends an interrupted program, so that a shell's loop stops too."""
    ctrl_c = "os.kill(os.getpid(), signal.SIGINT); time.sleep(5)"
    body = f"exec({ctrl_c!r})" if inside_exec else ctrl_c
    (tmp_path / "interrupted_opsrl.py").write_text(f"""
import os, signal, sys, time
import opsrl.cli as cli
def main(argv=None):
    try:
        {body}
    except KeyboardInterrupt:
        print("opsrl: interrupted", file=sys.stderr)
        return 130
cli.main = main
if __name__ == "__main__":
    cli.entry([])
""")
    argv = ["-m", "interrupted_opsrl"] if how == "-m" else ["interrupted_opsrl.py"]
    proc = subprocess.run([sys.executable, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGINT, proc.stderr
    assert proc.stderr == "opsrl: interrupted\n"  # said once, no traceback


# --- Ctrl-C at random moments of a real `opsrl run` process ---------------------------------------
def _spawn(argv: list[str], env: dict) -> subprocess.Popen:
    """``opsrl`` in a child that says 'ready' once Python runs opsrl's code (before torch is imported):
    a signal before that would hit the interpreter's own start-up, not opsrl."""
    code = f"from opsrl.cli import entry; print('ready', flush=True); entry({argv!r})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


RECORDED_AT = {"insert", "after_commit", "after_print", "shutdown"}  # the row is committed at these points
TRIALS = int(os.environ.get("OPSRL_SOAK_TRIALS", "4"))


@pytest.mark.parametrize("where", POINTS)
def test_ctrl_c_at_each_named_point_of_run(tmp_path, where):
    """Recorded and exit 0 (saying which run), or nothing recorded and an interrupted exit: never both, never
    neither, and never a traceback, wherever the Ctrl-C lands."""
    store, log = tmp_path / "s.sqlite", tmp_path / "fired"
    env = {**os.environ, "OPSRL_CACHE": str(tmp_path / "cache"), "OPSRL_FAULT_AT": where, "OPSRL_FAULT_LOG": str(log)}
    proc = _spawn([*RUN, "--store", str(store)], env)
    out, err = proc.communicate(timeout=300)
    assert log.read_text() == f"{where}:1\n"  # the Ctrl-C was delivered there
    assert "Traceback" not in err, err
    after = rows(store)
    if where in RECORDED_AT:
        assert proc.returncode == 0, err
        assert len(after) == 1
        assert f"run {after[0][0]}" in out + err
    else:
        assert proc.returncode == -signal.SIGINT, err  # an interrupted program's exit (130 in a shell)
        assert after == [] and "nothing was recorded" in err


def test_ctrl_c_that_a_compiled_module_turns_into_an_import_error_is_an_interrupt(tmp_path, capsys, monkeypatch):
    """A Ctrl-C that lands while a family's compiled dependency initialises (scipy's HiGHS core) comes out of
    the import as ``ImportError: initialization failed``: still an interruption, not a crash."""

    def import_module(name):
        try:
            signal.raise_signal(signal.SIGINT)  # the Ctrl-C arrives inside the extension's initialisation ...
            time.sleep(0.01)
        except KeyboardInterrupt:
            raise ImportError("initialization failed") from None  # ... which reports its own failure

    monkeypatch.setattr(registry, "importlib", type("I", (), {"import_module": staticmethod(import_module)}))
    store = tmp_path / "s.sqlite"
    assert cli.main([*RUN, "--store", str(store)]) == 130
    err = capsys.readouterr().err
    assert "nothing was recorded" in err and "ImportError" not in err
    assert rows(store) == []


def test_without_a_ctrl_c_an_import_error_is_not_called_an_interrupt(monkeypatch):
    def import_module(name):
        raise ImportError("initialization failed")

    monkeypatch.setattr(registry, "importlib", type("I", (), {"import_module": staticmethod(import_module)}))
    with pytest.raises(ImportError, match="initialization failed"):
        cli.main(RUN)


@pytest.mark.parametrize(
    "where, recorded",
    [("start", 0), ("fit:1", 0), ("insert:1", 1), ("fit:3", 2), ("insert:3", 3), ("shutdown", SEEDS)],
)
def test_ctrl_c_at_each_named_point_of_bench(tmp_path, where, recorded):
    """``opsrl bench`` interrupted at a named point says how many cells are recorded, and that is how many
    are; a cell whose commit was under way is recorded whole; rerunning resumes with every cell once."""
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(SWEEP)
    store, log = tmp_path / "s.sqlite", tmp_path / "fired"
    env = {**os.environ, "OPSRL_CACHE": str(tmp_path / "cache"), "OPSRL_FAULT_LOG": str(log)}
    argv = ["bench", str(sweep), "--store", str(store), "-q"]
    proc = _spawn(argv, {**env, "OPSRL_FAULT_AT": where})
    out, err = proc.communicate(timeout=300)
    assert log.read_text().split() == [where if ":" in where else f"{where}:1"]
    assert "Traceback" not in err, err
    assert len(rows(store)) == recorded
    if where == "shutdown":
        assert proc.returncode == 0, err
    else:
        assert proc.returncode == -signal.SIGINT, err
        if where == "start":
            assert "every cell finished before is recorded" in err
        else:
            assert f"{recorded} of {SEEDS} cells are recorded" in err
    proc = _spawn(argv, env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    keys = [k for _, k in rows(store)]
    assert len(keys) == SEEDS and len(set(keys)) == SEEDS


@pytest.mark.soak
def test_ctrl_c_at_random_moments_of_run(tmp_path):
    store = tmp_path / "s.sqlite"
    env = {**os.environ, "OPSRL_CACHE": str(tmp_path / "cache")}
    argv = [*RUN, "--store", str(store)]
    t0 = time.monotonic()
    proc = _spawn(argv, env)
    out, err = proc.communicate(timeout=300)
    full = time.monotonic() - t0
    assert proc.returncode == 0, err
    rng = random.Random(16)
    outcomes = set()
    for delay in [rng.uniform(0.0, 1.1 * full) for _ in range(TRIALS)]:
        before = rows(store)
        proc = _spawn(argv, env)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
        after = rows(store)
        assert "Traceback" not in err, err
        assert after[: len(before)] == before  # nothing recorded before is lost or changed
        if proc.returncode == 0:  # recorded: exactly one new row, and it says which
            assert len(after) == len(before) + 1
            assert f"run {after[-1][0]}" in out + err
        else:
            assert proc.returncode == -signal.SIGINT, err  # an interrupted program's exit (130 in a shell)
            assert after == before and "nothing was recorded" in err
        outcomes.add(proc.returncode)
    assert outcomes  # (which outcomes occur depends on the machine's speed; both are checked when they do)


# --- kills during `opsrl bench` ---------------------------------------------------------------------
@pytest.mark.soak
def test_kills_during_bench_never_duplicate_or_lose_a_cell(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(SWEEP)
    store = tmp_path / "s.sqlite"
    env = {**os.environ, "OPSRL_CACHE": str(tmp_path / "cache")}
    argv = ["bench", str(sweep), "--store", str(store), "-q"]
    rng = random.Random(161)
    for _ in range(TRIALS):  # SIGKILL at random moments, then resume
        before = rows(store)
        proc = _spawn(argv, env)
        time.sleep(rng.uniform(0.5, 3.0))
        proc.kill()
        proc.communicate(timeout=60)
        after = rows(store)
        assert after[: len(before)] == before  # no finished cell lost
        keys = [k for _, k in after]
        assert len(keys) == len(set(keys))  # no duplicate
    # Ctrl-C: the exit status and the count it reports are the truth
    before = rows(store)
    proc = _spawn(argv, env)
    time.sleep(rng.uniform(0.5, 2.0))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    after = rows(store)
    assert "Traceback" not in err, err
    assert after[: len(before)] == before
    if proc.returncode == -signal.SIGINT:
        m = re.search(r"(\d+) of (\d+) cells are recorded", err)
        if m:  # interrupted while cells ran: the count it gives is the store's
            assert int(m.group(1)) == len(after) and int(m.group(2)) == SEEDS, err
        else:  # interrupted while starting up, before any cell ran
            assert "every cell finished before is recorded" in err and after == before, err
    else:
        assert proc.returncode == 0 and len(after) == SEEDS, err
    # resumed to the end: every cell once
    proc = _spawn(argv, env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    keys = [k for _, k in rows(store)]
    assert len(keys) == SEEDS and len(set(keys)) == SEEDS
    assert sorted(int(k.split("|")[2]) for k in keys) == list(range(SEEDS))


# --- a kill mid-write leaves a journal: read-only commands recover ---------------------------------
def test_leftover_journal_after_a_kill_is_recovered_by_read_only_commands(tmp_path, capsys):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(SWEEP)
    store = tmp_path / "s.sqlite"
    assert cli.main(["bench", str(sweep), "--store", str(store), "-q", "--seeds", "0,1"]) == 0
    committed = rows(store)
    assert len(committed) == 2
    # a writer killed in the middle of a large transaction (pages spilled to the file, journal beside it)
    code = f"""
import os, sqlite3
con = sqlite3.connect({str(store)!r}, isolation_level=None)
con.execute("PRAGMA cache_size = 1")
con.execute("BEGIN IMMEDIATE")
for i in range(300):
    con.execute("INSERT INTO runs (created, problem, solver, seed, record, cell_key) VALUES (?, ?, ?, ?, ?, ?)",
                ("x", "p", "s", i, "x" * 20000, f"half|{{i}}"))
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    journal = store.with_name(store.name + "-journal")
    assert journal.exists() and journal.stat().st_size > 0
    capsys.readouterr()
    assert cli.main(["bench", str(sweep), "--store", str(store), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("recorded") == 2 and out.count("to run") == SEEDS - 2
    assert cli.main(["report", "--store", str(store), "--out", str(tmp_path / "rep"), "--no-pictures"]) == 0
    assert "report of 2 runs" in capsys.readouterr().out
    assert rows(store) == committed  # the unfinished transaction was rolled back, nothing else changed
