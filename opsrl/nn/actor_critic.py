"""Stochastic action heads and actor-critic networks for policy-gradient methods (PPO, PDPPO).

An actor-critic exposes what :mod:`opsrl.algos.ppo` needs, whatever the problem:

* ``encode(state, t) -> dict`` of batch-first tensors: what the networks read (stored during a rollout,
  indexed into minibatches later);
* ``distribution(feats) -> ActionDistribution`` and ``value(feats) -> [B]`` (the state critic);
* ``encode_post(post_state, t)`` and ``post_value(feats) -> [B]`` when a post-decision critic is on;
* ``forward(state, t)``: the action given to the simulator; the mode of the distribution (greedy) unless
  ``sampling`` is set, in which case a sample.

Action heads (:class:`ActionHead`), chosen from the problem's :class:`~opsrl.core.ActionSpec`:

* ``discrete`` (``n`` choices): a categorical over the choices, masked by ``problem.action_mask``;
* ``continuous`` box ``[low, high]``: per dimension either a Beta distribution on ``[0, 1]`` mapped
  affinely onto the box (bounded boxes, ``continuous = "beta"``), or a Gaussian on an unconstrained value
  mapped through :func:`~opsrl.nn.mlp.box_head` (``"gaussian"``; half-open or unbounded boxes always use it);
* multi-discrete or mixed: ``levels = [n_0, n_1, ...]`` (one entry per action dimension, 0 = continuous)
  turns dimension ``i`` into a categorical over ``n_i`` evenly spaced values: ``low + k (high - low) /
  (n_i - 1)`` on a bounded box, ``low + k`` (``k = 0 .. n_i - 1``) on a half-open one. The joint
  distribution is the product of the per-dimension ones (log-probabilities and entropies add).

Integer dimensions are rounded when the sample is turned into the simulator's action; the
log-probability is that of the sample itself, so the PPO ratio stays exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.distributions import Beta, Categorical, Normal

from ..core import ActionSpec, ConfigError, Field, Problem, State, validate
from ..core.config import MAX_LAYERS, MAX_WIDTH, load_weights, size, widths
from .mlp import ACTIVATIONS, MLP, box_head

__all__ = ["ActionHead", "ActionDistribution", "MLPActorCritic", "AC_SCHEMA", "time_to_go"]

AC_SCHEMA = {
    "kind": Field(str, "mlp", choices=("mlp", "graph", "two_stage")),
    "hidden": widths([64, 64]),
    "activation": Field(str, "tanh", choices=tuple(ACTIVATIONS)),
    "continuous": Field(
        str, "beta", choices=("beta", "gaussian"), doc="distribution of continuous dimensions of a bounded box"
    ),
    "levels": Field(
        list,
        [],
        item=int,
        allowed="one integer per action dimension: 0 (continuous) or the number "
        "of evenly spaced values (from 2 to 10^5) of a categorical dimension",
        check=lambda v: all(n == 0 or n >= 2 for n in v),
        max=10**5,
        max_len=4096,
    ),
    "init_std": Field(
        float, 0.5, allowed="a positive initial standard deviation of Gaussian dimensions", check=lambda v: v > 0
    ),
    # graph policies (kind = "graph", see opsrl.nn.gnn_dispatch)
    "width": size(64, MAX_WIDTH, allowed=f"an embedding width (graph policies), from 1 to {MAX_WIDTH}"),
    "layers": size(3, MAX_LAYERS, allowed=f"message-passing layers (graph policies), from 1 to {MAX_LAYERS}"),
    "weights": Field(str, "", allowed="a path to saved weights to start from ('' : none)"),
}


def time_to_go(t: int | torch.Tensor, horizon: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """``(horizon - t) / horizon`` as a ``[n, 1]`` feature (``t`` an int or a ``[n]`` tensor)."""
    if isinstance(t, torch.Tensor):
        t = t.to(like.dtype).reshape(n, 1)
        return (horizon - t) / horizon
    return torch.full((n, 1), (horizon - t) / horizon, dtype=like.dtype, device=like.device)


class ActionDistribution:
    """A product of per-dimension categorical and continuous distributions over a ``[B, D]`` sample."""

    def __init__(self, head: ActionHead, logits: torch.Tensor | None, cont: torch.distributions.Distribution | None):
        self.head, self.logits, self.cont = head, logits, cont
        self.cat = Categorical(logits=logits, validate_args=False) if logits is not None else None

    def sample(self) -> torch.Tensor:
        return self._join(
            self.cat.sample() if self.cat is not None else None, self.cont.sample() if self.cont is not None else None
        )

    def mode(self) -> torch.Tensor:
        c = None
        if self.cont is not None:
            c = self.cont.mean if isinstance(self.cont, Beta) else self.cont.loc
        return self._join(self.logits.argmax(-1) if self.cat is not None else None, c)

    def _join(self, k: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        h = self.head
        ref = k if k is not None else c
        out = torch.zeros(ref.shape[0], h.dims, dtype=torch.float32 if c is None else c.dtype, device=ref.device)
        if k is not None:
            out[:, h.disc] = k.to(out.dtype)
        if c is not None:
            out[:, h.cont] = c.to(out.dtype)
        return out

    def log_prob(self, sample: torch.Tensor) -> torch.Tensor:
        lp = torch.zeros(sample.shape[0], dtype=torch.float32, device=sample.device)
        if self.cat is not None:
            lp = lp + self.cat.log_prob(sample[:, self.head.disc].long()).sum(-1)
        if self.cont is not None:
            c = sample[:, self.head.cont]
            if isinstance(self.cont, Beta):
                c = c.clamp(1e-6, 1 - 1e-6)
            lp = lp + self.cont.log_prob(c).sum(-1)
        return lp

    def entropy(self) -> torch.Tensor:
        e = 0.0
        if self.cat is not None:
            e = e + self.cat.entropy().sum(-1)
        if self.cont is not None:
            e = e + self.cont.entropy().sum(-1)
        return e


class ActionHead(nn.Module):
    """Turns raw network outputs into an :class:`ActionDistribution`, and samples into actions."""

    def __init__(
        self,
        spec: ActionSpec,
        levels: Sequence[int] = (),
        continuous: str = "beta",
        scale: float = 1.0,
        init_std: float = 0.5,
        source: str = "<solver>",
    ):
        super().__init__()
        self.spec, self.scale = spec, float(scale)
        if spec.kind == "discrete":
            if levels:
                raise ConfigError(source, "policy.levels", "a discrete action already has its choices; leave it out")
            # shape (M,) with n = K: factorised, one categorical over the K choices per dimension (a [B, M, K] mask)
            D = math.prod(spec.shape)
            self.dims, self.disc, self.cont, self.n = D, list(range(D)), [], [spec.n] * D
            self.mode_c = "none"
        else:
            D = math.prod(spec.shape)
            levels = list(levels) or [0] * D
            if len(levels) != D:
                raise ConfigError(
                    source, "policy.levels", f"needs {D} entries (one per action dimension), got {len(levels)}"
                )
            bounded = math.isfinite(spec.low) and math.isfinite(spec.high)
            if any(levels) and not math.isfinite(spec.low):
                raise ConfigError(source, "policy.levels", "categorical dimensions need a finite lower bound")
            self.dims = D
            self.disc = [i for i, n in enumerate(levels) if n]
            self.cont = [i for i, n in enumerate(levels) if not n]
            self.n = [levels[i] for i in self.disc]
            self.mode_c = continuous if bounded else "gaussian"
            step = [((spec.high - spec.low) / (n - 1)) if bounded else 1.0 for n in self.n]
            self.register_buffer("step", torch.tensor(step, dtype=torch.float32), persistent=False)
        self.nmax = max(self.n) if self.n else 0
        self.n_params = len(self.disc) * self.nmax + (2 if self.mode_c == "beta" else 1) * len(self.cont)
        pad = torch.zeros(len(self.disc), self.nmax, dtype=torch.bool)
        for i, n in enumerate(self.n):
            pad[i, n:] = True
        self.register_buffer("pad", pad, persistent=False)
        self.log_std = (
            nn.Parameter(torch.full((len(self.cont),), math.log(init_std))) if self.mode_c == "gaussian" else None
        )

    def distribution(self, raw: torch.Tensor, mask: torch.Tensor | None = None) -> ActionDistribution:
        B = raw.shape[0]
        nd = len(self.disc) * self.nmax
        logits = None
        if self.disc:
            logits = raw[:, :nd].reshape(B, len(self.disc), self.nmax)
            bad = self.pad.expand(B, -1, -1)
            if mask is not None:  # rows with nothing allowed (finished episodes) allow everything
                mask = mask | ~mask.any(-1, keepdim=True)
                bad = bad | ~mask.reshape(B, len(self.disc) if mask.dim() == 3 else 1, -1)
            logits = logits.masked_fill(bad, -torch.inf)
        cont = None
        if self.cont:
            r = raw[:, nd:]
            if self.mode_c == "beta":
                a, b = r.reshape(B, len(self.cont), 2).unbind(-1)
                cont = Beta(1 + nn.functional.softplus(a), 1 + nn.functional.softplus(b), validate_args=False)
            else:
                cont = Normal(r, self.log_std.exp().expand_as(r), validate_args=False)
        return ActionDistribution(self, logits, cont)

    def sample_of(self, action: torch.Tensor) -> torch.Tensor:
        """The sample ``[B, D]`` whose action is nearest to ``action`` (the inverse of :meth:`to_action`): the
        nearest level of a categorical dimension, the clamped fraction of the box of a Beta one. Used to imitate
        another policy. Gaussian dimensions have no such inverse here."""
        spec = self.spec
        if spec.kind == "discrete":
            return action.reshape(-1, self.dims).to(torch.float32)
        a = action.reshape(action.shape[0], -1).to(torch.float32)
        out = torch.empty_like(a)
        if self.disc:
            n = torch.tensor(self.n, dtype=a.dtype, device=a.device)
            k = ((a[:, self.disc] - spec.low) / self.step).round()
            out[:, self.disc] = torch.minimum(k.clamp_min(0), n - 1)
        if self.cont:
            if self.mode_c != "beta":
                raise ValueError("imitation needs categorical or Beta action dimensions, not Gaussian ones")
            out[:, self.cont] = ((a[:, self.cont] - spec.low) / (spec.high - spec.low)).clamp(1e-4, 1 - 1e-4)
        return out

    def to_action(self, sample: torch.Tensor) -> torch.Tensor:
        """The simulator's action for a sample ``[B, D]`` (a job index ``[B]`` for discrete actions)."""
        spec = self.spec
        if spec.kind == "discrete":
            return sample[:, 0].long() if self.dims == 1 else sample.long().reshape(sample.shape[0], *spec.shape)
        a = torch.empty_like(sample)
        if self.disc:
            a[:, self.disc] = spec.low + sample[:, self.disc] * self.step
        if self.cont:
            c = sample[:, self.cont]
            if self.mode_c == "beta":
                a[:, self.cont] = spec.low + (spec.high - spec.low) * c
            else:
                a[:, self.cont] = box_head(c, spec, self.scale)
        if spec.integer:
            a = a.round()
        return a.reshape(sample.shape[0], *spec.shape)


class MLPActorCritic(nn.Module):
    """Separate MLP actor and critics on ``problem.observe`` (and ``observe_post`` for the post-decision
    critic), with the time to go ``(T - t) / T`` appended when ``horizon`` is given (finite horizons)."""

    def __init__(
        self,
        problem: Problem,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        levels: Sequence[int] = (),
        continuous: str = "beta",
        init_std: float = 0.5,
        horizon: int = 0,
        post_critic: bool = False,
        source: str = "<solver>",
    ):
        super().__init__()
        self.problem, self.horizon = problem, int(horizon)
        self.head = ActionHead(
            problem.action_spec, levels, continuous, float(getattr(problem, "action_scale", 1.0)), init_std, source
        )
        extra = 1 if self.horizon else 0
        d = problem.obs_dim + extra
        self.actor = MLP(d, list(hidden), self.head.n_params, activation)
        self.critic = MLP(d, list(hidden), 1, activation)
        self.post_critic = None
        if post_critic:
            sc = problem.sample(1, "dev", 0, periods=1)
            s0 = problem.initial_state(sc)
            a0 = self.head.to_action(
                self.head.distribution(torch.zeros(1, self.head.n_params), problem.action_mask(s0)).mode()
            )
            try:
                dp = problem.observe_post(problem.post_decision(s0, a0)[0]).shape[-1]
            except NotImplementedError as e:
                raise ConfigError(source, "method", f"a post-decision critic needs observe_post: {e}") from None
            self.post_critic = MLP(dp + extra, list(hidden), 1, activation)
        with torch.no_grad():  # small initial policy outputs: a near-uniform start
            self.actor[-1].weight.mul_(0.01)
            self.actor[-1].bias.zero_()
        self.sampling = False

    def _with_time(self, x: torch.Tensor, t) -> torch.Tensor:
        if not self.horizon:
            return x
        return torch.cat([x, time_to_go(t, self.horizon, x.shape[0], x)], 1)

    def encode(self, state: State, t) -> dict[str, torch.Tensor]:
        feats = {"obs": self._with_time(self.problem.observe(state), t)}
        mask = self.problem.action_mask(state)
        if mask is not None:
            feats["mask"] = mask
        return feats

    def encode_post(self, post: State, t) -> dict[str, torch.Tensor]:
        return {"post_obs": self._with_time(self.problem.observe_post(post), t)}

    def distribution(self, feats: Mapping[str, torch.Tensor]) -> ActionDistribution:
        return self.head.distribution(self.actor(feats["obs"]), feats.get("mask"))

    def value(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.critic(feats["obs"])[:, 0]

    def evaluate(self, feats: Mapping[str, torch.Tensor]) -> tuple[ActionDistribution, torch.Tensor]:
        return self.distribution(feats), self.value(feats)

    def post_value(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.post_critic(feats["post_obs"])[:, 0]

    def to_action(self, sample: torch.Tensor) -> torch.Tensor:
        return self.head.to_action(sample)

    def forward(self, state: State, t: int = 0) -> torch.Tensor:
        d = self.distribution(self.encode(state, t))
        return self.to_action(d.sample() if self.sampling else d.mode())


def build_actor_critic(
    problem: Problem,
    config: Mapping[str, Any],
    source: str = "<solver>",
    *,
    horizon: int = 0,
    post_critic: bool = False,
) -> nn.Module:
    """Build the actor-critic described by a solver's ``[policy]`` table (see :data:`AC_SCHEMA`)."""
    cfg = validate(config, AC_SCHEMA, source, prefix="policy.")
    if cfg["kind"] == "mlp":
        net = MLPActorCritic(
            problem,
            cfg["hidden"],
            cfg["activation"],
            cfg["levels"],
            cfg["continuous"],
            cfg["init_std"],
            horizon,
            post_critic,
            source,
        )
    elif cfg["kind"] == "two_stage":  # item then bin on a bipartite graph (opsrl.nn.two_stage)
        from .two_stage import TwoStageActorCritic

        if post_critic or not hasattr(problem, "bipartite"):
            raise ConfigError(
                source, "policy.kind", "two_stage needs problem.bipartite and has no post-decision critic"
            )
        net = TwoStageActorCritic(problem, cfg["width"], cfg["layers"])
    else:
        from .gnn_dispatch import GraphActorCritic

        if post_critic:
            raise ConfigError(source, "method", "graph policies have no post-decision critic; use ppo")
        if problem.action_spec.kind != "discrete":
            raise ConfigError(source, "policy.kind", "graph policies score the nodes of a discrete action")
        # no time-to-go input: the graph shows what is left (scheduled flags), and the network must carry over
        # to instances of any size, hence any horizon
        net = GraphActorCritic(problem, cfg["width"], cfg["layers"], 0)
    if cfg["weights"]:
        load_weights(net, cfg["weights"], source, "policy.weights")
    return net
