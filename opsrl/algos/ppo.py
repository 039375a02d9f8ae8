"""PPO and post-decision PPO (PDPPO, a dual critic), generic over the problem contract.

One iteration rolls the current stochastic policy through ``post_decision``/``transition`` on a batch
of training scenarios (all scenarios at once, a loop over time), computes advantages, and takes
``epochs`` passes of minibatch updates of the clipped surrogate

    L = -E[min(r A, clip(r, 1 - eps, 1 + eps) A)] + c_v (V - G)^2 [+ c_v (U - G_x)^2] - c_e H,

``r = pi(a|s) / pi_old(a|s)``, with advantage normalisation, optional value clipping and gradient-norm
clipping. Rewards are ``-cost / cost_scale``. Steps where the action mask allows one action or none (forced
moves, finished episodes) are left out of the updates; their rewards and values still enter the returns.

Advantages. The state critic ``V(s_t)`` gives the GAE(gamma, lambda) advantage
``A_t = sum_l (gamma lambda)^l delta_{t+l}``, ``delta_t = r_t + gamma V(s_{t+1}) - V(s_t)``, i.e.
``A_t = G_t - V(s_t)`` with the lambda-return ``G_t = r_t + gamma ((1 - lambda) V(s_{t+1}) + lambda G_{t+1})``.

PDPPO adds a critic ``U(x_t)`` of the post-decision state ``x_t = post_decision(s_t, a_t)``: the value
after the decision's own cost ``r^d_t`` is paid, ``U(x_t) ~ E[r^e_t + gamma V(s_{t+1}) | x_t]`` (``r^e``:
the exogenous part of the step's reward). Its lambda-return bootstraps right after each decision:
``Gx_t = r^d_t + (1 - lambda) U(x_t) + lambda (r^e_t + gamma Gx_{t+1})`` (``lambda = 0``: the one-step
estimate ``r^d_t + U(x_t)``, which has the randomness of step ``t`` integrated out; ``lambda = 1``: the
Monte-Carlo return). **Rule**: ``advantage = "max"`` (the default, as in the published method) takes the
more optimistic of the two return estimates, ``A_t = max(G_t, Gx_t) - V(s_t)``; ``"mean"`` averages
them, ``"post"`` uses ``Gx_t`` alone. ``V`` is fitted to ``G_t`` and ``U`` to ``r^e_t + gamma Gx_{t+1}``.
Plain PPO is this code with the post-decision critic off (``post_critic = false``).

Group baseline (``baseline = "group"``, ``group_size = k``): each training scenario is rolled out ``k``
times (common random numbers), and the advantage of a step is its return to go minus the mean return to go
of the other ``k - 1`` rollouts of that scenario at the same period (leave-one-out, as in POMO-style
training of combinatorial policies); the critic is still fitted but not used by the policy gradient.
Risk-seeking baseline (``baseline = "top"``, for policies used as the best of K sampled rollouts): only the
rollouts of a group whose episode return reaches the group's ``1 - top_fraction`` quantile ``q`` are
reinforced, each step of them with ``R - q`` (:func:`top_advantages`; the risk-seeking policy gradient of
Petersen et al., 2021, per group); advantages are then scaled but not centred, so the others stay at zero.
``dev_samples = K`` measures the dev cost the same way, as the best of K sampled rollouts per dev scenario
(:func:`best_of_samples`), so the parameters kept are those best at what the policy is used for.

Horizons. ``horizon = "finite"`` (the default for problems whose metric is an episode total, such as
the job shop's makespan): the episode ends at ``T``, nothing is bootstrapped after it, and the time to
go ``(T - t) / T`` is an input of the networks, so the value of a state may depend on it. ``"truncated"``
(the default for average-cost problems such as inventory): a rollout of ``T`` periods is a window of an
endless problem, the return is bootstrapped with ``V(s_T)`` at the cut, and the time limit is never
treated as a terminal state.

Imitation start (``imitate = "<solver>"``): the actor first clones another solver's policy on training
rollouts of that policy (maximum likelihood of its actions, :func:`imitate`), the dev cost of the clone is the
curve's iteration 0 (so best-on-dev never ends worse than the clone), and ``critic_warmup`` iterations train
only the critics before the policy moves, so that PPO does not step on advantages from an untrained critic.

Action heads (see :mod:`opsrl.nn.actor_critic`): masked categorical (discrete), Beta or squashed Gaussian
(continuous), categorical per dimension with ``policy.levels`` (multi-discrete, or mixed with continuous
dimensions). Graph policies (``policy.kind = "graph"``) score the candidate nodes of ``problem.graph``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any

import torch
from tqdm.auto import tqdm

from ..core import (
    ConfigError,
    Field,
    Method,
    Problem,
    SolveContext,
    SolveOutcome,
    evaluate,
    generator,
    rollout,
    scenario_costs,
    summarize,
)
from ..core.config import non_negative, positive, probability, size, threads, validate

__all__ = [
    "OPTIONS",
    "gae",
    "post_decision_returns",
    "top_advantages",
    "best_of_samples",
    "train",
    "fit",
    "METHOD",
    "PD_METHOD",
]

OPTIONS = {
    "lr": Field(float, 3e-4, allowed="a positive learning rate", check=positive),
    "batch_size": size(256, 10**6, allowed="scenarios per rollout, from 1 to 10^6"),
    "train_scenarios": size(32768, 10**7, allowed="the size of the training pool, from 1 to 10^7"),
    "train_periods": size(0, 10**6, low=0, allowed="periods per training rollout (0: the problem's own), at most 10^6"),
    "iterations": size(200, 10**7, allowed="rollout-and-update iterations, from 1 to 10^7"),
    "epochs": size(4, 10**4, allowed="passes over each rollout, from 1 to 10^4"),
    "minibatches": size(4, 10**6, allowed="minibatches per pass, from 1 to 10^6"),
    "gamma": Field(
        float,
        -1.0,
        allowed="a discount in (0, 1], or -1 (1 for finite horizons, 0.99 otherwise)",
        check=lambda v: v == -1 or 0 < v <= 1,
    ),
    "gae_lambda": Field(float, 0.95, allowed="a number in [0, 1]", check=probability),
    "clip": Field(float, 0.2, allowed="a positive ratio clip", check=positive),
    "value_clip": Field(
        float, 0.0, allowed="a clip of value updates around the old values (0: off)", check=non_negative
    ),
    "value_coef": Field(float, 0.5, allowed="a number >= 0", check=non_negative),
    "entropy_coef": Field(float, 0.0, allowed="a number >= 0", check=non_negative),
    "max_grad_norm": Field(float, 0.5, allowed="a gradient-norm clip (0: off)", check=non_negative),
    "normalize_advantages": Field(bool, True),
    "horizon": Field(
        str,
        "auto",
        choices=("auto", "finite", "truncated"),
        doc="finite: episode ends at T, time to go observed; truncated: bootstrap V(s_T); auto: "
        "finite for problems whose metric is an episode total",
    ),
    "post_critic": Field(bool, False, doc="the post-decision critic of PDPPO"),
    "group_size": size(1, 10**4, allowed="rollouts per training scenario, from 1 to 10^4"),
    "baseline": Field(
        str,
        "critic",
        choices=("critic", "group", "top"),
        doc="critic: GAE on the critic(s); group: the return to go minus the mean of the other "
        "rollouts of the same scenario at the same period; top: risk-seeking, only the rollouts of a "
        "scenario whose return reaches the group's 1 - top_fraction quantile, by how far they exceed it "
        "(group and top need group_size >= 2)",
    ),
    "top_fraction": Field(
        float,
        0.25,
        allowed="a fraction in (0, 1] of each group's rollouts that the top baseline learns from",
        check=lambda v: 0 < v <= 1,
    ),
    "advantage": Field(
        str,
        "max",
        choices=("max", "mean", "post"),
        doc="how the two critics' return estimates form the advantage (post_critic only)",
    ),
    "cost_scale": Field(
        float,
        0.0,
        allowed="rewards are -cost / cost_scale (0: the mean absolute cost per "
        "period times the effective horizon min(T, 1 / (1 - gamma)), a moving average over "
        "the rollouts)",
        check=non_negative,
    ),
    "dev_scenarios": size(1024, 10**7, allowed="dev scenarios, from 1 to 10^7"),
    "dev_samples": Field(
        int,
        0,
        allowed="0 (the dev cost of the greedy policy) or K >= 1 (of the best of K sampled rollouts per dev "
        "scenario: risk-seeking evaluation, for policies used that way)",
        check=non_negative,
    ),
    "dev_periods": size(
        0, 10**6, low=0, allowed="periods per dev rollout (0: the problem's test periods), at most 10^6"
    ),
    "eval_every": Field(int, 10, allowed="a positive number of iterations", check=positive),
    "time_limit": Field(float, 0.0, allowed="seconds of training (0: no limit)", check=non_negative),
    "lr_decay": Field(bool, True, doc="anneal the learning rate linearly to 0 over the iterations"),
    "threads": threads(0),
    "imitate": Field(
        str,
        "",
        allowed="a solver (bundled name or file) of the same family whose policy the actor "
        "imitates before PPO starts ('': start from scratch)",
    ),
    "imitate_steps": Field(int, 300, allowed="a positive number of imitation minibatch steps", check=positive),
    "critic_warmup": Field(
        int,
        0,
        allowed="iterations at the start that train only the critics (a policy that "
        "starts from imitation keeps it while they learn its values)",
        check=non_negative,
    ),
}


def gae(
    rewards: torch.Tensor, values: torch.Tensor, last_value: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """GAE advantages ``[B, T]`` from rewards and values ``[B, T]`` and the bootstrap ``V(s_T)`` ``[B]``
    (zeros at a terminal end)."""
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    nxt = last_value
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * nxt - values[:, t]
        running = delta + gamma * lam * running
        adv[:, t] = running
        nxt = values[:, t]
    return adv


def post_decision_returns(
    r_dec: torch.Tensor,
    r_exo: torch.Tensor,
    post_values: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The post-decision lambda-returns ``Gx`` ``[B, T]`` and the post critic's targets
    ``r^e_t + gamma Gx_{t+1}`` (``Gx_T`` = ``last_value``), see the module docstring."""
    T = r_dec.shape[1]
    gx = torch.zeros_like(r_dec)
    target = torch.zeros_like(r_dec)
    nxt = last_value
    for t in reversed(range(T)):
        target[:, t] = r_exo[:, t] + gamma * nxt
        gx[:, t] = r_dec[:, t] + (1 - lam) * post_values[:, t] + lam * target[:, t]
        nxt = gx[:, t]
    return gx, target


def _stack(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``T`` dicts of ``[B, ...]`` tensors -> one dict of ``[T * B, ...]`` tensors (time-major)."""
    return {k: torch.cat([d[k] for d in items], 0) for k in items[0]}


def collect(problem: Problem, ac: torch.nn.Module, scenarios, periods: int, horizon: str, post_critic: bool):
    """Roll the sampling policy out; returns a dict of per-step tensors ``[B, T]`` and stacked features."""
    state = problem.initial_state(scenarios)
    feats, pfeats, samples, logps, values, pvalues, c_dec, c_exo, live = [], [], [], [], [], [], [], [], []
    with torch.no_grad():
        for t in range(periods):
            f = ac.encode(state, t)
            d, v = ac.evaluate(f)
            s = d.sample()
            logps.append(d.log_prob(s))
            values.append(v)
            mask = problem.action_mask(state)
            # steps that update the networks: with a mask, those with at least two allowed actions (a forced
            # move has ratio 1 and no policy gradient; finished episodes none at all)
            live.append(_has_choice(mask) if mask is not None else torch.ones_like(v, dtype=torch.bool))
            post, c1 = problem.post_decision(state, ac.to_action(s))
            if post_critic:
                pf = ac.encode_post(post, t)
                pvalues.append(ac.post_value(pf))
                pfeats.append(pf)
            state, c2 = problem.transition(post, scenarios, t)
            feats.append(f)
            samples.append(s)
            c_dec.append(c1.to(v.dtype))
            c_exo.append(c2.to(v.dtype))
        if horizon == "truncated":
            last = ac.evaluate(ac.encode(state, periods))[1]
        else:
            last = torch.zeros_like(values[0])
    out = {
        "feats": _stack(feats),
        "sample": torch.cat(samples, 0),
        "logp": torch.stack(logps, 1),
        "value": torch.stack(values, 1),
        "c_dec": torch.stack(c_dec, 1),
        "c_exo": torch.stack(c_exo, 1),
        "live": torch.stack(live, 1),
        "last": last,
    }
    if post_critic:
        out["pfeats"] = _stack(pfeats)
        out["pvalue"] = torch.stack(pvalues, 1)
    return out


def top_advantages(returns: torch.Tensor, fraction: float) -> torch.Tensor:
    """Risk-seeking advantages ``[G, k]`` of ``k`` episode returns per group (Petersen et al. 2021, risk-seeking
    policy gradient): ``max(R - q, 0)`` with ``q`` the group's ``1 - fraction`` quantile (linear interpolation),
    so only the best ``fraction`` of each group's episodes are reinforced and the others are left alone."""
    q = torch.quantile(returns, 1.0 - fraction, dim=1, keepdim=True)
    return (returns - q).clamp_min(0.0)


@torch.no_grad()
def best_of_samples(problem: Problem, ac: torch.nn.Module, scenarios, k: int, seed: int) -> torch.Tensor:
    """``[n]``: each scenario's lowest cost (``scenario_costs``) over ``k`` rollouts of the sampling policy."""
    n = scenarios.n
    rep = scenarios.select(torch.arange(n, device=scenarios.device).repeat_interleave(k))
    was = ac.sampling
    ac.sampling = True
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            traj = rollout(problem, ac, rep)
    finally:
        ac.sampling = was
    return scenario_costs(problem, traj.costs, None).reshape(n, k).min(1).values


def _dev_eval(problem: Problem, ac: torch.nn.Module, scenarios, samples: int, seed: int):
    """The dev evaluation: the greedy policy, or the best of ``samples`` sampled rollouts drawn from the same
    random stream at every evaluation (common random numbers, so that checkpoints are compared, not draws)."""
    if not samples:
        return evaluate(problem, ac, scenarios)
    was = ac.training
    ac.eval()
    try:
        return summarize(problem, best_of_samples(problem, ac, scenarios, samples, seed), scenarios.periods, None)
    finally:
        ac.train(was)


def _has_choice(mask: torch.Tensor) -> torch.Tensor:
    """``[B]``: rows of a ``[B, n]`` mask with two or more allowed actions; for a factorised mask ``[B, D, n]``
    (one categorical per action dimension), rows where some dimension has two or more."""
    choice = mask.sum(-1) >= 2
    return choice.flatten(1).any(1) if choice.dim() > 1 else choice


def _flat(x: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` -> ``[T * B]`` in the time-major order of the stacked features."""
    return x.t().reshape(-1)


def train(
    problem: Problem,
    ac: torch.nn.Module,
    options: Mapping[str, Any],
    ctx: SolveContext,
) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train the actor-critic ``ac`` by PPO (PDPPO when ``options["post_critic"]``); keeps the parameters
    best on the dev split (greedy policy); returns ``ac`` and the learning curve."""
    o = dict(options)
    if o["threads"]:
        torch.set_num_threads(o["threads"])
    dev = ctx.device
    ac.to(dev)
    horizon = _horizon(problem, o)
    gamma = o["gamma"] if o["gamma"] > 0 else (1.0 if horizon == "finite" else 0.99)
    lam = o["gae_lambda"]
    periods = o["train_periods"] or problem.periods
    dev_periods = o["dev_periods"] or problem.test_periods or problem.periods
    pool = problem.sample(o["train_scenarios"], "train", ctx.seed, periods, dev)
    dev_set = problem.sample(o["dev_scenarios"], "dev", ctx.seed, dev_periods, dev)
    g = generator(ctx.seed, "train", "minibatch")
    opt = torch.optim.Adam(ac.parameters(), lr=o["lr"], eps=1e-5)
    scale = o["cost_scale"]
    best, best_state, curve = float("inf"), copy.deepcopy(ac.state_dict()), []
    t0 = time.perf_counter()
    bar = tqdm(
        total=o["iterations"],
        desc=f"{'pdppo' if o['post_critic'] else 'ppo'} {problem.name}",
        disable=not ctx.progress,
        leave=False,
        dynamic_ncols=True,
    )
    stats: dict[str, list[float]] = {}
    samples_seen = 0
    if o.get("_start_info"):  # a policy that starts from imitation: its dev cost is the first point of the curve
        ev = _dev_eval(problem, ac, dev_set, o["dev_samples"], ctx.seed)
        curve.append(
            {
                "iteration": 0,
                "seconds": 0.0,
                "decisions": 0,
                "dev_cost": ev.mean,
                "dev_stderr": ev.stderr,
                **o["_start_info"],
            }
        )
        best, best_state = ev.mean, copy.deepcopy(ac.state_dict())
        ctx.log(f"iteration 0 (the starting policy): dev {ev.mean:.4f}")
    for it in range(1, o["iterations"] + 1):
        if o["lr_decay"]:
            for group in opt.param_groups:
                group["lr"] = o["lr"] * (1 - (it - 1) / o["iterations"])
        idx = torch.randint(pool.n, (min(o["batch_size"], pool.n),), generator=g).to(dev)
        if o["group_size"] > 1:  # the same scenario several times (common random numbers within a group)
            idx = idx.repeat_interleave(o["group_size"])
        ac.eval()
        roll = collect(problem, ac, pool.select(idx), periods, horizon, o["post_critic"])
        ac.train()
        if not o["cost_scale"]:  # returns of order one: typical cost per period x effective horizon, tracked
            eff = periods if gamma >= 1 else min(periods, 1.0 / (1.0 - gamma))
            now = eff * float((roll["c_dec"] + roll["c_exo"]).abs().mean().clamp_min(1e-8))
            scale = now if not scale else 0.9 * scale + 0.1 * now
        r_dec, r_exo = -roll["c_dec"] / scale, -roll["c_exo"] / scale
        live = roll["live"]
        values, last = roll["value"], roll["last"]
        adv_s = gae(r_dec + r_exo, values, last, gamma, lam)
        ret_s = adv_s + values
        if o["post_critic"]:
            gx, ptarget = post_decision_returns(r_dec, r_exo, roll["pvalue"], last, gamma, lam)
            est = {"max": torch.maximum(ret_s, gx), "mean": 0.5 * (ret_s + gx), "post": gx}[o["advantage"]]
            adv = est - values
        else:
            adv = adv_s
        if o["baseline"] in ("group", "top"):
            k = o["group_size"]
            ret_mc = gae(r_dec + r_exo, torch.zeros_like(values), last, gamma, 1.0).reshape(-1, k, values.shape[1])
            if o["baseline"] == "group":  # leave-one-out mean of the group's returns to go
                adv = (ret_mc - (ret_mc.sum(1, keepdim=True) - ret_mc) / (k - 1)).reshape(values.shape)
            else:  # risk-seeking: the episode's return above the group's quantile, at every step of it
                top = top_advantages(ret_mc[:, :, 0], o["top_fraction"])
                adv = top[:, :, None].expand_as(ret_mc).reshape(values.shape)
        B, T = adv.shape
        n = B * T
        data = {
            "sample": roll["sample"],
            "logp": _flat(roll["logp"]),
            "adv": _flat(adv),
            "ret": _flat(ret_s),
            "value": _flat(values),
            "live": _flat(live),
        }
        if o["post_critic"]:
            data["ptarget"] = _flat(ptarget)
            data["pvalue"] = _flat(roll["pvalue"])
        keep = data["live"]
        if o["normalize_advantages"]:
            a = data["adv"][keep]
            if o["baseline"] == "top":  # scaled, not centred: the rollouts below the quantile stay at zero
                data["adv"] = data["adv"] / (a.pow(2).mean().sqrt() + 1e-8)
            else:
                data["adv"] = (data["adv"] - a.mean()) / (a.std() + 1e-8)
        mb = max(1, n // o["minibatches"])
        for _ in range(o["epochs"]):
            perm = torch.randperm(n, generator=g).to(dev)
            for i in range(0, n, mb):
                j = perm[i : i + mb]
                j = j[keep[j]]
                if j.numel() == 0:
                    continue
                f = {k: v[j] for k, v in roll["feats"].items()}
                dist, v = ac.evaluate(f)
                logp = dist.log_prob(data["sample"][j])
                ratio = (logp - data["logp"][j]).exp()
                A = data["adv"][j]
                pg = -torch.minimum(ratio * A, ratio.clamp(1 - o["clip"], 1 + o["clip"]) * A).mean()
                vloss = _value_loss(v, data["ret"][j], data["value"][j], o["value_clip"])
                ent = dist.entropy().mean()
                loss = o["value_coef"] * vloss
                if it > o["critic_warmup"]:  # during the warm-up only the critics learn
                    loss = loss + pg - o["entropy_coef"] * ent
                if o["post_critic"]:
                    pv = ac.post_value({k: v_[j] for k, v_ in roll["pfeats"].items()})
                    ploss = _value_loss(pv, data["ptarget"][j], data["pvalue"][j], o["value_clip"])
                    loss = loss + o["value_coef"] * ploss
                    stats.setdefault("post_value_loss", []).append(ploss.item())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if o["max_grad_norm"]:
                    torch.nn.utils.clip_grad_norm_(ac.parameters(), o["max_grad_norm"])
                opt.step()
                with torch.no_grad():
                    stats.setdefault("policy_loss", []).append(pg.item())
                    stats.setdefault("value_loss", []).append(vloss.item())
                    stats.setdefault("entropy", []).append(ent.item())
                    stats.setdefault("approx_kl", []).append((data["logp"][j] - logp).mean().item())
        samples_seen += int(live.sum())
        stats.setdefault("train_cost", []).append(float((roll["c_dec"] + roll["c_exo"]).sum(1).mean()))
        bar.update(1)
        out_of_time = o["time_limit"] and time.perf_counter() - t0 >= o["time_limit"]
        if it % o["eval_every"] == 0 or it == o["iterations"] or out_of_time:
            ev = _dev_eval(problem, ac, dev_set, o["dev_samples"], ctx.seed)
            entry = {
                "iteration": it,
                "seconds": time.perf_counter() - t0,
                "decisions": samples_seen,
                "dev_cost": ev.mean,
                "dev_stderr": ev.stderr,
                "cost_scale": scale,
                **{k: sum(v) / len(v) for k, v in stats.items()},
            }
            curve.append(entry)
            stats = {}
            if ev.mean < best:
                best = ev.mean
                best_state = copy.deepcopy(ac.state_dict())
            bar.set_postfix(dev=f"{ev.mean:.4f}", best=f"{best:.4f}")
            ctx.log(f"iteration {it}: dev {ev.mean:.4f} (best {best:.4f})")
            if out_of_time:
                break
    bar.close()
    ac.load_state_dict(best_state)
    ac.eval()
    return ac, curve


def imitate(
    problem: Problem,
    ac: torch.nn.Module,
    teacher,
    scenarios,
    periods: int,
    steps: int,
    ctx: SolveContext,
    lr: float = 1e-3,
) -> dict[str, float]:
    """Behaviour cloning: roll ``teacher`` out on ``scenarios`` and fit the actor to its actions (maximum
    likelihood of the nearest sample, :meth:`~opsrl.nn.actor_critic.ActionHead.sample_of`). Returns the
    final negative log-likelihood and how often the actor's greedy action matches the teacher's."""
    from .imitation import fit_steps, teacher_rollout

    pairs = teacher_rollout(
        problem, teacher, scenarios, periods, lambda state, t, a: (ac.encode(state, t), ac.head.sample_of(a))
    )
    f_all, s_all = _stack([f for f, _ in pairs]), torch.cat([s for _, s in pairs], 0)
    dev = s_all.device
    ac.train()
    nll = fit_steps(
        ac.parameters(),
        lambda j: -ac.distribution({k: v[j.to(dev)] for k, v in f_all.items()}).log_prob(s_all[j.to(dev)]).mean(),
        s_all.shape[0],
        steps,
        ctx,
        lr,
    )
    ac.eval()
    with torch.no_grad():
        j = torch.randperm(s_all.shape[0], generator=generator(ctx.seed, "train", "imitate_check"))[:65536].to(dev)
        mode = ac.distribution({k: v[j] for k, v in f_all.items()}).mode()
        disc = ac.head.disc
        agree = float((mode[:, disc] == s_all[j][:, disc]).all(1).float().mean()) if disc else float("nan")
    return {"imitation_nll": nll, "imitation_agreement": agree}


def _value_loss(v, target, old, clip):
    loss = (v - target) ** 2
    if clip:
        vc = old + (v - old).clamp(-clip, clip)
        loss = torch.maximum(loss, (vc - target) ** 2)
    return 0.5 * loss.mean()


def _horizon(problem: Problem, o: Mapping[str, Any]) -> str:
    if o["horizon"] != "auto":
        return o["horizon"]
    return "finite" if problem.metric == "total" else "truncated"


def _fit(
    problem: Problem, options: Mapping[str, Any], config: Mapping[str, Any], ctx: SolveContext, post_critic: bool
) -> SolveOutcome:
    from ..nn.actor_critic import build_actor_critic

    o = dict(options)
    o["post_critic"] = post_critic or o["post_critic"]
    if o["baseline"] in ("group", "top") and o["group_size"] < 2:
        raise ConfigError(ctx.source, "options.group_size", f"the {o['baseline']} baseline needs group_size >= 2")
    if o["advantage"] != "max" and not o["post_critic"]:
        raise ConfigError(ctx.source, "options.advantage", "only applies with the post-decision critic (pdppo)")
    torch.manual_seed(ctx.seed)
    horizon = _horizon(problem, o)
    periods = o["train_periods"] or problem.periods
    ac = build_actor_critic(
        problem,
        config.get("policy", {}),
        ctx.source,
        horizon=periods if horizon == "finite" else 0,
        post_critic=o["post_critic"],
    )
    if o["imitate"]:
        o["_start_info"] = _imitate_solver(problem, ac, o, ctx, periods)
    ac, curve = train(problem, ac, o, ctx)
    best = min(curve, key=lambda e: e["dev_cost"])
    return SolveOutcome(
        policy=ac,
        curve=curve,
        info={
            "best_dev_cost": best["dev_cost"],
            "best_iteration": best["iteration"],
            "iterations": curve[-1]["iteration"],
            "horizon": horizon,
            "post_critic": o["post_critic"],
            **o.get("_start_info", {}),
            "parameters": sum(p.numel() for p in ac.parameters()),
        },
    )


def _imitate_solver(
    problem: Problem, ac: torch.nn.Module, o: Mapping[str, Any], ctx: SolveContext, periods: int
) -> dict[str, float]:
    """Fit the solver named by ``options.imitate`` and clone its policy into ``ac`` (see :func:`imitate`)."""
    from .imitation import load_teacher, teacher_scenarios

    teacher = load_teacher(problem, o["imitate"], ctx)
    try:
        info = imitate(
            problem, ac, teacher, teacher_scenarios(problem, o, ctx, periods), periods, o["imitate_steps"], ctx
        )
    except ValueError as e:
        raise ConfigError(ctx.source, "options.imitate", str(e)) from None
    ctx.log(
        f"imitation of {o['imitate']}: nll {info['imitation_nll']:.4f}, agreement {info['imitation_agreement']:.3f}"
    )
    return info


def fit(problem, options, config, ctx) -> SolveOutcome:
    return _fit(problem, options, config, ctx, False)


def fit_pd(problem, options, config, ctx) -> SolveOutcome:
    return _fit(problem, options, config, ctx, True)


def sizes(problem: Problem, o: Mapping[str, Any], config: Mapping[str, Any]) -> list:
    """The training pool, the dev set (with its samples) and the actor-critic on one rollout of the batch,
    estimated before anything is allocated (see :mod:`opsrl.algos.sizes`)."""
    from ..nn.actor_critic import AC_SCHEMA
    from .sizes import network_need, train_dev_needs

    src = config["source"]
    needs, train_periods = train_dev_needs(problem, o, src)
    if o["dev_samples"] > 1 and needs:  # the dev set is held once per sample
        dev = needs[-1]
        needs[-1] = type(dev)(
            f"{dev.what[:-1]}, x {o['dev_samples']} samples)",
            dev.nbytes * o["dev_samples"],
            src,
            (*dev.keys, "options.dev_samples"),
        )
    pol = validate(config.get("policy", {}), AC_SCHEMA, src, prefix="policy.")
    rows = o["batch_size"] * o["group_size"] * train_periods
    net = network_need(problem, pol, rows, src, "batch_size", copies=3 if o["post_critic"] else 2)
    return needs + ([net] if net is not None else [])


METHOD = Method(
    "ppo",
    fit,
    OPTIONS,
    sizes=sizes,
    learns=True,
    description="proximal policy optimisation (GAE, clipped surrogate) on sampled scenarios",
)
PD_METHOD = Method(
    "pdppo",
    fit_pd,
    OPTIONS,
    sizes=lambda problem, o, config: sizes(problem, {**o, "post_critic": True}, config),
    learns=True,
    description="PPO with a second critic on the post-decision state (optimistic max of the two)",
)
