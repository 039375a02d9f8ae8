"""A Stable-Baselines3 ``VecEnv`` over an opsrl problem, for SB3 and sb3-contrib (MaskablePPO).

SB3 does not take Gymnasium vector envs; this view steps the same :class:`.batch.EpisodeBatch` and speaks
SB3's protocol: auto-reset in the step that ends an episode, the last observation in
``infos[i]["terminal_observation"]``, ``infos[i]["TimeLimit.truncated"]`` for per-period problems cut at
their horizon, and ``env_method("action_masks")`` for MaskablePPO. Imports stable_baselines3.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from ..core import Problem
from .batch import EpisodeBatch
from .gym_env import _numpy_obs, single_spaces


class SB3VecEnv(VecEnv):
    """``num_envs`` episodes of ``problem`` as an SB3 ``VecEnv`` (same spaces, rewards and seeding as
    :class:`opsrl.envs.VectorEnv`). SB3 needs a finite box: a half-open one (order quantities) needs
    ``action_bounds=(low, high)``."""

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
    ):
        self.batch = EpisodeBatch(
            problem, num_envs, split, seed, device, periods, reward_scale, action_bounds, action_levels
        )
        self.problem = problem
        lay = self.batch.layout
        if lay.kind == "box" and not (np.isfinite(lay.low) and np.isfinite(lay.high)):
            raise ValueError(
                f"Stable-Baselines3 needs a finite action box; this problem's is [{lay.low}, {lay.high}]: pass "
                "action_bounds=(low, high) (a restriction of the actions, e.g. a cap on the order size)"
            )
        obs_space, act_space = single_spaces(self.batch)
        self.render_mode = None
        super().__init__(self.batch.num_envs, obs_space, act_space)
        self._ended = problem.metric == "total"
        self._actions: Any = None

    def reset(self):
        seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
        self.batch.reset(seed)
        self._reset_seeds()
        return _numpy_obs(self.batch)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        cost, done = self.batch.step(self._actions)
        # float64 rewards: exact for float64 problems (SB3's buffers cast them as they need)
        rewards = (-cost * self.batch.reward_scale).to(torch.float64).cpu().numpy()
        d = done.numpy().copy()
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if d.any():
            last = _numpy_obs(self.batch)
            for i in np.flatnonzero(d):
                infos[i]["terminal_observation"] = (
                    {k: v[i] for k, v in last.items()} if isinstance(last, dict) else last[i]
                )
                infos[i]["TimeLimit.truncated"] = not self._ended
            self.batch.reset_envs(done)
        return _numpy_obs(self.batch), rewards, d, infos

    def action_masks(self) -> np.ndarray:
        m = self.batch.action_mask()
        if m is None:
            return np.ones((self.num_envs, 0), dtype=bool)
        return m.cpu().numpy()

    def close(self) -> None:
        self.batch.close()

    # --- SB3's per-env attribute protocol (one process, one batch) --------------------------------
    def _n(self, indices) -> list[int]:
        return list(self._get_indices(indices))

    def has_attr(self, attr_name: str) -> bool:
        return hasattr(self, attr_name)

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._n(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        idx = self._n(indices)
        if method_name == "action_masks":
            m = self.action_masks()
            return [m[i] for i in idx]
        out = getattr(self, method_name)(*method_args, **method_kwargs)
        return [out for _ in idx]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._n(indices)]
