"""The results store: schema migration, refusal of newer stores, locks, at-most-once cells."""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from opsrl import cli
from opsrl.bench.store import SCHEMA_VERSION, ResultsStore, StoreError

V1_DDL = """CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL, problem TEXT NOT NULL, solver TEXT NOT NULL, seed INTEGER NOT NULL,
    test_cost REAL, gap_pct REAL, train_seconds REAL, eval_seconds REAL,
    record TEXT NOT NULL)"""


def _record(key: str | None, cost: float = 1.0, seed: int = 0) -> dict:
    rec = {
        "created": "2026-01-01T00:00:00+00:00",
        "problem": "p",
        "solver": "s",
        "seed": seed,
        "test_cost": cost,
        "gap_pct": None,
        "train_seconds": 0.0,
        "eval_seconds": 0.0,
    }
    if key:
        rec["cell"] = {"key": key, "config_hash": key[-4:]}
    return rec


def test_v1_store_is_migrated_once_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v1.sqlite"
    con = sqlite3.connect(path)
    con.execute(V1_DDL)
    con.execute("CREATE INDEX runs_cell ON runs(problem, solver, seed)")
    con.execute(
        "INSERT INTO runs (created, problem, solver, seed, test_cost, record) VALUES (?, ?, ?, ?, ?, ?)",
        (
            "2025",
            "old",
            "solver",
            3,
            2.5,
            json.dumps({"problem": "old", "solver": "solver", "seed": 3, "test_cost": 2.5}),
        ),
    )
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()

    store = ResultsStore(path)
    before = path.read_bytes()
    assert [r["test_cost"] for r in store.records()] == [2.5]  # reading does not migrate
    assert store.finished() == set()
    assert path.read_bytes() == before

    store.record_cell(_record("p|s|0|abcd"))
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    cols = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
    assert {"cell_key", "config_hash", "sweep"} <= cols
    rows = con.execute("SELECT problem, seed, test_cost, cell_key, config_hash FROM runs ORDER BY id").fetchall()
    con.close()
    assert rows == [("old", 3, 2.5, None, None), ("p", 0, 1.0, "p|s|0|abcd", "abcd")]
    assert store.finished() == {"p|s|0|abcd"}


def test_record_cell_is_idempotent(tmp_path):
    store = ResultsStore(tmp_path / "s.sqlite")
    first = store.record_cell(_record("k|1", cost=1.0))
    again = store.record_cell(_record("k|1", cost=9.0))
    assert first[1] is True and again == (first[0], False)
    assert [r["test_cost"] for r in store.records()] == [1.0]
    with pytest.raises(ValueError, match="cell key"):
        store.record_cell(_record(None))


def _race(path: str, n: int, out) -> None:
    store = ResultsStore(path, timeout=30)
    out.put(sum(store.record_cell(_record(f"cell|{i}", cost=float(i)))[1] for i in range(n)))


def test_two_processes_recording_the_same_cells_write_each_once(tmp_path):
    path = str(tmp_path / "race.sqlite")
    ResultsStore(path).check_writable()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(path, 25, q)) for _ in range(2)]
    for p in procs:
        p.start()
    written = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sum(written) == 25
    con = sqlite3.connect(path)
    keys = [r[0] for r in con.execute("SELECT cell_key FROM runs")]
    con.close()
    assert sorted(keys) == sorted(f"cell|{i}" for i in range(25))


def test_newer_and_foreign_stores_are_refused_unchanged(tmp_path, capsys):
    newer = tmp_path / "newer.sqlite"
    con = sqlite3.connect(newer)
    con.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, record TEXT)")
    con.execute("PRAGMA user_version = 7")
    con.commit()
    con.close()
    before = newer.read_bytes()
    for args in (["bench", "--problem", "inventory/lost_sales_p4_L1", "--solver", "optimal_dp", "-q"], ["report"]):
        assert cli.main([*args, "--store", str(newer)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "newer opsrl (schema 7" in err and str(newer) in err
        assert newer.read_bytes() == before
    with pytest.raises(StoreError, match="newer opsrl"):
        list(ResultsStore(newer).records())
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE other (a)")
    con.commit()
    con.close()
    before = foreign.read_bytes()
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
                str(foreign),
            ]
        )
        == 2
    )
    assert "not an opsrl results store" in capsys.readouterr().err
    assert foreign.read_bytes() == before


HOLD_LOCK = textwrap.dedent("""
    import sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN {mode}")
    print("locked", flush=True)
    sys.stdin.readline()
    con.execute("ROLLBACK")
""")


@pytest.mark.parametrize("mode", ["IMMEDIATE", "EXCLUSIVE"])
def test_locked_store_gives_one_clear_error_and_stays_unchanged(tmp_path, capsys, mode):
    path = tmp_path / "s.sqlite"
    ResultsStore(path).append(_record("p|s|0|abcd"))
    before = path.read_bytes()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK.format(mode=mode), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = cli.main(
            [
                "bench",
                "--problem",
                "inventory/lost_sales_p4_L1",
                "--solver",
                "optimal_dp",
                "-q",
                "--store",
                str(path),
                "--lock-timeout",
                "0.3",
                "--problem-set",
                "test.scenarios=16",
            ]
        )
        err = capsys.readouterr().err
        assert code == 2
        assert err.count("\n") == 1 and "locked by another process" in err and str(path) in err
    finally:
        holder.communicate("\n", timeout=30)
    assert path.read_bytes() == before
    assert [r["test_cost"] for r in ResultsStore(path).records()] == [1.0]
