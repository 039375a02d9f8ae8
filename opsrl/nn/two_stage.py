"""A size-agnostic two-stage policy on a bipartite item/bin graph: choose an item, then a bin for it.

The problem gives the graph through ``problem.bipartite(state)``, a dict of batch-first tensors:
``item_x`` ``[B, V, fi]`` and ``bin_x`` ``[B, S, fb]`` (features), ``item_mask`` ``[B, V]`` and
``bin_mask`` ``[B, S]`` (real nodes; padding is left out of every aggregation), ``item_bins`` ``[B, V, 2]``
(the bins an item sits on; repeat one for an item on a single bin), ``bin_group`` ``[B, S]`` (bins that
belong together, such as the NUMA nodes of one machine) and ``global_x`` ``[B, fg]``. The first stage's mask
is ``problem.action_mask(state)`` ``[B, V]`` (items with an allowed bin), the second's
``problem.destination_mask(state, item)`` ``[B, S]``; optionally ``problem.pair_features(state, item)``
``[B, S, fp]`` describes each bin relative to the chosen item.

Message passing (torch_geometric scatters over the flattened batch; the same weights for every node, so one
network runs on any number of items and bins):

    bins:  h_b <- LN(h_b + MLP([h_b, mean of the items on b, mean of b's group, mean of all bins]))
    items: h_i <- LN(h_i + MLP([h_i, mean of i's bins, mean of all items]))

Stage 1 scores each item from ``[h_i, item mean, bin mean, global_x]``; stage 2 scores each bin from
``[h_b, h_i*, mean of i*'s bins, bin mean, pair features]`` for the chosen item ``i*``. The critic reads the
two means and ``global_x``. An action is ``[item, bin]`` (long ``[B, 2]``); its log-probability is the sum
of the two stages', its entropy the first stage's plus the second's at the chosen item.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.distributions import Categorical
from torch_geometric.utils import scatter

__all__ = ["TwoStageNet", "TwoStageDistribution", "TwoStageActorCritic", "sample_logits"]


def _mlp(i, w, o):
    return nn.Sequential(nn.Linear(i, w), nn.ReLU(), nn.Linear(w, o))


class _SplitMLP(nn.Module):
    """``MLP([x_1, ..., x_k, c])`` without the concatenation: a first linear layer per input, where ``c`` is
    one row per graph (``[B, d]``, added to that graph's ``n`` rows) and the ``x_j`` are ``[B * n, d_j]``."""

    def __init__(self, dims: list[int], graph_dim: int, w: int, o: int):
        super().__init__()
        self.parts = nn.ModuleList(nn.Linear(d, w, bias=(j == 0)) for j, d in enumerate(dims))
        self.graph = nn.Linear(graph_dim, w, bias=False) if graph_dim else None
        self.out = nn.Linear(w, o)

    def forward(
        self, xs: list[torch.Tensor], c: torch.Tensor | None, B: int, projected: list[torch.Tensor] = ()
    ) -> torch.Tensor:
        """``projected`` are the first-layer terms of the last inputs, already through their linear layers."""
        h = self.parts[0](xs[0])  # in-place sums below: the same numbers as out-of-place, fewer buffers
        for lin, x in zip(self.parts[1:], xs[1:]):
            h.add_(lin(x))
        for x in projected:
            h.add_(x)
        if self.graph is not None:
            h.view(B, -1, h.shape[-1]).add_(self.graph(c)[:, None])
        return self.out(h.relu_())


def _masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``-inf`` where not allowed; rows with nothing allowed allow everything (finished or stuck rows)."""
    mask = mask | ~mask.any(-1, keepdim=True)
    return logits.masked_fill(~mask, -torch.inf)


def sample_logits(logits: torch.Tensor) -> torch.Tensor:
    """One draw per row of the categorical distribution with these (unnormalised) logits ``[..., n]`` (``-inf``:
    probability zero), by inverting its distribution function with one uniform number per row: the
    distribution of ``Categorical(logits=logits).sample()``, at a fraction of its cost for wide rows (it
    draws one exponential number per entry)."""
    cdf = torch.softmax(logits, -1).cumsum(-1)
    u = torch.rand(*logits.shape[:-1], 1, dtype=cdf.dtype, device=cdf.device) * cdf[..., -1:]
    # right=True: the first entry whose cumulative probability exceeds u, never one of probability zero
    return torch.searchsorted(cdf, u, right=True)[..., 0].clamp_max(logits.shape[-1] - 1)


class TwoStageDistribution:
    """The distribution of ``[item, bin]``: a categorical over items, then one over bins given the item
    (computed by ``stage2(item) -> (logits [B, S], mask [B, S])`` when an item is known)."""

    def __init__(
        self,
        logits1: torch.Tensor,
        mask1: torch.Tensor,
        stage2: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    ):
        self.logits1 = _masked_logits(logits1, mask1)
        self.cat1 = Categorical(logits=self.logits1)
        self.stage2 = stage2
        self._item: torch.Tensor | None = None
        self._cat2: Categorical | None = None

    def _second(self, item: torch.Tensor) -> Categorical:
        if self._item is None or self._item.shape != item.shape or not torch.equal(self._item, item):
            logits, mask = self.stage2(item)
            self._item, self._cat2 = item, Categorical(logits=_masked_logits(logits, mask))
        return self._cat2

    def sample(self) -> torch.Tensor:
        """Both stages drawn by :func:`sample_logits` (the first from the masked logits, the second from the
        second stage's normalised logits)."""
        item = sample_logits(self.logits1)
        return torch.stack([item, sample_logits(self._second(item).logits)], 1)

    def mode(self) -> torch.Tensor:
        item = self.logits1.argmax(-1)
        return torch.stack([item, self._second(item).logits.argmax(-1)], 1)

    def log_prob(self, sample: torch.Tensor) -> torch.Tensor:
        item, b = sample[:, 0].long(), sample[:, 1].long()
        return self.cat1.log_prob(item) + self._second(item).log_prob(b)

    def entropy(self) -> torch.Tensor:
        if self._item is None:
            self._second(self.logits1.argmax(-1))
        return self.cat1.entropy() + self._cat2.entropy()


def _dense_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real rows of each graph: ``h`` ``[B * n, w]``, ``mask`` ``[B, n]`` -> ``[B, w]``."""
    B, n = mask.shape
    m = mask.to(h.dtype)
    x = h.reshape(B, n, -1)
    if not bool(mask.all()):  # (multiplying by ones changes nothing, so it is skipped without padding)
        x = x * m[..., None]
    return x.sum(1) / m.sum(1, keepdim=True).clamp_min(1.0)


class _Layer(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.bins = _SplitMLP([w, w, w], w, w, w)
        self.items = _SplitMLP([w, w], w, w, w)
        self.nb, self.ni = nn.LayerNorm(w), nn.LayerNorm(w)

    def forward(self, hi, hb, g):
        Nb = hb.shape[0]
        B = g["B"]
        # items -> bins: the mean of the items on each bin (an item on two bins sends half to each)
        src = hi * g["i_w"]
        agg = scatter(src, g["i_bin0"], dim=0, dim_size=Nb, reduce="sum") + scatter(
            src, g["i_bin1"], dim=0, dim_size=Nb, reduce="sum"
        )
        agg = agg / g["b_deg"]
        grp = scatter(hb, g["group"], dim=0, dim_size=g["n_groups"], reduce="mean").index_select(0, g["group"])
        hb = self.nb(self.bins([hb, agg, grp], _dense_mean(hb, g["bin_mask"]), B).add_(hb))
        # bins -> items: the mean of each item's bins. An item on one bin takes that bin's row (0.5 (x + x) is x),
        # so the linear layer of this input runs on the bins and the two-bin means (a table far shorter than
        # the items) and is then gathered per item: the same numbers as running it on every item's row.
        two = g["two_bins"]
        table = torch.cat([hb, 0.5 * (hb.index_select(0, g["i_bin0"][two]) + hb.index_select(0, g["i_bin1"][two]))])
        own = self.items.parts[1](table).index_select(0, g["own_row"])
        hi = self.ni(self.items([hi], _dense_mean(hi, g["item_mask"]), B, [own]).add_(hi))
        return hi, hb


class TwoStageNet(nn.Module):
    def __init__(
        self, item_dim: int, bin_dim: int, global_dim: int, pair_dim: int = 0, width: int = 32, layers: int = 2
    ):
        super().__init__()
        w = width
        self.embed_i, self.embed_b = _mlp(item_dim, w, w), _mlp(bin_dim, w, w)
        self.layers = nn.ModuleList(_Layer(w) for _ in range(layers))
        self.actor1 = _SplitMLP([w], 2 * w + global_dim, w, 1)
        self.actor2 = _mlp(4 * w + pair_dim, w, 1)
        self.critic = _mlp(2 * w + global_dim, w, 1)
        with torch.no_grad():
            self.actor1.out.weight.mul_(0.01)
            self.actor2[-1].weight.mul_(0.01)

    @staticmethod
    def index(view: Mapping[str, torch.Tensor]) -> dict:
        """Flat indices of the batch of bipartite graphs."""
        B, V, _ = view["item_x"].shape
        S = view["bin_x"].shape[1]
        dev = view["item_x"].device
        ib = view["item_bins"] + (torch.arange(B, device=dev) * S)[:, None, None]
        i_w = (view["item_mask"].to(view["item_x"].dtype) * 0.5).reshape(-1, 1)
        deg = scatter(i_w, ib[..., 0].reshape(-1), dim=0, dim_size=B * S, reduce="sum") + scatter(
            i_w, ib[..., 1].reshape(-1), dim=0, dim_size=B * S, reduce="sum"
        )
        i0, i1 = ib[..., 0].reshape(-1), ib[..., 1].reshape(-1)
        two = i0 != i1  # rows of the table of own-bin means (see _Layer): bins first, then two-bin items
        own_row = torch.where(two, B * S + two.long().cumsum(0) - 1, i0)
        grp = view["bin_group"]
        G = int(grp.max()) + 1 if grp.numel() else 1
        return {
            "B": B,
            "V": V,
            "S": S,
            "i_w": i_w,
            "b_deg": deg.clamp_min(1e-6),
            "group": (grp + torch.arange(B, device=dev)[:, None] * G).reshape(-1),
            "n_groups": B * G,
            "bin_mask": view["bin_mask"],
            "item_mask": view["item_mask"],
            "i_bin0": ib[..., 0].reshape(-1),
            "i_bin1": ib[..., 1].reshape(-1),
            "two_bins": two.nonzero()[:, 0],
            "own_row": own_row,
        }

    def forward(self, view: Mapping[str, torch.Tensor], g: dict | None = None, critic: bool = True):
        """``(item logits [B, V], value [B], context)``; the context feeds :meth:`bin_logits`. ``g`` is
        :meth:`index` of ``view`` when the caller has it already; without ``critic`` the value is None."""
        g = self.index(view) if g is None else g
        B, V, S = g["B"], g["V"], g["S"]
        hi = self.embed_i(view["item_x"].reshape(B * V, -1))
        hb = self.embed_b(view["bin_x"].reshape(B * S, -1))
        for layer in self.layers:
            hi, hb = layer(hi, hb, g)
        mi, mb = _dense_mean(hi, g["item_mask"]), _dense_mean(hb, g["bin_mask"])
        gx = view["global_x"]
        ctxv = torch.cat([mi, mb, gx], 1)
        l1 = self.actor1([hi], ctxv, B).reshape(B, V)
        value = self.critic(ctxv)[:, 0] if critic else None
        ctx = {"hi": hi.reshape(B, V, -1), "hb": hb.reshape(B, S, -1), "mb": mb, "item_bins": view["item_bins"]}
        return l1, value, ctx

    def bin_logits(self, ctx, item: torch.Tensor, pair: torch.Tensor | None = None) -> torch.Tensor:
        hi, hb = ctx["hi"], ctx["hb"]
        B, S, w = hb.shape
        e = hi.gather(1, item.reshape(B, 1, 1).expand(B, 1, w))  # [B, 1, w]
        bins = ctx["item_bins"].gather(1, item.reshape(B, 1, 1).expand(B, 1, 2))[:, 0]  # [B, 2]
        host = 0.5 * (hb.gather(1, bins[:, :1, None].expand(B, 1, w)) + hb.gather(1, bins[:, 1:, None].expand(B, 1, w)))
        parts = [hb, e.expand(B, S, w), host.expand(B, S, w), ctx["mb"][:, None].expand(B, S, w)]
        if pair is not None:
            parts.append(pair.to(hb.dtype))
        return self.actor2(torch.cat(parts, -1))[..., 0]


class _Head:
    """What imitation needs of a head: a sample from an action (the action itself)."""

    def __init__(self):
        self.disc = [0, 1]

    @staticmethod
    def sample_of(action: torch.Tensor) -> torch.Tensor:
        return action.reshape(action.shape[0], 2).long()


class TwoStageActorCritic(nn.Module):
    """Actor-critic for :mod:`opsrl.algos.ppo` over ``[item, bin]`` actions (see the module docstring)."""

    def __init__(self, problem, width: int = 32, layers: int = 2):
        super().__init__()
        self.problem = problem
        sc = problem.sample(1, "dev", 0, periods=1)
        s0 = problem.initial_state(sc)
        view = problem.bipartite(s0)
        self.has_pair = hasattr(problem, "pair_features")
        pd = int(problem.pair_features(s0, torch.zeros(1, dtype=torch.long)).shape[-1]) if self.has_pair else 0
        self.config = {
            "width": width,
            "layers": layers,
            "item_dim": int(view["item_x"].shape[-1]),
            "bin_dim": int(view["bin_x"].shape[-1]),
            "global_dim": int(view["global_x"].shape[-1]),
            "pair_dim": pd,
        }
        self.net = TwoStageNet(
            self.config["item_dim"], self.config["bin_dim"], self.config["global_dim"], pd, width, layers
        )
        self.head = _Head()
        self.post_critic = None
        self.sampling = False
        self.greedy_rows: torch.Tensor | None = None  # rows that decode greedily while sampling (best of K)

    def encode(self, state, t) -> dict[str, torch.Tensor]:
        B = state["vm_mask"].shape[0] if "vm_mask" in state else next(iter(state.values())).shape[0]
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == B}

    def evaluate(self, feats: Mapping[str, torch.Tensor]):
        state = dict(feats)
        view = self.problem.bipartite(state)
        l1, value, ctx = self.net(view)
        mask1 = self.problem.action_mask(state)

        def stage2(item):
            pair = self.problem.pair_features(state, item) if self.has_pair else None
            return self.net.bin_logits(ctx, item, pair), self.problem.destination_mask(state, item)

        return TwoStageDistribution(l1, mask1, stage2), value

    def distribution(self, feats) -> TwoStageDistribution:
        return self.evaluate(feats)[0]

    def value(self, feats) -> torch.Tensor:
        return self.evaluate(feats)[1]

    @staticmethod
    def to_action(sample: torch.Tensor) -> torch.Tensor:
        return sample.long()

    def forward(self, state, t: int = 0) -> torch.Tensor:
        d = self.distribution(self.encode(state, t))
        if not self.sampling:
            return d.mode()
        s = d.sample()
        if self.greedy_rows is not None and bool(self.greedy_rows.any()):
            m = d.mode()
            s = torch.where(self.greedy_rows[:, None], m, s)
        return s
