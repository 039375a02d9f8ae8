"""Train the shipped lot-sizing policy (``lotsizing_learned``): one item-machine network for the six sizes.

1. ``clone``: fit :class:`opsrl.lotsizing.learned.ItemMachinePolicy` to the rolling MIP's decisions on
   training scenarios (``benchmarks/lotsizing_mip_runs.py`` writes them), all sizes at once;
2. ``dagger`` (the first ``--dagger`` iterations): the rolling MIP labels states visited by the *network*
   (DAgger, Ross et al. 2011): a clone of the planner's own trajectories never sees the states its own
   mistakes lead to, and drifts;
3. ``pi``: approximate policy iteration (:mod:`opsrl.algos.rollout_pi`): states visited by the current
   network on fresh training scenarios are labelled with their best candidate (the network's greedy action,
   "keep every setup", the cover rule, samples of the network, ``--flips`` one-machine changes of its greedy
   action where it is least sure and, in the first ``--mip-candidate``
   iterations, the rolling MIP's action in that state) by rollouts of the network itself on shared demand
   paths (common random numbers, sequential halving); the network is refitted to all labels so far; the
   network with the least dev cost averaged over sizes (relative to the cover rule) is kept. With
   ``--window`` only the newest labels are fitted, so the MIP's labels age out. With ``--hard`` part of each
   iteration's scenarios are the ones, out of a larger pool, where the network does worst against the cover
   rule: a network stuck in a bad regime (items left out of stock for the whole episode) rarely visits those
   states on random draws, so their labels would otherwise be missing.

Every stage writes a checkpoint (``benchmarks/results/lotsizing_learned/``); a restart resumes after the
last finished one. The curve (dev cost of every size after each stage) goes to ``curve.json``.

    python benchmarks/lotsizing_learned.py --iterations 12 --states 512 --mip-candidate 3
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from opsrl.algos import rollout_pi as rpi
from opsrl.core import Scenarios, evaluate, rollout
from opsrl.lotsizing import mip
from opsrl.lotsizing.learned import ItemMachinePolicy
from opsrl.lotsizing.rules import CoverRule, search_cover
from opsrl.registry import load_problem

OUT = Path(__file__).parent / "results" / "lotsizing_learned"
SIZES = ["i15_m5", "i20_m10", "i25_m10", "i25_m15", "i30_m10", "i30_m15"]


def packed(d: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """MIP label file -> (x [N, I + M + 1], y [N, M])."""
    T, n, I = d["inventory"].shape
    t = torch.arange(T, dtype=torch.float32).view(T, 1, 1).expand(T, n, 1)
    x = torch.cat([d["inventory"].float(), d["setup"].float(), t], -1).reshape(T * n, -1)
    return x, d["action"].reshape(T * n, -1)


class Bound:
    """The shared network as a policy of one problem."""

    def __init__(self, net: ItemMachinePolicy, problem):
        self.net, self.problem = net, problem
        self.D, self.n = problem.M, problem.K

    def _on(self):
        if self.net.problem is not self.problem:
            self.net.bind(self.problem)
        return self.net

    def __call__(self, state, t):
        return self._on()(state, t)

    def sample(self, state, t, k, gen):
        return self._on().sample(state, t, k, gen)


def flips(base: Bound, k: int):
    """``k`` candidates per state that change one machine of the network's greedy action to its second
    choice: the machines whose two best logits are closest (the network's closest calls)."""

    def fn(state, t):
        logits = base._on().logits(state, t)  # [B, M, I + 1]
        top = logits.topk(2, -1)
        greedy, alt = top.indices[..., 0], top.indices[..., 1]
        margin = top.values[..., 0] - top.values[..., 1]  # a second choice the mask forbids: about 1e9
        j = min(k, greedy.shape[1])
        ms = margin.topk(j, -1, largest=False).indices  # [B, j]
        cands = greedy.unsqueeze(1).repeat(1, j, 1)  # [B, j, M]
        cands.scatter_(2, ms.unsqueeze(-1), alt.gather(1, ms).unsqueeze(-1))
        return cands

    return fn


def fit(net, data, steps, lr, seed, batch=256, log=print):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 10)
    net.train()
    for s in range(steps):
        loss = 0.0
        for p, x, y in data:
            net.bind(p)
            j = torch.randint(x.shape[0], (min(batch, x.shape[0]),), generator=g)
            logp = torch.log_softmax(net.masked_logits(x[j]), -1)
            loss = loss - logp.gather(2, y[j].unsqueeze(-1)).squeeze(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if s % 200 == 0 or s == steps - 1:
            log(f"  fit step {s}: loss {float(loss.detach()) / len(data):.4f}")
    net.eval()


def dev_costs(net, probs, devs):
    out = {}
    with torch.no_grad():
        for name, p in probs.items():
            out[name] = evaluate(p, Bound(net, p), devs[name]).mean
    return out


def _args(curve: dict) -> str:
    """The options of every (re)start of a run, as command lines (those that differ from the defaults)."""
    keep = (
        "sizes",
        "iterations",
        "states",
        "horizon",
        "paths",
        "halving",
        "samples",
        "flips",
        "mip_candidate",
        "dagger",
        "dagger_states",
        "window",
        "hard",
        "pool",
        "clone_steps",
        "fit_steps",
        "batch",
        "minutes",
        "width",
        "layers",
    )
    runs = [" ".join(f"--{k.replace('_', '-')} {r[k]}" for k in keep if k in r) for r in curve.get("runs", [])]
    return "; then ".join(runs)


def ship(a) -> None:
    """The best network and how it was made, where ``lotsizing_learned`` reads them."""
    import shutil

    from opsrl.lotsizing.learned import DATA, WEIGHTS, plant_key

    curve = json.loads((a.out / "curve.json").read_text())
    stages = curve["stages"]
    rel = [sum(s["dev"][n] / curve["rule_dev"][n] for n in s["dev"]) / len(s["dev"]) for s in stages]
    best = min(range(len(stages)), key=rel.__getitem__)
    target, plant = WEIGHTS, {}
    if len(a.sizes) == 1:  # a network of one plant: found by the plant's fingerprint
        target = DATA / f"learned_{a.sizes[0]}.pt"
        plant = {"plant": plant_key(load_problem(f"lotsizing/{a.sizes[0]}"))}
    shutil.copyfile(a.out / "best.pt", target)
    meta = {
        **plant,
        "width": a.width,
        "layers": a.layers,
        "sizes": list(stages[0]["dev"]),
        "stage": stages[best]["stage"],
        "dev_cost": stages[best]["dev"],
        "cover_rule_dev_cost": curve["rule_dev"],
        "train_seconds": sum(s["seconds"] for s in stages[: best + 1]),
        "command": "python benchmarks/lotsizing_mip_runs.py --label-scenarios 24 --phase labels; "
        "python benchmarks/lotsizing_learned.py " + (a.command or _args(curve)),
    }
    target.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"shipped {stages[best]['stage']} to {target}")


def main() -> None:  # noqa: C901 (one script, its stages in order)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=SIZES)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--clone-steps", type=int, default=2000)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--states", type=int, default=512, help="states labelled per size and iteration")
    ap.add_argument("--periods", type=int, default=16, help="periods the states of an iteration are taken at")
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--paths", type=int, default=8)
    ap.add_argument("--halving", type=int, default=1)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument(
        "--flips", type=int, default=4, help="candidates that change one machine of the greedy action (closest calls)"
    )
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument(
        "--mip-candidate",
        type=int,
        default=0,
        help="iterations (from the first) in which the rolling MIP's action is also a candidate (0: never)",
    )
    ap.add_argument(
        "--dagger",
        type=int,
        default=0,
        help="iterations (from the first) labelled by the rolling MIP instead of rollouts",
    )
    ap.add_argument(
        "--dagger-states",
        type=int,
        default=0,
        help="states labelled per size in a DAgger iteration (0: --states); the MIP's labels cost more than the "
        "rollouts' on the network",
    )
    ap.add_argument(
        "--window",
        type=int,
        default=0,
        help="fit to the newest this many labels per size (0: all so far); the MIP's labels age out, so the "
        "rollouts' labels can lead the network past the MIP",
    )
    ap.add_argument(
        "--hard",
        type=float,
        default=0.0,
        help="share of each iteration's scenarios taken where the network does worst against the cover rule "
        "(cost minus the rule's, on a pool of --pool times as many); 0: all drawn at random",
    )
    ap.add_argument("--pool", type=int, default=8, help="with --hard: the pool's size, in scenarios per one drawn")
    ap.add_argument("--fit-steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=128, help="labels per size in a minibatch")
    ap.add_argument("--dev", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--minutes", type=float, default=0.0, help="start no iteration after this many minutes (0: no limit)"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--labels", type=Path, default=OUT, help="folder of the MIP label files")
    ap.add_argument("--out", type=Path, default=OUT, help="folder of the checkpoints, curve and log")
    ap.add_argument(
        "--ship",
        action="store_true",
        help="train nothing: copy the best network to opsrl/lotsizing/data/ (learned.pt, or learned_<size>.pt "
        "for one size) with its JSON",
    )
    ap.add_argument("--command", default="", help="with --ship: the training command's arguments, for the JSON")
    a = ap.parse_args()
    for key in ("dagger", "dagger_states", "window", "mip_candidate", "flips", "minutes"):
        if getattr(a, key) < 0:
            ap.error(f"--{key.replace('_', '-')} must be >= 0 (0: off); got {getattr(a, key)}")
    if not 0 <= a.hard <= 1:
        ap.error(f"--hard must be a share from 0 to 1; got {a.hard}")
    if a.pool < 1:
        ap.error(f"--pool must be >= 1; got {a.pool}")
    if a.ship:
        ship(a)
        return
    out = a.out
    torch.set_num_threads(a.threads)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    log_file = (out / "train.log").open("a")

    def log(msg):
        line = f"[{time.perf_counter() - t_start:7.0f} s] {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    probs = {n: load_problem(f"lotsizing/{n}") for n in a.sizes}
    devs = {n: p.sample(a.dev, "dev", a.seed) for n, p in probs.items()}
    rules = {}
    for n, p in probs.items():
        best, _ = search_cover(p, p.sample(256, "dev", a.seed))
        rules[n] = CoverRule(p, best["low"], best["high"])
    rule_dev = {n: evaluate(p, rules[n], devs[n]).mean for n, p in probs.items()}
    log(f"cover rule dev costs {json.dumps({k: round(v, 1) for k, v in rule_dev.items()})}")
    curve_path = out / "curve.json"
    curve = json.loads(curve_path.read_text()) if curve_path.exists() else {"rule_dev": rule_dev, "stages": []}
    opts = {k: " ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in vars(a).items()}
    curve.setdefault("runs", []).append(opts)  # every (re)start's options

    def score(c):  # dev cost relative to the cover rule, averaged over sizes
        return sum(c[n] / rule_dev[n] for n in c) / len(c)

    torch.manual_seed(a.seed)
    net = ItemMachinePolicy(None, a.width, a.layers)
    labels = {}
    for n in probs:
        d = torch.load(a.labels / f"{n}_mip_labels.pt")
        labels[n] = list(packed(d))
    ck = out / "clone.pt"
    if ck.exists():
        net.load_state_dict(torch.load(ck))
        net.eval()
    else:
        t0 = time.perf_counter()
        fit(net, [(probs[n], *labels[n]) for n in probs], a.clone_steps, 3e-3, a.seed, a.batch, log=log)
        torch.save(net.state_dict(), ck)
        c = dev_costs(net, probs, devs)
        curve["stages"].append({"stage": "clone", "dev": c, "seconds": time.perf_counter() - t0})
        curve_path.write_text(json.dumps(curve, indent=1))
        log(f"clone: dev {json.dumps({k: round(v, 1) for k, v in c.items()})} score {score(c):.3f}")
    best_net, best_score = copy.deepcopy(net), score(curve["stages"][0]["dev"]) if curve["stages"] else 9e9
    for s in curve["stages"][1:]:
        best_score = min(best_score, score(s["dev"]))
    if (out / "best.pt").exists():
        best_net.load_state_dict(torch.load(out / "best.pt"))
    done = len(curve["stages"]) - 1
    if done and (out / f"{curve['stages'][-1]['stage']}.pt").exists():
        net.load_state_dict(torch.load(out / f"{curve['stages'][-1]['stage']}.pt"))
        labels = torch.load(out / "labels.pt")
    g = torch.Generator().manual_seed(a.seed + 5)
    for it in range(done + 1, a.iterations + 1):
        if a.minutes and time.perf_counter() - t_start > 60 * a.minutes:
            log(f"time budget of {a.minutes:g} minutes spent: no iteration {it}")
            break
        t0 = time.perf_counter()
        net.eval()
        for n, p in probs.items():
            T = p.periods
            P = min(a.periods, T)
            states = a.dagger_states if it <= a.dagger and a.dagger_states else a.states
            N = max(1, -(-states // P))
            base = Bound(net, p)
            keep = lambda s, t: s["setup"].argmax(-1).unsqueeze(1)  # noqa: E731
            planner = mip.RollingMIP(p, 8, 1.0)  # the DAgger teacher, and a candidate in the first iterations
            teachers = [rules[n]] + ([planner] if it <= a.mip_candidate else [])
            extra = [keep] + ([flips(base, a.flips)] if a.flips else [])
            cands = rpi.candidate_fn(p, [base, *teachers], extra, base, a.samples, a.seed + it)
            sc = p.sample(N, "train", a.seed * 1009 + it)
            nh = round(N * a.hard) if it > a.dagger else 0
            if nh:  # hard scenarios: where the network loses most against the cover rule (a frozen regime)
                pool = p.sample(N * a.pool, "train", a.seed * 1009 + it + 500_000)
                with torch.no_grad():
                    excess = rollout(p, base, pool).costs.sum(1) - rollout(p, rules[n], pool).costs.sum(1)
                hard = excess.topk(nh).indices
                sc = Scenarios(
                    {k: torch.cat([v[: N - nh], pool.data[k][hard]]) for k, v in sc.data.items()},
                    sc.split,
                    sc.seed,
                    sc.periods,
                    dict(sc.meta),
                )
                worst, mean = excess[hard].mean(), excess.mean()
                log(f"iteration {it}: {n} {nh} hard scenarios, cost over the rule's {worst:.0f} (pool {mean:.0f})")
            with torch.no_grad():
                traj = rollout(p, base, sc, record=True)
            xs, ys = [], []
            for t in sorted(torch.randperm(T, generator=g)[:P].tolist()):
                st = traj.states[t]
                if it <= a.dagger:
                    y = planner(st, t)
                else:
                    y = rpi.label_states(
                        p, base, st, t, cands, a.horizon, a.paths, a.halving, a.seed * 31 + it, a.chunk
                    )
                xs.append(net.bind(p).features(st, t))
                ys.append(y)
            x, y = torch.cat(xs), torch.cat(ys)
            w = -a.window if a.window else 0  # a sliding window: the newest labels only
            labels[n][0] = torch.cat([labels[n][0], x])[w:]
            labels[n][1] = torch.cat([labels[n][1], y])[w:]
            by = " by the MIP" if it <= a.dagger else ""
            log(f"iteration {it}: {n} labelled {x.shape[0]} states{by} ({time.perf_counter() - t0:.0f} s)")
        fit(net, [(probs[n], *labels[n]) for n in probs], a.fit_steps, 1e-3, a.seed + it, a.batch, log=log)
        c = dev_costs(net, probs, devs)
        sc_ = score(c)
        if sc_ < best_score:
            best_score, best_net = sc_, copy.deepcopy(net)
            torch.save(best_net.state_dict(), out / "best.pt")
        stage = f"dagger_{it}" if it <= a.dagger else f"pi_{it}"
        torch.save(net.state_dict(), out / f"{stage}.pt")
        torch.save(labels, out / "labels.pt")
        curve["stages"].append({"stage": stage, "dev": c, "seconds": time.perf_counter() - t0})
        curve_path.write_text(json.dumps(curve, indent=1))
        dev = json.dumps({k: round(v, 1) for k, v in c.items()})
        log(f"iteration {it}: dev {dev} score {sc_:.3f} (best {best_score:.3f})")


if __name__ == "__main__":
    main()
