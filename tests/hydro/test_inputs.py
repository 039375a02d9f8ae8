"""Bad input stops with one ConfigError naming the file, the key and what is allowed; the command line exits 2
and records nothing. Also: scenario sampling (probabilities, cycling, determinism) and the AR(1) option."""

import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import torch
from hydro_tiny import problem_file, tiny_case

from opsrl.core import ConfigError
from opsrl.registry import load_problem


def load(tmp_path, case, **keys):
    return load_problem(problem_file(tmp_path, case, **keys))


def expect(tmp_path, case, file, key, words, **keys):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, case, **keys)
    assert e.value.source.endswith(file), e.value
    assert (e.value.key or "").startswith(key), e.value
    assert words in e.value.message, e.value


def test_load_that_nothing_can_serve(tmp_path):
    case = tiny_case(tmp_path / "c", pd=5.0)
    load(tmp_path, case)  # with unserved load allowed (the source's default) the case is fine
    expect(tmp_path, case, "PowerModels.json", "load", "deficit = true", deficit=False)
    load(tmp_path, tiny_case(tmp_path / "ok", pd=1.0), deficit=False)  # 0.5 thermal + 0.6 hydro serve 1 p.u.


def test_reversed_volume_bounds(tmp_path):
    case = tiny_case(tmp_path / "c", hydro_mods={0: {"min_volume": 2.0}})
    expect(tmp_path, case, "hydro.json", "Hydrogenerators[0].min_volume", "min_volume <= max_volume")


def test_inflow_file_with_the_wrong_number_of_columns(tmp_path):
    case = tiny_case(tmp_path / "c", reservoirs=2, inflow_rows=["1,2,3,4,5"] * 3)
    expect(tmp_path, case, "inflows.csv", "columns", "a multiple of 2")
    case = tiny_case(tmp_path / "d", reservoirs=2, inflow_rows=["1,2,3,4", "1,2,3"])
    expect(tmp_path, case, "inflows.csv", "row 2", "same")
    case = tiny_case(tmp_path / "e", inflow_rows=["1,2,3"] * 3, prob_rows=["0.5,0.5"] * 3)
    expect(tmp_path, case, "scenarioprobability.csv", "columns", "3 are required")


def test_cascade_naming_a_missing_reservoir(tmp_path):
    case = tiny_case(tmp_path / "c", reservoirs=2, hydro_mods={0: {"downstream_turn": [7]}})
    expect(tmp_path, case, "hydro.json", "Hydrogenerators[0].downstream_turn[0]", "names no reservoir")


def test_cascade_forming_a_cycle(tmp_path):
    case = tiny_case(
        tmp_path / "c",
        reservoirs=3,
        hydro_mods={0: {"downstream_turn": [2]}, 1: {"downstream_spill": [3]}, 2: {"downstream_turn": [1]}},
    )
    expect(tmp_path, case, "hydro.json", "Hydrogenerators", "cycle (1 -> 2 -> 3 -> 1)")


def test_nan_anywhere(tmp_path):
    case = tiny_case(tmp_path / "c", inflow_rows=["10,nan", "1,2", "1,2"])
    expect(tmp_path, case, "inflows.csv", "row 1, column 2", "finite")
    case = tiny_case(tmp_path / "d")
    hy = json.loads((case / "hydro.json").read_text())
    hy["Hydrogenerators"][0]["max_turn"] = float("nan")
    (case / "hydro.json").write_text(json.dumps(hy))  # Python writes NaN, which JSON readers accept
    expect(tmp_path, case, "hydro.json", "Hydrogenerators[0].max_turn", "finite")
    case = tiny_case(tmp_path / "e", pm_mods={"cost_deficit": float("nan")})
    expect(tmp_path, case, "PowerModels.json", "cost_deficit", "finite")


def test_other_bad_values(tmp_path):
    expect(
        tmp_path, tiny_case(tmp_path / "a", prob_rows=["0.5,0.6"] * 3), "scenarioprobability.csv", "row 1", "sum to 1"
    )
    expect(tmp_path, tiny_case(tmp_path / "b", inflow_rows=["-1,2"] * 3), "inflows.csv", "row 1, column 1", "negative")
    expect(tmp_path, tiny_case(tmp_path / "c"), "problem.toml", "initial_volume[0]", "outside", initial_volume=[3.0])
    expect(tmp_path, tiny_case(tmp_path / "d"), "problem.toml", "inflow_model", "choose one of", inflow_model="arma")
    expect(tmp_path, tiny_case(tmp_path / "e"), "problem.toml", "colour", "unknown key", colour=1)


def test_command_line_exits_2_and_records_nothing(tmp_path):
    case = tiny_case(tmp_path / "c", hydro_mods={0: {"min_volume": 2.0}})
    prob = problem_file(tmp_path, case)
    store = tmp_path / "runs.sqlite"
    r = subprocess.run(
        [sys.executable, "-m", "opsrl.cli", "run", str(prob), "myopic", "--store", str(store), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "min_volume" in r.stderr and "hydro.json" in r.stderr
    if store.exists():
        con = sqlite3.connect(store)
        tables = [t for (t,) in con.execute("select name from sqlite_master where type='table'")]
        assert all(con.execute(f"select count(*) from {t}").fetchone()[0] == 0 for t in tables if t.startswith("run"))


def test_sampling_uses_the_stage_probabilities_and_cycles_the_rows(tmp_path):
    case = tiny_case(tmp_path / "c", inflow_rows=["1,2,3", "4,5,6"], prob_rows=["0.2,0.5,0.3", "1,0,0"])
    p = load(tmp_path, case, stages=5)
    sc = p.sample(20000, "train", 0)
    w = sc["inflow"][..., 0].numpy()
    for t in (0, 2, 4):  # row 1 at stages 0, 2, 4
        freq = np.array([(w[:, t] == v).mean() for v in (1, 2, 3)])
        assert np.allclose(freq, [0.2, 0.5, 0.3], atol=0.015)
    assert np.all(w[:, 1] == 4) and np.all(w[:, 3] == 4)  # row 2: its first scenario has probability 1
    again = p.sample(20000, "train", 0)["inflow"]
    assert torch.equal(again, sc["inflow"]) and not torch.equal(p.sample(20000, "test", 0)["inflow"], sc["inflow"])
    # stages are drawn independently: the draws of stages 0 and 2 are uncorrelated
    assert abs(np.corrcoef(w[:, 0], w[:, 2])[0, 1]) < 0.03


def test_ar1_option_on_bolivia():
    p = load_problem("hydro/bolivia", {"inflow_model": "ar1"})
    sc = p.sample(500, "train", 0)
    w = sc["inflow"].numpy()
    assert w.shape == (500, 96, p.H) and (w >= 0).all()
    m = p.ar1
    # the fitted lag-1 coefficients show up in the sampled paths (standardised by the row means and deviations)
    rows = np.arange(96) % p.case.rows
    z = (w - m["mu"][rows][None]) / np.where(m["sd"][rows] > 0, m["sd"][rows], 1.0)[None]
    h = int(np.argmax(m["phi"]))
    lag1 = np.mean(z[:, 1:60, h] * z[:, :59, h]) / np.mean(z[:, :59, h] ** 2)
    assert lag1 == pytest.approx(m["phi"][h], abs=0.08)
    assert m["phi"][h] > 0.3  # monthly inflows are persistent


def test_demand_file_sets_loads_per_stage(tmp_path):
    case = tiny_case(tmp_path / "c")
    (case / "_demand.csv").write_text("0.5\n0.9\n")  # column 1: bus 1; rows cycle over the stages
    p = load(tmp_path, case, demand_file=True, stages=3, load_scale=2.0)
    assert [float(p.loads(t)[0]) for t in range(3)] == pytest.approx([1.0, 1.8, 1.0])
    (case / "_demand.csv").write_text("")
    expect(tmp_path, case, "_demand.csv", "", "empty", demand_file=True)
