"""Loaders of cluster snapshots from files: the VMR2L JSON format, the Azure Packing Trace 2020 and the
Huawei-East-1 trace (VMAgent). None of their data is bundled; the tests write small files of each format.

* ``vmr2l``: the JSON the VMR2L environment reads (``cluster_list[].host_info`` with per-NUMA
  ``total_cpu``/``memory_huge_total_mb``, ``cluster_list[].vm_instance`` with ``host_id``, ``numa`` entries
  ``{node, cpu, mem_mb}`` (two entries: a double-NUMA VM) and ``allow_migration``; ``vm_type_list`` the
  flavours). Only ACTIVE hosts are kept; a VM's flavour must be in ``vm_type_list`` when that list is given.
* ``azure``: the Azure Packing Trace 2020 (CC BY 4.0): tables ``vmType`` (``vmTypeId``, ``machineId``,
  ``core``, ``memory`` as fractions of the machine) and ``vm`` (``vmId``, ``vmTypeId``, ``starttime``,
  ``endtime`` in days; empty end: still running), as the trace's SQLite file or a folder with ``vm.csv``
  and ``vmType.csv``. The VMs of one machine type (``trace.machine_id``) alive at ``trace.time`` form the
  snapshot; the trace has no placement, so the VMs are placed by replaying arrivals and departures up to
  then with a best-fit scheduler on ``trace.pms`` machines of ``trace.machine_cpu`` cores and
  ``trace.machine_mem`` GiB, two NUMA nodes each (a VM larger than a node is double-NUMA).
* ``huawei``: the Huawei-East-1 CSV of VMAgent (MIT): ``vmid, cpu, memory, time, type`` (type 0 creates,
  1 deletes; memory in GB); replayed up to ``trace.time`` the same way on servers of ``trace.machine_cpu``
  cores and ``trace.machine_mem`` GB (VMAgent's default server: 40 cores, 90 GB).
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core import ConfigError, Field, validate
from ..core.config import non_negative
from .snapshots import Snapshot, check_snapshot

TRACE_SCHEMA = {
    "time": Field(float, -1.0, allowed="the snapshot time in the trace's unit (-1: the last event)"),
    "pms": Field(int, 0, allowed="machines to place the trace on (0: as many as needed)", check=non_negative),
    "machine_id": Field(int, -1, allowed="the Azure machine type (-1: the most common)"),
    "machine_cpu": Field(
        float, 0.0, allowed="CPU cores of a machine (0: 88 for Azure, 40 for Huawei)", check=non_negative
    ),
    "machine_mem": Field(
        float, 0.0, allowed="memory of a machine in GiB (0: 360 for Azure, 90 for Huawei)", check=non_negative
    ),
}


def load(path: str | Path, fmt: str, options: Mapping[str, Any] | None = None, source: str = "<config>") -> Snapshot:
    opts = validate(options or {}, TRACE_SCHEMA, source, prefix="trace.")
    path = Path(path)
    if not path.exists():
        raise ConfigError(source, "file", f"file not found: {path}")
    if fmt == "vmr2l":
        snap = load_vmr2l(path)
    elif fmt == "azure":
        snap = load_azure(path, opts)
    elif fmt == "huawei":
        snap = load_huawei(path, opts)
    else:
        raise ConfigError(source, "format", f"{fmt!r}; allowed: vmr2l, azure, huawei")
    return check_snapshot(snap, str(path), "file")


def _num(x, where: str, key: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ConfigError(where, key, f"{x!r} is not a number") from None
    if not math.isfinite(v):
        raise ConfigError(where, key, "NaN or infinite value; finite numbers are allowed")
    if v < 0:
        raise ConfigError(where, key, f"{v:g} is negative; sizes and times must be >= 0")
    return v


# --- VMR2L JSON -----------------------------------------------------------------------------------
def load_vmr2l(path: Path) -> Snapshot:
    src = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=lambda c: float("nan"))
    except json.JSONDecodeError as e:
        raise ConfigError(src, None, f"not valid JSON: {e}") from None
    if not isinstance(data, dict) or "cluster_list" not in data:
        raise ConfigError(src, "cluster_list", "missing; a VMR2L snapshot has cluster_list, vm_type_list")
    types = data.get("vm_type_list") or []
    known = {t.get("vm_type") for t in types if isinstance(t, dict)}
    flavours: list[str] = sorted(known) if known else []
    cap_c, cap_m, host_ix = [], [], {}
    vms: list[tuple] = []
    for ci, cl in enumerate(data["cluster_list"]):
        for hi, h in enumerate(cl.get("host_info", [])):
            if h.get("status", "ACTIVE") != "ACTIVE":
                continue
            key = f"cluster_list[{ci}].host_info[{hi}]"
            numa = sorted(h.get("numa", []), key=lambda n: n.get("node", 0))
            if len(numa) != 2:
                raise ConfigError(src, f"{key}.numa", "a host needs exactly two NUMA nodes")
            host_ix[h.get("node_id")] = len(cap_c)
            cap_c.append([_num(n.get("total_cpu"), src, f"{key}.numa.total_cpu") for n in numa])
            cap_m.append(
                [_num(n.get("memory_huge_total_mb"), src, f"{key}.numa.memory_huge_total_mb") / 1024 for n in numa]
            )
        for vi, v in enumerate(cl.get("vm_instance", [])):
            key = f"cluster_list[{ci}].vm_instance[{vi}]"
            t = v.get("instance_type")
            if known and t not in known:
                raise ConfigError(
                    src,
                    f"{key}.instance_type",
                    f"unknown flavour {t!r}; allowed: the vm_type_list "
                    f"names ({', '.join(sorted(map(str, known))[:8])}{' ...' if len(known) > 8 else ''})",
                )
            if not known and t not in flavours:
                flavours.append(t)
            numa = v.get("numa", [])
            if len(numa) not in (1, 2):
                raise ConfigError(src, f"{key}.numa", "one entry (single-NUMA VM) or two (double-NUMA) are allowed")
            cpu = sum(_num(n.get("cpu"), src, f"{key}.numa.cpu") for n in numa)
            mem = sum(_num(n.get("mem_mb"), src, f"{key}.numa.mem_mb") for n in numa) / 1024
            vms.append(
                (
                    v.get("host_id"),
                    len(numa) == 2,
                    int(numa[0].get("node", 0)),
                    cpu,
                    mem,
                    bool(v.get("allow_migration", True)),
                    flavours.index(t),
                    key,
                )
            )
    pm, node, cpu, mem, dbl, mov, fl = [], [], [], [], [], [], []
    for host, d, n, c, m, a, f, key in vms:
        if host not in host_ix:
            continue  # on a host that is not active (the VMR2L environment leaves those out too)
        if not d and n not in (0, 1):
            raise ConfigError(src, f"{key}.numa.node", f"{n}; a NUMA node is 0 or 1")
        pm.append(host_ix[host])
        node.append(2 if d else n)
        cpu.append(c), mem.append(m), dbl.append(d), mov.append(a), fl.append(f)
    return Snapshot(
        np.asarray(cap_c, dtype=float).reshape(-1, 2),
        np.asarray(cap_m, dtype=float).reshape(-1, 2),
        np.asarray(cpu, dtype=float),
        np.asarray(mem, dtype=float),
        np.asarray(dbl, dtype=bool),
        np.asarray(pm, dtype=np.int64),
        np.asarray(node, dtype=np.int64),
        np.asarray(mov, dtype=bool),
        vm_flavour=np.asarray(fl, dtype=np.int64),
        flavours=[str(f) for f in flavours],
        name=path.stem,
    )


# --- replaying a trace with a best-fit scheduler ----------------------------------------------------
def replay(
    events: list[tuple[float, int, int, float, float]],
    node_cpu: float,
    node_mem: float,
    pms: int,
    name: str,
    flavour_of: dict[int, int] | None = None,
) -> Snapshot:
    """Place a trace's VMs by replaying ``events`` ``(time, kind, vm, cpu, mem)`` in time order (kind 0:
    arrival, 1: departure; departures first at equal times) with best fit: a single-NUMA VM goes to the
    feasible node with the least free CPU, a double-NUMA VM (larger than a node) to the feasible PM whose
    fuller node has the least free CPU; arrivals that fit nowhere are rejected. ``pms = 0``: a new PM is
    opened when nothing fits."""
    events = sorted(events, key=lambda e: (e[0], -e[1]))
    cap = max(pms, 1)
    free = np.tile([node_cpu, node_cpu], (cap, 1)).astype(float)
    freem = np.tile([node_mem, node_mem], (cap, 1)).astype(float)
    where: dict[int, tuple[int, int, float, float, bool]] = {}
    order: list[int] = []
    for _, kind, v, c, m in events:
        if kind == 1:
            if v in where:
                p, n, c0, m0, d = where.pop(v)
                if d:
                    free[p] += c0 / 2
                    freem[p] += m0 / 2
                else:
                    free[p, n] += c0
                    freem[p, n] += m0
            continue
        d = c > node_cpu or m > node_mem
        if d and (c / 2 > node_cpu or m / 2 > node_mem):
            continue  # larger than a PM: the scheduler rejects it
        for attempt in range(2):
            if d:
                ok = (free.min(1) >= c / 2) & (freem.min(1) >= m / 2)
                score = np.where(ok, free.min(1), np.inf)
                p, n = int(score.argmin()), 2
            else:
                ok = (free >= c) & (freem >= m)
                score = np.where(ok, free, np.inf)
                p, n = (int(i) for i in np.unravel_index(int(score.argmin()), score.shape))
            if ok.any() or pms or attempt:
                break
            free = np.vstack([free, [node_cpu, node_cpu]])  # open a new PM (pms = 0)
            freem = np.vstack([freem, [node_mem, node_mem]])
        if not ok.any():
            continue
        if d:
            free[p] -= c / 2
            freem[p] -= m / 2
        else:
            free[p, n] -= c
            freem[p, n] -= m
        where[v] = (p, n, c, m, d)
        order.append(v)
    alive = [v for v in order if v in where]
    P = len(free)
    arr = lambda i, dt: np.asarray([where[v][i] for v in alive], dtype=dt)
    fl = np.asarray([flavour_of.get(v, 0) for v in alive], dtype=np.int64) if flavour_of else None
    return Snapshot(
        np.full((P, 2), node_cpu),
        np.full((P, 2), node_mem),
        arr(2, float),
        arr(3, float),
        arr(4, bool),
        arr(0, np.int64),
        arr(1, np.int64),
        vm_flavour=fl,
        name=name,
    )


# --- Azure Packing Trace 2020 -----------------------------------------------------------------------
def _read_table(path: Path, table: str) -> list[dict[str, Any]]:
    if path.is_dir():
        f = path / f"{table}.csv"
        if not f.is_file():
            raise ConfigError(
                str(path), "file", f"no {table}.csv in the folder; the Azure trace needs vm.csv and vmType.csv"
            )
        with f.open(newline="") as h:
            return list(csv.DictReader(h))
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        rows = [dict(r) for r in con.execute(f"SELECT * FROM {table}")]
        con.close()
        return rows
    except sqlite3.DatabaseError as e:
        raise ConfigError(str(path), "file", f"cannot read table {table!r}: {e}") from None


def load_azure(path: Path, o: Mapping[str, Any]) -> Snapshot:
    src = str(path)
    types = _read_table(path, "vmType")
    vms = _read_table(path, "vm")
    machines = [int(_num(t.get("machineId"), src, "vmType.machineId")) for t in types]
    if not machines:
        raise ConfigError(src, "vmType", "no rows; the trace needs VM types")
    mid = o["machine_id"] if o["machine_id"] >= 0 else max(set(machines), key=machines.count)
    size = {}
    for t in types:
        if int(float(t["machineId"])) == mid:
            size[int(float(t["vmTypeId"]))] = (
                _num(t.get("core"), src, "vmType.core"),
                _num(t.get("memory"), src, "vmType.memory"),
            )
    if not size:
        raise ConfigError(src, "trace.machine_id", f"machine type {mid} has no VM types in the trace")
    mc = o["machine_cpu"] or 88.0
    mm = o["machine_mem"] or 360.0
    events, flav = [], {}
    last = 0.0
    for r in vms:
        tid = int(_num(r.get("vmTypeId"), src, "vm.vmTypeId"))
        if tid not in size:
            continue
        start = _num(r.get("starttime"), src, "vm.starttime")
        end = r.get("endtime")
        end = math.inf if end in (None, "", "NULL") else _num(end, src, "vm.endtime")
        c, m = size[tid]
        cpu, mem = max(1.0, round(c * mc)), m * mm
        if cpu / 2 != int(cpu / 2) and cpu > mc / 2:
            cpu += 1  # a double-NUMA VM splits evenly
        vid = int(_num(r.get("vmId"), src, "vm.vmId"))
        events.append((start, 0, vid, cpu, mem))
        if math.isfinite(end):
            events.append((end, 1, vid, cpu, mem))
        last = max(last, start, end if math.isfinite(end) else 0.0)
        flav[vid] = tid
    t = o["time"] if o["time"] >= 0 else last
    events = [e for e in events if e[0] <= t]
    return replay(events, mc / 2, mm / 2, o["pms"], path.stem, flav)


# --- Huawei-East-1 (VMAgent) ------------------------------------------------------------------------
def load_huawei(path: Path, o: Mapping[str, Any]) -> Snapshot:
    src = str(path)
    with path.open(newline="") as h:
        rows = list(csv.DictReader(h))
    need = {"vmid", "cpu", "memory", "time", "type"}
    if rows and not need <= set(rows[0]):
        raise ConfigError(src, "file", f"columns {sorted(need)} are required, found {sorted(rows[0])}")
    mc = o["machine_cpu"] or 40.0
    mm = o["machine_mem"] or 90.0
    events, last = [], 0.0
    for i, r in enumerate(rows):
        line = f"row {i + 2}"
        kind = int(_num(r["type"], src, f"{line}.type"))
        if kind not in (0, 1):
            raise ConfigError(src, f"{line}.type", f"{kind}; 0 (creation) or 1 (deletion) is allowed")
        tm = _num(r["time"], src, f"{line}.time")
        events.append(
            (
                tm,
                kind,
                int(_num(r["vmid"], src, f"{line}.vmid")),
                _num(r["cpu"], src, f"{line}.cpu"),
                _num(r["memory"], src, f"{line}.memory"),
            )
        )
        last = max(last, tm)
    t = o["time"] if o["time"] >= 0 else last
    return replay([e for e in events if e[0] <= t], mc / 2, mm / 2, o["pms"], path.stem)
