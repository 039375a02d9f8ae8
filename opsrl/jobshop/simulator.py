"""The batched job-shop simulator: a batch of instances, one dispatch per period.

Every scenario ``b`` is one job-shop instance padded to ``J`` jobs, ``O`` operations per job and ``M``
machines (mixed sizes share a batch: padding jobs have no operations, padding operations are masked).
A period dispatches one operation: the action is the *job* whose next operation goes next, and
``action_mask`` marks the jobs allowed by the schedule-generation scheme:

* ``non_delay`` (default): only operations that can start at the earliest possible start time ``t*``
  of all next operations (no machine is left idle while an operation could start on it);
* ``active`` (Giffler-Thompson): let ``C*`` be the earliest completion time of all next operations and
  ``m*`` the machine of the first job (lowest index) reaching it; the allowed operations are those on
  ``m*`` that can start before ``C*`` (the job reaching ``C*`` always among them).

The dispatched operation starts at ``max(job ready, machine ready)`` (the schedules are built
append-only, in start order for ``non_delay``).

Post-decision split: ``post_decision`` fixes the operation and its start (cost 0); ``transition``
reveals its processing time from the scenarios (the nominal one, or one perturbed by the exogenous noise
drawn with the scenarios) and charges the increase of the partial makespan, so the episode total is the
makespan. Finished (or fully padded) instances take no-op periods at zero cost. The episode lasts the
largest number of operations in the batch (``problem.periods``).

State keys (tensors ``[B, ...]``): static instance data ``machine``, ``duration`` (nominal processing
times), ``n_ops``, ``due``, ``tail`` (nominal work from each operation to the end of its job), ``total``
(each job's nominal work), ``scale``; per job ``next_op`` and, for that operation, ``m_next`` (machine),
``p_next`` (nominal duration; 0 once the job is done), ``rem`` (nominal work left, ``p_next`` included);
``job_ready``/``mach_ready`` (realised ready times; ``job_avail`` is ``job_ready``, ``inf`` once the job
is done), ``job_ready_nom``/``mach_ready_nom`` (start + nominal duration of the last operation: what is
known while it still runs), ``start``/``end`` (the partial schedule, meaningful where ``k < next_op``;
written in place), ``makespan``, ``t_now`` (the decision time: the earliest start of a next operation),
``est`` and ``mask``. Keys starting with ``_`` are internal. Realised processing times appear in the
state only as ``end``/``job_ready``/``mach_ready``; policies must read those only for operations that have
finished by ``t_now`` (:meth:`JobShop.observe` does so).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..core import ActionSpec, ConfigError, Field, Problem, Scenarios, State, generator, validate
from ..core.config import non_negative, positive
from . import instances as inst_mod
from .instances import Instance

SCHEDULES = ("non_delay", "active")
INF = float("inf")


# --- the dynamics as plain functions of tensors (used by the Problem and by the solvers) ----------
def initial_state(data: Mapping[str, torch.Tensor], schedule: str = "non_delay") -> State:
    """The state before the first dispatch of the instances ``data`` (keys as :func:`instances.pad`)."""
    machine, duration, n_ops = data["machine"], data["duration"], data["n_ops"]
    B, J, O = duration.shape
    M = int(data["n_machines"]) if "n_machines" in data else int(machine.max().item()) + 1 if machine.numel() else 1
    dtype, dev = duration.dtype, duration.device
    op_valid = torch.arange(O, device=dev) < n_ops[..., None]
    nominal = torch.where(op_valid, duration, torch.zeros((), dtype=dtype, device=dev))
    total = nominal.sum(-1)
    tail = torch.cat(
        [total[..., None] - nominal.cumsum(-1) + nominal, torch.zeros(B, J, 1, dtype=dtype, device=dev)], -1
    )  # work from operation k to the end of the job
    scale = total.amax(1).clamp_min(1.0)
    zeros_j = torch.zeros(B, J, dtype=dtype, device=dev)
    # machine and nominal duration of operation k + 1 (0 past the last one), looked up at j * O + k
    after = torch.cat([nominal[..., 1:], torch.zeros_like(nominal[..., :1])], -1).reshape(B, J * O)
    m_after = torch.cat([machine[..., 1:], torch.zeros_like(machine[..., :1])], -1).reshape(B, J * O)
    state = {
        "machine": machine,
        "duration": nominal,
        "n_ops": n_ops,
        "due": data.get("due", torch.full((B, J), INF, dtype=dtype, device=dev)).to(dtype),
        "tail": tail,
        "total": total,
        "scale": scale,
        "_p_after": after,
        "_m_after": m_after,
        "next_op": torch.zeros(B, J, dtype=torch.long, device=dev),
        "m_next": machine[..., 0].clone(),
        "start": torch.zeros(B, J, O, dtype=dtype, device=dev),
        "end": torch.zeros(B, J, O, dtype=dtype, device=dev),
        "makespan": torch.zeros(B, dtype=dtype, device=dev),
    }
    state["_last"] = (torch.arange(O, device=dev) == n_ops[..., None] - 1).reshape(B, J * O)
    avail = torch.where(n_ops > 0, 0.0, INF).to(dtype)
    _unstack(
        state,
        torch.stack([zeros_j, zeros_j, nominal[..., 0], total, avail], 1),
        torch.zeros(B, 2, M, dtype=dtype, device=dev),
    )
    return _frontier(state, schedule)


_JOB_KEYS = ("job_ready", "job_ready_nom", "p_next", "rem", "job_avail")
_MACH_KEYS = ("mach_ready", "mach_ready_nom")


def _unstack(state: State, job: torch.Tensor, mach: torch.Tensor) -> None:
    """Per-job (``[B, 5, J]``) and per-machine (``[B, 2, M]``) times are stored stacked, so that a step
    updates each stack with one scatter; the named keys are views of them."""
    state["_job"], state["_mach"] = job, mach
    state.update(zip(_JOB_KEYS, job.unbind(1)))
    state.update(zip(_MACH_KEYS, mach.unbind(1)))


def _frontier(state: State, schedule: str) -> State:
    """Add ``est`` (earliest start of each job's next operation), ``t_now`` and ``mask`` to ``state``."""
    m_next = state["m_next"]
    est = torch.maximum(state["job_avail"], state["mach_ready"].gather(1, m_next))  # inf for finished jobs
    # every finite est is at most the makespan, so this is min est, or the makespan once all is done
    t_now = torch.minimum(est.amin(1), state["makespan"])
    if schedule == "non_delay":
        mask = est <= t_now[:, None]
    else:
        ect = est + state["p_next"]
        j_star = ect.argmin(1, keepdim=True)  # first minimum (torch.min(dim) is much slower on CPU)
        c_star = ect.gather(1, j_star)
        m_star = m_next.gather(1, j_star)
        mask = (m_next == m_star) & (est < c_star)
        mask = mask.scatter(1, j_star, torch.isfinite(c_star))
    return {**state, "est": est, "t_now": t_now, "mask": mask}


def post_decision(state: State, action: torch.Tensor) -> State:
    """Fix the dispatched operation and its start time (no cost). Raises ValueError for a job that
    ``action_mask`` does not allow (in a scenario that still has operations to dispatch)."""
    mask = state["mask"]
    B = mask.shape[0]
    a = action.reshape(B, -1)[:, :1]
    if a.is_floating_point():
        if not bool((torch.isfinite(a) & (a == a.round())).all()):
            raise ValueError(
                "job-shop actions are job indices (whole numbers); got non-integer or non-finite "
                "values (a continuous policy needs a discrete action head)"
            )
    a = a.long()
    try:
        allowed = mask.gather(1, a)
    except RuntimeError:  # an index out of range
        raise ValueError(f"job-shop actions are job indices in [0, {mask.shape[1]})") from None
    live = mask.any(1, keepdim=True)
    ok = allowed | ~live
    if not bool(ok.all()):
        bad = int((~ok).nonzero()[0, 0])
        raise ValueError(f"scenario {bad}: job {int(a[bad, 0])} may not be dispatched now (see action_mask)")
    k = state["next_op"].gather(1, a)
    m = state["m_next"].gather(1, a)
    job = state["_job"].gather(2, a[:, None].expand(B, len(_JOB_KEYS), 1))  # the job's times, [B, 5, 1]
    s = torch.maximum(job[:, 0], state["mach_ready"].gather(1, m))
    return {**state, "act_job": a, "act_op": k, "act_machine": m, "act_start": s, "act_live": live, "act_times": job}


def transition(post: State, realized: torch.Tensor, schedule: str) -> tuple[State, torch.Tensor]:
    """Reveal the processing time of the dispatched operation (``realized`` ``[B, J, O]``) and update."""
    a, k, m, s, live = post["act_job"], post["act_op"], post["act_machine"], post["act_start"], post["act_live"]
    B, J, O = post["duration"].shape
    all_live = bool(live.all())  # the common case: no scenario has finished, nothing to keep unchanged
    k = k.clamp(max=O - 1)
    flat = a * O + k
    p = realized.reshape(B, J * O).gather(1, flat).to(s.dtype)
    p_nom = post["duration"].reshape(B, J * O).gather(1, flat)
    e, e_nom = s + p, s + p_nom

    def put(x: torch.Tensor, idx: torch.Tensor, v: torch.Tensor, dim: int = 1) -> torch.Tensor:
        if not all_live:
            keep = live if dim == 1 else live[:, None]
            v = torch.where(keep, v, x.gather(dim, idx))
        return x.scatter(dim, idx, v)

    state = {k_: v for k_, v in post.items() if not k_.startswith("act_")}
    state["next_op"] = put(post["next_op"], a, k + 1)
    # the dispatched job's next operation: machine, nominal duration (0 past its last), remaining work
    state["m_next"] = put(post["m_next"], a, post["_m_after"].gather(1, flat))
    avail = torch.where(post["_last"].gather(1, flat), INF, e)
    job_vals = torch.stack([e, e_nom, post["_p_after"].gather(1, flat), post["act_times"][:, 3] - p_nom, avail], 1)
    job = put(post["_job"], a[:, None].expand(B, len(_JOB_KEYS), 1), job_vals, dim=2)
    mach = put(post["_mach"], m[:, None].expand(B, 2, 1), torch.stack([e, e_nom], 1), dim=2)
    _unstack(state, job, mach)
    # The partial schedule is written in place and without gradient (the times that carry gradients are
    # job_ready, mach_ready and makespan): an entry changes only when its operation is dispatched, so a
    # state recorded earlier stays correct where it is meaningful (operations k < next_op).
    with torch.no_grad():
        for key, v in (("start", s), ("end", e)):
            x = post[key].view(B, J * O)
            v = v.detach().to(x.dtype)
            x.scatter_(1, flat, v if all_live else torch.where(live, v, x.gather(1, flat)))
    makespan = torch.maximum(post["makespan"], e[:, 0])
    if not all_live:
        makespan = torch.where(live[:, 0], makespan, post["makespan"])
    cost = makespan - post["makespan"]
    state["makespan"] = makespan
    return _frontier(state, schedule), cost


def metrics(state: State) -> dict[str, torch.Tensor]:
    """Makespan, total flow time (sum of job completion times, all jobs released at 0) and total tardiness
    (``nan`` where no due dates are given) of finished schedules, ``[B]`` each."""
    real = state["n_ops"] > 0
    c = torch.where(real, state["job_ready"], torch.zeros_like(state["job_ready"]))
    due = state["due"]
    has_due = torch.isfinite(due) & real
    tard = torch.where(has_due, (c - due).clamp_min(0), torch.zeros_like(c)).sum(1)
    tard = torch.where(has_due.any(1), tard, torch.full_like(tard, math.nan))
    return {"makespan": state["makespan"], "flow_time": c.sum(1), "tardiness": tard}


def makespan_lower_bound(state: State) -> torch.Tensor:
    """A lower bound ``[B]`` of the final makespan of every schedule that completes ``state``, at the nominal
    processing times (a bound where they are the realised ones; an estimate under noise): the largest of the
    partial makespan, each unfinished job's earliest start plus its remaining work and, per machine, the
    one-machine bound with heads and tails: its remaining operations run one at a time, none starts before
    the machine is free or before the earliest *head* among them (the job's earliest start plus the work before
    the operation in the job), and after the last one ends at least the least *tail* (the work after it in its
    job) is still to be done."""
    dur, n_ops, next_op = state["duration"], state["n_ops"], state["next_op"]
    B, J, O = dur.shape
    k = torch.arange(O, device=dur.device)
    left = (k >= next_op[..., None]) & (k < n_ops[..., None])  # [B, J, O] operations still to dispatch
    p = torch.where(left, dur, torch.zeros((), dtype=dur.dtype))
    est = state["est"]  # inf for finished jobs
    jobs = torch.where(torch.isfinite(est), est + state["rem"], torch.zeros_like(est)).amax(1)
    inf = torch.full((), INF, dtype=dur.dtype)
    head = torch.where(left, est[..., None] + (p.cumsum(-1) - p), inf)  # the work of the job's earlier ones
    tail = torch.where(left, state["tail"][..., 1:], inf)  # the work after the operation in its job
    mach = state["mach_ready"]
    idx = state["machine"].reshape(B, J * O).clamp_min(0)
    load = torch.zeros_like(mach).scatter_add_(1, idx, p.reshape(B, -1))
    first = mach.scatter_reduce(1, idx, head.reshape(B, -1), "amin", include_self=False)
    last = torch.full_like(mach, INF).scatter_reduce_(1, idx, tail.reshape(B, -1), "amin")
    busy = load > 0
    one = torch.where(busy, torch.maximum(mach, first) + load + last, mach)
    return torch.maximum(torch.maximum(state["makespan"], jobs), one.amax(1))


def is_done(state: State) -> torch.Tensor:
    return (state["next_op"] >= state["n_ops"]).all(1)


# --- the Problem -------------------------------------------------------------------------------
NOISE_SCHEMA = {
    "distribution": Field(
        str,
        "none",
        choices=("none", "lognormal", "uniform"),
        doc="law of the multiplicative processing-time noise (mean 1)",
    ),
    "level": Field(
        float, 0.0, allowed="a number >= 0 (lognormal: sigma; uniform: half-width, at most 1)", check=non_negative
    ),
}
GENERATOR_SCHEMA = {
    "kind": Field(str, "taillard", choices=("taillard", "uniform")),
    "jobs": Field(int, allowed="a positive integer, at most 1000", check=positive, max=1000),
    "machines": Field(int, allowed="a positive integer, at most 100", check=positive, max=100),
    "low": Field(int, 1, allowed="an integer >= 0", check=non_negative),
    "high": Field(int, 99, allowed="an integer >= low"),
}
TEST_SCHEMA = {
    "scenarios": Field(
        int,
        0,
        allowed="a positive integer (default: the instances themselves, or 100 noise scenarios per instance)",
        check=non_negative,
    ),
    "seed": Field(int, 0, allowed="an integer >= 0", check=non_negative),
}
SCHEMA = {
    "instances": Field(list, [], item=str, allowed='a list of standard instance names such as "ta01"'),
    "files": Field(
        list,
        [],
        item=str,
        allowed="a list of instance files in the standard (OR-Library) or Taillard text format "
        "(relative: to the problem file's folder)",
    ),
    "generator": Field(dict, {}, allowed="a table [generator] with kind, jobs, machines, low, high"),
    "schedule": Field(str, "non_delay", choices=SCHEDULES),
    "noise": Field(dict, {}, schema=NOISE_SCHEMA),
    "due_date_factor": Field(
        float, 0.0, allowed="a number >= 0 (due date = factor x job's total work; 0: no due dates)", check=non_negative
    ),
    "test": Field(dict, {}, schema=TEST_SCHEMA),
}


class JobShop(Problem):
    """A batch of job-shop instances as a post-decision MDP (see the module docstring)."""

    metric = "total"
    warmup = 0
    n_locations = 1

    def __init__(
        self,
        instances: Sequence[Instance] = (),
        *,
        generator_cfg: Mapping[str, Any] | None = None,
        schedule: str = "non_delay",
        noise: str = "none",
        noise_level: float = 0.0,
        due_date_factor: float = 0.0,
        test_scenarios: int = 0,
        test_seed: int = 0,
        config: Mapping[str, Any] | None = None,
    ):
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if bool(instances) == bool(generator_cfg):
            raise ValueError("give either instances or a generator")
        self.instances = list(instances)
        self.generator_cfg = dict(generator_cfg or {})
        self.schedule = schedule
        self.noise, self.noise_level = noise, float(noise_level)
        self.stochastic = noise != "none" and self.noise_level > 0
        self.due_date_factor = due_date_factor
        self.config = dict(config or {})
        self.name = self.instances[0].name if len(self.instances) == 1 else "jobshop"
        if self.instances:
            for inst in self.instances:
                inst.check()
                if due_date_factor > 0:
                    inst.due = [due_date_factor * sum(r) for r in inst.duration]
            self._padded = inst_mod.pad(self.instances)
            self.jobs = self._padded["duration"].shape[1]
            self.periods = max(i.operations for i in self.instances)
            default_test = len(self.instances) * (100 if self.stochastic else 1)
        else:
            g = self.generator_cfg
            self.jobs = g["jobs"]
            self.periods = g["jobs"] * g["machines"]
            default_test = 100
        self.test_scenarios = test_scenarios or default_test
        self.test_seed = test_seed
        self.action_spec = ActionSpec("discrete", (1,), n=self.jobs)

    # --- scenarios ---------------------------------------------------------------------------
    def instance_index(self, n: int) -> torch.Tensor:
        """Scenario ``i`` uses instance ``i mod K`` of the problem's ``K`` fixed instances."""
        return torch.arange(n) % max(1, len(self.instances))

    def _sample(self, n: int, split: str, seed: int, periods: int) -> dict[str, torch.Tensor]:
        if self.instances:
            idx = self.instance_index(n)
            data = {k: v[idx] for k, v in self._padded.items()}
        else:
            g = self.generator_cfg
            gen = generator(seed, split, "instances")
            if g["kind"] == "taillard":
                insts = inst_mod.taillard_batch(n, g["jobs"], g["machines"], g["low"], g["high"], gen)
                for i in insts:
                    if self.due_date_factor > 0:
                        i.due = [self.due_date_factor * sum(r) for r in i.duration]
                data = inst_mod.pad(insts)
            else:
                data = inst_mod.uniform(n, g["jobs"], g["machines"], g["low"], g["high"], gen)
                if self.due_date_factor > 0:
                    data["due"] = self.due_date_factor * data["duration"].sum(-1)
            idx = torch.full((n,), -1, dtype=torch.long)
        dur = data["duration"].to(self.dtype)
        data["duration"] = dur
        data["due"] = data["due"].to(self.dtype)
        if self.stochastic:
            gen = generator(seed, split, "noise")
            if self.noise == "lognormal":
                s = self.noise_level
                factor = torch.exp(s * torch.randn(dur.shape, generator=gen) - 0.5 * s * s)
            else:
                factor = 1 + self.noise_level * (2 * torch.rand(dur.shape, generator=gen) - 1)
            data["realized"] = (dur * factor.to(self.dtype)).clamp_min(0)
        else:
            data["realized"] = dur.clone()
        data["instance"] = idx
        return data

    # --- dynamics ----------------------------------------------------------------------------
    def initial_state(self, scenarios: Scenarios) -> State:
        return initial_state(scenarios.data, self.schedule)

    def post_decision(self, state: State, action: torch.Tensor) -> tuple[State, torch.Tensor]:
        post = post_decision(state, action)
        return post, torch.zeros_like(state["makespan"])

    def transition(self, post_state: State, scenarios: Scenarios, t: int) -> tuple[State, torch.Tensor]:
        return transition(post_state, scenarios["realized"], self.schedule)

    def action_mask(self, state: State) -> torch.Tensor:
        return state["mask"]

    def cost_to_go_bound(self, state: State, t: int) -> torch.Tensor:
        """The makespan still to come: :func:`makespan_lower_bound` less the partial makespan."""
        return makespan_lower_bound(state) - state["makespan"]

    # --- views ---------------------------------------------------------------------------------
    def known_ready(self, state: State) -> tuple[torch.Tensor, torch.Tensor]:
        """Ready times of jobs and machines as known at ``t_now``: realised where the last operation has
        finished by then, else its start plus nominal duration (never earlier than ``t_now``)."""
        t = state["t_now"][:, None]
        jr, mr = state["job_ready"], state["mach_ready"]
        jk = torch.where(jr <= t, jr, torch.maximum(state["job_ready_nom"], t))
        mk = torch.where(mr <= t, mr, torch.maximum(state["mach_ready_nom"], t))
        return jk, mk

    def observe(self, state: State) -> torch.Tensor:
        """Per job: can go, unfinished, next operation's nominal duration, remaining nominal work, remaining
        operations, known ready time of its next operation after ``t_now``; per machine: known ready time
        after ``t_now`` and remaining nominal work; times divided by the largest job's total work."""
        B, J, O = state["duration"].shape
        sc = state["scale"][:, None]
        t = state["t_now"][:, None]
        todo = state["next_op"] < state["n_ops"]
        p_next, rem = state["p_next"], state["rem"]
        jk, mk = self.known_ready(state)
        est_known = torch.maximum(jk, mk.gather(1, state["m_next"]))
        est_known = torch.where(todo, est_known - t, torch.zeros_like(est_known))
        unscheduled = torch.arange(O, device=sc.device) >= state["next_op"][..., None]
        M = mk.shape[1]
        mwork = torch.zeros(B, M, dtype=sc.dtype, device=sc.device).scatter_add(
            1, state["machine"].reshape(B, -1), (state["duration"] * unscheduled).reshape(B, -1)
        )
        feats = [
            state["mask"].to(sc.dtype),
            todo.to(sc.dtype),
            p_next / sc,
            rem / sc,
            (state["n_ops"] - state["next_op"]).to(sc.dtype) / O,
            est_known / sc,
            (mk - t).clamp_min(0) / sc,
            mwork / sc,
        ]
        return torch.cat(feats, dim=1)

    def graph(self, state: State):
        from .graph import disjunctive_graph

        return disjunctive_graph(self, state)

    def policy_graph(self, state: State):
        """The graph learned dispatchers read: the disjunctive graph without the O(n^2) open-disjunction
        edges (the network aggregates over each machine's open operations through ``machine_group``)."""
        from .graph import disjunctive_graph

        return disjunctive_graph(self, state, disjunctive=False)

    def describe(self) -> str:
        what = (
            ", ".join(i.name for i in self.instances[:5]) + (" ..." if len(self.instances) > 5 else "")
            if self.instances
            else f"{self.generator_cfg['kind']} generator {self.generator_cfg['jobs']}x{self.generator_cfg['machines']}"
        )
        return f"job shop ({what}; {self.schedule} schedules" + (
            f"; {self.noise} noise {self.noise_level:g})" if self.stochastic else ")"
        )


def build(config: Mapping[str, Any], source: str) -> JobShop:
    """Build a :class:`JobShop` from a problem file's table (see ``docs/jobshop.md`` for the keys)."""
    cfg = validate(config, SCHEMA, source)
    names = cfg["instances"]
    gen_cfg = None
    if cfg["generator"]:
        gen_cfg = validate(cfg["generator"], GENERATOR_SCHEMA, source, prefix="generator.")
        if gen_cfg["high"] < gen_cfg["low"]:
            raise ConfigError(source, "generator.high", f"{gen_cfg['high']} is below generator.low ({gen_cfg['low']})")
    if bool(names or cfg["files"]) == bool(gen_cfg):
        raise ConfigError(
            source, "instances", "give either a non-empty list of instances (or files), or a [generator] table"
        )
    known = set(inst_mod.names())
    for i, n in enumerate(names):
        if n not in known:
            import difflib

            close = difflib.get_close_matches(n, known, n=3)
            raise ConfigError(
                source,
                f"instances[{i}]",
                f"unknown instance {n!r}; allowed: standard instance names "
                f"(ft, la, abz, orb, swv, yn, ta, dmu)" + (f"; did you mean {', '.join(close)}?" if close else ""),
            )
    noise = cfg["noise"]
    if noise["distribution"] == "uniform" and noise["level"] > 1:
        raise ConfigError(source, "noise.level", f"{noise['level']} is not allowed; uniform noise needs a level <= 1")
    stochastic = noise["distribution"] != "none" and noise["level"] > 0
    if stochastic and cfg["schedule"] == "active":
        raise ConfigError(
            source,
            "schedule",
            "'active' needs the completion times of running operations, which "
            "noise hides at decision time; use 'non_delay' with noise",
        )
    return JobShop(
        [inst_mod.load(n) for n in names] + _read_files(cfg["files"], source),
        generator_cfg=gen_cfg,
        schedule=cfg["schedule"],
        noise=noise["distribution"],
        noise_level=noise["level"],
        due_date_factor=cfg["due_date_factor"],
        test_scenarios=cfg["test"]["scenarios"],
        test_seed=cfg["test"]["seed"],
        config=cfg,
    )


def _read_files(files: Sequence[str], source: str) -> list[Instance]:
    """The instances of ``files`` (paths relative to the problem file's folder), each checked."""
    from pathlib import Path

    base = Path(source).resolve().parent if not source.startswith("<") and Path(source).is_file() else Path(".")
    out = []
    for i, f in enumerate(files):
        path = Path(f) if Path(f).is_absolute() else base / f
        if not path.is_file():
            raise ConfigError(source, f"files[{i}]", f"file not found: {path}; allowed: a job-shop instance text file")
        try:
            out.append(inst_mod.read_file(path))
        except UnicodeDecodeError:
            raise ConfigError(source, f"files[{i}]", f"{path}: not UTF-8 text; allowed: a job-shop text file") from None
        except ValueError as e:
            raise ConfigError(source, f"files[{i}]", f"{path}: {e}") from None
    names = [inst.name for inst in out]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise ConfigError(source, f"files[{i}]", f"a second instance named {n!r}; give each file its own name")
    return out
