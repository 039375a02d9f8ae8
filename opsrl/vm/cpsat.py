"""OR-Tools CP-SAT reference for one snapshot, with the migration number limit.

Placement. Binaries ``x[v, s]`` (VM ``v`` ends on slot ``s``; a double-NUMA VM only on even slots, meaning
both nodes of the PM), exactly one slot per VM, immovable VMs fixed, at most MNL VMs away from their original
place, CPU and memory capacity of every node in the final placement, anti-affinity (at most one VM of a group
per PM), and for every node ``free = block q + r`` with ``q >= 0`` integer and ``0 <= r <= block - 1``; the
objective is ``sum r`` (the total free CPU is constant, so this is the FR times a constant). With
``objective = "multi"`` memory gets the same split (block ``mem_block``) and the two sums are weighted so that
the objective is the multi-resource FR times a constant.

Order. A plan is applied one migration at a time and every intermediate placement must be allowed too: two VMs that
can only trade places simultaneously (neither fits where the other is until the other leaves) make a final
placement that no order reaches. :func:`solve` therefore works in iterations. It solves the placement model and
orders its moves (by their rounds, below, else by :func:`order_moves`), replaying them under the simulator's rules.
If every move applies, the plan is returned. If some wait for each other, the nodes (and anti-affinity PMs) where
they are blocked are sequenced and the model is solved again. Sequencing: each VM that may move there gets a round
``t[v]`` in ``0 .. R-1`` (``R`` = MNL, or the number of VMs that may move if smaller); in round ``t`` all moves of
the round arrive (time ``2 t``) before any of them leaves (time ``2 t + 1``), and a cumulative constraint per
sequenced node (CPU and memory) and a no-overlap per sequenced anti-affinity group and PM keep it within capacity,
and within one VM of a group, at all times. The moves of a round can be applied in any order, and any sequence of
at most MNL moves that moves each VM at most once is such a schedule (one move per round), so these constraints cut
off no single-hop plan; each iteration sequences at least one more node, so the iterations end with an applicable
plan.

What the status and bound hold for (``scope``). When the first model's plan applies as it is, the placement model
is a relaxation of every plan (any sequence of at most MNL moves ends in a placement with at most MNL VMs away), so
``optimal`` and ``bound_fr`` hold for all plans. Once nodes are sequenced they hold for **single-hop plans** (each
VM moved at most once, straight to its final place); a plan that parks a VM and moves it again (at least three
migrations for two VMs; at MNL 1 and 2 every plan is single-hop) can do better. A restricted model
(``candidates``/``destinations``) restricts both to its VMs and destinations.

Never worse than the hint. :func:`solve` replays the hint's plan (``hint_plan``, a sequence of moves; by default
the hinted placement's moves in the order :func:`order_moves` finds) and returns it when it is better than the
model's applicable plan (``source = "hint"``, status ``feasible``): a multi-hop plan, or a model stopped by its
time limit before reaching the hint. A model out of time with a plan that does not apply in full returns the moves
of it that apply, if that is better than the hint. ``fr`` is the FR of the returned plan as applied, ``model_fr``
and ``bound_fr`` the last model's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

MEM_SCALE = 1024  # memory in MiB inside the model (integers)


@dataclass
class CpSatResult:
    status: str  # "optimal" / "feasible" for the model's class of plans (see ``scope``), else the solver's
    plan: list[tuple[int, int]]  # (vm, slot) in application order
    model_fr: float  # the model's objective as FR (nan without a solution)
    bound_fr: float  # the model's bound as FR
    seconds: float
    unordered: int = 0  # moves of ``plan`` not allowed at their turn (skipped when applied)
    hint_fr: float | None = None  # the hint's plan as applied
    info: dict = field(default_factory=dict)
    fr: float = math.nan  # ``plan`` as applied, move by move
    source: str = "model"  # "model" or "hint" (the hint's plan was better)
    scope: str = ""  # what ``status`` and ``bound_fr`` refer to


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


class _Cluster:
    """A plain replay of moves on the model's integers, under the simulator's rules for one move
    (:func:`.simulator.destination_mask`): a movable VM, a real PM, not its current place, room for its CPU and
    memory on the destination node (both nodes, half each, for a double-NUMA VM, on an even slot), no other VM
    of its anti-affinity group on the destination PM."""

    def __init__(self, a: dict, cap_c: np.ndarray, cap_m: np.ndarray):
        self.a, self.cap_c, self.cap_m = a, cap_c, cap_m
        self.real = np.repeat(a["pm_mask"], 2)
        self.pos = {int(v): i for i, v in enumerate(a["index"])}
        self.slot = own_slots(a).copy()
        self.dbl = a["double"]
        cpu = np.rint(a["cpu"]).astype(np.int64)
        mem = np.rint(a["mem"] * MEM_SCALE).astype(np.int64)
        self.need_c = np.where(self.dbl, cpu // 2, cpu)
        self.need_m = np.where(self.dbl, mem // 2, mem)
        S = len(cap_c)
        self.uc, self.um = np.zeros(S, dtype=np.int64), np.zeros(S, dtype=np.int64)
        for i in range(len(cpu)):
            for k in self.nodes(i, self.slot[i]):
                self.uc[k] += self.need_c[i]
                self.um[k] += self.need_m[i]

    def nodes(self, i: int, s: int) -> tuple[int, ...]:
        return (s, s + 1) if self.dbl[i] else (s,)

    def allowed(self, v: int, s: int) -> bool:
        return not self.blocking(v, s)

    def blocking(self, v: int, s: int) -> list:
        """What keeps the move from being allowed now: ``[]`` if it is allowed, else the nodes ``("node", k)``
        short of room and the anti-affinity PMs ``("group", g, p)`` in its way (``("rule",)`` for the rest)."""
        i = self.pos.get(int(v))
        if i is None or not self.a["movable"][i] or not 0 <= s < len(self.cap_c) or not self.real[s]:
            return [("rule",)]
        if s == self.slot[i] or (self.dbl[i] and s % 2):
            return [("rule",)]
        out = []
        for k in self.nodes(i, s):
            if self.uc[k] + self.need_c[i] > self.cap_c[k] or self.um[k] + self.need_m[i] > self.cap_m[k]:
                out.append(("node", int(k)))
        g = self.a["group"]
        if g[i] >= 0:
            others = np.flatnonzero((g == g[i]) & (np.arange(len(g)) != i))
            if (self.slot[others] // 2 == s // 2).any():
                out.append(("group", int(g[i]), int(s // 2)))
        return out

    def move(self, v: int, s: int) -> None:
        i = self.pos[int(v)]
        for k in self.nodes(i, self.slot[i]):
            self.uc[k] -= self.need_c[i]
            self.um[k] -= self.need_m[i]
        for k in self.nodes(i, s):
            self.uc[k] += self.need_c[i]
            self.um[k] += self.need_m[i]
        self.slot[i] = s

    def replay(self, plan) -> tuple[list[tuple[int, int]], int]:
        """Apply ``plan`` in order, skipping a move not allowed at its turn: (moves applied, moves skipped)."""
        done = []
        for v, s in plan:
            if self.allowed(v, s):
                self.move(v, s)
                done.append((int(v), int(s)))
        return done, len(plan) - len(done)


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
    hint_plan: list[tuple[int, int]] | None = None,
) -> CpSatResult:
    """Solve scenario ``b`` of ``state`` (the snapshot). ``hint``: final slot of some VMs (by VM index);
    ``hint_plan``: the hint as a sequence of moves (VM index, slot), which the result is never worse than
    (without it, the hinted placement's moves in the order :func:`order_moves` finds).

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
    pos = {int(v): i for i, v in enumerate(a["index"])}
    if hint_plan is not None and hint is None:  # the hinted placement is where the hint's plan ends
        c0 = _Cluster(a, cap_c, cap_m)
        c0.replay(hint_plan)
        hint = {int(a["index"][i]): int(c0.slot[i]) for i in range(n) if c0.slot[i] != own[i]}
    allowed = _restriction(state, b, a, block, objective, mem_block, candidates, destinations, hint)
    slot_ok_s = real & (cap_c > 0)
    slots_of = []
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
        slots_of.append([int(s) for s in slots])
    free_c = int((cap_c[real]).sum() - cpu.sum())
    free_m = int((cap_m[real]).sum() - mem.sum())
    if objective == "multi":
        # FR = (sum r / Fc + sum rm / Fm) / 2, scaled by 2 Fc Fm (divided by their gcd) to integers
        gcd = math.gcd(max(free_c, 1), max(free_m, 1))
        wc, wm = max(free_m, 1) // gcd, max(free_c, 1) // gcd
        to_fr = lambda obj: obj * gcd / (2.0 * max(free_c, 1) * max(free_m, 1))
    else:
        wc, wm = 1, 0
        to_fr = lambda obj: obj / max(free_c, 1)

    def build(seq: set):
        """The placement model, with the moves sequenced on the nodes and anti-affinity PMs in ``seq``."""
        m = cp_model.CpModel()
        node_c = [[] for _ in range(S)]
        node_m = [[] for _ in range(S)]
        x: dict[tuple[int, int], object] = {}
        stay = []
        for i in range(n):
            lits = []
            for s in slots_of[i]:
                v = m.NewBoolVar("")
                x[i, s] = v
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
        m.Minimize(wc * sum(rs) + (wm * sum(rms) if rms else 0))
        rounds, R = _sequence(m, a, x, stay, cap_c, cap_m, mnl, seq) if seq else ({}, 0)
        return m, x, rounds, R

    def applied(plan) -> tuple[list[tuple[int, int]], list, int]:
        """``plan`` replayed move by move: (moves applied, the moves skipped with what blocked each, objective of
        the end placement)."""
        c = _Cluster(a, cap_c, cap_m)
        done, blocked = [], []
        for v, s in plan:
            why = c.blocking(v, s)
            if why:
                blocked.append(why)
            else:
                c.move(v, s)
                done.append((int(v), int(s)))
        fc, fm = (cap_c - c.uc)[real], (cap_m - c.um)[real]
        return done, blocked, int(wc * (fc % blk).sum() + (wm * (fm % mblk).sum() if wm else 0))

    best_plan, best_obj, source = [], applied([])[2], "model"
    hint_fr = None
    if hint is not None:
        target = own.copy()
        for v, s in hint.items():
            if int(v) in pos:
                target[pos[int(v)]] = int(s)
        if hint_plan is None:
            moves = [(int(a["index"][i]), int(target[i])) for i in range(n) if target[i] != own[i]]
            hint_plan = order_moves(a, moves, cap_c, cap_m, P)[0]
        hint_plan, _, hint_obj = applied(hint_plan)
        hint_fr = float(to_fr(hint_obj))
        if hint_obj < best_obj:
            best_plan, best_obj, source = hint_plan, hint_obj, "hint"
    warm = best_plan  # an applicable plan to start from (the hint's)
    seq: set = set()
    name, model_fr, bound_fr, unordered = "unknown", math.nan, math.nan, 0
    info = {"iterations": 0, "sequenced": 0}
    while True:
        m, x, rounds, R = build(seq)
        info["iterations"] += 1
        info["variables"] = len(x)
        c = _Cluster(a, cap_c, cap_m)  # the warm start: its placement, and one move per round
        c.replay(warm)
        for (i, s), var in x.items():
            m.AddHint(var, int(c.slot[i] == s))
        last = {pos[v]: k for k, (v, _) in enumerate(warm)}
        for i, t in rounds.items():
            m.AddHint(t, min(last[i], R - 1) if i in last and c.slot[i] != own[i] else 0)
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = max(float(time_limit) - (time.perf_counter() - t0), 1e-3)
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
        bound_fr = float(to_fr(solver.BestObjectiveBound())) if name in ("optimal", "feasible", "unknown") else math.nan
        if name not in ("optimal", "feasible"):
            model_fr = math.nan
            break
        model_fr = float(to_fr(solver.ObjectiveValue()))
        final = own.copy()
        for (i, s), var in x.items():
            if solver.BooleanValue(var):
                final[i] = s
        moved = sorted(
            (i for i in range(n) if final[i] != own[i]),
            key=lambda i: (solver.Value(rounds[i]) if i in rounds else 0, i),
        )
        plan = [(int(a["index"][i]), int(final[i])) for i in moved]
        done, blocked, obj = applied(plan)
        if blocked:  # the rounds leave an unsequenced node short: a greedy order may still apply every move
            other = order_moves(a, plan, cap_c, cap_m, P)[0]
            d2, b2, o2 = applied(other)
            if not b2:
                done, blocked, obj = d2, b2, o2
        if not blocked:
            unordered = 0
            if obj <= best_obj:
                best_plan, best_obj, source = done, obj, "model"
            break
        # some moves wait for each other on nodes (or PMs) without sequence: sequence those, solve again
        if obj < best_obj:
            best_plan, best_obj, source = done, obj, "model"
        warm = best_plan
        new = set(w for why in blocked for w in why) - seq
        if not new or time.perf_counter() - t0 >= time_limit:
            name = "feasible"  # out of time: the best applicable plan found
            break
        seq |= new
        info["sequenced"] = len(seq)
    if source == "hint":
        name = "feasible"
    info["wall"] = time.perf_counter() - t0
    if seq:
        scope = "single-hop plans (each VM moved at most once), "
    else:
        scope = "all plans (the placement model is a relaxation of every sequence of at most MNL moves), "
    scope += "full model" if allowed is None else f"restricted model ({candidates} VMs x {destinations} destinations)"
    return CpSatResult(
        name,
        best_plan,
        model_fr,
        bound_fr,
        time.perf_counter() - t0,
        unordered,
        hint_fr,
        info,
        float(to_fr(best_obj)),
        source,
        scope,
    )


def _sequence(m, a, x, stay, cap_c, cap_m, mnl, seq: set) -> tuple[dict, int]:
    """Rounds of the moves (see the module docstring) on the nodes ``("node", k)`` and anti-affinity PMs
    ``("group", g, p)`` in ``seq``: ``{VM position: round variable}`` for the VMs that may move there or away,
    and the number of rounds ``R``. Time runs ``0 .. 2R``: a VM that moves in round ``t`` occupies its old
    node(s) over ``[0, 2t + 1)`` (over ``[0, 2R)`` if it stays) and its new ones over ``[2t, 2R)``; a cumulative
    constraint per node and resource (capacity less what VMs that cannot move use there), and a no-overlap per
    anti-affinity group and PM, keep every step within the rules. A node where every possible arrival fits in
    its free room at the start needs none (its final constraint holds at every step)."""
    n = len(stay)
    own = own_slots(a)
    dbl = a["double"]
    cpu = np.rint(a["cpu"]).astype(np.int64)
    mem = np.rint(a["mem"] * MEM_SCALE).astype(np.int64)
    need = (np.where(dbl, cpu // 2, cpu), np.where(dbl, mem // 2, mem))
    S = len(cap_c)
    slots_of = [[] for _ in range(n)]
    for i, s in x:
        slots_of[i].append(s)
    mover = np.array([len(slots_of[i]) > 1 for i in range(n)], dtype=bool)
    R = max(1, min(int(mnl), int(mover.sum())))
    H = 2 * R
    nodes = lambda i, s: (s, s + 1) if dbl[i] else (s,)
    fixed = [np.zeros(S, dtype=np.int64), np.zeros(S, dtype=np.int64)]  # used by VMs that cannot move
    used = [np.zeros(S, dtype=np.int64), np.zeros(S, dtype=np.int64)]
    stays, arrivals = [[] for _ in range(S)], [[] for _ in range(S)]  # VM positions (and slots)
    for i in range(n):
        for k in nodes(i, own[i]):
            for r in range(2):
                used[r][k] += need[r][i]
                if not mover[i]:
                    fixed[r][k] += need[r][i]
            if mover[i]:
                stays[k].append(i)
        if mover[i]:
            for s in slots_of[i]:
                if s != own[i]:
                    for k in nodes(i, s):
                        arrivals[k].append((i, s))
    rounds: dict[int, object] = {}
    made: dict = {}

    def round_of(i):
        if i not in rounds:
            rounds[i] = m.NewIntVar(0, R - 1, "")
            m.Add(rounds[i] == 0).OnlyEnforceIf(stay[i])
        return rounds[i]

    def resident(i, lit):  # on its old node(s) (or PM) over [0, 2t + 1) if ``lit`` (it left), else all along
        key = ("res", i, lit.Index())
        if key not in made:
            t = round_of(i)
            end = m.NewIntVar(1, H, "")
            m.Add(end == 2 * t + 1).OnlyEnforceIf(lit)
            m.Add(end == H).OnlyEnforceIf(lit.Not())
            made[key] = m.NewIntervalVar(0, end, end, "")
        return made[key]

    def arrival(i, s):  # on slot ``s`` over [2t, 2R) if it ends there
        key = ("arr", i, s)
        if key not in made:
            t = round_of(i)
            made[key] = m.NewOptionalIntervalVar(2 * t, H - 2 * t, H, x[i, s], "")
        return made[key]

    for k in range(S):
        if ("node", k) not in seq or not arrivals[k] or not stays[k]:
            continue
        for r, cap in enumerate((cap_c, cap_m)):
            free = int(cap[k] - used[r][k])
            if sum(int(need[r][i]) for i, _ in arrivals[k]) <= free:
                continue  # every arrival fits even before any departure
            ivs = [resident(i, stay[i].Not()) for i in stays[k]] + [arrival(i, s) for i, s in arrivals[k]]
            dem = [int(need[r][i]) for i in stays[k]] + [int(need[r][i]) for i, _ in arrivals[k]]
            m.AddCumulative(ivs, dem, int(cap[k] - fixed[r][k]))
    groups = a["group"]
    for key in seq:
        if key[0] != "group":
            continue
        _, gid, p = key
        members = np.flatnonzero(groups == gid)
        on_p = (2 * p, 2 * p + 1)
        ins = [(i, s) for i in members if mover[i] and own[i] // 2 != p for s in on_p if (i, s) in x]
        home = [i for i in members if own[i] // 2 == p]
        if not ins or not home or not all(mover[i] for i in home):
            continue  # no arrival, or a member that stays for good (the final constraint excludes arrivals)
        ivs = []
        for i in home:
            gone = m.NewBoolVar("")  # it leaves the PM (a move to its other node keeps it there)
            m.Add(sum(x[i, s] for s in on_p if (i, s) in x) + gone == 1)
            ivs.append(resident(i, gone))
        m.AddNoOverlap(ivs + [arrival(i, s) for i, s in ins])
    return rounds, R


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
    """Order simultaneous moves so that each is allowed when applied: round after round, every pending move
    that is allowed at that moment, in the given order; moves that stay blocked (a cycle without slack, such as
    two VMs trading places between two full nodes) are put last. Returns the plan and how many were blocked.
    (The model's own rounds order its plans; this orders a hinted placement whose sequence is not known.)"""
    c = _Cluster(a, np.asarray(cap_c), np.asarray(cap_m))
    pending = [(int(v), int(s)) for v, s in moves]
    plan = []
    progress = True
    while pending and progress:
        progress = False
        rest = []
        for v, s in pending:
            if c.allowed(v, s):
                c.move(v, s)
                plan.append((v, s))
                progress = True
            else:
                rest.append((v, s))
        pending = rest
    return plan + pending, len(pending)
