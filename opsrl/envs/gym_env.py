"""Gymnasium views of an opsrl problem: :class:`VectorEnv` (Gymnasium 1.x, batched) and :class:`SingleEnv`.

Both sit on :class:`opsrl.envs.batch.EpisodeBatch`; this module imports gymnasium, so import it (or use
``opsrl.envs.VectorEnv``) only where gymnasium is installed (``pip install 'opsrl[rl]'``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from ..core import Problem
from .batch import ActionLayout, EpisodeBatch


class MaskedDiscrete(spaces.Discrete):
    """``Discrete`` whose ``sample()`` draws among the choices allowed now (the env's current mask)."""

    mask_fn = None

    def sample(self, mask=None, probability=None):
        if mask is None and probability is None and self.mask_fn is not None:
            mask = self.mask_fn().astype(np.int8)
        return super().sample(mask=mask, probability=probability)


class MaskedMultiDiscrete(spaces.MultiDiscrete):
    """``MultiDiscrete`` whose ``sample()`` draws each dimension among its choices allowed now."""

    mask_fn = None

    def sample(self, mask=None, probability=None):
        if mask is None and probability is None and self.mask_fn is not None:
            m = self.mask_fn().astype(np.int8)
            offs = np.cumsum([0, *self.nvec.tolist()])
            mask = tuple(m[offs[j] : offs[j + 1]] for j in range(len(self.nvec)))
        return super().sample(mask=mask, probability=probability)


def single_spaces(batch: EpisodeBatch, mask_fn=None) -> tuple[spaces.Space, spaces.Space]:
    """The observation and action space of one env of ``batch``; with ``mask_fn`` (the env's current mask
    of one env, as booleans), a masked problem's action space samples allowed actions only."""
    lay: ActionLayout = batch.layout
    d = int(batch.observation().shape[-1])
    obs: spaces.Space = spaces.Box(-np.inf, np.inf, (d,), np.float32)
    if lay.masked:
        obs = spaces.Dict({"observation": obs, "action_mask": spaces.MultiBinary(lay.mask_size)})
    if lay.kind == "box":
        act: spaces.Space = spaces.Box(lay.low, lay.high, lay.shape, np.float32)
    elif lay.kind == "discrete":
        act = MaskedDiscrete(lay.nvec[0]) if mask_fn and lay.masked else spaces.Discrete(lay.nvec[0])
    else:
        cls = MaskedMultiDiscrete if mask_fn and lay.masked else spaces.MultiDiscrete
        act = cls(np.array(lay.nvec, dtype=np.int64))
    if isinstance(act, (MaskedDiscrete, MaskedMultiDiscrete)):
        act.mask_fn = mask_fn
    return obs, act


def _numpy_obs(batch: EpisodeBatch, rows: Any = slice(None)):
    obs = batch.observation()[rows].cpu().numpy()
    mask = batch.action_mask()
    if mask is None:
        return obs
    return {"observation": obs, "action_mask": mask[rows].cpu().numpy().astype(np.int8)}


class VectorEnv(gym.vector.VectorEnv):
    """``num_envs`` episodes of ``problem`` as one Gymnasium 1.x vector env.

    Observations are ``problem.observe(state)`` as float32; for problems with masks a Dict of
    ``"observation"`` and ``"action_mask"`` (one 0/1 block per action dimension), and :meth:`action_masks`
    gives the same mask as booleans (sb3-contrib's MaskablePPO reads it). The reward is minus the period's
    cost (post-decision plus transition), times ``reward_scale``. Problems measured by their episode total
    (metric ``"total"``: a makespan, a day's fuel) end ``terminated``; those measured per period (metric
    ``"mean"``: inventory) are cut at ``periods`` and end ``truncated``.

    Autoreset mode: ``SAME_STEP``. The step that ends an episode returns the first observation of the next
    one; the last observation is ``info["final_obs"]`` (an object array, ``info["_final_obs"]`` says which
    envs), with ``info["final_info"]``. The next scenarios come from the same split, batch ``k`` seeded
    ``episode_seed(seed, k)``. ``graph=True`` adds ``info["graph"]``, the problem's torch_geometric batch.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        problem: Problem,
        num_envs: int = 1,
        split: str = "train",
        seed: int = 0,
        device: str | torch.device = "cpu",
        *,
        periods: int | None = None,
        reward_scale: float = 1.0,
        action_bounds: tuple[float, float] | None = None,
        action_levels: int | None = None,
        graph: bool = False,
    ):
        self.batch = EpisodeBatch(
            problem, num_envs, split, seed, device, periods, reward_scale, action_bounds, action_levels
        )
        self.problem, self.num_envs, self.graph = problem, self.batch.num_envs, bool(graph)
        if self.graph:
            try:
                problem.graph(self.batch.state)
            except NotImplementedError:
                raise ValueError(f"graph=True: {type(problem).__name__} has no graph view; use graph=False") from None
        self.single_observation_space, self.single_action_space = single_spaces(self.batch)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._ended = self.problem.metric == "total"
        self.render_mode = None

    @property
    def closed(self) -> bool:
        return self.batch.closed

    @closed.setter
    def closed(self, value: bool) -> None:  # gymnasium's VectorEnv.close sets it
        if value:
            self.batch.close()

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"t": self.batch.t.numpy().copy(), "_t": np.ones(self.num_envs, bool)}
        if self.graph:
            info["graph"] = self.problem.graph(self.batch.state)
        return info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._np_random, _ = gym.utils.seeding.np_random(seed)
            self.action_space.seed(seed)
        self.batch.reset(seed)
        return _numpy_obs(self.batch), self._info()

    def step(self, actions):
        cost, done = self.batch.step(actions)
        rewards = (-cost * self.batch.reward_scale).to(torch.float64).cpu().numpy()
        done_np = done.numpy()
        term = done_np & self._ended
        trunc = done_np & (not self._ended)
        info: dict[str, Any] = {}
        if done.any():
            final_obs = _numpy_obs(self.batch)
            fo = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done_np):
                fo[i] = {k: v[i] for k, v in final_obs.items()} if isinstance(final_obs, dict) else final_obs[i]
            info["final_obs"], info["_final_obs"] = fo, done_np.copy()
            info["final_info"], info["_final_info"] = self._info(), done_np.copy()
            self.batch.reset_envs(done)
        info.update(self._info())
        return _numpy_obs(self.batch), rewards, term, trunc, info

    def action_masks(self) -> np.ndarray:
        """``[num_envs, sum(nvec)]`` booleans of allowed choices (all True where the problem has no mask)."""
        m = self.batch.action_mask()
        if m is None:
            n = int(np.sum(self.batch.layout.nvec)) if self.batch.layout.nvec else 0
            return np.ones((self.num_envs, n), dtype=bool)
        return m.cpu().numpy()

    def close_extras(self, **kwargs: Any) -> None:
        self.batch.close()


class SingleEnv(gym.Env):
    """One episode at a time of ``problem``: a plain ``gymnasium.Env`` (no autoreset), the view that
    Gymnasium's ``check_env`` and single-env libraries expect. ``reset(seed=s)`` restarts at batch 0 of
    seed ``s``; each later ``reset()`` plays the next scenario."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        problem: Problem,
        split: str = "train",
        seed: int = 0,
        device: str | torch.device = "cpu",
        *,
        periods: int | None = None,
        reward_scale: float = 1.0,
        action_bounds: tuple[float, float] | None = None,
        action_levels: int | None = None,
    ):
        self.batch = EpisodeBatch(problem, 1, split, seed, device, periods, reward_scale, action_bounds, action_levels)
        self.problem = problem
        self.observation_space, self.action_space = single_spaces(self.batch, self.action_masks)
        self._ended = problem.metric == "total"
        self._over = False
        self.render_mode = None

    def _obs(self):
        o = _numpy_obs(self.batch)
        return {k: v[0] for k, v in o.items()} if isinstance(o, dict) else o[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.batch.reset(seed)
        self._over = False
        return self._obs(), {"t": 0}

    def step(self, action):
        if self._over and not self.batch.closed:
            raise ValueError("step() after the episode ended: call reset() first")
        a = np.asarray(action) if not torch.is_tensor(action) else action
        cost, done = self.batch.step(a[None])
        over = bool(done[0])
        self._over = over
        reward = float(-cost[0] * self.batch.reward_scale)
        return self._obs(), reward, over and self._ended, over and not self._ended, {"t": int(self.batch.t[0])}

    def action_masks(self) -> np.ndarray:
        m = self.batch.action_mask()
        return np.ones(0, dtype=bool) if m is None else m[0].cpu().numpy()

    def close(self) -> None:
        self.batch.close()
