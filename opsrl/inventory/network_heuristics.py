"""Network heuristics and the exact serial-system optimum.

* :class:`EchelonStock`: each location asks its primary inbound lane for ``(S_i - position_i)^+``, where
  the position is the echelon inventory position (on hand and in transit at the location and at every
  location below it in the tree of primary lanes) or, with ``echelon=False``, the local one (installation
  base stock; a centre, which holds nothing and ships all it receives, keeps its echelon position there,
  since its local position would ignore where its stock went). Shortages upstream are resolved by the
  simulator's proportional allocation.
* :func:`search_levels`: levels ``S_i = m_i tau_i + z_g s_i sqrt(tau_i)`` (echelon mean and standard
  deviation of demand per period, protection period ``tau_i``) with one safety factor ``z_g`` for the
  stores and one for the locations upstream, searched coordinate-wise on dev scenarios.
* :func:`clark_scarf`: the optimal echelon base-stock levels and optimal average cost of the serial
  system with backlog and Poisson demand, by the exact recursion of Chen and Zheng (1994) / Gallego
  and Zipkin (1999) on the integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from ..core import Scenarios, State
from .heuristics import grid_search
from .networks import CENTRE, STORE, Network


class EchelonStock(torch.nn.Module):
    """Echelon (or installation) base stock on the primary lanes; ``levels`` is ``[N]`` or ``[B, N]``."""

    def __init__(self, problem: Network, levels, echelon: bool = True, integer: bool | None = None):
        super().__init__()
        self.problem = problem
        self.levels = torch.as_tensor(levels, dtype=torch.float32)
        self.echelon = echelon
        self.integer = problem.integer if integer is None else integer
        E = problem.topo.e
        lane_node = np.zeros(E, dtype=np.int64)
        is_primary = np.zeros(E, dtype=np.float32)
        lane_node[problem.primary] = np.arange(problem.topo.n)
        is_primary[problem.primary] = 1.0
        self.lane_node = torch.as_tensor(lane_node)
        self.is_primary = torch.as_tensor(is_primary)
        self.is_centre = torch.as_tensor(problem.topo.kind == CENTRE)

    def forward(self, state: State, t: int = 0) -> torch.Tensor:
        p = self.problem
        if self.echelon:
            pos = p.echelon_position(state)
        else:
            pos = p.local_position(state)
            if bool(self.is_centre.any()):
                pos = torch.where(self.is_centre.to(pos.device), p.echelon_position(state), pos)
        want = (self.levels.to(pos) - pos).clamp_min(0.0)
        if self.integer:
            want = want.round()
        return want[:, self.lane_node.to(pos.device)] * self.is_primary.to(pos)


def protection(problem: Network, echelon: bool = True) -> np.ndarray:
    """Protection period per location: its inbound lead time plus, for the echelon, the (mean) protection
    of its primary children; a store adds its own review period."""
    t = problem.topo
    L = t.lead[problem.primary].astype(float)
    if not echelon:
        return L + 1.0
    parent = np.where(t.src[problem.primary] < 0, -1, t.src[problem.primary])
    tau = np.zeros(t.n)
    depth = problem.desc.sum(axis=1)  # subtree sizes: children come first when sorted ascending
    for i in np.argsort(depth, kind="stable"):
        kids = np.flatnonzero(parent == i)
        tau[i] = L[i] + (1.0 if t.kind[i] == STORE or len(kids) == 0 else tau[kids].mean())
    return tau


def levels_from_z(problem: Network, z_store, z_up, echelon: bool = True) -> np.ndarray:
    """Levels ``[K, N]`` for safety factors ``z_store`` and ``z_up`` (arrays of K candidates)."""
    m, s = problem.echelon_demand()
    tau = protection(problem, echelon)
    if not echelon:  # installation levels, except at centres (echelon position, see EchelonStock)
        keep = problem.topo.kind == CENTRE
        ratio = problem._node_flow / np.maximum(m, 1e-9)
        m, s = np.where(keep, m, problem._node_flow), np.where(keep, s, s * ratio)
        tau = np.where(keep, protection(problem, True), tau)
    is_store = problem.topo.kind == STORE
    z = np.where(is_store[None, :], np.asarray(z_store, float)[:, None], np.asarray(z_up, float)[:, None])
    S = np.maximum(m * tau + z * s * np.sqrt(tau), 0.0)
    return S.round() if problem.integer else S


def evaluate_levels(
    problem: Network, scenarios: Scenarios, levels: np.ndarray, echelon: bool = True, budget: int = 2_000_000
) -> np.ndarray:
    """Mean dev cost of each row of ``levels`` ``[K, N]``, every candidate on the same scenarios."""
    make = lambda params: EchelonStock(problem, params, echelon)  # noqa: E731
    return grid_search(problem, scenarios, levels, make, chunk=budget // max(problem.topo.n, 1))[1]


@dataclass
class LevelSearch:
    levels: np.ndarray
    z_store: float
    z_up: float
    dev_cost: float


def search_levels(problem: Network, scenarios: Scenarios, echelon: bool = True, rounds: int = 2) -> LevelSearch:
    """Coordinate search of the two safety factors on dev scenarios (common random numbers)."""
    has_up = bool((problem.topo.kind != STORE).any())
    zs_grid, zu_grid = np.linspace(-1.0, 3.0, 17), np.linspace(-2.0, 3.0, 21)
    z_store, z_up = 1.0, 2.0
    best = np.inf
    for _ in range(rounds if has_up else 1):
        c = evaluate_levels(
            problem, scenarios, levels_from_z(problem, zs_grid, np.full_like(zs_grid, z_up), echelon), echelon
        )
        z_store, best = float(zs_grid[c.argmin()]), float(c.min())
        if has_up:
            c = evaluate_levels(
                problem, scenarios, levels_from_z(problem, np.full_like(zu_grid, z_store), zu_grid, echelon), echelon
            )
            z_up, best = float(zu_grid[c.argmin()]), float(c.min())
    return LevelSearch(levels_from_z(problem, [z_store], [z_up], echelon)[0], z_store, z_up, best)


# --- Clark-Scarf ---------------------------------------------------------------------------------
@dataclass
class SerialOptimum:
    levels: np.ndarray  # optimal echelon base-stock levels, stage 1 (the store) first
    cost: float  # optimal average cost, echelon accounting (holding charged in transit too)
    pipeline: float  # mean in-transit holding cost and echelon offsets not charged by the simulator
    network_cost: float  # ``cost - pipeline``: the optimum in the simulator's accounting


def clark_scarf(mean: float, lead_times, echelon_holding, shortage: float, tail: float = 1e-13) -> SerialOptimum:
    """Exact optimal echelon base-stock levels of the serial system, Poisson(``mean``) demand, backlog.

    Recursion (Gallego and Zipkin 1999, eq. (3)-(5)) with ``H_1 = sum_j h_j``::

        C_0(x) = (b + H_1) x^-
        C^_j(x) = h_j x + C_{j-1}(x),   C~_j(y) = E C^_j(y - D_j),   S_j = argmin C~_j,
        C_j(x) = C~_j(min(x, S_j))

    where ``D_j`` is demand over stage j's lead time (``L_1 + 1`` periods at the store, which orders
    before its period's demand; ``L_j`` periods upstream). The optimum is ``C~_K(S_K)`` in echelon
    accounting; the simulator charges installation holding on stock on hand only, which differs by the
    constant ``mean * (H_2 + sum_{i<K} H_{i+1} L_i)`` (stock in transit, and the upstream echelons measured
    one period later), see :attr:`SerialOptimum.network_cost`.
    """
    L = np.asarray(lead_times, dtype=int)
    h = np.asarray(echelon_holding, dtype=float)
    K = len(L)
    if len(h) != K or (L < 1).any() or (h < 0).any() or shortage <= 0:
        raise ValueError("need one lead time >= 1 and one echelon holding cost >= 0 per stage, shortage > 0")
    ell = L.astype(float).copy()
    ell[0] += 1.0
    dmax = [int(stats.poisson.isf(tail, mean * e)) + 1 for e in ell]
    hi = int(sum(dmax)) + 10
    lo = -hi - int(sum(dmax))
    x = np.arange(lo, hi + 1, dtype=float)
    H1 = h.sum()
    C = (shortage + H1) * np.maximum(-x, 0.0)
    levels = np.zeros(K)
    best = np.nan
    for j in range(K):
        pmf = stats.poisson.pmf(np.arange(dmax[j] + 1), mean * ell[j])
        pmf /= pmf.sum()
        Chat = h[j] * x + C
        Ct = np.convolve(Chat, pmf, mode="valid")  # C~_j on x[dmax:]
        x = x[dmax[j] :]
        k = int(np.argmin(Ct))
        levels[j], best = x[k], float(Ct[k])
        C = np.where(x <= x[k], Ct, Ct[k])
    H = np.cumsum(h[::-1])[::-1]  # installation costs
    pipeline = mean * ((H[1] if K > 1 else 0.0) + float((H[1:] * L[:-1]).sum()))
    return SerialOptimum(levels, best, pipeline, best - pipeline)
