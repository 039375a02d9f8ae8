"""The stage LP of the tree-shaped inventory networks (the TS-DDR contract of docs/lagrangian.md).

A network whose every location has exactly one inbound lane (``serial``, ``warehouse``, ``transshipment``,
``identical``, and ``multi_warehouse`` files whose stores have one lane each) is built as
:class:`TreeNetwork`: the same simulator (``post_decision`` reads requested shipments per lane, as before,
and every number of the existing solvers is unchanged) plus the stage-LP methods that TS-DDR reads
(``stage_lp``, ``stage_post``, ``stage_cost``, ``stage_record``, ``target_bounds``, ``target_penalty``) and
``target_action`` (a target turned into the simulator's action, for the trained rule as a plain policy).

**Targets.** The policy proposes, per location, the echelon inventory position after this period's
shipments (on hand and in transit at the location and everywhere below it; what echelon base stock orders up
to). In a tree the lane into location ``i`` is the only flow into ``i``'s echelon from outside, so
``x_out_i = ech_i + ship_{lane(i)}``, and the realized shipments are read back from the outgoing state alone.

**Timing (hazard-decision, the same information as the simulator).** Stage ``t`` is period ``t`` whole: the
LP ships (the decision) and serves period ``t``'s demand ``d_t`` (read from the scenarios at index ``t``), and
its objective is the period's whole cost in the simulator's accounting::

    minimise   sum_e c_e ship_e + sum_i h_i left_i + sum_j p_j short_j
    subject to left_i + sum_{e out of i} ship_e (+ sold_j | - back_j + dem_j at a store j) = on_hand_i^(+)
               x_out_i - ship_{lane(i)} = ech_i                     (the outgoing state)
               ship >= 0, left >= 0 (= 0 at a centre, which ships all it holds),
               lost sales: 0 <= sold_j <= d_j, short_j = d_j - sold_j;  backlog: dem_j = d_j, short_j = back_j >= 0

``on_hand`` is taken after this period's arrivals (the simulator's state), clipped at 0 except at backlog
stores. The decision cannot use ``d_t``: stores ship nothing and every lane has a lead time >= 1, so this
period's shipments do not touch the stock that serves ``d_t``, and the LP separates into a shipping part
(``ship``, warehouse and centre ``left``, ``x_out``; no demand in it) and a serving part (store ``left``,
``sold``/``back``; no decision in it). The policy sees only ``observe(state)``. Serving ``d_t`` in the LP
(rather than in ``transition``) puts the period's holding and shortage costs in the LP's objective, so the
duals of the incoming-state rows carry their gradients. ``stage_post`` returns the state after the
shipments and after ``d_t`` (computed in torch with the simulator's own formulas, so that gradients flow
through it), marked ``served``; ``transition`` then only brings the arrivals in and charges nothing.

The incoming state of the LP is ``x_in = [ech (N), on_hand (N)]``; the target rows are added by
:meth:`NetworkStageLP.with_target` (the core's rows, for an incoming state of another size than the
target).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core import Scenarios, State
from ..core.lp import LP, LPSolution, StageLP, solve
from .networks import CENTRE, STORE, Network

# the target penalty's segments: (width in mean flows of the location, multiple of P), the last one unbounded
SEGMENTS = ((0.5, 1.0), (0.5, 2.0), (1.0, 3.0), (math.inf, 4.0))
TIE_BREAK = 1e-4  # extra LP cost per unit on the last lane (lane e: TIE_BREAK * (e + 1) / E); see TreeNetwork


def is_tree(topo) -> bool:
    """Every location has exactly one inbound lane, and stores ship nothing."""
    counts = np.bincount(topo.dst, minlength=topo.n)
    stores = set(np.flatnonzero(topo.kind == STORE).tolist())
    return bool((counts == 1).all()) and not any(int(s) in stores for s in topo.src if s >= 0)


def network_class(topo) -> type:
    """:class:`TreeNetwork` for a tree, else the plain :class:`Network` (which has no stage LP)."""
    return TreeNetwork if is_tree(topo) else Network


@dataclass
class NetworkStageLP(StageLP):
    """A :class:`StageLP` whose incoming state ``x_in`` has another size than the outgoing state, and whose
    target penalty rises with the deviation (``widths`` ``[k]``: see :meth:`with_target`)."""

    widths: torch.Tensor | None = None

    def with_target(self, target: torch.Tensor, penalty) -> tuple[StageLP, slice]:
        """The core's target rows and penalty columns (:meth:`StageLP.with_target`), the penalty in segments:
        ``P`` per unit for the first ``SEGMENTS[0][0] * width_i`` of location i's deviation (either way), then
        ``2 P``, ``3 P``, ... (:data:`SEGMENTS`). A convex, piecewise-linear penalty: a surplus or shortfall
        that the targets do not place (a centre's stock, a short warehouse) is spread over the locations
        in steps of their mean flow instead of falling on one of them. The target rows' duals are still
        ``d value / d target``."""
        k, k_in = target.shape[1], self.state_in.shape[1]
        plain = StageLP(self.lp, self.x_in, self.state_in.new_zeros(self.state_in.shape[0], k), self.state_out)
        tlp, rows = plain.with_target(target, penalty)
        lp = tlp.lp
        if self.widths is not None and len(SEGMENTS) > 1:
            B, (m, n) = lp.batch, lp.shape
            dt, dev = lp.c.dtype, lp.c.device
            w = self.widths.to(device=dev, dtype=dt)
            ub = lp.ub.clone()
            ub[:, n - 2 * k :] = (SEGMENTS[0][0] * w).repeat(2)  # the core's d+ and d- are the first segment
            pen = torch.as_tensor(penalty, dtype=dt, device=dev)
            pen = pen.expand(B, k) if pen.dim() < 2 else pen
            eye = torch.eye(k, dtype=dt, device=dev)
            cs, As, ubs = [], [], []
            for frac, mult in SEGMENTS[1:]:
                cs += [pen * mult, pen * mult]
                block = torch.zeros(m, 2 * k, dtype=dt, device=dev)
                block[rows, :k], block[rows, k:] = eye, -eye
                As.append(block)
                ubs += [(frac * w).expand(B, k)] * 2
            lp = type(lp)(lp.c, lp.A, lp.row_lo, lp.row_hi, lp.lb, ub, lp.const)
            lp = lp.add_columns(
                torch.cat(cs, 1), torch.cat(As, 1), torch.zeros(B, len(cs) * k, dtype=dt, device=dev), torch.cat(ubs, 1)
            )
        S = self.state_in.to(lp.c)
        S = torch.cat([S, S.new_zeros(k, k_in)], 0)
        return NetworkStageLP(lp, self.x_in, S, self.state_out, dict(self.blocks)), rows


class TreeNetwork(Network):
    """An inventory network with one inbound lane per location, with the stage LP (see the module text)."""

    lp_dtype = torch.float64

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        t = self.topo
        if not is_tree(t):
            raise ValueError("a TreeNetwork needs exactly one inbound lane per location and stores that ship nothing")
        N, E, S = t.n, t.e, len(self.stores)
        self.lane_of = np.zeros(N, dtype=np.int64)
        self.lane_of[t.dst] = np.arange(E)
        lost = self.unmet == "lost_sales"
        # columns: ship [E], left [N], serve [S] (sold, or the fixed demand under backlog), back [S], position [N]
        sizes = [("ship", E), ("left", N), ("serve", S), ("back", 0 if lost else S), ("position", N)]
        self.blocks, at = {}, 0
        for name, size in sizes:
            self.blocks[name] = slice(at, at + size)
            at += size
        n, b = at, self.blocks
        col = lambda name, i: b[name].start + i  # noqa: E731
        A = np.zeros((2 * N, n))
        for e in range(E):
            if t.src[e] >= 0:
                A[t.src[e], col("ship", e)] = 1.0  # shipped out of its source
            A[N + t.dst[e], col("ship", e)] = -1.0  # into the destination's echelon
        for i in range(N):
            A[i, col("left", i)] = 1.0
            A[N + i, col("position", i)] = 1.0
        for s, j in enumerate(self.stores):
            A[j, col("serve", s)] = 1.0
            if not lost:
                A[j, col("back", s)] = -1.0
        S_in = np.zeros((2 * N, 2 * N))
        S_in[np.arange(N), N + np.arange(N)] = 1.0  # balance rows: on hand
        S_in[N + np.arange(N), np.arange(N)] = 1.0  # position rows: echelon position before shipping
        c = np.zeros(n)
        c[b["ship"]] = t.ship_cost
        c[b["left"]] = t.holding
        p = t.shortage[self.stores]
        c[b["serve"]] = -p if lost else 0.0
        c[b["back"]] = 0.0 if lost else p
        true_c = c.copy()
        # a tie-break: lane e costs TIE_BREAK * (e + 1) / E more in the LP (not in the reported cost), so that the
        # shipping part of the LP has one optimum (a short warehouse or a centre's surplus is not split
        # arbitrarily by the solver, and the shipments cannot depend on the serving part, where d_t is)
        c[b["ship"]] += TIE_BREAK * (np.arange(E) + 1.0) / E
        lb, ub = np.zeros(n), np.full(n, math.inf)
        ub[b["left"]] = np.where(t.kind == CENTRE, 0.0, math.inf)
        lb[b["position"]] = -math.inf
        # on hand enters clipped at 0 (as the simulator's allocation reads it), except at backlog stores
        self._clip = np.ones(N) if lost else (t.kind != STORE).astype(float)
        self._lp_np = {"A": A, "S": S_in, "c": c, "true_c": true_c, "lb": lb, "ub": ub}
        self._n_cols = n
        m, s = self.echelon_demand()
        from .network_heuristics import protection

        tau = protection(self, True)
        self._target_hi = 2.0 * (m * tau + s * np.sqrt(tau))

    # --- the stage-LP contract -----------------------------------------------------------------
    @property
    def target_penalty(self) -> float:
        """P per unit of |x_out - target|: the problem key ``target_penalty``, or (0) one more than the largest
        holding plus the largest shipping cost, so that a reachable target is always met exactly (shipping a
        unit more or less than the target changes the rest of the stage's cost by at most that much)."""
        p = float((self.config or {}).get("target_penalty", 0.0))
        return p if p > 0 else 1.0 + float(self.topo.holding.max()) + float(self.topo.ship_cost.max())

    def _lp_tensors(self, device) -> dict[str, torch.Tensor]:
        key = ("lp", str(device))
        if key not in self._cache:
            self._cache[key] = {
                k: torch.as_tensor(v, dtype=self.lp_dtype, device=device) for k, v in self._lp_np.items()
            } | {
                "clip": torch.as_tensor(self._clip, dtype=torch.bool, device=device),
                "width": torch.as_tensor(self._node_flow, dtype=self.lp_dtype, device=device),
            }
        return self._cache[key]

    def stage_lp(self, state: State, scenarios: Scenarios | None = None, t: int | None = None) -> NetworkStageLP:
        """The LP of period ``t`` given the state (after this period's arrivals) and this period's demand (zero
        demand without ``scenarios``: the shipments are the same, see the module text)."""
        oh = state["on_hand"]
        B, dev = oh.shape[0], oh.device
        L = self._lp_tensors(dev)
        b = self.blocks
        ech = self.echelon_position(state).to(self.lp_dtype)
        on_hand = oh.to(self.lp_dtype)
        on_hand = torch.where(L["clip"], on_hand.clamp_min(0.0), on_hand)
        x_in = torch.cat([ech, on_hand], 1)
        S_stores = len(self.stores)
        if scenarios is not None:
            d = scenarios["demand"][:, t].to(device=dev, dtype=self.lp_dtype)
        else:
            d = torch.zeros(B, S_stores, dtype=self.lp_dtype, device=dev)
        rhs = x_in.detach() @ L["S"].T
        lb = L["lb"].expand(B, -1).clone()
        ub = L["ub"].expand(B, -1).clone()
        ub[:, b["serve"]] = d
        if self.unmet == "backlog":
            lb[:, b["serve"]] = d
            const = torch.zeros(B, dtype=self.lp_dtype, device=dev)
        else:
            p = torch.as_tensor(self.topo.shortage[self.stores], dtype=self.lp_dtype, device=dev)
            const = d @ p
        lp = LP(L["c"].expand(B, -1), L["A"], rhs, rhs.clone(), lb, ub, const)
        cols = torch.arange(b["position"].start, b["position"].stop, device=dev)
        return NetworkStageLP(lp, x_in, L["S"], cols, dict(b), L["width"])

    def stage_post(self, state: State, stage: StageLP, sol: LPSolution, t: int | None = None) -> State:
        """The state after the LP's shipments and this period's demand (torch, the simulator's formulas; the
        shipments are read from the outgoing positions, so gradients reach them), marked ``served``."""
        oh = state["on_hand"]
        T = self.tensors(oh.device, oh.dtype)
        B, N = oh.shape
        ech = stage.x_in[:, :N]
        pos = sol.x[:, self.blocks["position"]].to(ech)
        ship = (pos - ech)[:, torch.as_tensor(self.topo.dst, device=oh.device)].to(oh.dtype)  # lane e -> dst[e]
        out = ship.new_zeros(B, N + 1).index_add(1, T["src"], ship)[:, :N]
        after = oh - out
        d = stage.lp.ub[:, self.blocks["serve"]].detach().to(oh.dtype)
        d = after.new_zeros(after.shape).index_copy(1, T["stores"], d)
        left = after - torch.minimum(after.clamp_min(0.0), d) if self.unmet == "lost_sales" else after - d
        pipe = state["pipe"] + ship[:, :, None] * T["slot"]
        return {"on_hand": left, "pipe": pipe, "served": torch.ones(B, dtype=oh.dtype, device=oh.device)}

    def transition(self, post_state: State, scenarios: Scenarios, t: int) -> tuple[State, torch.Tensor]:
        """The simulator's transition; after :meth:`stage_post` (``served``: the demand is already met and
        charged by the stage LP) only the arrivals and the pipelines' shift, at no cost."""
        if "served" not in post_state:
            return super().transition(post_state, scenarios, t)
        oh, pipe = post_state["on_hand"], post_state["pipe"]
        T = self.tensors(oh.device, oh.dtype)
        arrivals = oh.new_zeros(oh.shape).index_add(1, T["dst"], pipe[:, :, 0])
        nxt = {"on_hand": oh + arrivals, "pipe": torch.cat([pipe[:, :, 1:], pipe[:, :, :1] * 0], dim=2)}
        return nxt, oh.new_zeros(oh.shape[0])

    def stage_cost(self, stage: StageLP, sol: LPSolution) -> torch.Tensor:
        """The period's cost (shipping, holding, shortage) of a solution, without the target penalty."""
        n = self._n_cols
        const = stage.lp.const if stage.lp.const is not None else 0.0
        c = self._lp_tensors(sol.x.device)["true_c"].to(sol.x.dtype)
        return sol.x[:, :n] @ c + const

    def stage_record(self, stage: StageLP, sol: LPSolution) -> dict[str, torch.Tensor]:
        x, b = sol.x, self.blocks
        c = self._lp_tensors(x.device)["true_c"].to(x.dtype)[None]
        p = torch.as_tensor(self.topo.shortage[self.stores], dtype=x.dtype, device=x.device)
        short = stage.lp.ub[:, b["serve"]] - x[:, b["serve"]] if self.unmet == "lost_sales" else x[:, b["back"]]
        return {
            "shipping_cost": (c[:, b["ship"]] * x[:, b["ship"]]).sum(1),
            "holding_cost": (c[:, b["left"]] * x[:, b["left"]]).sum(1),
            "shortage_cost": (short * p).sum(1),
            "shortage_units": short.sum(1),
            "shipped_units": x[:, b["ship"]].sum(1),
        }

    def target_bounds(self, state: State) -> tuple[torch.Tensor, torch.Tensor]:
        """Echelon positions from 0 to twice (echelon mean demand over the protection period plus one standard
        deviation): the middle of the range, where an untrained rule starts, is an echelon base stock with a
        safety factor of 1."""
        oh = state["on_hand"]
        hi = torch.as_tensor(self._target_hi, dtype=self.lp_dtype, device=oh.device).expand(oh.shape[0], -1)
        return torch.zeros_like(hi), hi

    def target_action(self, state: State, target: torch.Tensor, t: int | None = None) -> torch.Tensor:
        """The simulator's action for echelon targets ``[B, N]``: the shipments of the stage LP (HiGHS), which
        are feasible, so the simulator's allocation ships them unchanged."""
        stage = self.stage_lp({k: v.detach() for k, v in state.items()}, None, t)
        tlp, _ = stage.with_target(target.detach().to(self.lp_dtype), self.target_penalty)
        sol = solve(tlp.lp, "highs")
        if not sol.optimal:
            raise RuntimeError(f"{self.name}: a stage LP is not optimal ({sol.status[0]})")
        return sol.x[:, self.blocks["ship"]].clamp_min(0.0).to(state["on_hand"].dtype)
