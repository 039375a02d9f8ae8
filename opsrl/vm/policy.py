"""The shipped two-stage policy (:class:`opsrl.nn.two_stage.TwoStageActorCritic`) and risk-seeking best of K.

The weights in ``data/two_stage.pt`` (with ``data/two_stage.json``: width, layers, how they were trained)
were trained by the generic ``ppo`` on synthetic Medium snapshots with ``benchmarks/vm_train_gnn.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..core import Scenarios
from ..core.config import load_weights
from ..nn.two_stage import TwoStageActorCritic

DATA = Path(__file__).resolve().parent / "data"
WEIGHTS = DATA / "two_stage.pt"
META = DATA / "two_stage.json"


def load(problem, weights: str | Path | None = None, source: str = "<solver>") -> TwoStageActorCritic:
    """The policy with the shipped weights (or ``weights``), in eval mode; its width and layers come from the
    JSON next to the weights when there is one. A file that is not such weights is a ConfigError against
    ``source``'s ``options.weights``."""
    path = Path(weights) if weights else WEIGHTS
    meta = path.with_suffix(".json")
    cfg = json.loads(meta.read_text()) if meta.is_file() else {}
    ac = TwoStageActorCritic(problem, int(cfg.get("width", 32)), int(cfg.get("layers", 2)))
    load_weights(ac, path, source, "options.weights")
    ac.eval()
    return ac


@torch.no_grad()
def plan(problem, policy, scenarios: Scenarios) -> dict:
    """The state after the policy's ``problem.periods`` migrations on the snapshots (no drift applied)."""
    state = problem.initial_state(scenarios)
    for t in range(problem.periods):
        state, _ = problem.post_decision(state, policy(state, t))
    return state


@torch.no_grad()
def best_of(problem, ac: TwoStageActorCritic, scenarios: Scenarios, k: int, seed: int = 0) -> dict:
    """Risk-seeking evaluation: ``k`` plans per snapshot in one batch (the first greedy, the others sampled);
    returns the final state (with its plan) of the plan with the lowest FR of each snapshot."""
    n = scenarios.n
    dev = scenarios.device
    rep = scenarios.select(torch.arange(n, device=dev).repeat_interleave(k))
    torch.manual_seed(seed)
    ac.sampling, ac.greedy_rows = True, (torch.arange(n * k, device=dev) % k == 0)
    try:
        final = plan(problem, ac, rep)
    finally:
        ac.sampling, ac.greedy_rows = False, None
    fr = problem.fr(final).reshape(n, k)
    pick = torch.arange(n, device=dev) * k + fr.argmin(1)
    return {key: v[pick] if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == n * k else v
            for key, v in final.items()}
