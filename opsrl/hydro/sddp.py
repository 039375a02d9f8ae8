"""Stochastic dual dynamic programming (SDDP) and stochastic DP on a volume grid, on the family's stage LP.

Both represent the expected cost-to-go after stage ``t`` as a convex piecewise-linear function of the
outgoing volumes, ``theta_t >= alpha_k + beta_k . v_out`` (cuts), which :func:`with_future` adds to stage
``t``'s LP as one column ``theta`` and one row per cut; :class:`CutPolicy` decides each stage by that LP
(the inflow of the stage is known, as in the problem).

* :func:`train_sddp` (Pereira and Pinto 1991): forward passes sample inflow paths and record the volumes;
  backward passes solve, at each recorded volume, stage ``t``'s LP for every inflow scenario of its row and
  average values and state gradients (duals of the water-balance rows, :meth:`StageLP.state_gradient`) into
  one cut on stage ``t-1``'s outgoing volumes. Inflows are stage-wise independent, so a cut is valid for
  every scenario of its stage (cut sharing). The lower bound is the expected stage-0 value with the cuts.
* :func:`solve_sdp`: for one reservoir, the cost-to-go on a grid of volumes, backwards from the end; each
  grid point's stage LP (with the next stage's cost-to-go as cuts through consecutive grid values, i.e. its
  piecewise-linear interpolant, convex because the stage cost is convex and piecewise linear in the volume)
  is solved with HiGHS for every inflow scenario. A fine grid makes it essentially exact.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from ..core.lp import LPSolution, StageLP, solve
from .model import Hydro


@dataclass
class Cuts:
    """Cuts of one stage: ``theta >= alpha + beta . v_out``."""

    alpha: np.ndarray  # [K]
    beta: np.ndarray  # [K, H]

    @staticmethod
    def empty(H: int) -> Cuts:
        return Cuts(np.zeros(0), np.zeros((0, H)))

    def add(self, alpha: np.ndarray, beta: np.ndarray) -> None:
        self.alpha = np.concatenate([self.alpha, alpha])
        self.beta = np.concatenate([self.beta, beta], 0)

    def __len__(self) -> int:
        return len(self.alpha)

    def value(self, v: np.ndarray) -> np.ndarray:
        """The cost-to-go ``max_k alpha_k + beta_k . v`` at volumes ``v`` [B, H]."""
        return (self.alpha[None, :] + v @ self.beta.T).max(1)


def future_lower_bound(problem: Hydro) -> float:
    """A lower bound on any cost-to-go (the lower bound of ``theta``): costs are non-negative; only the value
    of the final water can make them negative."""
    return -float(problem.cfg["final_water_value"] * problem.case.vmax.sum()) - 1e-6


def with_future(problem: Hydro, stage: StageLP, cuts: Cuts | None) -> StageLP:
    """Stage LP plus the cost-to-go column ``theta`` (last column) and its cut rows."""
    if cuts is None or len(cuts) == 0:
        return stage
    lp = stage.lp
    B = lp.batch
    m, n = lp.shape
    like = dict(dtype=lp.c.dtype, device=lp.c.device)
    lo_theta = torch.full((B, 1), future_lower_bound(problem), **like)
    lp = lp.add_columns(
        torch.ones(B, 1, **like), torch.zeros(m, 1, **like), lo_theta, torch.full((B, 1), math.inf, **like)
    )
    K = len(cuts)
    rows = torch.zeros(K, n + 1, **like)
    rows[:, stage.state_out] = -torch.as_tensor(cuts.beta, **like)
    rows[:, n] = 1.0
    alpha = torch.as_tensor(cuts.alpha, **like).expand(B, -1)
    lp = lp.add_rows(rows, alpha, torch.full((B, K), math.inf, **like))
    S = torch.cat([stage.state_in, torch.zeros(K, stage.state_in.shape[1], **like)], 0)
    return StageLP(lp, stage.x_in, S, stage.state_out, dict(stage.blocks))


def _solve(problem: Hydro, stage: StageLP) -> LPSolution:
    sol = solve(stage.lp)
    if not sol.optimal:
        bad = [s for s in sol.status if s != "optimal"]
        raise RuntimeError(f"{problem.name}: a stage LP is not optimal ({bad[0]})")
    return sol


class CutPolicy:
    """Decide each stage by its LP plus the cost-to-go cuts of the stage (none: the myopic rule, optionally with
    a tiny value on stored water that only breaks ties between storing and spilling)."""

    def __init__(self, problem: Hydro, cuts: list[Cuts] | None, name: str = "cuts", tie_value: float = 0.0):
        self.problem, self.cuts, self.name, self.tie_value = problem, cuts, name, tie_value

    def decide(self, state, t: int) -> tuple[StageLP, LPSolution]:
        p = self.problem
        stage = p.stage_lp(state, t=t)
        if self.tie_value and t < p.periods - 1:
            stage.lp.c[:, p.cols["volume"]] -= self.tie_value
        cuts = self.cuts[t] if self.cuts is not None and t < p.periods - 1 else None
        stage = with_future(p, stage, cuts)
        sol = _solve(p, stage)
        if self.tie_value and t < p.periods - 1:  # the returned LP states the true costs again
            stage.lp.c[:, p.cols["volume"]] += self.tie_value
        return stage, sol


def _scenario_states(problem: Hydro, v: np.ndarray, t: int) -> tuple[dict, np.ndarray]:
    """States for every (volume point, inflow scenario of stage t's row): batch [P*S], and the probabilities."""
    c = problem.case
    r = problem.row_of(t)
    P, S = v.shape[0], c.scenarios
    vol = np.repeat(v, S, axis=0)
    inflow = np.tile(c.inflow[r].T, (P, 1))  # [P*S, H]
    f = lambda a: torch.as_tensor(a, dtype=torch.float64)
    return {"volume": f(vol), "inflow": f(inflow), "t": torch.full((P * S,), float(t), dtype=torch.float64)}, c.prob[r]


def expected_values(problem: Hydro, cuts: list[Cuts], v: np.ndarray, t: int):
    """At each volume point ``v`` [P, H] entering stage ``t``: the expected optimal value of stage ``t`` (with
    its cuts) over the row's inflow scenarios, and its gradient in the volumes [P, H]."""
    state, prob = _scenario_states(problem, v, t)
    stage = problem.stage_lp(state, t=t)
    stage = with_future(problem, stage, cuts[t] if t < problem.periods - 1 else None)
    sol = _solve(problem, stage)
    P, S = v.shape[0], len(prob)
    val = sol.value.numpy().reshape(P, S) @ prob
    grad = np.einsum("psh,s->ph", stage.state_gradient(sol).numpy().reshape(P, S, -1), prob)
    return val, grad


@dataclass
class SDDPResult:
    cuts: list[Cuts]
    bounds: list[float] = field(default_factory=list)
    seconds: float = 0.0
    iterations: int = 0
    time_limited: bool = False


def train_sddp(
    problem: Hydro,
    iterations: int = 50,
    forward_paths: int = 1,
    seed: int = 0,
    time_limit: float | None = None,
    progress: bool = False,
    tol: float = 0.0,
    log=lambda msg: None,
) -> SDDPResult:
    """Train SDDP cuts; stop after ``iterations`` (or ``time_limit`` seconds, or when the bound moved by less
    than ``tol`` relative over the last 5 iterations, if ``tol`` > 0)."""
    T, H = problem.periods, problem.H
    cuts = [Cuts.empty(H) for _ in range(T)]
    res = SDDPResult(cuts)
    v0 = problem.v0[None, :]
    t0 = time.perf_counter()
    bar = tqdm(range(iterations), desc="SDDP", disable=not progress)
    pol = CutPolicy(problem, cuts)
    for it in bar:
        # forward pass on sampled inflow paths (train split, one stream per iteration)
        sc = problem.sample(forward_paths, "train", seed * 1_000_003 + it, T)
        state = problem.initial_state(sc)
        trial = []
        for t in range(T - 1):
            stage, sol = pol.decide(state, t)
            post = problem.stage_post(state, stage, sol, t)
            trial.append(post["volume"].numpy().copy())
            state, _ = problem.transition(post, sc, t)
        # backward pass: a cut on stage t-1's outgoing volumes from stage t's scenarios
        for t in range(T - 1, 0, -1):
            v = trial[t - 1]
            val, grad = expected_values(problem, cuts, v, t)
            cuts[t - 1].add(val - (grad * v).sum(1), grad)
        lb = float(expected_values(problem, cuts, v0, 0)[0][0])
        res.bounds.append(lb)
        res.iterations = it + 1
        bar.set_postfix(bound=f"{lb:.6g}")
        log(f"SDDP iteration {it + 1}: bound {lb:.8g}")
        if tol > 0 and len(res.bounds) > 5 and abs(lb - res.bounds[-6]) <= tol * max(abs(lb), 1e-12):
            break
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            res.time_limited = True
            break
    res.seconds = time.perf_counter() - t0
    return res


@dataclass
class SDPResult:
    grid: np.ndarray  # [P] volumes
    values: np.ndarray  # [T + 1, P] expected cost-to-go entering each stage (row T: the end)
    cuts: list[Cuts]  # per stage: the interpolant of the next stage's cost-to-go
    optimum: float  # the expected cost from the initial volume
    seconds: float = 0.0


def interpolant_cuts(grid: np.ndarray, values: np.ndarray) -> Cuts:
    """Cuts through consecutive vertices of the lower convex hull of the grid values: their maximum is the
    piecewise-linear interpolant of a convex function (the hull only irons out LP round-off, which on a fine
    grid would otherwise show as tiny non-convex wiggles)."""
    hull: list[int] = []
    for i in range(len(grid)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b if it lies on or above the chord from a to i
            if (values[b] - values[a]) * (grid[i] - grid[a]) >= (values[i] - values[a]) * (grid[b] - grid[a]):
                hull.pop()
            else:
                break
        hull.append(i)
    g, v = grid[hull], values[hull]
    slope = np.diff(v) / np.diff(g)
    return Cuts(v[:-1] - slope * g[:-1], slope[:, None])


def solve_sdp(problem: Hydro, points: int = 541, progress: bool = False) -> SDPResult:
    """Stochastic DP for a one-reservoir problem on ``points`` equally spaced volumes of [vmin, vmax] (the
    initial volume is added to the grid if it is not on it)."""
    if problem.H != 1:
        raise ValueError(f"hydro_sdp needs one reservoir; {problem.name} has {problem.H}")
    c = problem.case
    lo, hi = float(c.vmin[0]), float(c.vmax[0])
    grid = np.linspace(lo, hi, points)
    near = np.abs(grid - problem.v0[0]).argmin()
    if abs(grid[near] - problem.v0[0]) <= 1e-9 * max(1.0, hi - lo):
        grid[near] = problem.v0[0]
    else:
        grid = np.sort(np.concatenate([grid, problem.v0]))
    T = problem.periods
    t0 = time.perf_counter()
    values = np.zeros((T + 1, len(grid)))
    # values[T] stays 0: the value of the final water is in the last stage's LP
    cuts = [Cuts.empty(1) for _ in range(T)]
    for t in tqdm(range(T - 1, -1, -1), desc="SDP", disable=not progress):
        if t < T - 1:
            cuts[t] = interpolant_cuts(grid, values[t + 1])
        val, _ = expected_values(problem, cuts, grid[:, None], t)
        values[t] = val
    i0 = int(np.abs(grid - problem.v0[0]).argmin())
    return SDPResult(grid, values, cuts, float(values[0, i0]), time.perf_counter() - t0)
