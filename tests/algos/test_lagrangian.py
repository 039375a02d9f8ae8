"""TS-DDR (opsrl.algos.lagrangian): dual gradients against finite differences, the two LP back ends against each
other, training against the exact DP optimum of a one-reservoir toy, and the contract checks."""

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_reservoir import ToyReservoir  # noqa: E402

from opsrl.algos import lagrangian as L  # noqa: E402
from opsrl.core import ConfigError, SolveContext, evaluate  # noqa: E402
from opsrl.core.lp import solve  # noqa: E402
from opsrl.registry import family, load_problem, load_solver  # noqa: E402

D = torch.float64
torch.set_num_threads(1)


def episode_loss(problem, policy, sc, backend="highs", jacobian="none"):
    return L.rollout(problem, policy, sc, problem.target_penalty, backend, jacobian)["loss"].sum(1).mean()


def random_linear_policy(problem, seed, scale=0.3):
    torch.manual_seed(seed)
    pol = L.build_target_policy(problem, {"kind": "linear", "time": "scalar"}, "test")
    with torch.no_grad():
        for q in pol.parameters():
            q.normal_(0.0, scale)
    return pol


def fd_gradient(problem, policy, sc, backend, eps=1e-6):
    out = []
    with torch.no_grad():
        for q in policy.parameters():
            for i in range(q.numel()):
                q.view(-1)[i] += eps
                up = episode_loss(problem, policy, sc, backend).item()
                q.view(-1)[i] -= 2 * eps
                down = episode_loss(problem, policy, sc, backend).item()
                q.view(-1)[i] += eps
                out.append((up - down) / (2 * eps))
    return torch.tensor(out, dtype=D)


def autograd_gradient(problem, policy, sc, backend, jacobian="active_set"):
    policy.zero_grad()
    episode_loss(problem, policy, sc, backend, jacobian).backward()
    return torch.cat([q.grad.flatten() for q in policy.parameters()])


@pytest.mark.parametrize("backend", ["highs", "torch"])
def test_stage_duals_are_finite_differences_of_the_stage_value(backend):
    # one stage of the toy and of hydro/case3: d value / d target (target-row duals) and d value / d x_in
    # (incoming-state rows) against central differences of the LP's optimal value
    for problem in (ToyReservoir(), load_problem("hydro/case3")):
        sc = problem.sample(6, "train", 3)
        state = problem.initial_state(sc)
        lo, hi = problem.target_bounds(state)
        target = (lo + torch.linspace(0.15, 0.85, 6, dtype=D).unsqueeze(1) * (hi - lo)).requires_grad_(True)
        x_in = state["volume"].clone().requires_grad_(True)
        state = {**state, "volume": x_in}
        stage = problem.stage_lp(state, sc, 0)
        value, _, _, _ = L.stage_solve(stage, target, problem.target_penalty, backend)
        g_t, g_in = torch.autograd.grad(value.sum(), (target, x_in))

        def val(tgt, v):
            st = problem.stage_lp({**state, "volume": v}, sc, 0)
            tlp, _ = st.with_target(tgt, problem.target_penalty)
            return solve(L._detached(tlp.lp)).value

        eps = 1e-4 * float((hi - lo).max())
        t0, v0 = target.detach(), x_in.detach()
        fd_t = (val(t0 + eps, v0) - val(t0 - eps, v0)) / (2 * eps)
        fd_in = (val(t0, v0 + eps) - val(t0, v0 - eps)) / (2 * eps)
        scale = 1 + fd_t.abs().max()
        assert torch.allclose(g_t[:, 0], fd_t, atol=1e-5 * scale), problem.name
        assert torch.allclose(g_in[:, 0], fd_in, atol=1e-5 * scale), problem.name
        assert fd_t.abs().max() > 0  # the check is not vacuous


@pytest.mark.parametrize("backend", ["highs", "torch"])
def test_episode_gradient_matches_finite_differences_on_the_toy(backend):
    problem = ToyReservoir(periods=4)  # closed loop: each target reads the realized volume
    sc = problem.sample(12, "train", 0)
    pol = random_linear_policy(problem, 0)
    g = autograd_gradient(problem, pol, sc, backend)
    fd = fd_gradient(problem, pol, sc, backend)
    assert torch.allclose(g, fd, rtol=1e-5, atol=1e-5 * (1 + fd.abs().max()))
    # the realized state's Jacobian matters: without it the gradient is wrong
    g_none = autograd_gradient(problem, pol, sc, backend, "none")
    assert (g_none - fd).abs().max() > 1.0


def test_episode_gradient_matches_finite_differences_on_case3():
    problem = load_problem("hydro/case3")
    sc = problem.sample(3, "train", 1)
    pol = random_linear_policy(problem, 1, scale=0.2)
    g = autograd_gradient(problem, pol, sc, "highs")
    fd = fd_gradient(problem, pol, sc, "highs", eps=1e-6)
    assert fd.abs().max() > 1.0
    assert torch.allclose(g, fd, rtol=1e-4, atol=1e-4 * fd.abs().max())


def test_torch_and_highs_backends_give_the_same_rollout_costs():
    for problem, n in ((ToyReservoir(), 16), (load_problem("hydro/case3", {"stages": 4}), 8)):
        sc = problem.sample(n, "dev", 2)
        pol = random_linear_policy(problem, 2)
        with torch.no_grad():
            h = L.rollout(problem, pol, sc, problem.target_penalty, "highs", "none")
            t = L.rollout(problem, pol, sc, problem.target_penalty, "torch", "none")
        scale = 1 + h["cost"].abs().max()
        assert torch.allclose(h["cost"], t["cost"], atol=1e-6 * scale), problem.name
        assert torch.allclose(h["loss"], t["loss"], atol=1e-6 * scale), problem.name


def test_the_trained_rule_is_a_plain_policy_with_the_same_cost():
    # the runner can evaluate the rule through the problem's own post_decision (HiGHS, target_penalty)
    problem = ToyReservoir()
    sc = problem.sample(32, "test", 0)
    pol = random_linear_policy(problem, 4, scale=0.2)
    ev, info = L.evaluate(problem, pol, sc, problem.target_penalty, "highs")
    plain = evaluate(problem, L.TargetRule(problem, pol), sc)
    assert plain.mean == pytest.approx(ev.mean, rel=1e-9)
    assert 0.0 <= info["target_violation_share"] < 1.0


def test_tsddr_reaches_the_dp_optimum_of_the_toy():
    problem = ToyReservoir(periods=3, thermal=(1.0, 3.0, 2.0), inflows=(0.0, 2.0))
    dp = problem.dp()
    assert dp == pytest.approx(13.75)  # by hand: see ToyReservoir.dp
    opts = {k: f.default for k, f in L.OPTIONS.items()}
    opts.update(
        lr=1e-2,
        batch_size=32,
        train_scenarios=1024,
        dev_scenarios=64,
        max_steps=TOY_STEPS,
        eval_every=25,
        backend="torch",
    )
    torch.manual_seed(0)
    pol = L.build_target_policy(problem, TOY_POLICY, "test")
    pol, curve, info = L.train(problem, pol, opts, SolveContext(progress=False))
    ev, _ = L.evaluate(problem, pol, problem.sample(256, "test", 0), problem.target_penalty, "torch")
    assert curve[-1]["dev_cost"] < 0.5 * curve[0]["dev_cost"]
    assert ev.mean < dp * (1 + TOY_MARGIN) + 2 * ev.stderr


TOY_STEPS = 100
TOY_POLICY = {"kind": "mlp", "hidden": [32, 32]}
TOY_MARGIN = 0.05


def test_penalty_annealing_schedule():
    o = {"penalty_start": 0.1, "anneal_steps": 100, "max_steps": 1000}
    assert L.penalty_at(0, o, 50.0) == pytest.approx(5.0)
    assert L.penalty_at(50, o, 50.0) == pytest.approx(50.0 * 0.1**0.5)
    assert L.penalty_at(100, o, 50.0) == pytest.approx(50.0)
    assert L.penalty_at(400, o, 50.0) == pytest.approx(50.0)
    assert L.penalty_at(3, {**o, "penalty_start": 1.0}, 50.0) == 50.0


def test_a_problem_without_a_stage_lp_is_refused():
    problem = type("NoStageLP", (ToyReservoir,), {"stage_lp": None})()  # the contract without stage_lp
    _, method, cfg = load_solver("tsddr", family("hydro"))
    with pytest.raises(ConfigError, match="stage LP.*lacks stage_lp"):
        method.fit(problem, cfg["options"], cfg, SolveContext(progress=False, source=cfg["source"]))


def test_bad_policy_and_options_are_refused():
    with pytest.raises(ConfigError, match="policy.kind"):
        L.build_target_policy(ToyReservoir(), {"kind": "gnn"}, "x.toml")
    with pytest.raises(ConfigError, match="backend"):
        load_solver("tsddr", family("hydro"), {"backend": "cplex"})
    with pytest.raises(ConfigError, match="penalty_start"):
        load_solver("tsddr", family("hydro"), {"penalty_start": 0.0})


def test_lstm_and_history_policies_carry_memory():
    problem = ToyReservoir()
    sc = problem.sample(4, "dev", 0)
    for cfg in ({"kind": "lstm", "hidden": [8]}, {"kind": "mlp", "hidden": [8], "history": 2}):
        torch.manual_seed(0)
        pol = L.build_target_policy(problem, cfg, "test")
        with torch.no_grad():
            r = L.rollout(problem, pol, sc, problem.target_penalty, "highs", "none", record=True)
        assert r["targets"].shape == (4, problem.periods, 1)
        assert torch.all(r["realized"] >= -1e-9) and torch.all(r["realized"] <= problem.vmax + 1e-9)
        assert not math.isnan(float(r["cost"].sum()))


def test_residual_rule_starts_by_keeping_the_incoming_state():
    # output = "residual": target = x_in + span * out with a zero last layer, so the untrained rule holds the
    # volume; with no turbine the inflow is spilled (free) and the target x_in is met exactly
    problem = ToyReservoir(periods=2, qmax=0.0)
    sc = problem.sample(8, "dev", 0)
    for kind in ("mlp", "lstm", "linear"):
        pol = L.build_target_policy(problem, {"kind": kind, "hidden": [8], "output": "residual"}, "test")
        with torch.no_grad():
            r = L.rollout(problem, pol, sc, problem.target_penalty, "highs", "none", record=True)
        v0 = torch.full((8,), problem.v0, dtype=D)
        assert torch.allclose(r["targets"][:, :, 0], v0.unsqueeze(1).expand(8, 2))
        assert torch.allclose(r["realized"][:, :, 0], v0.unsqueeze(1).expand(8, 2), atol=1e-9)
        assert float(r["penalty_cost"].abs().max()) < 1e-6
