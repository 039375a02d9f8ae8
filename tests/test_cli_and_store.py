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
    assert (
        cli.main(
            [
                "run",
                "inventory/lost_sales_p4_L2",
                "optimal_dp",
                "--json",
                "-q",
                "--store",
                str(store),
                "--seed",
                "3",
                *SMALL,
            ]
        )
        == 0
    )
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


def test_json_leaves_the_trace_in_the_store_unless_asked(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    args = ["run", "inventory/lost_sales_p4_L1", "optimal_dp", "--json", "-q", "--store", str(store), *SMALL]
    assert cli.main(args) == 0
    rec = json.loads(capsys.readouterr().out)
    assert "trace" not in rec and "curve" not in rec
    assert cli.main([*args, "--trace"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["trace"]["scenarios"] == 3 and len(rec["trace"]["cost"]) == 3
    rows = list(ResultsStore(store).records())
    assert len(rows) == 2 and all("trace" in r for r in rows)  # the store keeps it either way


def _record(**over):
    rec = {
        "problem": "jobshop/ft10",
        "solver": "cpsat",
        "method": "cpsat",
        "seed": 0,
        "test_cost": 971.0,
        "test_stderr": float("nan"),
        "test": {"n": 1},
        "reference": {"kind": "optimum", "value": 930.0},
        "gap_pct": 100 * (971 - 930) / 930,
        "gap_stderr_pct": float("nan"),
        "train_seconds": 0.0,
        "eval_seconds": 10.0,
        "config": {"solver": {"options": {"time_limit": 10.0}}},
        "info": {"per_instance": [{"instance": "ft10", "status": "feasible", "makespan": 971.0, "lower_bound": 809.0}]},
    }
    rec.update(over)
    return rec


def test_summary_prints_what_is_known():
    text = cli.summary(_record())
    assert "n/a%" not in text and "+- n/a" not in text
    assert "gap       4.409%" in text  # (971 - 930) / 930
    assert "1 scenario: no standard error" in text
    assert "feasible" in text and "bound 809" in text and "more time" in text and "time_limit=60" in text
    proven = _record(
        info={"per_instance": [{"instance": "ft10", "status": "optimal", "makespan": 930.0, "lower_bound": 930.0}]},
        test_cost=930.0,
        gap_pct=0.0,
    )
    assert "optimal on all 1 instance (proven)" in cli.summary(proven)
    assert "more time" not in cli.summary(proven)


def test_list_says_where_it_looked_when_it_finds_nothing(tmp_path, monkeypatch, capsys):
    from opsrl import registry

    monkeypatch.setattr(registry, "roots", lambda: [tmp_path / "nowhere"])
    assert cli.main(["list", "problems"]) == 1
    err = capsys.readouterr().err
    assert "found no bundled problems" in err and str(tmp_path / "nowhere") in err


def test_registry_reads_installed_copies_without_a_source_tree(tmp_path, monkeypatch):
    """A wheel's layout: site-packages/opsrl/_bundled/{problems,solvers,sweeps}, no pyproject.toml above."""
    from opsrl import registry

    site = tmp_path / "site-packages"
    (site / "opsrl" / "_bundled" / "problems" / "fam").mkdir(parents=True)
    (site / "opsrl" / "_bundled" / "problems" / "fam" / "p.toml").write_text('family = "inventory"\n')
    (site / "opsrl" / "_bundled" / "sweeps").mkdir()
    (site / "opsrl" / "_bundled" / "sweeps" / "s.toml").write_text("problems = []\n")
    monkeypatch.delenv("OPSRL_PATH", raising=False)
    monkeypatch.setattr(registry, "__file__", str(site / "opsrl" / "registry.py"))
    assert registry.roots() == [site / "opsrl" / "_bundled"]
    assert list(registry.bundled("problems")) == ["fam/p"] and list(registry.bundled("sweeps")) == ["s"]
    monkeypatch.setattr(registry, "__file__", str(tmp_path / "nothing" / "opsrl" / "registry.py"))
    assert registry.roots() == []


@pytest.mark.parametrize(
    "predicted, scenarios, limit",
    [
        (26.0, 8192, 89.0),  # quiet: all test scenarios; training gets 120 - 1.2 * 26 = 88.8 s
        (175.0, 1024, 90.0),  # busy: 2**floor(log2(8192 * 40 / 175)) = 1024 scenarios, 120 - 1.2 * 21.9 -> at most 90
        (2000.0, 1024, 20.0),  # very busy: at least 1024 scenarios (250 s predicted), training its minimum of 20 s
    ],
)
def test_main_job_plans_its_two_minutes(monkeypatch, capsys, predicted, scenarios, limit):
    seen = {}
    monkeypatch.setattr(cli, "_predict_evaluation", lambda prep: predicted)
    monkeypatch.setattr(cli.time, "monotonic", lambda: 0.0)

    def fake_execute(prep, **kw):
        seen["prep"] = prep
        return {"problem": prep.problem.name}

    monkeypatch.setattr("opsrl.bench.runner.execute", fake_execute)
    assert cli.main(["run", "--no-store", "--json"]) == 0
    prep = seen["prep"]
    assert prep.problem.name == cli.DEFAULT_PROBLEM and prep.solver_name == cli.DEFAULT_SOLVER
    assert prep.problem.test_scenarios == scenarios
    assert prep.config["options"]["time_limit"] == limit
    # naming them is the full run: no time limit, the whole test split
    assert cli.main(["run", cli.DEFAULT_PROBLEM, cli.DEFAULT_SOLVER, "--no-store", "--json"]) == 0
    assert seen["prep"].config["options"]["time_limit"] == 0.0 and seen["prep"].problem.test_scenarios == 8192
