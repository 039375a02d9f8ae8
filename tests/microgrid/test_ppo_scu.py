"""PPO with the shields in the loop (``ppo_scu``): any proposal the stochastic policy samples is made safe."""

from opsrl.bench.runner import run


def test_ppo_scu_trains_through_the_shields_and_violates_nothing():
    rec = run(
        "microgrid/remote",
        "ppo_scu",
        progress=False,
        problem_overrides={"periods": 90, "test.scenarios": 3},
        solver_overrides={
            "iterations": 2,
            "batch_size": 8,
            "train_periods": 30,
            "dev_scenarios": 2,
            "eval_every": 1,
            "imitate_steps": 50,
            "critic_warmup": 1,
        },
    )
    # the independent checker saw every minute of the test days: no violation, all demand served
    assert rec["violations"] == {} and rec["unserved_kwh"] == 0.0
    assert rec["info"]["iterations"] == 2 and rec["info"]["horizon"] == "truncated"
    # the solver file reads the action as (gensets, genset load) and starts from a clone of soc_hysteresis
    assert rec["config"]["problem"]["shield"]["proposal"] == "genset_load"
    assert 0 <= rec["info"]["imitation_agreement"] <= 1 and rec["curve"][0]["iteration"] == 0
    assert rec["reference"]["kind"] == "lower_bound" and rec["reference"]["value"] <= rec["test_cost"]
    assert len(rec["day"]["out_demand"]) == 90


def test_ppo_scu_proposes_a_genset_count_and_a_genset_load():
    import torch

    from opsrl.nn import build_actor_critic
    from opsrl.registry import family, load_for_solver, load_solver

    _, _, cfg = load_solver("ppo_scu", family("microgrid"))
    prob = load_for_solver("microgrid/remote", cfg, {"periods": 30})
    ac = build_actor_critic(prob, cfg["policy"], cfg["source"])
    ac.sampling = True
    torch.manual_seed(0)
    state = prob.initial_state(prob.sample(256, "dev", 0, periods=30))
    a = ac(state, 0)
    assert a.shape == (256, 2)
    assert set(a[:, 0].tolist()) == {0.0, 0.5, 1.0}  # a fraction of the two gensets: 0, 1 or 2 of them
    assert set(a[:, 1].tolist()) == {0.0, 1.0}  # running gensets at minimum load or rated


def test_pdppo_runs_on_the_microgrid_with_a_post_decision_critic():
    """The microgrid's post-decision features (state after the commands, and the set-point) feed PDPPO's
    second critic; the sampled proposals stay safe."""
    import math

    import torch

    from opsrl.algos import METHODS
    from opsrl.algos.ppo import OPTIONS
    from opsrl.core import SolveContext, validate
    from opsrl.registry import load_problem

    prob = load_problem("microgrid/remote", {"periods": 30})
    state = prob.initial_state(prob.sample(4, "dev", 0, periods=30))
    post, _ = prob.post_decision(state, torch.tensor([[0.0, 1.0]] * 4))
    x = prob.observe_post(post)
    assert x.shape == (4, prob.obs_dim + 1) and torch.isfinite(x).all()
    o = validate(
        {
            "iterations": 2,
            "batch_size": 8,
            "train_periods": 30,
            "dev_scenarios": 2,
            "eval_every": 1,
            "horizon": "truncated",
        },
        OPTIONS,
        "s",
    )
    out = METHODS["pdppo"].fit(prob, o, {"policy": {"levels": [3, 0]}}, SolveContext(progress=False))
    assert out.info["post_critic"] and math.isfinite(out.curve[-1]["post_value_loss"])
