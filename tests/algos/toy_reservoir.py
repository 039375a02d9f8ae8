"""A one-reservoir stage-LP problem with a known optimum (exact DP), for the TS-DDR tests."""

from __future__ import annotations

import math

import numpy as np
import torch

from opsrl.core import ActionSpec, Problem, numpy_rng
from opsrl.core.lp import LP, StageLP, solve

D = torch.float64
INF = math.inf


class ToyReservoir(Problem):
    """Columns [v_out, q, s, g, u]: end volume, turbined, spilled, thermal, deficit. Rows: water
    v_out + q + s = v_in + w (the incoming-state row) and demand q + g + u = demand. Cost c_t g + c_u u."""

    name = "toy_reservoir"
    family = "toy"
    metric = "total"
    dtype = D

    def __init__(
        self,
        periods=6,
        vmax=10.0,
        qmax=5.0,
        gmax=3.0,
        demand=4.0,
        thermal=(1.0, 2.0, 3.0, 1.0, 3.0, 2.0),
        deficit=10.0,
        inflows=(0.0, 1.0, 3.0),
        v0=2.0,
        penalty=20.0,
    ):
        self.periods, self.vmax, self.qmax, self.gmax, self.demand = periods, vmax, qmax, gmax, demand
        self.thermal, self.deficit, self.inflows, self.v0 = thermal, deficit, inflows, v0
        self.target_penalty = penalty
        self.action_spec = ActionSpec("continuous", (1,), 0.0, 1.0)
        self.test_scenarios = 512

    def _sample(self, n, split, seed, periods):
        rng = numpy_rng(seed, split, "toy")
        w = np.asarray(self.inflows)[rng.integers(0, len(self.inflows), (n, periods))]
        return {"inflow": torch.as_tensor(w, dtype=D).unsqueeze(2), "v0": torch.full((n, 1), self.v0, dtype=D)}

    def initial_state(self, sc):
        return {"volume": sc["v0"].clone(), "inflow": sc["inflow"][:, 0], "t": torch.zeros(sc.n, dtype=D)}

    def stage_lp(self, state, scenarios=None, t=None):
        v, w = state["volume"], state["inflow"]
        t = int(state["t"][0]) if t is None else t
        B = v.shape[0]
        A = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0, 1.0]], dtype=D)
        c = torch.tensor([0.0, 0.0, 0.0, self.thermal[t % len(self.thermal)], self.deficit], dtype=D).expand(B, 5)
        water = (v + w)[:, 0]
        lo = torch.stack([water, torch.full_like(water, self.demand)], 1)
        lb = torch.zeros(B, 5, dtype=D)
        ub = torch.tensor([self.vmax, self.qmax, INF, self.gmax, INF], dtype=D).expand(B, 5)
        lp = LP(c.clone(), A, lo, lo.clone(), lb, ub.clone())
        return StageLP(lp, v, torch.tensor([[1.0], [0.0]], dtype=D), torch.tensor([0]))

    def stage_post(self, state, stage, sol, t=None):
        return {"volume": stage.outgoing(sol).clamp(0.0, self.vmax), "inflow": state["inflow"], "t": state["t"]}

    def stage_cost(self, stage, sol):
        return (stage.lp.c[:, :5] * sol.x[:, :5]).sum(1)

    def target_bounds(self, state):
        B = state["volume"].shape[0]
        return torch.zeros(B, 1, dtype=D), torch.full((B, 1), self.vmax, dtype=D)

    def post_decision(self, state, action):
        stage = self.stage_lp(state)
        lo, hi = self.target_bounds(state)
        tlp, _ = stage.with_target(lo + action.clamp(0, 1) * (hi - lo), self.target_penalty)
        sol = solve(tlp.lp)
        return self.stage_post(state, tlp, sol), self.stage_cost(tlp, sol)

    def transition(self, post, sc, t):
        w = sc["inflow"]
        nxt = w[:, t + 1] if t + 1 < w.shape[1] else torch.zeros_like(w[:, 0])
        v = post["volume"]
        return {"volume": v, "inflow": nxt, "t": post["t"] + 1}, torch.zeros(v.shape[0], dtype=D)

    def observe(self, state):
        return torch.cat([state["volume"] / self.vmax, state["inflow"] / max(self.inflows)], 1)

    # --- the exact optimum -------------------------------------------------------------------------------
    def stage_cost_np(self, v, w, v_next, t):
        """Cost of ending at v_next from v with inflow w (inf if infeasible): release r = v + w - v_next >= 0,
        turbine q = min(r, qmax, demand), the rest spilled; thermal then deficit cover demand - q."""
        r = v + w - v_next
        q = np.minimum(np.minimum(r, self.qmax), self.demand)
        g = np.minimum(self.demand - q, self.gmax)
        u = self.demand - q - g
        cost = self.thermal[t % len(self.thermal)] * g + self.deficit * u
        return np.where(r >= -1e-12, cost, np.inf)

    def dp(self, step=0.25):
        """Expected optimal total cost by backward DP on a volume grid of ``step`` (exact for this integer data:
        the value functions are piecewise linear with integer breakpoints)."""
        grid = np.arange(0.0, self.vmax + 1e-9, step)
        V = np.zeros(len(grid))
        for t in reversed(range(self.periods)):
            Vt = np.zeros(len(grid))
            for w in self.inflows:
                c = self.stage_cost_np(grid[:, None], w, grid[None, :], t) + V[None, :]
                Vt += c.min(1) / len(self.inflows)
            V = Vt
        return float(np.interp(self.v0, grid, V))
