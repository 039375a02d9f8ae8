"""The learned dispatcher shipped with opsrl: a GNN (:mod:`opsrl.nn.gnn_dispatch`) trained by imitation of
dispatching rules and self-labelling (``benchmarks/jobshop_train_gnn.py``).

``data/gnn_dispatcher.pt`` holds its weights and ``data/gnn_dispatcher.json`` the network's size, the
arguments that produced it and its learning curves (a run continued from earlier weights keeps that run's
record under ``init``; the commands are in the README and ``docs/jobshop.md``). One network serves every
instance size.

* greedy: dispatch the highest-scoring allowed job at every step (one schedule per instance);
* best of ``k``: sample ``k`` schedules per instance from the policy's distribution (all instances and
  samples in one batch, in chunks) and keep the shortest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
from pydantic import Field as PydanticField

from ..core import Scenarios
from ..core.datafile import Integer, Record, check, load_json
from .simulator import JobShop, metrics

__all__ = ["WEIGHTS", "load", "best_of"]

WEIGHTS = Path(__file__).resolve().parent / "data" / "gnn_dispatcher.pt"


class Network(Record):
    width: Annotated[Integer, PydanticField(ge=1, le=4096)] = 32
    layers: Annotated[Integer, PydanticField(ge=0, le=64)] = 3


class DispatcherMeta(Record):
    """The JSON beside the dispatcher's weights: the network's size (other keys: how it was trained)."""

    network: Network


def load(problem: JobShop, path: str | Path | None = None, source: str = "<weights>"):
    """The dispatcher (a :class:`~opsrl.nn.gnn_dispatch.GraphActorCritic`) with saved weights, in eval mode."""
    from ..nn.gnn_dispatch import GraphActorCritic

    path = Path(path) if path else WEIGHTS
    meta = path.with_suffix(".json")
    net = check(DispatcherMeta, load_json(meta), meta).network if meta.exists() else Network()
    ac = GraphActorCritic(problem, net.width, net.layers)
    from ..core.config import load_weights

    load_weights(ac, path, source, "options.weights")  # a file that is not torch weights: one ConfigError
    return ac.eval()


@torch.no_grad()
def best_of(
    problem: JobShop,
    ac,
    scenarios: Scenarios,
    k: int,
    seed: int = 0,
    max_nodes: int = 200_000,
    greedy_first: bool = True,
) -> tuple[torch.Tensor, dict]:
    """Shortest makespan ``[n]`` over ``k`` schedules per scenario (the first one greedy when
    ``greedy_first``, the others sampled) and the best schedules (``start``/``end`` per scenario).

    The ``n * k`` rollouts run in batches of at most ``max_nodes`` graph nodes (operations)."""
    n = scenarios.n
    ops = int(scenarios["n_ops"].sum(1).max())
    chunk = max(1, max_nodes // max(ops, 1))
    best = torch.full((n,), float("inf"), dtype=torch.float64)
    start: list = [None] * n
    end: list = [None] * n
    gen = torch.Generator().manual_seed(seed)
    for r0 in range(0, n * k, chunk):
        rows = torch.arange(r0, min(n * k, r0 + chunk))
        inst = rows // k
        sc = scenarios.select(inst)
        state = problem.initial_state(sc)
        sample = (rows % k != 0) | (not greedy_first)
        for t in range(sc.periods):
            logits = ac.decision_logits(state, t)
            u = torch.rand(logits.shape[0], 1, generator=gen)
            # inverse-CDF draw from the masked categorical (a seeded generator of its own)
            cdf = logits.softmax(-1).cumsum(-1)
            draw = (cdf < u * cdf[:, -1:]).sum(-1, keepdim=True).clamp(max=cdf.shape[1] - 1)
            a = torch.where(sample[:, None], draw, logits.argmax(-1, keepdim=True)).float()
            state, _ = problem.transition(problem.post_decision(state, ac.to_action(a))[0], sc, t)
        ms = metrics(state)["makespan"].double()
        st = en = nops = None
        for r, b in enumerate(inst.tolist()):
            if ms[r] < best[b]:
                if st is None:
                    st, en, nops = state["start"].tolist(), state["end"].tolist(), sc["n_ops"].tolist()
                best[b] = ms[r]
                start[b] = [st[r][j][:m] for j, m in enumerate(nops[r]) if m > 0]
                end[b] = [en[r][j][:m] for j, m in enumerate(nops[r]) if m > 0]
    return best, {"start": start, "end": end}
