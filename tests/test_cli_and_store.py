"""`opsrl run` end to end: JSON record, results store, interruption."""

import json
import sqlite3

import pytest

from opsrl import cli
from opsrl.bench.store import ResultsStore, StoreError
from opsrl.inventory import dp

SMALL = ["--problem-set", "test.scenarios=256", "--problem-set", "test.periods=300"]


def test_run_json_record_and_store(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    assert cli.main(["run", "inventory/lost_sales_p4_L2", "optimal_dp", "--json", "-q", "--store", str(store),
                     "--seed", "3", *SMALL]) == 0
    rec = json.loads(capsys.readouterr().out)
    for key in ("problem", "solver", "seed", "test_cost", "reference", "gap_pct", "train_seconds", "eval_seconds"):
        assert key in rec
    assert rec["problem"] == "inventory/lost_sales_p4_L2" and rec["solver"] == "optimal_dp" and rec["seed"] == 3
    opt = dp.lost_sales_dp(5.0, 2, 4.0, 1.0).cost
    assert rec["reference"]["kind"] == "optimum" and rec["reference"]["value"] == pytest.approx(opt, abs=1e-9)
    assert rec["gap_pct"] == pytest.approx(100 * (rec["test_cost"] - opt) / opt)
    assert abs(rec["test_cost"] - opt) < 4 * rec["test_stderr"]
    rows = list(ResultsStore(store).records())
    assert len(rows) == 1 and rows[0]["test_cost"] == rec["test_cost"]
    assert rows[0]["versions"]["torch"] and rows[0]["config"]["solver"]["method"] == "optimal_dp"


def test_interrupted_run_leaves_store_intact(tmp_path, monkeypatch):
    store = tmp_path / "r.sqlite"
    assert cli.main(["run", "inventory/lost_sales_p4_L1", "base_stock", "-q", "--store", str(store), *SMALL]) == 0
    before = store.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("opsrl.bench.runner.evaluate", boom)
    assert cli.main(["run", "inventory/lost_sales_p4_L1", "base_stock", "-q", "--store", str(store), *SMALL]) == 130
    assert store.read_bytes() == before
    assert len(list(ResultsStore(store).records())) == 1


def test_store_refuses_newer_schema_and_foreign_files(tmp_path):
    newer = tmp_path / "newer.sqlite"
    con = sqlite3.connect(newer)
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(StoreError, match="newer opsrl"):
        ResultsStore(newer).append({"problem": "x", "solver": "y", "seed": 0})
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (a)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not an opsrl results store"):
        ResultsStore(foreign).append({"problem": "x", "solver": "y", "seed": 0})


def test_list_shows_bundled_names(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for p in (4, 9, 19, 39):
        for L in (1, 2, 3, 4):
            assert f"inventory/lost_sales_p{p}_L{L}" in out
    for s in ("hdpo_mlp", "optimal_dp", "base_stock", "capped_base_stock", "myopic"):
        assert s in out
