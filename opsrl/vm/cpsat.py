"""OR-Tools CP-SAT reference for one snapshot, with the migration number limit.

Model (one snapshot): binaries ``x[v, s]`` (VM ``v`` ends on slot ``s``; a double-NUMA VM only on even
slots, meaning both nodes of the PM), exactly one slot per VM, immovable VMs fixed, at most MNL VMs away
from their original place, CPU and memory capacity of every node in the final placement, anti-affinity
(at most one VM of a group per PM), and for every node ``free = block q + r`` with ``q >= 0`` integer and
``0 <= r <= block - 1``; the objective is ``sum r`` (the total free CPU is constant, so this is the FR
times a constant). With ``objective = "multi"`` memory gets the same split (block ``mem_block``) and the
two sums are weighted so that the objective is the multi-resource FR times a constant.

Order of the plan. The model places VMs simultaneously; a plan is applied one migration at a time, and
every intermediate placement must be feasible too. :func:`order_moves` applies, round after round, every
pending move whose destination has room (and no anti-affinity conflict) at that moment, in VM order, so
each applied move is feasible when its turn comes; chains (A leaves a node, then B takes the room) come
out in the right order. Moves that remain blocked by each other (a cycle without slack, such as two VMs
swapping between two full nodes) are reported as ``unordered`` and put last, where applying the plan
skips them. :func:`solve` returns the FR of the ordered plan as applied (``fr``) and the model's own
(``model_fr``); they differ only when moves were unordered.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

MEM_SCALE = 1024  # memory in MiB inside the model (integers)


@dataclass
class CpSatResult:
    status: str
    plan: list[tuple[int, int]]  # (vm, slot) in application order
    model_fr: float
    bound_fr: float
    seconds: float
    unordered: int = 0
    hint_fr: float | None = None
    info: dict = field(default_factory=dict)


def _arrays(state, b: int) -> dict:
    g = lambda k: state[k][b].detach().cpu().numpy()
    pm_mask = g("pm_mask")
    vm_mask = g("vm_mask")
    return {
        "cap_cpu": g("cap_cpu"),
        "cap_mem": g("cap_mem"),
        "pm_mask": pm_mask,
        "cpu": g("vm_cpu")[vm_mask],
        "mem": g("vm_mem")[vm_mask],
        "double": g("vm_double")[vm_mask],
        "pm": g("vm_pm")[vm_mask],
        "node": g("vm_node")[vm_mask],
        "movable": g("vm_movable")[vm_mask],
        "group": g("vm_group")[vm_mask],
        "index": np.flatnonzero(vm_mask),
    }


def own_slots(a) -> np.ndarray:
    return 2 * a["pm"] + np.where(a["double"], 0, np.minimum(a["node"], 1))


def solve(
    state,
    b: int,
    mnl: int,
    block: float = 16.0,
    objective: str = "cpu",
    mem_block: float = 64.0,
    time_limit: float = 60.0,
    workers: int = 2,
    hint: dict[int, int] | None = None,
    seed: int = 0,
    log: bool = False,
    candidates: int = 0,
    destinations: int = 0,
) -> CpSatResult:
    """Solve scenario ``b`` of ``state`` (the snapshot). ``hint``: final slot of some VMs (by VM index).

    ``candidates`` > 0 restricts the VMs that may move to that many with the best single-move FR change
    (and the hinted ones); ``destinations`` > 0 restricts each to its that many best destinations at the
    snapshot (by the destination's FR change; plus the hinted one). Both 0: the full model. A restricted
    model's bound is a bound of the restricted model only."""
    from ortools.sat.python import cp_model

    t0 = time.perf_counter()
    a = _arrays(state, b)
    P = a["cap_cpu"].shape[0]
    S = 2 * P
    n = len(a["cpu"])
    own = own_slots(a)
    cap_c = np.rint(a["cap_cpu"].reshape(S)).astype(np.int64)
    cap_m = np.rint(a["cap_mem"].reshape(S) * MEM_SCALE).astype(np.int64)
    real = np.repeat(a["pm_mask"], 2)
    cpu = np.rint(a["cpu"]).astype(np.int64)
    mem = np.rint(a["mem"] * MEM_SCALE).astype(np.int64)
    half_c, half_m = cpu // 2, mem // 2
    blk = int(round(block))
    mblk = int(round(mem_block * MEM_SCALE))
    allowed = _restriction(state, b, a, block, objective, mem_block, candidates, destinations, hint)
    m = cp_model.CpModel()
    node_c = [[] for _ in range(S)]
    node_m = [[] for _ in range(S)]
    x: dict[tuple[int, int], object] = {}
    stay = []
    slot_ok_s = real & (cap_c > 0)
    for i in range(n):
        if not a["movable"][i]:
            slots = [int(own[i])]
        elif a["double"][i]:
            pm_ok = (np.minimum(cap_c[0::2], cap_c[1::2]) >= half_c[i]) & (
                np.minimum(cap_m[0::2], cap_m[1::2]) >= half_m[i]
            )
            slots = [2 * p for p in np.flatnonzero(pm_ok & a["pm_mask"])]
        else:
            slots = list(np.flatnonzero(slot_ok_s & (cap_c >= cpu[i]) & (cap_m >= mem[i])))
        if allowed is not None:
            keep = allowed.get(i, ())
            slots = [s for s in slots if s in keep]
        if int(own[i]) not in slots:
            slots.append(int(own[i]))
        lits = []
        for s in slots:
            v = m.NewBoolVar("")
            x[i, int(s)] = v
            lits.append(v)
            if a["double"][i]:
                for k in (s, s + 1):
                    node_c[k].append((v, half_c[i]))
                    node_m[k].append((v, half_m[i]))
            else:
                node_c[s].append((v, cpu[i]))
                node_m[s].append((v, mem[i]))
        m.AddExactlyOne(lits)
        stay.append(x[i, int(own[i])])
    m.Add(sum(stay) >= n - mnl)
    groups = a["group"]
    for gid in np.unique(groups[groups >= 0]):
        members = np.flatnonzero(groups == gid)
        for p in range(P):
            lits = [x[i, k] for i in members for k in (2 * p, 2 * p + 1) if (i, k) in x]
            if len(lits) > 1:
                m.AddAtMostOne(lits)
    rs, rms = [], []
    for k in range(S):
        if not real[k]:
            continue
        used_c = sum(c * v for v, c in node_c[k]) if node_c[k] else 0
        used_m = sum(c * v for v, c in node_m[k]) if node_m[k] else 0
        m.Add(used_c <= int(cap_c[k]))
        m.Add(used_m <= int(cap_m[k]))
        q = m.NewIntVar(0, int(cap_c[k]) // blk + 1, "")
        r = m.NewIntVar(0, blk - 1, "")
        m.Add(int(cap_c[k]) - used_c == blk * q + r)
        rs.append(r)
        if objective == "multi":
            qm = m.NewIntVar(0, int(cap_m[k]) // mblk + 1, "")
            rm = m.NewIntVar(0, mblk - 1, "")
            m.Add(int(cap_m[k]) - used_m == mblk * qm + rm)
            rms.append(rm)
    free_c = int((cap_c[real]).sum() - cpu.sum())
    free_m = int((cap_m[real]).sum() - mem.sum())
    if objective == "multi":
        # FR = (sum r / Fc + sum rm / Fm) / 2, scaled by 2 Fc Fm (divided by their gcd) to integers
        gcd = math.gcd(max(free_c, 1), max(free_m, 1))
        m.Minimize((max(free_m, 1) // gcd) * sum(rs) + (max(free_c, 1) // gcd) * sum(rms))
        to_fr = lambda obj: obj * gcd / (2.0 * max(free_c, 1) * max(free_m, 1))
    else:
        m.Minimize(sum(rs))
        to_fr = lambda obj: obj / max(free_c, 1)
    hint_fr = None
    if hint is not None:
        pos = {int(v): i for i, v in enumerate(a["index"])}
        target = own.copy()
        for v, s in hint.items():
            if int(v) in pos:
                target[pos[int(v)]] = int(s)
        for (i, s), var in x.items():
            m.AddHint(var, int(target[i] == s))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit)
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = int(seed)
    solver.parameters.log_search_progress = bool(log)
    st = solver.Solve(m)
    name = {
        cp_model.OPTIMAL: "optimal",
        cp_model.FEASIBLE: "feasible",
        cp_model.INFEASIBLE: "infeasible",
        cp_model.MODEL_INVALID: "invalid",
    }.get(st, "unknown")
    seconds = time.perf_counter() - t0
    if name not in ("optimal", "feasible"):
        return CpSatResult(name, [], math.nan, math.nan, seconds)
    final = own.copy()
    for (i, s), var in x.items():
        if solver.BooleanValue(var):
            final[i] = s
    moves = [(int(a["index"][i]), int(final[i])) for i in range(n) if final[i] != own[i]]
    plan, unordered = order_moves(a, moves, cap_c, cap_m, P)
    return CpSatResult(
        name,
        plan,
        float(to_fr(solver.ObjectiveValue())),
        float(to_fr(solver.BestObjectiveBound())),
        time.perf_counter() - t0,
        unordered,
        hint_fr,
        {"variables": len(x), "wall": seconds},
    )


def _restriction(state, b, a, block, objective, mem_block, candidates, destinations, hint):
    """``{VM position: set of slots}`` of a restricted model, or None for the full one."""
    if not candidates and not destinations:
        return None
    import torch

    from . import simulator as sim

    one = {k: v[b : b + 1] for k, v in state.items() if isinstance(v, torch.Tensor) and v.dim() > 0}
    best, _ = sim.vm_best_moves(one, block, objective, mem_block)
    best = best[0].cpu().numpy()[a["index"]]
    n = len(a["index"])
    movers = np.arange(n) if not candidates else np.argsort(best, kind="stable")[:candidates]
    movers = set(int(i) for i in movers if np.isfinite(best[i]) or not candidates)
    pos = {int(v): i for i, v in enumerate(a["index"])}
    hinted = {pos[int(v)]: int(s) for v, s in (hint or {}).items() if int(v) in pos}
    movers |= set(hinted)
    fit = sim.kind_fit(one)
    val = (
        torch.where(
            fit,
            sim.kind_dest_delta(one, block, objective, mem_block),
            torch.full_like(fit, float("inf"), dtype=one["free_cpu"].dtype),
        )[0]
        .cpu()
        .numpy()
    )
    kind = one["vm_kind"][0].cpu().numpy()[a["index"]]
    S = val.shape[1]
    out = {}
    for i in movers:
        row = val[kind[i]]
        order = np.argsort(row, kind="stable")
        order = order[np.isfinite(row[order])]
        slots = set(int(s) for s in order[: destinations + 1]) if destinations else set(range(S))
        if i in hinted:
            slots.add(hinted[i])
        out[i] = slots
    return out


def order_moves(a: dict, moves: list[tuple[int, int]], cap_c, cap_m, P: int) -> tuple[list[tuple[int, int]], int]:
    """Order simultaneous moves so that each is feasible when applied (see the module docstring); returns
    the ordered plan (blocked moves last) and how many were blocked."""
    S = 2 * P
    pos = {int(v): i for i, v in enumerate(a["index"])}
    own = own_slots(a)
    slot = own.copy()
    cpu = np.rint(a["cpu"]).astype(np.int64)
    mem = np.rint(a["mem"] * MEM_SCALE).astype(np.int64)
    dbl = a["double"]

    def usage():
        uc, um = np.zeros(S, dtype=np.int64), np.zeros(S, dtype=np.int64)
        for i in range(len(cpu)):
            if dbl[i]:
                for k in (slot[i], slot[i] + 1):
                    uc[k] += cpu[i] // 2
                    um[k] += mem[i] // 2
            else:
                uc[slot[i]] += cpu[i]
                um[slot[i]] += mem[i]
        return uc, um

    uc, um = usage()
    group = a["group"]
    pending = list(moves)
    plan = []
    progress = True
    while pending and progress:
        progress = False
        rest = []
        for v, s in pending:
            i = pos[v]
            nodes = (s, s + 1) if dbl[i] else (s,)
            need_c = cpu[i] // 2 if dbl[i] else cpu[i]
            need_m = mem[i] // 2 if dbl[i] else mem[i]
            # room at the destination, counting the VM itself as gone when it moves within its PM
            own_nodes = (slot[i], slot[i] + 1) if dbl[i] else (slot[i],)
            ok = True
            for k in nodes:
                back_c = need_c if k in own_nodes else 0
                back_m = need_m if k in own_nodes else 0
                if uc[k] - back_c + need_c > cap_c[k] or um[k] - back_m + need_m > cap_m[k]:
                    ok = False
            if ok and group[i] >= 0:
                p = s // 2
                others = [j for j in np.flatnonzero(group == group[i]) if j != i and slot[j] // 2 == p]
                ok = not others
            if not ok:
                rest.append((v, s))
                continue
            for k in own_nodes:
                uc[k] -= need_c
                um[k] -= need_m
            for k in nodes:
                uc[k] += need_c
                um[k] += need_m
            slot[i] = s
            plan.append((v, s))
            progress = True
        pending = rest
    return plan + pending, len(pending)
