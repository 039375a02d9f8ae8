"""Cluster snapshots: the data of one cluster (numpy), their checks, synthetic generators, and batching.

A :class:`Snapshot` is one cluster: ``cap_cpu``/``cap_mem`` ``[P, 2]`` (per NUMA node), and per VM
``vm_cpu``, ``vm_mem`` (totals; a double-NUMA VM uses half on each node), ``vm_double``, ``vm_pm``,
``vm_node`` (0 or 1; 2 for double-NUMA VMs), ``vm_movable``, ``vm_group`` (-1: none) and ``vm_flavour``
(an index into ``flavours``). Memory is in GiB.

Generators (:data:`GENERATORS`) draw snapshots that match the published statistics of the VMR2L data
(see ``docs/vm.md`` for the source of every number): VM sizes from the ECS flavour ladder whose names the
VMR2L code lists (``vm_type_index``: ``ecs.c1.large`` ... ``ecs.c1.22xlarge``, 2 to 88 vCPUs), with
88.27% of VMs at 16 cores or fewer, NUMA nodes of 44 cores (a PM is the largest flavour, 88 cores), and
PMs filled towards a target CPU allocation drawn so that about 81% of PMs are above 80%.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..core import ConfigError


@dataclass
class Snapshot:
    cap_cpu: np.ndarray
    cap_mem: np.ndarray
    vm_cpu: np.ndarray
    vm_mem: np.ndarray
    vm_double: np.ndarray
    vm_pm: np.ndarray
    vm_node: np.ndarray
    vm_movable: np.ndarray | None = None
    vm_group: np.ndarray | None = None
    vm_flavour: np.ndarray | None = None
    flavours: list[str] = field(default_factory=list)
    name: str = "snapshot"

    def __post_init__(self):
        V = len(self.vm_cpu)
        if self.vm_movable is None:
            self.vm_movable = np.ones(V, dtype=bool)
        if self.vm_group is None:
            self.vm_group = -np.ones(V, dtype=np.int64)
        if self.vm_flavour is None:
            self.vm_flavour = np.zeros(V, dtype=np.int64)

    @property
    def P(self) -> int:
        return len(self.cap_cpu)

    @property
    def V(self) -> int:
        return len(self.vm_cpu)

    def usage(self) -> tuple[np.ndarray, np.ndarray]:
        """CPU and memory used on each node ``[P, 2]``."""
        out = []
        for x in (self.vm_cpu, self.vm_mem):
            u = np.zeros((self.P, 2))
            half = np.where(self.vm_double, 0.5, 1.0) * x
            n0 = np.where(self.vm_double, 0, np.minimum(self.vm_node, 1))
            np.add.at(u, (self.vm_pm, n0), half)
            np.add.at(u, (self.vm_pm[self.vm_double], 1), half[self.vm_double])
            out.append(u)
        return out[0], out[1]


# the largest CPU count (cores) and memory (GiB) of one NUMA node or VM: beyond any machine, and far enough
# below float32's range that free capacities, their sums and the fragment rate stay finite
MAX_NODE_SIZE = 1e6


def check_snapshot(s: Snapshot, source: str, key: str = "file") -> Snapshot:
    """Stop with a ConfigError for data the simulator cannot accept (NaN, negative or absurd sizes, a VM larger
    than every node, a placement over capacity, a bad host or node index, anti-affinity broken at the start)."""
    arrays = {"cap_cpu": s.cap_cpu, "cap_mem": s.cap_mem, "vm_cpu": s.vm_cpu, "vm_mem": s.vm_mem}
    for k, a in arrays.items():
        a = np.asarray(a, dtype=float)
        if not np.isfinite(a).all():
            raise ConfigError(source, key, f"{s.name}: {k} has NaN or infinite values; finite numbers are allowed")
        if (a < 0).any():
            raise ConfigError(source, key, f"{s.name}: {k} has negative values; sizes must be >= 0")
        if a.size and a.max() > MAX_NODE_SIZE:
            unit = "CPUs" if "cpu" in k else "GiB"
            raise ConfigError(
                source,
                key,
                f"{s.name}: {k} has a value of {a.max():g}; sizes from 0 to {MAX_NODE_SIZE:g} {unit} per NUMA node "
                "or VM are allowed",
            )
    if s.P == 0:
        raise ConfigError(source, key, f"{s.name}: no physical machines; at least one is required")
    if s.V and ((s.vm_pm < 0).any() or (s.vm_pm >= s.P).any()):
        raise ConfigError(source, key, f"{s.name}: a VM's host is not one of the {s.P} PMs")
    if s.V and ((s.vm_node < 0).any() or (s.vm_node > 2).any()):
        raise ConfigError(source, key, f"{s.name}: a VM's NUMA node must be 0 or 1 (or both for double-NUMA VMs)")
    big_c = np.where(s.vm_double, s.vm_cpu / 2 > s.cap_cpu.min(1).max(initial=0), s.vm_cpu > s.cap_cpu.max(initial=0))
    big_m = np.where(s.vm_double, s.vm_mem / 2 > s.cap_mem.min(1).max(initial=0), s.vm_mem > s.cap_mem.max(initial=0))
    if (big_c | big_m).any():
        i = int(np.flatnonzero(big_c | big_m)[0])
        raise ConfigError(
            source,
            key,
            f"{s.name}: VM {i} ({s.vm_cpu[i]:g} CPU, {s.vm_mem[i]:g} GiB) is larger than "
            "every NUMA node; a VM must fit a node (half of it, for double-NUMA VMs)",
        )
    uc, um = s.usage()
    over = (uc > s.cap_cpu + 1e-9) | (um > s.cap_mem + 1e-9)
    if over.any():
        p, n = map(int, np.argwhere(over)[0])
        raise ConfigError(
            source,
            key,
            f"{s.name}: initial placement over capacity on PM {p} node {n} "
            f"(CPU {uc[p, n]:g} of {s.cap_cpu[p, n]:g}, memory {um[p, n]:g} of {s.cap_mem[p, n]:g}); "
            "the VMs on a node must fit its capacity",
        )
    g = s.vm_group
    if (g >= 0).any():
        pairs = np.stack([g[g >= 0], s.vm_pm[g >= 0]], 1)
        if len(np.unique(pairs, axis=0)) < len(pairs):
            raise ConfigError(source, key, f"{s.name}: two VMs of one anti-affinity group share a PM at the start")
    return s


# --- generators ------------------------------------------------------------------------------------
FLAVOUR_CPU = [2, 4, 8, 16, 32, 64, 88]
FLAVOUR_NAMES = [
    "ecs.c1.large",
    "ecs.c1.xlarge",
    "ecs.c1.2xlarge",
    "ecs.c1.4xlarge",
    "ecs.c1.8xlarge",
    "ecs.c1.16xlarge",
    "ecs.c1.22xlarge",
]

# Medium: 279 PMs and 2,089 VMs (VMR2L dataset_meta_info 'M')
_MEDIUM = dict(
    pms=279,
    vms=2089,
    node_cpu=44,
    node_mem=180,
    cpu_probs=[0.24, 0.30, 0.22, 0.1227, 0.085, 0.025, 0.0073],
    mem_per_cpu=[2, 4],
    mem_probs=[0.5, 0.5],
    double_32=0.5,
    high=0.81,
    util=(13.0, 1.9),
    low=(0.15, 0.8),
)

GENERATORS = {
    "medium": _MEDIUM,
    # Large: 1,176 PMs and 4,546 VMs (dataset_meta_info 'L'), the same flavour mix (so a lower allocation)
    "large": {**_MEDIUM, "pms": 1176, "vms": 4546},
    # multi-resource: 280 PMs and 1,200 VMs (dataset_meta_info 'multi'); larger, memory-heavier VMs so that
    # memory binds too (the VMR2L code marks its multi-resource statistics as placeholders)
    "multi_resource": dict(
        pms=280,
        vms=1200,
        node_cpu=44,
        node_mem=180,
        cpu_probs=[0.08, 0.14, 0.26, 0.4027, 0.08, 0.03, 0.0073],
        mem_per_cpu=[2, 4, 8],
        mem_probs=[0.3, 0.4, 0.3],
        double_32=0.5,
        high=0.81,
        util=(13.0, 1.9),
        low=(0.15, 0.8),
    ),
    # tiny: a handful of small VMs on three PMs of two 16-core nodes, for exact checks by enumeration
    "tiny": dict(
        pms=3,
        vms=8,
        node_cpu=16,
        node_mem=64,
        cpu_probs=[0.4, 0.4, 0.2, 0, 0, 0, 0],
        mem_per_cpu=[2, 4],
        mem_probs=[0.5, 0.5],
        double_32=0.5,
        high=0.5,
        util=(6.0, 2.0),
        low=(0.3, 0.7),
        double_share=0.25,
    ),
}


def generate(
    kind: str,
    rng: np.random.Generator,
    pms: int = 0,
    vms: int = 0,
    immovable: float = 0.0,
    groups: int = 0,
    group_size: int = 0,
    name: str = "",
) -> Snapshot:
    """One synthetic snapshot of generator ``kind``: ``vms`` VMs drawn from the flavour mix are placed,
    largest first, each on a random PM where it fits under that PM's target CPU allocation (a fraction
    ``high`` of PMs draw it from Beta(util), the others uniformly from ``low``), else on a random PM
    where it fits at all (a VM that fits nowhere is dropped); a single-NUMA VM goes to a random node of
    its PM that fits."""
    g = GENERATORS[kind]
    P, V = pms or g["pms"], vms or g["vms"]
    C, M = float(g["node_cpu"]), float(g["node_mem"])
    hi = rng.random(P) < g["high"]
    target = np.where(hi, rng.beta(*g["util"], size=P), rng.uniform(*g["low"], size=P)) * 2 * C
    probs = np.asarray(g["cpu_probs"], dtype=float)
    f = rng.choice(len(FLAVOUR_CPU), size=V, p=probs / probs.sum())
    c = np.asarray(FLAVOUR_CPU, dtype=float)[f]
    mem = c * rng.choice(g["mem_per_cpu"], size=V, p=g["mem_probs"])
    d = (c > C) | ((c == 32) & (rng.random(V) < g["double_32"]))
    if "double_share" in g:
        d = d | (rng.random(V) < g["double_share"])
    d = d & (c / 2 <= C)
    order = np.lexsort((rng.random(V), -c))
    free, freem, used = np.full((P, 2), C), np.full((P, 2), M), np.zeros(P)
    pm_of, node_of = -np.ones(V, dtype=np.int64), np.zeros(V, dtype=np.int64)
    for v in order:
        cv, mv = c[v], mem[v]
        if d[v]:
            fit = (free.min(1) >= cv / 2) & (freem.min(1) >= mv / 2)
        else:
            fit_n = (free >= cv) & (freem >= mv)
            fit = fit_n.any(1)
        pref = fit & (used + cv <= target)
        cand = np.flatnonzero(pref if pref.any() else fit)
        if len(cand) == 0:
            continue
        p = int(cand[rng.integers(len(cand))])
        used[p] += cv
        if d[v]:
            free[p] -= cv / 2
            freem[p] -= mv / 2
            node_of[v] = 2
        else:
            nodes = np.flatnonzero(fit_n[p])
            n = int(nodes[rng.integers(len(nodes))])
            free[p, n] -= cv
            freem[p, n] -= mv
            node_of[v] = n
        pm_of[v] = p
    keep = rng.permutation(np.flatnonzero(pm_of >= 0))
    s = Snapshot(
        np.full((P, 2), C),
        np.full((P, 2), M),
        c[keep],
        mem[keep],
        d[keep],
        pm_of[keep],
        node_of[keep],
        vm_flavour=f[keep].astype(np.int64),
        flavours=list(FLAVOUR_NAMES),
        name=name or kind,
    )
    n = s.V
    if immovable > 0:
        s.vm_movable = rng.random(n) >= immovable
    if groups > 0 and group_size > 1:
        s.vm_group = _groups(s, rng, groups, group_size)
    return s


def _groups(s: Snapshot, rng, groups: int, size: int) -> np.ndarray:
    """Anti-affinity groups of ``size`` VMs each, on distinct PMs (so the start is valid)."""
    g = -np.ones(s.V, dtype=np.int64)
    free_vms = rng.permutation(s.V)
    pos = 0
    for k in range(groups):
        pms_used: set[int] = set()
        members = []
        while pos < len(free_vms) and len(members) < size:
            v = int(free_vms[pos])
            pos += 1
            if int(s.vm_pm[v]) not in pms_used:
                pms_used.add(int(s.vm_pm[v]))
                members.append(v)
        g[members] = k
    return g


# --- batching --------------------------------------------------------------------------------------
def stack(snaps: list[Snapshot], dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Tensors ``[n, ...]`` of the snapshots padded to the largest ``P`` and ``V``, with the kind tables."""
    n = len(snaps)
    P = max(s.P for s in snaps)
    V = max(max(s.V for s in snaps), 1)
    out = {
        "cap_cpu": torch.zeros(n, P, 2, dtype=dtype),
        "cap_mem": torch.zeros(n, P, 2, dtype=dtype),
        "pm_mask": torch.zeros(n, P, dtype=torch.bool),
        "vm_cpu": torch.zeros(n, V, dtype=dtype),
        "vm_mem": torch.zeros(n, V, dtype=dtype),
        "vm_double": torch.zeros(n, V, dtype=torch.bool),
        "vm_mask": torch.zeros(n, V, dtype=torch.bool),
        "vm_movable": torch.zeros(n, V, dtype=torch.bool),
        "vm_group": -torch.ones(n, V, dtype=torch.long),
        "vm_flavour": torch.zeros(n, V, dtype=torch.long),
        "vm_pm0": torch.zeros(n, V, dtype=torch.long),
        "vm_node0": torch.zeros(n, V, dtype=torch.long),
    }
    for i, s in enumerate(snaps):
        out["cap_cpu"][i, : s.P] = torch.as_tensor(s.cap_cpu, dtype=dtype)
        out["cap_mem"][i, : s.P] = torch.as_tensor(s.cap_mem, dtype=dtype)
        out["pm_mask"][i, : s.P] = True
        V_i = s.V
        for k, a in (("vm_cpu", s.vm_cpu), ("vm_mem", s.vm_mem)):
            out[k][i, :V_i] = torch.as_tensor(a, dtype=dtype)
        out["vm_double"][i, :V_i] = torch.as_tensor(s.vm_double, dtype=torch.bool)
        out["vm_mask"][i, :V_i] = True
        out["vm_movable"][i, :V_i] = torch.as_tensor(s.vm_movable, dtype=torch.bool)
        out["vm_group"][i, :V_i] = torch.as_tensor(s.vm_group, dtype=torch.long)
        out["vm_flavour"][i, :V_i] = torch.as_tensor(s.vm_flavour, dtype=torch.long)
        out["vm_pm0"][i, :V_i] = torch.as_tensor(s.vm_pm, dtype=torch.long)
        out["vm_node0"][i, :V_i] = torch.as_tensor(s.vm_node, dtype=torch.long)
    out.update(kinds(out))
    return out


def kinds(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The kind of every VM (distinct (cpu, mem, double) over the batch; a grouped VM is a kind of its own)
    and the kind tables ``[n, K]`` (padding kinds have zero CPU and so never fit)."""
    n, V = d["vm_cpu"].shape
    grouped = (d["vm_group"] >= 0) & d["vm_mask"]
    key = torch.stack([d["vm_cpu"].double(), d["vm_mem"].double(), d["vm_double"].double()], -1).reshape(-1, 3)
    uniq, inv = torch.unique(key, dim=0, return_inverse=True)
    base = uniq.shape[0]
    rank = grouped.long().cumsum(1) - 1
    G = int(grouped.sum(1).max()) if grouped.any() else 0
    kind = torch.where(grouped, base + rank, inv.reshape(n, V))
    K = base + G
    kc = uniq[:, 0].to(d["vm_cpu"].dtype).expand(n, -1)
    km = uniq[:, 1].to(d["vm_cpu"].dtype).expand(n, -1)
    kd = (uniq[:, 2] > 0.5).expand(n, -1)
    kv = -torch.ones(n, K, dtype=torch.long)
    ext_c = torch.zeros(n, G, dtype=d["vm_cpu"].dtype)
    ext_m = torch.zeros_like(ext_c)
    ext_d = torch.zeros(n, G, dtype=torch.bool)
    if G:
        b, v = grouped.nonzero(as_tuple=True)
        r = rank[b, v]
        ext_c[b, r], ext_m[b, r], ext_d[b, r] = d["vm_cpu"][b, v], d["vm_mem"][b, v], d["vm_double"][b, v]
        kv[b, base + r] = v
    n_groups = (d["vm_group"].amax(1) + 1).clamp_min(0)
    return {
        "vm_kind": kind,
        "kind_cpu": torch.cat([kc, ext_c], 1).contiguous(),
        "kind_mem": torch.cat([km, ext_m], 1).contiguous(),
        "kind_double": torch.cat([kd, ext_d], 1).contiguous(),
        "kind_vm": kv,
        "n_groups": n_groups,
    }
