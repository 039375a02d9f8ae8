"""Train the learned job-shop dispatcher shipped as ``opsrl/jobshop/data/gnn_dispatcher.pt``.

Two phases on random Taillard-generator instances (processing times 1..99), one network throughout:

1. imitation (optional, ``--bc-iters``): cross-entropy of the GNN's masked logits against the choices of
   the best of several dispatching rules on each instance (``--bc-rules``), and the critic fitted to that
   schedule's makespan to go: a cheap warm start of both networks;
2. self-labelling (``--sl-minutes``; Corsini et al. 2024): sample ``--sl-samples`` schedules per instance
   from the current policy, imitate the shortest;
3. PPO (:mod:`opsrl.algos.ppo`, ``horizon = "finite"``, ``gamma = 1``, reward = minus the increase of
   the partial makespan), ``--minutes`` per size; its best-on-dev weights are kept only if they beat the
   weights it started from.

Phases 2 and 3 run for each ``--sizes`` entry in turn.

The weights best on the dev instances of the last size are saved with a JSON record (arguments, curve,
timings, versions) next to them, and the learning curve is plotted to ``docs/jobshop_gnn_training.png``.

Reproduce the shipped weights (2-core CPU, one thread): imitation and self-labelling on 10x10, then
self-labelling continued on 15x15 from those weights (``--init``; the first run's record is kept under
``init`` in the JSON):

    python benchmarks/jobshop_train_gnn.py --sizes 10 --bc-iters 60 --sl-minutes 12 --minutes 6 --seed 0
    python benchmarks/jobshop_train_gnn.py --init opsrl/jobshop/data/gnn_dispatcher.pt --sizes 15 --bc-iters 0 \
        --sl-minutes 26 --minutes 0 --sl-batch 4 --sl-samples 32 --sl-lr 3e-4 --sl-minibatch 512 --eval-every 4 --seed 0

Both were run with time limits, so their iteration counts depend on the machine's speed (81 and 61
self-labelling iterations, best on dev at 75 and 36; the PPO phase of the first was discarded). The
iteration-capped equivalents (same random streams, same selected weights; not re-run) are
``--sizes 10 --bc-iters 60 --sl-minutes 999 --sl-iters 75 --minutes 0 --seed 0`` and the second
command with ``--sl-minutes 999 --sl-iters 36``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from opsrl.algos import ppo
from opsrl.core import SolveContext, evaluate, validate
from opsrl.jobshop import JobShop
from opsrl.jobshop.rules import DispatchRule
from opsrl.nn.gnn_dispatch import GraphActorCritic

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "opsrl" / "jobshop" / "data" / "gnn_dispatcher.pt"


def generated(n: int, m: int) -> JobShop:
    return JobShop(generator_cfg={"kind": "taillard", "jobs": n, "machines": m, "low": 1, "high": 99})


def imitate(
    ac: GraphActorCritic, problem: JobShop, rules: list[str], iters: int, batch: int, lr: float, seed: int, log
) -> list[dict]:
    """Behaviour cloning of the best of ``rules`` on each instance (its choice among the allowed jobs), and
    the critic fitted to that schedule's makespan to go (in units of the batch's mean makespan, as PPO's
    automatic cost scale), on fresh instances each iteration."""
    opt = torch.optim.Adam(ac.parameters(), lr=lr)
    teachers = [DispatchRule(r) for r in rules]
    curve = []
    for it in range(iters):
        sc = problem.sample(batch, "train", seed * 100003 + 50000 + it)
        with torch.no_grad():
            ms = []
            for rule in teachers:  # each rule's makespan, then the best rule per instance
                state = problem.initial_state(sc)
                for t in range(problem.periods):
                    state, _ = problem.transition(problem.post_decision(state, rule(state, t))[0], sc, t)
                ms.append(state["makespan"])
            ms = torch.stack(ms)
            choice = ms.argmin(0)
            final = ms.min(0).values
            scale = float(final.mean())
            state = problem.initial_state(sc)
            feats, acts, togo = [], [], []
            for t in range(problem.periods):
                a = torch.stack([r(state, t) for r in teachers]).gather(0, choice[None])[0]
                keep = state["mask"].sum(1) >= 2
                if keep.any():
                    f = ac.encode(state, t)
                    feats.append({k: v[keep] for k, v in f.items()})
                    acts.append(a[keep])
                    togo.append(-(final - state["makespan"])[keep] / scale)
                state, _ = problem.transition(problem.post_decision(state, a)[0], sc, t)
        f = {k: torch.cat([d[k] for d in feats]) for k in feats[0]}
        a, v_target = torch.cat(acts), torch.cat(togo)
        perm = torch.randperm(a.shape[0])
        losses = []
        for i in range(0, a.shape[0], 2048):
            j = perm[i : i + 2048]
            dist, v = ac.evaluate({k: x[j] for k, x in f.items()})
            bc = -dist.log_prob(a[j][:, None].float()).mean()
            loss = bc + 0.5 * ((v - v_target[j]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ac.parameters(), 1.0)
            opt.step()
            losses.append(bc.item())
        curve.append({"bc_iteration": it + 1, "bc_loss": sum(losses) / len(losses), "teacher_makespan": scale})
        if (it + 1) % 10 == 0:
            log(f"imitation {it + 1}/{iters}: loss {curve[-1]['bc_loss']:.4f}")
    return curve


def self_label(
    ac: GraphActorCritic,
    problem: JobShop,
    iters: int,
    batch: int,
    k: int,
    lr: float,
    seed: int,
    log,
    dev=None,
    time_limit: float = 0.0,
    minibatch: int = 2048,
    dev_start: float = float("inf"),
    eval_every: int = 5,
) -> list[dict]:
    """Self-labelling (Corsini et al. 2024): sample ``k`` schedules per instance from the current policy (the
    first greedy), keep the shortest, and take cross-entropy steps (``minibatch`` decisions each) towards its
    choices. Keeps the parameters best on ``dev`` (greedy), the starting ones if none beats ``dev_start``.

    The ``batch * k`` rollouts are one batch of graphs: one network call per dispatching step."""
    import copy

    opt = torch.optim.Adam(ac.parameters(), lr=lr)
    curve, t0 = [], time.perf_counter()
    best_dev, best_state = dev_start, copy.deepcopy(ac.state_dict())
    for it in range(iters):
        sc = problem.sample(batch, "train", seed * 100003 + 90000 + it)
        rep = sc.select(torch.arange(batch).repeat_interleave(k))
        first = torch.arange(batch * k) % k == 0
        with torch.no_grad():
            state, acts = problem.initial_state(rep), []
            for t in range(problem.periods):
                d = ac.head.distribution(ac.decision_logits(state, t))
                a = torch.where(first[:, None], d.mode(), d.sample())
                acts.append(a)
                state, _ = problem.transition(problem.post_decision(state, ac.to_action(a))[0], rep, t)
            ms = state["makespan"].reshape(batch, k)
            rows = torch.arange(batch) * k + ms.argmin(1)
            state, feats, labels = problem.initial_state(sc), [], []
            for t in range(problem.periods):
                a = acts[t][rows]
                keep = state["mask"].sum(1) >= 2
                if keep.any():
                    f = ac.encode(state, t)
                    feats.append({key: v[keep] for key, v in f.items()})
                    labels.append(a[keep])
                state, _ = problem.transition(problem.post_decision(state, ac.to_action(a))[0], sc, t)
        f = {key: torch.cat([d_[key] for d_ in feats]) for key in feats[0]}
        y = torch.cat(labels)
        perm = torch.randperm(y.shape[0])
        losses = []
        for i in range(0, y.shape[0], minibatch):
            j = perm[i : i + minibatch]
            dist, _ = ac.evaluate({key: v[j] for key, v in f.items()})
            loss = -dist.log_prob(y[j]).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ac.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
        entry = {
            "sl_iteration": it + 1,
            "seconds": time.perf_counter() - t0,
            "loss": sum(losses) / len(losses),
            "greedy_train": float(ms[:, 0].mean()),
            "best_of_k_train": float(ms.min(1).values.mean()),
        }
        done = it + 1 == iters or bool(time_limit and time.perf_counter() - t0 > time_limit)
        if dev is not None and ((it + 1) % eval_every == 0 or it + 1 == iters):
            entry["dev_cost"] = evaluate(problem, ac, dev).mean
            if entry["dev_cost"] < best_dev:
                best_dev, best_state = entry["dev_cost"], copy.deepcopy(ac.state_dict())
            log(
                f"self-labelling {it + 1}: dev {entry['dev_cost']:.2f} (best {best_dev:.2f}), "
                f"loss {entry['loss']:.3f}, "
                f"train greedy {entry['greedy_train']:.1f} best-of-{k} {entry['best_of_k_train']:.1f}"
            )
        curve.append(entry)
        if done:
            break
    if dev is not None:
        ac.load_state_dict(best_state)
    return curve


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[6, 10], help="n for n x n training instances, in turn")
    ap.add_argument("--minutes", type=float, nargs="+", default=[5], help="PPO minutes per size (0: no PPO)")
    ap.add_argument("--sl-minutes", type=float, nargs="+", default=[0], help="self-labelling minutes per size")
    ap.add_argument("--sl-batch", type=int, default=8, help="instances per self-labelling iteration")
    ap.add_argument("--sl-samples", type=int, default=16, help="schedules sampled per instance (self-labelling)")
    ap.add_argument("--sl-lr", type=float, default=None, help="self-labelling learning rate (default: --bc-lr)")
    ap.add_argument("--sl-minibatch", type=int, default=2048, help="decisions per self-labelling gradient step")
    ap.add_argument(
        "--sl-iters",
        type=int,
        default=100000,
        help="self-labelling iteration cap per size (with a large --sl-minutes: an exact rerun)",
    )
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from these weights (network size from the JSON next to them) instead of from scratch",
    )
    ap.add_argument("--iterations", type=int, default=100000, help="PPO iteration cap per size")
    ap.add_argument("--batch", type=int, default=32, help="instances per PPO rollout")
    ap.add_argument("--lr", type=float, default=3e-4, help="PPO learning rate")
    ap.add_argument("--bc-lr", type=float, default=1e-3, help="imitation learning rate")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--minibatches", type=int, default=4)
    ap.add_argument("--entropy", type=float, default=0.0)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--bc-iters", type=int, default=60, help="imitation iterations before PPO (0: none)")
    ap.add_argument(
        "--bc-rules",
        nargs="+",
        default=["fdd_mwkr", "mwkr", "mopnr", "spt", "fifo"],
        help="imitate the best of these rules on each instance",
    )
    ap.add_argument("--dev", type=int, default=64, help="dev instances per size")
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "jobshop_gnn_training.png")
    args = ap.parse_args(argv)
    if len(args.minutes) != len(args.sizes) or len(args.sl_minutes) != len(args.sizes):
        ap.error("--minutes and --sl-minutes need one value per --sizes entry")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)
    first = generated(args.sizes[0], args.sizes[0])
    init_record = None
    if args.init:
        meta = args.init.with_suffix(".json")
        init_record = json.loads(meta.read_text()) if meta.is_file() else None
        if init_record:
            args.width, args.layers = init_record["network"]["width"], init_record["network"]["layers"]
    ac = GraphActorCritic(first, args.width, args.layers)
    if args.init:
        ac.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=True))
    record = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "network": ac.config,
        "phases": [],
    }
    if init_record is not None:  # the run that produced the starting weights (its own "init" nests further back)
        record["init"] = init_record
    if args.bc_iters:
        curve = imitate(ac, first, args.bc_rules, args.bc_iters, args.batch, args.bc_lr, args.seed, log)
        record["phases"].append(
            {
                "phase": "imitation",
                "rules": args.bc_rules,
                "size": args.sizes[0],
                "curve": curve,
                "seconds": time.perf_counter() - t0,
            }
        )
    for size, minutes, sl_minutes in zip(args.sizes, args.minutes, args.sl_minutes):
        problem = generated(size, size)
        ac.problem, ac.graph_fn = problem, problem.policy_graph
        dev = problem.sample(args.dev, "dev", args.seed)
        rules = {r: evaluate(problem, DispatchRule(r), dev).mean for r in ("mwkr", "fdd_mwkr", "spt", "mopnr")}
        start = evaluate(problem, ac, dev).mean
        log(f"{size}x{size}: dev rules {rules}; network greedy {start:.2f}")
        if sl_minutes:
            ts = time.perf_counter()
            curve = self_label(
                ac,
                problem,
                args.sl_iters,
                args.sl_batch,
                args.sl_samples,
                args.sl_lr if args.sl_lr is not None else args.bc_lr,
                args.seed + size,
                log,
                dev,
                60.0 * sl_minutes,
                args.sl_minibatch,
                start,
                args.eval_every,
            )
            record["phases"].append(
                {
                    "phase": "self_labelling",
                    "size": size,
                    "dev_rules": rules,
                    "dev_start": start,
                    "curve": curve,
                    "seconds": time.perf_counter() - ts,
                    "iterations": len(curve),
                    "best_dev_cost": min([start] + [e["dev_cost"] for e in curve if "dev_cost" in e]),
                }
            )
        if minutes:
            o = validate(
                {
                    "iterations": args.iterations,
                    "batch_size": args.batch,
                    "train_scenarios": 20000,
                    "dev_scenarios": args.dev,
                    "eval_every": args.eval_every,
                    "lr": args.lr,
                    "epochs": args.epochs,
                    "minibatches": args.minibatches,
                    "entropy_coef": args.entropy,
                    "time_limit": 60.0 * minutes,
                    "lr_decay": False,
                    "horizon": "finite",
                },
                ppo.OPTIONS,
                "train",
            )
            ts = time.perf_counter()
            before = evaluate(problem, ac, dev).mean
            pre = {k: v.clone() for k, v in ac.state_dict().items()}
            ac, curve = ppo.train(problem, ac, o, SolveContext(seed=args.seed + size, progress=True, log=log))
            best = min(curve, key=lambda e: e["dev_cost"])
            record["phases"].append(
                {
                    "phase": "ppo",
                    "size": size,
                    "dev_rules": rules,
                    "dev_start": before,
                    "curve": curve,
                    "best_dev_cost": best["dev_cost"],
                    "seconds": time.perf_counter() - ts,
                }
            )
            log(
                f"{size}x{size}: PPO best dev {best['dev_cost']:.2f} at iteration {best['iteration']} "
                f"(from {before:.2f})"
            )
            if best["dev_cost"] > before:  # PPO did not help: keep what the earlier phases reached
                log("PPO did not improve on the dev instances; keeping the weights it started from")
                ac.load_state_dict(pre)
                record["phases"][-1]["kept"] = "weights before PPO"
    record["seconds"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ac.state_dict(), args.out)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    log(f"saved {args.out} ({args.out.stat().st_size} bytes)")
    plot(record, args.plot)


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(p["size"] for p in record["phases"] if p["phase"] != "imitation"))
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 3.8), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        offset, rules = 0.0, {}
        for p, c in (
            (p, {"self_labelling": "C0", "ppo": "C3"}[p["phase"]])
            for p in record["phases"]
            if p["phase"] != "imitation" and p["size"] == size
        ):
            pts = [(offset + e["seconds"] / 60, e["dev_cost"]) for e in p["curve"] if "dev_cost" in e]
            ax.plot(
                [0 + offset] + [x for x, _ in pts],
                [p["dev_start"]] + [y for _, y in pts],
                color=c,
                label=f"GNN greedy, {p['phase'].replace('_', '-')}",
            )
            offset += p["seconds"] / 60
            rules = p["dev_rules"]
        for i, (r, v) in enumerate(rules.items()):
            ax.axhline(v, ls="--", lw=0.8, color=f"C{i + 4}", label=r)
        ax.set_title(f"{size}x{size} dev instances (after imitation)")
        ax.set_xlabel("minutes of training")
        ax.set_ylabel("mean makespan")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1:])
