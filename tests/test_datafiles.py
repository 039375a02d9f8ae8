"""Data files are checked against one declared schema per format before any field is used (issue 26): every
problem gives one ConfigError naming the file, the path inside it and what is allowed; generated
structurally wrong JSON and CSV give a ConfigError and never another exception; a problem file's data file
resolves against the problem file's folder."""

from __future__ import annotations

import copy
import json
import sqlite3
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsrl import cli
from opsrl.core import ConfigError
from opsrl.core.datafile import load_json, read_csv, read_text, resolve
from opsrl.hydro.cases import load_case
from opsrl.registry import family, load_for_solver, load_problem, load_solver
from opsrl.vm.loaders import load

sys.path.insert(0, str(Path(__file__).parent / "hydro"))
from hydro_tiny import problem_file, tiny_case  # noqa: E402
from vm.test_loaders import vmr2l_doc  # noqa: E402

FUZZ = settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def error(fn, *args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        fn(*args, **kwargs)
    return e.value


def expect(err: ConfigError, source, key, *words):
    """The error names ``source`` (a path or its end), exactly ``key``, and each of ``words``."""
    assert str(err.source).endswith(str(source)), err
    assert err.key == key, err
    for w in words:
        assert w in err.message, (w, str(err))


def refused(argv, tmp_path, capsys, *words) -> str:
    """The command exits 2 with one line naming ``words``, no traceback, and creates no store."""
    store = tmp_path / "runs.sqlite"
    rc = cli.main([str(a) for a in argv] + ["-q", "--store", str(store)])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not store.exists()
    return lines[0]


# --- the shared part: files, text, JSON, CSV -----------------------------------------------------
def test_missing_file_and_folder_name_the_key_that_names_them(tmp_path):
    expect(error(read_text, tmp_path / "none.json", "p.toml", "file"), "p.toml", "file", "file not found")
    expect(error(read_text, tmp_path, "p.toml", "file"), "p.toml", "file", "is a folder", "a data file is required")
    expect(error(read_text, tmp_path), str(tmp_path), None, "is a folder")


def test_not_utf8_names_line_and_byte(tmp_path):
    f = tmp_path / "x.csv"
    f.write_bytes(b"a,b\n1,2\n3,caf\xe9\n")
    expect(error(read_text, f), "x.csv", "line 3", "byte 0xe9 at line 3, byte 6 of the line", "UTF-8")


def test_json_syntax_error_names_line_and_column(tmp_path):
    f = tmp_path / "x.json"
    f.write_text('{\n  "a": 1,\n  "b": \n}\n')
    expect(error(load_json, f), "x.json", "line 4", "not valid JSON", "line 4, column 1")
    f.write_text('{"bus": {"1": {"bus_i": 1}, "1": {"bus_i": 2}}}')  # one id twice: JSON keeps the last
    expect(error(load_json, f), "x.json", "1", "appears twice in one object")


def test_csv_header_and_row_lengths(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("a,b\n1,2\n3\n")
    expect(error(read_csv, f, ("a", "b")), "x.csv", "row 3", "has 1 field(s), the header has 2")
    f.write_text("a,a\n1,2\n")
    expect(error(read_csv, f), "x.csv", "row 1", "column 'a' appears twice")
    f.write_text("")
    expect(error(read_csv, f, ("a",)), "x.csv", "row 1", "no header line", "naming a")
    f.write_text("\ufeffa,b\n1,2\n\n")  # a byte-order mark and a blank line are not data
    assert read_csv(f, ("a", "b")) == [{"_line": 2, "a": "1", "b": "2"}]


def test_resolve_against_the_problem_files_folder(tmp_path, monkeypatch):
    (tmp_path / "p").mkdir()
    prob = tmp_path / "p" / "x.toml"
    prob.write_text("")
    monkeypatch.chdir(tmp_path)
    assert resolve("d.json", "p/x.toml") == tmp_path / "p" / "d.json"
    assert resolve("/abs/d.json", "p/x.toml") == Path("/abs/d.json")
    assert resolve("d.json", "<config>") == Path("d.json")  # a table has no folder: the working directory


# --- VMR2L JSON ------------------------------------------------------------------------------------
def vmr2l_file(tmp_path, edit=None, name="snap.json") -> Path:
    doc = vmr2l_doc()
    if edit:
        edit(doc)
    f = tmp_path / name
    f.write_text(json.dumps(doc))
    return f


def _host(doc, i=0):
    return doc["cluster_list"][0]["host_info"][i]


def _vm(doc, i=0):
    return doc["cluster_list"][0]["vm_instance"][i]


@pytest.mark.parametrize(
    "edit, key, words",
    [
        (lambda d: d["cluster_list"][0]["host_info"].__setitem__(1, ["h1"]), "cluster_list[0].host_info[1]", ["table"]),
        (lambda d: d.__setitem__("cluster_list", {"c": 1}), "cluster_list", ['found {"c": 1}', "a list is required"]),
        (lambda d: _host(d).__setitem__("numa", None), "cluster_list[0].host_info[0].numa", ["found null", "list"]),
        (
            lambda d: _vm(d)["numa"][0].__setitem__("node", "left"),
            "cluster_list[0].vm_instance[0].numa[0].node",
            ['found "left"', "allowed: 0 or 1"],
        ),
        (
            lambda d: _host(d)["numa"][1].__setitem__("node", 0),
            "cluster_list[0].host_info[0].numa",
            ["node 0 and node 1"],
        ),
        (
            lambda d: _host(d, 1)["numa"][0].__setitem__("total_cpu", -4),
            "cluster_list[0].host_info[1].numa[0].total_cpu",
            ["found -4", ">= 0"],
        ),
        (
            lambda d: _host(d, 1)["numa"][0].__setitem__("total_cpu", 1e308),
            "cluster_list[0].host_info[1].numa[0].total_cpu",
            ["at most 1e+15"],
        ),
        (
            lambda d: _vm(d, 1).__setitem__("numa", [{"node": 0, "cpu": 1, "mem_mb": 2}] * 3),
            "cluster_list[0].vm_instance[1].numa",
            ["at most 2 item(s)"],
        ),
        (lambda d: _vm(d).pop("host_id"), "cluster_list[0].vm_instance[0].host_id", ["missing"]),
        (
            lambda d: _vm(d).__setitem__("host_id", "h9"),
            "cluster_list[0].vm_instance[0].host_id",
            ["names no host", "h0, h1, h2"],
        ),
        # duplicated ids: two hosts with one node_id (a VM would silently vanish), two VMs, two flavours
        (
            lambda d: _host(d, 1).__setitem__("node_id", "h0"),
            "cluster_list[0].host_info[1].node_id",
            ['node_id "h0" appears twice', "cluster_list[0].host_info[0].node_id", "unique"],
        ),
        (
            lambda d: _vm(d, 2).__setitem__("instance_id", "a"),
            "cluster_list[0].vm_instance[2].instance_id",
            ['instance_id "a" appears twice'],
        ),
        (
            lambda d: d["vm_type_list"].append({"vm_type": "ecs.c1.xlarge"}),
            "vm_type_list[2].vm_type",
            ["appears twice"],
        ),
    ],
)
def test_vmr2l_schema(tmp_path, edit, key, words):
    f = vmr2l_file(tmp_path, edit)
    expect(error(load, f, "vmr2l"), f, key, *words)


def test_vmr2l_not_utf8_and_folder(tmp_path):
    f = tmp_path / "snap.json"
    f.write_bytes(json.dumps(vmr2l_doc()).encode().replace(b"ecs.c1.8xlarge", b"ecs.c1.8xlarg\xe9"))
    expect(error(load, f, "vmr2l", source="p.toml"), "snap.json", "line 1", "byte 0xe9", "UTF-8")
    expect(error(load, tmp_path, "vmr2l", source="p.toml"), "p.toml", "file", "is a folder")


# --- Azure Packing Trace (a folder of CSV files, or the SQLite file) --------------------------------
VMTYPE = "vmTypeId,machineId,core,memory\n1,7,0.25,0.1\n2,7,0.75,0.2\n"
VM = "vmId,vmTypeId,starttime,endtime\n10,1,0,5\n11,1,0.5,\n12,2,1,NULL\n"


def azure_folder(tmp_path, vmtype=VMTYPE, vm=VM) -> Path:
    d = tmp_path / "azure"
    d.mkdir(exist_ok=True)
    (d / "vmType.csv").write_bytes(vmtype if isinstance(vmtype, bytes) else vmtype.encode())
    (d / "vm.csv").write_bytes(vm if isinstance(vm, bytes) else vm.encode())
    return d


def test_azure_folder_loads(tmp_path):
    s = load(azure_folder(tmp_path), "azure", {"time": 2.0})
    assert sorted(s.vm_cpu.tolist()) == [22, 22, 66] and s.vm_double.tolist().count(True) == 1


@pytest.mark.parametrize(
    "vmtype, vm, file, key, words",
    [
        ("machineId,core,memory\n7,0.25,0.1\n", VM, "vmType.csv", "row 1", ["lacks column(s) vmTypeId"]),
        (VMTYPE.replace("\n2,7", "\nsmall,7"), VM, "vmType.csv", "row 3.vmTypeId", ['found "small"', "an integer"]),
        (VMTYPE.replace("0.75", "nan"), VM, "vmType.csv", "row 3.core", ["NaN"]),
        (VMTYPE.replace("0.75", "75"), VM, "vmType.csv", "row 3.core", ["<= 1"]),
        (VMTYPE + "1,7,0.5,0.5\n", VM, "vmType.csv", "row 4.vmTypeId", ["appears twice", "row 2.vmTypeId"]),
        (VMTYPE, VM + "10,2,3,4\n", "vm.csv", "row 5.vmId", ["vmId 10 appears twice"]),
        (VMTYPE, VM.replace("0,5", "6,5"), "vm.csv", "row 2", ["endtime 5 is before starttime 6"]),
        (VMTYPE, VM.replace("11,1,0.5,", "11,1"), "vm.csv", "row 3", ["has 2 field(s)"]),
        (VMTYPE.encode() + b"3,7,0.5,0.5 \xe9\n", VM, "vmType.csv", "line 4", ["byte 0xe9", "UTF-8"]),
    ],
)
def test_azure_schema(tmp_path, vmtype, vm, file, key, words):
    d = azure_folder(tmp_path, vmtype, vm)
    expect(error(load, d, "azure"), d / file, key, *words)


def test_azure_sqlite_names_table_and_row(tmp_path):
    db = tmp_path / "trace.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE vmType (vmTypeId, machineId, core, memory)")
    con.execute("CREATE TABLE vm (vmId, vmTypeId, starttime, endtime)")
    con.executemany("INSERT INTO vmType VALUES (?,?,?,?)", [(1, 7, 0.25, 0.1), ("small", 7, 0.5, 0.5)])
    con.execute("INSERT INTO vm VALUES (10, 1, 0, NULL)")
    con.commit()
    con.close()
    expect(error(load, db, "azure"), db, "vmType.vmTypeId", "row 2:", 'found "small"', "an integer")


# --- Huawei-East-1 -----------------------------------------------------------------------------------
HUAWEI = "vmid,cpu,memory,time,type\n0,8,16,0,0\n1,16,32,1,0\n0,8,16,3,1\n"


@pytest.mark.parametrize(
    "text, key, words",
    [
        (HUAWEI + "1,4,8,4,0\n", "row 5.vmid", ["created at row 3 and not deleted"]),
        (HUAWEI + "0,4,8,4,2\n", "row 5.type", ["found 2", "allowed: 0 or 1"]),
        (HUAWEI + "0,4,8,4\n", "row 5", ["has 4 field(s), the header has 5"]),
        (HUAWEI.replace("cpu,", "cores,"), "row 1", ["lacks column(s) cpu"]),
        (HUAWEI + "2,four,8,4,0\n", "row 5.cpu", ['found "four"', "a number"]),
    ],
)
def test_huawei_schema(tmp_path, text, key, words):
    f = tmp_path / "huawei.csv"
    f.write_text(text)
    expect(error(load, f, "huawei"), f, key, *words)
    f.write_text(HUAWEI + "0,8,16,5,0\n")  # a VM id created again after its deletion is fine
    assert load(f, "huawei").V == 2


def test_huawei_not_utf8(tmp_path):
    f = tmp_path / "huawei.csv"
    f.write_bytes(HUAWEI.encode() + b"2,4,8,4,0 \xe9\n")
    expect(error(load, f, "huawei"), f, "line 5", "byte 0xe9", "UTF-8")


# --- VM through the command line: a folder as the data file, a relative file from another folder --------
def vm_problem(folder: Path, file: str, fmt: str = "vmr2l") -> Path:
    p = folder / "snap.toml"
    p.write_text(f'family = "vm"\ngenerator = "file"\nformat = "{fmt}"\nfile = "{file}"\nmnl = 2\n')
    return p


def test_vm_folder_as_data_file_exit_2(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    p = vm_problem(tmp_path, "data")
    refused(["run", p, "vm_greedy"], tmp_path, capsys, str(p), "key 'file'", "is a folder")


def test_vm_file_non_utf8_exit_2(tmp_path, capsys):
    f = tmp_path / "snap.json"
    f.write_bytes(json.dumps(vmr2l_doc()).encode().replace(b"ecs.c1.8xlarge", b"\xe9"))
    refused(["run", vm_problem(tmp_path, "snap.json"), "vm_greedy"], tmp_path, capsys, str(f), "byte 0xe9")


def test_vm_relative_file_resolves_against_the_problem_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    vmr2l_file(tmp_path / "a")
    p = vm_problem(tmp_path / "a", "snap.json")
    store = tmp_path / "runs.sqlite"
    monkeypatch.chdir(tmp_path / "b")  # the working directory holds no snap.json
    assert cli.main(["run", str(p), "vm_greedy", "-q", "--store", str(store), "--problem-set", "test.scenarios=1"]) == 0
    monkeypatch.chdir(tmp_path)
    assert load_problem(p).snapshot.V == 2


# --- hydro -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, file, key, words",
    [
        (
            {"pm_mods": {"gen": {"1": {"index": 1, "gen_bus": 1, "pmax": 0.5, "gen_status": None}}}},
            "PowerModels.json",
            "gen.1.gen_status",
            ["found null", "allowed: 0 or 1"],
        ),
        ({"pm_mods": {"bus": {"1": [1, 3]}}}, "PowerModels.json", "bus.1", ["found [1, 3]", "table"]),
        (
            {"pm_mods": {"bus": {"1": {"bus_i": 1, "bus_type": "PV"}}}},
            "PowerModels.json",
            "bus.1.bus_type",
            ['found "PV"', "allowed: 1, 2, 3 or 4"],
        ),
        (
            {"pm_mods": {"bus": {"1": {"bus_i": 1, "bus_type": 3}, "2": {"bus_i": 1, "bus_type": 1}}}},
            "PowerModels.json",
            "bus.2",
            ["bus number 1 appears twice", "bus.1"],
        ),
        ({"pm_mods": {"gen": []}}, "PowerModels.json", "gen", ["found []", "table"]),
        (
            {"hydro_mods": {0: {"downstream_turn": ["two"]}}},
            "hydro.json",
            "Hydrogenerators[0].downstream_turn[0]",
            ['found "two"', "an integer"],
        ),
        ({"hydro_mods": {0: {"max_volume": None}}}, "hydro.json", "Hydrogenerators[0].max_volume", ["found null"]),
        (
            {"reservoirs": 2, "hydro_mods": {1: {"index": 1}}},
            "hydro.json",
            "Hydrogenerators[1].index",
            ["index 1 appears twice"],
        ),
    ],
)
def test_hydro_schema(tmp_path, kwargs, file, key, words):
    case = tiny_case(tmp_path / "c", **kwargs)
    expect(error(load_case, case), file, key, *words)


def test_hydro_files_not_utf8_and_not_json(tmp_path):
    case = tiny_case(tmp_path / "c")
    (case / "inflows.csv").write_bytes(b"10,30\n10,3\xe90\n")
    expect(error(load_case, case), "inflows.csv", "line 2", "byte 0xe9")
    case = tiny_case(tmp_path / "d")
    (case / "hydro.json").write_text("[1, 2")
    expect(error(load_case, case), "hydro.json", "line 1", "not valid JSON")
    case = tiny_case(tmp_path / "e")
    (case / "hydro.json").write_text("[]")
    expect(error(load_case, case), "hydro.json", None, "found []", "table")
    case = tiny_case(tmp_path / "f")
    (case / "PowerModels.json").unlink()
    (case / "PowerModels.json").mkdir()
    expect(error(load_case, case), "PowerModels.json", None, "is a folder", "a data file is required")


def test_hydro_initial_volume_of_the_wrong_type_names_the_flag(tmp_path, capsys):
    refused(
        ["run", "hydro/case3", "myopic", "--problem-set", 'initial_volume=["a"]'],
        tmp_path,
        capsys,
        "--problem-set",
        "initial_volume[0]",
        "expected a number",
    )


def test_hydro_case_folder_resolves_against_the_problem_file(tmp_path, monkeypatch):
    (tmp_path / "b").mkdir()
    tiny_case(tmp_path / "a" / "case")
    p = problem_file(tmp_path / "a", "case")
    monkeypatch.chdir(tmp_path / "b")
    assert load_problem(p).H == 1


# --- microgrid -------------------------------------------------------------------------------------
def series(days=3, last=None) -> str:
    rows = ["demand_kw,wind_kw"] + ["300.0,50.0"] * (1440 * days)
    if last is not None:
        rows[-1] = last
    return "\n".join(rows) + "\n"


def microgrid_problem(folder: Path, path: str) -> Path:
    p = folder / "grid.toml"
    p.write_text(
        f'family = "microgrid"\nperiods = 60\n[data]\nsource = "csv"\npath = "{path}"\ntest_days = 1\ndev_days = 1\n'
    )
    return p


@pytest.mark.parametrize(
    "text, key, words",
    [
        (series(last="300.0"), "row 4321", ["has 1 field(s), the header has 2 (demand_kw, wind_kw)"]),
        (series(last="300.0,"), "row 4321.wind_kw", ['found ""', "a number"]),
        (series(last="300.0,-2"), "row 4321.wind_kw", ['found "-2"', ">= 0"]),
        (series(last="nan,2"), "row 4321.demand_kw", ["NaN"]),
        (series().replace("wind_kw", "wind"), "row 1", ["lacks column(s) wind_kw"]),
    ],
    ids=["short row", "empty wind_kw", "negative", "NaN", "no wind_kw column"],
)
def test_microgrid_series_schema(tmp_path, text, key, words):
    (tmp_path / "series.csv").write_text(text)
    expect(error(load_problem, microgrid_problem(tmp_path, "series.csv")), "series.csv", key, *words)


def test_microgrid_not_utf8_folder_and_other_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "series.csv").write_text(series())
    p = microgrid_problem(tmp_path / "a", "series.csv")
    monkeypatch.chdir(tmp_path / "b")
    assert load_problem(p).test_set()["demand"][0, 1].item() == 300.0
    (tmp_path / "a" / "series.csv").write_bytes(series().encode()[:-5] + b"\xe9\n")
    refused(["run", p, "operator_rules"], tmp_path, capsys, "series.csv", "line 4321", "byte 0xe9")
    refused(["run", microgrid_problem(tmp_path / "a", "."), "operator_rules"], tmp_path, capsys, "data.path", "folder")


# --- parameter files of shipped policies ---------------------------------------------------------
@pytest.mark.parametrize(
    "doc, key, words",
    [
        ({}, "theta", ["missing"]),
        ([], None, ["found []", "table"]),
        ({"theta": [0.1, "x"], "leads": [15]}, "theta[1]", ['found "x"', "a number"]),
        ({"theta": [0.1] * 3, "leads": [15, 30, 60, 120, 240]}, "theta", ["found 3 parameters; 16 or 23"]),
    ],
)
def test_ars_parameter_file(tmp_path, doc, key, words):
    from opsrl.core import SolveContext

    _, _, cfg = load_solver("ars_hysteresis", family("microgrid"), {})
    prob = load_for_solver("microgrid/remote", cfg, {"periods": 60, "test.scenarios": 2})
    f = tmp_path / "params.json"
    f.write_text(json.dumps(doc))
    fit = family("microgrid").methods["ars_hysteresis"].fit
    expect(
        error(fit, prob, dict(cfg["options"], params=str(f)), cfg, SolveContext(seed=0, progress=False)), f, key, *words
    )


def test_shipped_network_json(tmp_path):
    import shutil

    from opsrl.core import SolveContext
    from opsrl.microgrid import DATA

    _, _, cfg = load_solver("mpc_clone_wear16", family("microgrid"), {})
    prob = load_for_solver("microgrid/remote", cfg, {"periods": 60, "test.scenarios": 2})
    shutil.copy(DATA / "mpc_clone_wear16.pt", tmp_path / "net.pt")
    fit = family("microgrid").methods[cfg["method"]].fit
    for doc, key, words in (
        ([], None, ["found []", "table"]),
        ({}, "policy", ["missing"]),
        ({"policy": {"kind": "mlp", "hidden": "wide"}}, "policy.hidden", ["expected a list"]),
    ):
        (tmp_path / "net.json").write_text(json.dumps(doc))
        o = dict(cfg["options"], weights=str(tmp_path / "net.pt"))
        expect(error(fit, prob, o, cfg, SolveContext(seed=0, progress=False)), tmp_path / "net.json", key, *words)


# --- generated input: a ConfigError, never another exception -------------------------------------
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([1e308, -1.5, 0.5, 2**70, float("nan"), float("inf")])
    | st.sampled_from(["", "h0", "left", "ACTIVE", "1", "nan", "é"])
)
KEYS = st.sampled_from(
    ["cluster_list", "host_info", "vm_instance", "numa", "node", "node_id", "host_id", "theta", "leads", "x"]
)
JSON = st.recursive(SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(KEYS, c, max_size=3), max_leaves=10)
DELETE = object()


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _replace(doc, path, value):
    if not path:
        return value
    doc = copy.deepcopy(doc)
    node = doc
    for p in path[:-1]:
        node = node[p]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def mutations(doc):
    """``doc`` with one value somewhere replaced by generated JSON (or deleted), or wholly generated JSON."""
    paths = list(_paths(doc))
    return st.one_of(
        JSON,
        st.tuples(st.sampled_from(paths), JSON | st.just(DELETE)).map(
            lambda pv: _replace(doc, pv[0], pv[1]) if pv[0] or pv[1] is not DELETE else doc
        ),
    )


def loads_or_config_error(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ConfigError:
        pass


@FUZZ
@given(doc=mutations(vmr2l_doc()))
def test_generated_vmr2l(tmp_path, doc):
    f = tmp_path / "g.json"
    f.write_text(json.dumps(doc))
    loads_or_config_error(load, f, "vmr2l")


CELLS = st.sampled_from(["", "0", "1", "7", "-1", "0.5", "2.5", "nan", "inf", "1e400", "small", "NULL", '"a,b"'])


def csv_text(columns):
    header = st.lists(st.sampled_from(columns + ["x"]), min_size=0, max_size=len(columns) + 1)
    row = st.lists(CELLS, min_size=0, max_size=len(columns) + 1).map(",".join)
    return st.tuples(header.map(",".join), st.lists(row, max_size=6)).map(lambda hr: "\n".join([hr[0], *hr[1]]) + "\n")


@FUZZ
@given(
    vmtype=csv_text(["vmTypeId", "machineId", "core", "memory"]) | st.just(VMTYPE),
    vm=csv_text(["vmId", "vmTypeId", "starttime", "endtime"]),
)
def test_generated_azure(tmp_path, vmtype, vm):
    loads_or_config_error(load, azure_folder(tmp_path, vmtype, vm), "azure", {"pms": 2})


@FUZZ
@given(rows=st.lists(st.lists(CELLS, min_size=4, max_size=6).map(",".join), max_size=8))
def test_generated_huawei(tmp_path, rows):
    f = tmp_path / "h.csv"
    f.write_text("\n".join(["vmid,cpu,memory,time,type", *rows]) + "\n")
    loads_or_config_error(load, f, "huawei", {"pms": 2})


@FUZZ
@given(text=csv_text(["vmid", "cpu", "memory", "time", "type"]))
def test_generated_huawei_headers(tmp_path, text):
    f = tmp_path / "h.csv"
    f.write_text(text)
    loads_or_config_error(load, f, "huawei", {"pms": 2})


_TINY: dict[str, dict] = {}


def _tiny_docs():
    if not _TINY:
        import tempfile

        folder = tiny_case(Path(tempfile.mkdtemp()) / "c", reservoirs=2)
        _TINY["pm"] = json.loads((folder / "PowerModels.json").read_text())
        _TINY["hy"] = json.loads((folder / "hydro.json").read_text())
    return _TINY


@FUZZ
@given(data=st.data())
def test_generated_hydro(tmp_path, data):
    docs = _tiny_docs()
    which = data.draw(st.sampled_from(["pm", "hy"]))
    doc = data.draw(mutations(docs[which]))
    case = tiny_case(tmp_path / "c", reservoirs=2)
    (case / ("PowerModels.json" if which == "pm" else "hydro.json")).write_text(json.dumps(doc))
    loads_or_config_error(load_case, case)


@FUZZ
@given(text=csv_text(["demand_kw", "wind_kw"]))
def test_generated_microgrid_series(tmp_path, text):
    from opsrl.microgrid.data import load_file

    f = tmp_path / "s.csv"
    f.write_text(text)
    loads_or_config_error(load_file, f, "csv", "p.toml")


@FUZZ
@given(doc=mutations({"theta": [0.0] * 16, "leads": [15, 30, 60, 120, 240], "wear_cap": 0.97}))
def test_generated_ars_parameters(tmp_path, doc):
    from opsrl.core import SolveContext

    if "prob" not in _TINY:
        _, _, cfg = load_solver("ars_hysteresis", family("microgrid"), {})
        _TINY["cfg"] = cfg
        _TINY["prob"] = load_for_solver("microgrid/remote", cfg, {"periods": 60, "test.scenarios": 2})
    cfg, prob = _TINY["cfg"], _TINY["prob"]
    f = tmp_path / "p.json"
    f.write_text(json.dumps(doc))
    fit = family("microgrid").methods["ars_hysteresis"].fit
    loads_or_config_error(fit, prob, dict(cfg["options"], params=str(f)), cfg, SolveContext(seed=0, progress=False))


@pytest.mark.parametrize(
    "doc, key, words",
    [
        ([], None, ["found []", "table"]),
        ({"width": "wide"}, "width", ['found "wide"', "an integer"]),
        ({"width": 10**9}, "width", ["<= 4096"]),
        ({"layers": None}, "layers", ["found null"]),
    ],
)
def test_vm_policy_json(tmp_path, doc, key, words):
    import shutil

    from opsrl.vm import policy

    shutil.copy(policy.WEIGHTS, tmp_path / "w.pt")
    (tmp_path / "w.json").write_text(json.dumps(doc))
    expect(error(policy.load, load_problem("vm/tiny"), tmp_path / "w.pt"), tmp_path / "w.json", key, *words)


@pytest.mark.parametrize(
    "doc, key, words",
    [
        ({}, "network", ["missing"]),
        ({"network": [32, 3]}, "network", ["found [32, 3]", "table"]),
        ({"network": {"width": 32, "layers": -1}}, "network.layers", [">= 0"]),
    ],
)
def test_jobshop_dispatcher_json(tmp_path, doc, key, words):
    import shutil

    from opsrl.jobshop import dispatcher

    shutil.copy(dispatcher.WEIGHTS, tmp_path / "w.pt")
    (tmp_path / "w.json").write_text(json.dumps(doc))
    expect(error(dispatcher.load, load_problem("jobshop/abz5"), tmp_path / "w.pt"), tmp_path / "w.json", key, *words)
