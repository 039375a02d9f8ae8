"""RL-library adapters by problem name, and external policies as opsrl solvers.

The adapters themselves (:mod:`opsrl.envs`) import only the contract; what needs the registry (problems by
name) or hands a policy to the runner lives here, on top:

* :func:`make` builds a Gymnasium, SB3 or TorchRL env for a bundled problem name, a problem file or a
  :class:`opsrl.core.Problem`;
* :func:`register` registers every bundled problem with Gymnasium under the ``opsrl/`` namespace
  (``gymnasium.make("opsrl/inventory.lost_sales_p4_L1-v0")``, ``gymnasium.make_vec(..., num_envs=64)``);
* :func:`external_solver` wraps a policy trained elsewhere (an SB3 model, a TorchRL module, a callable on
  observations) as a :class:`opsrl.core.Method`, so ``opsrl.run(problem, external_solver(model))`` evaluates
  it on the problem's test split through the runner, like any opsrl solver, and records it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core import Method, Problem, SolveOutcome
from ..envs.policy import _kind, observation_policy

KINDS = ("gymnasium", "sb3", "torchrl", "single")
NAMESPACE = "opsrl"


def _problem(problem: str | Path | Problem, overrides: dict[str, Any] | None = None) -> Problem:
    if isinstance(problem, Problem):
        if overrides:
            raise ValueError("overrides apply to a problem loaded by name; this one is already built")
        return problem
    if not isinstance(problem, (str, Path)):
        raise ValueError(f"problem must be a problem name, a problem file or an opsrl Problem; got {problem!r}")
    from ..registry import load_problem

    return load_problem(problem, overrides)


def make(
    problem: str | Path | Problem,
    num_envs: int = 1,
    kind: str = "gymnasium",
    *,
    split: str = "train",
    seed: int = 0,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    **options: Any,
):
    """An RL environment of ``problem`` (a bundled name such as ``"inventory/lost_sales_p9_L4"``, a problem
    file, or a built problem). ``kind``: ``"gymnasium"`` (:class:`opsrl.envs.VectorEnv`), ``"sb3"``
    (:class:`opsrl.envs.SB3VecEnv`), ``"torchrl"`` (:class:`opsrl.envs.TorchRLEnv`) or ``"single"``
    (:class:`opsrl.envs.SingleEnv`, one env, ``num_envs`` must be 1). ``options`` go to the env
    (``periods``, ``reward_scale``, ``graph``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}")
    prob = _problem(problem, overrides)
    if kind == "single":
        if num_envs != 1:
            raise ValueError(f"kind='single' is one environment; got num_envs={num_envs!r} (use kind='gymnasium')")
        from ..envs.gym_env import SingleEnv

        return SingleEnv(prob, split, seed, device, **options)
    if kind == "gymnasium":
        from ..envs.gym_env import VectorEnv as cls
    elif kind == "sb3":
        from ..envs.sb3 import SB3VecEnv as cls
    else:
        from ..envs.torchrl_env import TorchRLEnv as cls
    return cls(prob, num_envs, split, seed, device, **options)


def env_id(name: str) -> str:
    """The Gymnasium id of a bundled problem name: ``inventory/lost_sales_p4_L1`` ->
    ``opsrl/inventory.lost_sales_p4_L1-v0``."""
    return f"{NAMESPACE}/{name.replace('/', '.')}-v0"


def _single(problem: str, **kwargs: Any):
    return make(problem, 1, "single", **kwargs)


def _vector(problem: str, num_envs: int = 1, **kwargs: Any):
    kwargs.pop("vectorization_mode", None)
    kwargs.pop("vector_kwargs", None)
    return make(problem, num_envs, "gymnasium", **kwargs)


def register() -> list[str]:
    """Register every bundled problem with Gymnasium (``gymnasium.make`` gives a :class:`SingleEnv`,
    ``gymnasium.make_vec`` a :class:`VectorEnv`); returns the ids. Registering again is harmless."""
    import gymnasium

    from ..registry import bundled

    ids = []
    for name in sorted(bundled("problems")):
        eid = env_id(name)
        if eid not in gymnasium.registry:
            gymnasium.register(
                eid,
                entry_point=f"{__name__}:_single",
                vector_entry_point=f"{__name__}:_vector",
                kwargs={"problem": name},
                disable_env_checker=True,  # opsrl's own checks are stricter; tests run check_env on every family
            )
        ids.append(eid)
    return ids


def fingerprint(model: Any) -> str:
    """A short hash of a model's weights (SB3 model or torch module), so two differently trained models under
    one name are told apart by whatever identifies a run by its method; ``""`` for a plain callable."""
    import hashlib

    import torch

    module = getattr(model, "policy", model)
    if not isinstance(module, torch.nn.Module):
        return ""
    h = hashlib.sha1()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def external_solver(
    model: Any,
    name: str = "external",
    *,
    deterministic: bool = True,
    action_bounds: tuple[float, float] | None = None,
    action_levels: int | None = None,
) -> Method:
    """A policy trained outside opsrl as an opsrl :class:`~opsrl.core.Method` (``learns=False``).

    ``fit`` returns :class:`~opsrl.core.SolveOutcome` with the policy of
    :func:`opsrl.envs.observation_policy`: it sees what the adapters show and its actions are checked and
    rounded as they are, so the runner's evaluation on the test split is the adapters' rollout. Pass the
    ``action_bounds``/``action_levels`` of the env the model was trained on.
    """
    _kind(model)  # refuse what cannot be a policy now, not at fit time
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    desc = f"external policy ({type(model).__module__}.{type(model).__name__}) through the opsrl.envs adapters"
    weights = fingerprint(model)
    if weights:
        desc += f"; weights {weights}"

    def fit(problem: Problem, options, solver_config, ctx) -> SolveOutcome:
        policy = observation_policy(
            problem, model, deterministic, action_bounds=action_bounds, action_levels=action_levels
        )
        info = {"external": type(model).__name__, "deterministic": deterministic, "weights": weights}
        return SolveOutcome(policy=policy, info=info)

    return Method(name=name, fit=fit, options={}, learns=False, description=desc)
