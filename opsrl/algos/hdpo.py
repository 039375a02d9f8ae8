"""HDPO: hindsight differentiable policy optimisation.

The policy is rolled through the simulator on sampled (hindsight) scenarios and the mean cost is
back-propagated through ``post_decision`` and ``transition`` (a pathwise gradient). Adam, periodic
evaluation on the dev split, best-on-dev parameters kept, early stopping, a progress bar; the run is
deterministic given the seed (on one device and thread count).
"""

from __future__ import annotations

import copy
import time
from typing import Any, Mapping

import torch
from tqdm.auto import tqdm

from ..core import ConfigError, Field, Method, Problem, SolveContext, SolveOutcome, evaluate, generator, rollout, scenario_costs
from ..core.config import non_negative, positive
from ..core.rollout import Shield

OPTIONS = {
    "lr": Field(float, 1e-2, allowed="a positive learning rate", check=positive),
    "batch_size": Field(int, 512, allowed="a positive integer (scenarios per gradient step)", check=positive),
    "max_batch_size": Field(int, 0, allowed="a batch size the batch doubles up to on a plateau before the "
                            "learning rate decays (0: no growth)", check=non_negative),
    "train_scenarios": Field(int, 32768, allowed="a positive integer (size of the training pool)", check=positive),
    "train_periods": Field(int, 0, allowed="periods per training rollout (0: the problem's own)", check=non_negative),
    "dev_scenarios": Field(int, 1024, allowed="a positive integer", check=positive),
    "dev_periods": Field(int, 0, allowed="periods per dev rollout (0: the problem's test periods)", check=non_negative),
    "max_steps": Field(int, 4000, allowed="a positive number of gradient steps", check=positive),
    "lr_warmup": Field(int, 20, allowed="steps over which the learning rate ramps up linearly (0: none)",
                       check=non_negative),
    "eval_every": Field(int, 25, allowed="a positive number of steps", check=positive),
    "patience": Field(int, 16, allowed="evaluations without improvement before stopping (0: never stop early)",
                      check=non_negative),
    "time_limit": Field(float, 0.0, allowed="seconds of training (0: no limit)", check=non_negative),
    "grad_clip": Field(float, 0.0, allowed="max gradient norm (0: no clipping)", check=non_negative),
    "lr_decay": Field(float, 0.5, allowed="a factor in (0, 1] applied to the learning rate on a plateau",
                      check=lambda v: 0 < v <= 1),
    "lr_patience": Field(int, 4, allowed="evaluations without improvement before the learning rate decays "
                         "(0: never)", check=non_negative),
    "threads": Field(int, 0, allowed="torch CPU threads (0: leave as is)", check=non_negative),
    "imitate": Field(str, "", allowed="a solver (bundled name or file) of the same family whose actions the policy "
                     "is regressed onto before HDPO starts ('': start from scratch; see opsrl.algos.imitation)"),
    "imitate_steps": Field(int, 2000, allowed="a positive number of imitation minibatch steps", check=positive),
}


def train(problem: Problem, policy: torch.nn.Module, options: Mapping[str, Any], ctx: SolveContext,
          shield: Shield | None = None) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train ``policy`` in place by HDPO; returns it with its best-on-dev parameters, and the curve."""
    o = dict(options)
    if o["threads"]:
        torch.set_num_threads(o["threads"])
    dev = ctx.device
    policy.to(dev)
    train_periods = o["train_periods"] or problem.periods
    dev_periods = o["dev_periods"] or problem.test_periods or problem.periods
    pool = problem.sample(o["train_scenarios"], "train", ctx.seed, train_periods, dev)
    dev_set = problem.sample(o["dev_scenarios"], "dev", ctx.seed, dev_periods, dev)
    g = generator(ctx.seed, "train", "minibatch")
    opt = torch.optim.Adam(policy.parameters(), lr=o["lr"])
    best, best_state, curve, stale = float("inf"), copy.deepcopy(policy.state_dict()), [], 0
    t0 = time.perf_counter()
    bar = tqdm(total=o["max_steps"], desc=f"hdpo {problem.name}", disable=not ctx.progress, leave=False,
               dynamic_ncols=True)
    losses: list[float] = []
    batch = o["batch_size"]
    if o["imitate"]:  # the clone's dev cost is the curve's first point (step 0)
        info = _imitate(problem, policy, o, ctx, train_periods)
        ev = evaluate(problem, policy, dev_set, shield=shield)
        curve.append({"step": 0, "seconds": time.perf_counter() - t0, "batch_size": batch, "lr": 0.0,
                      "train_loss": info["imitation_mse"], "dev_cost": ev.mean, "dev_stderr": ev.stderr})
        best, best_state = ev.mean, copy.deepcopy(policy.state_dict())
        ctx.log(f"step 0 (imitation of {o['imitate']}, mse {info['imitation_mse']:.4g}): dev {ev.mean:.4f}")
    policy.train()
    for step in range(1, o["max_steps"] + 1):
        if o["lr_warmup"] and step <= o["lr_warmup"]:
            for group in opt.param_groups:
                group["lr"] = o["lr"] * step / o["lr_warmup"]
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
        out_of_time = o["time_limit"] and time.perf_counter() - t0 >= o["time_limit"]
        if step % o["eval_every"] == 0 or step == o["max_steps"] or out_of_time:
            ev = evaluate(problem, policy, dev_set, shield=shield)
            entry = {"step": step, "seconds": time.perf_counter() - t0, "batch_size": batch,
                     "lr": opt.param_groups[0]["lr"],
                     "train_loss": sum(losses) / len(losses), "dev_cost": ev.mean, "dev_stderr": ev.stderr}
            curve.append(entry)
            losses = []
            if ev.mean < best:
                best, stale = ev.mean, 0
                best_state = copy.deepcopy(policy.state_dict())
            else:
                stale += 1
            bar.set_postfix(dev=f"{ev.mean:.4f}", best=f"{best:.4f}")
            ctx.log(f"step {step}: train {entry['train_loss']:.4f} dev {ev.mean:.4f} (best {best:.4f})")
            if o["lr_patience"] and stale and stale % o["lr_patience"] == 0:
                # a plateau: first less gradient noise (a larger batch), then smaller steps
                if batch < o["max_batch_size"]:
                    batch = min(2 * batch, o["max_batch_size"])
                else:
                    for group in opt.param_groups:
                        group["lr"] *= o["lr_decay"]
            if (o["patience"] and stale >= o["patience"]) or out_of_time:
                break
    bar.close()
    policy.load_state_dict(best_state)
    policy.eval()
    return policy, curve


def _imitate(problem: Problem, policy: torch.nn.Module, o: Mapping[str, Any], ctx: SolveContext,
             periods: int) -> dict[str, float]:
    """Regress the policy's actions (training mode) onto those of the solver ``options.imitate`` along the
    teacher's own rollouts; minibatches are drawn within one period, since a policy may read the period."""
    from .imitation import fit_steps, load_teacher, teacher_rollout, teacher_scenarios

    teacher = load_teacher(problem, o["imitate"], ctx)
    steps = teacher_rollout(problem, teacher, teacher_scenarios(problem, o, ctx, periods), periods,
                            lambda state, t, a: ({k: v.detach() for k, v in state.items()}, a.float()))
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
        raise ConfigError(ctx.source, "method", f"hdpo needs continuous actions; {problem.name} has discrete "
                          "actions (use a method made for them, or a problem with a documented relaxation)")
    torch.manual_seed(ctx.seed)
    policy = build_policy(problem, config.get("policy", {}), ctx.source)
    policy, curve = train(problem, policy, options, ctx)
    best = min(curve, key=lambda e: e["dev_cost"])
    return SolveOutcome(policy=policy, curve=curve,
                        info={"best_dev_cost": best["dev_cost"], "best_step": best["step"],
                              "steps": curve[-1]["step"], "parameters": sum(p.numel() for p in policy.parameters())})


METHOD = Method("hdpo", fit, OPTIONS, learns=True,
                description="pathwise gradient of the scenario cost through the simulator (HDPO)")
