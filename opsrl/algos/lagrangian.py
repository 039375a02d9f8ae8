"""Lagrangian decision rules (TS-DDR, TS-LDR): the policy proposes targets, a stage LP makes them feasible,
its duals train the policy.

TS-DDR (Rosemberg, Street, Valladao, Van Hentenryck, "Efficiently Training Deep-Learning Parametric Policies
using Lagrangian Duality"; Julia code in LearningToOptimize/DecisionRules.jl) for any problem that offers the
stage-LP contract (``stage_lp``, ``stage_post``, ``stage_cost``, ``target_bounds``, ``target_penalty``; see
docs/lagrangian.md). At stage ``t`` the policy maps what is known (``observe(state)``, optionally the last
observations or an LSTM over all of them, and the stage's time) to a target ``x_hat`` for the outgoing state in
``target_bounds``; the stage LP with the target rows ``x_out + d+ - d- = x_hat`` and the penalty ``P (d+ + d-)``
(:meth:`opsrl.core.lp.StageLP.with_target`) is solved, in closed loop, stage by stage; the realized outgoing
state goes through ``stage_post`` and ``transition`` into the next stage. The training loss is the sum of the
stage LPs' optimal values (with the penalty), as in DecisionRules.jl's stage-wise (single-shooting) training.

Gradients never go through the solver. :class:`StageSolve` (a ``torch.autograd.Function``) returns the
stage's optimal value and the realized outgoing state; its backward pass uses

* the duals of the target rows: ``d value / d x_hat`` (envelope theorem),
* the duals of the incoming-state rows: ``d value / d x_in = S^T y`` (:meth:`StageLP.state_gradient`),
* for the realized outgoing state ``x_out(x_in, x_hat)``, the Jacobian of the LP's solution with its active set
  held fixed (``jacobian = "active_set"``: the rows and bounds active at the solution determine the solution
  locally; the minimum-norm solution of the active system is differentiated, which is exact wherever the
  active set is locally constant, and is what DecisionRules.jl gets from DiffOpt), or the cheaper rule
  ``"target"`` (``d x_out / d x_hat = I`` on the components that follow their target, zero elsewhere, and no
  dependence on ``x_in``), or ``"none"`` (the realized state is treated as a constant).

Back ends: ``"highs"`` (one LP per scenario on the CPU) or ``"torch"`` (:mod:`opsrl.core.lp_torch`, the whole
batch at once, on the scenarios' device).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..core import (
    ConfigError,
    Field,
    Method,
    Problem,
    Scenarios,
    SolveContext,
    SolveOutcome,
    State,
    generator,
    scenario_costs,
    summarize,
)
from ..core.config import MAX_LAYERS, MAX_WIDTH, non_negative, positive, size, threads, validate
from ..core.lp import BACKENDS, LP, LPSolution, StageLP, solve

CONTRACT = ("stage_lp", "stage_post", "stage_cost", "target_bounds")
JACOBIANS = ("active_set", "target", "none")


def check_contract(problem: Problem, source: str, method: str = "tsddr") -> None:
    """Stop with a ConfigError if ``problem`` does not offer the stage-LP contract."""
    missing = [m for m in CONTRACT if not callable(getattr(problem, m, None))]
    if not hasattr(problem, "target_penalty"):
        missing.append("target_penalty")
    if missing:
        raise ConfigError(
            source,
            "method",
            f"{method} needs a problem with a stage LP (the stage-LP contract: "
            f"{', '.join(CONTRACT)}, target_penalty); {getattr(problem, 'name', problem)} lacks "
            f"{', '.join(missing)}",
        )


# --- the differentiable stage solve -------------------------------------------------------------------------
def _detached(lp: LP) -> LP:
    return LP(
        *(t.detach() for t in (lp.c, lp.A, lp.row_lo, lp.row_hi, lp.lb, lp.ub)),
        None if lp.const is None else lp.const.detach(),
    )


def solve_lp(lp: LP, backend: str, **options) -> LPSolution:
    sol = solve(lp, backend, **options)
    if not sol.optimal:
        bad = [s for s in sol.status if s != "optimal"]
        raise RuntimeError(f"a stage LP is not optimal ({bad[0]}, {len(bad)} of {len(sol.status)} scenarios)")
    return sol


def active_sets(lp: LP, sol: LPSolution, tol: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, cols)``: boolean ``[B, m]`` of the rows active at the solution (an equality, or a bound met)
    and ``[B, n]`` of the columns not at a bound (free to move with the active rows)."""
    A = lp.A if lp.A.dim() == 3 else lp.A.unsqueeze(0).expand(lp.batch, *lp.A.shape)
    act = torch.bmm(A, sol.x.unsqueeze(2)).squeeze(2)
    near = lambda a, b: (
        torch.isfinite(b)
        & (
            (a - b).abs()
            <= tol
            * (
                1
                + b.abs().nan_to_num(
                    0.0,
                    posinf=0.0,  # noqa: E731
                    neginf=0.0,
                )
            )
        )
    )
    rows = near(act, lp.row_lo) | near(act, lp.row_hi)
    cols = ~(near(sol.x, lp.lb) | near(sol.x, lp.ub))
    return rows, cols


def realized_vjp(
    stage: StageLP, target_rows: slice, sol: LPSolution, g_out: torch.Tensor, tol: float = 1e-7
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g_in, g_target)``: the vector-Jacobian products ``(d x_out / d x_in)^T g`` and ``(d x_out / d x_hat)^T
    g`` of the realized outgoing state with the LP's active set held fixed.

    Locally ``M dx = dr`` with ``M`` the active rows restricted to the columns off their bounds and ``dr`` the
    change of the active rows' bounds (``S dx_in`` for the incoming state, ``dx_hat`` for the target rows);
    ``dx = M^T (M M^T)^{-1} dr`` (the minimum-norm solution; rows scaled to unit norm, a tiny damping for
    dependent active rows). Batched, on the solution's device."""
    lp = stage.lp
    B, (m, n) = lp.batch, lp.shape
    rows, cols = active_sets(lp, sol, tol)
    A = lp.A if lp.A.dim() == 3 else lp.A.unsqueeze(0).expand(B, m, n)
    M = A * rows.unsqueeze(2) * cols.unsqueeze(1)
    norm = M.norm(dim=2)
    d = torch.where(norm > 0, 1.0 / norm.clamp_min(1e-300), torch.zeros_like(norm))
    M = M * d.unsqueeze(2)
    u = torch.zeros(B, n, dtype=g_out.dtype, device=g_out.device)
    u[:, stage.state_out] = g_out
    u = u * cols
    MMt = torch.bmm(M, M.transpose(1, 2))
    eye = torch.eye(m, dtype=M.dtype, device=M.device)
    MMt = MMt + torch.where(norm > 0, 1e-10, 1.0).unsqueeze(2) * eye
    L, info = torch.linalg.cholesky_ex(MMt)
    Mu = torch.bmm(M, u.unsqueeze(2))
    w = (
        torch.cholesky_solve(Mu, L).squeeze(2)
        if not bool((info > 0).any())
        else torch.linalg.lstsq(MMt, Mu).solution.squeeze(2)
    )
    w = w * d  # back to the unscaled rows' bounds
    g_in = w @ stage.state_in.to(w)
    return g_in, w[:, target_rows]


class StageSolve(torch.autograd.Function):
    """``(value, x_out) = StageSolve.apply(x_in, target, stage, penalty, backend, jacobian, out)``.

    Forward: solve ``stage.with_target(target, penalty)`` (``stage`` built from ``x_in``) with ``backend``;
    ``value`` ``[B]`` is its optimal value (with the penalty), ``x_out`` ``[B, k]`` the realized outgoing state;
    ``out`` (a dict) receives the target LP and its solution. Backward: the duals (see the module text)."""

    @staticmethod
    def forward(ctx, x_in, target, stage: StageLP, penalty, backend: str, jacobian: str, out: dict):
        tlp, rows = stage.with_target(target.detach(), penalty)
        tlp = replace(tlp, lp=_detached(tlp.lp))
        sol = solve_lp(tlp.lp, backend)
        out["stage"], out["sol"], out["rows"] = tlp, sol, rows
        ctx.stage, ctx.sol, ctx.rows, ctx.jacobian = tlp, sol, rows, jacobian
        x_out = tlp.outgoing(sol).to(x_in.dtype)
        return sol.value.to(x_in.dtype), x_out

    @staticmethod
    def backward(ctx, g_value, g_out):
        tlp, sol, rows = ctx.stage, ctx.sol, ctx.rows
        y = sol.y.to(g_value.dtype)
        g_in = g_value.unsqueeze(1) * tlp.state_gradient(sol).to(g_value.dtype)
        g_t = g_value.unsqueeze(1) * y[:, rows]
        if g_out is not None and ctx.jacobian != "none" and bool((g_out != 0).any()):
            if ctx.jacobian == "active_set":
                a, b = realized_vjp(tlp, rows, sol, g_out.to(sol.x.dtype))
                g_in, g_t = g_in + a.to(g_in), g_t + b.to(g_t)
            else:  # "target": identity where the target is followed
                x_out = tlp.outgoing(sol)
                target = tlp.lp.row_lo[:, rows]
                follow = (x_out - target).abs() <= 1e-7 * (1 + target.abs())
                g_t = g_t + torch.where(follow, g_out, torch.zeros_like(g_out))
        return g_in, g_t, None, None, None, None, None


def stage_solve(
    stage: StageLP, target: torch.Tensor, penalty: float, backend: str = "highs", jacobian: str = "active_set"
) -> tuple[torch.Tensor, torch.Tensor, StageLP, LPSolution]:
    """Differentiable stage solve: ``(value, x_out, target_stage, solution)``; ``value`` and ``x_out`` carry
    gradients to ``stage.x_in`` and ``target`` (see :class:`StageSolve`)."""
    out: dict = {}
    value, x_out = StageSolve.apply(stage.x_in, target, stage, penalty, backend, jacobian, out)
    return value, x_out, out["stage"], out["sol"]


# --- policies ------------------------------------------------------------------------------------------------
POLICY_SCHEMA = {
    "kind": Field(
        str,
        "mlp",
        choices=("mlp", "lstm", "linear"),
        doc="mlp on the features, lstm over the history of features, or linear in the features (TS-LDR)",
    ),
    "hidden": Field(
        list,
        [64, 64],
        item=int,
        allowed=f"a list of at most {MAX_LAYERS} positive layer widths, each at most {MAX_WIDTH}",
        check=lambda v: all(w > 0 for w in v),
        max=MAX_WIDTH,
        max_len=MAX_LAYERS,
    ),
    "activation": Field(str, "elu", choices=("elu", "relu", "tanh", "silu")),
    "history": Field(
        int,
        0,
        allowed="an integer from 0 to 10^4: past observations fed to the mlp or linear rule beside the current one",
        check=non_negative,
        max=10**4,
    ),
    "time": Field(
        str,
        "onehot",
        choices=("onehot", "scalar", "none"),
        doc="the stage as a feature: t / periods and a one-hot of t, or t / periods only, or none (stationary "
        "problems evaluated over more periods than they are trained on)",
    ),
    "output": Field(
        str,
        "",
        choices=("", "sigmoid", "affine", "residual"),
        doc="target = lo + (hi - lo) * sigmoid(out) or * (0.5 + out) (affine, the linear rule's "
        "default; the LP makes targets outside the range feasible), or x_in + (hi - lo) * out "
        "(residual: a step from the incoming state, which the rule starts at; for problems whose "
        "outgoing state is the incoming one moved, such as volumes); '': sigmoid for mlp and lstm",
    ),
    "anchor": Field(
        str,
        "state",
        choices=("state", "lp"),
        doc="what a residual rule steps from: the incoming state, or the stage LP's own decision (its outgoing "
        "state without a target, ties broken by a pull of anchor_pull per unit towards the upper target bound; "
        "for hydro the myopic rule), which the rule then starts at",
    ),
    "anchor_pull": Field(
        float, 1e-6, allowed="a cost >= 0 per unit below the upper target bound in the anchor LP", check=non_negative
    ),
    "step": Field(
        str,
        "span",
        choices=("span", "reach"),
        doc="the unit of a residual rule's output per component: the target range (hi - lo), or the mean width "
        "of the range a stage's LP can move each component (measured at 12 stages of 16 dev scenarios when the rule "
        "is built)",
    ),
}

ACT = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}


class TargetPolicy(nn.Module):
    """Features of what is known -> target outgoing state in ``target_bounds``.

    ``features(problem, state, t)`` is ``observe(state)`` and ``t / periods``; ``history`` keeps the last
    observations (zeros before the first stage); an LSTM carries its own summary of all past features.
    ``step(feats, memory)`` returns ``(raw [B, k], memory)``; ``reset(B)`` the initial memory."""

    def __init__(
        self,
        n_in: int,
        k: int,
        kind: str = "mlp",
        hidden=(64, 64),
        activation: str = "elu",
        history: int = 0,
        output: str = "",
        time: str = "onehot",
        anchor: str = "state",
        anchor_pull: float = 1e-6,
    ):
        super().__init__()
        self.time = time
        self.anchor, self.anchor_pull, self.anchor_backend = anchor, float(anchor_pull), "highs"
        # a residual rule's output unit, as a share of the target range (1: the range; see build_target_policy)
        self.register_buffer("step_frac", torch.ones(k), persistent=False)
        self.kind, self.k, self.n_obs, self.history = kind, k, n_in, int(history)
        self.output = output or ("affine" if kind == "linear" else "sigmoid")
        width = n_in * (1 + self.history) if kind != "lstm" else n_in
        if kind == "linear":
            self.net = nn.Linear(width, k)
            nn.init.zeros_(self.net.weight)
            nn.init.zeros_(self.net.bias)
        elif kind == "mlp":
            layers: list[nn.Module] = []
            for w in hidden:
                layers += [nn.Linear(width, w), ACT[activation]()]
                width = w
            layers.append(nn.Linear(width, k))
            self.net = nn.Sequential(*layers)
        else:
            h = hidden[0] if hidden else 64
            self.lstm = nn.LSTMCell(n_in, h)
            layers = []
            width = h
            for w in hidden[1:]:
                layers += [nn.Linear(width, w), ACT[activation]()]
                width = w
            layers.append(nn.Linear(width, k))
            self.net = nn.Sequential(*layers)
        if self.output == "residual":  # start at "keep the incoming state"
            last = self.net if kind == "linear" else self.net[-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def reset(self, B: int, like: torch.Tensor):
        p = next(self.parameters())
        if self.kind == "lstm":
            h = self.lstm.hidden_size
            return (
                torch.zeros(B, h, dtype=p.dtype, device=like.device),
                torch.zeros(B, h, dtype=p.dtype, device=like.device),
            )
        return [torch.zeros(B, self.n_obs, dtype=p.dtype, device=like.device) for _ in range(self.history)]

    def step(self, feats: torch.Tensor, memory):
        feats = feats.to(next(self.parameters()).dtype)
        if self.kind == "lstm":
            h, c = self.lstm(feats, memory)
            return self.net(h), (h, c)
        x = torch.cat([feats, *memory], 1) if self.history else feats
        memory = ([feats] + memory[:-1]) if self.history else memory
        return self.net(x), memory

    def target(
        self, raw: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, x_in: torch.Tensor | None = None
    ) -> torch.Tensor:
        span = hi - lo
        if self.output == "residual":
            step = span * self.step_frac.to(span)
            return x_in[:, : span.shape[1]] + step * raw.to(lo.dtype)  # (the first k entries of x_in)
        squash = torch.sigmoid(raw) if self.output == "sigmoid" else 0.5 + raw
        return lo + span * squash.to(lo.dtype)


def features(problem: Problem, state: State, t: int, time: str = "onehot") -> torch.Tensor:
    """``observe(state)`` and the stage: ``t / periods`` (``time = "scalar"``), or also a one-hot of ``t``
    (``"onehot"``, for episodes of a fixed length; stages beyond ``periods`` read as the last)."""
    obs = problem.observe(state)
    if time == "none":
        return obs
    T = max(problem.periods, 1)
    tt = torch.full((obs.shape[0], 1), t / T, dtype=obs.dtype, device=obs.device)
    if time == "scalar":
        return torch.cat([obs, tt], 1)
    hot = torch.zeros(obs.shape[0], T, dtype=obs.dtype, device=obs.device)
    hot[:, min(t, T - 1)] = 1.0
    return torch.cat([obs, tt, hot], 1)


def build_target_policy(
    problem: Problem, config: Mapping[str, Any], source: str, kind: str | None = None
) -> TargetPolicy:
    from ..core import validate

    cfg = validate(dict(config), POLICY_SCHEMA, source, prefix="policy.")
    if kind is not None and "kind" not in config:
        cfg["kind"] = kind
    sc = problem.sample(1, "dev", 0, periods=1)
    state = problem.initial_state(sc)
    lo, _ = problem.target_bounds(state)
    n_in = features(problem, state, 0, cfg["time"]).shape[1]
    policy = TargetPolicy(
        n_in,
        lo.shape[1],
        cfg["kind"],
        cfg["hidden"],
        cfg["activation"],
        cfg["history"],
        cfg["output"],
        cfg["time"],
        cfg["anchor"],
        cfg["anchor_pull"],
    ).double()
    if cfg["step"] == "reach":
        policy.step_frac.copy_(reach_share(problem))
    return policy


def reach_share(problem: Problem, n: int = 16, seed: int = 0, points: int = 12) -> torch.Tensor:
    """Per component ``i`` of the target, how far the stage LP can move it: the mean of ``x_out_i`` with the target
    at ``lo`` except ``hi`` for component ``i``, less ``x_out_i`` with every target at ``lo`` (a penalty 1000 x the
    problem's), at ``points`` stages spread over the horizon of ``n`` dev scenarios that keep their state (target =
    incoming state), as a share of the target range (in [1e-6, 1]; 1 where the range is empty). One component at a
    time, so that a cascade (hydro: water turbined into a reservoir downstream) does not hide a component's reach."""
    sc = problem.sample(n, "dev", seed)
    state = problem.initial_state(sc)
    big = 1e3 * max(float(problem.target_penalty), 1.0)
    T = sc.periods
    at = set(range(0, T, max(1, T // points)))
    width, span = 0.0, 0.0
    for t in range(T):
        lo, hi = problem.target_bounds(state)
        k = lo.shape[1]
        stage = problem.stage_lp(state, sc, t)
        keep = stage.with_target(stage.x_in[:, :k], big)[0]
        if t in at:
            rep = torch.arange(n, device=lo.device).repeat(k + 1)
            st_rep = {key: v[rep] for key, v in state.items()}
            targets = lo[rep].clone()
            for i in range(k):
                targets[(i + 1) * n : (i + 2) * n, i] = hi[:, i]
            tlp = problem.stage_lp(st_rep, sc.select(rep), t).with_target(targets, big)[0]
            x = tlp.outgoing(solve_lp(tlp.lp, "highs")).reshape(k + 1, n, k)
            width = width + torch.stack([(x[i + 1, :, i] - x[0, :, i]).abs().mean() for i in range(k)])
            span = span + (hi - lo).mean(0)
        state, _ = problem.transition(problem.stage_post(state, keep, solve_lp(keep.lp, "highs"), t), sc, t)
    share = torch.where(span > 0, (width / span.clamp_min(1e-300)).clamp(1e-6, 1.0), torch.ones_like(span))
    return share.to(torch.float64)


def anchored(
    problem: Problem,
    policy: TargetPolicy,
    stage: StageLP,
    hi: torch.Tensor,
    backend: str = "highs",
    jacobian: str = "active_set",
) -> torch.Tensor:
    """What a residual rule steps from: the incoming state (``anchor = "state"``) or the outgoing state the stage
    LP chooses without a target (``"lp"``; a pull of ``anchor_pull`` per unit towards ``hi`` breaks its ties),
    differentiable in the incoming state like any stage solve."""
    if policy.output != "residual" or policy.anchor != "lp":
        return stage.x_in
    _, x_out, _, _ = stage_solve(stage, hi.detach(), policy.anchor_pull, backend, jacobian)
    return x_out


# --- rollouts ------------------------------------------------------------------------------------------------
def rollout(
    problem: Problem,
    policy: TargetPolicy,
    scenarios: Scenarios,
    penalty: float,
    backend: str = "highs",
    jacobian: str = "active_set",
    record: bool = False,
) -> dict[str, Any]:
    """Roll ``policy`` through the stage LPs in closed loop on every scenario at once.

    Returns ``loss`` ``[B, T]`` (stage LP values with the penalty, plus transition costs; differentiable),
    ``cost`` ``[B, T]`` (the true costs: ``stage_cost`` plus transition costs), ``penalty_cost`` ``[B, T]`` and,
    with ``record``, the per-stage ``stage_record`` metrics, targets and realized states."""
    state = problem.initial_state(scenarios)
    ref = next(iter(state.values()))
    B = ref.shape[0]
    memory = policy.reset(B, ref)
    loss, cost, pen, recs, targets, realized, solve_s = [], [], [], [], [], [], 0.0
    for t in range(scenarios.periods):
        raw, memory = policy.step(features(problem, state, t, policy.time), memory)
        lo, hi = problem.target_bounds(state)
        stage = problem.stage_lp(state, scenarios, t)
        base = anchored(problem, policy, stage, hi, backend, jacobian)
        target = policy.target(raw, lo.detach(), hi.detach(), base)
        t0 = time.perf_counter()
        value, x_out, tlp, sol = stage_solve(stage, target, penalty, backend, jacobian)
        solve_s += time.perf_counter() - t0
        x = sol.x.to(x_out.dtype).index_copy(1, tlp.state_out.to(x_out.device), x_out)
        sol_d = replace(sol, x=x)
        true = problem.stage_cost(tlp, sol).detach().to(value.dtype)
        post = problem.stage_post(state, tlp, sol_d, t)
        state, c2 = problem.transition(post, scenarios, t)
        c2 = c2.to(value.dtype)
        loss.append(value + c2)
        cost.append(true + c2.detach())
        pen.append(value.detach() - true)
        if record:
            recs.append(
                {k: v.detach() for k, v in problem.stage_record(tlp, sol).items()}
                if hasattr(problem, "stage_record")
                else {}
            )
            targets.append(target.detach())
            realized.append(x_out.detach())
    out = {
        "loss": torch.stack(loss, 1),
        "cost": torch.stack(cost, 1),
        "penalty_cost": torch.stack(pen, 1),
        "solve_seconds": solve_s,
    }
    if record:
        out.update(records=recs, targets=torch.stack(targets, 1), realized=torch.stack(realized, 1))
    return out


def evaluate(
    problem: Problem, policy: TargetPolicy, scenarios: Scenarios, penalty: float, backend: str = "highs", chunk: int = 0
) -> tuple[Any, dict[str, Any]]:
    """The true cost of ``policy`` on ``scenarios`` (no gradients): ``(Evaluation, info)`` with the target
    violation share (penalty cost over the LP objective, as DecisionRules.jl reports it) and the decision time
    per stage (policy and stage LP, per scenario and per batch)."""
    was = policy.training
    policy.eval()
    parts, pen, obj, seconds, solve_s = [], 0.0, 0.0, 0.0, 0.0
    chunk = chunk or scenarios.n
    with torch.no_grad():
        for i in range(0, scenarios.n, chunk):
            sc = scenarios.select(slice(i, i + chunk))
            t0 = time.perf_counter()
            r = rollout(problem, policy, sc, penalty, backend, "none")
            seconds += time.perf_counter() - t0
            solve_s += r["solve_seconds"]
            w = problem.test_warmup
            if w is not None and w >= scenarios.periods:  # a dev set shorter than the test warm-up
                w = None
            parts.append(scenario_costs(problem, r["cost"], w))
            pen += float(r["penalty_cost"].sum())
            obj += float(r["loss"].sum())
    policy.train(was)
    ev = summarize(problem, torch.cat(parts), scenarios.periods, w)
    stages = scenarios.periods * math.ceil(scenarios.n / chunk)
    info = {
        "target_violation_share": pen / obj if obj else 0.0,
        "decision_seconds_per_stage": seconds / stages,
        "decision_seconds_per_stage_per_scenario": seconds / (scenarios.periods * scenarios.n),
        "lp_seconds_per_stage": solve_s / stages,
        "backend": backend,
    }
    return ev, info


class TargetRule:
    """A trained target policy as an opsrl ``Policy``: ``action`` in [0, 1]^k is the target's fraction of
    ``target_bounds`` (what the stage-LP problems' ``post_decision`` reads). An LSTM's memory restarts at
    ``t == 0``; it assumes the calls come stage by stage for one batch, as in a rollout."""

    def __init__(self, problem: Problem, policy: TargetPolicy):
        self.problem, self.policy, self.memory = problem, policy, None
        self.training = False

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def __call__(self, state: State, t: int) -> torch.Tensor:
        with torch.no_grad():
            ref = next(iter(state.values()))
            if t == 0 or self.memory is None:
                self.memory = self.policy.reset(ref.shape[0], ref)
            raw, self.memory = self.policy.step(features(self.problem, state, t, self.policy.time), self.memory)
            lo, hi = self.problem.target_bounds(state)
            x_in = None
            if self.policy.output == "residual":
                stage = self.problem.stage_lp(state, None, t)
                x_in = anchored(self.problem, self.policy, stage, hi, self.policy.anchor_backend, "none")
            target = self.policy.target(raw, lo, hi, x_in)
            to_action = getattr(self.problem, "target_action", None)
            if to_action is not None:  # a problem whose own actions are not targets (inventory networks)
                return to_action(state, target, t)
            span = hi - lo
            return torch.where(span > 0, (target - lo) / span.clamp_min(1e-300), torch.zeros_like(target))


# --- training ------------------------------------------------------------------------------------------------
OPTIONS = {
    "lr": Field(float, 1e-3, allowed="a positive learning rate", check=positive),
    "batch_size": size(32, 10**6, allowed="scenarios per gradient step, from 1 to 10^6"),
    "train_scenarios": size(4096, 10**7, allowed="the size of the training pool, from 1 to 10^7"),
    "dev_scenarios": size(256, 10**7, allowed="dev scenarios, from 1 to 10^7"),
    "max_steps": size(1000, 10**9, allowed="a positive number of gradient steps, at most 10^9"),
    "eval_every": Field(int, 25, allowed="a positive number of steps", check=positive),
    "patience": Field(
        int, 0, allowed="evaluations without improvement before stopping (0: never stop early)", check=non_negative
    ),
    "time_limit": Field(float, 0.0, allowed="seconds of training (0: no limit)", check=non_negative),
    "grad_clip": Field(float, 0.0, allowed="max gradient norm (0: no clipping)", check=non_negative),
    "lr_decay": Field(
        float,
        1.0,
        allowed="a factor in (0, 1] applied to the learning rate at every evaluation without improvement",
        check=lambda v: 0 < v <= 1,
    ),
    "backend": Field(str, "highs", choices=BACKENDS, doc="LP back end of training and evaluation"),
    "jacobian": Field(
        str,
        "active_set",
        choices=JACOBIANS,
        doc="how the realized outgoing state depends on the incoming state and the target",
    ),
    "penalty": Field(
        float,
        0.0,
        allowed="the target penalty P per unit of |x_out - target| (0: the problem's target_penalty)",
        check=non_negative,
    ),
    "penalty_start": Field(
        float,
        1.0,
        allowed="a factor in (0, 1]: the penalty starts at this share of P and "
        "rises geometrically to P over anneal_steps (1: no annealing)",
        check=lambda v: 0 < v <= 1,
    ),
    "anneal_steps": Field(int, 0, allowed="steps of the penalty annealing (0: half of max_steps)", check=non_negative),
    "eval_chunk": Field(int, 0, allowed="scenarios per evaluation batch (0: all at once)", check=non_negative),
    "train_periods": size(0, 10**6, low=0, allowed="periods of a training scenario (0: the problem's), at most 10^6"),
    "dev_periods": size(0, 10**6, low=0, allowed="periods of a dev scenario (0: the problem's), at most 10^6"),
    "threads": threads(0),
}


def penalty_at(step: int, o: Mapping[str, Any], P: float) -> float:
    if o["penalty_start"] >= 1.0:
        return P
    n = o["anneal_steps"] or max(1, o["max_steps"] // 2)
    frac = min(1.0, step / n)
    return P * o["penalty_start"] ** (1.0 - frac)


def train(
    problem: Problem, policy: TargetPolicy, options: Mapping[str, Any], ctx: SolveContext, name: str = "tsddr"
) -> tuple[TargetPolicy, list[dict[str, float]], dict[str, Any]]:
    """Train ``policy`` by TS-DDR; returns it with its best-on-dev parameters, the learning curve and info."""
    o = dict(options)
    if o["threads"]:
        torch.set_num_threads(o["threads"])
    dev = ctx.device
    policy.to(dev)
    policy.anchor_backend = o["backend"]
    P = o["penalty"] or float(problem.target_penalty)
    pool = problem.sample(o["train_scenarios"], "train", ctx.seed, o.get("train_periods") or None, dev)
    dev_set = problem.sample(o["dev_scenarios"], "dev", ctx.seed, o.get("dev_periods") or None, dev)
    g = generator(ctx.seed, "train", "minibatch")
    opt = torch.optim.Adam(policy.parameters(), lr=o["lr"])
    t0 = time.perf_counter()
    ev, _ = evaluate(problem, policy, dev_set, P, o["backend"], o["eval_chunk"])
    best, best_state, stale = ev.mean, copy.deepcopy(policy.state_dict()), 0
    curve = [
        {
            "step": 0,
            "seconds": time.perf_counter() - t0,
            "train_loss": math.nan,
            "penalty": penalty_at(0, o, P),
            "dev_cost": ev.mean,
            "dev_stderr": ev.stderr,
        }
    ]
    bar = tqdm(
        total=o["max_steps"], desc=f"{name} {problem.name}", disable=not ctx.progress, leave=False, dynamic_ncols=True
    )
    losses: list[float] = []
    time_limited = False
    step = 0
    policy.train()
    for step in range(1, o["max_steps"] + 1):
        pen = penalty_at(step, o, P)
        idx = torch.randint(pool.n, (min(o["batch_size"], pool.n),), generator=g).to(dev)
        r = rollout(problem, policy, pool.select(idx), pen, o["backend"], o["jacobian"])
        loss = scenario_costs(problem, r["loss"]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if o["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), o["grad_clip"])
        opt.step()
        losses.append(loss.item())
        bar.update(1)
        time_limited = bool(o["time_limit"] and time.perf_counter() - t0 >= o["time_limit"])
        if step % o["eval_every"] == 0 or step == o["max_steps"] or time_limited:
            ev, info = evaluate(problem, policy, dev_set, P, o["backend"], o["eval_chunk"])
            curve.append(
                {
                    "step": step,
                    "seconds": time.perf_counter() - t0,
                    "train_loss": sum(losses) / len(losses),
                    "penalty": pen,
                    "dev_cost": ev.mean,
                    "dev_stderr": ev.stderr,
                    "target_violation_share": info["target_violation_share"],
                }
            )
            losses = []
            if ev.mean < best:
                best, stale, best_state = ev.mean, 0, copy.deepcopy(policy.state_dict())
            else:
                stale += 1
                for group in opt.param_groups:
                    group["lr"] *= o["lr_decay"]
            bar.set_postfix(dev=f"{ev.mean:.5g}", best=f"{best:.5g}")
            ctx.log(f"step {step}: train {curve[-1]['train_loss']:.5g} dev {ev.mean:.5g} (best {best:.5g})")
            if (o["patience"] and stale >= o["patience"]) or time_limited:
                break
    bar.close()
    policy.load_state_dict(best_state)
    policy.eval()
    best_entry = min(curve, key=lambda e: e["dev_cost"])
    info = {
        "best_dev_cost": best,
        "best_step": best_entry["step"],
        "steps": step,
        "penalty": P,
        "parameters": sum(p.numel() for p in policy.parameters()),
        "backend": o["backend"],
        "jacobian": o["jacobian"],
        "time_limited": time_limited,
    }
    return policy, curve, info


def _fit(kind: str, name: str):
    def fit(problem: Problem, options: Mapping[str, Any], config: Mapping[str, Any], ctx: SolveContext) -> SolveOutcome:
        check_contract(problem, ctx.source, name)
        torch.manual_seed(ctx.seed)
        policy = build_target_policy(problem, config.get("policy", {}), ctx.source, kind)
        policy, curve, info = train(problem, policy, options, ctx, name)
        P = info["penalty"]

        def evaluate_test(scenarios: Scenarios):
            return evaluate(problem, policy, scenarios, P, options["backend"], options["eval_chunk"])

        return SolveOutcome(policy=TargetRule(problem, policy), evaluate=evaluate_test, curve=curve, info=info)

    return fit


def sizes(problem: Problem, o: Mapping[str, Any], config: Mapping[str, Any]) -> list:
    """The training pool and the dev set, estimated before they are drawn; the policy table is checked here
    too (its widths are bounded), so that a typo stops before anything is allocated."""
    from .sizes import pool_needs

    src = config["source"]
    validate(config.get("policy", {}), POLICY_SCHEMA, src, prefix="policy.")
    return pool_needs(
        problem,
        o,
        src,
        [
            ("train_scenarios", "train_periods", "train", o["train_periods"] or problem.periods),
            ("dev_scenarios", "dev_periods", "dev", o["dev_periods"] or problem.periods),
        ],
    )


METHOD = Method(
    "tsddr",
    _fit("mlp", "tsddr"),
    OPTIONS,
    sizes=sizes,
    learns=True,
    description="Lagrangian deep decision rules (TS-DDR): a policy proposes target states, a stage LP "
    "makes them feasible, its duals train the policy",
)
LSTM_METHOD = Method(
    "tsddr_lstm",
    _fit("lstm", "tsddr_lstm"),
    OPTIONS,
    sizes=sizes,
    learns=True,
    description="TS-DDR with an LSTM over the history of what is known",
)
LINEAR_METHOD = Method(
    "tsldr",
    _fit("linear", "tsldr"),
    OPTIONS,
    sizes=sizes,
    learns=True,
    description="Lagrangian linear decision rules (TS-LDR): targets linear in what is known",
)
