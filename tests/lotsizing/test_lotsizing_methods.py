import copy
import importlib.util
import math
from pathlib import Path

import pytest
import torch

from opsrl.algos import ppo
from opsrl.bench.runner import run
from opsrl.core import SolveContext
from opsrl.lotsizing import picture
from opsrl.registry import family, load_for_solver, load_solver

SMALL = {"test.scenarios": 6, "periods": 12}


@pytest.mark.parametrize(
    "solver,over",
    [
        ("ppo_lotsizing_small", {}),
        ("pdppo_lotsizing_small", {"train_periods": 12}),
        (
            "hdpo_lotsizing",
            {
                "max_steps": 3,
                "batch_size": 4,
                "train_scenarios": 8,
                "dev_scenarios": 4,
                "eval_every": 1,
                "hidden": [16],
            },
        ),
        ("lotsizing_cover_rule", {"dev_scenarios": 8}),
    ],
)
def test_solvers_run_end_to_end_and_record_cost_parts(solver, over):
    over = dict(over)
    if solver.endswith("_small"):
        over.update(train_periods=12, dev_scenarios=4, iterations=2, epochs=2)
    rec = run("lotsizing/i15_m5", solver, solver_overrides=over, problem_overrides=SMALL, progress=False)
    ls = rec["lotsizing"]
    # the record's cost parts add up to the evaluation's test cost (two separate rollouts of the same policy)
    assert ls["setup_cost"] + ls["holding_cost"] + ls["lost_sales_cost"] == pytest.approx(rec["test_cost"], rel=1e-5)
    assert len(ls["first_scenario"]["stock"]) == 13 and len(ls["first_scenario"]["choices"][0]) == 5
    fig = picture(type("P", (), {"name": "i15_m5", "I": 15, "M": 5})(), rec)
    assert fig is not None and len(fig.axes) >= 2


def test_hindsight_bound_and_rolling_mip_through_the_runner():
    common = dict(problem_overrides={**SMALL, "items": 4, "machines": 2, "seed": 42}, progress=False)
    hind = run(
        "lotsizing/i15_m5", "lotsizing_hindsight", solver_overrides={"scenarios": 2, "time_limit": 3.0}, **common
    )
    mpc = run("lotsizing/i15_m5", "lotsizing_mpc", solver_overrides={"scenarios": 2, "horizon": 3}, **common)
    assert hind["test"]["n"] == 2 and mpc["test"]["n"] == 2
    assert hind["info"]["kind"] == "lower_bound" and math.isfinite(hind["test_cost"])
    assert hind["test_cost"] <= mpc["test_cost"] + 1e-6
    assert hind["info"]["mean_plan_cost"] is None or hind["info"]["mean_plan_cost"] >= hind["test_cost"] - 1e-6
    # with the item bound as well: each scenario keeps the larger of two valid bounds, still below the policy
    both = run(
        "lotsizing/i15_m5",
        "lotsizing_hindsight",
        solver_overrides={"scenarios": 2, "time_limit": 3.0, "item_bound_steps": 30},
        **common,
    )
    rows = both["info"]["per_scenario"]
    assert all(r["bound"] == max(r["item_bound"], r["mip_bound"]) for r in rows)
    assert all(r["item_bound"] <= r["item_plan_cost"] + 1e-6 for r in rows)  # its own feasible plan
    assert both["test_cost"] <= mpc["test_cost"] + 1e-6


def _benchmark(name: str):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("actor", ["full", "frozen_hidden"])
def test_the_benchmarks_frozen_hidden_actor_trains_only_the_output_layer(actor):
    """benchmarks/lotsizing_pdppo.py --actor frozen_hidden: after PDPPO updates the actor's hidden layers are
    bit for bit their initial weights while its output layer and both critics have moved; with the whole
    actor trained (the default) the hidden layers move too."""
    bench = _benchmark("lotsizing_pdppo")
    over = {"train_periods": 12, "dev_scenarios": 4, "iterations": 2, "epochs": 2, "post_critic": True}
    _, _, cfg = load_solver("pdppo_lotsizing_small", family("lotsizing"), over)
    prob = load_for_solver("lotsizing/i15_m5", cfg, {"periods": 12})
    ac = bench.actor_critic(prob, cfg, seed=3, post_critic=True, actor=actor)
    before = copy.deepcopy(ac.state_dict())
    ppo.train(prob, ac, dict(cfg["options"]), SolveContext(seed=3, progress=False))
    after = ac.state_dict()
    linear = [i for i, x in enumerate(ac.actor) if isinstance(x, torch.nn.Linear)]
    hidden = [f"actor.{i}.{p}" for i in linear[:-1] for p in ("weight", "bias")]
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert len(hidden) == 4  # two hidden layers (32-32 in the small solver)
    assert (set(hidden) & moved == set()) == (actor == "frozen_hidden")
    assert {f"actor.{linear[-1]}.weight", "critic.0.weight", "post_critic.0.weight"} <= moved
    with pytest.raises(ValueError, match="allowed are full, frozen_hidden"):
        bench.actor_critic(prob, cfg, seed=3, post_critic=True, actor="frozen")
