"""The GNN dispatcher: PPO training beats random dispatching, the shipped weights give valid schedules."""

import pytest
import torch

from opsrl.algos import METHODS as GENERIC
from opsrl.algos import ppo
from opsrl.core import SolveContext, evaluate, validate
from opsrl.jobshop import METHODS, JobShop, check, dispatcher, instances
from opsrl.jobshop import schedules as final_schedules


class RandomDispatch(torch.nn.Module):
    """Uniformly random among the allowed jobs (the baseline a trained policy must beat)."""

    def forward(self, state, t=0):
        mask = state["mask"] | ~state["mask"].any(1, keepdim=True)
        return torch.multinomial(mask.float(), 1)[:, 0]


def _assert_valid(problem, policy, scenarios):
    from opsrl.core import rollout

    with torch.no_grad():
        final = rollout(problem, policy, scenarios).final_state
    for b, sch in enumerate(final_schedules(final)):
        n_ops = scenarios["n_ops"][b].tolist()
        mach = [r[:n] for r, n in zip(scenarios["machine"][b].tolist(), n_ops) if n > 0]
        dur = [r[:n] for r, n in zip(scenarios["duration"][b].tolist(), n_ops) if n > 0]
        check.assert_valid(mach, dur, sch["start"], sch["end"], float(final["makespan"][b]))
    return final["makespan"]


@pytest.mark.slow
def test_ppo_on_6x6_beats_random_dispatching():
    torch.set_num_threads(1)
    problem = JobShop(generator_cfg={"kind": "taillard", "jobs": 6, "machines": 6, "low": 1, "high": 99})
    o = validate(
        {
            "iterations": 12,
            "batch_size": 16,
            "train_scenarios": 512,
            "dev_scenarios": 32,
            "eval_every": 4,
            "lr": 2e-3,
            "epochs": 2,
            "minibatches": 2,
            "lr_decay": False,
        },
        ppo.OPTIONS,
        "s",
    )
    out = GENERIC["ppo"].fit(
        problem, o, {"policy": {"kind": "graph", "width": 32, "layers": 2}}, SolveContext(seed=0, progress=False)
    )
    test = problem.sample(64, "test", 0)
    torch.manual_seed(0)
    random = evaluate(problem, RandomDispatch(), test).mean
    learned = _assert_valid(problem, out.policy, test).double().mean().item()
    assert learned < 0.97 * random, (learned, random)
    # about 12 x 16 x 36 = 6,900 training decisions
    assert out.info["iterations"] == 12


def test_one_network_schedules_every_size_in_one_batch():
    if not dispatcher.WEIGHTS.is_file():
        pytest.skip("no shipped weights")
    problem = JobShop([instances.load(n) for n in ("ft06", "la01", "ta01")])
    ac = dispatcher.load(problem)
    ms = _assert_valid(problem, ac, problem.test_set())
    # greedy is deterministic and at least the best-known makespan
    bks = torch.tensor([instances.best_known(n) for n in ("ft06", "la01", "ta01")], dtype=ms.dtype)
    assert bool((ms >= bks).all())


def test_best_of_k_is_no_worse_than_greedy_and_valid():
    if not dispatcher.WEIGHTS.is_file():
        pytest.skip("no shipped weights")
    problem = JobShop([instances.load(n) for n in ("ft06", "la01")])
    greedy = METHODS["gnn_greedy"].fit(
        problem, validate({}, METHODS["gnn_greedy"].options, "s"), {}, SolveContext(progress=False)
    )
    g = evaluate(problem, greedy.policy, problem.test_set()).per_scenario
    o = validate({"samples": 8}, METHODS["gnn_sample128"].options, "s")
    best = METHODS["gnn_sample128"].fit(problem, o, {}, SolveContext(progress=False))
    ev, info = best.evaluate(problem.test_set())
    assert info["invalid_schedules"] == []
    assert bool((ev.per_scenario <= g + 1e-9).all())
    assert [r["instance"] for r in info["per_instance"]] == ["ft06", "la01"]


def test_decision_logits_skip_the_network_only_where_the_choice_is_forced():
    """Acting logits against the full network's on the states of sampled rollouts: equal where two or more
    jobs may be dispatched, all mass on the one allowed job elsewhere."""
    if not dispatcher.WEIGHTS.is_file():
        pytest.skip("no shipped weights")
    problem = JobShop([instances.load("ta01")] * 4)
    ac = dispatcher.load(problem)
    sc = problem.test_set()
    state = problem.initial_state(sc)
    torch.manual_seed(0)
    seen = {1: 0, 2: 0}
    with torch.no_grad():
        for t in range(sc.periods):
            fast = ac.decision_logits(state, t)
            full = ac.distribution(ac.encode(state, t)).logits.reshape(fast.shape)
            allowed = state["mask"].sum(1)
            for b in range(fast.shape[0]):
                if allowed[b] >= 2:
                    seen[2] += 1
                    assert torch.equal(torch.isinf(fast[b]), torch.isinf(full[b]))
                    finite = ~torch.isinf(full[b])
                    assert torch.allclose(fast[b][finite], full[b][finite], atol=1e-4)
                elif allowed[b] == 1:
                    seen[1] += 1
                    assert fast[b].softmax(0).tolist() == state["mask"][b].float().tolist()
                    assert full[b].argmax() == state["mask"][b].float().argmax()
            a = torch.distributions.Categorical(logits=fast).sample()[:, None].float()
            state, _ = problem.transition(problem.post_decision(state, ac.to_action(a))[0], sc, t)
    assert seen[1] > 100 and seen[2] > 100
