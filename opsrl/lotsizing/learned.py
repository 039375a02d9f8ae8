"""A setup policy over the item-machine graph, one network for every plant size.

Each period every machine picks idle or one item it can make. :class:`ItemMachinePolicy` scores every
(machine, item) pair of the plant's bipartite graph from what a planner sees, with weights shared by all
items and machines, so the same network runs on 15 x 5 and 30 x 15 (and on a plant of the user's own):

* per item: stock / cap, periods of cover (stock over mean demand), lost-sales and holding cost (per period
  of demand), the output of the machines now set up for it and of every machine that can make it, time to go;
* per machine: idle or not, how many items it can make;
* per pair: rate (output per period of demand), setup cost and loss (relative to the item's lost sales),
  whether the machine is set up for the item now.

Message passing: ``layers`` rounds in which every pair embeds its own features with its item's and machine's
embeddings, and every item reads the mean over its machines' pairs, every machine the mean and max over its
items' pairs. Logits: one per pair (choose the item) and one per machine (idle); a masked
softmax per machine, as the factorised heads of :mod:`opsrl.algos.rollout_pi`. The graph is dense (a
machine can make 60% of the items), so it is kept as ``[B, M, I, width]`` tensors: masked means over axes are
the bipartite graph's message passing without index scatter.

The policy's packed input (``features``) is the raw state: stock ``[I]``, setup index ``[M]`` and ``t``, so
that labelled states are cheap to keep and the plant enters only through :meth:`bind`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field as PydanticField
from torch import nn

from ..core import ConfigError, Field, Method, SolveContext, SolveOutcome, State
from ..core.config import load_weights
from ..core.datafile import Integer, Record, check, load_json

__all__ = ["ItemMachinePolicy", "load", "WEIGHTS", "METHOD"]

DATA = Path(__file__).resolve().parent / "data"
WEIGHTS = DATA / "learned.pt"

ITEM_FEATURES, MACHINE_FEATURES, PAIR_FEATURES = 10, 3, 5
CPU_BLOCK = 2**20  # numbers in a block's pair tensor on a CPU (see ItemMachinePolicy.block_rows)


class ItemMachinePolicy(nn.Module):
    """Factorised setup policy over the item-machine graph: logits ``[B, M, I + 1]`` (column 0: idle)."""

    def __init__(self, problem=None, width: int = 32, layers: int = 2):
        super().__init__()
        self.width, self.layers = int(width), int(layers)
        w = self.width
        mlp = lambda i: nn.Sequential(nn.Linear(i, w), nn.ELU(), nn.Linear(w, w))  # noqa: E731
        self.item_in, self.machine_in = mlp(ITEM_FEATURES), mlp(MACHINE_FEATURES)
        # per round: the pair's own features plus its item's and machine's embeddings (one add, one ELU per
        # pair), then masked means / max over the graph's two sides update the node embeddings
        self.pair = nn.ModuleList(nn.Linear(PAIR_FEATURES, w) for _ in range(self.layers + 1))
        self.item_up = nn.ModuleList(mlp(2 * w) for _ in range(self.layers))
        self.machine_up = nn.ModuleList(mlp(3 * w) for _ in range(self.layers))
        self.pair_out = nn.Linear(w, 1)
        self.idle_out = nn.Sequential(nn.Linear(3 * w, w), nn.ELU(), nn.Linear(w, 1))
        self.problem = None
        if problem is not None:
            self.bind(problem)

    # --- the plant -----------------------------------------------------------------------------------
    def bind(self, problem) -> ItemMachinePolicy:
        """Use the network on ``problem``'s plant (any number of items and machines)."""
        self.problem = problem
        self.I, self.M = problem.I, problem.M
        self.D, self.n = problem.M, problem.K
        self.periods = max(1, int(problem.periods))
        d = float(problem.mean_demand) or 1.0
        cap, sc, sl = problem.cap, problem.sc, problem.sl  # [M, I]
        ls, h, mx = problem.ls, problem.h, problem.max_inv  # [I]
        lsd = (ls * d).clamp_min(1e-6)  # lost sales of one period of demand
        can = cap > 0
        self._const = {
            "d": torch.tensor(d),
            "max_inv": mx,
            "item": torch.stack([ls * d / 10.0, h * mx, (cap.sum(0) / d) / 10.0, can.sum(0) / 10.0], 1),  # [I, 4]
            "pair": torch.stack([cap / d, (sc / lsd) / 10.0, sl / d, can.float()], -1),  # [M, I, 4]
            "cap": cap,
            "can": can,
            "machine": (can.sum(1, keepdim=True) / 10.0),  # [M, 1]
            "allowed": problem.allowed,
        }
        return self

    def _c(self, key: str, like: torch.Tensor) -> torch.Tensor:
        v = self._const[key]
        return v.to(like.device, like.dtype if v.is_floating_point() else v.dtype)

    # --- the rollout_pi interface ----------------------------------------------------------------
    def features(self, state: State, t: int) -> torch.Tensor:
        """The packed state ``[B, I + M + 1]``: stock, setup index (0 idle) and the period."""
        inv = state["inventory"].float()
        setup = state["setup"].argmax(-1).to(inv.dtype)
        return torch.cat([inv, setup, torch.full((inv.shape[0], 1), float(t), device=inv.device)], 1)

    def masked_logits(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        I, M = self.I, self.M
        inv, setup, t = x[:, :I], x[:, I : I + M].long(), x[:, I + M]
        B = x.shape[0]
        cap, can = self._c("cap", inv), self._c("can", inv)
        d = self._c("d", inv)
        cur = torch.nn.functional.one_hot(setup, I + 1)[..., 1:].to(inv.dtype)  # [B, M, I]
        kept = (cur * cap).sum(1) / d  # [B, I] output of the machines set up for the item
        go = (self.periods - t).unsqueeze(1) / self.periods  # [B, 1]
        cover = inv / d
        item = torch.stack(
            [
                inv / self._c("max_inv", inv),
                (cover / 10.0).clamp(max=3.0),
                torch.exp(-cover / 2.0),
                kept / 4.0,
                go.expand(B, I),
                (go * self.periods / 20.0).clamp(max=1.0).expand(B, I),
            ],
            -1,
        )
        item = torch.cat([item, self._c("item", inv).expand(B, -1, -1)], -1)  # [B, I, 10]
        idle = (setup == 0).to(inv.dtype).unsqueeze(-1)  # [B, M, 1]
        mach = torch.cat([idle, self._c("machine", inv).expand(B, -1, -1), go.unsqueeze(1).expand(B, M, 1)], -1)
        pair_c = self._c("pair", inv)  # [M, I, 4]
        off = (~can).unsqueeze(-1) * -1e4  # pairs that cannot be made: ReLU gives 0, so sums and max skip them
        on = setup > 0
        rows = torch.arange(B * M, device=inv.device).view(B, M)[on]  # machines set up for an item
        cols = (setup - 1)[on]
        h_i, h_m = self.item_in(item), self.machine_in(mach)  # [B, I, W], [B, M, W]
        n_item = can.sum(0).clamp_min(1).to(inv.dtype).unsqueeze(-1)  # [I, 1]
        n_mach = can.sum(1).clamp_min(1).to(inv.dtype).unsqueeze(-1)  # [M, 1]
        W = self.width
        for r in range(self.layers + 1):
            lin = self.pair[r]
            pc = torch.nn.functional.linear(pair_c, lin.weight[:, :4], lin.bias) + off  # [M, I, W], no batch
            # [B, M, I, W], the one tensor per pair: plant part + machine + item, and the setup flag's column
            # added where a machine is set up (B x M rows, not B x M x I)
            x = (h_m.unsqueeze(2) + h_i.unsqueeze(1)).add_(pc).view(B * M, I, W)
            x.index_put_((rows, cols), lin.weight[:, 4], accumulate=True)
            e = torch.relu_(x).view(B, M, I, W)
            if r == self.layers:
                break
            item_mean = e.sum(1) / n_item
            mach_mean = e.sum(2) / n_mach
            mach_max = e.amax(2)
            h_i = h_i + self.item_up[r](torch.cat([h_i, item_mean], -1))
            h_m = h_m + self.machine_up[r](torch.cat([h_m, mach_mean, mach_max], -1))
        pair_logit = self.pair_out(e).squeeze(-1)  # [B, M, I]
        idle_logit = self.idle_out(torch.cat([h_m, e.sum(2) / n_mach, e.amax(2)], -1))  # [B, M, 1]
        logits = torch.cat([idle_logit, pair_logit], -1)
        allowed = self._c("allowed", inv).expand(B, -1, -1)
        if mask is not None:
            allowed = allowed & (mask | ~mask.any(-1, keepdim=True))
        return logits.masked_fill(~allowed, -1e9)

    def logits(self, state: State, t: int) -> torch.Tensor:
        x = self.features(state, t)
        rows = self.block_rows(x)
        if rows >= x.shape[0]:
            return self.masked_logits(x)
        return torch.cat([self.masked_logits(x[i : i + rows]) for i in range(0, x.shape[0], rows)])

    def block_rows(self, x: torch.Tensor) -> int:
        """Rows per forward pass: on a CPU without gradients, blocks whose pair tensors (``rows x M x I x
        width``) hold about ``CPU_BLOCK`` numbers, so that they stay in cache (about three times faster per row
        than one pass over thousands of rows; ``benchmarks/lotsizing_learned_speed.py``); elsewhere all rows."""
        if x.device.type != "cpu" or torch.is_grad_enabled():
            return x.shape[0]
        return max(1, CPU_BLOCK // (self.M * self.I * self.width))

    def forward(self, state: State, t: int) -> torch.Tensor:
        return self.logits(state, t).argmax(-1)  # [B, M]

    def sample(self, state: State, t: int, k: int, gen: torch.Generator) -> torch.Tensor:
        """``k`` sampled actions per state, ``[B, k, M]``."""
        from ..algos.rollout_pi import sample_logits

        return sample_logits(self.logits(state, t), k, gen)


# --- the shipped policy --------------------------------------------------------------------------
class PolicyMeta(Record):
    """The JSON beside the weights: the network's width and rounds (other keys say how it was trained)."""

    width: Annotated[Integer, PydanticField(ge=1, le=4096)] = 32
    layers: Annotated[Integer, PydanticField(ge=0, le=64)] = 2


def plant_key(problem) -> str:
    """A fingerprint of ``problem``'s plant (capacity, setup cost and loss, holding and lost-sales cost, cap)."""
    h = hashlib.sha256()
    for a in (problem.cap, problem.sc, problem.sl, problem.h, problem.ls, problem.max_inv):
        h.update(a.detach().cpu().double().numpy().tobytes())
    return h.hexdigest()[:16]


def shipped(problem) -> Path:
    """The bundled weights for ``problem``: those trained on this very plant (a ``data/learned_*.pt`` whose
    JSON's ``plant`` is :func:`plant_key` of the problem) where there are such, else the shared network
    (``data/learned.pt``) that runs on any plant."""
    key = plant_key(problem)
    for meta in sorted(DATA.glob("learned_*.json")):
        if load_json(meta).get("plant") == key and meta.with_suffix(".pt").is_file():
            return meta.with_suffix(".pt")
    return WEIGHTS


def resolve(problem, weights: str | Path | None = None) -> Path:
    """The weights file to use: ``weights`` (a path, or the name of a bundled file in ``data/``), else
    :func:`shipped`."""
    if not weights:
        return shipped(problem)
    path = Path(weights)
    return DATA / path if not path.exists() and (DATA / path).is_file() else path


def _meta(path: Path) -> PolicyMeta:
    meta = path.with_suffix(".json")
    return check(PolicyMeta, load_json(meta), meta) if meta.exists() else PolicyMeta()


def load(problem, weights: str | Path | None = None, source: str = "<solver>") -> ItemMachinePolicy:
    """The network with the weights of :func:`resolve` bound to ``problem``, in eval mode. A file that is not
    such weights is a ConfigError against ``source``'s ``options.weights``."""
    path = resolve(problem, weights)
    cfg = _meta(path)
    net = ItemMachinePolicy(None, cfg.width, cfg.layers)
    load_weights(net, path, source, "options.weights")
    return net.bind(problem).eval()


class Chunked:
    """A policy evaluated ``chunk`` scenarios at a time (the pair tensors are ``chunk x M x I x width``)."""

    def __init__(self, net: ItemMachinePolicy, chunk: int):
        self.net, self.chunk = net, int(chunk)

    @torch.no_grad()
    def __call__(self, state: State, t: int) -> torch.Tensor:
        B = state["inventory"].shape[0]
        if B <= self.chunk:
            return self.net(state, t)
        parts = []
        for i in range(0, B, self.chunk):
            parts.append(self.net({k: v[i : i + self.chunk] for k, v in state.items()}, t))
        return torch.cat(parts)


OPTIONS = {
    "weights": Field(str, "", allowed="a path to weights of the item-machine policy ('': the shipped ones)"),
    "chunk": Field(int, 256, allowed="scenarios per forward pass, from 1 to 10^6", check=lambda v: v >= 1, max=10**6),
}


def _sizes(problem, o: Mapping[str, Any], config: Mapping[str, Any]) -> list:
    from ..core.config import Need

    width = _meta(resolve(problem, o["weights"] or None)).width
    rows = min(int(o["chunk"]), max(1, int(getattr(problem, "test_scenarios", 1))))
    nbytes = 4.0 * 4 * rows * problem.M * problem.I * width  # a few [rows, M, I, width] tensors alive at once
    src = config["source"]
    what = f"the policy's pair tensors ({rows} x {problem.M} x {problem.I} x {width})"
    return [Need(what, nbytes, src, ("options.chunk",))]


def _fit(problem, o: Mapping[str, Any], config: Mapping[str, Any], ctx: SolveContext) -> SolveOutcome:
    from .simulator import LotSizing

    if not isinstance(problem, LotSizing):
        raise ConfigError(ctx.source, "method", "this method applies to lot-sizing problems")
    path = resolve(problem, o["weights"] or None)
    net = load(problem, path, ctx.source)
    meta = path.with_suffix(".json")
    info: dict[str, Any] = {"weights": str(path), "width": net.width, "layers": net.layers}
    if meta.exists():
        info["trained"] = {k: v for k, v in load_json(meta).items() if k not in ("width", "layers")}
    return SolveOutcome(policy=Chunked(net, o["chunk"]), info=info)


METHOD = Method(
    "graph_policy",
    _fit,
    OPTIONS,
    sizes=_sizes,
    description="the item-machine network (one for every plant size) with the shipped or given weights, greedy",
)
