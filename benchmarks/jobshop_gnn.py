"""The shipped GNN dispatcher against the dispatching rules on Taillard (and Demirkol) instances.

For each size class: the mean gap (%) to the best-known makespan of every dispatching rule (non-delay),
of the GNN greedy (every instance) and of the GNN best of ``k`` schedules (one greedy, ``k - 1``
sampled; on the first ``--sample-per-class`` instances of each class, 0 = all), with the seconds per
instance of the GNN runs. Every GNN schedule is checked by the independent validator.

    python benchmarks/jobshop_gnn.py --families ta --samples 128 --sample-per-class 2 --sample-max-ops 450
    python benchmarks/jobshop_gnn.py --table benchmarks/results/jobshop_gnn.json benchmarks/results/jobshop_gnn_ta*.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from opsrl.core import rollout
from opsrl.jobshop import JobShop, check, dispatcher, instances, rules, schedules

ROOT = Path(__file__).resolve().parent.parent


def size_classes(family: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for name in instances.names():
        if name.startswith(family) and name[len(family) :].isdigit():
            inst = instances.load(name)
            out.setdefault(f"{inst.jobs}x{len(inst.machine[0])}", []).append(inst)
    return dict(sorted(out.items(), key=lambda kv: (kv[1][0].jobs * len(kv[1][0].machine[0]), kv[0])))


def gap(ms: float, name: str) -> float:
    b = instances.best_known(name)
    return 100.0 * (ms - b) / b


def _valid(insts, start, end, ms) -> int:
    bad = 0
    for inst, s, e, m in zip(insts, start, end, ms):
        bad += bool(check.violations(inst.machine, inst.duration, s, e, float(m)))
    return bad


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=["ta"])
    ap.add_argument("--classes", nargs="*", default=[], help="only these size classes, e.g. 15x15 (default: all)")
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--sample-per-class", type=int, default=2, help="instances per class sampled (0: all)")
    ap.add_argument(
        "--sample-max-ops",
        type=int,
        default=0,
        help="sample only classes with at most this many operations per instance (0: all)",
    )
    ap.add_argument("--max-nodes", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "jobshop_gnn.json")
    ap.add_argument(
        "--table",
        type=Path,
        nargs="+",
        default=[],
        help="print one table from these result files (runs nothing; a class found in several "
        "files is taken from the last one that sampled it)",
    )
    args = ap.parse_args(argv)
    if args.table:
        print(merged_table(args.table))
        return
    torch.set_num_threads(args.threads)
    results = []
    for fam in args.families:
        for cls, insts in size_classes(fam).items():
            if args.classes and cls not in args.classes:
                continue
            names = [i.name for i in insts]
            row: dict = {"family": fam, "class": cls, "instances": names}
            by_rule = rules.schedule_instances(insts)
            row["rules"] = {
                r: sum(gap(v[0], n) for v, n in zip(vals, names)) / len(names) for r, vals in by_rule.items()
            }
            problem = JobShop(insts)
            ac = dispatcher.load(problem, args.weights)
            sc = problem.test_set()
            t0 = time.perf_counter()
            with torch.no_grad():
                final = rollout(problem, ac, sc).final_state
            row["greedy_seconds_per_instance"] = (time.perf_counter() - t0) / len(insts)
            ms = final["makespan"].tolist()
            sch = schedules(final)
            row["greedy_invalid"] = _valid(insts, [s["start"] for s in sch], [s["end"] for s in sch], ms)
            row["greedy_gaps"] = [gap(m, n) for m, n in zip(ms, names)]
            row["greedy"] = sum(row["greedy_gaps"]) / len(names)
            ops = insts[0].operations
            if args.samples > 1 and (not args.sample_max_ops or ops <= args.sample_max_ops):
                k = args.sample_per_class or len(insts)
                sub = JobShop(insts[:k])
                ssc = sub.test_set()
                t0 = time.perf_counter()
                best, s = dispatcher.best_of(
                    sub, dispatcher.load(sub, args.weights), ssc, args.samples, 0, args.max_nodes
                )
                row["sample_seconds_per_instance"] = (time.perf_counter() - t0) / k
                row["sample_instances"] = names[:k]
                row["sample_invalid"] = _valid(insts[:k], s["start"], s["end"], best.tolist())
                row["sample_gaps"] = [gap(m, n) for m, n in zip(best.tolist(), names[:k])]
                row["sample"] = sum(row["sample_gaps"]) / k
                row["greedy_on_sample_subset"] = sum(row["greedy_gaps"][:k]) / k
            results.append(row)
            print(
                json.dumps({k_: v for k_, v in row.items() if not k_.endswith("gaps") and k_ != "instances"}),
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1))
    print(table(results, args.samples))


def merged_table(paths: list[Path]) -> str:
    rows: dict[tuple, dict] = {}
    samples = set()
    for path in paths:
        if not Path(path).is_file():
            raise SystemExit(f"--table: {path} is not a result file of this benchmark (no such file)")
        data = json.loads(Path(path).read_text())
        for r in data["results"]:
            key = (r["family"], r["class"])
            if key not in rows or "sample" in r or "sample" not in rows[key]:
                rows[key] = r
            if "sample" in r:
                samples.add(int(data["args"]["samples"]))
    if len(samples) > 1:
        raise SystemExit(f"the files sample different numbers of schedules: {sorted(samples)}")
    families = list(dict.fromkeys(k[0] for k in rows))

    def order(r):  # as size_classes orders them: by operations per instance, then by name
        jobs, machines = map(int, r["class"].split("x"))
        return families.index(r["family"]), jobs * machines, r["class"]

    results = sorted(rows.values(), key=order)
    return table(results, samples.pop() if samples else 1)


def table(results: list[dict], samples: int) -> str:
    rule_names = list(results[0]["rules"])
    head = ["class", *rule_names, "GNN greedy", "s/inst", f"GNN best of {samples} (n)", "greedy same n", "s/inst"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" + " ---: |" * (len(head) - 1)]
    for fam in dict.fromkeys(r["family"] for r in results):
        rows = [r for r in results if r["family"] == fam]
        for r in rows:
            best_rule = min(r["rules"].values())
            cells = [f"{fam} {r['class']}"] + [f"{r['rules'][x]:.2f}" for x in rule_names]
            g = f"{r['greedy']:.2f}"
            cells += [f"**{g}**" if r["greedy"] < best_rule else g, f"{r['greedy_seconds_per_instance']:.2f}"]
            if "sample" in r:
                cells += [
                    f"{r['sample']:.2f} ({len(r['sample_instances'])})",
                    f"{r['greedy_on_sample_subset']:.2f}",
                    f"{r['sample_seconds_per_instance']:.1f}",
                ]
            else:
                cells += ["", "", ""]
            lines.append("| " + " | ".join(cells) + " |")
        n = sum(len(r["instances"]) for r in rows)
        allr = {x: sum(r["rules"][x] * len(r["instances"]) for r in rows) / n for x in rule_names}
        gall = sum(r["greedy"] * len(r["instances"]) for r in rows) / n
        cells = [f"{fam} all {n}"] + [f"{allr[x]:.2f}" for x in rule_names] + [f"{gall:.2f}", ""]
        sr = [r for r in rows if "sample" in r]
        if sr:
            m = sum(len(r["sample_instances"]) for r in sr)
            cells += [
                f"{sum(r['sample'] * len(r['sample_instances']) for r in sr) / m:.2f} ({m})",
                f"{sum(r['greedy_on_sample_subset'] * len(r['sample_instances']) for r in sr) / m:.2f}",
                "",
            ]
        else:
            cells += ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
