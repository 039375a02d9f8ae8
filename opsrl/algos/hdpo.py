"""HDPO: hindsight differentiable policy optimisation.

The policy is rolled through the simulator on sampled (hindsight) scenarios and the mean cost is
back-propagated through ``post_decision`` and ``transition`` (a pathwise gradient). Adam, periodic
evaluation on the dev split, best-on-dev parameters kept, early stopping, a progress bar; the run is
deterministic given the seed (on one device and thread count), unless it stops at its ``time_limit``
(then the number of steps depends on the machine, and the record says so).

Divergence. An untrained policy can order so much that its first gradients are 10^4 times those near
the optimum (the state, and with it the network's input, grows along the rollout). Adam's second-moment
estimate then remembers those gradients for hundreds of steps (beta2 = 0.999), so later gradients barely
move the parameters while the first moment keeps pushing the old way: on the smoke sweep's short run
(lost sales p = 4, L = 1, seed 1) the training loss reached 4.8 at step 8 (optimum 4.04), then climbed to
10.4 and stayed there with a gradient norm of 13 against 2 x 10^5 at step 1. Restarting Adam's moments
from the best parameters cures it: after ``restart_after`` evaluations in a row worse than the best by
more than ``restart_tolerance`` (relative), the best-on-dev parameters are restored and the optimiser
starts afresh, its learning rate times ``lr_decay`` and warmed up again (``restarts`` in the curve and
the info).
"""

from __future__ import annotations

import copy
import math
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
)
from ..core.config import check_memory, non_negative, positive, scenario_bytes, size, threads, validate
from ..core.rollout import Shield

OPTIONS = {
    "lr": Field(float, 1e-2, allowed="a positive learning rate, at most 10", check=positive, max=10.0),
    "batch_size": size(512, 10**6, allowed="scenarios per gradient step, from 1 to 10^6"),
    "max_batch_size": size(
        0,
        10**6,
        low=0,
        allowed="a batch size the batch doubles up to on a plateau before the "
        "learning rate decays (0: no growth), at most 10^6",
    ),
    "train_scenarios": size(32768, 10**7, allowed="the size of the training pool, from 1 to 10^7"),
    "train_periods": size(0, 10**6, low=0, allowed="periods per training rollout (0: the problem's own), at most 10^6"),
    "dev_scenarios": size(1024, 10**7, allowed="dev scenarios, from 1 to 10^7"),
    "dev_periods": size(
        0, 10**6, low=0, allowed="periods per dev rollout (0: the problem's test periods), at most 10^6"
    ),
    "max_steps": size(4000, 10**9, allowed="a positive number of gradient steps, at most 10^9"),
    "lr_warmup": Field(
        int, 20, allowed="steps over which the learning rate ramps up linearly (0: none)", check=non_negative
    ),
    "eval_every": Field(int, 25, allowed="a positive number of steps", check=positive),
    "patience": Field(
        int, 16, allowed="evaluations without improvement before stopping (0: never stop early)", check=non_negative
    ),
    "time_limit": Field(
        float,
        0.0,
        allowed="seconds of training (0: no limit; a time-limited run is not reproducible)",
        check=non_negative,
    ),
    "restart_after": Field(
        int,
        2,
        allowed="evaluations in a row worse than the best before the best parameters "
        "are restored with a fresh optimiser (0: never)",
        check=non_negative,
    ),
    "restart_tolerance": Field(
        float,
        0.05,
        allowed="how much worse than the best (relative, >= 0) a dev cost counts as worse, for restart_after",
        check=non_negative,
    ),
    "grad_clip": Field(float, 0.0, allowed="max gradient norm (0: no clipping)", check=non_negative),
    "lr_decay": Field(
        float, 0.5, allowed="a factor in (0, 1] applied to the learning rate on a plateau", check=lambda v: 0 < v <= 1
    ),
    "lr_patience": Field(
        int, 4, allowed="evaluations without improvement before the learning rate decays (0: never)", check=non_negative
    ),
    "threads": threads(0),
    "imitate": Field(
        str,
        "",
        allowed="a solver (bundled name or file) of the same family whose actions the policy "
        "is regressed onto before HDPO starts ('': start from scratch; see opsrl.algos.imitation)",
    ),
    "imitate_steps": Field(int, 2000, allowed="a positive number of imitation minibatch steps", check=positive),
}


# predicted evaluation times are taken this much longer in the time-limit decisions: on a loaded machine an
# evaluation can take longer than the probe (or the previous evaluation) said
EVAL_MARGIN = 1.5


def train(
    problem: Problem,
    policy: torch.nn.Module,
    options: Mapping[str, Any],
    ctx: SolveContext,
    shield: Shield | None = None,
) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train ``policy`` in place by HDPO; returns it with its best-on-dev parameters, and the curve."""
    o = dict(options)
    t0 = time.perf_counter()  # the time limit covers everything from here: sampling, steps, evaluations
    limit = o["time_limit"]
    if o["threads"]:
        torch.set_num_threads(o["threads"])
    dev = ctx.device
    policy.to(dev)
    train_periods = o["train_periods"] or problem.periods
    dev_periods = o["dev_periods"] or problem.test_periods or problem.periods
    check_sizes(problem, o, ctx)
    pool = problem.sample(o["train_scenarios"], "train", ctx.seed, train_periods, dev)
    dev_set = problem.sample(o["dev_scenarios"], "dev", ctx.seed, dev_periods, dev)
    g = generator(ctx.seed, "train", "minibatch")
    opt = torch.optim.Adam(policy.parameters(), lr=o["lr"])
    best, best_state, curve, stale = float("inf"), copy.deepcopy(policy.state_dict()), [], 0
    worse, restarts, eval_seconds, time_limited = 0, 0, 0.0, False
    lr_base, warm_from = o["lr"], 0  # the rate the warm-up ramps to, and the step it starts from
    if limit:  # what one dev evaluation costs, from a few periods of it, so that the last one fits the limit
        k = min(dev_periods, 10)
        t_probe = time.perf_counter()
        with torch.no_grad():
            was = policy.training
            policy.eval()
            rollout(problem, policy, dev_set, periods=k, shield=shield)
            policy.train(was)
        eval_seconds = (time.perf_counter() - t_probe) * dev_periods / k
    bar = tqdm(
        total=o["max_steps"], desc=f"hdpo {problem.name}", disable=not ctx.progress, leave=False, dynamic_ncols=True
    )
    losses: list[float] = []
    batch = o["batch_size"]
    if o["imitate"]:  # the clone's dev cost is the curve's first point (step 0)
        info = _imitate(problem, policy, o, ctx, train_periods)
        ev = evaluate(problem, policy, dev_set, shield=shield)
        curve.append(
            {
                "step": 0,
                "seconds": time.perf_counter() - t0,
                "batch_size": batch,
                "lr": 0.0,
                "train_loss": info["imitation_mse"],
                "dev_cost": ev.mean,
                "dev_stderr": ev.stderr,
            }
        )
        best, best_state = ev.mean, copy.deepcopy(policy.state_dict())
        ctx.log(f"step 0 (imitation of {o['imitate']}, mse {info['imitation_mse']:.4g}): dev {ev.mean:.4f}")
    policy.train()
    for step in range(1, o["max_steps"] + 1):
        if limit and curve and time.perf_counter() - t0 + EVAL_MARGIN * eval_seconds >= limit:  # no time left
            time_limited = True
            break
        if o["lr_warmup"] and step - warm_from <= o["lr_warmup"]:  # a linear ramp (again after a restart)
            for group in opt.param_groups:
                group["lr"] = lr_base * (step - warm_from) / o["lr_warmup"]
        step_started = time.perf_counter() - t0
        idx = torch.randint(pool.n, (min(batch, pool.n),), generator=g).to(dev)
        traj = rollout(problem, policy, pool.select(idx), shield=shield)
        loss = scenario_costs(problem, traj.costs).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if o["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), o["grad_clip"])
        opt.step()
        losses.append(loss.item())
        bar.update(1)
        # the time limit holds evaluations included: the last one (whose duration the previous one, or the
        # probe above, predicts) is made when the next step would leave no time for it
        elapsed = time.perf_counter() - t0
        step_seconds = elapsed - step_started
        out_of_time = bool(limit) and elapsed + step_seconds + EVAL_MARGIN * eval_seconds >= limit
        if step % o["eval_every"] == 0 or step == o["max_steps"] or out_of_time:
            on = dev_set
            left = limit - elapsed if limit else math.inf
            if out_of_time and not curve and EVAL_MARGIN * eval_seconds > left:
                # the first evaluation, and no time for all of it (a busy machine): the first scenarios of the
                # dev set, as many as the time left allows (at least 32), so that the limit still holds
                m = max(32, min(dev_set.n, int(dev_set.n * max(left, 0.0) / (EVAL_MARGIN * eval_seconds))))
                on = dev_set.select(slice(0, m))
            t_eval = time.perf_counter()
            ev = evaluate(problem, policy, on, shield=shield)
            eval_seconds = (time.perf_counter() - t_eval) * dev_set.n / on.n
            entry = {
                "step": step,
                "seconds": time.perf_counter() - t0,
                "batch_size": batch,
                "lr": opt.param_groups[0]["lr"],
                "train_loss": sum(losses) / len(losses),
                "dev_cost": ev.mean,
                "dev_stderr": ev.stderr,
                "restarts": restarts,
            }
            if on is not dev_set:
                entry["dev_scenarios"] = on.n
            curve.append(entry)
            losses = []
            if ev.mean < best:
                best, stale, worse = ev.mean, 0, 0
                best_state = copy.deepcopy(policy.state_dict())
            else:
                stale += 1
                bad = not math.isfinite(ev.mean) or ev.mean > best + o["restart_tolerance"] * abs(best)
                worse = worse + 1 if bad else 0
            bar.set_postfix(dev=f"{ev.mean:.4f}", best=f"{best:.4f}")
            ctx.log(f"step {step}: train {entry['train_loss']:.4f} dev {ev.mean:.4f} (best {best:.4f})")
            if o["restart_after"] and worse >= o["restart_after"]:
                # diverged (see the module docstring): back to the best parameters, with fresh Adam moments
                lr_base = o["lr_decay"] * max(group["lr"] for group in opt.param_groups)
                policy.load_state_dict(best_state)
                opt = torch.optim.Adam(policy.parameters(), lr=lr_base)
                restarts, worse, warm_from = restarts + 1, 0, step
                ctx.log(
                    f"step {step}: dev {ev.mean:.4f} stayed worse than the best {best:.4f}; restarted from "
                    f"the best parameters with a fresh optimiser, learning rate {lr_base:.3g} (restart {restarts})"
                )
            elif o["lr_patience"] and stale and stale % o["lr_patience"] == 0:
                # a plateau: first less gradient noise (a larger batch), then smaller steps
                if batch < o["max_batch_size"]:
                    batch = min(2 * batch, o["max_batch_size"])
                else:
                    for group in opt.param_groups:
                        group["lr"] *= o["lr_decay"]
            if out_of_time:
                time_limited = True
                break
            if o["patience"] and stale >= o["patience"]:
                break
    bar.close()
    policy.load_state_dict(best_state)
    policy.eval()
    if curve:
        curve[-1]["time_limited"] = time_limited
        curve[-1]["restarts"] = restarts
    return policy, curve


def check_sizes(problem: Problem, o: Mapping[str, Any], ctx: SolveContext) -> None:
    """Refuse a training pool or dev set that would not fit in memory, before drawing them."""
    train_periods = o["train_periods"] or problem.periods
    dev_periods = o["dev_periods"] or problem.test_periods or problem.periods
    for n, periods, key, what in (
        (o["train_scenarios"], train_periods, "options.train_scenarios", "training pool"),
        (o["dev_scenarios"], dev_periods, "options.dev_scenarios", "dev set"),
    ):
        nbytes = scenario_bytes(problem, n, periods, "train" if key.endswith("train_scenarios") else "dev")
        if nbytes is not None:
            check_memory(
                nbytes,
                ctx.source,
                key,
                f"the {what} ({n} scenarios x {periods} periods)",
                ctx.device,
                lower=f"'{key}' or the periods ('{key.replace('scenarios', 'periods')}')",
            )


def _imitate(
    problem: Problem, policy: torch.nn.Module, o: Mapping[str, Any], ctx: SolveContext, periods: int
) -> dict[str, float]:
    """Regress the policy's actions (training mode) onto those of the solver ``options.imitate`` along the
    teacher's own rollouts; minibatches are drawn within one period, since a policy may read the period."""
    from .imitation import fit_steps, load_teacher, teacher_rollout, teacher_scenarios

    teacher = load_teacher(problem, o["imitate"], ctx)
    steps = teacher_rollout(
        problem,
        teacher,
        teacher_scenarios(problem, o, ctx, periods),
        periods,
        lambda state, t, a: ({k: v.detach() for k, v in state.items()}, a.float()),
    )
    B = steps[0][1].shape[0]
    policy.train()

    def loss_of(j: torch.Tensor) -> torch.Tensor:  # j: B random indices in [0, B * periods)
        t = int(j[0]) % periods  # one period per minibatch (drawn from the first index), the scenarios j mod B
        state, a = steps[t]
        rows = (j % B).to(a.device)
        sub = {k: (v[rows] if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == B else v) for k, v in state.items()}
        out = policy(sub, t)
        return ((out.float() - a[rows]) ** 2).mean()

    mse = fit_steps(policy.parameters(), loss_of, B * periods, o["imitate_steps"], ctx, batch=B)
    return {"imitation_mse": mse}


def fit(problem: Problem, options: Mapping[str, Any], config: Mapping[str, Any], ctx: SolveContext) -> SolveOutcome:
    from ..nn import build_policy

    if problem.action_spec.kind != "continuous":
        raise ConfigError(
            ctx.source,
            "method",
            f"hdpo needs continuous actions; {problem.name} has discrete "
            "actions (use a method made for them, or a problem with a documented relaxation)",
        )
    torch.manual_seed(ctx.seed)
    policy = build_policy(problem, config.get("policy", {}), ctx.source)
    policy, curve = train(problem, policy, options, ctx)
    best = min(curve, key=lambda e: e["dev_cost"])
    return SolveOutcome(
        policy=policy,
        curve=curve,
        info={
            "best_dev_cost": best["dev_cost"],
            "best_step": best["step"],
            "steps": curve[-1]["step"],
            "parameters": sum(p.numel() for p in policy.parameters()),
            "restarts": curve[-1].get("restarts", 0),
            "time_limited": bool(curve[-1].get("time_limited")),
        },
    )


def sizes(
    problem: Problem, o: Mapping[str, Any], config: Mapping[str, Any], policy: Mapping[str, Any] | None = None
) -> list:
    """The training pool, the dev set and the network (its activations kept over a whole training rollout of
    the largest batch), estimated before anything is allocated (see :mod:`opsrl.algos.sizes`). A method whose
    network is set by its options (``policy``: a validated policy table, widths from ``options.hidden``)
    passes it."""
    from ..nn import POLICY_SCHEMA
    from .sizes import network_need, train_dev_needs

    src = config["source"]
    needs, train_periods = train_dev_needs(problem, o, src)
    pol = policy or validate(config.get("policy", {}), POLICY_SCHEMA, src, prefix="policy.")
    rows = max(o["batch_size"], o["max_batch_size"]) * train_periods
    batch_key = "batch_size" if o["batch_size"] >= o["max_batch_size"] else "max_batch_size"
    net = network_need(problem, pol, rows, src, batch_key, hidden_key="options.hidden" if policy else "policy.hidden")
    return needs + ([net] if net is not None else [])


METHOD = Method(
    "hdpo",
    fit,
    OPTIONS,
    learns=True,
    description="pathwise gradient of the scenario cost through the simulator (HDPO)",
    sizes=sizes,
)
