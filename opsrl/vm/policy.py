"""The shipped two-stage policy (:class:`opsrl.nn.two_stage.TwoStageActorCritic`) and risk-seeking best of K.

The weights in ``data/two_stage.pt`` (with ``data/two_stage.json``: width, layers, how they were trained)
were trained by the generic ``ppo`` on synthetic Medium snapshots with ``benchmarks/vm_train_gnn.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.distributions import Categorical

from ..core import Scenarios
from ..core.config import load_weights
from ..nn.two_stage import TwoStageActorCritic, _masked_logits
from . import simulator as sim

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
def best_of_reference(problem, ac: TwoStageActorCritic, scenarios: Scenarios, k: int, seed: int = 0) -> dict:
    """:func:`best_of` the straightforward way, through the policy's generic contract path (every view,
    mask and stage recomputed as PPO sees them); kept as the reference the fast planner is tested against."""
    n = scenarios.n
    dev = scenarios.device
    rep = scenarios.select(torch.arange(n, device=dev).repeat_interleave(k))
    torch.manual_seed(seed)
    ac.sampling, ac.greedy_rows = True, (torch.arange(n * k, device=dev) % k == 0)
    try:
        final = plan(problem, ac, rep)
    finally:
        ac.sampling, ac.greedy_rows = False, None
    return _pick(problem, final, n, k)


def _pick(problem, final: dict, n: int, k: int) -> dict:
    fr = problem.fr(final).reshape(n, k)
    pick = torch.arange(n, device=fr.device) * k + fr.argmin(1)
    return {
        key: v[pick] if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == n * k else v
        for key, v in final.items()
    }


def _step(problem, net, state: dict, sample_rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One decision of the policy, as :meth:`TwoStageActorCritic.forward` takes it, with every intermediate
    computed once: the kind tensors feed the best moves, the graph view and the first-stage mask; the
    critic is skipped; the second stage runs once, on the chosen VM only (its kind's destination change and
    its destination mask, which is also the move's feasibility). ``sample_rows`` ``[B]`` (None: greedy
    decoding) are the rows that sample; the others take the mode. Returns ``(action [B, 2], allowed [B])``."""
    blk, obj, mb = problem.block, problem.objective, problem.mem_block
    fit = sim.kind_fit(state)
    dest = sim.kind_dest_delta(state, blk, obj, mb)
    src = sim.source_delta(state, blk, obj, mb)
    best, _ = sim.vm_best_moves(state, blk, obj, mb, fit=fit, dest=dest, src=src)
    view = problem.bipartite(state, src=src, best=best)
    l1, _, ctx = net(view, critic=False)
    logits1 = _masked_logits(l1, sim.first_stage_mask(state, fit))
    item = logits1.argmax(-1)
    if sample_rows is not None:
        item = torch.where(sample_rows, Categorical(logits=logits1).sample(), item)
    ok = sim.destination_mask(state, item)
    pair = problem.pair_features_of(state, item, src, ok)
    cat2 = Categorical(logits=_masked_logits(net.bin_logits(ctx, item, pair), ok))
    slot = cat2.logits.argmax(-1)
    if sample_rows is not None:
        slot = torch.where(sample_rows, cat2.sample(), slot)
    return torch.stack([item, slot], 1), ok.gather(1, slot[:, None])[:, 0]


@torch.no_grad()
def fast_plan(
    problem,
    ac: TwoStageActorCritic,
    scenarios: Scenarios,
    sample_rows: torch.Tensor | None = None,
) -> dict:
    """:func:`plan` for the two-stage policy on this family through :func:`_step` (the same moves: greedy
    decoding without ``sample_rows``, sampling on those rows as ``ac.sampling`` does)."""
    state = problem.initial_state(scenarios)
    for _ in range(problem.periods):
        action, allowed = _step(problem, ac.net, state, sample_rows)
        state, _ = problem.post_decision(state, action, allowed)
    return state


@torch.no_grad()
def best_of(problem, ac: TwoStageActorCritic, scenarios: Scenarios, k: int, seed: int = 0) -> dict:
    """Risk-seeking evaluation: ``k`` plans per snapshot in one batch (the first greedy, the others sampled);
    returns the final state (with its plan) of the plan with the lowest FR of each snapshot. The same plans
    as :func:`best_of_reference` (the same random draws, in the same order), computed by :func:`fast_plan`."""
    n = scenarios.n
    dev = scenarios.device
    rep = scenarios.select(torch.arange(n, device=dev).repeat_interleave(k))
    torch.manual_seed(seed)
    final = fast_plan(problem, ac, rep, torch.arange(n * k, device=dev) % k != 0)
    return _pick(problem, final, n, k)
