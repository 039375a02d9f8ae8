"""Inventory networks: locations linked by shipping lanes, one batched simulator for every topology.

A network has ``N`` locations of three kinds, fed by one virtual supplier with unlimited stock:

* ``warehouse``: holds stock (holding cost ``h``), ships to the locations it is linked to;
* ``centre``: cannot hold stock: whatever it has at decision time is shipped out in the same period
  (transshipment point);
* ``store``: faces demand (lost sales or backlog for the whole network), holding cost ``h``, shortage
  cost ``p``.

Lanes (edges) ``e = (src -> dst)`` carry a lead time ``L_e >= 1`` and a shipping cost ``c_e`` per
unit; ``src`` is a location or the supplier. Timing of period ``t`` (the single store's, per lane):

1. state: ``on_hand[B, N]`` (after this period's arrivals; negative at a store = backlog) and
   ``pipe[B, E, Lmax]`` (``pipe[:, e, k]`` arrives in ``k + 1`` periods);
2. the action is a requested shipment per lane ``[B, E]`` (``>= 0``). **Allocation**: a warehouse
   that is asked for more than it has ships every lane the same fraction ``on_hand / requested``
   (proportional allocation, differentiable in the requests and the stock); a centre always ships
   all its stock, split in proportion to the requests (a softmax-free, proportional split; equal
   split when nothing is requested). A location never ships more than it holds. Shipments placed at
   ``t`` on a lane with lead time ``L`` are on hand at ``t + L`` (cost ``c_e`` per unit shipped);
3. demand is served from store stock; the period's cost is ``sum_i h_i * stock_i^+`` after demand
   plus ``p_i`` per unit lost (lost sales) or per unit backlogged at the end of the period (backlog);
4. the pipelines advance.

Costs are reported per store and per period (``n_locations`` = number of stores). Demand is drawn up
front: Normal (clipped at 0) or Poisson per store, with a mean and a coefficient of variation per
store and an equicorrelation ``rho`` across stores (Gaussian copula; Poisson with ``rho = 0`` is drawn
directly).

Models (``model = ...`` in a problem file), all built into the same :class:`Network`:

* ``serial``: K stages, stage 1 the store (backlog), stage K fed by the supplier; echelon holding
  costs (installation cost of stage k = sum of echelon costs of stages >= k); per-stage lead times;
* ``warehouse``: one warehouse and n stores (lost sales by default);
* ``transshipment``: a centre that cannot hold stock and n stores (backlog by default);
* ``multi_warehouse``: several warehouses and stores with an explicit adjacency (per-lane lead time
  and shipping cost);
* ``identical``: n identical single stores, each fed by the supplier (its optimum is n times the
  single-store optimum).

Per-store parameters are lists that are cycled over the stores (store i takes ``values[i % len]``), so
the same file describes 3 or 50 stores with the same mix of stores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core import ActionSpec, ConfigError, Field, Problem, Scenarios, State, generator, validate
from ..core.config import non_negative, positive

WAREHOUSE, CENTRE, STORE = 0, 1, 2
KINDS = ("warehouse", "centre", "store")
SUPPLIER = -1


@dataclass
class Topology:
    """Locations and lanes of a network (numpy arrays; built once per problem)."""

    kind: np.ndarray  # [N] WAREHOUSE / CENTRE / STORE
    holding: np.ndarray  # [N]
    shortage: np.ndarray  # [N] (0 except at stores)
    mean: np.ndarray  # [N] demand mean per period (0 except at stores)
    cv: np.ndarray  # [N] demand coefficient of variation (stores)
    src: np.ndarray  # [E] source location, -1 for the supplier
    dst: np.ndarray  # [E]
    lead: np.ndarray  # [E] lead times >= 1
    ship_cost: np.ndarray  # [E]

    @property
    def n(self) -> int:
        return len(self.kind)

    @property
    def e(self) -> int:
        return len(self.src)


def _cycle(values: list, n: int) -> np.ndarray:
    return np.array([values[i % len(values)] for i in range(n)], dtype=float)


class Network(Problem):
    """Batched inventory network; see the module docstring for the timing and allocation rules."""

    def __init__(
        self,
        topo: Topology,
        unmet: str = "lost_sales",
        distribution: str = "normal",
        correlation: float = 0.0,
        periods: int = 50,
        warmup: int = 10,
        initial: tuple[float, float] = (0.0, 2.0),
        test: Mapping[str, int] | None = None,
        model: str = "network",
        meta: Mapping[str, Any] | None = None,
    ):
        if warmup >= periods:
            raise ValueError(f"warmup ({warmup}) must be shorter than periods ({periods})")
        if (topo.lead < 1).any():
            raise ValueError("every lane needs a lead time >= 1")
        if unmet not in ("lost_sales", "backlog") or distribution not in ("normal", "poisson"):
            raise ValueError("unmet must be lost_sales or backlog; distribution normal or poisson")
        if not -1e-12 <= correlation < 1:
            raise ValueError("correlation must be in [0, 1)")
        self.topo, self.unmet, self.distribution, self.rho = topo, unmet, distribution, float(correlation)
        self.model, self.meta = model, dict(meta or {})
        self.periods, self.warmup, self.initial = int(periods), int(warmup), initial
        test = dict(test or {})
        self.test_scenarios = test.get("scenarios", 256)
        self.test_periods = test.get("periods", 300)
        self.test_warmup = test.get("warmup", 50)
        self.test_seed = test.get("seed", 0)
        self.integer = distribution == "poisson"
        N, E = topo.n, topo.e
        self.stores = np.flatnonzero(topo.kind == STORE)
        self.n_locations = len(self.stores)
        self.L_max = int(topo.lead.max())
        self.action_spec = ActionSpec("continuous", (E,), 0.0, math.inf, integer=self.integer)
        self.name = f"{model}_n{self.n_locations}"
        # --- static tensors (float32 on the CPU; moved to the state's device on first use) -------
        self._flow, self._node_flow = self._flows()
        self.primary = self._primary_lanes()
        self.desc = self._descendants()
        self._np = {
            "h": topo.holding,
            "p": topo.shortage,
            "is_centre": (topo.kind == CENTRE).astype(float),
            "is_store": (topo.kind == STORE).astype(float),
            "node_scale": np.maximum(self._node_flow, 1e-6),
            "edge_scale": np.maximum(self._flow, 1e-6),
            "c": topo.ship_cost,
            "desc": self.desc,
            "slot": (np.arange(self.L_max)[None, :] == (topo.lead - 1)[:, None]).astype(float),
            "valid_init": (np.arange(self.L_max)[None, :] < (topo.lead - 1)[:, None]).astype(float),
        }
        self._idx_np = {"src": np.where(topo.src < 0, N, topo.src), "dst": topo.dst, "stores": self.stores}
        self._cache: dict[tuple, dict[str, torch.Tensor]] = {}
        self.action_scale = torch.as_tensor(self._np["edge_scale"], dtype=torch.float32)
        self.config = {}

    # --- static structure ----------------------------------------------------------------------
    def _flows(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean flow per lane and throughput per location: a store's demand is split evenly over its
        inbound lanes, a location's throughput over its inbound lanes, upstream from the stores."""
        t = self.topo
        node = t.mean.copy()
        flow = np.zeros(t.e)
        indeg = np.bincount(t.dst, minlength=t.n).astype(float)
        # process locations in an order where every location comes after all its destinations
        order, done = [], np.zeros(t.n, bool)
        for _ in range(t.n + 1):
            for i in range(t.n):
                if not done[i] and all(done[d] for d in t.dst[t.src == i]):
                    done[i] = True
                    order.append(i)
        if not done.all():
            raise ValueError("the network has a cycle")
        for i in order:
            node[i] = t.mean[i] + flow[t.src == i].sum()
            flow[t.dst == i] = node[i] / max(indeg[i], 1.0)
        return flow, node

    def _primary_lanes(self) -> np.ndarray:
        """For each location, its inbound lane with the smallest (lead time, cost, index)."""
        t = self.topo
        out = np.full(t.n, -1)
        for i in range(t.n):
            lanes = np.flatnonzero(t.dst == i)
            if len(lanes) == 0:
                raise ValueError(f"location {i} has no inbound lane")
            out[i] = min(lanes, key=lambda e: (t.lead[e], t.ship_cost[e], e))
        return out

    def _descendants(self) -> np.ndarray:
        """``D[i, j] = 1`` when j is i or below i in the tree of primary lanes."""
        t = self.topo
        parent = np.where(t.src[self.primary] < 0, -1, t.src[self.primary])
        D = np.eye(t.n)
        for j in range(t.n):
            i = parent[j]
            while i >= 0:
                D[i, j] = 1.0
                i = parent[i]
        return D

    def echelon_demand(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation per period of the demand of each location's echelon (stores in
        its primary subtree), with the network's correlation."""
        t = self.topo
        sd = t.mean * t.cv if self.distribution == "normal" else np.sqrt(t.mean)
        cov = self.rho * np.outer(sd, sd) + (1 - self.rho) * np.diag(sd**2)
        mean = self.desc @ t.mean
        var = np.einsum("ij,jk,ik->i", self.desc, cov, self.desc)
        return mean, np.sqrt(np.maximum(var, 0.0))

    def tensors(self, device, dtype=torch.float32) -> dict[str, torch.Tensor]:
        key = (str(device), dtype)
        if key not in self._cache:
            d = {k: torch.as_tensor(np.ascontiguousarray(v), dtype=dtype, device=device) for k, v in self._np.items()}
            d.update({k: torch.as_tensor(v, dtype=torch.long, device=device) for k, v in self._idx_np.items()})
            self._cache[key] = d
        return self._cache[key]

    # --- scenarios -----------------------------------------------------------------------------
    def _sample(self, n: int, split: str, seed: int, periods: int) -> dict[str, torch.Tensor]:
        t = self.topo
        m = t.mean[self.stores]
        S = len(self.stores)
        g = generator(seed, split, "demand")
        if self.distribution == "poisson" and self.rho == 0:
            demand = torch.poisson(
                torch.as_tensor(m, dtype=torch.float64).expand(n, periods, S).contiguous(), generator=g
            )
        else:
            z = torch.randn(n, periods, S, generator=g, dtype=torch.float64)
            if self.rho > 0:
                z0 = torch.randn(n, periods, 1, generator=g, dtype=torch.float64)
                z = math.sqrt(self.rho) * z0 + math.sqrt(1 - self.rho) * z
            if self.distribution == "normal":
                mt = torch.as_tensor(m, dtype=torch.float64)
                demand = (mt + mt * torch.as_tensor(t.cv[self.stores], dtype=torch.float64) * z).clamp_min(0.0)
            else:
                from scipy import stats

                u = stats.norm.cdf(z.numpy())
                demand = torch.as_tensor(stats.poisson.ppf(np.clip(u, 1e-15, 1 - 1e-15), m))
        lo, hi = self.initial
        g0 = generator(seed, split, "initial")
        oh = (lo + (hi - lo) * torch.rand(n, t.n, generator=g0, dtype=torch.float64)) * torch.as_tensor(
            self._np["node_scale"]
        )
        pipe = (
            (lo + (hi - lo) * torch.rand(n, t.e, self.L_max, generator=g0, dtype=torch.float64))
            * torch.as_tensor(self._np["edge_scale"])[:, None]
            * torch.as_tensor(self._np["valid_init"])
        )
        if self.integer:
            oh, pipe = oh.round(), pipe.round()
        return {"demand": demand.to(self.dtype), "on_hand": oh.to(self.dtype), "pipe": pipe.to(self.dtype)}

    # --- dynamics ------------------------------------------------------------------------------
    def initial_state(self, scenarios: Scenarios) -> State:
        return {"on_hand": scenarios["on_hand"], "pipe": scenarios["pipe"]}

    def allocate(self, on_hand: torch.Tensor, request: torch.Tensor) -> torch.Tensor:
        """Shipments ``[B, E]`` for requests ``[B, E]``: proportional allocation at warehouses, all stock
        of a centre split in proportion to the requests, the supplier ships what is asked."""
        T = self.tensors(request.device, request.dtype)
        B, N = on_hand.shape
        req = request.clamp_min(0.0)
        # a centre must ship everything: a tiny floor on its requests gives an even split when none
        is_c_lane = T["is_centre"].new_zeros(N + 1)
        is_c_lane[:N] = T["is_centre"]
        is_c_lane = is_c_lane[T["src"]]
        req = req + is_c_lane * 1e-6 * T["edge_scale"]
        total = req.new_zeros(B, N + 1).index_add(1, T["src"], req)[:, :N]
        avail = on_hand.clamp_min(0.0)
        ratio = avail / total.clamp_min(1e-9)
        frac = torch.where(T["is_centre"] > 0, ratio, ratio.clamp(max=1.0))
        frac = torch.cat([frac, frac.new_ones(B, 1)], dim=1)  # the supplier ships in full
        return req * frac[:, T["src"]]

    def post_decision(self, state: State, action: torch.Tensor) -> tuple[State, torch.Tensor]:
        T = self.tensors(action.device, state["on_hand"].dtype)
        B = action.shape[0]
        ship = self.allocate(state["on_hand"], action.reshape(B, -1))
        out = ship.new_zeros(B, self.topo.n + 1).index_add(1, T["src"], ship)[:, : self.topo.n]
        on_hand = state["on_hand"] - out
        pipe = state["pipe"] + ship[:, :, None] * T["slot"]
        return {"on_hand": on_hand, "pipe": pipe}, (ship * T["c"]).sum(dim=1)

    def transition(self, post_state: State, scenarios: Scenarios, t: int) -> tuple[State, torch.Tensor]:
        oh = post_state["on_hand"]
        T = self.tensors(oh.device, oh.dtype)
        d = oh.new_zeros(oh.shape).index_copy(1, T["stores"], scenarios["demand"][:, t])
        if self.unmet == "lost_sales":
            sales = torch.minimum(oh.clamp_min(0.0), d)
            left = oh - sales
            short = d - sales
        else:
            left = oh - d
            short = (-left).clamp_min(0.0) * T["is_store"]
        cost = (T["h"] * left.clamp_min(0.0) + T["p"] * short).sum(dim=1)
        pipe = post_state["pipe"]
        arrivals = oh.new_zeros(oh.shape).index_add(1, T["dst"], pipe[:, :, 0])
        nxt = {"on_hand": left + arrivals, "pipe": torch.cat([pipe[:, :, 1:], pipe[:, :, :1] * 0], dim=2)}
        return nxt, cost

    # --- views ---------------------------------------------------------------------------------
    def local_position(self, state: State) -> torch.Tensor:
        """On hand plus everything in transit to each location ``[B, N]``."""
        T = self.tensors(state["on_hand"].device, state["on_hand"].dtype)
        inbound = state["on_hand"].new_zeros(state["on_hand"].shape).index_add(1, T["dst"], state["pipe"].sum(2))
        return state["on_hand"] + inbound

    def echelon_position(self, state: State) -> torch.Tensor:
        """Local positions summed over each location's primary subtree ``[B, N]``."""
        T = self.tensors(state["on_hand"].device, state["on_hand"].dtype)
        return self.local_position(state) @ T["desc"].T

    def observe(self, state: State) -> torch.Tensor:
        T = self.tensors(state["on_hand"].device, state["on_hand"].dtype)
        ns = T["node_scale"]
        pipe = (state["pipe"] / T["edge_scale"][:, None])[:, self._pipe_mask()]
        return torch.cat([state["on_hand"] / ns, pipe, self.echelon_position(state) / ns], dim=1)

    def _pipe_mask(self) -> torch.Tensor:
        if not hasattr(self, "_pm"):
            self._pm = torch.as_tensor(np.arange(self.L_max)[None, :] < (self.topo.lead - 1)[:, None])
        return self._pm

    def graph(self, state: State):
        """One graph per scenario: the locations plus a supplier node, every lane in both directions.

        Node features (size-free: stock is divided by the location's mean throughput): kind one-hot
        (supplier, warehouse, centre, store), on hand, local and echelon inventory position, holding
        and shortage cost, demand cv. Edge features: direction, lead time / 4, shipping cost, stock in
        transit in total and arriving in 1, 2, 3 periods (divided by the lane's mean flow). The first
        ``E`` edges of each graph are the lanes downstream, in action order (``action_edge``), with their
        scale (``action_scale``).
        """
        from torch_geometric.data import Batch

        oh = state["on_hand"]
        T = self.tensors(oh.device, oh.dtype)
        B, N = oh.shape
        E = self.topo.e
        G = self._graph_static(oh.device, oh.dtype)
        ns = T["node_scale"]
        dyn = torch.stack([oh / ns, self.local_position(state) / ns, self.echelon_position(state) / ns], dim=2)
        dyn = torch.cat([dyn, dyn.new_zeros(B, 1, 3)], dim=1)  # the supplier
        x = torch.cat([G["node_static"].expand(B, N + 1, -1), dyn], dim=2).reshape(B * (N + 1), -1)
        p = state["pipe"] / T["edge_scale"][:, None]
        lanes = torch.stack([p.sum(2), p[:, :, 0], p[:, :, :2].sum(2), p[:, :, :3].sum(2)], dim=2)
        lanes = torch.cat([lanes, lanes], dim=1)  # the same lane features in both directions
        ea = torch.cat([G["edge_static"].expand(B, 2 * E, -1), lanes], dim=2).reshape(B * 2 * E, -1)
        off = torch.arange(B, device=oh.device) * (N + 1)
        ei = (G["edge_index"][:, None, :] + off[None, :, None]).reshape(2, -1)
        batch = torch.arange(B, device=oh.device).repeat_interleave(N + 1)
        action_edge = (
            torch.arange(B, device=oh.device)[:, None] * 2 * E + torch.arange(E, device=oh.device)[None, :]
        ).reshape(-1)
        return Batch(
            x=x,
            edge_index=ei,
            edge_attr=ea,
            batch=batch,
            ptr=torch.arange(B + 1, device=oh.device) * (N + 1),
            num_nodes=B * (N + 1),
            action_edge=action_edge,
            action_scale=T["edge_scale"].repeat(B),
            num_graphs=B,
        )

    def _graph_static(self, device, dtype) -> dict[str, torch.Tensor]:
        key = ("graph", str(device), dtype)
        if key not in self._cache:
            t, N, E = self.topo, self.topo.n, self.topo.e
            onehot = np.zeros((N + 1, 4))
            onehot[np.arange(N), t.kind + 1] = 1.0
            onehot[N, 0] = 1.0
            cost = np.zeros((N + 1, 3))
            cost[:N] = np.stack([t.holding, t.shortage / 10.0, t.cv], axis=1)
            src = np.where(t.src < 0, N, t.src)
            ei = np.concatenate([np.stack([src, t.dst]), np.stack([t.dst, src])], axis=1)
            est = np.zeros((2 * E, 3))
            est[:E, 0] = 1.0
            est[:, 1] = np.concatenate([t.lead, t.lead]) / 4.0
            est[:, 2] = np.concatenate([t.ship_cost, t.ship_cost])
            self._cache[key] = {
                "node_static": torch.as_tensor(np.concatenate([onehot, cost], 1), dtype=dtype, device=device)[None],
                "edge_static": torch.as_tensor(est, dtype=dtype, device=device)[None],
                "edge_index": torch.as_tensor(ei, dtype=torch.long, device=device),
            }
        return self._cache[key]

    def describe(self) -> str:
        t = self.topo
        counts = ", ".join(f"{int((t.kind == k).sum())} {KINDS[k]}s" for k in range(3) if (t.kind == k).any())
        return (
            f"inventory network ({self.model}): {counts}, {t.e} lanes, {self.unmet.replace('_', ' ')}, "
            f"{self.distribution} demand, correlation {self.rho:g}"
        )


# --- building networks from config ---------------------------------------------------------------
def _pos_list(allowed: str, empty_ok: bool = False):
    return Field(list, allowed=allowed, check=lambda v: (len(v) > 0 or empty_ok) and all(x >= 0 for x in v), item=float)


TEST_SCHEMA = {
    "scenarios": Field(int, 256, allowed="a positive integer", check=positive),
    "periods": Field(int, 300, allowed="a positive integer", check=positive),
    "warmup": Field(int, 50, allowed="an integer >= 0", check=non_negative),
    "seed": Field(int, 0, allowed="an integer >= 0", check=non_negative),
}

INITIAL_SCHEMA = {
    "low": Field(float, 0.0, allowed="a number >= 0 (times the location's mean flow)", check=non_negative),
    "high": Field(float, 2.0, allowed="a number >= low (times the location's mean flow)", check=non_negative),
}


def _lead_list(default=None):
    return Field(
        list,
        default if default is not None else [1],
        item=int,
        allowed="a non-empty list of lead times >= 1 (cycled over the stores)",
        check=lambda v: len(v) > 0 and all(x >= 1 for x in v),
    )


def _num_list(default, allowed="a non-empty list of numbers >= 0 (cycled over the stores)", strict=False):
    return Field(
        list,
        default,
        item=float,
        allowed=allowed,
        check=lambda v: len(v) > 0 and all((x > 0) if strict else (x >= 0) for x in v),
    )


COMMON = {
    "model": Field(str, choices=("serial", "warehouse", "transshipment", "multi_warehouse", "identical")),
    "periods": Field(int, 50, allowed="a positive integer (training episode length)", check=positive),
    "warmup": Field(int, 10, allowed="an integer >= 0 (periods left out of the training loss)", check=non_negative),
    "distribution": Field(str, "normal", choices=("normal", "poisson")),
    "initial": Field(dict, {}, schema=INITIAL_SCHEMA),
    "test": Field(dict, {}, schema=TEST_SCHEMA),
    "target_penalty": Field(
        float,
        0.0,
        allowed="a number >= 0: the TS-DDR target penalty (0: automatic; docs/lagrangian.md)",
        check=non_negative,
    ),
}

STORE_KEYS = {
    "demand_mean": _num_list([5.0], "a non-empty list of positive means (cycled over the stores)", strict=True),
    "demand_cv": _num_list([0.5], "a non-empty list of coefficients of variation >= 0 (normal demand)"),
    "holding_cost": _num_list([1.0]),
    "shortage_cost": _num_list([9.0], "a non-empty list of positive shortage costs", strict=True),
    "lead_time": _lead_list(),
}

SCHEMAS = {
    "serial": {
        **COMMON,
        "stages": Field(int, allowed="an integer from 1 to 10", check=lambda v: 1 <= v <= 10),
        "lead_times": _lead_list([1]),
        "echelon_holding": _num_list(
            [1.0], "a non-empty list of echelon holding costs >= 0, stage 1 (the store) first"
        ),
        "shortage_cost": Field(float, allowed="a positive number", check=positive),
        "demand_mean": Field(float, allowed="a positive number", check=positive),
        "demand_cv": Field(float, 0.0, allowed="a number >= 0 (normal demand)", check=non_negative),
        "unmet": Field(str, "backlog", choices=("backlog",)),
    },
    "warehouse": {
        **COMMON,
        "stores": Field(int, allowed="a number of stores from 1 to 10^5", check=positive, max=10**5),
        "correlation": Field(float, 0.0, allowed="a number in [0, 1)", check=lambda v: 0 <= v < 1),
        "unmet": Field(str, "lost_sales", choices=("lost_sales", "backlog")),
        "warehouse_holding_cost": Field(float, 0.5, allowed="a number >= 0", check=non_negative),
        "warehouse_lead_time": Field(int, 2, allowed="an integer >= 1", check=lambda v: v >= 1),
        "store": Field(dict, {}, schema=STORE_KEYS),
    },
    "transshipment": {
        **COMMON,
        "stores": Field(int, allowed="a number of stores from 1 to 10^5", check=positive, max=10**5),
        "correlation": Field(float, 0.0, allowed="a number in [0, 1)", check=lambda v: 0 <= v < 1),
        "unmet": Field(str, "backlog", choices=("lost_sales", "backlog")),
        "centre_lead_time": Field(int, 2, allowed="an integer >= 1", check=lambda v: v >= 1),
        "store": Field(dict, {}, schema=STORE_KEYS),
    },
    "multi_warehouse": {
        **COMMON,
        "stores": Field(int, allowed="a number of stores from 1 to 10^5", check=positive, max=10**5),
        "warehouses": Field(int, allowed="a number of warehouses from 1 to 10^4", check=positive, max=10**4),
        "correlation": Field(float, 0.0, allowed="a number in [0, 1)", check=lambda v: 0 <= v < 1),
        "unmet": Field(str, "lost_sales", choices=("lost_sales", "backlog")),
        "warehouse_holding_cost": _num_list([0.5], "a non-empty list of numbers >= 0 (cycled over the warehouses)"),
        "warehouse_lead_time": _lead_list([2]),
        "lanes": Field(list, allowed="a list of tables {warehouse, store, lead_time, cost}"),
        "store": Field(dict, {}, schema={k: v for k, v in STORE_KEYS.items() if k != "lead_time"}),
    },
    "identical": {
        **COMMON,
        "stores": Field(int, allowed="a number of stores from 1 to 10^5", check=positive, max=10**5),
        "lead_time": Field(int, allowed="an integer >= 1", check=lambda v: v >= 1),
        "holding_cost": Field(float, 1.0, allowed="a number >= 0", check=non_negative),
        "shortage_cost": Field(float, allowed="a positive number", check=positive),
        "demand_mean": Field(float, allowed="a positive number", check=positive),
        "demand_cv": Field(float, 0.0, allowed="a number >= 0 (normal demand)", check=non_negative),
        "unmet": Field(str, "lost_sales", choices=("lost_sales", "backlog")),
    },
}

LANE_SCHEMA = {
    "warehouse": Field(int, allowed="a warehouse index >= 0", check=non_negative),
    "store": Field(int, allowed="a store index >= 0", check=non_negative),
    "lead_time": Field(int, allowed="an integer >= 1", check=lambda v: v >= 1),
    "cost": Field(float, 0.0, allowed="a number >= 0", check=non_negative),
}


def _check_lengths(cfg: Mapping[str, Any], source: str, model: str) -> None:
    """A list cycled over the stages or stores may not be longer than them (it would be cut silently)."""
    n, what = (cfg["stages"], "stages") if model == "serial" else (cfg.get("stores"), "stores")
    lists = [(k, cfg[k]) for k in ("lead_times", "echelon_holding") if k in cfg]
    lists += [(f"store.{k}", v) for k, v in (cfg.get("store") or {}).items()]
    for key, v in lists:
        if n and isinstance(v, list) and len(v) > n:
            raise ConfigError(
                source, key, f"{len(v)} values for {n} {what}; give at most {n} (a shorter list is cycled)"
            )


def _stores(cfg: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    s = cfg["store"]
    return {k: _cycle(v, n) for k, v in s.items()}


def serial_topology(
    stages: int, lead_times: list[int], echelon_holding: list[float], shortage: float, mean: float, cv: float = 0.0
) -> Topology:
    """Stage 1 (index 0) is the store; stage k ships to stage k - 1; the supplier feeds stage K."""
    K = stages
    L = _cycle(lead_times, K).astype(int)
    eh = _cycle(echelon_holding, K)
    inst = np.cumsum(eh[::-1])[::-1].copy()  # installation cost of stage k = sum of echelon costs of stages >= k
    kind = np.array([STORE] + [WAREHOUSE] * (K - 1))
    z = np.zeros(K)
    src = np.array([k + 1 if k + 1 < K else SUPPLIER for k in range(K)])
    return Topology(
        kind, inst, np.r_[shortage, z[1:]], np.r_[mean, z[1:]], np.r_[cv, z[1:]], src, np.arange(K), L, np.zeros(K)
    )


def build_network(cfg: Mapping[str, Any], source: str) -> Network:
    """Validate a network problem table and build its :class:`Network`."""
    model = cfg.get("model")
    if model not in SCHEMAS:
        raise ConfigError(
            source, "model", f"{model!r} is not allowed; choose one of 'single_store', {', '.join(map(repr, SCHEMAS))}"
        )
    cfg = validate(cfg, SCHEMAS[model], source)
    if cfg["warmup"] >= cfg["periods"]:
        raise ConfigError(source, "warmup", f"must be less than periods ({cfg['periods']})")
    if cfg["test"]["warmup"] >= cfg["test"]["periods"]:
        raise ConfigError(source, "test.warmup", f"must be less than test.periods ({cfg['test']['periods']})")
    if cfg["initial"]["high"] < cfg["initial"]["low"]:
        raise ConfigError(source, "initial.high", f"must be >= initial.low ({cfg['initial']['low']})")
    _check_lengths(cfg, source, model)
    dist = cfg["distribution"]
    meta: dict[str, Any] = {}
    if model == "serial":
        topo = serial_topology(
            cfg["stages"],
            cfg["lead_times"],
            cfg["echelon_holding"],
            cfg["shortage_cost"],
            cfg["demand_mean"],
            cfg["demand_cv"],
        )
        meta = {
            "stages": cfg["stages"],
            "lead_times": [int(x) for x in topo.lead],
            "echelon_holding": list(_cycle(cfg["echelon_holding"], cfg["stages"])),
        }
        if dist == "normal" and cfg["demand_cv"] <= 0:
            raise ConfigError(source, "demand_cv", "normal demand needs demand_cv > 0")
        rho = 0.0
    elif model == "identical":
        n = cfg["stores"]
        topo = Topology(
            np.full(n, STORE),
            np.full(n, cfg["holding_cost"]),
            np.full(n, cfg["shortage_cost"]),
            np.full(n, cfg["demand_mean"]),
            np.full(n, cfg["demand_cv"]),
            np.full(n, SUPPLIER),
            np.arange(n),
            np.full(n, cfg["lead_time"]),
            np.zeros(n),
        )
        rho = 0.0
    elif model in ("warehouse", "transshipment"):
        n = cfg["stores"]
        s = _stores(cfg, n)
        centre = model == "transshipment"
        kind = np.r_[CENTRE if centre else WAREHOUSE, np.full(n, STORE)]
        h0 = 0.0 if centre else cfg["warehouse_holding_cost"]
        L0 = cfg["centre_lead_time" if centre else "warehouse_lead_time"]
        topo = Topology(
            kind,
            np.r_[h0, s["holding_cost"]],
            np.r_[0.0, s["shortage_cost"]],
            np.r_[0.0, s["demand_mean"]],
            np.r_[0.0, s["demand_cv"]],
            np.r_[SUPPLIER, np.zeros(n, int)].astype(int),
            np.arange(n + 1),
            np.r_[L0, s["lead_time"]].astype(int),
            np.zeros(n + 1),
        )
        rho = cfg["correlation"]
    else:  # multi_warehouse
        m, n = cfg["warehouses"], cfg["stores"]
        s = _stores(cfg, n)
        lanes = []
        for i, lane in enumerate(cfg["lanes"]):
            lane = validate(lane, LANE_SCHEMA, source, prefix=f"lanes[{i}].")
            if lane["warehouse"] >= m:
                raise ConfigError(source, f"lanes[{i}].warehouse", f"must be below warehouses ({m})")
            if lane["store"] >= n:
                raise ConfigError(source, f"lanes[{i}].store", f"must be below stores ({n})")
            lanes.append(lane)
        served = {lane["store"] for lane in lanes}
        missing = sorted(set(range(n)) - served)
        if missing:
            raise ConfigError(source, "lanes", f"store {missing[0]} has no lane; every store needs one")
        used = {lane["warehouse"] for lane in lanes}
        if len(used) < m:
            raise ConfigError(source, "lanes", f"warehouse {min(set(range(m)) - used)} serves no store")
        wl = _cycle(cfg["warehouse_lead_time"], m).astype(int)
        kind = np.r_[np.full(m, WAREHOUSE), np.full(n, STORE)]
        src = np.r_[np.full(m, SUPPLIER), [lane["warehouse"] for lane in lanes]].astype(int)
        dst = np.r_[np.arange(m), [m + lane["store"] for lane in lanes]].astype(int)
        topo = Topology(
            kind,
            np.r_[_cycle(cfg["warehouse_holding_cost"], m), s["holding_cost"]],
            np.r_[np.zeros(m), s["shortage_cost"]],
            np.r_[np.zeros(m), s["demand_mean"]],
            np.r_[np.zeros(m), s["demand_cv"]],
            src,
            dst,
            np.r_[wl, [lane["lead_time"] for lane in lanes]].astype(int),
            np.r_[np.zeros(m), [lane["cost"] for lane in lanes]],
        )
        rho = cfg["correlation"]
    unmet = cfg["unmet"]
    from .stage_lp import network_class  # tree networks also offer the stage LP (TS-DDR)

    problem = network_class(topo)(
        topo,
        unmet,
        dist,
        rho,
        cfg["periods"],
        cfg["warmup"],
        (cfg["initial"]["low"], cfg["initial"]["high"]),
        cfg["test"],
        model,
        meta,
    )
    problem.config = cfg
    return problem
