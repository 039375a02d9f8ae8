"""Every opsrl problem as a Gymnasium vector env, a TorchRL env and (through them) a Stable-Baselines3 env.

Written once against the contract (:mod:`opsrl.core`), so it serves every family. The modules here import
only ``opsrl.core``; gymnasium, torchrl and stable-baselines3 are imported when their adapter is first used
(``pip install 'opsrl[rl]'``), so ``import opsrl.envs`` works without them.

* :class:`VectorEnv` (Gymnasium 1.x ``VectorEnv``, autoreset ``SAME_STEP``) and :class:`SingleEnv`;
* :class:`TorchRLEnv` (TorchRL ``EnvBase``, ``batch_size=[num_envs]``, partial resets, on the device);
* :class:`SB3VecEnv` (a Stable-Baselines3 ``VecEnv``, with ``action_masks()`` for sb3-contrib's MaskablePPO);
* :func:`observation_policy`: an external policy (callable, SB3 model, TorchRL module) as an opsrl policy;
* :func:`make`, :func:`register` and :func:`external_solver` load problems by name and hand policies to the
  runner; they live in :mod:`opsrl.bench.external` (they need the registry and the runner, which sit above
  this package) and are reached from here only when called.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .batch import MAX_ENVS, ActionLayout, EnvClosedError, EpisodeBatch, episode_seed
from .policy import observation_policy

_LAZY = {
    "VectorEnv": ".gym_env",
    "SingleEnv": ".gym_env",
    "TorchRLEnv": ".torchrl_env",
    "SB3VecEnv": ".sb3",
}
_ABOVE = {"make", "register", "external_solver"}  # opsrl.bench.external, imported when first asked for


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    if name in _ABOVE:
        return getattr(import_module("opsrl.bench.external"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MAX_ENVS",
    "ActionLayout",
    "EnvClosedError",
    "EpisodeBatch",
    "episode_seed",
    "observation_policy",
    "VectorEnv",
    "SingleEnv",
    "TorchRLEnv",
    "SB3VecEnv",
    "make",
    "register",
    "external_solver",
]
