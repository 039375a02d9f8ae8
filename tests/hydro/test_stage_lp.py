"""The stage LP: by hand on one bus, one reservoir, one thermal unit; against the source's own exported stage
models (MathOptFormat files solved with SciPy's HiGHS); the target and state duals against finite differences."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize as so
import torch
from hydro_tiny import problem_file

from opsrl.core.lp import solve
from opsrl.registry import load_problem

D = torch.float64
DATA = Path(__file__).parent / "data"


def state(problem, v, w, t=0):
    v = torch.as_tensor(v, dtype=D).reshape(-1, problem.H)
    return {
        "volume": v,
        "inflow": torch.as_tensor(w, dtype=D).reshape(-1, problem.H),
        "t": torch.full((v.shape[0],), float(t), dtype=D),
    }


def test_stage_lp_by_hand(tiny, tmp_path):
    p = load_problem(problem_file(tmp_path, tiny))
    # volume 0.5 hm3, inflow 10 m3/s: 0.5 + 0.036 hm3 available; the turbine's 60 m3/s give 0.6 p.u. (pf 1,
    # baseMVA 100), the thermal unit the remaining 0.2 p.u. at 1000: cost 200; end volume 0.5 + 0.0036 (10 - 60)
    stage = p.stage_lp(state(p, [0.5], [10.0]))
    sol = solve(stage.lp)
    assert sol.value.item() == pytest.approx(200.0)
    assert stage.outgoing(sol).item() == pytest.approx(0.32)
    rec = p.stage_record(stage, sol)
    assert rec["thermal_mwh"].item() == pytest.approx(20.0) and rec["hydro_mwh"].item() == pytest.approx(60.0)
    # water is worth nothing here (only the thermal unit sets the marginal cost, the turbine is at its limit)
    assert stage.state_gradient(sol).item() == pytest.approx(0.0, abs=1e-9)
    # target 0.45 hm3 (penalty high enough to bind): q = (0.536 - 0.45) / 0.0036 m3/s, hydro 0.2389 p.u., thermal
    # 0.5, deficit 0.8 - 0.7389 p.u. at 5000 per p.u.h
    q = (0.536 - 0.45) / 0.0036
    tlp, rows = stage.with_target(torch.tensor([[0.45]], dtype=D), 1e6)
    tsol = solve(tlp.lp)
    deficit = 0.8 - 0.5 - q / 100
    assert p.stage_cost(tlp, tsol).item() == pytest.approx(500 + 5000 * deficit)
    assert p.stage_record(tlp, tsol)["deficit_mwh"].item() == pytest.approx(100 * deficit)
    # a hm3 more in the target is 1/0.0036 m3/s less turbined, i.e. 2.778 p.u. of deficit at 5000
    assert tsol.y[0, rows].item() == pytest.approx(5000 / 0.36)
    assert tlp.state_gradient(tsol).item() == pytest.approx(-5000 / 0.36)
    # the contract's post_decision reads an action as a fraction of [vmin, vmax] = [0, 1]; with the default
    # penalty (the largest cost coefficient: 5000 per hm3, as DecisionRules.jl's :auto) missing the target by
    # one hm3 is cheaper than the 13889 of deficit it saves, so the LP goes below the target until the deficit
    # is gone: 0.45 - 0.36 x deficit
    assert p.target_penalty == pytest.approx(5000.0)
    post, cost = p.post_decision(state(p, [0.5], [10.0]), torch.tensor([[0.45]], dtype=D))
    assert post["volume"].item() == pytest.approx(0.45 - 0.36 * deficit)
    assert cost.item() == pytest.approx(500.0)  # thermal at its limit, no deficit; the penalty is not a cost
    strict = load_problem(problem_file(tmp_path, tiny, target_penalty=1e5))
    post, cost = strict.post_decision(state(p, [0.5], [10.0]), torch.tensor([[0.45]], dtype=D))
    assert post["volume"].item() == pytest.approx(0.45) and cost.item() == pytest.approx(500 + 5000 * deficit)


@pytest.mark.parametrize("name", ["case3", "bolivia"])
def test_duals_match_finite_differences(name):
    p = load_problem(f"hydro/{name}")
    sc = p.sample(3, "dev", 1)
    st = {
        "volume": torch.as_tensor(p.case.vmax * 0.4, dtype=D).expand(3, -1).clone(),
        "inflow": sc["inflow"][:, 5],
        "t": torch.full((3,), 5.0, dtype=D),
    }
    target = torch.as_tensor(p.case.vmax * 0.5, dtype=D).expand(3, -1).clone()
    base_stage = p.stage_lp(st)
    tlp, rows = base_stage.with_target(target, p.target_penalty)
    sol = solve(tlp.lp)
    h = int(np.argmax(p.case.vmax))  # the largest reservoir
    eps = 1e-6 * max(1.0, float(p.case.vmax[h]))
    for which in ("target", "volume"):
        tg, s2 = target.clone(), {k: v.clone() for k, v in st.items()}
        if which == "target":
            tg[:, h] += eps
        else:
            s2["volume"][:, h] += eps
        up = solve(p.stage_lp(s2).with_target(tg, p.target_penalty)[0].lp).value
        fd = (up - sol.value) / eps
        grad = sol.y[:, rows][:, h] if which == "target" else tlp.state_gradient(sol)[:, h]
        assert torch.allclose(grad, fd, rtol=1e-4, atol=1e-3 * p.target_penalty * 1e-3), which


def read_mof(path):
    """A MathOptFormat LP (ScalarAffineFunction rows, variable bounds) as dense arrays."""
    d = json.loads(Path(path).read_text())
    names = [v["name"] for v in d["variables"]]
    idx = {n: i for i, n in enumerate(names)}
    n = len(names)
    c = np.zeros(n)
    for t in d["objective"]["function"]["terms"]:
        c[idx[t["variable"]]] += t["coefficient"]
    lb, ub = np.full(n, -np.inf), np.full(n, np.inf)
    rows, lo, hi = [], [], []
    for con in d["constraints"]:
        f, s = con["function"], con["set"]
        if f["type"] == "Variable":
            j = idx[f["name"]]
            if s["type"] == "EqualTo":
                lb[j] = ub[j] = s["value"]
            elif s["type"] == "GreaterThan":
                lb[j] = max(lb[j], s["lower"])
            elif s["type"] == "LessThan":
                ub[j] = min(ub[j], s["upper"])
            else:
                raise ValueError(s)
            continue
        a = np.zeros(n)
        for t in f["terms"]:
            a[idx[t["variable"]]] += t["coefficient"]
        k = f.get("constant", 0.0)
        l, u = {
            "EqualTo": (s.get("value"), s.get("value")),
            "GreaterThan": (s.get("lower"), np.inf),
            "LessThan": (-np.inf, s.get("upper")),
            "Interval": (s.get("lower"), s.get("upper")),
        }[s["type"]]
        rows.append(a)
        lo.append(l - k)
        hi.append(u - k)
    return names, idx, c, np.array(rows), np.array(lo), np.array(hi), lb, ub


def mof_value(mof, v_in, inflow):
    names, idx, c, A, lo, hi, lb, ub = mof
    lb, ub = lb.copy(), ub.copy()
    for i in range(len(v_in)):
        j = idx[f"reservoir[{i + 1}]_in"]
        lb[j] = ub[j] = v_in[i]
        j = idx[f"inflow[{i + 1}]"]
        lb[j] = ub[j] = inflow[i]
    eq = lo == hi
    A_ub = np.vstack([A[~eq & np.isfinite(hi)], -A[~eq & np.isfinite(lo)]])
    b_ub = np.concatenate([hi[~eq & np.isfinite(hi)], -lo[~eq & np.isfinite(lo)]])
    r = so.linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A[eq], b_eq=lo[eq], bounds=list(zip(lb, ub)), method="highs")
    assert r.status == 0, r.message
    return r.fun


@pytest.mark.parametrize("name", ["case3", "bolivia"])
def test_stage_lp_is_the_source_model(name):
    """opsrl's stage LP (built from the case files) has the optimal value of the source's exported DC subproblem
    at the same volumes and inflows (several inflow rows and scenarios, volumes across the range)."""
    p = load_problem(f"hydro/{name}")
    mof = read_mof(DATA / f"{name}_DCPPowerModel.mof.json")
    rng = np.random.default_rng(0)
    vs, ws = [], []
    for k in range(6):
        r, s = rng.integers(p.case.rows), rng.integers(p.case.scenarios)
        vs.append(p.case.vmin + rng.random(p.H) * (p.case.vmax - p.case.vmin) * (k > 0))
        ws.append(p.case.inflow[r, :, s])
    stage = p.stage_lp(state(p, np.array(vs), np.array(ws)), t=0)
    ours = solve(stage.lp).value.numpy()
    theirs = np.array([mof_value(mof, v, w) for v, w in zip(vs, ws)])
    assert np.allclose(ours, theirs, rtol=1e-7, atol=1e-6), (ours, theirs)


def test_cascade_rows_of_bolivia():
    """COR (index 2) turbines into SIS (index 1); ZON (21) turbines and spills into CHU (28)."""
    p = load_problem("hydro/bolivia")
    ids = p.case.hydro_ids
    A = p._A.numpy()
    rw, q, s = p.rows["water"], p.cols["turbine"], p.cols["spill"]
    W = A[rw]
    sis, cor, zon, chu = ids.index(1), ids.index(2), ids.index(21), ids.index(28)
    assert W[sis, q.start + cor] == pytest.approx(-0.0036)
    assert W[chu, q.start + zon] == pytest.approx(-0.0036) and W[chu, s.start + zon] == pytest.approx(-1.0)
    assert W[cor, q.start + cor] == pytest.approx(0.0036) and W[cor, s.start + cor] == 1.0
    assert (W[:, q] != 0).sum() == p.H + 3  # own columns plus the three turbine links of the file


def test_post_decision_carries_the_envelope_gradient():
    """d cost / d action of post_decision = the target duals x (vmax - vmin), which are finite differences of the
    penalised optimal value; the end volume follows a binding target."""
    p = load_problem("hydro/case3")
    sc = p.sample(4, "dev", 0)
    s = p.initial_state(sc)
    a = torch.tensor([[0.1], [0.3], [0.5], [0.9]], dtype=D, requires_grad=True)
    post, cost = p.post_decision(s, a)
    cost.sum().backward()
    span = float(p.case.vmax[0] - p.case.vmin[0])
    eps = 1e-6
    pen = lambda x: solve(p.stage_lp(s).with_target(p.target_of(s, x), p.target_penalty)[0].lp).value
    fd = (pen(a.detach() + eps) - pen(a.detach())) / eps
    assert torch.allclose(a.grad[:, 0], fd, rtol=1e-4, atol=1e-3)
    assert abs(fd).max() > 1.0  # the test can fail: the target matters here
    a2 = a.detach().clone().requires_grad_(True)
    post, _ = p.post_decision(s, a2)
    post["volume"].sum().backward()
    hit = (post["volume"].detach()[:, 0] - p.target_of(s, a2.detach())[:, 0]).abs() < 1e-9
    assert torch.allclose(a2.grad[:, 0], hit.to(D) * span)
