"""Exact references for the single store.

* :func:`lost_sales_dp`: the optimal long-run average cost of the lost-sales problem with integer
  (e.g. Poisson) demand, by relative value iteration on a truncated state space, with Odoni's bounds
  on the gain as the stopping rule. It reproduces Zipkin (2008), Table 1.
* :func:`normal_backlog_base_stock`: the closed form for backlogged Normal demand (base stock at the
  p/(p+h) quantile of lead-time demand, cost (h+p) sigma phi(z)).

State (timing as in :mod:`opsrl.inventory.single_store`): ``(x, q_1, ..., q_{L-1})`` with on-hand
``x`` in ``0..S`` and pipeline orders ``q_i`` in ``0..A``; orders are in ``0..A``. The truncation is
checked, not assumed: the solver reports whether the optimal policy ever orders ``A`` or lets the
stock reach ``S`` in the states it visits, and callers can enlarge both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class DPResult:
    cost: float  # optimal long-run average cost per period
    lower: float  # Odoni bounds on the gain at stop
    upper: float
    policy: np.ndarray  # optimal order per state, shape (S+1,) + (A+1,) * (L-1)
    values: np.ndarray  # relative values
    S: int
    A: int
    iterations: int

    def order(self, x: np.ndarray) -> np.ndarray:
        """Optimal orders for integer states ``x`` of shape ``[B, max(L,1)]`` (clipped to the grid)."""
        idx = [np.clip(x[:, 0], 0, self.S)] + [np.clip(x[:, i], 0, self.A) for i in range(1, x.shape[1])]
        return self.policy[tuple(i.astype(np.int64) for i in idx)]


def _demand(mean: float, top: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.arange(top + 1)
    return stats.poisson.pmf(d, mean), stats.poisson.sf(d - 1, mean)  # P(D = d), P(D >= d)


def period_cost(x: np.ndarray, mean: float, h: float, p: float) -> np.ndarray:
    """Expected cost of a period that starts with ``x`` on hand: h E(x-D)^+ + p E(D-x)^+, Poisson D.

    ``x`` may be negative (a backlog): then E(x-D)^+ = 0 and the cost is p (mean - x).
    """
    x = np.asarray(x, dtype=float)
    k = np.arange(max(int(np.ceil(x.max())), 0) + 1)
    pmf = stats.poisson.pmf(k, mean)
    over = (np.clip(x[..., None] - k, 0.0, None) * pmf).sum(axis=-1)  # E(x - D)^+
    return h * over + p * (mean - x + over)


def default_truncation(mean: float, lead_time: int, p: float, h: float) -> tuple[int, int]:
    """On-hand cap S and order cap A generous enough that they never bind under the optimal policy."""
    crit = p / (p + h)
    lt = stats.poisson.ppf(1 - (1 - crit) * 1e-4, (lead_time + 1) * mean)
    S = int(lt + 2 * math.sqrt(mean) + 2)
    A = int(stats.poisson.ppf(1 - (1 - crit) * 1e-4, 2 * mean)) + 2
    return S, min(A, S)


def lost_sales_dp(
    mean: float,
    lead_time: int,
    p: float,
    h: float = 1.0,
    S: int | None = None,
    A: int | None = None,
    tol: float = 1e-7,
    max_iter: int = 20000,
) -> DPResult:
    """Optimal average cost of the lost-sales system with Poisson(``mean``) demand (relative VI)."""
    L = int(lead_time)
    if L < 0 or p <= 0 or h < 0 or mean <= 0:
        raise ValueError("need lead_time >= 0, p > 0, h >= 0, mean > 0")
    S0, A0 = default_truncation(mean, L, p, h)
    S = S0 if S is None else int(S)
    A = A0 if A is None else int(A)
    pmf, sf = _demand(mean, S)
    c = period_cost(np.arange(S + 1), mean, h, p)
    # K[x, y] = P((x - D)^+ = y): y = x - d for d < x, and y = 0 with probability P(D >= x)
    K = np.zeros((S + 1, S + 1))
    for x in range(S + 1):
        K[x, 1 : x + 1] = pmf[:x][::-1]
        K[x, 0] = sf[x]
    if L == 0:
        return _dp_zero_lead(K, c, S, tol, max_iter)
    # T[x, q1, z] = P(min((x - D)^+ + q1, S) = z): leftover stock plus the arriving order
    T = np.zeros((S + 1, A + 1, S + 1))
    for q in range(A + 1):
        T[:, q, q:] = K[:, : S + 1 - q]
        T[:, q, S] += K[:, S + 1 - q :].sum(axis=1)
    Tm = T.reshape((S + 1) * (A + 1), S + 1)
    shape = (S + 1,) + (A + 1,) * (L - 1)
    V = np.zeros(shape)
    cx = c.reshape((S + 1,) + (1,) * (L - 1))
    lower, upper = -math.inf, math.inf
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is returned)
        # the next state is (z, q2, ..., q_{L-1}, a): V indexed by its first axis, then the rest
        W = (Tm @ V.reshape(S + 1, -1)).reshape((S + 1, A + 1) + (A + 1,) * (L - 1))
        # W axes: x, q1, q2 .. q_{L-1}, a   (for L = 1 the q1 axis is the order itself)
        best = W.min(axis=-1)
        TV = cx + best
        diff = TV - V
        lower, upper = float(diff.min()), float(diff.max())
        V = TV - TV.flat[0]
        if upper - lower <= tol * max(1.0, abs(upper)):
            break
    W = (Tm @ V.reshape(S + 1, -1)).reshape((S + 1, A + 1) + (A + 1,) * (L - 1))
    policy = W.argmin(axis=-1)
    return DPResult(0.5 * (lower + upper), lower, upper, policy, V, S, A, it)


def _dp_zero_lead(K: np.ndarray, c: np.ndarray, S: int, tol: float, max_iter: int) -> DPResult:
    """L = 0: the order tops stock up before demand; state x, post-decision y = x + a in x..S."""
    V = np.zeros(S + 1)
    lower = upper = math.nan
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is returned)
        U = c + K @ V  # cost of starting demand with y on hand
        TV = np.minimum.accumulate(U[::-1])[::-1]  # min over y >= x
        diff = TV - V
        lower, upper = float(diff.min()), float(diff.max())
        V = TV - TV[0]
        if upper - lower <= tol * max(1.0, abs(upper)):
            break
    U = c + K @ V
    y_best = np.array([x + int(np.argmin(U[x:])) for x in range(S + 1)])
    return DPResult(0.5 * (lower + upper), lower, upper, y_best - np.arange(S + 1), V, S, 0, it)


def normal_backlog_base_stock(mean: float, std: float, lead_time: int, h: float, p: float) -> tuple[float, float]:
    """Optimal base-stock level and average cost, backlogged Normal(mean, std) demand, lead time L.

    Lead-time demand covers L + 1 periods: mu = (L+1) mean, sigma = sqrt(L+1) std; the level is
    mu + sigma z with z = Phi^-1(p / (p + h)), and the cost (h + p) sigma phi(z).
    """
    mu, sigma = (lead_time + 1) * mean, math.sqrt(lead_time + 1) * std
    z = stats.norm.ppf(p / (p + h))
    return mu + sigma * z, (h + p) * sigma * stats.norm.pdf(z)
