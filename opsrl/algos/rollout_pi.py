"""Rollout and approximate policy iteration by simulation, for discrete-action problems.

A *rollout step* evaluates, in a batch of states at period ``t``, ``K`` candidate actions per state: each
candidate is applied, then a *base policy* is rolled ``horizon - 1`` further periods, on ``paths`` exogenous
paths that are shared by all candidates of a state (common random numbers: the same scenario rows for every
candidate, so the comparison between two candidates is paired). All of it is one batched simulator call per
period over states x candidates x paths. The candidate with the least mean cost wins (ties: the first, so the
base policy's own action, listed first, is kept unless another is strictly better). With ``halving_rounds``
(sequential halving) each round evaluates the surviving candidates on ``paths`` fresh paths, accumulates
their mean, and keeps the better half, so the close calls get the most paths.

Where the paths come from, without peeking. A rollout from a mid-episode state at period ``t`` needs the
exogenous values of periods ``t .. t + horizon - 1``. The rollout policy never reads the episode's own
scenario: it draws fresh scenarios from the problem's own generator (``problem.sample(n, "train", seed)``,
seeds of its own) and uses their periods ``t ..`` as continuations. They are draws of the same distribution;
the true future stays unseen. This fits problems whose scenarios hold exogenous values only (lot sizing's
demand). Where a scenario also holds the instance itself (random job-shop instances, VM snapshots), a fresh draw
is another instance: pass a ``paths_fn`` that rebuilds continuations from what the state knows (for a job shop
without noise, from the one instance of a single-instance problem the fresh draw is the same instance).

Actions: ``ActionSpec("discrete", shape, n)``: ``D = prod(shape)`` decisions of ``n`` choices each (lot sizing:
one item or idle per machine, ``[B, M]``; job shop: one job, ``[B, 1]``); ``problem.action_mask(state)`` is
``[B, n]`` or ``[B, D, n]`` (or None). Candidates are ``[B, K, D]`` integer tensors; a candidate that the mask
forbids is never simulated (its value is ``inf``).

Policy iteration (:func:`policy_iteration`): states visited by the current policy on training scenarios are
labelled with their best candidate (the current policy's action, the start rule's, given extra ones, and
samples of the learned policy), a factorised classifier (one masked softmax per decision, over the problem's
flat observation and the time to go) is fitted to all labels so far by cross-entropy, and the best policy on
dev scenarios is kept, so the result is never worse on dev than the start.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..core import ConfigError, Field, Method, Problem, Scenarios, SolveContext, SolveOutcome, State, evaluate, rollout
from ..core.config import check_memory, positive, size

CandidatesFn = Callable[[State, int], torch.Tensor]
"""``candidates_fn(state, t) -> [B, K, D]`` candidate actions of each state (the base policy's first)."""

Tail = Callable[[State, int, Scenarios], torch.Tensor]
"""``tail(state, t, paths) -> [rows]``: the cost still to come from period ``t`` of a rollout cut short
(:func:`bound_tail`, :func:`policy_tail`)."""


# --- actions ----------------------------------------------------------------------------------
def decisions(problem: Problem) -> tuple[int, int]:
    """``(D, n)``: the number of decisions of an action and the choices of each."""
    spec = problem.action_spec
    if spec.kind != "discrete" or spec.n <= 0:
        raise ValueError(f"{problem.name}: rollout needs discrete actions (ActionSpec kind 'discrete')")
    return int(math.prod(spec.shape)), int(spec.n)


def flat_action(action: torch.Tensor, B: int, D: int) -> torch.Tensor:
    """A policy's action as ``[B, D]`` integers."""
    return action.reshape(B, D).round().long() if action.is_floating_point() else action.reshape(B, D).long()


def mask3(problem: Problem, state: State, B: int, D: int, n: int) -> torch.Tensor | None:
    """The action mask as ``[B, D, n]`` booleans, or None where everything is allowed. A problem whose mask
    covers only the first of its ``D`` decisions (``[B, n]``: the later stages depend on the first choice) gets
    rows that allow nothing for the later decisions, which :func:`allowed` reads as "any choice" (as a
    finished job shop's); the simulator then treats a disallowed pair as it always does."""
    m = problem.action_mask(state)
    if m is None:
        return None
    if D > 1 and m.numel() == B * n:  # a staged action (VM: which VM, then where): the mask of the first stage
        rest = torch.zeros(B, D - 1, n, dtype=torch.bool, device=m.device)  # nothing masked: any choice
        return torch.cat([m.reshape(B, 1, n).bool(), rest], 1)
    return m.reshape(B, D, n).bool()


def allowed(cands: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``[B, K]``: True where every decision of a candidate ``[B, K, D]`` is allowed by ``mask`` ``[B, D, n]``.

    Rows whose mask allows nothing at all for a decision (a finished job shop) accept any choice."""
    if mask is None:
        return torch.ones(cands.shape[:2], dtype=torch.bool, device=cands.device)
    K = cands.shape[1]
    m = mask.unsqueeze(1).expand(-1, K, -1, -1)  # [B, K, D, n]
    ok = m.gather(3, cands.clamp(0, mask.shape[-1] - 1).unsqueeze(-1)).squeeze(-1)
    ok = ok & (cands >= 0) & (cands < mask.shape[-1])
    dead = ~mask.any(-1)  # [B, D]
    return (ok | dead.unsqueeze(1)).all(-1)


def replicate(state: State, r: int) -> State:
    """Every row of ``state`` ``r`` times in a row (row ``b`` becomes rows ``b * r .. b * r + r - 1``)."""
    B = _batch(state)
    return {
        k: v.repeat_interleave(r, 0) if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == B else v
        for k, v in state.items()
    }


def _batch(state: State) -> int:
    for v in state.values():
        if isinstance(v, torch.Tensor) and v.dim():
            return v.shape[0]
    raise ValueError("a state needs at least one batch-first tensor")


def state_bytes(problem: Problem) -> int:
    """Bytes of one row of a rollout: a state and its scenario (measured on one scenario)."""
    sc = problem.sample(1, "dev", 0)
    st = problem.initial_state(sc)
    rows = [*st.values(), *sc.data.values()]
    return sum(v[:1].numel() * v.element_size() for v in rows if isinstance(v, torch.Tensor) and v.dim())


# --- tails of rollouts cut short ---------------------------------------------------------------------
def bound_tail(problem: Problem) -> Tail:
    """The problem's cost-to-go bound (``problem.cost_to_go_bound``) as a tail: cheap, and optimistic."""
    return lambda state, t, paths: problem.cost_to_go_bound(state, t)


def policy_tail(problem: Problem, policy: Callable[[State, int], torch.Tensor]) -> Tail:
    """``policy`` (a cheap rule) finishing the episode on the rollout's own paths, as a tail: its real cost."""

    def tail(state: State, t: int, paths: Scenarios) -> torch.Tensor:
        total = torch.zeros(_batch(state), dtype=torch.float64, device=paths.device)
        for u in range(t, paths.periods):
            post, c1 = problem.post_decision(state, policy(state, u))
            state, c2 = problem.transition(post, paths, u)
            total += (c1 + c2).double()
        return total

    return tail


# --- the rollout step ---------------------------------------------------------------------------
@torch.no_grad()
def rollout_values(
    problem: Problem,
    base: Callable[[State, int], torch.Tensor],
    state: State,
    t: int,
    cands: torch.Tensor,
    paths: Scenarios,
    horizon: int,
    tail: Tail | None = None,
) -> torch.Tensor:
    """Costs ``[B, K, R]`` of candidates ``[B, K, D]`` applied at period ``t``, then ``base`` for the rest of
    ``horizon`` periods (never past the episode), on ``paths``: ``B * R`` scenario rows, row ``b * R + r``
    being path ``r`` of state ``b``, shared by all candidates of ``b``. One batched call per period. A rollout
    that stops before the episode's end adds ``tail(state, period, paths)`` ``[rows]``, an estimate of the cost
    still to come (:func:`bound_tail`, :func:`policy_tail`)."""
    B, K, D = cands.shape
    R = paths.n // B
    if R * B != paths.n:
        raise ValueError(f"{paths.n} path rows for {B} states: need a multiple of the states")
    rows = B * K * R
    i = torch.arange(rows, device=cands.device)
    sc = paths.select((i // (K * R)) * R + i % R)
    s = replicate(state, K * R)
    a = cands.reshape(B * K, D).repeat_interleave(R, 0)
    total = torch.zeros(rows, dtype=torch.float64, device=cands.device)
    end = min(t + horizon, paths.periods)
    for u in range(t, end):
        if u > t:
            a = flat_action(base(s, u), rows, D)
        post, c1 = problem.post_decision(s, a)
        s, c2 = problem.transition(post, sc, u)
        total += (c1 + c2).double()
    if tail is not None and end < paths.periods:
        total += tail(s, end, sc).double()
    return total.view(B, K, R)


class RolloutStep:
    """Chooses, per state, the best of its candidates by simulation (see the module docstring).

    ``paths_fn(state, t, n_paths, round) -> Scenarios`` gives ``B * n_paths`` rows (row ``b * n_paths + r``:
    path ``r`` of state ``b``); the default draws fresh scenarios from the problem's generator.
    """

    def __init__(
        self,
        problem: Problem,
        base: Callable[[State, int], torch.Tensor],
        horizon: int,
        paths: int,
        halving_rounds: int = 0,
        seed: int = 0,
        paths_fn: Callable[[State, int, int, int], Scenarios] | None = None,
        source: str = "<rollout>",
        tail: Tail | None = None,
    ):
        if horizon < 1:
            raise ConfigError(source, "options.horizon", f"a positive number of periods; got {horizon}")
        if paths < 1:
            raise ConfigError(source, "options.paths", f"a positive number of paths; got {paths}")
        if halving_rounds < 0:
            raise ConfigError(source, "options.halving_rounds", f"an integer >= 0; got {halving_rounds}")
        self.problem, self.base, self.horizon, self.paths = problem, base, int(horizon), int(paths)
        self.rounds, self.seed, self.source = int(halving_rounds), int(seed), source
        self.D, self.n = decisions(problem)
        self.paths_fn = paths_fn or self.fresh_paths
        self.tail = tail
        self.calls = 0

    def check_memory(self, states: int, candidates: int) -> None:
        """Refuse a step whose states x candidates x paths rows would not fit in memory."""
        rows = states * candidates * self.paths
        nbytes = 4.0 * rows * state_bytes(self.problem)  # scenario rows, states, post-states, temporaries
        check_memory(
            nbytes,
            self.source,
            "options.paths",
            f"a rollout step of {states} states x {candidates} candidates x {self.paths} paths",
            lower="options.paths, options.candidates or options.chunk",
        )

    def fresh_paths(self, state: State, t: int, n_paths: int, rnd: int) -> Scenarios:
        B = _batch(state)
        seed = (self.seed * 1_000_003 + self.calls * 7919 + t * 101 + rnd) % (2**31)
        dev = next(v.device for v in state.values() if isinstance(v, torch.Tensor))
        # whole episodes (the rollout stops at the episode's end, as the policy's own episode does); periods
        # t .. are the continuation, the earlier ones are never read
        periods = max(int(self.problem.periods), t + 1)
        return self.problem.sample(B * n_paths, "train", seed, periods, device=dev)

    @torch.no_grad()
    def choose(self, state: State, t: int, cands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The best candidate ``[B, D]`` of each state and its index in ``cands`` ``[B]``."""
        B, K, D = cands.shape
        if K < 1:
            raise ConfigError(self.source, "options.candidates", "at least one candidate action per state")
        ok = allowed(cands, mask3(self.problem, state, B, D, self.n))
        # the first candidate is the base policy's own action: whatever it is (a VM rule's "no move"), the
        # simulator takes it, and it stands in for the forbidden ones
        ok[:, 0] = True
        cands = torch.where(ok.unsqueeze(-1), cands, cands[:, :1])
        self.calls += 1
        idx = torch.arange(K, device=cands.device).expand(B, -1)  # the survivors' indices into cands
        total = torch.zeros(B, K, dtype=torch.float64, device=cands.device)  # aligned with idx
        for rnd in range(self.rounds + 1):
            sc = self.paths_fn(state, t, self.paths, rnd)
            live = torch.gather(cands, 1, idx.unsqueeze(-1).expand(-1, -1, D))
            v = rollout_values(self.problem, self.base, state, t, live, sc, self.horizon, self.tail)
            total = total + v.mean(2)
            score = torch.where(ok.gather(1, idx), total / (rnd + 1), torch.full_like(total, math.inf))
            if rnd == self.rounds or idx.shape[1] == 1:
                break
            keep = max(1, math.ceil(idx.shape[1] / 2))
            # the better half survives; among equal scores the earlier candidate (survivors stay in order)
            order = torch.sort(score, dim=1, stable=True).indices[:, :keep].sort(1).values
            idx, total = idx.gather(1, order), total.gather(1, order)
        best = torch.sort(score, dim=1, stable=True).indices[:, 0]  # ties: the earliest candidate
        choice = idx.gather(1, best.unsqueeze(1)).squeeze(1)
        return cands[torch.arange(B), choice], choice


def chunked_choose(step: RolloutStep, state: State, t: int, cands: torch.Tensor, chunk: int | None) -> torch.Tensor:
    """:meth:`RolloutStep.choose` on at most ``chunk`` states at a time: the chosen actions ``[B, D]``."""
    B = cands.shape[0]
    if not chunk or chunk >= B:
        return step.choose(state, t, cands)[0]
    out = []
    for i in range(0, B, chunk):
        j = torch.arange(i, min(i + chunk, B), device=cands.device)
        part = {k: v[j] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == B else v for k, v in state.items()}
        out.append(step.choose(part, t, cands[j])[0])
    return torch.cat(out)


# --- candidate sets ------------------------------------------------------------------------------
def candidate_fn(
    problem: Problem,
    policies: Sequence[Callable[[State, int], torch.Tensor]],
    extra: Sequence[CandidatesFn] = (),
    learned: FactorisedPolicy | None = None,
    samples: int = 0,
    seed: int = 0,
) -> CandidatesFn:
    """Candidates ``[B, K, D]``: each policy's action (the first is the base policy's), each ``extra``'s
    candidates (e.g. lot sizing's "keep every setup"), and the learned policy's greedy action and ``samples``
    sampled ones."""
    D, _ = decisions(problem)
    g = torch.Generator().manual_seed(int(seed))

    def fn(state: State, t: int) -> torch.Tensor:
        B = _batch(state)
        parts = [flat_action(p(state, t), B, D).unsqueeze(1) for p in policies]
        parts += [e(state, t).reshape(B, -1, D).long() for e in extra]
        if learned is not None:
            parts.append(flat_action(learned(state, t), B, D).unsqueeze(1))
            if samples:
                parts.append(learned.sample(state, t, samples, g))
        return torch.cat(parts, 1)

    return fn


class RolloutPolicy:
    """The rollout policy as a solver: at every period, the best of ``candidates_fn``'s candidates by a
    rollout step of the base policy (``horizon`` periods, ``paths`` fresh paths, ``halving_rounds``).

    ``candidates_fn`` is a :data:`CandidatesFn` or a list of policies (the base policy is put first). Usable by
    :func:`opsrl.core.evaluate`; it sees only the state and ``t``."""

    def __init__(
        self,
        problem: Problem,
        base_policy: Callable[[State, int], torch.Tensor],
        candidates_fn: CandidatesFn | Sequence[Callable[[State, int], torch.Tensor]],
        horizon: int,
        paths: int,
        halving_rounds: int = 0,
        seed: int = 0,
        chunk: int | None = None,
        paths_fn: Callable[[State, int, int, int], Scenarios] | None = None,
        source: str = "<rollout>",
        tail: Tail | None = None,
    ):
        if not callable(candidates_fn):
            pols = list(candidates_fn)
            if not pols or pols[0] is not base_policy:
                pols = [base_policy, *pols]
            candidates_fn = candidate_fn(problem, pols)
        self.problem, self.base, self.candidates_fn, self.chunk = problem, base_policy, candidates_fn, chunk
        self.step = RolloutStep(problem, base_policy, horizon, paths, halving_rounds, seed, paths_fn, source, tail)
        self.D = self.step.D

    @torch.no_grad()
    def __call__(self, state: State, t: int) -> torch.Tensor:
        cands = self.candidates_fn(state, t)
        if cands.dim() != 3 or cands.shape[1] < 1:
            raise ConfigError(self.step.source, "options.candidates", "at least one candidate action per state")
        return chunked_choose(self.step, state, t, cands, self.chunk)


def label_states(
    problem: Problem,
    base: Callable[[State, int], torch.Tensor],
    state: State,
    t: int,
    candidates: CandidatesFn,
    horizon: int,
    paths: int,
    halving_rounds: int = 0,
    seed: int = 0,
    chunk: int | None = None,
    tail: Tail | None = None,
) -> torch.Tensor:
    """Policy iteration's labels: the best candidate ``[B, D]`` of each state at period ``t`` under ``base``."""
    step = RolloutStep(problem, base, horizon, paths, halving_rounds, seed, tail=tail)
    return chunked_choose(step, state, t, candidates(state, t), chunk)


# --- the learned policy ----------------------------------------------------------------------------
class FactorisedPolicy(nn.Module):
    """A classifier policy: an MLP over ``problem.observe(state)`` and the time to go, one masked softmax of
    ``n`` choices per decision (factorised: per machine for lot sizing, one for a job shop). Greedy when
    called; :meth:`sample` draws candidates."""

    def __init__(self, problem: Problem, hidden: Sequence[int] = (128, 128)):
        super().__init__()
        self.problem = problem
        self.D, self.n = decisions(problem)
        self.periods = max(1, int(problem.periods))
        layers: list[nn.Module] = []
        w = problem.obs_dim + 1
        for h in hidden:
            layers += [nn.Linear(w, h), nn.ELU()]
            w = h
        layers.append(nn.Linear(w, self.D * self.n))
        self.net = nn.Sequential(*layers)

    def features(self, state: State, t: int) -> torch.Tensor:
        obs = self.problem.observe(state).float()
        ttg = torch.full((obs.shape[0], 1), (self.periods - t) / self.periods, device=obs.device)
        return torch.cat([obs, ttg], 1)

    def masked_logits(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        logits = self.net(x).view(-1, self.D, self.n)
        if mask is None:
            return logits
        mask = mask | ~mask.any(-1, keepdim=True)  # a decision with nothing allowed (finished) is left free
        return logits.masked_fill(~mask, -1e9)

    def logits(self, state: State, t: int) -> torch.Tensor:
        x = self.features(state, t)
        return self.masked_logits(x, mask3(self.problem, state, x.shape[0], self.D, self.n))

    def forward(self, state: State, t: int) -> torch.Tensor:
        return self.logits(state, t).argmax(-1)  # [B, D]

    @torch.no_grad()
    def sample(self, state: State, t: int, k: int, gen: torch.Generator) -> torch.Tensor:
        return sample_logits(self.logits(state, t), k, gen)


@torch.no_grad()
def sample_logits(logits: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """``k`` actions ``[B, k, D]`` drawn from factorised logits ``[B, D, n]`` (one softmax per decision)."""
    B, D, n = logits.shape
    probs = torch.softmax(logits.float(), -1).reshape(B * D, n).cpu()
    draw = torch.multinomial(probs, k, replacement=True, generator=gen)  # [B * D, k]
    return draw.view(B, D, k).permute(0, 2, 1).to(logits.device)


def fit_classifier(
    policy: FactorisedPolicy,
    x: torch.Tensor,
    masks: torch.Tensor | None,
    labels: torch.Tensor,
    steps: int,
    lr: float,
    seed: int,
    batch: int = 1024,
) -> float:
    """Cross-entropy of the labels ``[N, D]`` (summed over decisions), Adam on minibatches; the last loss."""
    g = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    loss = torch.tensor(float("nan"))
    N = x.shape[0]
    for _ in range(steps):
        j = torch.randint(N, (min(N, batch),), generator=g).to(x.device)
        logp = torch.log_softmax(policy.masked_logits(x[j], None if masks is None else masks[j]), -1)
        loss = -logp.gather(2, labels[j].unsqueeze(-1)).squeeze(-1).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss.detach())


# --- policy iteration ------------------------------------------------------------------------------
def policy_iteration(
    problem: Problem,
    start: Callable[[State, int], torch.Tensor],
    *,
    iterations: int = 3,
    states: int = 512,
    periods_per_iteration: int = 8,
    horizon: int = 10,
    paths: int = 8,
    halving_rounds: int = 0,
    samples: int = 2,
    extra: Sequence[CandidatesFn] = (),
    teachers: Sequence[Callable[[State, int], torch.Tensor]] = (),
    teacher: Callable[[State, int], torch.Tensor] | None = None,
    dagger: int = 0,
    window: int = 0,
    dev_scenarios: int = 64,
    hidden: Sequence[int] = (128, 128),
    steps: int = 500,
    lr: float = 1e-3,
    seed: int = 0,
    chunk: int | None = None,
    tail: Tail | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> tuple[Callable[[State, int], torch.Tensor], list[dict[str, float]]]:
    """Approximate policy iteration from ``start``: each iteration rolls the current (best) policy on
    training scenarios, labels ``states`` of its states (at ``periods_per_iteration`` periods) with their best
    candidate, fits a :class:`FactorisedPolicy` to every label so far, and keeps it if it beats the best on
    the dev scenarios. Returns the best policy on dev (``start`` unless a learned one beats it) and the curve
    (dev cost of the start, then of each iteration's learned policy).

    ``teacher`` and ``dagger``: the first ``dagger`` iterations label with the teacher's action (a planner's)
    instead of rollouts, on states visited by the *learned* policy once there is one (DAgger, Ross et al. 2011:
    a clone of the teacher's own trajectories never sees the states its mistakes lead to). ``window``: fit to
    the newest ``window`` labels only (0: all so far), so a teacher's labels age out and the rollouts' labels
    can lead the policy past the teacher. ``tail``: the cost-to-go estimate added where a rollout stops before
    the episode's end (see :func:`rollout_values`)."""
    if dagger and teacher is None:
        raise ValueError("policy_iteration: dagger iterations need a teacher")
    T = int(problem.periods)
    P = max(1, min(periods_per_iteration, T))
    N = max(1, math.ceil(states / P))
    dev = problem.sample(dev_scenarios, "dev", seed)
    best, best_cost = start, evaluate(problem, start, dev).mean
    curve = [{"iteration": 0, "dev_cost": best_cost, "labels": 0}]
    log(f"rollout_pi: start dev cost {best_cost:.4f}")
    torch.manual_seed(seed)
    net = FactorisedPolicy(problem, hidden)
    xs, ms, ys = [], [], []
    g = torch.Generator().manual_seed(int(seed) + 17)
    trained = False
    for it in range(1, iterations + 1):
        base = best
        pols = [base] + ([start] if start is not base else []) + list(teachers)
        cands = candidate_fn(problem, pols, extra, net if trained else None, samples if trained else 0, seed + it)
        taught = it <= dagger
        visit = (net if trained else start) if taught else base  # DAgger: the learner's own states
        sc = problem.sample(N, "train", seed * 1009 + it)
        with torch.no_grad():
            traj = rollout(problem, visit, sc, record=True)
        periods = sorted(torch.randperm(T, generator=g)[:P].tolist())
        for t in periods:
            st = traj.states[t]
            x = net.features(st, t).detach()
            if taught:
                with torch.no_grad():
                    y = flat_action(teacher(st, t), x.shape[0], net.D)
            else:
                y = label_states(
                    problem, base, st, t, cands, horizon, paths, halving_rounds, seed * 31 + it, chunk, tail
                )
            xs.append(x)
            m = mask3(problem, st, x.shape[0], net.D, net.n)
            ms.append(m if m is not None else torch.ones(x.shape[0], net.D, net.n, dtype=torch.bool))
            ys.append(y)
        if window:  # the newest labels only
            xs, ms, ys = [torch.cat(xs)[-window:]], [torch.cat(ms)[-window:]], [torch.cat(ys)[-window:]]
        loss = fit_classifier(net, torch.cat(xs), torch.cat(ms), torch.cat(ys), steps, lr, seed + it)
        trained = True
        net.eval()
        cost = evaluate(problem, net, dev).mean
        if cost < best_cost:
            best, best_cost = copy.deepcopy(net), cost
        n_labels = sum(len(y) for y in ys)
        by = "teacher" if taught else "rollouts"
        curve.append(
            {"iteration": it, "dev_cost": cost, "best_dev_cost": best_cost, "labels": n_labels, "loss": loss, "by": by}
        )
        log(f"rollout_pi: iteration {it} ({by}): learned dev cost {cost:.4f} (best {best_cost:.4f}), {n_labels} labels")
    if isinstance(best, nn.Module):
        best.eval()
    return best, curve


# --- the method ------------------------------------------------------------------------------------
OPTIONS = {
    "start": Field(str, allowed="the solver to start from (a bundled name or a file of the problem's family)"),
    "candidates": Field(
        list,
        [],
        item=str,
        max_len=16,
        allowed="a list of at most 16 solvers whose actions are also candidates (rules, planners)",
    ),
    "samples": size(2, 64, low=0, doc="sampled actions of the learned policy per state, as candidates"),
    "teacher": Field(
        str, "", allowed="a solver (a planner) whose actions label the first options.dagger iterations ('': none)"
    ),
    "dagger": size(0, 100, low=0, doc="iterations (from the first) labelled by options.teacher instead of rollouts"),
    "window": size(0, 10**7, low=0, doc="labels fitted: the newest this many (0: all so far)"),
    "iterations": size(3, 100, low=0, doc="policy-iteration rounds (0: no learning)"),
    "states": size(512, 10**5, doc="states labelled per iteration"),
    "periods_per_iteration": size(8, 10**4, doc="periods at which the states of an iteration are taken"),
    "horizon": size(10, 10**4, doc="periods of each rollout (the candidate's own period included)"),
    "tail": Field(
        str,
        "none",
        allowed="what a rollout cut short by options.horizon adds: 'none', 'bound' (the problem's cost-to-go "
        "bound, a job shop's makespan lower bound) or a solver whose policy finishes the episode (a cheap rule)",
    ),
    "paths": size(8, 4096, doc="exogenous paths per state, shared by its candidates"),
    "halving_rounds": size(0, 8, low=0, doc="sequential-halving rounds (each adds paths and drops the worse half)"),
    "dev_scenarios": size(64, 10**5, counts="scenarios"),
    "hidden": size([128, 128], 4096, item=True, doc="layer widths of the learned policy"),
    "steps": size(500, 10**6, doc="classification minibatch steps per iteration"),
    "lr": Field(float, 1e-3, allowed="a positive learning rate, at most 1", check=positive, max=1.0),
    "chunk": size(256, 10**6, doc="states per batched rollout call"),
    "output": Field(
        str, "learned", choices=("learned", "rollout"), doc="the best learned policy, or rollouts on top of it"
    ),
}


def _solver_policy(problem: Problem, name: str, ctx: SolveContext, key: str):
    if ctx.fit_solver is None:
        raise ConfigError(ctx.source, key, "needs a context that can fit other solvers (SolveContext.fit_solver)")
    try:
        out = ctx.fit_solver(name, problem, ctx)
    except ConfigError as e:
        raise ConfigError(ctx.source, key, f"cannot fit solver {name!r}: {e}") from None
    if out.policy is None:
        raise ConfigError(ctx.source, key, f"solver {name!r} gives no policy")
    return out.policy


def fit(problem: Problem, options: Mapping[str, Any], config: Mapping[str, Any], ctx: SolveContext) -> SolveOutcome:
    o = dict(options)
    src = ctx.source
    if problem.action_spec.kind != "discrete":
        raise ConfigError(src, "method", f"rollout_pi needs discrete actions; {problem.name} has continuous ones")
    start = _solver_policy(problem, o["start"], ctx, "options.start")
    teachers = [_solver_policy(problem, n, ctx, "options.candidates") for n in o["candidates"]]
    if o["dagger"] and not o["teacher"]:
        raise ConfigError(src, "options.dagger", f"{o['dagger']} iterations need a teacher (options.teacher)")
    if o["teacher"] and not o["dagger"]:
        raise ConfigError(src, "options.teacher", "labels nothing with options.dagger 0: set both or neither")
    if o["dagger"] > o["iterations"]:
        raise ConfigError(src, "options.dagger", f"at most options.iterations ({o['iterations']}); got {o['dagger']}")
    teacher = _solver_policy(problem, o["teacher"], ctx, "options.teacher") if o["teacher"] else None
    tail = None
    if o["tail"] == "bound":
        if type(problem).cost_to_go_bound is Problem.cost_to_go_bound:
            raise ConfigError(src, "options.tail", f"'bound' needs a cost-to-go bound; {problem.name} has none")
        tail = bound_tail(problem)
    elif o["tail"] != "none":
        tail = policy_tail(problem, _solver_policy(problem, o["tail"], ctx, "options.tail"))
    k = 1 + (1 if teachers else 0) + len(teachers) + (1 + o["samples"] if o["iterations"] else 0)
    step = RolloutStep(problem, start, o["horizon"], o["paths"], o["halving_rounds"], ctx.seed, source=src, tail=tail)
    step.check_memory(min(o["chunk"], max(o["states"], 1)), k)
    best, curve = policy_iteration(
        problem,
        start,
        iterations=o["iterations"],
        states=o["states"],
        periods_per_iteration=o["periods_per_iteration"],
        horizon=o["horizon"],
        paths=o["paths"],
        halving_rounds=o["halving_rounds"],
        samples=o["samples"],
        teachers=teachers,
        teacher=teacher,
        dagger=o["dagger"],
        window=o["window"],
        dev_scenarios=o["dev_scenarios"],
        hidden=o["hidden"],
        steps=o["steps"],
        lr=o["lr"],
        seed=ctx.seed,
        chunk=o["chunk"],
        tail=tail,
        log=ctx.log,
    )
    policy = best
    if o["output"] == "rollout":
        pols = [best] + ([start] if start is not best else []) + teachers
        policy = RolloutPolicy(
            problem,
            best,
            pols,
            o["horizon"],
            o["paths"],
            o["halving_rounds"],
            ctx.seed + 1,
            o["chunk"],
            source=src,
            tail=tail,
        )
    info = {
        "start_dev_cost": curve[0]["dev_cost"],
        "best_dev_cost": min(c["dev_cost"] for c in curve),
        "learned": best is not start,
        "output": o["output"],
    }
    return SolveOutcome(policy=policy, curve=curve, info=info)


METHOD = Method(
    "rollout_pi",
    fit,
    OPTIONS,
    learns=True,
    description="approximate policy iteration by simulated rollouts with common random numbers (discrete actions)",
)
