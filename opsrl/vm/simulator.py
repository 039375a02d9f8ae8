"""The batched VM-rescheduling simulator: B cluster snapshots, one migration per period.

A snapshot has ``P`` physical machines (PMs), each with two NUMA nodes of CPU and memory capacity, and
``V`` virtual machines (VMs). A VM has CPU, memory, a flavour, a NUMA mode (single: all of it on one
node; double: half on each node of its PM), its host PM and node, optionally an anti-affinity group (no
two VMs of a group on one PM) and a flag saying it may not move. Snapshots of different sizes share a
batch, padded to the largest ``P`` and ``V`` (``pm_mask``, ``vm_mask``).

Destinations are *slots*: slot ``s`` is node ``s % 2`` of PM ``s // 2`` (``S = 2 P`` slots); a
double-NUMA VM goes to the even slot ``2 p`` (both nodes of PM ``p``). An action is a pair
``[vm, slot]`` (``[B, 2]`` long); ``vm = -1`` is "no migration" (greedy baselines stop with it when no
move lowers the fragment rate). A move that the masks do not allow is skipped (no change, cost 0):
that is also how a plan is applied to a cluster that has drifted (see :func:`apply_plan`).

Fragment rate (VMR2L, ``vm_rescheduler_env.py`` ``VirtualMachineScheduler.get_fragment_rate``): with
``f`` the free CPU of a NUMA node and ``block`` = 16, ``FR = sum_nodes (f mod block) / sum_nodes f``;
the total free CPU does not change under migration, so the FR is a sum of per-node terms over a
constant. ``objective = "multi"`` averages it with the same rate of memory (block ``mem_block``).
The cost of a step is the change of FR, so an episode's cost is final FR minus initial FR.

State keys (``[B, ...]``): ``free_cpu``/``free_mem`` ``[B, P, 2]``, ``vm_pm``/``vm_node`` ``[B, V]``
(node 2: both nodes), the static snapshot (``cap_cpu``, ``cap_mem``, ``pm_mask``, ``vm_cpu``,
``vm_mem``, ``vm_double``, ``vm_mask``, ``vm_movable``, ``vm_group``, ``vm_kind`` and the kind tables
``kind_*``), ``t`` (steps taken) and the plan so far (``plan_vm``, ``plan_slot`` ``[B, T]``).

Kinds. Feasibility and the FR change of a destination depend on a VM only through its CPU, memory and
NUMA mode (and anti-affinity group), so the masks and the greedy baseline evaluate every (VM, slot) pair
as ``[B, K, S]`` tensors over the *kinds* ``K`` (distinct (cpu, mem, double) triples; each VM of an
anti-affinity group is a kind of its own), then look up each VM's kind: every one of the ``V x S``
candidate migrations is evaluated exactly, in ``O(B (K S + V))``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

State = dict

INF = float("inf")


# --- fragment rate ----------------------------------------------------------------------------------
def fragment_parts(
    free: torch.Tensor, block: float, pm_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of free mod block, sum of free)`` per scenario of ``free`` ``[B, P, 2]``."""
    if pm_mask is not None:
        free = free * pm_mask[..., None].to(free.dtype)
    return torch.remainder(free, block).sum((1, 2)), free.sum((1, 2))


def fragment_rate(
    state: Mapping[str, torch.Tensor], block: float = 16.0, objective: str = "cpu", mem_block: float = 64.0
) -> torch.Tensor:
    """``[B]`` fragment rate of each scenario (0 where nothing is free)."""
    num, den = fragment_parts(state["free_cpu"], block, state["pm_mask"])
    fr = torch.where(den > 0, num / den.clamp_min(1e-12), torch.zeros_like(num))
    if objective == "multi":
        num_m, den_m = fragment_parts(state["free_mem"], mem_block, state["pm_mask"])
        fr = 0.5 * (fr + torch.where(den_m > 0, num_m / den_m.clamp_min(1e-12), torch.zeros_like(num_m)))
    return fr


def blocks(state: Mapping[str, torch.Tensor], block: float = 16.0) -> torch.Tensor:
    """``[B]`` number of whole free ``block``-core blocks over all NUMA nodes."""
    f = state["free_cpu"] * state["pm_mask"][..., None].to(state["free_cpu"].dtype)
    return torch.div(f, block, rounding_mode="floor").sum((1, 2))


# --- placement and usage ---------------------------------------------------------------------------
def node_usage(vm_pm, vm_node, vm_cpu, vm_mem, vm_double, alive, P: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU and memory used on each node ``[B, P, 2]`` by the ``alive`` VMs of a placement."""
    B = vm_pm.shape[0]
    dt = vm_cpu.dtype
    w = alive.to(dt)
    half = torch.where(vm_double, 0.5, 1.0).to(dt)
    first = 2 * vm_pm + torch.where(vm_double, 0, vm_node.clamp(max=1))
    second = 2 * vm_pm + 1
    out = []
    for x in (vm_cpu, vm_mem):
        u = torch.zeros(B, 2 * P, dtype=dt, device=vm_cpu.device)
        u.scatter_add_(1, first, x * half * w)
        u.scatter_add_(1, second, x * half * w * vm_double.to(dt))
        out.append(u.reshape(B, P, 2))
    return out[0], out[1]


def own_slot(state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``[B, V]`` the slot each VM occupies (``2 p`` for a double-NUMA VM)."""
    return 2 * state["vm_pm"] + torch.where(state["vm_double"], 0, state["vm_node"].clamp(max=1))


def group_counts(state: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    """``[B, G, P]`` alive VMs of each anti-affinity group on each PM (None without groups)."""
    g = state["vm_group"]
    G = int(state.get("n_groups", torch.zeros(1, dtype=torch.long)).max()) if "n_groups" in state else 0
    if G == 0:
        return None
    B, P = state["pm_mask"].shape
    ok = (g >= 0) & state["vm_mask"]
    idx = g.clamp_min(0) * P + state["vm_pm"]
    c = torch.zeros(B, G * P, dtype=torch.long, device=g.device)
    c.scatter_add_(1, idx, ok.long())
    return c.reshape(B, G, P)


# --- the kind tensors: feasibility and FR change of every destination ------------------------------
def _slot_free(state) -> tuple[torch.Tensor, torch.Tensor]:
    B, P, _ = state["free_cpu"].shape
    return state["free_cpu"].reshape(B, 2 * P), state["free_mem"].reshape(B, 2 * P)


def kind_fit(state: Mapping[str, torch.Tensor], pms: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, K, S]``: slot ``s`` can take a VM of kind ``k`` now (capacity, real PM, anti-affinity for the
    kinds of grouped VMs; the VM's own place is *not* excluded here). With ``pms`` ``[B, n]`` only the slots
    of those PMs (``[B, K, 2 n]``, the same numbers as the full tensor's slots ``2 pms`` and ``2 pms + 1``):
    after a move only the two PMs it touched change."""
    fc, fm = state["free_cpu"], state["free_mem"]  # [B, P, 2]
    B, P, _ = fc.shape
    pm_mask = state["pm_mask"]
    if pms is not None:
        fc = fc.gather(1, pms[..., None].expand(-1, -1, 2))
        fm = fm.gather(1, pms[..., None].expand(-1, -1, 2))
        pm_mask = pm_mask.gather(1, pms)
    n = fc.shape[1]
    kc, km, kd = state["kind_cpu"], state["kind_mem"], state["kind_double"]  # [B, K]
    single = (fc[:, None] >= kc[..., None, None]) & (fm[:, None] >= km[..., None, None])  # [B, K, n, 2]
    hc, hm = (kc / 2)[..., None], (km / 2)[..., None]
    dbl = (fc.amin(-1)[:, None] >= hc) & (fm.amin(-1)[:, None] >= hm)  # [B, K, n]
    dbl = torch.stack([dbl, torch.zeros_like(dbl)], -1)
    fit = torch.where(kd[..., None, None], dbl, single) & pm_mask[:, None, :, None]
    fit = fit & (kc > 0)[..., None, None]
    kv = state["kind_vm"]  # [B, K] the VM of a grouped kind, -1 otherwise
    gc = group_counts(state)
    if gc is not None and bool((kv >= 0).any()):
        v = kv.clamp_min(0)
        g = state["vm_group"].gather(1, v)  # [B, K]
        pm_v = state["vm_pm"].gather(1, v)
        others = gc.gather(1, g.clamp_min(0)[..., None].expand(-1, -1, P))  # [B, K, P]
        ids = torch.arange(P, device=v.device).expand(B, P)
        if pms is not None:
            others, ids = others.gather(2, pms[:, None].expand(-1, others.shape[1], -1)), pms
        others = others - (ids[:, None] == pm_v[..., None]).long()
        bad = (kv >= 0)[..., None] & (g >= 0)[..., None] & (others > 0)
        fit = fit & ~bad[..., None]
    return fit.reshape(B, -1, 2 * n)


def _rem_delta(free, demand, block):
    """Change of ``free mod block`` when ``demand`` is removed from ``free`` (negative demand: added)."""
    return torch.remainder(free - demand, block) - torch.remainder(free, block)


def fr_weights(state, block=16.0, objective="cpu", mem_block=64.0):
    """Per-scenario scale of the CPU and memory numerators in the FR (``1 / total free``; migration leaves
    them unchanged): ``(cpu [B], memory [B] or None)``."""
    _, den = fragment_parts(state["free_cpu"], block, state["pm_mask"])
    wc = torch.where(den > 0, 1.0 / den.clamp_min(1e-12), torch.zeros_like(den))
    if objective != "multi":
        return wc, None
    _, den_m = fragment_parts(state["free_mem"], mem_block, state["pm_mask"])
    wm = torch.where(den_m > 0, 1.0 / den_m.clamp_min(1e-12), torch.zeros_like(den_m))
    return 0.5 * wc, 0.5 * wm


_weights = fr_weights


def kind_dest_delta(
    state,
    block=16.0,
    objective="cpu",
    mem_block=64.0,
    kinds: torch.Tensor | None = None,
    pms: torch.Tensor | None = None,
    weights: tuple | None = None,
) -> torch.Tensor:
    """``[B, K, S]``: change of FR at the destination when a VM of kind ``k`` arrives at slot ``s``; with
    ``kinds`` ``[B, n]`` only those kinds (``[B, n, S]``, the same numbers as gathering the full tensor), with
    ``pms`` ``[B, m]`` only the slots of those PMs (``[B, K, 2 m]``, as in :func:`kind_fit`). ``weights``:
    ``_weights`` of the state (constant under migration) when the caller has them."""
    fc, fm = state["free_cpu"], state["free_mem"]
    B = fc.shape[0]
    wc, wm = _weights(state, block, objective, mem_block) if weights is None else weights
    if pms is not None:
        fc = fc.gather(1, pms[..., None].expand(-1, -1, 2))
        fm = fm.gather(1, pms[..., None].expand(-1, -1, 2))
    P = fc.shape[1]
    kc, km, kd = state["kind_cpu"], state["kind_mem"], state["kind_double"]
    if kinds is not None:
        kc, km, kd = kc.gather(1, kinds), km.gather(1, kinds), kd.gather(1, kinds)

    def part(free, k, w, blk):
        single = _rem_delta(free[:, None], k[..., None, None], blk)  # [B, K, P, 2]
        dbl = _rem_delta(free[:, None], (k / 2)[..., None, None], blk).sum(-1)  # [B, K, P]
        dbl = torch.stack([dbl, torch.zeros_like(dbl)], -1)
        return torch.where(kd[..., None, None], dbl, single) * w[:, None, None, None]

    d = part(fc, kc, wc, block)
    if wm is not None:
        d = d + part(fm, km, wm, mem_block)
    return d.reshape(B, -1, 2 * P)


def source_delta(state, block=16.0, objective="cpu", mem_block=64.0, rows=None, weights=None) -> torch.Tensor:
    """``[B, V]``: change of FR at each VM's current node(s) when it leaves; with ``rows`` (a pair of index
    tensors ``(b, v)``) only those VMs (``[n]``, the same numbers); ``weights`` as in :func:`kind_dest_delta`."""
    B, P, _ = state["free_cpu"].shape
    pm, node, dbl_v = state["vm_pm"], state["vm_node"], state["vm_double"]
    wc, wm = _weights(state, block, objective, mem_block) if weights is None else weights
    if rows is not None:
        bi, vi = rows
        pm, node, dbl_v = pm[bi, vi], node[bi, vi], dbl_v[bi, vi]

    def part(free, x, w, blk):
        f = free.reshape(B, 2 * P)
        if rows is None:
            f0, f1 = f.gather(1, 2 * pm), f.gather(1, 2 * pm + 1)
            w = w[:, None]
        else:
            f0, f1, x, w = f[bi, 2 * pm], f[bi, 2 * pm + 1], x[bi, vi], w[bi]
        fn = torch.where(node == 1, f1, f0)
        single = _rem_delta(fn, -x, blk)
        dbl = _rem_delta(f0, -x / 2, blk) + _rem_delta(f1, -x / 2, blk)
        return torch.where(dbl_v, dbl, single) * w

    d = part(state["free_cpu"], state["vm_cpu"], wc, block)
    if wm is not None:
        d = d + part(state["free_mem"], state["vm_mem"], wm, mem_block)
    return d


def _gather_kind(x: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
    """``x[b, kind[b, v], ...]`` for ``x`` ``[B, K, ...]`` and ``kind`` ``[B, V]``."""
    idx = kind.reshape(*kind.shape, *([1] * (x.dim() - 2))).expand(*kind.shape, *x.shape[2:])
    return x.gather(1, idx)


def first_stage_mask(
    state: Mapping[str, torch.Tensor],
    fit: torch.Tensor | None = None,
    own: torch.Tensor | None = None,
    n_fit: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[B, V]``: movable, real VMs that have at least one allowed destination other than their place.
    ``fit`` (:func:`kind_fit`), ``own`` (:func:`own_slot`) and ``n_fit`` (``fit.sum(-1)``) of this state may be
    passed in when the caller has them already."""
    fit = kind_fit(state) if fit is None else fit
    n_fit = fit.sum(-1) if n_fit is None else n_fit  # [B, K]
    kind = state["vm_kind"]
    S = fit.shape[2]
    own = fit.reshape(fit.shape[0], -1).gather(1, kind * S + (own_slot(state) if own is None else own))
    n_v = n_fit.gather(1, kind) - own.long()
    return state["vm_mask"] & state["vm_movable"] & (n_v > 0)


def destination_mask(state: Mapping[str, torch.Tensor], vm: torch.Tensor) -> torch.Tensor:
    """``[B, S]`` allowed destinations of VM ``vm[b]`` (computed directly, not through the kinds): capacity
    on the destination node(s), a real PM, not its current place, anti-affinity, movable and alive."""
    fc, fm = _slot_free(state)
    B, S = fc.shape
    P = S // 2
    v = vm.clamp_min(0)[:, None]
    c = state["vm_cpu"].gather(1, v)
    m = state["vm_mem"].gather(1, v)
    d = state["vm_double"].gather(1, v)
    single = (fc >= c) & (fm >= m)
    fcp, fmp = state["free_cpu"].amin(-1), state["free_mem"].amin(-1)  # [B, P]
    dbl = ((fcp >= c / 2) & (fmp >= m / 2)).repeat_interleave(2, 1)
    dbl = dbl & (torch.arange(S, device=fc.device) % 2 == 0)
    ok = torch.where(d, dbl, single) & state["pm_mask"].repeat_interleave(2, 1)
    own = 2 * state["vm_pm"].gather(1, v) + torch.where(d, 0, state["vm_node"].gather(1, v).clamp(max=1))
    ok = ok & (torch.arange(S, device=fc.device) != own)
    g = state["vm_group"].gather(1, v)  # [B, 1]
    if "n_groups" not in state or bool((state["n_groups"] > 0).any()):  # anti-affinity (no groups: no conflict)
        same = (state["vm_group"] == g) & (g >= 0) & state["vm_mask"]
        same = same & (torch.arange(state["vm_pm"].shape[1], device=fc.device) != v)
        conflict = torch.zeros(B, P, dtype=torch.long, device=fc.device)
        conflict.scatter_add_(1, state["vm_pm"], same.long())
        ok = ok & (conflict == 0).repeat_interleave(2, 1)
    alive = (state["vm_mask"] & state["vm_movable"]).gather(1, v) & (vm >= 0)[:, None]
    return ok & alive


def move_allowed(state: Mapping[str, torch.Tensor], vm: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    """``[B]``: the move of ``vm[b]`` to ``slot[b]`` is allowed now."""
    S = state["free_cpu"].shape[1] * 2
    ok = (vm >= 0) & (slot >= 0) & (slot < S) & (vm < state["vm_pm"].shape[1])
    m = destination_mask(state, vm)
    return ok & m.gather(1, slot.clamp(0, S - 1)[:, None])[:, 0]


def apply_move(state: State, vm: torch.Tensor, slot: torch.Tensor, valid: torch.Tensor) -> State:
    """The state after moving ``vm[b]`` to ``slot[b]`` where ``valid[b]`` (elsewhere unchanged)."""
    B, P, _ = state["free_cpu"].shape
    v = vm.clamp_min(0)[:, None]
    dt = state["free_cpu"].dtype
    w = valid.to(dt)[:, None]
    dbl = state["vm_double"].gather(1, v)
    new_pm = (slot.clamp_min(0) // 2)[:, None]
    new_node = torch.where(dbl, 2, slot.clamp_min(0)[:, None] % 2)
    old_pm, old_node = state["vm_pm"].gather(1, v), state["vm_node"].gather(1, v)
    out = dict(state)
    for key, x in (("free_cpu", "vm_cpu"), ("free_mem", "vm_mem")):
        amount = state[x].gather(1, v)
        half = torch.where(dbl, amount / 2, amount)
        f = state[key].reshape(B, 2 * P).clone()
        for pm, node, sign in ((old_pm, old_node, 1.0), (new_pm, new_node, -1.0)):
            a = 2 * pm + torch.where(dbl, 0, node.clamp(max=1))
            f.scatter_add_(1, a, sign * half * w)
            f.scatter_add_(1, 2 * pm + 1, sign * half * w * dbl.to(dt))
        out[key] = f.reshape(B, P, 2)
    vb = valid[:, None]
    out["vm_pm"] = state["vm_pm"].scatter(1, v, torch.where(vb, new_pm, old_pm))
    out["vm_node"] = state["vm_node"].scatter(1, v, torch.where(vb, new_node, old_node))
    return out


def vm_best_moves(
    state: Mapping[str, torch.Tensor],
    block=16.0,
    objective="cpu",
    mem_block=64.0,
    fit: torch.Tensor | None = None,
    dest: torch.Tensor | None = None,
    src: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every VM the allowed destination that lowers FR most: ``(delta [B, V], slot [B, V])`` (``delta``
    is ``inf`` where the VM has no allowed destination). FR changes add up over nodes, so the change of a
    move is the source's change plus the destination's, and only the VM's own slot must be left out of its
    kind's best destinations: the two best per kind suffice. ``fit`` (:func:`kind_fit`), ``dest``
    (:func:`kind_dest_delta`) and ``src`` (:func:`source_delta`) of this state may be passed in when the
    caller has them already."""
    fit = kind_fit(state) if fit is None else fit
    dest = kind_dest_delta(state, block, objective, mem_block) if dest is None else dest
    val = torch.where(fit, dest, torch.full_like(fit, INF, dtype=state["free_cpu"].dtype))
    k = min(2, val.shape[2])
    top_v, top_i = val.topk(k, dim=-1, largest=False)  # [B, K, 2]
    kind = state["vm_kind"]
    tv, ti = _gather_kind(top_v, kind), _gather_kind(top_i, kind)  # [B, V, 2]
    first_is_own = ti[..., 0] == own_slot(state)
    dv = torch.where(first_is_own, tv[..., -1], tv[..., 0])
    ds = torch.where(first_is_own, ti[..., -1], ti[..., 0])
    cand = (source_delta(state, block, objective, mem_block) if src is None else src) + dv
    ok = state["vm_mask"] & state["vm_movable"] & torch.isfinite(dv)
    return torch.where(ok, cand, torch.full_like(cand, INF)), ds


def kind_top2(fit: torch.Tensor, dest: torch.Tensor, val: torch.Tensor | None = None):
    """Per kind the smallest FR change over the destinations that fit, an entry attaining it and the second
    smallest (``(v1, i1, v2)``, each ``[B, K]``; ``inf`` where nothing fits). ``val``: ``where(fit, dest, inf)``
    when the caller has it (changed during the call and restored)."""
    if val is None:
        val = torch.where(fit, dest, torch.full_like(dest, INF))
    v1, i1 = val.min(-1)  # [B, K]
    if val.shape[2] < 2:  # one slot only: topk's second value is the first
        return v1, i1, v1
    val.scatter_(-1, i1[..., None], INF)  # the second smallest: the smallest without the first's entry
    v2 = val.amin(-1)
    val.scatter_(-1, i1[..., None], v1[..., None])
    return v1, i1, v2


def best_of_kinds(state: Mapping[str, torch.Tensor], top, src: torch.Tensor, own: torch.Tensor, rows=None):
    """:func:`vm_best_values` from the kinds' :func:`kind_top2` ``top``, the VMs' source change ``src`` and own
    slots ``own`` (``[B, V]``); with ``rows`` (a pair of index tensors ``(b, v)``) only those VMs (``[n]``, the
    same numbers; ``src`` and ``own`` are then the rows' values)."""
    v1, i1, v2 = top
    kind = state["vm_kind"]
    if rows is None:
        g = lambda x: x.gather(1, kind)
        ok = state["vm_mask"] & state["vm_movable"]
    else:
        bi, vi = rows
        k = kind[bi, vi]
        g = lambda x: x[bi, k]
        ok = state["vm_mask"][bi, vi] & state["vm_movable"][bi, vi]
    dv = torch.where(g(i1) == own, g(v2), g(v1))
    ok = ok & torch.isfinite(dv)
    cand = src + dv
    return torch.where(ok, cand, torch.full_like(cand, INF))


def vm_best_values(
    state: Mapping[str, torch.Tensor],
    fit: torch.Tensor,
    dest: torch.Tensor,
    src: torch.Tensor,
    own: torch.Tensor | None = None,
    val: torch.Tensor | None = None,
) -> torch.Tensor:
    """The first output of :func:`vm_best_moves` (the FR change of every VM's best allowed move), bit for bit,
    from two minima per kind (:func:`kind_top2`) instead of a top-2 sort: the value does not depend on how
    ties between destinations are broken (if the VM's own slot ties for the kind's best, the best value
    elsewhere is the same value), so only the slot choice, which this does not return, could differ. ``own``
    (:func:`own_slot`) and ``val`` (see :func:`kind_top2`) may be passed in when the caller has them."""
    own = own_slot(state) if own is None else own
    return best_of_kinds(state, kind_top2(fit, dest, val), src, own)


def greedy_moves(
    state: Mapping[str, torch.Tensor],
    block=16.0,
    objective="cpu",
    mem_block=64.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The allowed migration that lowers FR most in each scenario, over all (VM, slot) pairs at once.

    Returns ``(vm, slot, delta)`` ``[B]``; ``delta`` is ``inf`` where no migration is allowed."""
    cand, ds = vm_best_moves(state, block, objective, mem_block)
    best, vm = cand.min(1)
    slot = ds.gather(1, vm[:, None])[:, 0]
    return vm, slot, best


# --- drift: arrivals and departures while a solver thinks -------------------------------------------
def drifted_state(state0: State, data: Mapping[str, torch.Tensor], latency: torch.Tensor) -> State:
    """The cluster ``latency[b]`` seconds after the snapshot ``state0``: VMs whose departure time is at
    most the latency have left, and the arrivals up to then (in time order) were placed by the cluster's
    own best-fit scheduler (the feasible node, or PM for a double-NUMA VM, with the least free CPU;
    an arrival that fits nowhere is rejected). Departures before an arrival free their room first."""
    if "arr_time" not in data or data["arr_time"].shape[1] == 0:
        dep = data.get("dep_time")
        if dep is None:
            return dict(state0)
    P = state0["free_cpu"].shape[1]
    lat = latency.to(state0["free_cpu"].dtype)[:, None]
    dep = data["dep_time"]
    base_alive = state0["vm_mask"]
    arr_t = data.get("arr_time", torch.zeros(dep.shape[0], 0, dtype=dep.dtype, device=dep.device))
    B = dep.shape[0]
    use_c = torch.zeros(B, P, 2, dtype=state0["free_cpu"].dtype, device=dep.device)
    use_m = torch.zeros_like(use_c)
    cap_c, cap_m = state0["cap_cpu"], state0["cap_mem"]
    placed = torch.zeros(B, dtype=torch.long, device=dep.device)
    rejected = torch.zeros(B, dtype=torch.long, device=dep.device)
    for j in range(arr_t.shape[1]):
        tj = arr_t[:, j : j + 1]
        now = (tj <= lat)[:, 0] & torch.isfinite(tj[:, 0])
        if not bool(now.any()):
            continue
        alive = base_alive & ~(dep <= tj)
        uc, um = node_usage(
            state0["vm_pm"], state0["vm_node"], state0["vm_cpu"], state0["vm_mem"], state0["vm_double"], alive, P
        )
        fc, fm = cap_c - uc - use_c, cap_m - um - use_m
        c, m, d = data["arr_cpu"][:, j : j + 1], data["arr_mem"][:, j : j + 1], data["arr_double"][:, j : j + 1]
        single = (fc >= c[..., None]) & (fm >= m[..., None]) & state0["pm_mask"][..., None]
        dbl = (fc.amin(-1) >= c / 2) & (fm.amin(-1) >= m / 2) & state0["pm_mask"]
        score_s = torch.where(single, fc, INF).reshape(B, 2 * P)
        score_d = torch.where(dbl, fc.amin(-1), INF)
        best_s, slot_s = score_s.min(1)
        best_d, pm_d = score_d.min(1)
        isd = d[:, 0]
        ok = now & torch.where(isd, torch.isfinite(best_d), torch.isfinite(best_s))
        w = ok.to(fc.dtype)
        for use, x in ((use_c, c[:, 0]), (use_m, m[:, 0])):
            flat = use.reshape(B, 2 * P)
            a = torch.where(isd, 2 * pm_d, slot_s)
            flat.scatter_add_(1, a[:, None], (torch.where(isd, x / 2, x) * w)[:, None])
            flat.scatter_add_(1, (2 * pm_d + 1)[:, None], (x / 2 * w * isd.to(fc.dtype))[:, None])
        placed += ok.long()
        rejected += (now & ~ok).long()
    alive = base_alive & ~(dep <= lat)
    uc, um = node_usage(
        state0["vm_pm"], state0["vm_node"], state0["vm_cpu"], state0["vm_mem"], state0["vm_double"], alive, P
    )
    out = dict(state0)
    out["free_cpu"], out["free_mem"] = cap_c - uc - use_c, cap_m - um - use_m
    out["vm_mask"] = alive
    out["arrived"], out["rejected"] = placed, rejected
    return out


def apply_plan(state: State, plan_vm: torch.Tensor, plan_slot: torch.Tensor) -> tuple[State, torch.Tensor]:
    """Apply a plan ``[B, T]`` of moves in order; a move not allowed when its turn comes (its VM has left,
    it is already there, no room, anti-affinity) is skipped. Returns the state and the moves applied ``[B]``."""
    done = torch.zeros(plan_vm.shape[0], dtype=torch.long, device=plan_vm.device)
    for t in range(plan_vm.shape[1]):
        v, s = plan_vm[:, t], plan_slot[:, t]
        ok = move_allowed(state, v, s)
        state = apply_move(state, v, s, ok)
        done += ok.long()
    return state, done


def migrations(state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``[B]`` VMs away from their original place."""
    away = (state["vm_pm"] != state["vm_pm0"]) | (state["vm_node"] != state["vm_node0"])
    return (away & state["vm_mask"]).sum(1)
