"""A learned microgrid controller distilled from the commitment MPC (behaviour cloning, then DAgger, then PPO).

The teacher is ``CommitMPC`` (:mod:`opsrl.microgrid.milp`) on the real forecasts, proposing battery
set-points (``shield.proposal = "battery_kw"``, as ``mpc_commit_wear16``), at a wear price ``--wear``. The
student is the generic PPO actor-critic (:mod:`opsrl.nn.actor_critic`: an MLP on the 29 observation
features, which hold the forecasts, the time of day and the gensets' run timers), with a categorical over
0, 1 or 2 gensets and one over ``--battery-levels`` battery set-points from full charge to full discharge.
It acts every minute behind the shields. Steps (each one process; the MILP labels are cached under
``--cache`` and reused):

    python benchmarks/microgrid_mpc_clone.py label  --wear 16 --days 24            # round 0: the MPC's own days
    python benchmarks/microgrid_mpc_clone.py fit    --wear 16                      # clone on every cached round
    python benchmarks/microgrid_mpc_clone.py dagger --wear 16 --days 24 --round 1  # the clone's days, MPC labels
    python benchmarks/microgrid_mpc_clone.py fit    --wear 16
    python benchmarks/microgrid_mpc_clone.py ppo    --wear 16 --iterations 12      # PPO from the clone
    python benchmarks/microgrid_mpc_clone.py mpc    --wear 2 --days 32 --json F    # the teacher on the test days

Round 0 labels the states of the MPC's own rollouts at its replanning minutes (every 15 minutes, fresh
solves); round ``r >= 1`` rolls the current clone out on new training days and labels the states it
reaches, every 15 minutes from minute ``r mod 15``, with the MPC's fresh decision there (DAgger). ``fit``
maximises the likelihood of the labels (``opsrl.algos.imitation.fit_steps``), evaluates the greedy clone on
the 32 test days (and on 16 dev days), and appends the row to ``--json`` for ``microgrid_frontier_all.py``.
``ppo`` runs the generic PPO (:func:`opsrl.algos.ppo.train`) from the clone with ``costs.wear_weight`` set
to the MPC's wear price, keeps the parameters best on dev days (iteration 0 is the clone) and reports the
greedy and the sampled policy. ``ship`` copies a fitted network into ``opsrl/microgrid/data``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from opsrl.algos.imitation import fit_steps, labelled_rollout
from opsrl.core import SolveContext, validate
from opsrl.microgrid import run_test
from opsrl.microgrid.controllers import OperatorRules, SocHysteresis
from opsrl.microgrid.milp import CommitMPC
from opsrl.microgrid.planning import terminal_value
from opsrl.nn.actor_critic import build_actor_critic
from opsrl.registry import load_problem

ROOT = Path(__file__).resolve().parent.parent
REPLAN = 15


class Cached(torch.nn.Module):
    """The teacher as an actor that answers twice at the same step with one solve (label, then act)."""

    def __init__(self, teacher):
        super().__init__()
        self.teacher, self.t, self.a = teacher, None, None

    def forward(self, state, t=0):
        if t != self.t:
            self.t, self.a = t, self.teacher(state, t)
        return self.a


def problem_for(wear: float, tests: int = 32):
    return load_problem("microgrid/remote", {"test.scenarios": tests, "costs.wear_weight": wear})


def net_config(args) -> dict:
    return {"kind": "mlp", "hidden": list(args.hidden), "activation": "tanh", "levels": [3, args.battery_levels]}


def cache_path(args, rnd: int) -> Path:
    return Path(args.cache) / f"labels_w{args.wear:g}_r{rnd}.pt"


def weights_path(args, tag: str = "clone") -> Path:
    return Path(args.cache) / f"{tag}_w{args.wear:g}.pt"


def train_days(prob, rnd: int, n: int):
    """Training days of round ``rnd``: disjoint slices of one pool of full days (seeded)."""
    pool = prob.sample(n * (rnd + 1), "train", 0, 1440)
    return pool.select(slice(n * rnd, n * (rnd + 1)))


def day_metrics(prob, pol, sc) -> dict:
    torch.manual_seed(0)
    ev, m = run_test(prob, pol, sc)
    return {
        "cost": float(ev.mean),
        "fuel_eq_litres": m["fuel_eq_litres"],
        "fuel_litres": m["fuel_litres"],
        "degradation": m["degradation"],
        "unserved_kwh": m["unserved_kwh"],
        "violations": m["violations_total"],
        "reserve_minutes": m["reserve_minutes"],
    }


def save_labels(args, rnd, prob, states, labels, steps, secs, extra=None):
    obs = torch.cat([prob.observe(s) for s in states], 0).float()
    lab = torch.cat(labels, 0).float()
    torch.save({"obs": obs, "labels": lab, "steps": steps, "seconds": secs, **(extra or {})}, cache_path(args, rnd))
    print(f"# round {rnd}: {obs.shape[0]} labels, {secs:.0f} s", flush=True)


def cmd_label(args) -> None:
    prob = problem_for(args.wear)
    teacher = Cached(CommitMPC(prob, args.wear, "real"))
    sc = train_days(prob, 0, args.days)
    t0 = time.perf_counter()
    st, lab, steps = labelled_rollout(prob, teacher, teacher, sc, 1440, lambda t: t % REPLAN == 0)
    save_labels(args, 0, prob, st, lab, steps, time.perf_counter() - t0)


def load_student(args, prob, path: Path | None = None):
    ac = build_actor_critic(prob, net_config(args), "<clone>")
    if path is not None:
        ac.load_state_dict(torch.load(path, weights_only=True))
    ac.eval()
    return ac


def cmd_dagger(args) -> None:
    prob = problem_for(args.wear)
    ac = load_student(args, prob, weights_path(args))
    teacher = CommitMPC(prob, args.wear, "real")
    sc = train_days(prob, args.round, args.days)
    off = args.round % REPLAN
    t0 = time.perf_counter()
    st, lab, steps = labelled_rollout(prob, ac, teacher._solve, sc, 1440, lambda t: t % REPLAN == off)
    save_labels(args, args.round, prob, st, lab, steps, time.perf_counter() - t0)


def operator_ref(prob, sc, key: str, args) -> dict:
    path = Path(args.cache) / f"operator_{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    m = day_metrics(prob, OperatorRules(prob), sc)
    path.write_text(json.dumps(m))
    return m


def report(args, prob, pol, name: str, family: str, info: dict, modes=("greedy",)) -> list[dict]:
    test = prob.test_set()
    ref = operator_ref(prob, test, "test", args)
    rows = []
    for mode in modes:
        if hasattr(pol, "sampling"):
            pol.sampling = mode == "sampled"
        m = day_metrics(prob, pol, test)
        r = {
            "name": f"{name} {mode}",
            "family": f"{family} {mode}" if len(modes) > 1 else family,
            "wear_weight": args.wear,
            "mode": mode,
            **m,
            "saved": 100 * (1 - m["fuel_eq_litres"] / ref["fuel_eq_litres"]),
            "deg_x_operator": m["degradation"] / ref["degradation"],
            "info": info,
        }
        rows.append(r)
        print(
            f"| {r['name']} | {r['cost']:.1f} | {r['fuel_eq_litres']:.1f} | {r['saved']:.1f}% | "
            f"{r['degradation']:.2f} ({r['deg_x_operator']:.2f}x) | {r['unserved_kwh']:.2f} | {r['violations']} |",
            flush=True,
        )
    if hasattr(pol, "sampling"):
        pol.sampling = False
    if args.json:
        path = Path(args.json)
        old = json.loads(path.read_text())["rows"] if path.is_file() else []
        names = {r["name"] for r in rows}
        old = [r for r in old if r["name"] not in names]
        path.parent.mkdir(parents=True, exist_ok=True)
        out = {"args": {"first": 0, "days": 32}, "operator_fuel_eq": ref["fuel_eq_litres"], "rows": old + rows}
        path.write_text(json.dumps(out, indent=1))
    return rows


def cmd_fit(args) -> None:
    prob = problem_for(args.wear)
    rounds = sorted(Path(args.cache).glob(f"labels_w{args.wear:g}_r*.pt"))
    data = [torch.load(p, weights_only=False) for p in rounds]
    obs = torch.cat([d["obs"] for d in data])
    lab = torch.cat([d["labels"] for d in data])
    torch.manual_seed(args.seed)
    ac = build_actor_critic(prob, net_config(args), "<clone>")
    s_all = ac.head.sample_of(lab)
    ctx = SolveContext(seed=args.seed, progress=False)
    t0 = time.perf_counter()
    ac.train()
    nll = fit_steps(
        ac.actor.parameters(),
        lambda j: -ac.distribution({"obs": obs[j]}).log_prob(s_all[j]).mean(),
        obs.shape[0],
        args.steps,
        ctx,
        args.lr,
        args.batch,
    )
    ac.eval()
    with torch.no_grad():
        mode = ac.distribution({"obs": obs}).mode()
        agree_n = float((mode[:, 0] == s_all[:, 0]).float().mean())
        err_b = float(((mode[:, 1] - s_all[:, 1]).abs() * 1200 / (args.battery_levels - 1)).mean())
    secs = time.perf_counter() - t0
    torch.save(ac.state_dict(), weights_path(args))
    print(
        f"# {len(rounds)} rounds, {obs.shape[0]} labels, nll {nll:.3f}, genset count agreement {agree_n:.3f}, "
        f"mean battery set-point error {err_b:.1f} kW, {secs:.0f} s",
        flush=True,
    )
    info = {"labels": int(obs.shape[0]), "rounds": len(rounds), "nll": nll, "agree_gensets": agree_n}
    report(args, prob, ac, f"mpc clone wear {args.wear:g} r{len(rounds) - 1}", args.family, info)


def cmd_ppo(args) -> None:
    from opsrl.algos.ppo import OPTIONS, train

    prob = problem_for(args.wear)
    ac = load_student(args, prob, weights_path(args))
    o = validate(
        {
            "lr": args.lr,
            "batch_size": 64,
            "train_scenarios": 4096,
            "train_periods": 180,
            "horizon": "truncated",
            "gamma": 0.995,
            "iterations": args.iterations,
            "critic_warmup": args.critic_warmup,
            "entropy_coef": 0.0,
            "clip": 0.1,
            "dev_scenarios": 16,
            "dev_periods": 1440,
            "eval_every": args.eval_every,
        },
        OPTIONS,
        "<ppo>",
    )
    o["_start_info"] = {"start": "mpc clone"}
    ctx = SolveContext(seed=args.seed, progress=False, log=lambda m: print("#", m, flush=True))
    t0 = time.perf_counter()
    ac, curve = train(prob, ac, o, ctx)
    secs = time.perf_counter() - t0
    best = min(curve, key=lambda e: e["dev_cost"])
    torch.save(ac.state_dict(), weights_path(args, "ppo"))
    print(f"# PPO {secs:.0f} s, best dev {best['dev_cost']:.1f} at iteration {best['iteration']}", flush=True)
    info = {"best_iteration": best["iteration"], "train_seconds": secs, "curve": [e["dev_cost"] for e in curve]}
    report(args, prob, ac, f"ppo from mpc clone wear {args.wear:g}", "PPO from MPC clone", info, ("greedy", "sampled"))


def cmd_mpc(args) -> None:
    """The teacher itself on test days ``--first`` .. ``--first + --days`` (rows like microgrid_mpc_frontier's)."""
    prob = problem_for(args.wear)
    test = prob.test_set().select(slice(args.first, args.first + args.days))
    ref = day_metrics(prob, OperatorRules(prob), test)
    t0 = time.perf_counter()
    tv = None if args.terminal == 1.0 else args.terminal * terminal_value(prob.p)
    m = day_metrics(prob, CommitMPC(prob, args.wear, "real", terminal_kwh=tv), test)
    secs = time.perf_counter() - t0
    r = {
        "name": f"mpc_commit real wear {args.wear:g}, battery set-point",
        "forecast": "real",
        "proposal": "battery_kw",
        "wear_price": args.wear,
        "terminal_factor": args.terminal,
        **m,
        "saved": 100 * (1 - m["fuel_eq_litres"] / ref["fuel_eq_litres"]),
        "seconds": secs,
    }
    print(json.dumps(r), flush=True)
    hp = load_problem("microgrid/remote", {"test.scenarios": 32, "shield.proposal": "genset_load"})
    h = day_metrics(
        hp, SocHysteresis(hp, 0.15, 0.30, 1.0), hp.test_set().select(slice(args.first, args.first + args.days))
    )
    print(
        f"# soc_hysteresis 0.15 / 0.30 on these days: {100 * (1 - h['fuel_eq_litres'] / ref['fuel_eq_litres']):.2f}% "
        f"at {h['degradation']:.2f}; operator {ref['degradation']:.2f}",
        flush=True,
    )
    if not args.json:
        return
    out = Path(args.json)
    out.write_text(json.dumps({"args": {"first": args.first, "days": args.days}, "rows": [r]}, indent=1))


def cmd_ship(args) -> None:
    src = weights_path(args, args.tag)
    dst = ROOT / "opsrl/microgrid/data" / f"{args.name}.pt"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    meta = {"policy": net_config(args), "proposal": "battery_kw", "wear_price": args.wear, "made_by": args.made_by}
    dst.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"# {src} -> {dst}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("label", "dagger", "fit", "ppo", "mpc", "ship"))
    ap.add_argument("--wear", type=float, default=16.0)
    ap.add_argument("--days", type=int, default=24)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    ap.add_argument("--battery-levels", type=int, default=49)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--iterations", type=int, default=12)
    ap.add_argument("--critic-warmup", type=int, default=4)
    ap.add_argument("--eval-every", type=int, default=4)
    ap.add_argument("--family", default="MPC clone (learned)")
    ap.add_argument(
        "--terminal", type=float, default=1.0, help="mpc: terminal value of stored energy, x its fuel value"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default="/tmp/mgclone")
    ap.add_argument("--json", default="")
    ap.add_argument("--tag", default="clone")
    ap.add_argument("--name", default="mpc_clone_wear16")
    ap.add_argument("--made-by", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    {"label": cmd_label, "dagger": cmd_dagger, "fit": cmd_fit, "ppo": cmd_ppo, "mpc": cmd_mpc, "ship": cmd_ship}[
        args.step
    ](args)


if __name__ == "__main__":
    main()
