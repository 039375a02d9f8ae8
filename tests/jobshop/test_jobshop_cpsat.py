"""CP-SAT: proven optima on ft06 and la01 (published: 55 and 666), valid schedules, the runner, options."""

import pytest
import torch

from opsrl.core import ConfigError
from opsrl.jobshop import FAMILY, check, cpsat
from opsrl.jobshop import instances as I
from opsrl.jobshop import simulator as S


@pytest.mark.parametrize("name,optimum", [("ft06", 55), ("la01", 666)])
def test_cpsat_proves_known_optimum(name, optimum):
    inst = I.load(name)
    assert I.best_known(name) == optimum and I.is_closed(name)
    hint = cpsat.best_rule_schedules([inst])[0]
    check.assert_valid(inst.machine, inst.duration, hint["start"], hint["end"], hint["makespan"])
    res = cpsat.solve(inst, time_limit=30, workers=2, hint=hint["start"])
    assert res.status == "optimal"
    assert res.makespan == optimum and res.lower_bound == optimum
    assert res.hint_makespan == hint["makespan"] > optimum
    check.assert_valid(inst.machine, inst.duration, res.start, res.end, res.makespan)


def test_execute_nominal_plan_reproduces_makespan():
    inst = I.load("ft06")
    res = cpsat.solve(inst, time_limit=30, workers=2)
    nominal = torch.tensor(inst.duration)[None].repeat(3, 1, 1)
    assert cpsat.execute(inst, res.start, nominal).tolist() == [55.0] * 3
    slower = nominal.clone()
    slower[1] *= 2
    assert cpsat.execute(inst, res.start, slower)[1].item() == 110.0


def test_runner_cpsat_and_rule_records():
    runner = pytest.importorskip("opsrl.bench.runner")
    rec = runner.run("jobshop/ft06", "cpsat", solver_overrides={"time_limit": 20}, progress=False)
    assert rec["test_cost"] == 55 and rec["gap_pct"] == 0
    assert rec["reference"]["kind"] == "optimum" and rec["reference"]["value"] == 55
    assert rec["info"]["optimal"] == 1 and rec["info"]["invalid_schedules"] == []
    assert rec["config"]["solver"]["options"]["time_limit"] == 20
    assert rec["jobshop"]["instances"][0]["gap_pct"] == 0
    _check_gantt(rec, "ft06", 55)

    rec = runner.run("jobshop/la_10x5", "mwkr", progress=False)
    rows = rec["jobshop"]["instances"]
    assert [r["instance"] for r in rows] == [f"la{i:02d}" for i in range(1, 6)]
    bks = [I.best_known(r["instance"]) for r in rows]
    assert rec["reference"]["value"] == pytest.approx(sum(bks) / 5)
    assert rec["test_cost"] == pytest.approx(sum(r["makespan"] for r in rows) / 5)
    assert rec["jobshop"]["mean_gap_pct"] == pytest.approx(
        sum(100 * (r["makespan"] - b) / b for r, b in zip(rows, bks)) / 5
    )
    assert all(r["makespan"] >= b for r, b in zip(rows, bks))
    _check_gantt(rec, "la01", rows[0]["makespan"])


def _check_gantt(rec, name, makespan):
    """The record keeps the first instance's schedule: valid, of the reported makespan, drawn by the report."""
    from opsrl.bench.report import picture_hook
    from opsrl.registry import load_problem

    g = rec["jobshop"]["gantt"]
    inst = I.load(name)
    assert g["instance"] == name and g["machine"] == inst.machine
    assert check.violations(inst.machine, inst.duration, g["start"], g["end"], makespan) == []
    fig = picture_hook("jobshop")(load_problem(rec["problem"]), rec)
    assert len(fig.axes[0].collections) == sum(map(len, inst.machine))


def test_cpsat_on_noisy_problem_executes_the_plan():
    p = S.JobShop([I.load("ft06")], noise="lognormal", noise_level=0.2, test_scenarios=32)
    outcome = FAMILY.methods["cpsat"].fit(
        p, {"time_limit": 20.0, "workers": 2, "seed": 0, "warm_start": True, "log": False}, {}, _ctx()
    )
    sc = p.test_set()
    ev, info = outcome.evaluate(sc)
    assert info["per_instance"][0]["makespan"] == 55
    plan = info["per_instance"][0]
    assert ev.n == 32 and ev.per_scenario.std() > 0
    # every executed schedule lasts at least the longest job's realised total work (a bound on any schedule)
    assert (ev.per_scenario >= sc["realized"].sum(-1).amax(-1).double() - 1e-3).all()
    assert plan["status"] == "optimal"


def test_cpsat_options_are_validated():
    from opsrl.core import validate

    with pytest.raises(ConfigError) as e:
        validate({"time_limit": -1}, FAMILY.methods["cpsat"].options, "solvers/cpsat.toml", prefix="options.")
    assert e.value.key == "options.time_limit"
    with pytest.raises(ConfigError):
        validate({"timelimit": 5}, FAMILY.methods["cpsat"].options, "solvers/cpsat.toml", prefix="options.")


def _ctx():
    from opsrl.core import SolveContext

    return SolveContext(progress=False, source="test")


def test_cpsat_never_returns_worse_than_its_warm_start():
    # 100x20 with a hundredth of a second: CP-SAT cannot improve the hint and may lose it; the result must
    # still be a valid schedule no longer than the best rule's
    inst = I.load("ta71")
    hint = cpsat.best_rule_schedules([inst])[0]
    res = cpsat.solve(inst, time_limit=0.01, workers=2, hint=hint["start"])
    assert res.status in ("feasible", "optimal") and res.hint_makespan == hint["makespan"]
    assert res.makespan <= hint["makespan"]
    assert check.violations(inst.machine, inst.duration, res.start, res.end, res.makespan) == []
    assert res.lower_bound <= res.makespan
