"""Sizes known before anything is allocated, and solvers that do not fit a problem's family (issue 26).

Every case runs the real command line against a copy of a store that holds one run: exit status 2, one line
naming the file or flag, the key and what is allowed, no traceback, the store's bytes unchanged, and nothing
trained (``refused`` replaces ``execute`` with a function that fails the test). The memory estimates are
compared with a fixed amount of free memory (``FREE``), so that no case depends on the machine's load.
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest
import tomllib
from test_bad_inputs import refused, run_args

from opsrl import cli
from opsrl.core import ConfigError
from opsrl.core.config import cpu_count, mlp_bytes
from opsrl.registry import FAMILY_MODULES, bundled, family, generic_methods, load_solver

FREE = 16 * 2**30  # the free memory every estimate is compared with here
SMALL = ["--problem-set", "test.scenarios=64", "--problem-set", "test.periods=80", "--problem-set", "test.warmup=10"]
P4 = "inventory/lost_sales_p4_L1"


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "seeded.sqlite"
    assert cli.main(["run", P4, "base_stock", "--set", "level=6", "-q", "--store", str(path), *SMALL]) == 0
    return path


@pytest.fixture
def store(seeded_store, tmp_path, monkeypatch):
    monkeypatch.setattr("opsrl.core.config.available_memory", lambda device="cpu": float(FREE))
    path = tmp_path / "store.sqlite"
    shutil.copy(seeded_store, path)
    return path


# --- sizes bounded by their own key ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "problem, solver, flag, pair, key, words",
    [
        ("vm/tiny", "vm_greedy", "--problem-set", "mnl=2000000000", "mnl", "at most 1e+06"),
        ("vm/tiny", "vm_greedy", "--problem-set", "mnl=1000000", "mnl", "an integer from 1 to 8 is allowed"),
        ("vm/tiny", "vm_greedy", "--problem-set", "anti_affinity.groups=2000000000", "anti_affinity.groups", "at most"),
        ("vm/tiny", "vm_greedy", "--problem-set", "anti_affinity.groups=3", "anti_affinity.groups", "at most 2 groups"),
        ("vm/tiny", "vm_greedy", "--problem-set", "vms=2000000000", "vms", "at most 1e+06"),
        ("vm/tiny", "vm_gnn_best64", "--set", "samples=2000000000", "options.samples", "at most 100000"),
        ("vm/tiny", "vm_gnn", "--set", "threads=1000000", "options.threads", f"from 0 to {cpu_count()}"),
        ("vm/tiny", "vm_cpsat", "--set", "workers=1000000", "options.workers", "at most 256"),
        ("jobshop/abz5", "gnn_sample128", "--set", "samples=2000000000", "options.samples", "at most 100000"),
        ("lotsizing/i15_m5", "hdpo_lotsizing", "--set", "hidden=[1000000000]", "options.hidden", "at most 65536"),
        ("lotsizing/i15_m5", "lotsizing_cover_rule", "--set", "dev_scenarios=2e9", "options.dev_scenarios", "10^7"),
        ("lotsizing/i15_m5", "lotsizing_hindsight", "--set", "threads=1000000", "options.threads", "the CPUs"),
        ("microgrid/remote", "soc_hysteresis", "--set", "dev_scenarios=2e9", "options.dev_scenarios", "10^6"),
        (
            "microgrid/remote",
            "operator_rules",
            "--problem-set",
            "battery.rainflow_stack=2000000000",
            "battery.rainflow_stack",
            "at most 10000",
        ),  # noqa: E501
        (
            "microgrid/remote",
            "operator_rules",
            "--problem-set",
            "shield.horizon_minutes=2000000000",
            "shield.horizon_minutes",
            "at most 1440",
        ),  # noqa: E501
        (
            "microgrid/remote",
            "operator_rules",
            "--problem-set",
            "forecast.leads=[2e9]",
            "forecast.leads",
            "at most 1440",
        ),
        (
            "microgrid/remote",
            "operator_rules",
            "--problem-set",
            "genset.rolling_hours=1e15",
            "genset.rolling_hours",
            "at most 8760",
        ),  # noqa: E501
        ("microgrid/remote", "mpc", "--set", "horizon_minutes=2000000000", "options.horizon_minutes", "at most 1440"),
        (P4, "hdpo_mlp", "--set", "policy.hidden=[64, 64, 1000000000]", "policy.hidden", "at most 65536"),
        (P4, "ppo", "--set", "policy.levels=[1000000000]", "policy.levels", "at most 100000"),
    ],
)
def test_size_refused_by_its_key(store, capsys, monkeypatch, problem, solver, flag, pair, key, words):
    refused(
        run_args(problem, solver, store, flag, pair), store, capsys, flag, f"'{key}'", words, monkeypatch=monkeypatch
    )


# --- sizes that only an estimate bounds: named keys, no allocation -------------------------------------
@pytest.mark.parametrize(
    "problem, solver, extra, key, lower",
    [
        # the network: 3 layers of 65536 units (the widest allowed) are about 130 GiB of parameters alone
        (
            "lotsizing/i15_m5",
            "hdpo_lotsizing",
            ["--set", "hidden=[65536, 65536, 65536]"],
            "options.hidden",
            "lower 'options.hidden' or 'options.batch_size'",
        ),
        (
            P4,
            "hdpo_mlp",
            ["--set", "policy.hidden=[65536, 65536, 65536]"],
            "policy.hidden",
            "lower 'policy.hidden' or 'options.max_batch_size'",  # the batch grows to 4096 on a plateau
        ),
        (
            P4,
            "ppo",
            ["--set", "policy.hidden=[65536, 65536]", "--set", "batch_size=100000"],
            "policy.hidden",
            "lower 'policy.hidden' or 'options.batch_size'",
        ),
        # HDPO's training pool, estimated in prepare (not only when training starts)
        (
            P4,
            "hdpo_mlp",
            ["--set", "train_scenarios=10000000", "--set", "train_periods=100000"],
            "options.train_scenarios",
            "lower 'options.train_scenarios' or 'options.train_periods'",
        ),
        # scenarios a family method draws (Field.counts)
        (
            "lotsizing/i15_m5",
            "lotsizing_cover_rule",
            ["--set", "dev_scenarios=10000000"],
            "options.dev_scenarios",
            "lower 'options.dev_scenarios'",
        ),
        (
            P4,
            "base_stock",
            ["--set", "dev_scenarios=10000000", "--set", "dev_periods=100000"],
            "options.dev_scenarios",
            "lower 'options.dev_scenarios' or 'options.dev_periods'",
        ),  # noqa: E501
        # best of K plans: K copies of the test set at once
        (
            "vm/tiny",
            "vm_gnn_best64",
            ["--set", "samples=100000", "--problem-set", "test.scenarios=100000"],
            "options.samples",
            "lower 'options.samples' or 'test.scenarios'",
        ),
        # ARS rolls out 2 x directions candidates on every training day at once
        (
            "microgrid/remote",
            "ars_hysteresis",
            ["--set", "params=''", "--set", "directions=10000", "--set", "train_scenarios=1000000"],
            "options.train_scenarios",
            "lower 'options.train_scenarios' or 'options.directions'",
        ),
    ],
)
def test_size_refused_by_the_estimate(store, capsys, monkeypatch, problem, solver, extra, key, lower):
    msg = refused(
        run_args(problem, solver, store, *extra), store, capsys, "--set", f"'{key}'", lower, monkeypatch=monkeypatch
    )
    assert "would need about" in msg and "of memory" in msg and "16 GiB free" in msg


def test_mlp_bytes_counts_parameters_and_activations():
    # 3 -> 4 -> 2: (3+1)*4 + (4+1)*2 = 26 parameters x 16 bytes; 10 rows x 6 units x 8 bytes
    assert mlp_bytes(3, [4], 2, rows=10) == 26 * 16 + 10 * 6 * 8
    assert mlp_bytes(3, [4], 2, rows=10, copies=2) == 2 * (26 * 16 + 10 * 6 * 8)


def test_default_mnl_is_cut_to_the_vms(tmp_path):
    """The default MNL (50) on a snapshot of 8 VMs becomes 8; a given MNL above them is refused (above)."""
    from opsrl.registry import load_problem

    f = tmp_path / "p.toml"
    f.write_text('family = "vm"\ngenerator = "tiny"\nblock = 4\n')
    assert load_problem(f).mnl == 8
    assert load_problem("vm/tiny").mnl == 2


# --- physical quantities in data files --------------------------------------------------------------------
def _vmr2l(total_cpu: float) -> dict:
    host = {
        "node_id": "h0",
        "status": "ACTIVE",
        "rack_id": 0,
        "node_cpu": 88,
        "node_mem_mb": 2 * 184320,
        "numa": [
            {
                "node": k,
                "total_cpu": total_cpu if k == 0 else 44,
                "free_cpu": 44,
                "memory_huge_total_mb": 184320,
                "memory_huge_free_mb": 184320,
            }
            for k in (0, 1)
        ],
    }
    vm = {
        "instance_id": "a",
        "instance_type": "ecs.c1.xlarge",
        "host_id": "h0",
        "allow_migration": True,
        "numa": [{"node": 1, "cpu": 4, "mem_mb": 8192}],
    }
    return {"cluster_list": [{"cluster_name": "c", "host_info": [host], "vm_type_info": [], "vm_instance": [vm]}]}


@pytest.mark.parametrize(
    "total_cpu, words",
    [
        (1e308, ("cluster_list[0].host_info[0].numa[0].total_cpu", "1e+15")),  # the loader's magnitude bound
        (1e12, ("cap_cpu", "from 0 to 1e+06 CPUs")),  # a number, but no NUMA node's (check_snapshot)
    ],
)
def test_absurd_numa_capacity_refused(tmp_path, store, capsys, monkeypatch, total_cpu, words):
    data = tmp_path / "snap.json"
    data.write_text(json.dumps(_vmr2l(total_cpu)))
    prob = tmp_path / "p.toml"
    prob.write_text(f'family = "vm"\ngenerator = "file"\nfile = "{data}"\nmnl = 1\n')
    refused(run_args(prob, "vm_greedy", store), store, capsys, str(data), *words, monkeypatch=monkeypatch)


def test_absurd_reservoir_refused(tmp_path, store, capsys, monkeypatch):
    case = tmp_path / "case3"
    shutil.copytree(Path(importlib.import_module("opsrl.hydro").__file__).parent / "data" / "case3", case)
    hy = json.loads((case / "hydro.json").read_text())
    hy["Hydrogenerators"][0]["max_volume"] = 1e300
    (case / "hydro.json").write_text(json.dumps(hy))
    prob = tmp_path / "p.toml"
    prob.write_text(f'family = "hydro"\ncase = "{case}"\n')
    refused(
        run_args(prob, "myopic", store),
        store,
        capsys,
        str(case / "hydro.json"),
        "'Hydrogenerators[0].max_volume'",
        "at most 1e+15",
        monkeypatch=monkeypatch,
    )


# --- solvers written for another family ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "problem, solver, fits",
    [
        ("vm/tiny", "ppo_lotsizing_small", "vm_greedy"),
        ("hydro/case3", "hdpo_gnn", "sddp"),
        ("vm/tiny", "cpsat", "vm_cpsat"),  # jobshop's CP-SAT settings; its method name exists in both families
        ("lotsizing/i15_m5", "ppo", "ppo_lotsizing"),
        ("jobshop/abz5", "hdpo_scu", "gnn_greedy"),
    ],
)
def test_solver_of_another_family(store, capsys, monkeypatch, problem, solver, fits):
    msg = refused(
        run_args(problem, solver, store),
        store,
        capsys,
        str(bundled("solvers")[solver]),
        "'family'",
        "this solver is written for",
        f"not for {family_name(problem)} problems",
        fits,
        monkeypatch=monkeypatch,
    )
    assert "bundled solvers that fit" in msg


def test_family_method_of_another_family(store, capsys, monkeypatch):
    """A family's own method on another family's problem: the method does not apply, and the solvers that fit."""
    refused(
        run_args(P4, "vm_gnn", store),
        store,
        capsys,
        "'method'",
        "'gnn' does not apply to inventory problems",
        "bundled solvers that fit: base_stock",
        monkeypatch=monkeypatch,
    )


def family_name(problem: str) -> str:
    return "inventory" if problem == P4 else problem.split("/")[0]


def test_unknown_family_in_a_solver_file(tmp_path, store, capsys, monkeypatch):
    f = tmp_path / "s.toml"
    f.write_text('method = "base_stock"\nfamily = "atlantis"\n')
    refused(run_args(P4, f, store), store, capsys, str(f), "'family'", "inventory, jobshop", monkeypatch=monkeypatch)


def test_a_family_list_and_no_family(tmp_path):
    fam = family("inventory")
    for text in ('family = ["hydro", "inventory"]\n', 'family = "inventory"\n', ""):
        f = tmp_path / "s.toml"
        f.write_text('method = "myopic"\n' + text)
        assert load_solver(f, fam)[2]["method"] == "myopic"
    f.write_text('method = "myopic"\nfamily = ["hydro"]\n')
    with pytest.raises(ConfigError, match="written for hydro problems, not for inventory problems"):
        load_solver(f, fam)


def test_bundled_solvers_declare_their_family():
    """A family-specific method's solver belongs to the family of its method; a generic method's solver names a
    family unless its settings are generic, and then loads for every family its method applies to."""
    fams = {n: importlib.import_module(m).FAMILY for n, m in FAMILY_MODULES.items()}
    generic = generic_methods()
    no_family = set()
    for name, path in bundled("solvers").items():
        raw = tomllib.loads(path.read_text())
        declared = raw.get("family", [])
        declared = [declared] if isinstance(declared, str) else declared
        owners = [n for n, f in fams.items() if raw["method"] in f.methods]
        if raw["method"] in generic:
            if not declared:
                no_family.add(name)
        else:
            assert declared and set(declared) <= set(owners), (name, declared, owners)
        for fam_name in declared or list(fams):
            load_solver(path, fams[fam_name])
    assert no_family == {"hdpo_mlp", "hdpo_mlp_net", "tsddr", "tsddr_lstm", "tsldr"}


def test_sweep_leaves_out_solvers_of_another_family():
    """A sweep over two families runs each solver on the problems of its own family and says so for the rest."""
    from opsrl.bench.sweep import load_sweep

    sw = load_sweep(problems=[P4, "vm/tiny"], solvers=["ppo", "vm_greedy", "myopic"], seeds=[0])
    ran = sorted((c.id.problem, c.id.solver) for c in sw.cells)
    assert ran == sorted([(P4, "ppo"), (P4, "myopic"), ("vm/tiny", "vm_greedy")])
    why = {(p, s): w for p, s, w in sw.skipped}
    assert why == {
        ("vm/tiny", "ppo"): "the solver is written for inventory problems",
        (P4, "vm_greedy"): "method 'greedy' does not apply to inventory problems",
        ("vm/tiny", "myopic"): "method 'myopic' does not apply to vm problems",
    }


def test_compare_leaves_out_solvers_of_another_family(tmp_path):
    """The Python API's compare leaves a solver written for another family out of that problem, as the sweep."""
    import warnings

    import opsrl

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = opsrl.compare(["vm/tiny"], ["vm_greedy", "ppo_lotsizing_small"], seeds=1, store=tmp_path / "s.sqlite")
    assert list(df["solver"]) == ["vm_greedy"]
    assert any("ppo_lotsizing_small" in str(w.message) or "written for lotsizing" in str(w.message) for w in caught)
