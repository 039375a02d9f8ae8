"""One picture of the fuel-wear plane on the microgrid's test days: the operator, the 153 rules of
``microgrid_frontier.py``, the commitment MPC with real and with perfect forecasts
(``microgrid_mpc_frontier.py``), the learned controllers (``microgrid_learners.py``) and the
perfect-foresight bound on fuel-equivalent (degradation free).

    python benchmarks/microgrid_frontier_all.py [--rules benchmarks/results/microgrid_frontier.json]
        [--mpc benchmarks/results/microgrid_mpc_frontier.json ...]
        [--learners benchmarks/results/microgrid_learners.json]
        [--bound-saved 19.7] [--plot docs/microgrid_frontier_all.png]
        [--json benchmarks/results/microgrid_frontier_all.json]

Only rows measured on the same days as the rules are drawn: the 32 test days, in one file or in parts
(``--first``/``--days`` of the benchmarks) that together cover them (means weighted by days); the table also says, for
each degradation cap (multiples of the operator's test degradation), the
best rule and the best of every other family within it (on the test days: for the rules this flatters them,
since the frontier benchmark chooses on dev days; the learners and MPCs are not tuned on test days).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", default=str(ROOT / "benchmarks/results/microgrid_frontier.json"))
    ap.add_argument(
        "--mpc", nargs="*", default=sorted(map(str, (ROOT / "benchmarks/results").glob("microgrid_mpc_*.json")))
    )
    ap.add_argument(
        "--learners",
        nargs="*",
        default=sorted(map(str, (ROOT / "benchmarks/results").glob("microgrid_learners*.json"))),
    )
    ap.add_argument(
        "--bound-saved",
        type=float,
        default=19.7,
        help="the perfect-foresight bound's largest fuel-equivalent saving on the test days (%%)",
    )
    ap.add_argument("--caps", type=float, nargs="+", default=[1.0, 1.5, 3.0, 5.0, 10.0])
    ap.add_argument("--plot", default=str(ROOT / "docs/microgrid_frontier_all.png"))
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/microgrid_frontier_all.json"))
    args = ap.parse_args()
    rules = json.loads(Path(args.rules).read_text())
    ref = rules["operator"]["test"]
    test = rules["results"]["test"]
    r_deg, r_feq = np.array(test["degradation"]), np.array(test["fuel_eq"])
    r_saved = 100 * (1 - r_feq / ref["fuel_eq"])
    points = []  # (family, label, degradation, saved, violations, unserved)
    parts: dict[str, list] = {}  # rows by name, with the test days they cover (files may hold parts of the 32)
    for path in args.mpc + args.learners:
        if not Path(path).is_file():
            print(f"# {path}: missing, skipped")
            continue
        d = json.loads(Path(path).read_text())
        first, days = d["args"].get("first", 0), d["args"].get("days")
        for r in d["rows"]:
            if r["name"] in ("operator_rules",) or r["name"].startswith("soc_hysteresis"):
                continue
            parts.setdefault(r["name"], []).append((first, days, r))
    for name, got in parts.items():
        whole = [g for g in got if g[0] == 0 and g[1] == 32]
        got = whole[:1] or got  # a row measured on all 32 days wins over probes of the same name on fewer
        cover = [range(f, f + n) for f, n, _ in got]
        days = [x for rg in cover for x in rg]
        if sorted(days) != list(range(32)):
            print(f"# {name}: measured on test days {sorted(days)[:3]}... ({len(days)}), not the 32: skipped")
            continue
        w = np.array([n for _, n, _ in got], float) / 32
        mean = lambda k: float(sum(wi * r[k] for wi, (_, _, r) in zip(w, got)))  # noqa: E731
        r0 = got[0][2]
        fam = r0.get("family") or (
            "MPC, perfect forecasts" if r0.get("forecast") == "perfect" else "MPC, real forecasts"
        )
        if r0.get("proposal") == "battery_kw":
            fam += ", battery set-point"
        points.append(
            (
                fam,
                name,
                mean("degradation"),
                100 * (1 - mean("fuel_eq_litres") / ref["fuel_eq"]),
                int(sum(r["violations"] for _, _, r in got)),
                mean("unserved_kwh"),
            )
        )
    table = []
    print(f"operator: degradation {ref['degradation']:.2f}, fuel-equivalent {ref['fuel_eq']:.1f} L per test day\n")
    print("| degradation cap (x operator) | best rule (test) | " + " | ".join(sorted({p[0] for p in points})) + " |")
    fams = sorted({p[0] for p in points})
    print("|---|---:|" + "---:|" * len(fams))
    for cap in args.caps:
        lim = cap * ref["degradation"]
        ok = r_deg <= lim
        best_rule = float(r_saved[ok].max()) if ok.any() else None
        row = {"cap": cap, "best_rule": best_rule}
        cells = []
        for f in fams:
            cand = [(p[3], p[1]) for p in points if p[0] == f and p[2] <= lim and p[4] == 0 and p[5] == 0]
            row[f] = max(cand) if cand else None
            cells.append(f"{row[f][0]:.1f}% ({row[f][1]})" if cand else "none")
        table.append(row)
        print(f"| {cap:g} | {'none' if best_rule is None else f'{best_rule:.1f}%'} | " + " | ".join(cells) + " |")
    # soc_hysteresis (the bundled rule, thresholds 0.15 / 0.30) among the rules: who dominates it?
    hyst = [i for i, c in enumerate(rules["candidates"]) if c == ["hysteresis, genset load 1", [0.15, 0.3]]]
    dominating = []
    if hyst:
        h_deg, h_saved = float(r_deg[hyst[0]]), float(r_saved[hyst[0]])
        dominating = [p for p in points if p[3] >= h_saved and p[2] <= h_deg and p[4] == 0 and p[5] == 0]
        print(f"\nsoc_hysteresis 0.15 / 0.30: {h_saved:.2f}% at {h_deg:.2f}; dominated by:")
        for p in sorted(dominating, key=lambda p: -p[3]):
            print(f"  {p[0]}: {p[1]}, {p[3]:.2f}% at {p[2]:.2f}")
        if not dominating:
            print("  none")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps(
            {"args": vars(args), "operator": ref, "points": points, "caps": table, "dominate_hysteresis": dominating},
            indent=1,
        )
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter(r_deg, r_saved, s=12, c="0.6", alpha=0.6, label="153 rules (hysteresis, constant proposals)")
    ax.scatter([ref["degradation"]], [0.0], c="k", marker="*", s=140, label="operator_rules")
    if hyst:
        ax.scatter([h_deg], [h_saved], marker="o", facecolors="none", edgecolors="k", s=70, label="soc_hysteresis")
    ax.axhline(args.bound_saved, color="k", ls="--", lw=1, label=f"perfect-foresight bound ({args.bound_saved:.1f}%)")
    marks = {
        "MPC, perfect forecasts": ("tab:red", "s"),
        "MPC, real forecasts": ("tab:blue", "D"),
        "ARS hysteresis (learned)": ("tab:green", "*"),
    }
    others = itertools.cycle(
        [
            ("tab:green", "^"),
            ("tab:purple", "v"),
            ("tab:orange", "P"),
            ("tab:brown", "X"),
            ("tab:olive", "h"),
            ("tab:cyan", "o"),
            ("tab:pink", "<"),
            ("magenta", ">"),
            ("tab:gray", "d"),
            ("gold", "p"),
        ]
    )
    style = {}
    for f in fams:
        col, mk = style[f] = marks.get(f) or next(others)
        pts = sorted([p for p in points if p[0] == f], key=lambda p: p[2])
        ax.plot([p[2] for p in pts], [p[3] for p in pts], marker=mk, color=col, ms=6, lw=1, label=f)
    if hyst:  # a zoom on soc_hysteresis: what dominates it lies up and to the left of the circle
        ins = ax.inset_axes([0.27, 0.1, 0.28, 0.3])
        near = [p for p in points if abs(p[2] - h_deg) < 0.12 * h_deg and abs(p[3] - h_saved) < 0.6]
        ins.scatter(r_deg, r_saved, s=12, c="0.6", alpha=0.6)
        ins.scatter([h_deg], [h_saved], marker="o", facecolors="none", edgecolors="k", s=70)
        for p in near:
            col, mk = style[p[0]]
            ins.scatter([p[2]], [p[3]], color=col, marker=mk, s=60 if mk == "*" else 30)
        ins.axvline(h_deg, color="0.5", lw=0.7, ls=":")
        ins.axhline(h_saved, color="0.5", lw=0.7, ls=":")
        ins.set_xlim(0.88 * h_deg, 1.12 * h_deg)
        ins.set_ylim(h_saved - 0.5, h_saved + 0.5)
        ins.tick_params(labelsize=6)
        ins.set_title("around soc_hysteresis", fontsize=7)
    for cap in (1.5, 3.0):
        ax.axvline(cap * ref["degradation"], color="0.6", lw=0.8, ls=":")
        ax.text(cap * ref["degradation"], -2.5, f" {cap:g}x", fontsize=7, color="0.4")
    ax.set_ylim(-4, max(22.0, args.bound_saved + 2))  # rules that burn more than the operator are cut off
    ax.set_xscale("log")
    ax.set_xlabel("battery degradation per test day (exact rainflow, cost units)")
    ax.set_ylabel("fuel-equivalent saved vs the operator (%)")
    ax.set_title("microgrid/remote, 32 test days: fuel against battery wear")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower right")
    fig.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
