"""HDPO through the single-store simulator: a short run must reach a stated gap to the DP optimum."""

import torch

from opsrl.algos import hdpo
from opsrl.core import SolveContext, evaluate, validate
from opsrl.inventory import dp
from opsrl.nn import MLPPolicy
from opsrl.registry import load_problem


def train(problem, seed=0, **opts):
    from opsrl.registry import fit_solver

    o = validate(
        {
            "max_steps": 200,
            "eval_every": 20,
            "patience": 0,
            "train_scenarios": 4096,
            "batch_size": 256,
            "dev_scenarios": 512,
            "dev_periods": 300,
            **opts,
        },
        hdpo.OPTIONS,
        "test",
    )
    torch.manual_seed(seed)
    policy = MLPPolicy(problem, [32, 32])
    return hdpo.train(problem, policy, o, SolveContext(seed=seed, progress=False, fit_solver=fit_solver))


def test_short_hdpo_run_reaches_two_percent_of_optimum():
    prob = load_problem("inventory/lost_sales_p4_L1", {"periods": 60, "warmup": 10})
    opt = dp.lost_sales_dp(5.0, 1, 4.0, 1.0).cost
    policy, curve = train(prob)
    ev = evaluate(prob, policy, prob.sample(4096, "test", 0, 400), warmup=50)
    assert (ev.mean - opt) / opt < 0.02, (ev.mean, opt)
    assert ev.mean > opt - 3 * ev.stderr  # no policy beats the optimum
    # the untrained network is far worse: training did the work
    torch.manual_seed(0)
    untrained = evaluate(prob, MLPPolicy(prob, [32, 32]), prob.sample(1024, "test", 0, 400), warmup=50)
    assert untrained.mean > 1.2 * opt


def test_hdpo_is_deterministic_given_the_seed():
    prob = load_problem("inventory/lost_sales_p9_L2", {"periods": 30, "warmup": 5})
    _, c1 = train(prob, seed=5, max_steps=10, eval_every=5, dev_periods=50)
    _, c2 = train(prob, seed=5, max_steps=10, eval_every=5, dev_periods=50)
    _, c3 = train(prob, seed=6, max_steps=10, eval_every=5, dev_periods=50)
    strip = lambda c: [(e["step"], e["train_loss"], e["dev_cost"]) for e in c]
    assert strip(c1) == strip(c2) and strip(c1) != strip(c3)


def test_policy_orders_are_non_negative_and_integer():
    prob = load_problem("inventory/lost_sales_p9_L4")
    state = {"x": torch.rand(64, 4) * 20}
    torch.manual_seed(0)
    relaxed = MLPPolicy(prob, [16], integer="relaxed")
    a = relaxed(state, 0)
    assert a.shape == (64, 1) and (a >= 0).all() and not torch.equal(a, a.round())
    relaxed.eval()
    b = relaxed(state, 0)
    assert torch.equal(b, a.detach().round()) and (b >= 0).all()
    # straight-through: integer orders in training too, with the gradient of the unrounded output
    torch.manual_seed(0)
    ste = MLPPolicy(prob, [16])
    c = ste(state, 0)
    assert torch.equal(c.detach(), b)
    c.sum().backward()
    g_ste = [p.grad.clone() for p in ste.parameters()]
    relaxed.train()
    relaxed.zero_grad()
    relaxed(state, 0).sum().backward()
    for g1, p in zip(g_ste, relaxed.parameters()):
        assert torch.allclose(g1, p.grad)


def test_imitation_start_clones_base_stock():
    """``imitate``: HDPO first regresses its orders onto the searched base-stock policy's; the clone's dev cost
    (the curve's step 0) is base stock's own on the same dev scenarios, well below the untrained network's."""
    from opsrl.inventory import METHODS
    from opsrl.inventory.heuristics import BaseStock

    torch.set_num_threads(1)
    prob = load_problem("inventory/lost_sales_p4_L1", {"periods": 60, "warmup": 10})
    policy, curve = train(prob, max_steps=1, imitate="base_stock", imitate_steps=1500)
    teacher = (
        METHODS["base_stock"]
        .fit(prob, validate({}, METHODS["base_stock"].options, "s"), {}, SolveContext(seed=0, progress=False))
        .policy
    )
    assert isinstance(teacher, BaseStock)
    dev = prob.sample(512, "dev", 0, 300)
    ref = evaluate(prob, teacher, dev).mean
    assert curve[0]["step"] == 0 and abs(curve[0]["dev_cost"] - ref) < 0.005 * ref, (curve[0], ref)
    torch.manual_seed(0)
    assert evaluate(prob, MLPPolicy(prob, [32, 32]), dev).mean > 1.2 * ref
