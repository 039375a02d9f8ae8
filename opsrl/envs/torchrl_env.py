"""A TorchRL ``EnvBase`` over an opsrl problem: ``batch_size=[num_envs]``, tensors kept on the device.

Imports torchrl and tensordict (``pip install 'opsrl[rl]'``); the engine is :class:`.batch.EpisodeBatch`.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Binary, Bounded, Categorical, Composite, MultiCategorical, Unbounded
from torchrl.envs import EnvBase

from ..core import Problem
from .batch import EpisodeBatch


class TorchRLEnv(EnvBase):
    """``num_envs`` episodes of ``problem`` as one TorchRL environment with ``batch_size=[num_envs]``.

    Keys: ``"observation"`` (float32 ``[num_envs, d]``), ``"action_mask"`` (bool, one block per action
    dimension, where the problem has masks; the action spec's mask follows it, so ``rand_action`` and
    masked samplers draw allowed actions), ``"action"`` (float32 box, or int64 choices: ``[num_envs]`` for
    one choice, ``[num_envs, k]`` for ``k``), ``"reward"`` (minus the period's cost times ``reward_scale``,
    in the problem's dtype, ``[num_envs, 1]``), ``"done"``/``"terminated"``/``"truncated"`` (``[num_envs,
    1]``; episode totals terminate, per-period costs truncate, as in :class:`opsrl.envs.VectorEnv`).

    Partial resets (``"_reset"``) start the chosen envs' next scenario rows (see :mod:`.batch`); an env
    that is done must be reset before it is stepped again (``rollout(..., break_when_any_done=False)`` and
    collectors do this). Nothing leaves the device: no NumPy round trip.
    """

    batch_locked = True

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
        super().__init__(device=torch.device(device), batch_size=torch.Size([self.batch.num_envs]))
        self.problem, self.num_envs = problem, self.batch.num_envs
        B, lay, dev = self.num_envs, self.batch.layout, self.batch.device
        d = int(self.batch.observation().shape[-1])
        obs = {"observation": Unbounded(shape=(B, d), dtype=torch.float32, device=dev)}
        if lay.masked:
            obs["action_mask"] = Binary(n=lay.mask_size, shape=(B, lay.mask_size), dtype=torch.bool, device=dev)
        self.observation_spec = Composite(obs, shape=(B,))
        if lay.kind == "box":
            shape = (B, *lay.shape)
            if math.isinf(lay.low) or math.isinf(lay.high):
                self.action_spec = Unbounded(shape=shape, dtype=torch.float32, device=dev)
            else:
                self.action_spec = Bounded(lay.low, lay.high, shape=shape, dtype=torch.float32, device=dev)
        elif lay.kind == "discrete":
            self.action_spec = Categorical(lay.nvec[0], shape=(B,), dtype=torch.int64, device=dev)
        else:
            self.action_spec = MultiCategorical(list(lay.nvec), shape=(B, len(lay.nvec)), dtype=torch.int64, device=dev)
        self.reward_spec = Unbounded(shape=(B, 1), dtype=problem.dtype, device=dev)
        flag = Categorical(2, shape=(B, 1), dtype=torch.bool, device=dev)
        self.done_spec = Composite(done=flag.clone(), terminated=flag.clone(), truncated=flag.clone(), shape=(B,))
        self._ended = problem.metric == "total"
        self._update_mask()

    # --- helpers ----------------------------------------------------------------------------------
    def _update_mask(self) -> torch.Tensor | None:
        mask = self.batch.action_mask()
        if mask is not None:
            self.action_spec.update_mask(mask)
        return mask

    def _out(self, reward: torch.Tensor | None = None) -> TensorDictBase:
        B = self.num_envs
        done = (self.batch.t >= self.batch.periods).to(self.batch.device)[:, None]
        out = {
            "observation": self.batch.observation(),
            "done": done,
            "terminated": done & self._ended,
            "truncated": done & (not self._ended),
        }
        mask = self._update_mask()
        if mask is not None:
            out["action_mask"] = mask
        if reward is not None:
            out["reward"] = reward[:, None]
        return TensorDict(out, batch_size=[B], device=self.batch.device)

    # --- EnvBase ----------------------------------------------------------------------------------
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        which = None if tensordict is None else tensordict.get("_reset", None)
        if which is None:
            self.batch.reset_envs(torch.ones(self.num_envs, dtype=torch.bool), advance=bool(self.batch.t.any()))
        else:
            self.batch.reset_envs(which.reshape(self.num_envs).cpu())
        return self._out()

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        if bool((self.batch.t >= self.batch.periods).any()):
            i = int((self.batch.t >= self.batch.periods).nonzero()[0, 0])
            raise ValueError(f"step of env {i} after its episode ended: reset it first (tensordict['_reset'])")
        cost, _ = self.batch.step(tensordict.get("action"))
        return self._out(-cost * self.batch.reward_scale)

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self.batch.reset(int(seed) % 2**63)

    def rand_action(self, tensordict: TensorDictBase | None = None):
        """A random action from the action spec (masked); half-open boxes draw ``low + Exp(action_scale)``
        (as Gymnasium's Box does), since an unbounded spec's normal draws leave the box."""
        lay = self.batch.layout
        if (
            lay.kind == "box"
            and (math.isinf(lay.low) or math.isinf(lay.high))
            and not (math.isinf(lay.low) and math.isinf(lay.high))
        ):
            scale = (
                float(getattr(self.problem, "action_scale", 1.0))
                if not torch.is_tensor(getattr(self.problem, "action_scale", 1.0))
                else 1.0
            )
            e = torch.empty(self.action_spec.shape, device=self.batch.device).exponential_() * scale
            a = lay.low + e if math.isfinite(lay.low) else lay.high - e
            td = tensordict
            if td is None:
                td = TensorDict({}, batch_size=self.batch_size, device=self.device)
            td.set("action", a.to(torch.float32))
            return td
        return super().rand_action(tensordict)

    def close(self, *, raise_if_closed: bool = True) -> None:
        self.batch.close()
        try:
            super().close(raise_if_closed=raise_if_closed)
        except TypeError:  # older torchrl: no keyword
            super().close()
