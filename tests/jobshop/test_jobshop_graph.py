"""The disjunctive graph view: node and edge counts from the instance, edges consistent with the schedule."""

import pytest
import torch

from opsrl.jobshop import instances as I
from opsrl.jobshop import simulator as S
from opsrl.jobshop.rules import DispatchRule

pytest.importorskip("torch_geometric")


def _run(p, sc, steps):
    st = p.initial_state(sc)
    rule = DispatchRule("spt")
    for t in range(steps):
        st, _ = p.transition(p.post_decision(st, rule(st))[0], sc, t)
    return st


def test_graph_counts_and_edges():
    insts = [I.load("ft06"), I.load("la01")]
    p = S.JobShop(insts)
    sc = p.test_set()
    g0 = p.graph(p.initial_state(sc))
    assert g0.num_nodes == 36 + 50 and g0.ptr.tolist() == [0, 36, 86]
    assert g0.edge_index.shape[1] == (36 - 6) + (50 - 10)
    # all disjunctions open: both directions between every two operations of a machine
    pairs = sum(c * (c - 1) for inst in insts for c in torch.bincount(torch.tensor(inst.machine).flatten()).tolist())
    assert g0.machine_edge_index.shape[1] == pairs

    st = _run(p, sc, p.periods)
    g = p.graph(st)
    # complete schedules: only machine sequences remain, one edge less than operations per machine
    assert g.machine_edge_index.shape[1] == sum(i.operations - i.machines for i in insts)
    start = torch.cat([st["start"][b, : i.jobs, : len(i.machine[0])].reshape(-1) for b, i in enumerate(insts)])
    mach = torch.cat([torch.tensor(i.machine).reshape(-1) for i in insts])
    u, v = g.machine_edge_index
    assert (mach[u] == mach[v]).all() and (start[u] < start[v]).all()


def test_candidates_are_the_mask():
    p = S.JobShop([I.load("ta01")])
    sc = p.test_set()
    st = _run(p, sc, 40)
    g = p.graph(st)
    assert sorted(g.job[g.candidate].tolist()) == st["mask"][0].nonzero().flatten().tolist()
    assert g.x.shape == (225, 9) and torch.isfinite(g.x).all()
