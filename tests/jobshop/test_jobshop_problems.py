"""Bundled problem and solver names, and the references of sets."""

import pytest

from opsrl.jobshop import FAMILY, reference
from opsrl.jobshop import instances as I

registry = pytest.importorskip("opsrl.registry")


def test_every_bundled_jobshop_problem_builds():
    names = [n for n in registry.bundled("problems") if n.startswith("jobshop/")]
    assert {f"jobshop/{i}" for i in I.names()} <= set(names)
    for size in ("15x15", "20x15", "20x20", "30x15", "30x20", "50x15", "50x20", "100x20"):
        assert f"jobshop/ta_{size}" in names
    files = registry.bundled("problems")
    for n in names:  # the family's build on each file (registry.load_problem resolves names: slower)
        cfg = registry.load_toml(files[n])
        assert cfg.pop("family") == "jobshop" and cfg.pop("description")
        assert FAMILY.build(cfg, str(files[n])).periods > 0
    p = registry.load_problem("jobshop/ta_100x20")
    assert [i.name for i in p.instances] == [f"ta{i}" for i in range(71, 81)]
    assert all(i.size == "100x20" for i in p.instances)


def test_set_reference_is_mean_of_bounds():
    p = registry.load_problem("jobshop/ta_30x20")  # ta41-ta50, several open
    ref = reference(p)
    assert ref.kind == "best_known"
    assert ref.value == pytest.approx(sum(I.best_known(f"ta{i}") for i in range(41, 51)) / 10)
    assert reference(registry.load_problem("jobshop/ta01")).kind == "optimum"
    assert reference(registry.load_problem("jobshop/ft10_noisy")) is None
    assert reference(registry.load_problem("jobshop/random_15x15")) is None


def test_solver_files():
    for name in ("spt", "lpt", "mwkr", "lwkr", "mopnr", "fifo", "fdd_mwkr", "cpsat"):
        solver, method, cfg = registry.load_solver(name, FAMILY, {"time_limit": 3} if name == "cpsat" else None)
        assert method.name == name
    assert cfg["options"]["time_limit"] == 3 and cfg["options"]["workers"] == 2


def test_noisy_record_has_no_gaps():
    p = registry.load_problem("jobshop/ft10_noisy")
    rec = FAMILY.record(p, FAMILY.methods["mwkr"].fit(p, {}, {}, None))
    rows = rec["jobshop"]["instances"]
    assert rows[0]["instance"] == "ft10" and "gap_pct" not in rows[0] and rec["jobshop"]["mean_gap_pct"] is None
    assert rows[0]["makespan"] > 0 and rec["jobshop"]["flow_time"] > rows[0]["makespan"]
