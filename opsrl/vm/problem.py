"""The VM-rescheduling problem on the opsrl contract, and its config schema.

A period is one migration (``periods`` = the migration number limit, MNL). ``post_decision`` applies the
move (a move the masks do not allow is skipped) and charges the change of fragment rate;
``transition`` is the identity, except after the last migration when drift is on: the plan made on the
snapshot is then applied, in its order, to the cluster as it is ``drift.latency`` seconds later (see
:func:`.simulator.drifted_state`; moves that became infeasible or pointless are skipped), and the cost
is the FR measured there minus the FR the plan reached on the snapshot, so the episode total is the
drifted final FR minus the initial FR.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..core import ActionSpec, ConfigError, Field, Problem, Scenarios, State, numpy_rng, validate
from ..core.config import non_negative, positive, probability
from . import simulator as sim
from .snapshots import GENERATORS, Snapshot, check_snapshot, generate, stack

DRIFT_SCHEMA = {
    "arrival_rate": Field(float, 0.0, allowed="VM arrivals per second (>= 0; 0: none)", check=non_negative),
    "departure_rate": Field(float, 0.0, allowed="departures per VM per second (>= 0)", check=non_negative),
    "horizon": Field(float, 600.0, allowed="seconds of drift drawn with the scenarios (> 0)", check=positive),
    "latency": Field(
        float,
        0.0,
        allowed="seconds between the snapshot and the plan's application in rollouts "
        "(>= 0; solvers that time themselves use their own time when measured_latency is true)",
        check=non_negative,
    ),
    "measured_latency": Field(
        bool,
        False,
        doc="solvers with their own evaluation (CP-SAT, best of K) apply their "
        "plan at their measured time instead of drift.latency",
    ),
}

SCHEMA = {
    "generator": Field(str, "medium", choices=tuple(GENERATORS) + ("file",)),
    "pms": Field(
        int, 0, allowed="a number of PMs from 0 to 10^5 (0: the generator's own)", check=non_negative, max=10**5
    ),
    "vms": Field(
        int,
        0,
        allowed="a cap on VMs per snapshot from 0 to 10^6 (0: the generator's own)",
        check=non_negative,
        max=10**6,
    ),
    "mnl": Field(
        int,
        50,
        allowed="a migration number limit from 1 to the number of VMs of a snapshot (the default 50 is cut to it)",
        check=lambda v: v >= 1,
        max=10**6,
    ),
    "block": Field(float, 16.0, allowed="a positive CPU block size", check=positive),
    "mem_block": Field(float, 64.0, allowed="a positive memory block size in GiB", check=positive),
    "objective": Field(str, "cpu", choices=("cpu", "multi")),
    "immovable": Field(float, 0.0, allowed="a fraction of VMs that may not move, in [0, 1]", check=probability),
    "anti_affinity": Field(
        dict,
        {},
        schema={
            "groups": Field(
                int, 0, allowed="a number of groups >= 0, at most VMs / size", check=non_negative, max=10**6
            ),
            "size": Field(int, 3, allowed="VMs per group, from 2 to 10^6", check=lambda v: v >= 2, max=10**6),
        },
    ),
    "file": Field(
        str,
        "",
        allowed="a trace or snapshot file (generator = 'file'; relative: to the problem file's folder)",
    ),
    "format": Field(str, "vmr2l", choices=("vmr2l", "azure", "huawei")),
    "trace": Field(dict, {}, doc="options of the trace loaders (see opsrl.vm.loaders)"),
    "drift": Field(dict, {}, schema=DRIFT_SCHEMA),
    "test": Field(
        dict,
        {},
        schema={
            "scenarios": Field(int, 8, allowed="a positive number of test snapshots", check=positive),
            "seed": Field(int, 0, allowed="an integer >= 0", check=non_negative),
        },
    ),
}


class VMRescheduling(Problem):
    family = "vm"
    metric = "total"

    def __init__(self, cfg: Mapping[str, Any], source: str = "<config>", snapshot: Snapshot | None = None):
        self.config = dict(cfg)
        self.source = source
        self.generator = cfg["generator"]
        self.mnl = int(cfg["mnl"])
        self.periods = self.mnl
        self.block, self.mem_block, self.objective = float(cfg["block"]), float(cfg["mem_block"]), cfg["objective"]
        self.drift = dict(cfg["drift"])
        self.test_scenarios = int(cfg["test"]["scenarios"])
        self.test_seed = int(cfg["test"]["seed"])
        self.snapshot = snapshot
        ref = self._snapshots(1, "dev", 0)[0] if snapshot is None else snapshot
        self.n_locations = 1
        self.action_spec = ActionSpec("discrete", shape=(2,), n=max(ref.V, 1))
        self.name = f"vm_{self.generator}_mnl{self.mnl}"

    # --- scenarios ------------------------------------------------------------------------------
    def _snapshots(self, n: int, split: str, seed: int) -> list[Snapshot]:
        if self.snapshot is not None:
            return [self.snapshot] * n
        c = self.config
        aa = c["anti_affinity"]
        out = []
        for i in range(n):
            rng = numpy_rng(seed, split, f"vm_snapshot_{i}")
            s = generate(
                self.generator,
                rng,
                c["pms"],
                c["vms"],
                c["immovable"],
                aa["groups"],
                aa["size"],
                name=f"{self.generator}_{split}_{seed}_{i}",
            )
            out.append(s)
        return out

    def _sample(self, n: int, split: str, seed: int, periods: int) -> dict[str, torch.Tensor]:
        data = stack(self._snapshots(n, split, seed), self.dtype)
        data.update(self._drift(data, split, seed))
        return data

    def _drift(self, data, split, seed) -> dict[str, torch.Tensor]:
        """Departure times of the snapshot's VMs and arrivals (time, CPU, memory, NUMA mode) over the horizon."""
        d = self.drift
        n, V = data["vm_cpu"].shape
        rng = numpy_rng(seed, split, "vm_drift")
        H = d["horizon"]
        dep = np.full((n, V), math.inf)
        if d["departure_rate"] > 0:
            dep = rng.exponential(1.0 / d["departure_rate"], size=(n, V))
            dep[dep > H] = math.inf
        A = 0
        if d["arrival_rate"] > 0:
            A = int(math.ceil(d["arrival_rate"] * H + 6 * math.sqrt(d["arrival_rate"] * H) + 5))
        gaps = rng.exponential(1.0 / d["arrival_rate"], size=(n, A)) if A else np.zeros((n, 0))
        at = np.cumsum(gaps, 1)
        at[at > H] = math.inf
        g = GENERATORS.get(self.generator, GENERATORS["medium"])
        from .snapshots import FLAVOUR_CPU

        probs = np.asarray(g["cpu_probs"], dtype=float)
        f = rng.choice(len(FLAVOUR_CPU), size=(n, A), p=probs / probs.sum())
        cpu = np.asarray(FLAVOUR_CPU, dtype=float)[f]
        node_cap = float(data["cap_cpu"].max()) if data["cap_cpu"].numel() else 1.0
        cpu = np.minimum(cpu, node_cap)
        mem = cpu * rng.choice(g["mem_per_cpu"], size=(n, A), p=g["mem_probs"])
        dbl = cpu > node_cap / 2
        t = lambda a, dt=self.dtype: torch.as_tensor(a, dtype=dt)
        return {
            "dep_time": t(dep),
            "arr_time": t(at),
            "arr_cpu": t(cpu),
            "arr_mem": t(mem),
            "arr_double": torch.as_tensor(dbl, dtype=torch.bool),
        }

    # --- dynamics --------------------------------------------------------------------------------
    def initial_state(self, scenarios: Scenarios) -> State:
        d = scenarios.data
        P = d["cap_cpu"].shape[1]
        keys = (
            "cap_cpu",
            "cap_mem",
            "pm_mask",
            "vm_cpu",
            "vm_mem",
            "vm_double",
            "vm_mask",
            "vm_movable",
            "vm_group",
            "vm_flavour",
            "vm_pm0",
            "vm_node0",
            "vm_kind",
            "kind_cpu",
            "kind_mem",
            "kind_double",
            "kind_vm",
            "n_groups",
        )
        state = {k: d[k] for k in keys}
        uc, um = sim.node_usage(d["vm_pm0"], d["vm_node0"], d["vm_cpu"], d["vm_mem"], d["vm_double"], d["vm_mask"], P)
        B = uc.shape[0]
        T = self.periods
        state.update(
            free_cpu=d["cap_cpu"] - uc,
            free_mem=d["cap_mem"] - um,
            vm_pm=d["vm_pm0"].clone(),
            vm_node=d["vm_node0"].clone(),
            t=torch.zeros(B, dtype=torch.long, device=uc.device),
            plan_vm=-torch.ones(B, T, dtype=torch.long, device=uc.device),
            plan_slot=-torch.ones(B, T, dtype=torch.long, device=uc.device),
        )
        return state

    def fr(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return sim.fragment_rate(state, self.block, self.objective, self.mem_block)

    def post_decision(
        self,
        state: State,
        action: torch.Tensor,
        allowed: torch.Tensor | None = None,
    ) -> tuple[State, torch.Tensor]:
        """Apply the move ``action`` ``[B, 2]``; ``allowed`` ``[B]`` (optional) is :func:`.simulator.move_allowed`
        of it, when the caller has it already (the fast best-of-K planner)."""
        a = action.reshape(action.shape[0], -1).long()
        vm, slot = a[:, 0], a[:, 1]
        ok = sim.move_allowed(state, vm, slot) if allowed is None else allowed
        before = self.fr(state)
        out = sim.apply_move(state, vm, slot, ok)
        T = out["plan_vm"].shape[1]
        t = out["t"].clamp(max=T - 1)[:, None]
        out["plan_vm"] = out["plan_vm"].scatter(1, t, torch.where(ok, vm, -1)[:, None])
        out["plan_slot"] = out["plan_slot"].scatter(1, t, torch.where(ok, slot, -1)[:, None])
        out["t"] = out["t"] + 1
        return out, self.fr(out) - before

    def drift_on(self) -> bool:
        return self.drift["arrival_rate"] > 0 or self.drift["departure_rate"] > 0

    def transition(self, post_state: State, scenarios: Scenarios, t: int) -> tuple[State, torch.Tensor]:
        zero = torch.zeros(
            post_state["t"].shape[0], dtype=post_state["free_cpu"].dtype, device=post_state["free_cpu"].device
        )
        if t != self.periods - 1 or not self.drift_on():
            return post_state, zero
        lat = torch.full_like(zero, self.drift["latency"])
        final = self.under_drift(post_state, scenarios, lat)
        return final, self.fr(final) - self.fr(post_state)

    def under_drift(self, planned: State, scenarios: Scenarios, latency: torch.Tensor) -> State:
        """The plan recorded in ``planned`` applied to the cluster ``latency[b]`` seconds after the snapshot."""
        s0 = self.initial_state(scenarios)
        drifted = sim.drifted_state(s0, scenarios.data, latency)
        final, applied = sim.apply_plan(drifted, planned["plan_vm"], planned["plan_slot"])
        final["applied"] = applied
        for k in ("plan_vm", "plan_slot", "t"):
            final[k] = planned[k]
        return final

    # --- views ----------------------------------------------------------------------------------
    def action_mask(self, state: State) -> torch.Tensor:
        """Stage 1: ``[B, V]`` VMs with at least one allowed destination (see :meth:`destination_mask`)."""
        return sim.first_stage_mask(state)

    def destination_mask(self, state: State, vm: torch.Tensor) -> torch.Tensor:
        """Stage 2: ``[B, S]`` allowed destination slots of the chosen VMs ``vm`` ``[B]``."""
        return sim.destination_mask(state, vm)

    def observe(self, state: State) -> torch.Tensor:
        fr = self.fr(state)
        T = self.periods
        return torch.stack([fr, state["t"].to(fr.dtype) / T, sim.migrations(state).to(fr.dtype) / T], 1)

    def observe_post(self, post_state: State) -> torch.Tensor:
        return self.observe(post_state)

    def bipartite(
        self, state: State, src: torch.Tensor | None = None, best: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The item/bin view for two-stage graph policies (:mod:`opsrl.nn.two_stage`): items are the VMs,
        bins the NUMA nodes (slots); ``item_bins`` ``[B, V, 2]`` are the slots a VM occupies (a single-NUMA
        VM repeats its one slot), ``bin_group`` ``[B, S]`` the PM of a slot. ``src``
        (:func:`.simulator.source_delta`) and ``best`` (the first output of :func:`.simulator.vm_best_moves`)
        of this state may be passed in when the caller has them already."""
        fc, fm = state["free_cpu"], state["free_mem"]
        B, P, _ = fc.shape
        cap_c = state["cap_cpu"].amax((1, 2)).clamp_min(1.0)[:, None]
        cap_m = state["cap_mem"].amax((1, 2)).clamp_min(1.0)[:, None]
        blk = self.block
        f = fc.reshape(B, 2 * P)
        g = fm.reshape(B, 2 * P)
        rem = torch.remainder(f, blk)
        bin_x = torch.stack(
            [
                f / cap_c,
                g / cap_m,
                rem / blk,
                torch.div(f, blk, rounding_mode="floor") * blk / cap_c,
                (rem > 0).to(f.dtype),
                torch.remainder(g, self.mem_block) / self.mem_block,
                (torch.arange(2 * P, device=f.device) % 2).to(f.dtype).expand(B, -1),
            ],
            -1,
        )
        own = sim.own_slot(state)
        second = torch.where(state["vm_double"], own + 1, own)
        src = sim.source_delta(state, blk, self.objective, self.mem_block) if src is None else src
        total = (f * state["pm_mask"].repeat_interleave(2, 1)).sum(1, keepdim=True).clamp_min(1.0)
        c, m = state["vm_cpu"], state["vm_mem"]
        if best is None:
            best, _ = sim.vm_best_moves(state, blk, self.objective, self.mem_block)
        best = torch.where(torch.isfinite(best), best * total / blk, torch.ones_like(best))
        item_x = torch.stack(
            [
                c / cap_c,
                m / cap_m,
                state["vm_double"].to(f.dtype),
                torch.remainder(c, blk) / blk,
                -src * total / blk,
                best.clamp(-2, 2),
                torch.isfinite(best).to(f.dtype),
                f.gather(1, own) / cap_c,
                rem.gather(1, own) / blk,
                ((state["vm_pm"] != state["vm_pm0"]) | (state["vm_node"] != state["vm_node0"])).to(f.dtype),
                (state["vm_group"] >= 0).to(f.dtype),
            ],
            -1,
        )
        return {
            "item_x": item_x,
            "bin_x": bin_x,
            "item_bins": torch.stack([own, second], -1),
            "item_mask": state["vm_mask"],
            "bin_mask": state["pm_mask"].repeat_interleave(2, 1),
            "bin_group": torch.arange(2 * P, device=f.device).expand(B, -1) // 2,
            "global_x": torch.stack([self.fr(state), state["t"].to(f.dtype) / self.periods], -1),
        }

    def pair_features(self, state: State, vm: torch.Tensor) -> torch.Tensor:
        """``[B, S, 4]`` each slot seen from the chosen VM ``vm[b]``: the FR change at the slot and of the whole
        move (in blocks of CPU over the total free CPU, so of order one), allowed, on the VM's own PM."""
        B, P, _ = state["free_cpu"].shape
        dest = sim.kind_dest_delta(state, self.block, self.objective, self.mem_block)
        kind = state["vm_kind"].gather(1, vm.clamp_min(0)[:, None])  # [B, 1]
        d = dest.gather(1, kind[..., None].expand(-1, 1, 2 * P))[:, 0]
        src = sim.source_delta(state, self.block, self.objective, self.mem_block).gather(1, vm.clamp_min(0)[:, None])
        f = state["free_cpu"].reshape(B, 2 * P) * state["pm_mask"].repeat_interleave(2, 1)
        scale = f.sum(1, keepdim=True).clamp_min(1.0) / self.block
        ok = sim.destination_mask(state, vm)
        same = (torch.arange(2 * P, device=f.device) // 2)[None] == state["vm_pm"].gather(1, vm.clamp_min(0)[:, None])
        return torch.stack(
            [(d * scale).clamp(-2, 2), ((d + src) * scale).clamp(-2, 2), ok.to(f.dtype), same.to(f.dtype)], -1
        )

    def pair_features_of(
        self, state: State, vm: torch.Tensor, src: torch.Tensor, ok: torch.Tensor, weights: tuple | None = None
    ) -> torch.Tensor:
        """:meth:`pair_features` (the same numbers) with the state's :func:`.simulator.source_delta` ``src`` and
        the chosen VMs' :meth:`destination_mask` ``ok`` given, computing the destination change only for the
        chosen VMs' kinds (``[B, 1, S]`` instead of every kind's ``[B, K, S]``); ``weights``: the state's FR
        weights (:func:`.simulator._weights`, constant under migration) when the caller has them."""
        B, P, _ = state["free_cpu"].shape
        v = vm.clamp_min(0)[:, None]
        kinds = state["vm_kind"].gather(1, v)
        d = sim.kind_dest_delta(state, self.block, self.objective, self.mem_block, kinds=kinds, weights=weights)[:, 0]
        f = state["free_cpu"].reshape(B, 2 * P) * state["pm_mask"].repeat_interleave(2, 1)
        scale = f.sum(1, keepdim=True).clamp_min(1.0) / self.block
        s = src.gather(1, v)
        same = (torch.arange(2 * P, device=f.device) // 2)[None] == state["vm_pm"].gather(1, v)
        return torch.stack(
            [(d * scale).clamp(-2, 2), ((d + s) * scale).clamp(-2, 2), ok.to(f.dtype), same.to(f.dtype)], -1
        )

    def describe(self) -> str:
        return f"VM rescheduling ({self.generator}, MNL {self.mnl}, objective {self.objective})"


def build(config: Mapping[str, Any], source: str) -> VMRescheduling:
    cfg = validate(config, SCHEMA, source)
    snapshot = None
    if cfg["generator"] == "file":
        from .loaders import load

        if not cfg["file"]:
            raise ConfigError(source, "file", "missing; generator = 'file' needs a file path")
        snapshot = load(cfg["file"], cfg["format"], cfg["trace"], source)  # relative: to the problem file's folder
    elif cfg["file"]:
        raise ConfigError(source, "file", "only with generator = 'file'")
    if snapshot is not None:
        check_snapshot(snapshot, source, "file")
    else:  # groups of distinct VMs: more than fit in a snapshot would be searched for without end
        aa, n_vms = cfg["anti_affinity"], cfg["vms"] or GENERATORS[cfg["generator"]]["vms"]
        if aa["groups"] * aa["size"] > n_vms:
            raise ConfigError(
                source,
                "anti_affinity.groups",
                f"{aa['groups']} groups of {aa['size']} VMs are more than the {n_vms} VMs of a snapshot; at most "
                f"{n_vms // aa['size']} groups of {aa['size']} are allowed",
            )
    problem = VMRescheduling(cfg, source, snapshot)
    n_vms = problem.action_spec.n
    if problem.mnl > n_vms:  # at most MNL VMs end away from their start: an MNL above the VMs limits nothing
        if "mnl" in config:
            raise ConfigError(
                source,
                "mnl",
                f"{problem.mnl} is more migrations than the {n_vms} VMs of a snapshot; an integer from 1 to "
                f"{n_vms} is allowed",
            )
        problem = VMRescheduling({**cfg, "mnl": n_vms}, source, snapshot)  # the default 50, cut to the VMs
    return problem
