"""A batched grid search over the parameters of a policy, through the simulator (any problem family).

``opsrl.core.search`` imports only ``opsrl.core``: the inventory levels, the echelon safety factors and the
microgrid's state-of-charge thresholds are all searched with it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .problem import Problem, Scenarios
from .rollout import evaluate

__all__ = ["grid_search"]


def grid_search(
    problem: Problem,
    scenarios: Scenarios,
    candidates: np.ndarray,
    make: Callable[[torch.Tensor], torch.nn.Module],
    chunk: int = 200_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate each row of ``candidates`` ``[K, d]`` on all ``scenarios`` (``make`` builds one policy for
    a batch holding each candidate's parameters once per scenario); return (best row, costs [K])."""
    K, n = len(candidates), scenarios.n
    per_block = max(1, chunk // n)
    costs = []
    for start in range(0, K, per_block):
        block = torch.as_tensor(candidates[start : start + per_block], dtype=torch.float32, device=scenarios.device)
        k = block.shape[0]
        rep = scenarios.select(torch.arange(n, device=scenarios.device).repeat(k))  # k copies, candidate-major
        params = block.repeat_interleave(n, dim=0)
        ev = evaluate(problem, make(params), rep)
        costs.append(ev.per_scenario.reshape(k, n).mean(dim=1).numpy())
    costs = np.concatenate(costs)
    return candidates[int(np.argmin(costs))], costs
