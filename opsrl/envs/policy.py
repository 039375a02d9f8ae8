"""An external policy (a callable on observations, an SB3 model, a TorchRL module) as an opsrl policy.

:func:`observation_policy` turns it into a :data:`opsrl.core.Policy` (``state, t -> action``) that sees
exactly what the adapters show (float32 ``observe(state)``, with the ``action_mask`` where the problem has
masks) and whose actions go through the adapters' own check and rounding
(:func:`opsrl.envs.batch.to_sim_action`): rolled by :func:`opsrl.core.evaluate`, it gives the same costs as
the same policy stepped through :class:`opsrl.envs.VectorEnv` or :class:`opsrl.envs.TorchRLEnv`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..core import Policy, Problem, State
from .batch import action_mask, layout_of, observation, to_sim_action


def _kind(model: Any) -> str:
    if hasattr(model, "predict") and hasattr(model, "policy"):
        return "sb3"
    try:
        from tensordict.nn import TensorDictModuleBase

        if isinstance(model, TensorDictModuleBase):
            return "torchrl"
    except ImportError:
        pass
    if callable(model):
        return "callable"
    raise ValueError(
        f"an external policy must be a callable on observations, a Stable-Baselines3 model or a TorchRL "
        f"(TensorDict) module; got {type(model).__name__}"
    )


def observation_policy(
    problem: Problem,
    model: Any,
    deterministic: bool = True,
    *,
    action_bounds: tuple[float, float] | None = None,
    action_levels: int | None = None,
) -> Policy:
    """``model`` as an opsrl policy on ``problem``.

    * a Stable-Baselines3 / sb3-contrib model: ``model.predict(obs, deterministic=deterministic)`` on
      NumPy observations (``action_masks=`` for masked problems, as MaskablePPO takes them);
    * a TorchRL module: called on a TensorDict with ``"observation"`` (and ``"action_mask"``); its
      ``"action"`` entry is the action;
    * any other callable: ``model(obs)`` with ``obs`` a float32 tensor ``[B, d]``, or a dict of
      ``"observation"`` and ``"action_mask"`` tensors for masked problems; it returns actions ``[B, ...]``
      (tensor or array).

    ``action_bounds`` and ``action_levels`` must be those of the env the model was trained on (a model trained on
    choices ``0..levels-1`` of an integer box returns choices, which stand for ``low + k``).
    """
    kind = _kind(model)
    cache: dict[str, Any] = {}

    def policy(state: State, t: int) -> torch.Tensor:
        if "layout" not in cache:
            cache["layout"] = layout_of(problem, state, action_bounds, action_levels)
        lay = cache["layout"]
        obs = observation(problem, state)
        mask = action_mask(problem, lay, state)
        device = obs.device
        if kind == "sb3":
            o = obs.cpu().numpy()
            if mask is not None:
                o = {"observation": o, "action_mask": mask.cpu().numpy().astype(np.int8)}
                try:
                    a, _ = model.predict(o, deterministic=deterministic, action_masks=mask.cpu().numpy())
                except TypeError:  # a model without masks (plain PPO) on a masked problem
                    a, _ = model.predict(o, deterministic=deterministic)
            else:
                a, _ = model.predict(o, deterministic=deterministic)
        elif kind == "torchrl":
            from tensordict import TensorDict

            td = {"observation": obs}
            if mask is not None:
                td["action_mask"] = mask
            a = model(TensorDict(td, batch_size=[obs.shape[0]], device=device)).get("action")
        else:
            a = model(obs if mask is None else {"observation": obs, "action_mask": mask})
        return to_sim_action(problem, lay, a, state, device)

    return policy
