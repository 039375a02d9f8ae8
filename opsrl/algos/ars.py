"""Augmented random search (ARS) for policies with a few parameters, with an optional cap on a second cost.

Mania, Guy and Recht, "Simple random search of static linear policies is competitive for reinforcement
learning" (NeurIPS 2018), version V1-t: each iteration draws ``directions`` Gaussian directions, evaluates
the parameters moved by ``+noise`` and ``-noise`` along each (all candidates on the same scenarios, so the
comparison is paired), keeps the ``top`` directions whose better side is best, and steps along them,
scaled by the standard deviation of the kept costs. No gradient of the simulator is needed, so the policy
may be a rule with thresholds (a step function of its parameters, where pathwise gradients are zero).

A cap on a second cost (``constraint <= cap``) is handled as in constrained policy optimisation by a
Lagrange multiplier: ARS minimises ``objective + multiplier * constraint`` and, after each iteration, the
multiplier moves by ``multiplier_step`` times the relative violation of the cap by the candidates' mean
(dual ascent, never below 0).

The caller supplies the evaluation: ``evaluate(thetas [K, P]) -> (objective [K], constraint [K] or None)``,
means over training scenarios, for any problem family. ``select(theta) -> (objective, admissible)`` on
held-out (dev) scenarios, every ``select_every`` iterations and for the starting point, decides what is
kept: the best objective among the admissible parameters (the caller's test, e.g. within a cap on those
scenarios); the start counts, so the result is never worse than it there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

__all__ = ["ARSResult", "ars"]

Evaluate = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


@dataclass
class ARSResult:
    theta: np.ndarray  # the kept parameters
    kept_iteration: int  # 0: the starting point
    multiplier: float  # the final Lagrange multiplier (0 without a cap)
    history: list[dict] = field(default_factory=list)  # one row per selection: iteration, objective, admissible


def ars(
    evaluate: Evaluate,
    theta0,
    *,
    iterations: int,
    directions: int = 8,
    top: int | None = None,
    noise: float = 0.02,
    step: float = 0.01,
    seed: int = 0,
    cap: float | None = None,
    multiplier: float = 0.0,
    multiplier_step: float = 0.5,
    select: Callable[[np.ndarray], tuple[float, bool]] | None = None,
    select_every: int = 5,
    progress: bool = True,
    desc: str = "ars",
) -> ARSResult:
    """Minimise ``evaluate``'s objective (plus ``multiplier`` times its constraint when ``cap`` is given)
    over the parameter vector starting at ``theta0``; see the module docstring."""
    if iterations < 0 or directions < 1 or noise <= 0 or step <= 0:
        raise ValueError(
            f"ars needs iterations >= 0, directions >= 1, noise > 0 and step > 0; got {iterations}, "
            f"{directions}, {noise}, {step}"
        )
    top = directions if top is None else top
    if not 1 <= top <= directions:
        raise ValueError(f"ars: top must be in [1, directions = {directions}], got {top}")
    if cap is not None and cap <= 0:
        raise ValueError(f"ars: the cap must be positive, got {cap}")
    rng = np.random.default_rng(seed)
    theta = np.asarray(theta0, dtype=np.float64).copy()
    lam = float(multiplier) if cap is not None else 0.0
    history: list[dict] = []
    kept, kept_it, kept_obj = theta.copy(), 0, np.inf

    def consider(it: int) -> None:
        nonlocal kept, kept_it, kept_obj
        if select is None:
            kept, kept_it = theta.copy(), it
            return
        obj, ok = select(theta)
        history.append({"iteration": it, "objective": float(obj), "admissible": bool(ok), "multiplier": lam})
        if ok and obj < kept_obj:
            kept, kept_it, kept_obj = theta.copy(), it, float(obj)

    consider(0)
    bar = tqdm(range(iterations), desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    for it in bar:
        delta = rng.standard_normal((directions, theta.size))
        obj, con = evaluate(np.concatenate([theta + noise * delta, theta - noise * delta]))
        obj = np.asarray(obj, dtype=np.float64)
        cost = obj if cap is None else obj + lam * np.asarray(con, dtype=np.float64)
        plus, minus = cost[:directions], cost[directions:]
        best = np.argsort(np.minimum(plus, minus))[:top]
        sd = np.concatenate([plus[best], minus[best]]).std()
        if sd > 0:
            theta = theta - step / (top * sd) * ((plus[best] - minus[best])[:, None] * delta[best]).sum(0)
        if cap is not None:
            lam = max(0.0, lam + multiplier_step * (float(np.mean(con)) - cap) / cap)
        bar.set_postfix(cost=f"{float(cost.mean()):.4g}", mult=f"{lam:.3g}")
        if (it + 1) % select_every == 0 or it + 1 == iterations:
            consider(it + 1)
    return ARSResult(kept, kept_it, lam, history)
