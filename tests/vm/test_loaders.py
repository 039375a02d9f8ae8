"""Snapshot loaders (VMR2L JSON, Azure Packing Trace 2020, Huawei-East-1) on small files written here, and the
clear errors for bad input."""

import json
import sqlite3

import pytest

from opsrl.core import ConfigError
from opsrl.vm.loaders import load
from opsrl.vm.problem import build


def vmr2l_doc(vm_type="ecs.c1.xlarge", cpu0=4, host_cpu=44):
    host = lambda i: {
        "node_id": f"h{i}",
        "status": "ACTIVE",
        "rack_id": 0,
        "node_cpu": 2 * host_cpu,
        "node_mem_mb": 2 * 184320,
        "numa": [
            {
                "node": k,
                "total_cpu": host_cpu,
                "free_cpu": host_cpu,
                "memory_huge_total_mb": 184320,
                "memory_huge_free_mb": 184320,
            }
            for k in (0, 1)
        ],
    }
    return {
        "cluster_list": [
            {
                "cluster_name": "c",
                "host_info": [host(0), host(1), {**host(2), "status": "DISABLED"}],
                "vm_type_info": [],
                "vm_instance": [
                    {
                        "instance_id": "a",
                        "instance_type": vm_type,
                        "host_id": "h0",
                        "allow_migration": True,
                        "numa": [{"node": 1, "cpu": cpu0, "mem_mb": 8192}],
                    },
                    {
                        "instance_id": "b",
                        "instance_type": "ecs.c1.8xlarge",
                        "host_id": "h1",
                        "allow_migration": False,
                        "numa": [{"node": 0, "cpu": 16, "mem_mb": 32768}, {"node": 1, "cpu": 16, "mem_mb": 32768}],
                    },
                    {
                        "instance_id": "c",
                        "instance_type": "ecs.c1.xlarge",
                        "host_id": "h2",
                        "allow_migration": True,
                        "numa": [{"node": 0, "cpu": 4, "mem_mb": 8192}],
                    },
                ],
            }
        ],
        "vm_type_list": [
            {"vm_type": "ecs.c1.xlarge", "request_cpu": 4, "request_mem_mb": 8192, "numa": 1},
            {"vm_type": "ecs.c1.8xlarge", "request_cpu": 32, "request_mem_mb": 65536, "numa": 2},
        ],
        "general_requirement": {},
    }


def test_vmr2l_json(tmp_path):
    f = tmp_path / "snap.json"
    f.write_text(json.dumps(vmr2l_doc()))
    s = load(f, "vmr2l")
    assert s.P == 2 and s.V == 2  # the DISABLED host and its VM are left out, as in the VMR2L environment
    assert s.cap_cpu.tolist() == [[44, 44], [44, 44]] and s.cap_mem.tolist() == [[180, 180], [180, 180]]
    assert s.vm_cpu.tolist() == [4, 32] and s.vm_mem.tolist() == [8, 64]
    assert s.vm_double.tolist() == [False, True] and s.vm_node.tolist() == [1, 2] and s.vm_pm.tolist() == [0, 1]
    assert s.vm_movable.tolist() == [True, False]
    p = build({"generator": "file", "file": str(f), "format": "vmr2l", "mnl": 2}, "<test>")
    st = p.initial_state(p.test_set())
    assert st["free_cpu"][0].tolist() == [[44, 40], [28, 28]]
    # FR: (12 + 8 + 12 + 12) / 140
    assert p.fr(st)[0].item() == pytest.approx(44 / 140)


@pytest.mark.parametrize(
    "doc, key, words",
    [
        (vmr2l_doc(vm_type="ecs.mystery"), "instance_type", "unknown flavour"),
        (vmr2l_doc(cpu0=60), "file", "larger than every NUMA node"),
        (vmr2l_doc(cpu0=44, host_cpu=44), None, None),
    ],
)
def test_vmr2l_bad_input(tmp_path, doc, key, words):
    f = tmp_path / "bad.json"
    if words is None:  # 44 cores fit a 44-core node exactly; two of them on node 1 do not
        doc["cluster_list"][0]["vm_instance"].append(dict(doc["cluster_list"][0]["vm_instance"][0], instance_id="d"))
        key, words = "file", "over capacity"
    f.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as e:
        load(f, "vmr2l")
    assert key in e.value.key and words in e.value.message and str(f) == e.value.source


def test_azure_packing_trace(tmp_path):
    db = tmp_path / "packing_trace_zone_a_v1.sqlite"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE vmType (id INTEGER, vmTypeId INTEGER, machineId INTEGER, core REAL, memory REAL, "
        "hdd REAL, ssd REAL, nic REAL)"
    )
    con.execute(
        "CREATE TABLE vm (vmId INTEGER, tenantId INTEGER, vmTypeId INTEGER, priority INTEGER, starttime REAL, "
        "endtime REAL)"
    )
    # machine 7: 88 cores, 360 GiB; type 1: a quarter of the cores (22) and 0.1 of the memory (36 GiB);
    # type 2: 0.75 of the cores (66: double-NUMA, 33 per node)
    con.executemany(
        "INSERT INTO vmType VALUES (?,?,?,?,?,0,0,0)", [(1, 1, 7, 0.25, 0.1), (2, 2, 7, 0.75, 0.2), (3, 1, 9, 0.5, 0.5)]
    )
    con.executemany(
        "INSERT INTO vm VALUES (?,0,?,0,?,?)",
        [(10, 1, 0.0, 5.0), (11, 1, 0.5, None), (12, 2, 1.0, None), (13, 1, 6.0, None)],
    )
    con.commit()
    con.close()
    s = load(db, "azure", {"time": 2.0, "machine_id": 7})
    # at day 2: VMs 10 (22 cores, node 0 of PM 0), 11 (best fit: node 0 of PM 0, 22 free there), 12 (66 cores)
    assert s.V == 3 and sorted(s.vm_cpu.tolist()) == [22, 22, 66]
    assert s.vm_double.tolist().count(True) == 1
    assert s.cap_cpu[0].tolist() == [44, 44]
    uc, _ = s.usage()
    assert uc.sum() == 110 and (uc <= 44).all()
    # NaN in the trace: one clear error naming the file and the column
    con = sqlite3.connect(db)
    con.execute("UPDATE vmType SET core = 'nan' WHERE vmTypeId = 2")
    con.commit()
    con.close()
    with pytest.raises(ConfigError) as e:
        load(db, "azure", {"time": 2.0, "machine_id": 7})
    assert e.value.key == "vmType.core" and "NaN" in e.value.message


def test_huawei_trace(tmp_path):
    f = tmp_path / "Huawei-East-1.csv"
    f.write_text("vmid,cpu,memory,time,type\n0,8,16,0,0\n1,16,32,1,0\n2,4,8,2,0\n0,8,16,3,1\n3,30,60,4,0\n")
    s = load(f, "huawei", {"time": 3.5, "pms": 2})
    # 20-core, 45 GB nodes: VM 1 (16) and VM 2 (4) alive at 3.5; VM 0 left at 3
    assert s.P == 2 and sorted(s.vm_cpu.tolist()) == [4, 16]
    s2 = load(f, "huawei", {"pms": 2})  # the 30-core VM is larger than a node: double-NUMA, 15 per node
    assert 30 in s2.vm_cpu.tolist() and s2.vm_double[s2.vm_cpu.tolist().index(30)]
    f.write_text("vmid,cpu,memory,time,type\n0,8,nan,0,0\n")
    with pytest.raises(ConfigError) as e:
        load(f, "huawei")
    assert e.value.key == "row 2.memory" and "NaN" in e.value.message


def test_config_errors():
    with pytest.raises(ConfigError) as e:
        build({"generator": "tiny", "mnl": -3}, "p.toml")
    assert e.value.key == "mnl" and e.value.source == "p.toml"
    with pytest.raises(ConfigError) as e:
        build({"generator": "file", "file": "/nonexistent.json"}, "p.toml")
    assert e.value.key == "file" and "not found" in e.value.message
    with pytest.raises(ConfigError):
        build({"generator": "tiny", "colour": 3}, "p.toml")


def test_cli_bad_input_exit_status_2(tmp_path, capsys):
    from opsrl import cli
    from opsrl.bench.store import ResultsStore

    store = tmp_path / "s.sqlite"
    assert cli.main(["run", "vm/tiny", "vm_greedy", "-q", "--store", str(store)]) == 0
    bad = tmp_path / "neg.toml"
    bad.write_text('family = "vm"\ngenerator = "tiny"\nmnl = -1\n')
    assert cli.main(["run", str(bad), "vm_greedy", "-q", "--store", str(store)]) == 2
    assert "mnl" in capsys.readouterr().err
    trace = tmp_path / "t.csv"
    trace.write_text("vmid,cpu,memory,time,type\n0,8,nan,0,0\n")
    bad.write_text(f'family = "vm"\ngenerator = "file"\nformat = "huawei"\nfile = "{trace}"\n')
    assert cli.main(["run", str(bad), "vm_greedy", "-q", "--store", str(store)]) == 2
    assert len(list(ResultsStore(store).records())) == 1  # only the good run was recorded
