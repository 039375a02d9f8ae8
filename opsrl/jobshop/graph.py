"""The disjunctive graph of job-shop states as a ``torch_geometric`` batch (one graph per scenario).

Nodes are the operations (padding left out). Edges, each a ``[2, E]`` tensor of global node indices:

* ``edge_index``: precedence within a job, operation ``k`` -> ``k + 1``;
* ``machine_edge_index``: for each machine, its scheduled operations in start order (``a -> b`` when
  ``b`` follows ``a``), and, with ``disjunctive=True``, both directions between every two unscheduled
  operations of the machine (the disjunctions still open).

Node features ``x`` (times divided by the largest job's total work, as in :meth:`JobShop.observe`):
nominal duration, scheduled, finished by ``t_now``, next operation of its job, dispatchable now (the
job's ``action_mask``), start time if scheduled (relative to ``t_now``), known end if finished,
remaining nominal work of the job from this operation, earliest known start of the next operation
(relative to ``t_now``). ``job`` and ``scenario`` give each node's job and graph; ``candidate`` marks
the nodes whose job may be dispatched, so a policy can score nodes and pick a job per graph;
``machine_group`` numbers each (scenario, machine) pair, so that a policy can aggregate over a machine's
operations in O(nodes) instead of over the O(n^2) open disjunctions (``disjunctive=False``).
"""

from __future__ import annotations

import torch

from ..core import State

__all__ = ["disjunctive_graph"]


def disjunctive_graph(problem, state: State, disjunctive: bool = True):
    from torch_geometric.data import Batch

    B, J, O = state["duration"].shape
    dev = state["duration"].device
    dtype = state["duration"].dtype
    sc = state["scale"][:, None, None]
    t = state["t_now"][:, None, None]
    k_idx = torch.arange(O, device=dev)
    valid = k_idx < state["n_ops"][..., None]
    nxt = state["next_op"][..., None]
    scheduled = valid & (k_idx < nxt)
    finished = scheduled & (state["end"] <= t)
    is_next = valid & (k_idx == nxt)
    candidate = is_next & state["mask"][..., None]
    jk, mk = problem.known_ready(state)
    est_known = torch.maximum(jk, mk.gather(1, state["m_next"]))[..., None]
    zero = torch.zeros((), dtype=dtype, device=dev)
    feats = torch.stack(
        [
            state["duration"] / sc,
            scheduled.to(dtype),
            finished.to(dtype),
            is_next.to(dtype),
            candidate.to(dtype),
            torch.where(scheduled, (state["start"] - t) / sc, zero),
            torch.where(finished, (state["end"] - t) / sc, zero),
            state["tail"][..., :O] / sc,
            torch.where(is_next, (est_known - t) / sc, zero),
        ],
        dim=-1,
    )

    flat_valid = valid.reshape(-1)
    node_id = (flat_valid.long().cumsum(0) - 1).reshape(B, J, O)
    x = feats.reshape(-1, feats.shape[-1])[flat_valid]
    scen = torch.arange(B, device=dev)[:, None, None].expand(B, J, O)
    job = torch.arange(J, device=dev)[None, :, None].expand(B, J, O)
    n_nodes = int(flat_valid.sum())

    pre = valid[..., :-1] & valid[..., 1:]
    edge_index = torch.stack([node_id[..., :-1][pre], node_id[..., 1:][pre]])

    # machine sequences of scheduled operations: sort by (scenario, machine, start), link neighbours
    M = state["mach_ready"].shape[1]
    group = (scen * M + state["machine"])[scheduled]
    start = state["start"][scheduled]
    ids = node_id[scheduled]
    order = torch.sort(start, stable=True).indices
    order = order[torch.sort(group[order], stable=True).indices]
    g, i = group[order], ids[order]
    same = g[1:] == g[:-1]
    mach = [torch.stack([i[:-1][same], i[1:][same]])]
    if disjunctive:
        open_ = valid & ~scheduled
        if open_.any():
            mo = torch.where(open_, state["machine"], torch.full_like(state["machine"], -1)).reshape(B, J * O)
            pair = (mo[:, :, None] == mo[:, None, :]) & (mo[:, :, None] >= 0)
            pair &= ~torch.eye(J * O, dtype=torch.bool, device=dev)
            b, u, v = pair.nonzero(as_tuple=True)
            nid = node_id.reshape(B, J * O)
            mach.append(torch.stack([nid[b, u], nid[b, v]]))
    machine_edge_index = torch.cat(mach, dim=1)

    batch = scen.reshape(-1)[flat_valid]
    counts = torch.bincount(batch, minlength=B)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long, device=dev), counts.cumsum(0)])
    return Batch(
        x=x,
        edge_index=edge_index,
        machine_edge_index=machine_edge_index,
        batch=batch,
        ptr=ptr,
        job=job.reshape(-1)[flat_valid],
        scenario=batch,
        candidate=candidate.reshape(-1)[flat_valid],
        machine_group=(scen * M + state["machine"]).reshape(-1)[flat_valid],
        num_nodes=n_nodes,
    )
