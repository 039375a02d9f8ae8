"""The Python API (opsrl.problem, solver, run, compare, results; opsrl export): every python block of
docs/api.md runs, numbers against independent references (the lost-sales DP, a closed-form backlog cost,
ft06's published optimum, a brute-force job-shop optimum), and bad input stops with one clear error,
nothing written."""

import itertools
import json
import math
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import opsrl
from opsrl.cli import main
from opsrl.core import ConfigError, Method, SolveOutcome, evaluate
from opsrl.inventory import SingleStore
from opsrl.jobshop import instances

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _blocks() -> list[tuple[str, str]]:
    """``(heading, code)`` of every python block of docs/api.md."""
    out, heading = [], "top"
    for m in re.finditer(r"^(#+ [^\n]*)$|^```python\n(.*?)^```", DOC.read_text(), re.M | re.S):
        if m.group(1):
            heading = m.group(1).lstrip("# ").split(":")[0]
        else:
            out.append((heading, m.group(2)))
    return out


BLOCKS = _blocks()


def test_the_document_has_a_block_per_family():
    text = " ".join(code for _, code in BLOCKS)
    for family in ("inventory", "jobshop", "lotsizing", "vm", "hydro", "microgrid"):
        assert f'"family": "{family}"' in text or f'family = "{family}"' in text or family == "inventory"
    assert "SingleStore(" in text and "Method(" in text
    assert len(BLOCKS) >= 9


@pytest.mark.parametrize("code", [c for _, c in BLOCKS], ids=[f"{i}-{h}" for i, (h, _) in enumerate(BLOCKS)])
def test_doc_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__doc_example__"}
    exec(compile(code, str(DOC), "exec"), ns)
    table = ns.get("table")
    if table is not None:  # every comparison gives one row per solver, each with a finite test cost
        assert isinstance(table, pd.DataFrame) and len(table) >= 2
        assert list(table.columns) == list(opsrl.api.COLUMNS)
        assert table["test_cost"].map(math.isfinite).all()
        assert table["cell_key"].is_unique
    if "shop" in ns and "my_shop" in code:  # the 3 x 3 job shop: CP-SAT's makespan is the brute-force optimum
        cp = table.loc[table.solver == "cpsat", "test_cost"].item()
        assert cp == _brute_force_makespan(instances.read_file(tmp_path / "my_shop.txt"))
        assert cp <= table["test_cost"].min()
        assert (tmp_path / "my_shop.png").stat().st_size > 0
    if "my_plant.toml" in code:  # the hindsight bound is below every policy of the same scenarios
        bound = table.loc[table.solver == "lotsizing_hindsight", "test_cost"].item()
        assert bound <= table.loc[table.solver != "lotsizing_hindsight", "test_cost"].min() + 1e-6
    if "optimal_dp" in code:
        from opsrl.inventory.dp import lost_sales_dp

        opt = lost_sales_dp(4.0, 2, 9.0, 1.0).cost
        row = table.set_index("solver").loc["optimal_dp"]
        assert row.reference_value == pytest.approx(opt, rel=1e-9)
        assert abs(row.test_cost - opt) < 4 * row.test_stderr
        assert (table.test_cost >= opt - 4 * table.test_stderr).all()


def _brute_force_makespan(inst) -> float:
    """The optimal makespan of a small job shop: the best semi-active schedule over every order of the
    operations on each machine (infeasible orders, with a cycle, are skipped)."""
    ops = {
        m: [(j, k) for j, row in enumerate(inst.machine) for k, mm in enumerate(row) if mm == m]
        for m in range(inst.machines)
    }
    best = math.inf
    for orders in itertools.product(*(itertools.permutations(ops[m]) for m in sorted(ops))):
        prev = {}
        for order in orders:
            for a, b in zip(order, order[1:]):
                prev[b] = a
        end, done = {}, True
        for _ in range(sum(len(r) for r in inst.machine)):
            progress = False
            for j, row in enumerate(inst.machine):
                for k in range(len(row)):
                    if (j, k) in end:
                        continue
                    deps = [(j, k - 1)] if k else []
                    deps += [prev[(j, k)]] if (j, k) in prev else []
                    if all(d in end for d in deps):
                        end[(j, k)] = max([end[d] for d in deps], default=0.0) + inst.duration[j][k]
                        progress = True
            if not progress:
                break
        done = len(end) == sum(len(r) for r in inst.machine)
        if done:
            best = min(best, max(end.values()))
    return best


# --- numbers against independent references ------------------------------------------------------
def test_run_on_a_single_store_object_matches_the_dp_optimum():
    from opsrl.inventory.dp import lost_sales_dp

    shop = SingleStore(1, 1.0, 4.0, 5.0, test={"scenarios": 2048, "periods": 300, "warmup": 50})
    res = opsrl.run(shop, "optimal_dp")
    opt = lost_sales_dp(5.0, 1, 4.0, 1.0).cost
    assert res.reference["kind"] == "optimum" and res.reference["value"] == pytest.approx(opt, rel=1e-9)
    assert abs(res.test_cost - opt) < 4 * res.test_stderr
    assert res.family == "inventory" and res.problem_object is shop
    assert res.problem == "single_store_L1" and res.solver == "optimal_dp"
    # the fitted policy, simulated on scenarios of the user's own, also costs the optimum
    mine = shop.sample(2048, "dev", 11, 300)
    ev = evaluate(shop, res.policy, mine, warmup=50)
    assert abs(ev.mean - opt) < 4 * ev.stderr
    assert res.to_dict()["test_cost"] == res.test_cost and "policy" in repr(dir(res))
    with pytest.raises(ValueError, match="inventory problems have no picture; families with one: jobshop"):
        res.plot()


@pytest.mark.parametrize("fmt", ["standard", "taillard"])
def test_cpsat_on_ft06_from_a_text_file_reaches_the_published_optimum(fmt, tmp_path):
    ft = instances.load("ft06")
    if fmt == "standard":
        text = "Fisher and Thompson 6x6, from OR-Library\n6 6\n" + "\n".join(
            " ".join(f"{m} {int(d)}" for m, d in zip(mr, dr)) for mr, dr in zip(ft.machine, ft.duration)
        )
    else:
        text = (
            "Nb of jobs, Nb of Machines, Time seed, Machine seed, Upper bound, Lower bound\n6 6 0 0 55 55\nTimes\n"
            + "\n".join(" ".join(str(int(d)) for d in dr) for dr in ft.duration)
            + "\nMachines\n"
            + "\n".join(" ".join(str(m + 1) for m in mr) for mr in ft.machine)
        )
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "mine.txt").write_text(text + "\n")
    (tmp_path / "shop" / "mine.toml").write_text('family = "jobshop"\nfiles = ["mine.txt"]\n')
    res = opsrl.run(str(tmp_path / "shop" / "mine.toml"), opsrl.solver("cpsat", time_limit=20.0))
    assert res.test_cost == 55.0  # ft06's optimum (Fisher and Thompson 1963; ScheduleOpt bks.json)
    assert res.reference is None and res.info["per_instance"][0]["status"] == "optimal"
    assert res.policy is None
    # the same instance as a JobShop built in Python
    from opsrl.jobshop import JobShop

    obj = opsrl.run(JobShop([instances.read_file(tmp_path / "shop" / "mine.txt")]), "cpsat")
    assert obj.test_cost == 55.0 and obj.family == "jobshop" and obj.problem == "mine"


def _backlog_cost(level: float, mean: float, L: int, h: float, p: float) -> float:
    """Expected cost per period of base stock ``level``, backlog, Poisson demand: closed form over the
    lead-time demand D ~ Poisson((L + 1) mean): h E(level - D)^+ + p E(D - level)^+."""
    mu = (L + 1) * mean
    d = np.arange(0, int(stats.poisson.ppf(1 - 1e-14, mu)) + 1)
    pmf = stats.poisson.pmf(d, mu)
    return float((h * np.maximum(level - d, 0) * pmf).sum() + (p * np.maximum(d - level, 0) * pmf).sum())


def _fixed_level(level: float) -> Method:
    def fit(problem, options, config, ctx):
        def policy(state, t):
            return (level - state["x"].sum(dim=1, keepdim=True)).clamp_min(0.0)

        return SolveOutcome(policy=policy, info={"level": level})

    return Method(f"level_{level:g}", fit, description="order up to a fixed level")


def test_a_method_object_runs_and_is_recorded_under_its_name(tmp_path):
    shop = SingleStore(1, 1.0, 9.0, 4.0, unmet="backlog", test={"scenarios": 2048, "periods": 300, "warmup": 50})
    store = tmp_path / "runs.sqlite"
    res = opsrl.run(shop, _fixed_level(12.0), store=store)
    exact = _backlog_cost(12.0, 4.0, 1, 1.0, 9.0)
    assert abs(res.test_cost - exact) < 4 * res.test_stderr
    assert res.solver == "level_12" and res.method == "level_12" and res.info["level"] == 12.0
    frame = opsrl.results(store)
    assert frame.solver.tolist() == ["level_12"] and frame.problem.tolist() == ["single_store_L1"]
    assert frame.run_id.tolist() == [res.run_id] and frame.test_cost.item() == res.test_cost
    # two levels side by side: the better is the one the closed form says
    table = opsrl.compare(shop, [_fixed_level(10.0), _fixed_level(14.0)], store=store)
    assert len(opsrl.results(store)) == 3
    costs = table.set_index("solver").test_cost
    assert (costs["level_10"] < costs["level_14"]) == (
        _backlog_cost(10.0, 4.0, 1, 1.0, 9.0) < _backlog_cost(14.0, 4.0, 1, 1.0, 9.0)
    )


# --- the API and the command line give the same cells and records ---------------------------------
def test_run_records_as_opsrl_run_does_and_compare_resumes(tmp_path):
    store_api, store_cli = tmp_path / "api.sqlite", tmp_path / "cli.sqlite"
    prob = opsrl.problem("inventory/lost_sales_p4_L1", **{"test.scenarios": 256})
    res = opsrl.run(prob, "optimal_dp", store=store_api)
    assert (
        main(
            [
                "run",
                "inventory/lost_sales_p4_L1",
                "optimal_dp",
                "--problem-set",
                "test.scenarios=256",
                "--store",
                str(store_cli),
                "-q",
                "--json",
            ]
        )
        == 0
    )
    a, c = opsrl.results(store_api).iloc[0], opsrl.results(store_cli).iloc[0]
    assert a.cell_key == c.cell_key == res.cell["key"]
    assert a.test_cost == c.test_cost and a.gap_pct == c.gap_pct
    rec_a = next(opsrl.api._store(store_api, write=False).records())
    rec_c = next(opsrl.api._store(store_cli, write=False).records())
    assert set(rec_a) == set(rec_c) and rec_a["config"] == rec_c["config"]
    # compare: the cells of opsrl bench; a second call with the same store runs nothing
    fixed = opsrl.solver("base_stock", level=5.0)
    table = opsrl.compare([prob], ["optimal_dp", fixed], seeds=[0], store=store_api)
    assert table.solver.tolist() == ["optimal_dp", "base_stock"] and len(opsrl.results(store_api)) == 2
    again = opsrl.compare([prob], ["optimal_dp", fixed], seeds=[0], store=store_api)
    assert len(opsrl.results(store_api)) == 2 and again.run_id.tolist() == table.run_id.tolist()
    from opsrl.bench.sweep import load_sweep

    sweep = load_sweep(
        problems=["inventory/lost_sales_p4_L1"],
        solvers=["optimal_dp", {"name": "base_stock", "set": {"level": 5.0}}],
        seeds=[0],
        problem_set={"test.scenarios": 256},
    )
    assert [c.key for c in sweep.cells] == table.cell_key.tolist()


def test_solver_keys_rebuild_a_table_problem_and_check_an_object(tmp_path):
    (tmp_path / "fixed.toml").write_text('method = "base_stock"\n[problem]\nperiods = 50\n[options]\nlevel = 9.0\n')
    small = {"scenarios": 64, "periods": 100, "warmup": 20}
    with pytest.raises(
        ConfigError, match=r"key 'problem.periods': this solver needs the problem built with periods = 50"
    ):
        opsrl.run(SingleStore(1, 1.0, 4.0, 5.0, test=small), str(tmp_path / "fixed.toml"))
    res = opsrl.run(SingleStore(1, 1.0, 4.0, 5.0, periods=50, test=small), str(tmp_path / "fixed.toml"))
    assert res.info["level"] == 9.0
    table = {
        "family": "inventory",
        "lead_time": 1,
        "holding_cost": 1.0,
        "shortage_cost": 4.0,
        "demand": {"mean": 5.0},
        "test": small,
    }
    res = opsrl.run(table, str(tmp_path / "fixed.toml"))
    assert res.problem_object.periods == 50 and res.record["config"]["problem"]["periods"] == 50


def test_import_opsrl_is_light():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, opsrl; print('torch' in sys.modules, sorted(opsrl.__all__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("False") and "'compare'" in out and "'run'" in out


def test_solver_is_printable_and_checked():
    s = opsrl.solver("vm_cpsat", time_limit=5.0)  # cpsat is a method of two families, with options of each
    assert s.families == ("vm",) and s.config["options"]["time_limit"] == 5.0
    assert "method cpsat" in str(s) and "applies to: vm" in str(s)
    assert opsrl.solver("cpsat").families == ("jobshop",)  # a method of two families; the file is the job shop's
    assert "every family" in str(opsrl.solver("hdpo_mlp", max_steps=10, label="short"))
    with pytest.raises(ConfigError, match=r"^options: key 'options.nonsense': unknown key; allowed keys here"):
        opsrl.solver("base_stock", nonsense=1)
    with pytest.raises(ConfigError, match=r"key 'options.lr'"):
        opsrl.solver("hdpo_mlp", lr="fast")


# --- bad input: one clear error, nothing written ---------------------------------------------------
def test_unknown_names(tmp_path):
    with pytest.raises(
        ConfigError, match="no such problem file or bundled name; did you mean inventory/lost_sales_p9_L4"
    ):
        opsrl.problem("inventory/lost_sales_p9_l4")
    with pytest.raises(ConfigError, match="no such solver file or bundled name; did you mean hdpo_mlp"):
        opsrl.run("inventory/lost_sales_p4_L1", "hdpo_mpl", store=tmp_path / "s.sqlite")
    with pytest.raises(ConfigError, match=r"key 'family': 'inventroy' is not a problem family; allowed: inventory"):
        opsrl.problem({"family": "inventroy"})
    with pytest.raises(ConfigError, match=r"^problem: a int is not allowed"):
        opsrl.problem(3)
    assert not (tmp_path / "s.sqlite").exists()


def test_a_solver_of_another_family_names_the_solvers_that_fit(tmp_path):
    shop = SingleStore(1, 1.0, 4.0, 5.0)
    with pytest.raises(ConfigError) as e:
        opsrl.run(shop, "cpsat", store=tmp_path / "s.sqlite")
    assert e.value.key == "method" and e.value.source.endswith("cpsat.toml")
    assert "'cpsat' does not apply to inventory problems; allowed: the methods base_stock, " in e.value.message
    assert "bundled solvers that fit: base_stock, capped_base_stock, echelon_stock, " in e.value.message
    assert "optimal_dp" in e.value.message and "generic methods (such as hdpo_mlp)" in e.value.message
    jobs = opsrl.problem("jobshop/ft06")
    with pytest.raises(ConfigError, match="'optimal_dp' does not apply to jobshop .*; bundled solvers that fit: cpsat"):
        opsrl.run(jobs, "optimal_dp", store=tmp_path / "s.sqlite")
    assert not (tmp_path / "s.sqlite").exists()
    with pytest.raises(ConfigError, match="no solver applies to any problem"):
        opsrl.compare(jobs, ["optimal_dp"], store=tmp_path / "s.sqlite")


def test_a_store_that_is_not_a_results_store(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE t (x)")
    shop = SingleStore(1, 1.0, 4.0, 5.0, test={"scenarios": 64, "periods": 100, "warmup": 20})
    for path, why in ((notes, "file is not a database"), (other, "it holds other tables")):
        before = path.read_bytes()
        with pytest.raises(ConfigError, match=rf"^store: .*not an opsrl results store \({why}\); allowed: an opsrl"):
            opsrl.run(shop, _fixed_level(12.0), store=path)
        with pytest.raises(ConfigError, match=r"^store: .*not an opsrl results store"):
            opsrl.results(path)
        with pytest.raises(ConfigError, match=r"^store: .*not an opsrl results store"):
            opsrl.compare(shop, _fixed_level(12.0), store=path)
        assert path.read_bytes() == before
    with pytest.raises(ConfigError, match=r"^store: .*missing.sqlite: no results store there"):
        opsrl.results(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def test_export_refuses_an_existing_path_and_writes_csv_and_parquet(tmp_path, capsys):
    store = tmp_path / "runs.sqlite"
    shop = SingleStore(1, 1.0, 4.0, 5.0, test={"scenarios": 64, "periods": 100, "warmup": 20})
    opsrl.compare(shop, [_fixed_level(10.0), _fixed_level(12.0)], store=store)
    out = tmp_path / "runs.csv"
    out.write_text("keep me\n")
    assert main(["export", "--store", str(store), "--out", str(out)]) == 2
    assert "--out: " in capsys.readouterr().err and out.read_text() == "keep me\n"
    with pytest.raises(ConfigError, match=r"^out: .*runs.csv exists; allowed: a new path, or force to replace it"):
        opsrl.api.export(store, out)
    assert main(["export", "--store", str(store), "--out", str(out), "--force"]) == 0
    frame = opsrl.results(store)
    back = pd.read_csv(out)
    assert back.solver.tolist() == ["level_10", "level_12"] and np.allclose(back.test_cost, frame.test_cost)
    assert main(["export", "--store", str(store), "--out", str(tmp_path / "runs.parquet"), "--solver", "level_12"]) == 0
    pq = pd.read_parquet(tmp_path / "runs.parquet")
    assert pq.solver.tolist() == ["level_12"] and list(pq.columns) == list(opsrl.api.COLUMNS)
    assert main(["export", "--store", str(store), "--out", str(tmp_path / "runs.json")]) == 2
    assert "allowed: a path ending in .csv or .parquet" in capsys.readouterr().err
    assert main(["export", "--store", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "x.csv")]) == 2
    assert not (tmp_path / "runs.json").exists() and not (tmp_path / "x.csv").exists()
    assert not (tmp_path / "none.sqlite").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == [
        "runs.csv",
        "runs.parquet",
        "runs.sqlite",
    ]


def test_bad_arguments_of_run_and_compare(tmp_path):
    shop = SingleStore(1, 1.0, 4.0, 5.0, test={"scenarios": 64, "periods": 100, "warmup": 20})
    with pytest.raises(ConfigError, match=r"^seed: -1 is not allowed"):
        opsrl.run(shop, "base_stock", seed=-1)
    with pytest.raises(ConfigError, match=r"^device: 'tpu' is not a torch device"):
        opsrl.run(shop, "base_stock", device="tpu")
    res = opsrl.run(shop, "base_stock", level=7.0)  # solver options as keywords, as opsrl.solver takes them
    assert res.info["level"] == 7.0 and res.cell["solver_overrides"] == {"level": 7.0}
    with pytest.raises(ConfigError, match=r"^options: key 'options.level': "):
        opsrl.run(shop, "base_stock", level="high")
    with pytest.raises(ConfigError, match=r"^options: key 'options.depth': unknown key"):
        opsrl.run(shop, _fixed_level(12.0), depth=3)
    with pytest.raises(ConfigError, match=r"^executor: 'dask' is not allowed; allowed: local, ray"):
        opsrl.compare(shop, "base_stock", executor="dask")
    try:
        import ray  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"^executor: 'ray' needs Ray: pip install 'opsrl\[ray\]'"):
            opsrl.compare(shop, "base_stock", executor="ray")
    with pytest.raises(ConfigError, match=r"^address: only the ray executor takes an address"):
        opsrl.compare(shop, "base_stock", address="localhost:6379")
    with pytest.raises(ConfigError, match=r"^seeds: "):
        opsrl.compare(shop, "base_stock", seeds=[1, 1])
    with pytest.raises(ConfigError, match=r"already compared \(solvers\[0\]\); give each configuration its own label"):
        opsrl.compare(shop, [_fixed_level(10.0), _fixed_level(10.0)])
    with pytest.raises(ConfigError, match=r"^overrides: key 'periods': a SingleStore built in Python takes no"):
        opsrl.problem(shop, periods=50)
    with pytest.raises(ConfigError, match=r"^overrides: key 'test.scenarios'"):
        opsrl.problem("inventory/lost_sales_p4_L1", test={"scenarios": -3})


# --- bring your own instance: bad fields ------------------------------------------------------------
def test_lotsizing_instance_file_errors_name_the_file_and_key(tmp_path):
    good = {
        "capacity": [[5, 0], [0, 4]],
        "setup_cost": [[1, 0], [0, 1]],
        "holding_cost": [0.1, 0.1],
        "lost_sales_cost": [1.0, 1.0],
    }
    sub = tmp_path / "plants"
    sub.mkdir()
    (sub / "p.toml").write_text('family = "lotsizing"\ninstance = "plant.json"\nperiods = 5\n[test]\nscenarios = 2\n')
    (sub / "plant.json").write_text(json.dumps(good))
    prob = opsrl.problem(str(sub / "p.toml"))  # the instance is read from the problem file's folder
    assert prob.inst.capacity.tolist() == [[5, 0], [0, 4]] and prob.inst.max_inventory.tolist() == [100, 100]
    cases = [
        ({**good, "capacity": [[5, -1], [0, 4]]}, "capacity", "negative value -1 at \\[0, 1\\]"),
        ({k: v for k, v in good.items() if k != "setup_cost"}, "setup_cost", "missing"),
        ({**good, "holding_cost": [0.1]}, "holding_cost", "expected shape 2 \\(items\\), got 1"),
        ({**good, "capacity": [[5, 0], [0, 0]]}, "capacity", "item 2 has capacity 0 on every machine"),
        ({**good, "colour": 1}, "colour", "unknown key; allowed: capacity"),
        ({**good, "items": 3}, "items", "3 does not match the capacity matrix \\(2 x 2\\); allowed: 2"),
        ({**good, "initial_setup": [0, 7]}, "initial_setup", "one integer in 0..2 per machine"),
    ]
    for table, key, why in cases:
        (sub / "plant.json").write_text(json.dumps(table))
        with pytest.raises(ConfigError, match=rf"key '{key}': {why}"):
            opsrl.problem(str(sub / "p.toml"))
    (sub / "plant.json").unlink()
    with pytest.raises(ConfigError, match=r"p.toml: key 'instance': file not found: .*plants/plant.json"):
        opsrl.problem(str(sub / "p.toml"))
    with pytest.raises(ConfigError, match=r"key 'items': the plant comes from the instance file"):
        opsrl.problem(str(sub / "p.toml"), items=3)


def test_jobshop_file_errors_name_the_file_key_and_line(tmp_path):
    (tmp_path / "p.toml").write_text('family = "jobshop"\nfiles = ["a.txt"]\n')
    for text, why in (
        ("2 2\n0 1 1 2\n0 1 1\n", r"files\[0\]': .*a.txt: a, line 3: job 1 has 3 numbers; allowed: pairs"),
        ("2 2\n0 1 1 2\n", r"the header \(line 1\) says 2 jobs, the file has 1 job lines"),
        ("2 2\n0 1 5 2\n0 1 1 2\n", r"line 2: job 0 names a machine outside 0..1"),
        ("jobs\n", r"no header line 'jobs machines'"),
    ):
        (tmp_path / "a.txt").write_text(text)
        with pytest.raises(ConfigError, match=why):
            opsrl.problem(str(tmp_path / "p.toml"))
    (tmp_path / "a.txt").unlink()
    with pytest.raises(ConfigError, match=r"key 'files\[0\]': file not found"):
        opsrl.problem(str(tmp_path / "p.toml"))


def test_vm_file_is_read_from_the_problem_files_folder(tmp_path, monkeypatch):
    from tests.vm.test_loaders import vmr2l_doc

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "snap.json").write_text(json.dumps(vmr2l_doc()))
    (tmp_path / "c" / "p.toml").write_text('family = "vm"\ngenerator = "file"\nfile = "snap.json"\nmnl = 2\n')
    monkeypatch.chdir(tmp_path)
    prob = opsrl.problem("c/p.toml")
    assert prob.snapshot.V == 2


def test_microgrid_series_from_csv_and_parquet_give_the_same_scenarios(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    minutes = np.arange(3 * 1440)
    frame = pd.DataFrame(
        {"demand_kw": 250 + 50 * np.sin(minutes / 300.0), "wind_kw": 100 + 80 * np.cos(minutes / 700.0)}
    )
    frame.to_csv("site.csv", index=False)
    frame.to_parquet("site.parquet", index=False)
    probs = [
        opsrl.problem(
            {
                "family": "microgrid",
                "periods": 60,
                "test": {"scenarios": 2},
                "data": {"source": kind, "path": f"site.{kind}", "test_days": 1, "dev_days": 1},
            }
        )
        for kind in ("csv", "parquet")
    ]
    a, b = (p.test_set() for p in probs)
    assert a.data.keys() == b.data.keys() and all(np.allclose(a[k], b[k]) for k in a.data)
    first = 2 * 1440 + int(a["start_minute"][0])  # the test day, from the episode's start minute
    assert np.allclose(a["demand"][0, 1:61].numpy(), frame.demand_kw[first : first + 60], rtol=1e-6)
    frame.iloc[:100].to_csv("short.csv", index=False)
    with pytest.raises(ConfigError, match=r"key 'data.path': short.csv: 100 rows is not a whole number of days"):
        opsrl.problem({"family": "microgrid", "data": {"source": "csv", "path": "short.csv"}})


def test_an_edited_hydro_case_gets_its_own_reference(tmp_path, monkeypatch):
    import shutil
    from importlib import resources

    from opsrl.hydro import reference

    monkeypatch.chdir(tmp_path)
    refs = []
    for scale in (1.0, 2.0):
        shutil.copytree(resources.files("opsrl.hydro") / "data" / "case3", "my_case", dirs_exist_ok=True)
        grid = json.loads(Path("my_case/PowerModels.json").read_text())
        for gen in grid["gen"].values():
            gen["cost"] = [scale * c for c in gen["cost"]]
        Path("my_case/PowerModels.json").write_text(json.dumps(grid))
        refs.append(reference(opsrl.problem({"family": "hydro", "case": "my_case", "sdp_points": 11})).value)
    assert refs[1] > refs[0]  # dearer thermal units: a dearer optimum, not the first case's cached one


def test_compare_warns_of_a_method_that_refuses_the_problem():
    backlog = SingleStore(1, 1.0, 9.0, 4.0, unmet="backlog", test={"scenarios": 64, "periods": 100, "warmup": 20})
    with pytest.warns(UserWarning, match="optimal_dp.*not applicable: optimal_dp applies to lost-sales problems"):
        table = opsrl.compare(backlog, ["optimal_dp", _fixed_level(12.0)])
    assert table.solver.tolist() == ["level_12"]


def test_the_readme_example_runs_and_matches_the_dp_optimum(tmp_path, monkeypatch):
    """The README's Python example (its only python block), on the user's own store, against the lost-sales DP."""
    from opsrl.inventory.dp import lost_sales_dp

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (code,) = re.findall(r"^```python\n(.*?)^```", readme, re.M | re.S)
    assert len(code.strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__readme__"}
    exec(compile(code, "README.md", "exec"), ns)
    opt = lost_sales_dp(4.0, 2, 9.0, 1.0).cost
    row = ns["table"].set_index("solver").loc["optimal_dp"]
    assert row.reference_value == pytest.approx(opt, rel=1e-9)
    assert abs(row.test_cost - opt) < 4 * row.test_stderr
    assert len(opsrl.results("runs.sqlite")) == 3
