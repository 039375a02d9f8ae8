"""Baseline controllers. They propose (gensets, battery set-point or genset load) and run behind the same shields.

* :class:`OperatorRules`: what a plant operator does. Run enough gensets, in priority order, for the
  last net load at ``start_fraction`` of rated power; release one when the rest would stay below
  ``stop_fraction``; always keep ``min_gensets`` on; the battery is a buffer (set-point
  ``battery_kw``, normally 0: it only absorbs what the gensets cannot follow).
* :class:`MPC`: rolling horizon. Every ``replan_minutes`` it solves the linear dispatch model
  (:func:`opsrl.microgrid.planning.plan`) over the forecast horizon (the forecast leads split into
  periods) from the current state of charge, and proposes the first period's genset count (rounded up)
  and battery power. It sees only the state (last demand and wind, forecasts).
* :class:`SocHysteresis`: state-of-charge hysteresis on the genset-load proposal. Start a genset when the
  state of charge falls below ``start_soc``, keep what runs until it reaches ``stop_soc``, then release;
  running gensets work at ``genset_load`` (1: rated, so they charge the battery with what the load does not
  take). The shields add gensets whenever the worst case needs them. Its two thresholds can be searched on
  dev days (:func:`search_hysteresis`).
* :class:`AdaptiveHysteresis`: the same rule with thresholds (and genset load) that move with what the rule
  cannot see: linear in the forecast net load at each lead and the time of day. Zero weights are
  :class:`SocHysteresis`; the weights are learned by random search (:func:`train_adaptive`).
* :class:`ConstantProposal`: the same proposal every minute (one per scenario, or one for all): what the
  shields make of no controller at all.
"""

from __future__ import annotations

import numpy as np
import torch

from .planning import plan
from .sim import RUN, WARM


def check_proposal(problem, controller: str, needs: str = "battery_kw") -> None:
    """A controller's proposals must be read the way the problem reads its action (``shield.proposal``)."""
    if problem.p.proposal != needs:
        raise ValueError(
            f"{problem.source}: {controller} needs shield.proposal = {needs!r} "
            f"(this problem has {problem.p.proposal!r})"
        )


def to_action(p, gensets: torch.Tensor, battery_kw: torch.Tensor) -> torch.Tensor:
    """Encode a proposal as the shielded problem's action in ``[0, 1]^2``."""
    return torch.stack([(gensets / p.G).clamp(0, 1), ((battery_kw / p.b_power + 1) / 2).clamp(0, 1)], dim=1)


class OperatorRules(torch.nn.Module):
    def __init__(
        self,
        problem,
        start_fraction: float = 0.8,
        stop_fraction: float = 0.6,
        min_gensets: int = 1,
        battery_kw: float = 0.0,
    ):
        super().__init__()
        check_proposal(problem, "operator_rules")
        self.problem, self.p = problem, problem.p
        self.start, self.stop, self.min_gensets, self.battery_kw = (
            start_fraction,
            stop_fraction,
            min_gensets,
            battery_kw,
        )

    def forward(self, state, t=0):
        p = self.p
        net = (state["d_prev"] - state["w_prev"]).clamp_min(0)
        mode = state["mode"]
        k = ((mode == 1) | (mode == 2)).sum(1).to(net.dtype)
        need = torch.ceil(net / (self.start * p.rated) - 1e-9)
        keep = torch.where(net < (k - 1) * self.stop * p.rated, k - 1, k)
        n = torch.maximum(need, keep).clamp(self.min_gensets, p.G)
        return to_action(p, n, torch.full_like(net, self.battery_kw))


def _segments(leads: list[int], means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment means from forecasts of the mean over the next ``lead`` minutes."""
    leads_a = np.asarray(leads, dtype=float)
    total = means * leads_a
    seg = np.diff(np.concatenate([[0.0], total]))
    lengths = np.diff(np.concatenate([[0.0], leads_a]))
    return seg / lengths, lengths


class MPC(torch.nn.Module):
    def __init__(self, problem, replan_minutes: int = 15, horizon_minutes: int = 240):
        super().__init__()
        check_proposal(problem, "mpc")
        self.problem, self.p = problem, problem.p
        self.replan = replan_minutes
        self.leads = [L for L in problem.leads if L <= horizon_minutes] or problem.leads[:1]
        self.held: torch.Tensor | None = None
        self.solves = 0

    def forward(self, state, t=0):
        if self.held is None or t % self.replan == 0 or self.held.shape[0] != state["soc"].shape[0]:
            self.held = self._solve(state)
        return self.held

    def _solve(self, state):
        p = self.p
        F = len(self.leads)
        fc_d = state["fc_d"][:, :F].double().cpu().numpy()
        fc_w = state["fc_w"][:, :F].double().cpu().numpy()
        soc = state["soc"].double().cpu().numpy()
        n_out, b_out = np.zeros(len(soc)), np.zeros(len(soc))
        for j in range(len(soc)):
            D, L = _segments(self.leads, fc_d[j])
            W, _ = _segments(self.leads, fc_w[j])
            pl = plan(p, np.clip(D, 0, None), np.clip(W, 0, p.w_rated), L, float(soc[j]), bound=False)
            self.solves += 1
            n_out[j] = np.ceil(pl.gensets[0] - 1e-6)
            b_out[j] = pl.battery_kw[0]
        dt, dev = state["soc"].dtype, state["soc"].device
        return to_action(p, torch.as_tensor(n_out, dtype=dt, device=dev), torch.as_tensor(b_out, dtype=dt, device=dev))


def _hysteresis_gensets(soc, mode, start, stop) -> torch.Tensor:
    """Gensets proposed by the hysteresis: at least one below ``start``, what is committed until ``stop``, then none."""
    k = ((mode == WARM) | (mode == RUN)).sum(1).to(soc.dtype)  # committed gensets
    return torch.where(soc < start, k.clamp_min(1), torch.where(soc < stop, k, torch.zeros_like(k)))


class SocHysteresis(torch.nn.Module):
    """See the module docstring. ``start_soc``/``stop_soc`` are floats or per-scenario tensors ``[B]``."""

    def __init__(self, problem, start_soc, stop_soc, genset_load: float = 1.0):
        super().__init__()
        check_proposal(problem, "soc_hysteresis", "genset_load")
        self.p = problem.p
        self.start, self.stop, self.load = start_soc, stop_soc, float(genset_load)

    def forward(self, state, t=0):
        soc, mode = state["soc"], state["mode"]
        start = torch.as_tensor(self.start, dtype=soc.dtype, device=soc.device)
        stop = torch.as_tensor(self.stop, dtype=soc.dtype, device=soc.device)
        return torch.stack([_hysteresis_gensets(soc, mode, start, stop) / self.p.G, torch.full_like(soc, self.load)], 1)


def adaptive_features(p, state) -> torch.Tensor:
    """``[B, F]`` with ``F = len(leads) + 2``: the forecast net load (demand minus wind, over ``d_max``) at
    each forecast lead, then the sine and cosine of the time of day."""
    ang = 2 * np.pi * state["tod"] / 1440.0
    net = (state["fc_d"] - state["fc_w"]) / p.d_max
    return torch.cat([net, torch.sin(ang)[:, None], torch.cos(ang)[:, None]], dim=1)


class AdaptiveHysteresis(torch.nn.Module):
    """:class:`SocHysteresis` whose thresholds are linear in :func:`adaptive_features` ``x``:
    ``start = theta[0] + a.x``, ``stop = max(theta[1] + b.x, start + 0.01)`` and, with ``3F + 2``
    parameters, genset load ``1 + c.x`` (clamped to [0.3, 1]; otherwise rated load), where ``theta = [start0,
    stop0, a (F), b (F), c (F)]``. ``theta`` is ``[P]`` or one row per scenario ``[B, P]``."""

    def __init__(self, problem, theta):
        super().__init__()
        check_proposal(problem, "adaptive hysteresis", "genset_load")
        self.p = problem.p
        self.F = len(problem.leads) + 2
        self.theta = torch.as_tensor(theta, dtype=torch.float32)
        if self.theta.shape[-1] not in (2 * self.F + 2, 3 * self.F + 2):
            raise ValueError(
                f"adaptive hysteresis: {2 * self.F + 2} or {3 * self.F + 2} parameters for {self.F} features, "
                f"got {self.theta.shape[-1]}"
            )

    @staticmethod
    def size(problem, adapt_load: bool = True) -> int:
        return (3 if adapt_load else 2) * (len(problem.leads) + 2) + 2

    def forward(self, state, t=0):
        soc, mode = state["soc"], state["mode"]
        th = self.theta.to(soc.dtype).to(soc.device).expand(soc.shape[0], -1)
        x, F = adaptive_features(self.p, state).to(soc.dtype), self.F
        start = (th[:, 0] + (x * th[:, 2 : 2 + F]).sum(1)).clamp(0.05, 0.9)
        stop = torch.maximum((th[:, 1] + (x * th[:, 2 + F : 2 + 2 * F]).sum(1)).clamp(0.1, 0.95), start + 0.01)
        if th.shape[1] > 2 + 2 * F:
            load = (1.0 + (x * th[:, 2 + 2 * F :]).sum(1)).clamp(0.3, 1.0)
        else:
            load = torch.ones_like(soc)
        return torch.stack([_hysteresis_gensets(soc, mode, start, stop) / self.p.G, load], dim=1)


class ConstantProposal(torch.nn.Module):
    """The same proposal ``[2]`` (or one per scenario, ``[B, 2]``) at every minute; the shields make it safe,
    so the problem must be shielded."""

    def __init__(self, problem, proposal):
        super().__init__()
        if not problem.shielded:
            raise ValueError(f"{problem.source}: a constant proposal needs a shielded problem (shielded = true)")
        self.proposal = torch.as_tensor(proposal, dtype=torch.float32)
        if self.proposal.shape[-1] != 2 or self.proposal.dim() > 2:
            raise ValueError(f"a constant proposal is [2] or [B, 2], got shape {list(self.proposal.shape)}")

    def forward(self, state, t=0):
        soc = state["soc"]
        return self.proposal.to(soc.dtype).expand(soc.shape[0], 2)


def search_hysteresis(
    problem,
    scenarios,
    genset_load: float = 1.0,
    starts=(0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4),
    stops=(0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
):
    """Grid search of ``(start_soc, stop_soc)``, ``start < stop``, on ``scenarios`` (every candidate on the
    same days, all in one batch); returns ``(start, stop, dev cost, every candidate's cost)``."""
    from ..core.search import grid_search

    grid = np.array([(a, b) for a in starts for b in stops if a < b])
    best, costs = grid_search(
        problem, scenarios, grid, lambda prm: SocHysteresis(problem, prm[:, 0], prm[:, 1], genset_load)
    )
    return float(best[0]), float(best[1]), float(costs.min()), dict(zip(map(tuple, grid.tolist()), costs.tolist()))


@torch.no_grad()
def fuel_and_wear(problem, policy, scenarios) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuel-equivalent litres and degradation of each scenario ``[n]`` (float64), as :func:`opsrl.microgrid.run_test`
    reports them, from one rollout without the constraint checker (for training loops)."""
    p = problem.p
    state = problem.initial_state(scenarios)
    soc0 = state["soc"].double()
    fuel = torch.zeros(scenarios.n, dtype=torch.float64, device=soc0.device)
    deg = torch.zeros_like(fuel)
    for t in range(scenarios.periods):
        post, _ = problem.post_decision(state, policy(state, t))
        state, _ = problem.transition(post, scenarios, t)
        fuel += state["out_fuel"].double()
        deg += state["out_degradation"].double()
    return (fuel - (state["soc"].double() - soc0) * p.b_cap * p.fuel_a / p.eta).cpu(), deg.cpu()


def train_adaptive(
    problem,
    train,
    dev,
    theta0,
    *,
    wear_price: float | None = None,
    wear_cap: float = 0.97,
    progress: bool = False,
    **ars_options,
):
    """Learn :class:`AdaptiveHysteresis` parameters from ``theta0`` (usually a searched :class:`SocHysteresis`
    with zero weights) by :func:`opsrl.algos.ars.ars`, every candidate on the same ``train`` days in one batch.

    With ``wear_price`` the objective is fuel-equivalent litres plus that price times degradation (a point
    of the learner's fuel-wear frontier). Without it, fuel-equivalent litres under a cap on degradation of
    ``wear_cap`` times the start's, on the training days (through a Lagrange multiplier) and on the dev
    days (which parameters may be kept): ``wear_cap < 1`` asks for less fuel *and* less wear than the start.
    Returns ``(theta, info)``."""
    from ..algos.ars import ars

    theta0 = np.asarray(theta0, dtype=np.float64)

    def batch(thetas, days):
        K, n = len(thetas), days.n
        rep = days.select(torch.arange(n, device=days.device).repeat(K))
        prm = torch.as_tensor(np.asarray(thetas), dtype=torch.float32).repeat_interleave(n, dim=0)
        feq, deg = fuel_and_wear(problem, AdaptiveHysteresis(problem, prm), rep)
        return feq.reshape(K, n).mean(1).numpy(), deg.reshape(K, n).mean(1).numpy()

    _, d_tr = batch(theta0[None], train)
    f_dev, d_dev = batch(theta0[None], dev)
    capped = wear_price is None
    cap_train, cap_dev = wear_cap * float(d_tr[0]), wear_cap * float(d_dev[0])

    def evaluate(thetas):
        f, d = batch(thetas, train)
        return (f, d) if capped else (f + wear_price * d, None)

    def select(theta):
        f, d = batch(theta[None], dev)
        return (float(f[0]), bool(d[0] <= cap_dev)) if capped else (float(f[0] + wear_price * d[0]), True)

    res = ars(
        evaluate,
        theta0,
        cap=cap_train if capped else None,
        multiplier=1.0,
        select=select,
        progress=progress,
        desc="ars hysteresis",
        **ars_options,
    )
    f_k, d_k = batch(res.theta[None], dev)
    info = {
        "kept_iteration": res.kept_iteration,
        "multiplier": res.multiplier,
        "start_dev_fuel_eq": float(f_dev[0]),
        "start_dev_degradation": float(d_dev[0]),
        "start_train_degradation": float(d_tr[0]),
        "dev_fuel_eq": float(f_k[0]),
        "dev_degradation": float(d_k[0]),
        "history": res.history,
    }
    return res.theta, info
