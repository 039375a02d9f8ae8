"""Graph neural network policies (torch_geometric) for problems with a :meth:`Problem.graph` view.

The graph of a batch of states is one ``torch_geometric`` batch holding every scenario's graph, so a
forward pass is a handful of tensor operations over all nodes and edges of all scenarios at once (no
Python loop over scenarios, nodes or edges). It must carry:

* ``x [nodes, F]`` node features, ``edge_index [2, edges]``, ``edge_attr [edges, G]``;
* ``action_edge [B * A]``: for each action entry, the edge whose two end nodes decide it (an
  inventory network's lanes), in the order of the action ``[B, A]``;
* ``action_scale [B * A]``: the typical size of each action (e.g. the lane's mean flow).

Every node is encoded by the same MLP, every message by the same MLP (so weights are shared across
nodes of every kind; the kind is a node feature), and each action is read off its edge's two end nodes
and features by one shared head. The parameter count does not depend on the graph's size: a policy
trained on 10 stores runs on 50.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..core import Problem, State
from .mlp import ACTIVATIONS, MLP, integer_action


def _message_passing():
    from torch_geometric.nn import MessagePassing

    class EdgeConv(MessagePassing):
        """``h_i <- h_i + U([h_i, mean_j M([h_i, h_j, e_ij])])`` (residual, mean aggregation)."""

        def __init__(self, dim: int, activation: str):
            super().__init__(aggr="mean")
            self.msg = MLP(3 * dim, [dim], dim, activation)
            self.upd = MLP(2 * dim, [dim], dim, activation)
            self.act = ACTIVATIONS[activation]()

        def forward(self, h, edge_index, e):
            agg = self.propagate(edge_index, h=h, e=e)
            return h + self.act(self.upd(torch.cat([h, agg], dim=-1)))

        def message(self, h_i, h_j, e):
            return self.msg(torch.cat([h_i, h_j, e], dim=-1))

    return EdgeConv


class GNNPolicy(nn.Module):
    """Message passing on ``problem.graph(state)``; one non-negative action per ``action_edge``."""

    def __init__(
        self,
        problem: Problem,
        hidden: int = 64,
        layers: int = 2,
        activation: str = "elu",
        output_scale: float = 0.0,
        integer: str = "straight_through",
    ):
        super().__init__()
        self.problem = problem
        self.spec = problem.action_spec
        if self.spec.kind != "continuous" or not (self.spec.low == 0 and math.isinf(self.spec.high)):
            raise ValueError("GNNPolicy proposes non-negative continuous actions (e.g. shipments)")
        g = problem.graph(problem.initial_state(problem.sample(1, "dev", 0, periods=1)))
        EdgeConv = _message_passing()
        self.node_enc = MLP(g.x.shape[1], [hidden], hidden, activation)
        self.edge_enc = MLP(g.edge_attr.shape[1], [hidden], hidden, activation)
        self.convs = nn.ModuleList(EdgeConv(hidden, activation) for _ in range(layers))
        self.head = MLP(3 * hidden, [hidden], 1, activation)
        torch.nn.init.constant_(self.head[-1].bias, math.log(math.e - 1.0))  # start at one action_scale
        self.output_scale = output_scale
        self.integer = integer

    def forward(self, state: State, t: int = 0) -> torch.Tensor:
        g = self.problem.graph(state)
        h = self.node_enc(g.x)
        e = self.edge_enc(g.edge_attr)
        for conv in self.convs:
            h = conv(h, g.edge_index, e)
        ae = g.action_edge
        src, dst = g.edge_index[0, ae], g.edge_index[1, ae]
        raw = self.head(torch.cat([h[src], h[dst], e[ae]], dim=-1)).squeeze(-1)
        scale = self.output_scale if self.output_scale else g.action_scale
        action = (scale * nn.functional.softplus(raw)).reshape(state_batch(state), -1)
        return integer_action(action, self.spec, self.training, self.integer)


def state_batch(state: State) -> int:
    return next(iter(state.values())).shape[0]
