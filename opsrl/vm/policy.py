"""The shipped two-stage policy (:class:`opsrl.nn.two_stage.TwoStageActorCritic`) and risk-seeking best of K.

The weights in ``data/two_stage.pt`` (with ``data/two_stage.json``: width, layers, how they were trained)
were trained by the generic ``ppo`` on synthetic Medium snapshots with ``benchmarks/vm_train_gnn.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
from pydantic import Field as PydanticField
from torch.distributions import Categorical

from ..core import Scenarios
from ..core.config import load_weights
from ..core.datafile import Integer, Record, check, load_json
from ..nn.two_stage import TwoStageActorCritic, _dense_mean, _masked_logits, sample_logits
from . import simulator as sim

DATA = Path(__file__).resolve().parent / "data"
WEIGHTS = DATA / "two_stage.pt"
META = DATA / "two_stage.json"


class PolicyMeta(Record):
    """The JSON beside the weights: the network's width and message-passing layers (other keys say how it
    was trained)."""

    width: Annotated[Integer, PydanticField(ge=1, le=4096)] = 32
    layers: Annotated[Integer, PydanticField(ge=0, le=64)] = 2


def load(problem, weights: str | Path | None = None, source: str = "<solver>") -> TwoStageActorCritic:
    """The policy with the shipped weights (or ``weights``), in eval mode; its width and layers come from the
    JSON next to the weights when there is one; a name that is not a file is looked up among the bundled
    weights (``data/``). A file that is not such weights is a ConfigError against
    ``source``'s ``options.weights``."""
    path = Path(weights) if weights else WEIGHTS
    if weights and not path.exists() and (DATA / path).is_file():  # a bare name: one of the bundled files
        path = DATA / path
    meta = path.with_suffix(".json")
    cfg = check(PolicyMeta, load_json(meta), meta) if meta.exists() else PolicyMeta()
    ac = TwoStageActorCritic(problem, cfg.width, cfg.layers)
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
    final = sampled_plan(problem, ac, rep, torch.arange(n * k, device=dev) % k != 0)
    return _pick(problem, final, n, k)


@torch.no_grad()
def sampled_plan(problem, ac: TwoStageActorCritic, scenarios: Scenarios, sample_rows: torch.Tensor) -> dict:
    """:func:`plan` through the generic contract path with the rows ``sample_rows`` sampled and the others
    greedy (the reference :func:`fast_plan` is tested against, draw for draw)."""
    ac.sampling, ac.greedy_rows = True, ~sample_rows
    try:
        return plan(problem, ac, scenarios)
    finally:
        ac.sampling, ac.greedy_rows = False, None


def _pick(problem, final: dict, n: int, k: int) -> dict:
    fr = problem.fr(final).reshape(n, k)
    pick = torch.arange(n, device=fr.device) * k + fr.argmin(1)
    return {
        key: v[pick] if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == n * k else v
        for key, v in final.items()
    }


class _Kinds:
    """The kind tensors of a batch of states (:func:`.simulator.kind_fit`, :func:`.simulator.kind_dest_delta`,
    and ``fit.sum(-1)``), kept up to date move by move: a move changes the free capacity of two PMs only, so
    only their slots' columns are recomputed (the same numbers as recomputing the whole tensors)."""

    def __init__(self, problem, state: dict):
        self.p = problem
        self.weights = sim.fr_weights(state, problem.block, problem.objective, problem.mem_block)
        self.fit = sim.kind_fit(state)
        self.dest = sim.kind_dest_delta(
            state, problem.block, problem.objective, problem.mem_block, weights=self.weights
        )
        self.n_fit = self.fit.sum(-1)
        self.val = torch.where(self.fit, self.dest, torch.full_like(self.dest, sim.INF))

    def moved(self, state: dict, pms: torch.Tensor) -> None:
        """``state`` after a move that touched PMs ``pms`` ``[B, 2]`` (its source and destination)."""
        p = self.p
        B, K, S = self.fit.shape
        same = pms[:, 0] == pms[:, 1]  # a move between the nodes of one PM: its columns once
        idx = pms[:, None, :, None].expand(B, K, 2, 2)
        old = self.fit.view(B, K, S // 2, 2).gather(2, idx)
        fit = sim.kind_fit(state, pms).reshape(B, K, 2, 2)
        dest = sim.kind_dest_delta(state, p.block, p.objective, p.mem_block, pms=pms, weights=self.weights)
        once = torch.stack([torch.ones_like(same), ~same], 1)[:, None, :, None]
        self.n_fit += ((fit & once).sum((2, 3)) - (old & once).sum((2, 3))).to(self.n_fit.dtype)
        dest = dest.reshape(B, K, 2, 2)
        self.fit.view(B, K, S // 2, 2).scatter_(2, idx, fit)
        self.dest.view(B, K, S // 2, 2).scatter_(2, idx, dest)
        self.val.view(B, K, S // 2, 2).scatter_(2, idx, torch.where(fit, dest, torch.full_like(dest, sim.INF)))


def _step(problem, net, state: dict, sample_rows: torch.Tensor | None, kinds: _Kinds | None = None):
    """One decision of the policy, as :meth:`TwoStageActorCritic.forward` takes it, with every intermediate
    computed once: the kind tensors feed the best moves, the graph view and the first-stage mask; the
    critic is skipped; the second stage runs once, on the chosen VM only (its kind's destination change and
    its destination mask, which is also the move's feasibility). ``sample_rows`` ``[B]`` (None: greedy
    decoding) are the rows that sample; the others take the mode. ``kinds`` (:class:`_Kinds` of ``state``)
    saves recomputing the kind tensors. Returns ``(action [B, 2], allowed [B])``."""
    blk, obj, mb = problem.block, problem.objective, problem.mem_block
    if kinds is None:
        fit, dest = sim.kind_fit(state), sim.kind_dest_delta(state, blk, obj, mb)
    else:
        fit, dest = kinds.fit, kinds.dest
    src = sim.source_delta(state, blk, obj, mb)
    best, _ = sim.vm_best_moves(state, blk, obj, mb, fit=fit, dest=dest, src=src)
    view = problem.bipartite(state, src=src, best=best)
    l1, _, ctx = net(view, critic=False)
    return _decide(problem, net, state, l1, ctx, fit, src, sample_rows, kinds=kinds)


def _decide(problem, net, state, l1, ctx, fit, src, sample_rows, bin_logits=None, own=None, kinds=None):
    """Both stages' draws from the first-stage logits ``l1`` and the network context ``ctx`` (``bin_logits(item,
    pair)``: the second stage's logits, by default ``net.bin_logits`` on ``ctx``; ``own``: the VMs' slots,
    ``kinds``: the :class:`_Kinds` of the state, when the caller has them)."""
    n_fit = None if kinds is None else kinds.n_fit
    logits1 = _masked_logits(l1, sim.first_stage_mask(state, fit, own, n_fit))
    greedy = None if sample_rows is None else (~sample_rows).nonzero()[:, 0]
    if greedy is None:
        item = logits1.argmax(-1)
    else:  # the draws of every row (as the contract path draws them), the mode on the greedy rows only
        item = sample_logits(logits1)
        item[greedy] = logits1[greedy].argmax(-1)
    ok = sim.destination_mask(state, item)
    pair = problem.pair_features_of(state, item, src, ok, None if kinds is None else kinds.weights)
    l2 = net.bin_logits(ctx, item, pair) if bin_logits is None else bin_logits(item, pair)
    l2 = Categorical(logits=_masked_logits(l2, ok)).logits
    if greedy is None:
        slot = l2.argmax(-1)
    else:
        slot = sample_logits(l2)
        slot[greedy] = l2[greedy].argmax(-1)
    return torch.stack([item, slot], 1), ok.gather(1, slot[:, None])[:, 0]


class _Flat:
    """A network without message-passing layers (``layers = 0``) evaluated incrementally. Every VM's and NUMA
    node's embedding depends on its own features only, and a move changes the features of few of them: the
    nodes of the two PMs it touches, the VMs on those PMs (their source change and own node's free CPU), the
    moved VM, and the VMs whose best move changed (their kind's best destinations). So the features are
    kept and updated where they can change, and the embeddings (with the first linear layers of the first
    stage's MLP and of the second stage's bin input, which read only them) are recomputed only for the rows
    whose features changed; what depends on the whole graph (the means, the global features) is recomputed
    every step. The features are those of ``problem.bipartite``, by the same operations; the second stage's
    first layer is split by input (the bins' part kept per bin, the chosen VM's part once per row): the same
    logits as ``net.bin_logits`` up to float rounding. ``rep`` rows share each initial state (best of K: the
    embeddings of step 0 are computed once per snapshot)."""

    def __init__(self, problem, net, state: dict, kinds: _Kinds, rep: int = 1):
        self.p, self.net = problem, net
        fc = state["free_cpu"]
        B, P, _ = fc.shape
        V = state["vm_cpu"].shape[1]
        self.B, self.V, self.S = B, V, 2 * P
        self.cap_c = state["cap_cpu"].amax((1, 2)).clamp_min(1.0)[:, None]
        self.cap_m = state["cap_mem"].amax((1, 2)).clamp_min(1.0)[:, None]
        self.bin_mask = state["pm_mask"].repeat_interleave(2, 1)
        self.total = (fc.reshape(B, 2 * P) * self.bin_mask).sum(1, keepdim=True).clamp_min(1.0)
        self.weights = kinds.weights
        self.own = sim.own_slot(state)
        self.src = self._src(state)
        self.top = sim.kind_top2(kinds.fit, kinds.dest, kinds.val)
        self.kind_flat = (state["vm_kind"] + torch.arange(B, device=fc.device)[:, None] * kinds.fit.shape[1]).reshape(
            -1
        )
        best = sim.best_of_kinds(state, self.top, self.src, self.own)
        view = problem.bipartite(state, src=self.src, best=best)
        self.item_x = view["item_x"].reshape(B * V, -1).clone()
        self.bin_x = view["bin_x"].reshape(B * self.S, -1).clone()
        self.best_col = self.item_x[:, 5].clone()
        w = net.actor1.parts[0].out_features
        lin2 = net.actor2[0]
        self.w2 = lin2.weight.split([w, w, w, w, lin2.in_features - 4 * w], 1)  # hb, item, host, bin mean, pair
        first = torch.arange(0, B, rep, device=fc.device)

        def once(x, n, fn):  # fn on the first row of each group of ``rep``, copied to the group
            y = fn(x.view(B, n, -1)[first].reshape(first.numel() * n, -1))
            return y.view(-1, n, y.shape[-1]).repeat_interleave(rep, 0).reshape(B * n, -1)

        self.hi = once(self.item_x, V, net.embed_i)
        self.a1 = once(self.hi, V, net.actor1.parts[0])
        self.hb = once(self.bin_x, self.S, net.embed_b)
        self.hbw = once(self.hb, self.S, self._bin_part)
        self.h_buf = torch.empty(B, V, w, dtype=fc.dtype, device=fc.device)
        self.l1_buf = torch.empty(B * V, 1, dtype=fc.dtype, device=fc.device)
        self.changed = [0, 0]
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None  # (touched PMs [B, 2], moved VM [B])

    def _bin_part(self, hb):
        return torch.nn.functional.linear(hb, self.w2[0])

    def _src(self, state, rows=None):
        p = self.p
        return sim.source_delta(state, p.block, p.objective, p.mem_block, rows, self.weights)

    @staticmethod
    def _embed(rows: torch.Tensor, x: torch.Tensor, outs) -> None:
        """Recompute the rows ``rows`` of each ``(out, fn)`` in turn (each ``fn`` reads the previous output)."""
        h = x.index_select(0, rows)
        for out, fn in outs:
            h = fn(h)
            out.index_copy_(0, rows, h)

    def moved(self, pms: torch.Tensor, vm: torch.Tensor, slot: torch.Tensor) -> None:
        """The last move touched PMs ``pms`` ``[B, 2]`` and moved VM ``vm`` ``[B]`` (-1: none) to ``slot``."""
        self.last = (pms, vm)
        v = vm.clamp_min(0)[:, None]
        self.own.scatter_(1, v, torch.where(vm[:, None] >= 0, slot[:, None], self.own.gather(1, v)))

    def _update_features(self, state: dict, kinds: _Kinds, own: torch.Tensor) -> None:
        p, net = self.p, self.net
        B, V, S = self.B, self.V, self.S
        blk = p.block
        f = state["free_cpu"].reshape(B, S)
        g = state["free_mem"].reshape(B, S)
        pms, vm = self.last
        ar = torch.arange(B, device=f.device)
        # bins: the four nodes of the two touched PMs (as problem.bipartite's bin_x, the parity column static)
        slots = (2 * pms[:, :, None] + torch.arange(2, device=f.device)).reshape(B, 4)
        bi = ar[:, None].expand(B, 4)
        fs, gs = f.gather(1, slots), g.gather(1, slots)
        rem = torch.remainder(fs, blk)
        cc, cm = self.cap_c.expand(B, 4), self.cap_m.expand(B, 4)
        bx = torch.stack(
            [
                fs / cc,
                gs / cm,
                rem / blk,
                torch.div(fs, blk, rounding_mode="floor") * blk / cc,
                (rem > 0).to(f.dtype),
                torch.remainder(gs, p.mem_block) / p.mem_block,
            ],
            -1,
        ).reshape(B * 4, -1)
        brow = (bi * S + slots).reshape(-1)
        self.bin_x[brow, :6] = bx
        self._embed(brow, self.bin_x, [(self.hb, net.embed_b), (self.hbw, self._bin_part)])
        self.changed[1] += int(brow.numel())
        # items: the VMs on the touched PMs (source change, own node), the moved VM, those whose best move changed
        on = (state["vm_pm"] == pms[:, :1]) | (state["vm_pm"] == pms[:, 1:])
        on = on.reshape(-1)
        on[(ar * V + vm.clamp_min(0))[vm >= 0]] = True
        rows = on.nonzero()[:, 0]
        rb, rv = rows // V, rows % V
        self.src.view(-1)[rows] = self._src(state, (rb, rv))
        # a VM's best move changes only if its source change or place did (``on``) or its kind's best two did
        top = sim.kind_top2(kinds.fit, kinds.dest, kinds.val)
        kch = (top[0] != self.top[0]) | (top[1] != self.top[1]) | (top[2] != self.top[2])
        self.top = top
        cand = (on | kch.view(-1).index_select(0, self.kind_flat)).nonzero()[:, 0]
        cb, cv = cand // V, cand % V
        best = sim.best_of_kinds(state, top, self.src[cb, cv], own[cb, cv], (cb, cv))
        best = torch.where(torch.isfinite(best), best * self.total[cb, 0] / blk, torch.ones_like(best))
        col = best.clamp(-2, 2)
        keep = on[cand] | (col != self.best_col[cand])
        self.best_col[cand] = col
        rows, col, best = cand[keep], col[keep], best[keep]
        rb, rv = rows // V, rows % V
        fo = f[rb, own[rb, rv]]
        self.item_x[rows, 4:10] = torch.stack(
            [
                -self.src.view(-1)[rows] * self.total[rb, 0] / blk,
                col,
                torch.isfinite(best).to(f.dtype),
                fo / self.cap_c[rb, 0],
                torch.remainder(fo, blk) / blk,
                (
                    (state["vm_pm"][rb, rv] != state["vm_pm0"][rb, rv])
                    | (state["vm_node"][rb, rv] != state["vm_node0"][rb, rv])
                ).to(f.dtype),
            ],
            -1,
        )
        self._embed(rows, self.item_x, [(self.hi, net.embed_i), (self.a1, net.actor1.parts[0])])
        self.changed[0] += int(rows.numel())

    def step(self, state: dict, kinds: _Kinds, sample_rows: torch.Tensor | None):
        p, net = self.p, self.net
        B, V, S = self.B, self.V, self.S
        own = self.own
        if self.last is not None:
            self._update_features(state, kinds, own)
        dt = state["free_cpu"].dtype
        # what depends on the whole graph, as TwoStageNet.forward computes it
        mi = _dense_mean(self.hi, state["vm_mask"])
        mb = _dense_mean(self.hb, self.bin_mask)
        gx = torch.stack([p.fr(state), state["t"].to(dt) / p.periods], -1)
        a = net.actor1
        # into kept buffers (a fresh 64 x 2,089 x width tensor per step costs its page faults); addmm is linear's
        h = torch.add(self.a1.view(B, V, -1), a.graph(torch.cat([mi, mb, gx], 1))[:, None], out=self.h_buf)
        l1 = torch.addmm(a.out.bias, h.view(B * V, -1).relu_(), a.out.weight.t(), out=self.l1_buf).view(B, V)
        second = torch.where(state["vm_double"], own + 1, own)
        hi, hb, hbw = self.hi.view(B, V, -1), self.hb.view(B, S, -1), self.hbw.view(B, S, -1)
        w = hi.shape[-1]
        lin1, out2 = net.actor2[0], net.actor2[2]
        F = torch.nn.functional

        def bin_logits(item, pair):
            i = item.reshape(B, 1)
            e = hi.gather(1, i[..., None].expand(B, 1, w))[:, 0]
            b0, b1 = own.gather(1, i), second.gather(1, i)
            host = 0.5 * (hb.gather(1, b0[..., None].expand(B, 1, w)) + hb.gather(1, b1[..., None].expand(B, 1, w)))
            row = F.linear(e, self.w2[1], lin1.bias) + F.linear(host[:, 0], self.w2[2]) + F.linear(mb, self.w2[3])
            pre = hbw + row[:, None]
            if pair is not None:
                pre = pre + F.linear(pair.to(dt), self.w2[4])
            return out2(pre.relu_())[..., 0]

        ctx = {"hi": hi, "hb": hb, "mb": mb}  # (bin_logits above reads the VM's nodes from own and second)
        return _decide(p, net, state, l1, ctx, kinds.fit, self.src, sample_rows, bin_logits, own, kinds)


def _advance(state: dict, action: torch.Tensor, ok: torch.Tensor) -> dict:
    """``problem.post_decision(state, action, ok)[0]`` without the FR change (the same state)."""
    vm, slot = action[:, 0], action[:, 1]
    out = sim.apply_move(state, vm, slot, ok)
    t = out["t"].clamp(max=out["plan_vm"].shape[1] - 1)[:, None]
    out["plan_vm"] = out["plan_vm"].scatter(1, t, torch.where(ok, vm, -1)[:, None])
    out["plan_slot"] = out["plan_slot"].scatter(1, t, torch.where(ok, slot, -1)[:, None])
    out["t"] = out["t"] + 1
    return out


@torch.inference_mode()
def fast_plan(
    problem,
    ac: TwoStageActorCritic,
    scenarios: Scenarios,
    sample_rows: torch.Tensor | None = None,
    rep: int = 1,
    stats: dict | None = None,
) -> dict:
    """:func:`plan` for the two-stage policy on this family through :func:`_step` (the same moves: greedy
    decoding without ``sample_rows``, sampling on those rows as ``ac.sampling`` does). The kind tensors are
    kept up to date move by move (:class:`_Kinds`); a network without message-passing layers runs
    incrementally (:class:`_Flat`). ``rep``: consecutive rows that start from the same snapshot (best of K).
    ``stats`` (a dict) receives the number of embedding rows recomputed."""
    state = problem.initial_state(scenarios)
    kinds = _Kinds(problem, state)
    flat = _Flat(problem, ac.net, state, kinds, rep) if len(ac.net.layers) == 0 else None
    for _ in range(problem.periods):
        if flat is None:
            action, allowed = _step(problem, ac.net, state, sample_rows, kinds)
        else:
            action, allowed = flat.step(state, kinds, sample_rows)
        vm = action[:, 0].clamp_min(0)[:, None]
        pms = torch.stack([state["vm_pm"].gather(1, vm)[:, 0], action[:, 1].clamp_min(0) // 2], 1)
        state = _advance(state, action, allowed)
        kinds.moved(state, pms)
        if flat is not None:
            flat.moved(pms, torch.where(allowed, action[:, 0], -1), action[:, 1])
    if stats is not None and flat is not None:
        stats.update(items=flat.changed[0], bins=flat.changed[1], B=flat.B, V=flat.V, S=flat.S)
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
    final = fast_plan(problem, ac, rep, torch.arange(n * k, device=dev) % k != 0, rep=k)
    return _pick(problem, final, n, k)
