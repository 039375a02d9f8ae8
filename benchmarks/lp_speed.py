"""Stage LPs per second: HiGHS (opsrl.core.lp.solve, one LP after another on the CPU: a fresh model per LP, and the
warm batch back end) and the basis cache (opsrl.core.lp_cache, warmed on one batch of other LPs of the same kind)
against the batched torch interior point solver (opsrl.core.lp_torch.solve_torch, the whole batch at once), at
batch 1, 64 and 1024.

The LPs are the hydro family's stage LPs with the TS-DDR target rows (case3: 11 rows x 16 columns; bolivia:
112 x 165), at random targets and the first stage's inflows of training scenarios. Both back ends solve the
same LPs; the largest relative difference of their optimal values is reported beside the speed.

``python benchmarks/lp_speed.py`` (one thread; ``--device cuda`` for the torch solver on a GPU; ``--cases``,
``--batches`` to run less; ``--torch-max-batch N`` skips the torch solver above batch N and keeps its earlier
figures from the output file). Writes benchmarks/results/lp_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from opsrl.core.lp import LP, solve
from opsrl.core.lp_cache import BasisCache
from opsrl.registry import load_problem

ROOT = Path(__file__).resolve().parent


def stage_lps(name: str, batch: int, seed: int = 0) -> LP:
    p = load_problem(f"hydro/{name}")
    sc = p.sample(batch, "train", seed, periods=1)
    state = p.initial_state(sc)
    lo, hi = p.target_bounds(state)
    g = torch.Generator().manual_seed(seed)
    target = lo + torch.rand(lo.shape, generator=g, dtype=lo.dtype) * (hi - lo)
    tlp, _ = p.stage_lp(state, sc, 0).with_target(target, p.target_penalty)
    return tlp.lp


def to(lp: LP, device: str) -> LP:
    return LP(
        *(t.to(device) for t in (lp.c, lp.A, lp.row_lo, lp.row_hi, lp.lb, lp.ub)),
        None if lp.const is None else lp.const.to(device),
    )


def timed(fn, min_seconds: float = 1.0, max_reps: int = 50):
    reps, t0 = 0, time.perf_counter()
    while True:
        out = fn()
        reps += 1
        el = time.perf_counter() - t0
        if el >= min_seconds or reps >= max_reps:
            return out, el / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=["case3", "bolivia"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 64, 1024])
    ap.add_argument("--device", default="cpu", help="device of the torch solver")
    ap.add_argument("--torch-max-batch", type=int, default=0, help="skip the torch solver above this batch (0: never)")
    ap.add_argument("--out", default=str(ROOT / "results" / "lp_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    old = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    res = {
        "device": args.device,
        "threads": 1,
        "machine": platform.processor() or platform.machine(),
        "load_average_at_start": os.getloadavg(),
        "cases": {},
    }
    t_all = time.perf_counter()
    for name in args.cases:
        rows = {}
        for B in args.batches:
            lp = stage_lps(name, B)
            h, th = timed(lambda: solve(lp, "highs"))
            _, tf = timed(lambda: solve(lp, "highs", warm=False))
            cache = BasisCache()
            solve(stage_lps(name, B, 2), "basis_cache", cache=cache)  # warm the cache on other LPs of the kind
            before = dict(cache.stats)
            cs, tc = timed(lambda: solve(lp, "basis_cache", cache=cache), max_reps=1)  # its first answer to these
            hits = cache.stats["hits"] - before["hits"]
            rel_c = ((cs.value - h.value).abs() / (1 + h.value.abs())).max().item()
            row = {
                "highs_lps_per_second": B / th,
                "highs_fresh_model_lps_per_second": B / tf,
                "basis_cache_lps_per_second": B / tc,
                "basis_cache_hit_rate": hits / B,
                "basis_cache_bases_held": cache.bases,
                "basis_cache_max_rel_value_difference": rel_c,
                "highs_seconds_per_batch": th,
                "highs_optimal": h.status.count("optimal"),
            }
            if args.torch_max_batch and B > args.torch_max_batch:
                prev = old.get("cases", {}).get(name, {}).get("batches", {}).get(str(B), {})
                kept = {k: v for k, v in prev.items() if k.startswith("torch") or k == "max_rel_value_difference"}
                rows[str(B)] = {**row, **kept, "torch_from_earlier_run": bool(kept)}
                print(f"{name} batch {B}: {row} (torch skipped)", flush=True)
                continue
            dlp = to(lp, args.device)
            solve(to(stage_lps(name, min(B, 4), 1), args.device), "torch")  # warm-up (kernels, allocator)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

            def run_torch():
                s = solve(dlp, "torch")
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                return s

            s, ts = timed(run_torch, max_reps=20 if B < 1024 else 3)
            rel = ((s.value.cpu() - h.value).abs() / (1 + h.value.abs())).max().item()
            rows[str(B)] = {
                **row,
                "torch_lps_per_second": B / ts,
                "torch_seconds_per_batch": ts,
                "torch_iterations": s.info["iterations"],
                "torch_optimal": s.status.count("optimal"),
                "max_rel_value_difference": rel,
            }
            print(
                f"{name} batch {B}: HiGHS {B / th:9.1f} LP/s (fresh models {B / tf:9.1f}), basis cache "
                f"{B / tc:9.1f} LP/s (hit rate {hits / B:.2f}), torch {B / ts:9.1f} LP/s "
                f"({s.info['iterations']} iterations), value difference {rel:.1e}",
                flush=True,
            )
        m, n = stage_lps(name, 1).shape
        res["cases"][name] = {"rows": m, "columns": n, "batches": rows}
    res["load_average_at_end"] = os.getloadavg()
    res["wall_seconds"] = time.perf_counter() - t_all
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(f"wrote {args.out} ({res['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
