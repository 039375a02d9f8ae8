"""CP-SAT against brute-force enumeration on tiny snapshots (MNL 1 and 2), and the order of its plans."""

import itertools

import numpy as np
import pytest
import torch

from opsrl.core import Scenarios
from opsrl.vm import cpsat
from opsrl.vm import simulator as sim
from opsrl.vm.problem import build
from opsrl.vm.snapshots import generate, stack

torch.set_num_threads(1)


def final_feasible(a, slots, cap_c, cap_m, P):
    """Plain check of a final placement (slot per VM) of the arrays of :func:`cpsat._arrays`."""
    uc, um = np.zeros(2 * P), np.zeros(2 * P)
    for i, s in enumerate(slots):
        if a["double"][i]:
            if s % 2:
                return False
            for k in (s, s + 1):
                uc[k] += a["cpu"][i] / 2
                um[k] += a["mem"][i] / 2
        else:
            uc[s] += a["cpu"][i]
            um[s] += a["mem"][i]
    if (uc > cap_c + 1e-9).any() or (um > cap_m + 1e-9).any():
        return False
    g = a["group"]
    for gid in set(g[g >= 0].tolist()):
        pms = [slots[i] // 2 for i in np.flatnonzero(g == gid)]
        if len(pms) != len(set(pms)):
            return False
    return True, uc


def brute_force(a, cap_c, cap_m, P, mnl, block):
    """The least FR over all final placements with at most ``mnl`` VMs away from their place."""
    own = cpsat.own_slots(a)
    n = len(own)
    real = np.repeat(a["pm_mask"], 2)
    free_total = cap_c[real].sum() - a["cpu"].sum()
    best = None
    movable = [i for i in range(n) if a["movable"][i]]
    for k in range(mnl + 1):
        for who in itertools.combinations(movable, k):
            options = [
                [s for s in range(2 * P) if real[s] and s != own[i] and (not a["double"][i] or s % 2 == 0)] for i in who
            ]
            for dest in itertools.product(*options):
                slots = own.copy()
                slots[list(who)] = dest
                ok = final_feasible(a, slots, cap_c, cap_m, P)
                if not ok:
                    continue
                uc = ok[1]
                fr = (np.mod(cap_c - uc, block)[real]).sum() / free_total
                best = fr if best is None else min(best, fr)
    return best


@pytest.mark.parametrize("mnl", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpsat_equals_brute_force(mnl, seed):
    rng = np.random.default_rng(100 + seed)
    snap = generate(
        "tiny", rng, pms=3, vms=6, groups=1 if seed == 2 else 0, group_size=2, immovable=0.2 if seed == 1 else 0.0
    )
    p = build({"generator": "tiny", "mnl": mnl, "block": 4.0}, "<test>")
    sc = Scenarios(stack([snap]), "test", 0, mnl)
    s0 = p.initial_state(sc)
    r = cpsat.solve(s0, 0, mnl, 4.0, time_limit=20, workers=1)
    assert r.status == "optimal"
    a = cpsat._arrays(s0, 0)
    P = a["cap_cpu"].shape[0]
    ref = brute_force(a, a["cap_cpu"].reshape(-1), a["cap_mem"].reshape(-1), P, mnl, 4.0)
    assert r.model_fr == pytest.approx(ref, abs=1e-9)
    assert r.bound_fr == pytest.approx(ref, abs=1e-9)
    assert len(r.plan) <= mnl


@pytest.mark.parametrize("seed", range(6))
def test_cpsat_plan_order_is_feasible_step_by_step(seed):
    """Applied one move at a time through the simulator's masks, the ordered plan loses no move and ends at
    the model's FR (and when the order procedure reports a blocked cycle, those moves are the ones skipped)."""
    rng = np.random.default_rng(seed)
    snaps = [generate("tiny", rng, pms=4, vms=10) for _ in range(2)]
    mnl = 4
    p = build({"generator": "tiny", "mnl": mnl, "block": 4.0}, "<test>")
    sc = Scenarios(stack(snaps), "test", 0, mnl)
    s0 = p.initial_state(sc)
    for b in range(2):
        r = cpsat.solve(s0, b, mnl, 4.0, time_limit=10, workers=1)
        state = {k: v[b : b + 1] for k, v in s0.items()}
        for i, (v, s) in enumerate(r.plan):
            ok = sim.move_allowed(state, torch.tensor([v]), torch.tensor([s]))
            assert bool(ok) == (i < len(r.plan) - r.unordered)
            state = sim.apply_move(state, torch.tensor([v]), torch.tensor([s]), ok)
            assert (state["free_cpu"] >= 0).all() and (state["free_mem"] >= 0).all()
        if r.unordered == 0:
            assert p.fr(state).item() == pytest.approx(r.model_fr, abs=1e-6)


@pytest.mark.parametrize("hint", ["greedy", "policy"])
def test_cpsat_solver_through_the_method(hint):
    from opsrl.core import SolveContext, rollout
    from opsrl.vm import METHODS, baselines
    from opsrl.vm import policy as pol

    p = build({"generator": "tiny", "mnl": 2, "block": 4.0, "test": {"scenarios": 4}}, "<test>")
    o = {
        "time_limit": 10.0,
        "workers": 1,
        "seed": 0,
        "warm_start": True,
        "hint": hint,
        "hint_samples": 8,
        "log": False,
        "candidates": 0,
        "destinations": 0,
    }
    out = METHODS["cpsat"].fit(p, o, {}, SolveContext(progress=False))
    sc = p.test_set()
    ev, info = out.evaluate(sc)
    greedy = rollout(p, baselines.Greedy(p), sc).costs.sum(1)
    assert (ev.per_scenario <= greedy.double() + 1e-9).all()  # optimal at MNL 2 beats (or ties) greedy
    assert all(r["status"] == "optimal" for r in info["snapshots"])
    s0 = p.initial_state(sc)
    for b, r in enumerate(info["snapshots"]):  # each row's FR is the plan as applied, never worse than the hint's
        assert r["unordered"] == 0 and r["fr"] <= r["hint_fr"] + 1e-12
        assert r["fr"] == pytest.approx(float(ev.per_scenario[b]) + float(p.fr(s0)[b]), abs=1e-6)
    if hint == "policy":  # ... and the learned plan it started from
        best = pol.best_of(p, pol.load(p), sc, 8)
        assert (ev.per_scenario <= (p.fr(best) - p.fr(s0)).double() + 1e-9).all()
        # brute force is the independent reference: the same optimum whichever plan hinted it
        for b in range(sc.n):
            a = cpsat._arrays(s0, b)
            P = a["cap_cpu"].shape[0]
            ref = brute_force(a, a["cap_cpu"].reshape(-1), a["cap_mem"].reshape(-1), P, 2, 4.0)
            assert float(ev.per_scenario[b]) + float(p.fr(s0)[b]) == pytest.approx(ref, abs=1e-6)


def test_cpsat_multi_resource_equals_enumeration():
    """The multi-resource objective (mean of CPU and memory FR, memory blocks of 16 GiB) against all single
    moves and pairs of moves, each evaluated through the simulator."""
    rng = np.random.default_rng(7)
    snap = generate("tiny", rng, pms=3, vms=6)
    for mnl in (1, 2):
        p = build({"generator": "tiny", "mnl": mnl, "block": 4.0, "objective": "multi", "mem_block": 16.0}, "<test>")
        sc = Scenarios(stack([snap]), "test", 0, mnl)
        s0 = p.initial_state(sc)
        r = cpsat.solve(s0, 0, mnl, 4.0, "multi", 16.0, time_limit=20, workers=1)
        a = cpsat._arrays(s0, 0)
        P = a["cap_cpu"].shape[0]
        own = cpsat.own_slots(a)
        best = p.fr(s0).item()
        moves = [
            (i, s) for i in range(len(own)) for s in range(2 * P) if s != own[i] and (not a["double"][i] or s % 2 == 0)
        ]
        for combo in itertools.chain(((m,) for m in moves), itertools.combinations(moves, 2) if mnl == 2 else ()):
            if len({i for i, _ in combo}) < len(combo):
                continue
            slots = own.copy()
            for i, s in combo:
                slots[i] = s
            if not final_feasible(a, slots, a["cap_cpu"].reshape(-1), a["cap_mem"].reshape(-1), P):
                continue
            st = s0
            for i, s in combo:  # final placements, so apply without the step-by-step masks
                v = torch.tensor([i])
                st = sim.apply_move(st, v, torch.tensor([s]), torch.tensor([True]))
            best = min(best, p.fr(st).item())
        assert r.status == "optimal" and r.model_fr == pytest.approx(best, abs=1e-6)
