"""References against each other and against exact answers: the grid SDP against the extensive form (exact, by
its scenario-tree LP) on a short case3; SDDP's bound against both; the hindsight bound below every policy on the
same scenarios; HiGHS against GLOP; the warm HiGHS batch against the plain one."""

import numpy as np
import pytest
import torch

from opsrl.core.lp import solve
from opsrl.hydro.sddp import CutPolicy, solve_sdp, train_sddp
from opsrl.hydro.simulate import run_test
from opsrl.hydro.tree import extensive_form, hindsight
from opsrl.registry import load_problem

D = torch.float64


@pytest.fixture(scope="module")
def case3_short():
    return load_problem("hydro/case3", {"stages": 4})


@pytest.fixture(scope="module")
def case3():
    return load_problem("hydro/case3", {"test_scenarios": 64})


@pytest.fixture(scope="module")
def sdp109(case3):
    return solve_sdp(case3, 109)


def test_sdp_matches_the_extensive_form(case3_short):
    exact = extensive_form(case3_short)  # 3 + 9 + 27 + 81 nodes, one LP
    coarse, fine = solve_sdp(case3_short, 55).optimum, solve_sdp(case3_short, 541).optimum
    # the grid interpolant over-estimates the cost-to-go: the SDP value is above the optimum and tends to it
    assert exact - 1e-6 <= fine <= coarse
    assert fine == pytest.approx(exact, rel=1e-4)


def test_sddp_bound_converges_to_the_extensive_form(case3_short):
    exact = extensive_form(case3_short)
    res = train_sddp(case3_short, iterations=30, seed=0)
    assert all(b <= exact + 1e-6 for b in res.bounds)  # a lower bound at every iteration
    assert res.bounds[-1] == pytest.approx(exact, rel=5e-4)


def test_sddp_bound_within_0p1_percent_of_the_sdp_on_case3(case3, sdp109):
    res = train_sddp(case3, iterations=25, seed=0)
    assert res.bounds[-1] <= sdp109.optimum + 1e-6
    assert res.bounds[-1] >= sdp109.optimum * (1 - 1e-3)
    assert np.all(np.diff(res.bounds) >= -1e-6 * abs(res.bounds[-1]))  # cuts only add: the bound never falls


def test_hindsight_is_below_every_policy_per_scenario(case3, sdp109):
    sc = case3.sample(40, "test", 3)
    bound = hindsight(case3, sc)
    sddp = train_sddp(case3, iterations=10, seed=1)
    costs = {
        "myopic": run_test(case3, sc, decider=CutPolicy(case3, None, tie_value=1e-6), per_scenario=True),
        "sdp": run_test(case3, sc, decider=CutPolicy(case3, sdp109.cuts), per_scenario=True),
        "sddp": run_test(case3, sc, decider=CutPolicy(case3, sddp.cuts), per_scenario=True),
        "target": run_test(
            case3, sc, policy=lambda s, t: torch.full((s["volume"].shape[0], 1), 0.3, dtype=D), per_scenario=True
        ),
    }
    for name, (ev, _) in costs.items():
        assert np.all(bound <= ev.per_scenario.numpy() * (1 + 1e-7)), name  # up to HiGHS's tolerances
    # the SDP policy is the optimal policy: on the same scenarios it beats the myopic rule
    assert costs["sdp"][0].mean < costs["myopic"][0].mean
    assert bound.mean() < sdp109.optimum
    # the rollout's stage costs add up to its metrics
    m = costs["target"][1]
    assert m["target_violation_share"] > 0 and costs["sdp"][1]["target_violation_share"] == 0


def test_glop_and_highs_agree_on_hindsight():
    p = load_problem("hydro/bolivia", {"stages": 12})
    sc = p.sample(2, "test", 0)
    assert np.allclose(hindsight(p, sc, "highs"), hindsight(p, sc, "glop"), rtol=1e-7)


def test_warm_batch_equals_plain_highs():
    p = load_problem("hydro/bolivia")
    sc = p.sample(40, "train", 0)
    g = torch.Generator().manual_seed(0)
    st = {
        "volume": torch.rand(40, p.H, generator=g, dtype=D) * p.vmax_t,
        "inflow": sc["inflow"][:, 7],
        "t": torch.full((40,), 7.0, dtype=D),
    }
    stage = p.stage_lp(st)
    a, b = solve(stage.lp, warm=False), solve(stage.lp)
    assert a.optimal and b.optimal
    assert torch.allclose(a.value, b.value, rtol=1e-9, atol=1e-7)
    assert torch.allclose(stage.state_gradient(a), stage.state_gradient(b), rtol=1e-6, atol=1e-6)


def test_stored_case3_optimum_is_the_sdp_of_this_code(case3, sdp109):
    """The family reference of case3 (stored by benchmarks/hydro_references.py) agrees with a fresh, coarser SDP
    (whose grid error is about 1.3e-4), so a change of the model cannot leave a stale stored optimum."""
    from opsrl.hydro import reference

    ref = reference(load_problem("hydro/case3"))
    assert ref.kind == "optimum"
    assert ref.value <= sdp109.optimum <= ref.value * (1 + 3e-4)


def test_warm_batch_survives_a_highs_solve_error():
    """A bolivia stage LP with 20 SDDP cuts (saved from a forward pass) on which HiGHS 1.16 with default options
    reports "Solve error"; the family's batch solver falls back to no presolve and agrees with the interior-point
    method and with GLOP."""
    from pathlib import Path

    from ortools.linear_solver import pywraplp

    from opsrl.core.lp import LP

    d = np.load(Path(__file__).parent / "data" / "bolivia_cut_lp.npz")
    A = np.zeros(tuple(d["shape"]))
    A[d["rows"], d["cols"]] = d["vals"]
    t = lambda a: torch.as_tensor(a, dtype=D)
    lp = LP(t(d["c"]), t(A), t(d["lo"]), t(d["hi"]), t(d["lb"]), t(d["ub"]), t(d["const"]))
    sol = solve(lp)
    assert sol.optimal
    s = pywraplp.Solver.CreateSolver("GLOP")
    inf = s.infinity()
    fx = lambda v: inf if v == np.inf else (-inf if v == -np.inf else float(v))
    x = [s.NumVar(fx(l), fx(u), "") for l, u in zip(d["lb"][0], d["ub"][0])]
    for i in range(A.shape[0]):
        row = s.Constraint(fx(d["lo"][0, i]), fx(d["hi"][0, i]))
        for j in np.nonzero(A[i])[0]:
            row.SetCoefficient(x[j], float(A[i, j]))
    for j in np.nonzero(d["c"][0])[0]:
        s.Objective().SetCoefficient(x[j], float(d["c"][0, j]))
    s.Objective().SetMinimization()
    assert s.Solve() == pywraplp.Solver.OPTIMAL
    assert sol.value.item() == pytest.approx(s.Objective().Value() + float(d["const"][0]), rel=1e-8)
