"""The RL adapters against opsrl's own rollout: same costs (float equality), conformance, autoreset, bad input.

The reference for every number is :func:`opsrl.core.evaluate` (opsrl's own evaluation) on the same scenarios,
or the contract's ``post_decision``/``transition`` called directly.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import opsrl.envs as envs
from opsrl.core import ConfigError, SolveContext, evaluate, scenario_costs
from opsrl.envs import EpisodeBatch, episode_seed, observation_policy
from opsrl.registry import load_problem

gym = pytest.importorskip("gymnasium")
pytest.importorskip("torchrl")
pytest.importorskip("stable_baselines3")

from opsrl.bench.external import external_solver, make, register  # noqa: E402
from opsrl.envs.gym_env import SingleEnv, VectorEnv  # noqa: E402
from opsrl.envs.sb3 import SB3VecEnv  # noqa: E402
from opsrl.envs.torchrl_env import TorchRLEnv  # noqa: E402

# (problem, scenarios, periods): small bundled problems, one per family
CASES = [
    ("inventory/lost_sales_p4_L1", 8, 40),
    ("jobshop/ft06", 3, None),
    ("vm/tiny", 4, None),
    ("microgrid/remote", 3, 30),
    ("hydro/case3", 8, None),
    ("lotsizing/i15_m5", 3, 20),
]
IDS = [c[0] for c in CASES]
_PROBLEMS: dict = {}


def problem(name):
    if name not in _PROBLEMS:
        _PROBLEMS[name] = load_problem(name)
    return _PROBLEMS[name]


class FixedPolicy:
    """A deterministic policy on observations (a fixed random linear map), inside the box or the mask."""

    def __init__(self, layout, d):
        g = torch.Generator().manual_seed(7)
        self.layout = layout
        width = layout.mask_size if layout.kind != "box" else math.prod(layout.shape)
        self.w = torch.randn(d, width, generator=g)

    def __call__(self, obs):
        lay = self.layout
        x = obs["observation"] if isinstance(obs, dict) else obs
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)
        z = x @ self.w
        if lay.kind == "box":
            if math.isinf(lay.high):
                return (lay.low + 5.0 * torch.nn.functional.softplus(z)).reshape(-1, *lay.shape)
            return (lay.low + (lay.high - lay.low) * torch.sigmoid(z)).reshape(-1, *lay.shape)
        if isinstance(obs, dict):
            m = obs["action_mask"]
            m = m if torch.is_tensor(m) else torch.as_tensor(np.asarray(m))
            z = z.masked_fill(~m.bool(), -torch.inf)
        offs = np.cumsum([0, *lay.nvec])
        a = torch.stack([z[:, offs[j] : offs[j + 1]].argmax(1) for j in range(len(lay.nvec))], 1)
        return a[:, 0] if lay.kind == "discrete" else a


def reference(name, n, periods, seed=3):
    """opsrl's own evaluation of the fixed policy on ``sample(n, "test", seed, periods)``, per scenario."""
    p = problem(name)
    b = EpisodeBatch(p, n, "test", seed, periods=periods)
    fn = FixedPolicy(b.layout, b.observation().shape[1])
    sc = p.sample(n, "test", seed, b.periods)
    return p, fn, b.periods, evaluate(p, observation_policy(p, fn), sc).per_scenario


@pytest.mark.parametrize("name,n,periods", CASES, ids=IDS)
def test_gymnasium_vector_env_equals_evaluate(name, n, periods):
    p, fn, T, ref = reference(name, n, periods)
    env = VectorEnv(p, n, "test", 3, periods=periods)
    obs, _ = env.reset()
    rewards = []
    for t in range(T):
        obs, r, term, trunc, info = env.step(fn(obs))
        rewards.append(torch.as_tensor(r))
        assert bool((term | trunc).all()) == (t == T - 1) and not bool((term & trunc).any())
    costs = -torch.stack(rewards, 1).to(p.dtype)
    assert torch.equal(scenario_costs(p, costs).double(), ref)


@pytest.mark.parametrize("name,n,periods", CASES, ids=IDS)
def test_torchrl_env_equals_evaluate(name, n, periods):
    p, fn, T, ref = reference(name, n, periods)
    env = TorchRLEnv(p, n, "test", 3, periods=periods)

    def policy(td):
        obs = td["observation"]
        if "action_mask" in td.keys():
            obs = {"observation": obs, "action_mask": td["action_mask"]}
        td["action"] = torch.as_tensor(fn(obs))
        return td

    td = env.rollout(T, policy)
    assert td["next", "done"][:, -1].all() and not td["next", "done"][:, :-1].any()
    assert td["next", "reward"].dtype == p.dtype
    costs = -td["next", "reward"][..., 0]
    assert torch.equal(scenario_costs(p, costs).double(), ref)


@pytest.mark.parametrize("name,n,periods", CASES, ids=IDS)
def test_sb3_vec_env_and_external_solver_equal_evaluate(name, n, periods):
    p, fn, T, ref = reference(name, n, periods)
    lay = EpisodeBatch(p, 1, periods=1).layout
    bounds = (0.0, 1e12) if lay.kind == "box" and math.isinf(lay.high) else None
    env = SB3VecEnv(p, n, "test", 3, periods=periods, action_bounds=bounds)
    obs = env.reset()
    rewards = []
    for _ in range(T):
        obs, r, done, infos = env.step(fn(obs))
        rewards.append(torch.as_tensor(r, dtype=torch.float64))
    assert done.all() and all("terminal_observation" in i for i in infos)
    costs = -torch.stack(rewards, 1).to(p.dtype)
    assert torch.equal(scenario_costs(p, costs).double(), ref)
    # the runner's path: external_solver(...).fit(...) -> SolveOutcome.policy, evaluated by opsrl
    method = external_solver(fn, name="fixed")
    assert method.learns is False
    outcome = method.fit(p, {}, {}, SolveContext())
    sc = p.sample(n, "test", 3, T)
    assert torch.equal(evaluate(p, outcome.policy, sc).per_scenario, ref)


@pytest.mark.parametrize("name,n,periods", CASES, ids=IDS)
def test_gymnasium_check_env_on_single_env(name, n, periods):
    from gymnasium.utils.env_checker import check_env

    env = SingleEnv(problem(name), periods=periods)
    check_env(env, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("name,n,periods", CASES, ids=IDS)
def test_torchrl_check_env_specs(name, n, periods):
    from torchrl.envs.utils import check_env_specs

    env = TorchRLEnv(problem(name), 2, periods=periods)
    check_env_specs(env, seed=0)
    env.close()


def test_autoreset_same_step_by_hand_on_two_periods():
    """Two-period episodes: the step that ends one returns the next batch's first observation (autoreset
    ``SAME_STEP``), the last observation in ``final_obs``; batch k is sample(n, split, episode_seed(seed, k))."""
    p = problem("inventory/lost_sales_p4_L1")
    n, seed = 3, 11
    env = VectorEnv(p, n, "train", seed, periods=2)
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    obs, _ = env.reset()
    for k in range(3):  # three episodes
        sc = p.sample(n, "train", episode_seed(seed, k), 2)
        s = p.initial_state(sc)
        assert np.array_equal(obs, p.observe(s).numpy())
        a = np.array([[3.0], [7.0], [0.0]], np.float32)
        for t in range(2):
            post, c1 = p.post_decision(s, torch.tensor(a))
            s, c2 = p.transition(post, sc, t)
            obs, r, term, trunc, info = env.step(a)
            assert np.array_equal(r, (-(c1 + c2)).double().numpy())
            assert not term.any()  # inventory is a per-period cost cut at the horizon: truncated, not terminated
            assert trunc.all() == (t == 1) and "final_obs" in info if t == 1 else "final_obs" not in info
        assert info["_final_obs"].all()
        assert np.array_equal(np.stack(info["final_obs"]), p.observe(s).numpy())
    assert episode_seed(seed, 0) == seed and len({episode_seed(seed, k) for k in range(50)}) == 50
    # finite-horizon problems terminate: vm/tiny has two moves per snapshot
    v = VectorEnv(problem("vm/tiny"), 2)
    obs, _ = v.reset()
    for _ in range(2):
        m = v.action_masks()
        a = np.stack([m[:, :8].argmax(1), np.zeros(2, np.int64)], 1)
        obs, r, term, trunc, info = v.step(a)
    assert term.all() and not trunc.any() and isinstance(obs, dict)
    assert info["final_obs"][0]["observation"].shape == (3,)


def test_seed_reproduces_run_and_reset_seed_restarts():
    p = problem("inventory/lost_sales_p4_L1")
    runs = []
    for _ in range(2):
        env = VectorEnv(p, 4, "train", 5, periods=3)
        obs, _ = env.reset()
        seq = [obs]
        for _ in range(7):  # crosses two autoresets
            obs, *_ = env.step(np.full((4, 1), 4.0, np.float32))
            seq.append(obs)
        runs.append(np.stack(seq))
    assert np.array_equal(runs[0], runs[1])
    obs, _ = env.reset(seed=5)
    assert np.array_equal(obs, runs[0][0])


def test_torchrl_partial_reset_steps_envs_at_different_periods():
    """Env 0 restarts mid-episode on its next scenario row while env 1 goes on: each period's cost equals the
    contract's step on that env's own scenario and period."""
    p = problem("inventory/lost_sales_p4_L1")
    env = TorchRLEnv(p, 2, "train", 4, periods=5)
    td = env.reset()
    td["action"] = torch.tensor([[2.0], [6.0]])
    td = env.step(td)
    reset = torch.tensor([[True], [False]])
    td = env.reset(td["next"].exclude("reward", "done", "terminated", "truncated").set("_reset", reset))
    td["action"] = torch.tensor([[3.0], [5.0]])
    r = env.step(td)["next", "reward"][:, 0]
    # env 0: period 0 of row 0 of batch 1; env 1: period 1 of row 1 of batch 0
    sc1 = p.sample(2, "train", episode_seed(4, 1), 5).select(slice(0, 1))
    post, c1 = p.post_decision(p.initial_state(sc1), torch.tensor([[3.0]]))
    _, c2 = p.transition(post, sc1, 0)
    assert r[0].item() == -(c1 + c2).item()
    sc0 = p.sample(2, "train", 4, 5).select(slice(1, 2))
    s = p.initial_state(sc0)
    post, c1 = p.post_decision(s, torch.tensor([[6.0]]))
    s, _ = p.transition(post, sc0, 0)
    post, c1 = p.post_decision(s, torch.tensor([[5.0]]))
    _, c2 = p.transition(post, sc0, 1)
    assert r[1].item() == -(c1 + c2).item()


def test_torchrl_rollout_across_episodes_plays_the_next_batches():
    """``rollout(..., break_when_any_done=False)`` resets done envs (all at once here) onto batch 1, 2, ..."""
    p = problem("inventory/lost_sales_p4_L1")
    env = TorchRLEnv(p, 3, "train", 9, periods=2)
    td = env.rollout(6, lambda td: td.set("action", torch.full((3, 1), 4.0)), break_when_any_done=False)
    r = td["next", "reward"][..., 0]
    assert td["next", "truncated"][:, 1::2].all() and not td["next", "terminated"].any()
    for k in range(3):
        sc = p.sample(3, "train", episode_seed(9, k), 2)
        s = p.initial_state(sc)
        for t in range(2):
            post, c1 = p.post_decision(s, torch.full((3, 1), 4.0))
            s, c2 = p.transition(post, sc, t)
            assert torch.equal(r[:, 2 * k + t], -(c1 + c2))


def test_integer_actions_are_rounded_as_evaluation_rounds():
    p = problem("inventory/lost_sales_p4_L1")
    a, b = VectorEnv(p, 2, periods=3), VectorEnv(p, 2, periods=3)
    a.reset(), b.reset()
    for _ in range(3):
        ra = a.step(np.array([[4.4], [5.6]], np.float32))[1]
        rb = b.step(np.array([[4.0], [6.0]], np.float32))[1]
        assert np.array_equal(ra, rb)


def test_masks_are_exposed_the_sb3_contrib_way():
    env = VectorEnv(problem("lotsizing/i15_m5"), 2, periods=3)
    obs, _ = env.reset()
    m = env.action_masks()
    assert m.shape == (2, 80) and m.dtype == bool and np.array_equal(obs["action_mask"].astype(bool), m)
    assert env.single_observation_space.contains({k: v[0] for k, v in obs.items()})


# --- bad input ---------------------------------------------------------------------------------------------
def test_bad_actions_are_one_clear_error_and_nothing_is_clipped():
    inv = VectorEnv(problem("inventory/lost_sales_p4_L1"), 2, periods=3)
    inv.reset()
    with pytest.raises(ValueError, match=r"shape \(3, 1\); allowed: \(2, 1\)"):
        inv.step(np.zeros((3, 1), np.float32))
    with pytest.raises(ValueError, match="outside the allowed box"):
        inv.step(np.array([[-1.0], [2.0]], np.float32))
    with pytest.raises(ValueError, match="outside the allowed box"):
        inv.step(np.array([[np.nan], [2.0]], np.float32))
    with pytest.raises(ValueError, match="dtype torch.bool is not allowed"):
        inv.step(np.ones((2, 1), bool))
    assert (inv.batch.t == 0).all()  # a refused step changes nothing
    js = VectorEnv(problem("jobshop/ft06"), 2)
    obs, _ = js.reset()
    with pytest.raises(ValueError, match="dtype torch.float32 is not allowed: integer choices"):
        js.step(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="must be in 0..n-1"):
        js.step(np.array([0, 6]))
    m = js.action_masks()
    while m[0].all():  # step with allowed choices until env 0 has a masked one
        js.step(m.argmax(1))
        m = js.action_masks()
    bad = np.array([int(np.flatnonzero(~m[0])[0]), int(m[1].argmax())])
    with pytest.raises(ValueError, match=rf"action of env 0 is \[{bad[0]}\]: masked"):
        js.step(bad)
    tr = TorchRLEnv(problem("jobshop/ft06"), 2)
    td = tr.reset()
    td["action"] = torch.tensor([0.5, 1.0])
    with pytest.raises(ValueError, match="integer choices"):
        tr.step(td)


@pytest.mark.parametrize("num_envs", [0, -1, 2**40, 1.5, True])
def test_num_envs_out_of_range(num_envs):
    with pytest.raises(ValueError, match="num_envs must be an integer from 1 to"):
        VectorEnv(problem("inventory/lost_sales_p4_L1"), num_envs)


def test_num_envs_too_large_for_memory_is_refused_before_allocation():
    with pytest.raises(ConfigError, match="num_envs"):
        EpisodeBatch(problem("microgrid/remote"), envs.MAX_ENVS)


def test_action_bounds_narrow_the_box_and_sb3_asks_for_them():
    p = problem("inventory/lost_sales_p4_L1")
    with pytest.raises(ValueError, match="needs a finite action box"):
        SB3VecEnv(p, 2)
    env = SB3VecEnv(p, 2, periods=3, action_bounds=(0, 20))
    assert env.action_space.high[0] == 20
    env.reset()
    with pytest.raises(ValueError, match=r"outside the allowed box \[0.0, 20.0\]"):
        env.step(np.array([[21.0], [1.0]], np.float32))
    with pytest.raises(ValueError, match="action_bounds"):
        VectorEnv(p, 2, action_bounds=(-1, 5))
    with pytest.raises(ValueError, match="only continuous"):
        VectorEnv(problem("jobshop/ft06"), 2, action_bounds=(0, 5))


def test_action_levels_offer_an_integer_box_as_choices():
    p = problem("inventory/lost_sales_p4_L1")
    a, b = VectorEnv(p, 2, periods=3, action_levels=20), VectorEnv(p, 2, periods=3)
    assert isinstance(a.single_action_space, gym.spaces.Discrete) and a.single_action_space.n == 20
    a.reset(), b.reset()
    for _ in range(3):
        assert np.array_equal(a.step(np.array([4, 7]))[1], b.step(np.array([[4.0], [7.0]], np.float32))[1])
    fn = lambda obs: torch.full((obs.shape[0],), 6)  # choice 6 = order 6
    ref = lambda obs: torch.full((obs.shape[0], 1), 6.0)
    sc = p.sample(4, "dev", 0, 30)
    got = evaluate(p, observation_policy(p, fn, action_levels=20), sc).per_scenario
    assert torch.equal(got, evaluate(p, observation_policy(p, ref), sc).per_scenario)
    with pytest.raises(ValueError, match="must be in 0..n-1"):
        a.step(np.array([20, 0]))
    with pytest.raises(ValueError, match="only integer box actions"):
        VectorEnv(problem("hydro/case3"), 2, action_levels=5)
    with pytest.raises(ValueError, match="integer >= 2"):
        VectorEnv(p, 2, action_levels=1)


def test_unknown_problem_name_kind_and_split():
    with pytest.raises(ConfigError, match="no such problem"):
        make("inventory/no_such_problem", 2)
    with pytest.raises(ValueError, match="kind must be one of"):
        make("inventory/lost_sales_p4_L1", 2, kind="rllib")
    with pytest.raises(ValueError, match="split must be"):
        make("inventory/lost_sales_p4_L1", 2, split="validation")
    with pytest.raises(ValueError, match="no graph view"):
        make("hydro/case3", 2, graph=True)


@pytest.mark.parametrize("kind", ["gymnasium", "sb3", "torchrl", "single"])
def test_step_after_close(kind):
    n = 1 if kind == "single" else 2
    env = make("inventory/lost_sales_p4_L1", n, kind=kind, periods=3, action_bounds=(0, 50))
    env.reset()
    env.close()
    a = np.ones((1,) if kind == "single" else (2, 1), np.float32)
    with pytest.raises(envs.EnvClosedError, match="closed"):
        if kind == "torchrl":
            from tensordict import TensorDict

            env.step(TensorDict({"action": torch.as_tensor(a)}, batch_size=[2]))
        else:
            env.step(a)


def test_gymnasium_registry():
    ids = register()
    assert "opsrl/inventory.lost_sales_p4_L1-v0" in ids and "opsrl/jobshop.ft06-v0" in ids
    env = gym.make("opsrl/jobshop.ft06-v0")
    obs, _ = env.reset(seed=0)
    assert obs["action_mask"].shape == (6,)
    venv = gym.make_vec("opsrl/inventory.lost_sales_p4_L1-v0", num_envs=4, periods=5)
    assert isinstance(venv, VectorEnv) and venv.num_envs == 4
    venv.close()


def test_external_solver_names_the_weights_and_refuses_what_is_no_policy():
    from opsrl.bench.external import fingerprint

    a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    assert fingerprint(a) != fingerprint(b) and fingerprint(a) in external_solver(a).description
    assert fingerprint(lambda obs: obs) == ""
    with pytest.raises(ValueError, match="an external policy must be a callable"):
        external_solver(42)


def test_graph_observations_in_info():
    env = make("jobshop/ft06", 2, graph=True)
    _, info = env.reset()
    assert info["graph"].num_graphs == 2


def test_envs_modules_import_only_core():
    """Layering: opsrl/envs imports nothing of opsrl but core (make/register/external_solver live in bench)."""
    root = Path(envs.__file__).parent
    for f in root.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                assert node.module in ("core",) or node.module.startswith("core."), f"{f.name}: ..{node.module}"
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.startswith("opsrl") or node.module.startswith("opsrl.core"), f.name


def test_import_opsrl_envs_without_the_rl_libraries():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('gymnasium', 'torchrl', 'tensordict', 'stable_baselines3', 'sb3_contrib'):\n"
        "    sys.modules[m] = None\n"
        "import opsrl.envs as e\n"
        "assert e.EpisodeBatch and e.observation_policy\n"
        "try:\n"
        "    e.VectorEnv\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('gymnasium was blocked')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(envs.__file__).parents[2])
