"""A size-agnostic graph dispatcher: a GNN that scores the dispatchable nodes of a state's graph.

It reads the ``torch_geometric`` batch of ``problem.policy_graph(state)`` (or ``problem.graph(state)``),
one graph per scenario, with node features ``x``, directed precedence edges ``edge_index`` (``u -> v``:
``v`` follows ``u``), machine-sequence edges ``machine_edge_index``, ``machine_group`` (nodes that share
a resource), ``candidate`` (the nodes that may be chosen now), ``job`` (the action index a node stands
for) and ``batch``. For the job shop that is the disjunctive graph of :mod:`opsrl.jobshop.graph`.

Each layer updates every node from itself, the mean of its predecessors and of its successors (two
directions of precedence and of machine sequence: four relations), and the mean over the still
unscheduled nodes of its resource group (the open disjunctions, in O(nodes)):

    h <- h + MLP([h, mean_pred h, mean_succ h, mean_mprev h, mean_mnext h, mean_open_group h])

The actor scores each candidate node from ``[h, graph mean of h, its group's open mean]``; the scores
of a graph form the logits over its actions (``-inf`` where no candidate). The critic reads the graph
mean (and the time to go, on finite horizons). Everything is a scatter over the whole batch of graphs:
no loop over graphs or nodes, and the same weights work for every graph size.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch_geometric.utils import scatter

from ..core import Problem, State
from .actor_critic import ActionDistribution, ActionHead, time_to_go

__all__ = ["GraphDispatchNet", "GraphActorCritic"]


def _mean(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    return scatter(src, index, dim=0, dim_size=size, reduce="mean")


class _Layer(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(6 * width, width), nn.ELU(), nn.Linear(width, width))
        self.norm = nn.LayerNorm(width)

    def forward(self, h, pre, mseq, group, open_w, n_groups):
        N = h.shape[0]
        src, dst = pre
        parts = [h, _mean(h[src], dst, N), _mean(h[dst], src, N)]
        msrc, mdst = mseq
        parts += [_mean(h[msrc], mdst, N), _mean(h[mdst], msrc, N)]
        g = scatter(h * open_w, group, dim=0, dim_size=n_groups, reduce="sum")
        cnt = scatter(open_w, group, dim=0, dim_size=n_groups, reduce="sum").clamp_min(1.0)
        parts.append((g / cnt)[group])
        return self.norm(h + self.mlp(torch.cat(parts, 1)))


class GraphDispatchNet(nn.Module):
    """Node embeddings by message passing, candidate scores and a graph value (see the module docstring)."""

    def __init__(self, in_dim: int, width: int = 64, layers: int = 3, extra: int = 0):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(in_dim, width), nn.ELU(), nn.Linear(width, width))
        self.layers = nn.ModuleList(_Layer(width) for _ in range(layers))
        self.actor = nn.Sequential(nn.Linear(3 * width, width), nn.ELU(), nn.Linear(width, 1))
        self.critic = nn.Sequential(nn.Linear(width + extra, width), nn.ELU(), nn.Linear(width, 1))
        with torch.no_grad():
            self.actor[-1].weight.mul_(0.01)

    def forward(self, g, n_graphs: int, open_col: int = 1, extra: torch.Tensor | None = None):
        """``(node scores [N], graph values [n_graphs])``; ``open_col`` is the feature column that flags
        scheduled nodes (those leave the open-group mean)."""
        x = g.x
        group = g.machine_group
        uniq, group = torch.unique(group, return_inverse=True)
        n_groups = uniq.numel()
        open_w = 1.0 - x[:, open_col : open_col + 1]
        h = self.embed(x)
        for layer in self.layers:
            h = layer(h, g.edge_index, g.machine_edge_index, group, open_w, n_groups)
        hg = _mean(h, g.batch, n_graphs)
        go = scatter(h * open_w, group, dim=0, dim_size=n_groups, reduce="sum") / scatter(
            open_w, group, dim=0, dim_size=n_groups, reduce="sum"
        ).clamp_min(1.0)
        score = self.actor(torch.cat([h, hg[g.batch], go[group]], 1))[:, 0]
        vin = hg if extra is None else torch.cat([hg, extra], 1)
        return score, self.critic(vin)[:, 0]


class GraphActorCritic(nn.Module):
    """Actor-critic over a discrete action whose choices are the ``job`` of candidate graph nodes."""

    def __init__(self, problem: Problem, width: int = 64, layers: int = 3, horizon: int = 0):
        super().__init__()
        self.problem, self.horizon = problem, int(horizon)
        self.graph_fn = getattr(problem, "policy_graph", problem.graph)
        sc = problem.sample(1, "dev", 0)
        in_dim = int(self.graph_fn(problem.initial_state(sc)).x.shape[1])
        self.head = ActionHead(problem.action_spec)
        self.net = GraphDispatchNet(in_dim, width, layers, 1 if self.horizon else 0)
        self.post_critic = None
        self.sampling = False
        self.config = {"width": width, "layers": layers, "horizon": self.horizon, "in_dim": in_dim}

    def encode(self, state: State, t) -> dict[str, torch.Tensor]:
        B = state["mask"].shape[0] if "mask" in state else next(iter(state.values())).shape[0]
        feats = {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == B}
        feats["_t"] = (
            t.reshape(B)
            if isinstance(t, torch.Tensor)
            else torch.full((B,), t, dtype=torch.long, device=feats["mask"].device)
        )
        return feats

    def evaluate(self, feats: Mapping[str, torch.Tensor]) -> tuple[ActionDistribution, torch.Tensor]:
        state = dict(feats)
        t = state.pop("_t")
        mask = self.problem.action_mask(state)
        B, n = mask.shape
        g = self.graph_fn(state)
        extra = time_to_go(t, self.horizon, B, g.x) if self.horizon else None
        score, value = self.net(g, B, extra=extra)
        cand = g.candidate
        logits = torch.full((B * n,), -torch.inf, dtype=score.dtype, device=score.device)
        logits = logits.index_put((g.batch[cand] * n + g.job[cand],), score[cand]).reshape(B, n)
        logits = torch.where(mask.any(1, keepdim=True), logits, torch.zeros_like(logits))
        return self.head.distribution(logits, None), value

    def distribution(self, feats) -> ActionDistribution:
        return self.evaluate(feats)[0]

    @torch.no_grad()
    def decision_logits(self, state: State, t) -> torch.Tensor:
        """The actor's logits ``[B, n]`` for acting (no critic, no gradient). Only rows with two or more
        allowed actions run the network: a row with one allowed action gets 0 there and ``-inf``
        elsewhere, a row with none (a finished episode) 0 everywhere, which is the distribution the
        network gives them too. On Taillard 15x15 about 60% of greedy dispatching steps have a single
        dispatchable job."""
        mask = self.problem.action_mask(state)
        B, n = mask.shape
        logits = torch.where(mask | ~mask.any(1, keepdim=True), 0.0, -torch.inf)
        free = (mask.sum(1) > 1).nonzero()[:, 0]
        if free.numel():
            feats = self.encode(state, t)
            sub = {k: v[free] for k, v in feats.items()}
            logits[free] = self.evaluate(sub)[0].logits.reshape(free.numel(), n).to(logits.dtype)
        return logits

    def value(self, feats) -> torch.Tensor:
        return self.evaluate(feats)[1]

    def to_action(self, sample: torch.Tensor) -> torch.Tensor:
        return self.head.to_action(sample)

    def forward(self, state: State, t: int = 0) -> torch.Tensor:
        d = self.head.distribution(self.decision_logits(state, t))
        return self.to_action(d.sample() if self.sampling else d.mode())
