"""VM-rescheduling benchmarks: FR on Medium by MNL, FR against latency under drift, simulator throughput, Large.

Each subcommand writes (merges into) a JSON file under ``benchmarks/results/`` and prints a table:

    python benchmarks/vm_benchmark.py fr --mnl 5 10 25 50 --snapshots 4 --cpsat-seconds 30
    python benchmarks/vm_benchmark.py drift --snapshots 4 --mnl 25
    python benchmarks/vm_benchmark.py throughput --batch 256 --numpy-snapshots 2
    python benchmarks/vm_benchmark.py large --snapshots 2 --cpsat-seconds 60 --samples 16
    python benchmarks/vm_benchmark.py bestspeed --mnl 50 --samples 64 --profile --original f5b3658

All runs use one torch thread; CP-SAT uses ``--workers`` (2). Times are wall seconds per snapshot on this
machine (shared, so they are upper bounds of what the code needs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from opsrl.vm import baselines, cpsat
from opsrl.vm import policy as pol
from opsrl.vm import simulator as sim
from opsrl.vm.problem import build

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _merge(name: str, key: str, value) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    f = RESULTS / name
    data = json.loads(f.read_text()) if f.is_file() else {}
    data[key] = value
    f.write_text(json.dumps(data, indent=1))


def _problem(generator: str, mnl: int, **extra):
    return build({"generator": generator, "mnl": mnl, **extra}, "benchmarks/vm_benchmark.py")


def _timed_plan(problem, policy, sc):
    t0 = time.perf_counter()
    final = pol.plan(problem, policy, sc)
    return final, (time.perf_counter() - t0) / sc.n


def _cpsat_plans(problem, sc, seconds, workers, candidates, destinations, hint_state):
    """CP-SAT per snapshot, warm-started from ``hint_state``'s placement: (final state, seconds, rows)."""
    s0 = problem.initial_state(sc)
    B, T = sc.n, problem.periods
    moved = (hint_state["vm_pm"] != s0["vm_pm"]) | (hint_state["vm_node"] != s0["vm_node"])
    own = sim.own_slot(hint_state)
    pv, ps = -torch.ones(B, T, dtype=torch.long), -torch.ones(B, T, dtype=torch.long)
    secs, rows = [], []
    for b in range(B):
        hint = {int(v): int(own[b, v]) for v in moved[b].nonzero()[:, 0]}
        r = cpsat.solve(
            s0,
            b,
            problem.mnl,
            problem.block,
            problem.objective,
            problem.mem_block,
            seconds,
            workers,
            hint,
            0,
            False,
            candidates,
            destinations,
        )
        for t, (v, s) in enumerate(r.plan[:T]):
            pv[b, t], ps[b, t] = v, s
        secs.append(r.seconds)
        rows.append(
            {
                "status": r.status,
                "model_fr": r.model_fr,
                "bound_fr": r.bound_fr,
                "seconds": r.seconds,
                "unordered": r.unordered,
                "moves": len(r.plan),
            }
        )
        print(
            f"  cpsat snapshot {b}: {r.status} FR {r.model_fr:.4f} bound {r.bound_fr:.4f} {r.seconds:.1f} s", flush=True
        )
    final, _ = sim.apply_plan(s0, pv, ps)
    final.update(plan_vm=pv, plan_slot=ps)
    return final, float(np.mean(secs)), rows


def _row(problem, s0, final, seconds, **extra):
    return {
        "fr": float(problem.fr(final).mean()),
        "fr_per_snapshot": problem.fr(final).tolist(),
        "seconds_per_snapshot": seconds,
        "migrations": float(sim.migrations(final).double().mean()),
        "blocks_gained": float((sim.blocks(final) - sim.blocks(s0)).double().mean()),
        **extra,
    }


# --- FR on Medium by MNL ----------------------------------------------------------------------------
def cmd_fr(a):
    ac = None
    for mnl in a.mnl:
        p = _problem(a.generator, mnl, **({"objective": "multi"} if a.generator == "multi_resource" else {}))
        sc = p.sample(a.snapshots, "test", a.seed)
        s0 = p.initial_state(sc)
        res = {
            "snapshots": a.snapshots,
            "seed": a.seed,
            "initial": {"fr": float(p.fr(s0).mean()), "fr_per_snapshot": p.fr(s0).tolist()},
        }
        if "greedy" in a.methods or "cpsat" in a.methods:
            g, secs = _timed_plan(p, baselines.Greedy(p), sc)
            res["greedy"] = _row(p, s0, g, secs)
        if "ffd" in a.methods:
            f, secs = _timed_plan(p, baselines.FFD(p), sc)
            res["ffd"] = _row(p, s0, f, secs)
        if "gnn" in a.methods or "best" in a.methods:
            ac = ac or pol.load(p, a.weights or None)
            ac.problem = p
            if "gnn" in a.methods:
                t0 = time.perf_counter()
                f = pol.fast_plan(p, ac, sc)
                res[f"{a.tag}_greedy"] = _row(p, s0, f, (time.perf_counter() - t0) / sc.n)
            if "best" in a.methods:
                t0 = time.perf_counter()
                f = pol.best_of(p, ac, sc, a.samples)
                res[f"{a.tag}_best{a.samples}"] = _row(p, s0, f, (time.perf_counter() - t0) / sc.n)
        if "cpsat" in a.methods:
            hint, name = g, f"cpsat_{a.cpsat_seconds:g}s"
            if a.hint == "best":  # warm start from the learned best of K (its moves join the restricted model)
                ac = ac or pol.load(p, a.weights or None)
                hint = pol.best_of(p, ac, sc, a.samples)
                name += f"_hint_best{a.samples}"
            if (a.candidates, a.destinations) != (100, 32):
                name += f"_c{a.candidates}_d{a.destinations}"
            sub = sc.select(torch.arange(min(a.cpsat_snapshots or sc.n, sc.n)))
            hint = {k: v[: sub.n] if isinstance(v, torch.Tensor) and v.dim() > 0 else v for k, v in hint.items()}
            f, secs, rows = _cpsat_plans(p, sub, a.cpsat_seconds, a.workers, a.candidates, a.destinations, hint)
            res[name] = _row(
                p,
                p.initial_state(sub),
                f,
                secs,
                snapshots=rows,
                bound=float(np.mean([r["bound_fr"] for r in rows])),
                n_snapshots=sub.n,
            )
        for k, v in res.items():
            if isinstance(v, dict) and "fr" in v:
                print(
                    f"{a.generator} MNL {mnl:3d} {k:16s} FR {v['fr']:.4f}  {v.get('seconds_per_snapshot', 0):7.2f} s",
                    flush=True,
                )
        name = "vm_fr_medium.json" if a.generator == "medium" else f"vm_fr_{a.generator}.json"
        f = RESULTS / name
        key = f"mnl{mnl}" if a.seed == 0 else f"mnl{mnl}_seed{a.seed}"
        old = json.loads(f.read_text()).get(key, {}) if f.is_file() else {}
        old.update(res)
        _merge(name, key, old)


# --- FR against latency under drift -----------------------------------------------------------------
def cmd_drift(a):
    d = {"arrival_rate": a.arrival_rate, "departure_rate": a.departure_rate, "horizon": max(a.latencies) + 1}
    p = _problem("medium", a.mnl, drift=d)
    sc = p.sample(a.snapshots, "test", 0)
    s0 = p.initial_state(sc)
    plans = {}
    g, secs = _timed_plan(p, baselines.Greedy(p), sc)
    plans["greedy"] = (g, secs)
    ac = pol.load(p)
    plans["gnn_greedy"] = _timed_plan(p, ac, sc)
    t0 = time.perf_counter()
    best = pol.best_of(p, ac, sc, a.samples)
    plans[f"gnn_best{a.samples}"] = (best, (time.perf_counter() - t0) / sc.n)
    for limit in a.cpsat_seconds:
        f, secs, _ = _cpsat_plans(p, sc, limit, a.workers, a.candidates, a.destinations, g)
        plans[f"cpsat_{limit:g}s"] = (f, secs)
    out = {
        "drift": d,
        "snapshots": a.snapshots,
        "mnl": a.mnl,
        "initial_fr": float(p.fr(s0).mean()),
        "latencies": a.latencies,
        "methods": {},
    }
    for name, (final, secs) in plans.items():
        curve = []
        for lat in a.latencies:
            f = p.under_drift(final, sc, torch.full((sc.n,), float(lat)))
            curve.append({"latency": lat, "fr": float(p.fr(f).mean()), "applied": float(f["applied"].double().mean())})
        own = p.under_drift(final, sc, torch.full((sc.n,), float(secs)))
        out["methods"][name] = {
            "seconds_per_snapshot": secs,
            "planned_fr": float(p.fr(final).mean()),
            "fr_at_own_latency": float(p.fr(own).mean()),
            "curve": curve,
        }
        print(
            f"{name:14s} {secs:7.2f} s  planned {p.fr(final).mean():.4f}  at own latency {p.fr(own).mean():.4f}  "
            + " ".join(f"{c['latency']}s:{c['fr']:.4f}" for c in curve),
            flush=True,
        )
    _merge("vm_drift.json", f"mnl{a.mnl}", out)
    _drift_figure(out)


def _drift_figure(out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, m in out["methods"].items():
        lat = [c["latency"] for c in m["curve"]]
        ax.plot(lat, [c["fr"] for c in m["curve"]], marker=".", label=name)
        ax.scatter([max(m["seconds_per_snapshot"], 0.1)], [m["fr_at_own_latency"]], marker="*", s=80)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)
    ax.set_xlabel("latency: seconds between the snapshot and applying the plan")
    ax.set_ylabel("FR after the plan")
    ax.set_title(
        f"Medium, MNL {out['mnl']}, {out['drift']['arrival_rate']:g} arrivals/s, initial FR "
        f"{out['initial_fr']:.3f} (stars: each plan at its own latency)",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    suffix = "" if out["mnl"] == 25 else f"_mnl{out['mnl']}"
    fig.savefig(ROOT / "docs" / "figures" / f"vm_fr_latency{suffix}.png", dpi=120)


# --- simulator throughput -----------------------------------------------------------------------------
def numpy_best_move(free, cap_mask, cpu, mem, dbl, pm, node, movable, block):
    """The straightforward reference: a loop over the VMs, NumPy over the destination slots of each."""
    fc, fm = free
    S = fc.size
    fcs, fms = fc.reshape(-1), fm.reshape(-1)
    tot = fcs[cap_mask].sum()
    best, arg = np.inf, (-1, -1)
    slots = np.arange(S)
    for v in range(len(cpu)):
        if not movable[v]:
            continue
        own = 2 * pm[v] + (0 if dbl[v] else node[v])
        if dbl[v]:
            a, b = fcs[0::2], fcs[1::2]
            am, bm = fms[0::2], fms[1::2]
            h, hm = cpu[v] / 2, mem[v] / 2
            ok = (a >= h) & (b >= h) & (am >= hm) & (bm >= hm) & cap_mask[0::2]
            dd = (np.mod(a - h, block) - np.mod(a, block)) + (np.mod(b - h, block) - np.mod(b, block))
            ok[pm[v]] = False
            src = (
                np.mod(fcs[2 * pm[v]] + h, block)
                - np.mod(fcs[2 * pm[v]], block)
                + np.mod(fcs[2 * pm[v] + 1] + h, block)
                - np.mod(fcs[2 * pm[v] + 1], block)
            )
            cand = np.where(ok, src + dd, np.inf)
            i = int(cand.argmin())
            if cand[i] < best:
                best, arg = cand[i], (v, 2 * i)
        else:
            ok = (fcs >= cpu[v]) & (fms >= mem[v]) & cap_mask
            ok[own] = False
            dd = np.mod(fcs - cpu[v], block) - np.mod(fcs, block)
            src = np.mod(fcs[own] + cpu[v], block) - np.mod(fcs[own], block)
            cand = np.where(ok & (slots >= 0), src + dd, np.inf)
            i = int(cand.argmin())
            if cand[i] < best:
                best, arg = cand[i], (v, i)
    return best / tot, arg


def cmd_throughput(a):
    p = _problem("medium", a.steps)
    sc = p.sample(a.batch, "test", 0)
    s = p.initial_state(sc)
    cands = float((s["vm_mask"].sum(1) * 2 * s["pm_mask"].sum(1)).double().sum())  # per step over the batch
    sim.greedy_moves(s, p.block)  # warm-up
    t0 = time.perf_counter()
    st = s
    for _ in range(a.steps):
        vm, slot, delta = sim.greedy_moves(st, p.block)
        st, _ = p.post_decision(st, torch.stack([vm, slot], 1))
    torch_s = time.perf_counter() - t0
    torch_rate = cands * a.steps / torch_s
    # NumPy loop on the first snapshots of the same batch, the same first greedy step; checked against torch
    n = a.numpy_snapshots
    t0 = time.perf_counter()
    agree = 0
    vm0, slot0, d0 = sim.greedy_moves(s, p.block)
    for b in range(n):
        real = s["vm_mask"][b]
        g = lambda k: s[k][b].numpy()
        fr_d, (v, k) = numpy_best_move(
            (g("free_cpu"), g("free_mem")),
            np.repeat(g("pm_mask"), 2),
            g("vm_cpu")[real.numpy()],
            g("vm_mem")[real.numpy()],
            g("vm_double")[real.numpy()],
            g("vm_pm")[real.numpy()],
            g("vm_node")[real.numpy()],
            g("vm_movable")[real.numpy()],
            p.block,
        )
        agree += abs(fr_d - float(d0[b])) < 1e-6
    np_s = time.perf_counter() - t0
    np_cands = float((s["vm_mask"][:n].sum(1) * 2 * s["pm_mask"][:n].sum(1)).double().sum())
    np_rate = np_cands / np_s
    out = {
        "batch": a.batch,
        "steps": a.steps,
        "candidates_per_step": cands,
        "torch_seconds": torch_s,
        "torch_candidates_per_second": torch_rate,
        "numpy_snapshots": n,
        "numpy_seconds": np_s,
        "numpy_candidates_per_second": np_rate,
        "speedup": torch_rate / np_rate,
        "numpy_agrees_with_torch": f"{agree}/{n}",
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(out, indent=1))
    _merge("vm_throughput.json", "medium", out)


# --- Large with the Medium-trained policy -----------------------------------------------------------
def cmd_large(a):
    args = argparse.Namespace(
        **{**vars(a), "generator": "large", "mnl": [a.mnl_large], "methods": ["greedy", "ffd", "gnn", "best", "cpsat"]}
    )
    cmd_fr(args)


def cmd_table(a):
    """Markdown tables of the stored results."""
    f = RESULTS / a.file
    data = json.loads(f.read_text())
    names = []
    for v in data.values():
        names += [k for k, x in v.items() if isinstance(x, dict) and "fr" in x and k not in names]
    print("| MNL | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key, v in data.items():
        cells = []
        for n in names:
            x = v.get(n)
            if not x:
                cells.append("")
                continue
            t = x.get("seconds_per_snapshot")
            cells.append(f"{x['fr']:.4f}" + (f" ({t:.2f} s)" if t else ""))
        print(f"| {key[3:]} | " + " | ".join(cells) + " |")


# --- best of K: the fast planner against the straightforward path -----------------------------------
_ORIGINAL = """
import sys, time, torch
torch.set_num_threads(1)
from opsrl.vm import policy as pol
from opsrl.vm.problem import build
gen, out = sys.argv[1], sys.argv[6]
mnl, n, k, seed = (int(v) for v in sys.argv[2:6])
p = build({"generator": gen, "mnl": mnl}, "benchmarks/vm_benchmark.py")
sc = p.sample(n, "test", 0, periods=p.periods)
ac = pol.load(p)
t0 = time.perf_counter()
f = pol.best_of(p, ac, sc, k, seed)
sec = (time.perf_counter() - t0) / sc.n
torch.save({"seconds": sec, "fr": p.fr(f).tolist(), "plan_vm": f["plan_vm"], "plan_slot": f["plan_slot"]}, out)
"""


def _original_best_of(a):
    """pol.best_of of the package as it was at git revision ``a.original`` (exported to a temporary folder and
    run in a subprocess, one thread), on the same snapshots, seed and K."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", a.original, "opsrl"], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", d], input=tar.stdout, check=True)
        res = Path(d) / "res.pt"
        subprocess.run(
            [
                sys.executable,
                "-c",
                _ORIGINAL,
                a.generator,
                str(a.mnl),
                str(a.snapshots),
                str(a.samples),
                str(a.seed),
                str(res),
            ],
            check=True,
            cwd=d,
            env={**__import__("os").environ, "PYTHONPATH": d},
        )
        r = torch.load(res)
    return {"seconds_per_snapshot": r["seconds"], "fr": r["fr"]}, r


def cmd_bestspeed(a):
    """The same Medium snapshot, seed and K through pol.best_of_reference and pol.best_of: seconds per snapshot,
    the FR reached and whether all K plans are the same; ``--profile`` prints cProfile's top entries of each."""
    import cProfile
    import io
    import pstats

    p = _problem(a.generator, a.mnl)
    sc = p.sample(a.snapshots, "test", 0, periods=p.periods)
    ac = pol.load(p, a.weights or None)
    out, finals = {}, {}
    for name, fn in (("reference", pol.best_of_reference), ("fast", pol.best_of)):
        prof = cProfile.Profile() if a.profile else None
        if prof:
            prof.enable()
        t0, c0 = time.perf_counter(), time.process_time()
        finals[name] = fn(p, ac, sc, a.samples, a.seed)
        sec = (time.perf_counter() - t0) / sc.n
        cpu = (time.process_time() - c0) / sc.n
        if prof:
            prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
            print(f"--- {name} ---\n" + "\n".join(buf.getvalue().splitlines()[6:]))
        out[name] = {"seconds_per_snapshot": sec, "cpu_seconds_per_snapshot": cpu, "fr": p.fr(finals[name]).tolist()}
        print(f"{name:9s} {sec:7.2f} s per snapshot ({cpu:.2f} s CPU)  FR {out[name]['fr']}", flush=True)
    if a.original:
        out["original"], finals["original"] = _original_best_of(a)
        print(
            f"original  {out['original']['seconds_per_snapshot']:7.2f} s per snapshot  FR {out['original']['fr']} "
            f"(opsrl at {a.original})",
            flush=True,
        )
    same = all(torch.equal(finals[n][k], finals["fast"][k]) for n in finals for k in ("plan_vm", "plan_slot"))
    out.update(
        same_plans=same,
        speedup=out["reference"]["seconds_per_snapshot"] / out["fast"]["seconds_per_snapshot"],
        snapshots=sc.n,
        samples=a.samples,
        mnl=a.mnl,
        seed=a.seed,
        threads=1,
        original_rev=a.original,
        load_average=__import__("os").getloadavg(),
        weights=a.weights or str(pol.WEIGHTS.relative_to(ROOT)),
        layers=len(ac.net.layers),
        width=ac.config["width"],
    )
    if a.original:
        out["speedup_over_original"] = out["original"]["seconds_per_snapshot"] / out["fast"]["seconds_per_snapshot"]
    print(
        f"same best plans: {same}; speed-up {out['speedup']:.2f}x over the reference path"
        + (f", {out['speedup_over_original']:.2f}x over the original code" if a.original else "")
    )
    _merge("vm_bestspeed.json", f"{a.generator}_mnl{a.mnl}_k{a.samples}" + (f"_{a.tag}" if a.tag else ""), out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--snapshots", type=int, default=4)
    common.add_argument("--samples", type=int, default=64)
    common.add_argument("--cpsat-seconds", type=float, default=30.0)
    common.add_argument("--workers", type=int, default=2)
    common.add_argument("--candidates", type=int, default=100)
    common.add_argument("--destinations", type=int, default=32)
    common.add_argument("--weights", default="", help="two-stage weights ('': the shipped ones)")
    common.add_argument("--tag", default="gnn", help="result key prefix of the learned policy's rows")
    common.add_argument("--hint", default="greedy", choices=("greedy", "best"), help="CP-SAT warm start")
    common.add_argument("--cpsat-snapshots", type=int, default=0, help="CP-SAT on the first that many (0: all)")
    f = sub.add_parser("fr", parents=[common])
    f.add_argument("--mnl", type=int, nargs="+", default=[5, 10, 25, 50])
    f.add_argument("--generator", default="medium")
    f.add_argument("--seed", type=int, default=0, help="seed of the test snapshots (0: the tables' own)")
    f.add_argument("--methods", nargs="+", default=["greedy", "ffd", "gnn", "best", "cpsat"])
    d = sub.add_parser("drift", parents=[common])
    d.add_argument("--mnl", type=int, default=25)
    d.add_argument("--arrival-rate", type=float, default=0.2)
    d.add_argument("--departure-rate", type=float, default=1e-4)
    d.add_argument("--latencies", type=float, nargs="+", default=[0, 1, 2, 5, 10, 20, 30, 60, 120])
    d.set_defaults(cpsat_seconds=None)
    t = sub.add_parser("throughput")
    t.add_argument("--batch", type=int, default=256)
    t.add_argument("--steps", type=int, default=5)
    t.add_argument("--numpy-snapshots", type=int, default=2)
    l = sub.add_parser("large", parents=[common])
    l.add_argument("--mnl-large", type=int, default=50)
    bs = sub.add_parser("bestspeed")
    bs.add_argument("--generator", default="medium")
    bs.add_argument("--mnl", type=int, default=50)
    bs.add_argument("--samples", type=int, default=64)
    bs.add_argument("--snapshots", type=int, default=1)
    bs.add_argument("--seed", type=int, default=0)
    bs.add_argument("--profile", action="store_true")
    bs.add_argument("--original", default="", help="also time best_of of the package at this git revision")
    bs.add_argument("--weights", default="", help="two-stage weights ('': the shipped ones)")
    bs.add_argument("--tag", default="", help="suffix of the result key")
    tb = sub.add_parser("table")
    tb.add_argument("--file", default="vm_fr_medium.json")
    a = ap.parse_args(argv)
    if a.cmd == "drift" and a.cpsat_seconds is None:
        a.cpsat_seconds = [5.0, 20.0, 60.0]
    elif a.cmd == "drift" and not isinstance(a.cpsat_seconds, list):
        a.cpsat_seconds = [a.cpsat_seconds]
    torch.set_num_threads(1)
    {
        "fr": cmd_fr,
        "drift": cmd_drift,
        "throughput": cmd_throughput,
        "large": cmd_large,
        "table": cmd_table,
        "bestspeed": cmd_bestspeed,
    }[a.cmd](a)


if __name__ == "__main__":
    main()
