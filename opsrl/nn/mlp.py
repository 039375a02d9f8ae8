"""MLP policies on a problem's flat observation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..core import ActionSpec, ConfigError, Field, Problem, State, validate
from ..core.config import MAX_LAYERS, size, widths

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}

POLICY_SCHEMA = {
    "kind": Field(str, "mlp", choices=("mlp", "gnn"), doc="mlp on observe(state), or gnn on graph(state)"),
    "hidden": widths([64, 64]),
    "activation": Field(str, "elu", choices=tuple(ACTIVATIONS)),
    "integer": Field(
        str,
        "straight_through",
        choices=("straight_through", "relaxed"),
        doc="integer actions in training: rounded with a straight-through gradient, or left "
        "continuous (relaxed); evaluation always rounds",
    ),
    "layers": size(2, MAX_LAYERS, allowed=f"message-passing rounds (gnn), from 1 to {MAX_LAYERS}"),
    "output_scale": Field(
        float, 0.0, allowed="a number >= 0 (0: the problem's own action scale)", check=lambda v: v >= 0
    ),
}


class MLP(nn.Sequential):
    def __init__(self, n_in: int, hidden: list[int], n_out: int, activation: str = "elu"):
        layers: list[nn.Module] = []
        for w in hidden:
            layers += [nn.Linear(n_in, w), ACTIVATIONS[activation]()]
            n_in = w
        layers.append(nn.Linear(n_in, n_out))
        super().__init__(*layers)


def box_head(raw: torch.Tensor, spec: ActionSpec, scale: float = 1.0) -> torch.Tensor:
    """Map unconstrained outputs into the box ``[low, high]`` (softplus for a half-open box)."""
    lo, hi = spec.low, spec.high
    if math.isinf(lo) and math.isinf(hi):
        return scale * raw
    if math.isinf(hi):
        return lo + scale * nn.functional.softplus(raw)
    if math.isinf(lo):
        return hi - scale * nn.functional.softplus(-raw)
    return lo + (hi - lo) * torch.sigmoid(raw)


class MLPPolicy(nn.Module):
    """``action = head(MLP(problem.observe(state)))``.

    Continuous actions go through :func:`box_head`, scaled by ``problem.action_scale`` so that an
    untrained network proposes actions of the right magnitude. Integer actions are rounded in eval
    mode (``policy.eval()``), which is how evaluation always runs; in training they are rounded too,
    with the gradient of the unrounded action (straight-through), unless ``integer="relaxed"``, so the
    training objective is the objective evaluated at test time. Discrete actions return the
    masked arg-max in eval mode and masked logits in training mode.
    """

    def __init__(
        self,
        problem: Problem,
        hidden: list[int] = (64, 64),
        activation: str = "elu",
        output_scale: float = 0.0,
        integer: str = "straight_through",
    ):
        super().__init__()
        self.problem = problem
        self.spec = problem.action_spec
        n_out = self.spec.n if self.spec.kind == "discrete" else math.prod(self.spec.shape)
        self.net = MLP(problem.obs_dim, list(hidden), n_out, activation)
        scale = output_scale or getattr(problem, "action_scale", 1.0)
        if torch.is_tensor(scale):  # one scale per action entry
            self.register_buffer("scale", scale.detach().clone().float())
        else:
            self.scale = float(scale)
        self.integer = integer
        if self.spec.kind == "continuous" and math.isinf(self.spec.high) != math.isinf(self.spec.low):
            # start at actions of about one action_scale (softplus(b) = 1), not at a tiny or huge order
            torch.nn.init.constant_(self.net[-1].bias, math.log(math.e - 1.0))

    def forward(self, state: State, t: int = 0) -> torch.Tensor:
        raw = self.net(self.problem.observe(state))
        if self.spec.kind == "discrete":
            mask = self.problem.action_mask(state)
            if mask is not None:
                raw = raw.masked_fill(~mask, -torch.inf)
            return raw if self.training else raw.argmax(dim=-1)
        action = box_head(raw, self.spec, self.scale).reshape(raw.shape[0], *self.spec.shape)
        return integer_action(action, self.spec, self.training, self.integer)


def integer_action(action: torch.Tensor, spec: ActionSpec, training: bool, mode: str) -> torch.Tensor:
    """Whole numbers where ``spec.integer``: rounded in evaluation; in training rounded with the gradient
    of the unrounded action (``mode = "straight_through"``) or left continuous (``"relaxed"``)."""
    if not spec.integer:
        return action
    if not training:
        return action.round()
    if mode == "straight_through":
        return action + (action.round() - action).detach()
    return action


def build_policy(problem: Problem, config: Mapping[str, Any], source: str = "<solver>") -> nn.Module:
    """Build the policy described by a solver's ``[policy]`` table."""
    cfg = validate(config, POLICY_SCHEMA, source, prefix="policy.")
    if cfg["kind"] == "mlp":
        return MLPPolicy(problem, cfg["hidden"], cfg["activation"], cfg["output_scale"], cfg["integer"])
    if cfg["kind"] == "gnn":
        from .gnn import GNNPolicy

        if len(set(cfg["hidden"])) != 1:
            raise ConfigError(source, "policy.hidden", "a gnn has one width: give one number, e.g. [64]")
        try:
            return GNNPolicy(
                problem, cfg["hidden"][0], cfg["layers"], cfg["activation"], cfg["output_scale"], cfg["integer"]
            )
        except NotImplementedError as e:
            raise ConfigError(source, "policy.kind", f"gnn needs a problem with a graph view: {e}") from None
    raise ConfigError(source, "policy.kind", f"unknown policy kind {cfg['kind']!r}")
