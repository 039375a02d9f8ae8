"""A relaxation of the setup choices for HDPO: straight-through Gumbel-softmax per machine.

The policy is an MLP on ``problem.observe`` giving logits ``[B, M, K]`` (masked where a machine cannot make an
item). In training it returns, per machine, the one-hot of ``argmax(logits + g)`` (``g`` Gumbel noise) in the
forward pass and the gradient of ``softmax((logits + g) / temperature)`` in the backward pass (Bengio et al.
2013; Jang et al. 2017): the simulator sees exact one-hot setups, so every cost in training is a true cost of
a sampled policy, and the pathwise gradient flows through production (``cap * a``), setup costs and losses
(``a_t (1 - a_{t-1})``) and the piecewise-linear lost sales, holding and cap. At evaluation it returns the
greedy choices ``[B, M]``. The problem accepts both action forms.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn.mlp import MLP

__all__ = ["GumbelSetupPolicy"]


class GumbelSetupPolicy(nn.Module):
    def __init__(self, problem, hidden: Sequence[int] = (128, 128), activation: str = "tanh", temperature: float = 1.0):
        super().__init__()
        self.problem, self.temperature = problem, float(temperature)
        self.net = MLP(problem.obs_dim, list(hidden), problem.M * problem.K, activation)
        with torch.no_grad():
            self.net[-1].weight.mul_(0.01)
            self.net[-1].bias.zero_()

    def logits(self, state) -> torch.Tensor:
        p = self.problem
        x = self.net(p.observe(state)).reshape(-1, p.M, p.K)
        return x.masked_fill(~p.action_mask(state), -1e9)

    def forward(self, state, t: int = 0) -> torch.Tensor:
        z = self.logits(state)
        if not self.training:
            return z.argmax(-1)
        u = torch.rand_like(z).clamp(1e-10, 1 - 1e-10)
        y = torch.softmax((z - torch.log(-torch.log(u))) / self.temperature, -1)
        hard = torch.nn.functional.one_hot(y.argmax(-1), z.shape[-1]).to(y.dtype)
        return hard - y.detach() + y
