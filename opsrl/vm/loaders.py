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

Each format has one schema (:class:`VMR2L`, :class:`AzureVmType` and :class:`AzureVm`, :class:`HuaweiRow`),
checked by :mod:`opsrl.core.datafile` before any field is used; ids are unique (hosts' ``node_id``, VMs'
``instance_id``, flavours, Azure ``vmId`` and ``(vmTypeId, machineId)``; a Huawei VM is created again only
after its deletion), and a VM names an existing host. A relative ``file`` starts at the problem file's folder.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, field_validator, model_validator
from pydantic import Field as PydanticField

from ..core import ConfigError, Field, validate
from ..core.config import non_negative
from ..core.datafile import (
    Id,
    Integer,
    Number,
    Record,
    check,
    check_rows,
    load_json,
    read_csv,
    refuse,
    resolve,
    unique,
)
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
    """The snapshot in ``path`` (relative to the folder of the problem file ``source``)."""
    opts = validate(options or {}, TRACE_SCHEMA, source, prefix="trace.")
    path = resolve(path, source)
    if not path.exists():
        raise ConfigError(source, "file", f"file not found: {path}")
    if fmt == "vmr2l":
        snap = load_vmr2l(path, source)
    elif fmt == "azure":
        snap = load_azure(path, opts)
    elif fmt == "huawei":
        snap = load_huawei(path, opts, source)
    else:
        raise ConfigError(source, "format", f"{fmt!r}; allowed: vmr2l, azure, huawei")
    return check_snapshot(snap, str(path), "file")


# --- VMR2L JSON -----------------------------------------------------------------------------------
Size = Annotated[Number, PydanticField(ge=0)]


class _HostNuma(Record):
    node: Literal[0, 1]
    total_cpu: Size
    memory_huge_total_mb: Size


class _Host(Record):
    node_id: Id
    status: str = "ACTIVE"
    numa: list[_HostNuma] = PydanticField(min_length=2, max_length=2)

    @field_validator("numa")
    @classmethod
    def _two_nodes(cls, numa: list[_HostNuma]) -> list[_HostNuma]:
        if {n.node for n in numa} != {0, 1}:
            raise refuse("a host needs exactly two NUMA nodes, node 0 and node 1")
        return sorted(numa, key=lambda n: n.node)


class _VmNuma(Record):
    node: Literal[0, 1] = 0
    cpu: Size
    mem_mb: Size


class _Vm(Record):
    instance_id: Id | None = None
    instance_type: Id = ""
    host_id: Id
    allow_migration: bool = True
    numa: list[_VmNuma] = PydanticField(min_length=1, max_length=2)

    @field_validator("numa")
    @classmethod
    def _distinct_nodes(cls, numa: list[_VmNuma]) -> list[_VmNuma]:
        if len(numa) == 2 and numa[0].node == numa[1].node:
            raise refuse("a double-NUMA VM has one entry on node 0 and one on node 1")
        return numa


class _Cluster(Record):
    host_info: list[_Host] = []
    vm_instance: list[_Vm] = []


class _VmType(Record):
    vm_type: Id


class VMR2L(Record):
    """The VMR2L snapshot format (keys it does not use are ignored)."""

    cluster_list: list[_Cluster]
    vm_type_list: list[_VmType] | None = None


def load_vmr2l(path: Path, source: str | None = None) -> Snapshot:
    src = str(path)
    doc: VMR2L = check(VMR2L, load_json(path, source, "file" if source else None), src)
    types = doc.vm_type_list or []
    unique(((t.vm_type, f"vm_type_list[{i}].vm_type") for i, t in enumerate(types)), src, "vm_type")
    hosts = [
        (f"cluster_list[{ci}].host_info[{hi}]", h)
        for ci, cl in enumerate(doc.cluster_list)
        for hi, h in enumerate(cl.host_info)
    ]
    vm_list = [
        (f"cluster_list[{ci}].vm_instance[{vi}]", v)
        for ci, cl in enumerate(doc.cluster_list)
        for vi, v in enumerate(cl.vm_instance)
    ]
    unique(((h.node_id, f"{key}.node_id") for key, h in hosts), src, "node_id")
    unique(((v.instance_id, f"{key}.instance_id") for key, v in vm_list), src, "instance_id")
    known = {t.vm_type for t in types}
    flavours: list[Any] = sorted(known, key=str) if known else []
    cap_c, cap_m, host_ix = [], [], {}
    for _, h in hosts:
        if h.status != "ACTIVE":
            continue
        host_ix[h.node_id] = len(cap_c)
        cap_c.append([n.total_cpu for n in h.numa])
        cap_m.append([n.memory_huge_total_mb / 1024 for n in h.numa])
    all_hosts = {h.node_id for _, h in hosts}
    pm, node, cpu, mem, dbl, mov, fl = [], [], [], [], [], [], []
    for key, v in vm_list:
        t = v.instance_type
        if known and t not in known:
            raise ConfigError(
                src,
                f"{key}.instance_type",
                f"unknown flavour {t!r}; allowed: the vm_type_list "
                f"names ({', '.join(sorted(map(str, known))[:8])}{' ...' if len(known) > 8 else ''})",
            )
        if v.host_id not in all_hosts:
            names = sorted(map(str, all_hosts))
            raise ConfigError(
                src,
                f"{key}.host_id",
                f"found {v.host_id!r}, which names no host; allowed: a node_id of host_info "
                f"({', '.join(names[:8]) or 'none'}{' ...' if len(names) > 8 else ''})",
            )
        if v.host_id not in host_ix:
            continue  # on a host that is not active (the VMR2L environment leaves those out too)
        if not known and t not in flavours:
            flavours.append(t)
        d = len(v.numa) == 2
        pm.append(host_ix[v.host_id])
        node.append(2 if d else v.numa[0].node)
        cpu.append(sum(n.cpu for n in v.numa))
        mem.append(sum(n.mem_mb for n in v.numa) / 1024)
        dbl.append(d)
        mov.append(v.allow_migration)
        fl.append(flavours.index(t))
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
    order: dict[int, None] = {}  # VMs by their latest arrival (an id may be created again after its deletion)
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
        order.pop(v, None)
        order[v] = None
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
def _end(v: Any) -> Any:
    return None if v is None or (isinstance(v, str) and v.strip().upper() in ("", "NULL")) else v


Fraction = Annotated[Number, PydanticField(ge=0, le=1)]


class AzureVmType(Record):
    """A row of the Azure trace's ``vmType`` table (core and memory: fractions of the machine)."""

    vmTypeId: Integer
    machineId: Integer
    core: Fraction
    memory: Fraction


class AzureVm(Record):
    """A row of the Azure trace's ``vm`` table (times in days; no end time: still running)."""

    vmId: Integer
    vmTypeId: Integer
    starttime: Size
    endtime: Annotated[Size | None, BeforeValidator(_end)] = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> AzureVm:
        if self.endtime is not None and self.endtime < self.starttime:
            raise refuse(f"endtime {self.endtime:g} is before starttime {self.starttime:g}; endtime >= starttime")
        return self


AZURE_TABLES = {"vmType": AzureVmType, "vm": AzureVm}


def _read_table(path: Path, table: str) -> list:
    model = AZURE_TABLES[table]
    if path.is_dir():
        f = path / f"{table}.csv"
        if not f.is_file():
            raise ConfigError(
                str(path), "file", f"no {table}.csv in the folder; the Azure trace needs vm.csv and vmType.csv"
            )
        required = [k for k, fld in model.model_fields.items() if fld.is_required()]
        return check_rows(model, read_csv(f, required), str(f))
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            con.row_factory = sqlite3.Row
            rows = [dict(r) for r in con.execute(f"SELECT * FROM {table}")]
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise ConfigError(str(path), "file", f"cannot read table {table!r}: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(str(path), table, f"a text value of table {table!r} is not UTF-8 ({e.reason})") from None
    return check_rows(model, rows, str(path), table=table)


def _table_file(path: Path, table: str) -> str:
    return str(path / f"{table}.csv") if path.is_dir() else str(path)


def _row(path: Path, table: str, i: int) -> str:
    """Where row ``i`` of ``table`` is: its line in the table's CSV file, or its number in the database."""
    return f"row {i + 2}.{'vmId' if table == 'vm' else 'vmTypeId'}" if path.is_dir() else f"{table} row {i + 1}"


def load_azure(path: Path, o: Mapping[str, Any]) -> Snapshot:
    src = str(path)
    types = _read_table(path, "vmType")
    vms = _read_table(path, "vm")
    if not types:
        raise ConfigError(src, "vmType", "no rows; the trace needs VM types")
    unique(
        (((t.vmTypeId, t.machineId), _row(path, "vmType", i)) for i, t in enumerate(types)),
        _table_file(path, "vmType"),
        "(vmTypeId, machineId)",
    )
    unique(((v.vmId, _row(path, "vm", i)) for i, v in enumerate(vms)), _table_file(path, "vm"), "vmId")
    machines = [t.machineId for t in types]
    mid = o["machine_id"] if o["machine_id"] >= 0 else max(set(machines), key=machines.count)
    size = {t.vmTypeId: (t.core, t.memory) for t in types if t.machineId == mid}
    if not size:
        raise ConfigError(src, "trace.machine_id", f"machine type {mid} has no VM types in the trace")
    mc = o["machine_cpu"] or 88.0
    mm = o["machine_mem"] or 360.0
    events, flav = [], {}
    last = 0.0
    for r in vms:
        if r.vmTypeId not in size:
            continue
        start = r.starttime
        end = math.inf if r.endtime is None else r.endtime
        c, m = size[r.vmTypeId]
        cpu, mem = max(1.0, round(c * mc)), m * mm
        if cpu / 2 != int(cpu / 2) and cpu > mc / 2:
            cpu += 1  # a double-NUMA VM splits evenly
        events.append((start, 0, r.vmId, cpu, mem))
        if math.isfinite(end):
            events.append((end, 1, r.vmId, cpu, mem))
        last = max(last, start, end if math.isfinite(end) else 0.0)
        flav[r.vmId] = r.vmTypeId
    t = o["time"] if o["time"] >= 0 else last
    events = [e for e in events if e[0] <= t]
    return replay(events, mc / 2, mm / 2, o["pms"], path.stem, flav)


# --- Huawei-East-1 (VMAgent) ------------------------------------------------------------------------
class HuaweiRow(Record):
    """A row of the Huawei-East-1 CSV: type 0 creates VM ``vmid`` at ``time``, type 1 deletes it."""

    vmid: Integer
    cpu: Size
    memory: Size
    time: Size
    type: Annotated[Literal[0, 1], BeforeValidator(lambda v: _int_or_same(v))]


def _int_or_same(v: Any) -> Any:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return int(f) if math.isfinite(f) and f.is_integer() else v


def load_huawei(path: Path, o: Mapping[str, Any], source: str | None = None) -> Snapshot:
    src = str(path)
    raw = read_csv(path, ("vmid", "cpu", "memory", "time", "type"), source, "file" if source else None)
    rows = check_rows(HuaweiRow, raw, src)
    mc = o["machine_cpu"] or 40.0
    mm = o["machine_mem"] or 90.0
    # a VM is created once until it is deleted: a second creation would silently replace the first
    alive: dict[int, int] = {}
    for i in sorted(range(len(rows)), key=lambda i: (rows[i].time, -rows[i].type)):
        r, line = rows[i], raw[i]["_line"]
        if r.type == 1:
            alive.pop(r.vmid, None)
        elif r.vmid in alive:
            raise ConfigError(
                src,
                f"row {line}.vmid",
                f"found {r.vmid}, a VM created at row {alive[r.vmid]} and not deleted before; "
                "a VM id is created again only after its deletion",
            )
        else:
            alive[r.vmid] = line
    events = [(r.time, r.type, r.vmid, r.cpu, r.memory) for r in rows]
    last = max((r.time for r in rows), default=0.0)
    t = o["time"] if o["time"] >= 0 else last
    return replay([e for e in events if e[0] <= t], mc / 2, mm / 2, o["pms"], path.stem)
