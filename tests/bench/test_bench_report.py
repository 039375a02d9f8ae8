"""The report: every number recomputed by hand from the store's rows, every problem and solver present,
a self-contained page, the family's picture hook and the generic trajectory picture."""

from __future__ import annotations

import base64
import html
import json
import math
import re
import shutil
from collections import defaultdict

import pytest
from bench_helpers import PROBLEM_SET, raw_rows
from scipy import stats

from opsrl import cli
from opsrl.bench.store import ResultsStore


@pytest.fixture(scope="module")
def report_store(swept, tmp_path_factory):
    """The swept store, plus a rerun of one cell by hand, plus a problem variant without a reference."""
    path = swept[0]
    tmp = tmp_path_factory.mktemp("report")
    store_path = tmp / "store.sqlite"
    shutil.copy(path, store_path)
    store = ResultsStore(store_path)
    # `opsrl run` of a cell that the sweep already holds: the report must count the latest run only
    rec = next(
        r
        for r in store.records()
        if r["solver"] == "base_stock_6" and r["seed"] == 1 and r["problem"] == "inventory/lost_sales_p4_L1"
    )
    rec = {k: v for k, v in rec.items() if k != "id"}
    rec["test_cost"] += 0.5
    store.append(rec)
    # with an ordering cost the family knows no optimum: gaps are to the best solver in the report
    args = [
        "bench",
        "--problem",
        "inventory/lost_sales_p4_L1",
        "--solver",
        "base_stock",
        "--set",
        "level=6",
        "--seeds",
        "0,1",
        "--store",
        str(store_path),
        "-q",
        "--problem-set",
        "ordering_cost=1.0",
    ]
    for k, v in PROBLEM_SET.items():
        args += ["--problem-set", f"{k}={v}"]
    assert cli.main(args) == 0
    return store_path


def _by_hand(store_path):
    """Sections recomputed from raw rows: latest row per cell, grouped by problem configuration and solver."""
    latest = {}
    for _rid, _problem, _solver, _seed, key, rec in raw_rows(store_path):
        latest[key] = json.loads(rec)
    groups = defaultdict(lambda: defaultdict(list))
    for rec in latest.values():
        groups[(rec["problem"], rec["cell"]["problem_hash"])][rec["solver"]].append(rec)
    out = {}
    for (problem, phash), solvers in groups.items():
        rows = {}
        for solver, recs in solvers.items():
            x = [r["test_cost"] for r in recs]
            k = len(x)
            m = sum(x) / k
            se_test = sum(r["test_stderr"] for r in recs) / k
            z = stats.norm.ppf(0.975)
            if k == 1:
                half = z * se_test
            else:
                sd = math.sqrt(sum((v - m) ** 2 for v in x) / (k - 1))
                half = math.sqrt((stats.t.ppf(0.975, k - 1) * sd / math.sqrt(k)) ** 2 + (z * se_test) ** 2)
            rows[solver] = {"mean": m, "half": half, "recs": recs, "train": sum(r["train_seconds"] for r in recs) / k}
        refs = {json.dumps(r["reference"], sort_keys=True) for recs in solvers.values() for r in recs}
        assert len(refs) == 1
        ref = json.loads(refs.pop())
        # without a reference (ordering cost: no known optimum) there is no gap: the difference to the best solver
        best = min(r["mean"] for r in rows.values())
        for r in rows.values():
            if ref:
                r["gap"] = 100 * (r["mean"] - ref["value"]) / abs(ref["value"])
                r["gap_half"] = 100 * r["half"] / abs(ref["value"])
                r["diff"] = r["mean"] - ref["value"]
            else:
                r["gap"] = r["gap_half"] = None
                r["diff"] = r["mean"] - best
        ref_value = ref["value"] if ref else None
        out[(problem, phash)] = {"rows": rows, "ref": ref, "ref_value": ref_value}
    return out


def test_report_numbers_equal_the_hand_computation(report_store, tmp_path):
    out = tmp_path / "rep"
    assert cli.main(["report", "--store", str(report_store), "--out", str(out), "--no-pictures"]) == 0
    rep = json.loads((out / "report.json").read_text())
    hand = _by_hand(report_store)
    assert len(rep["problems"]) == len(hand) == 3
    assert rep["runs"] == sum(len(r["recs"]) for h in hand.values() for r in h["rows"].values()) == 14
    titles = [p["title"] for p in rep["problems"]]
    assert sum(t.startswith("inventory/lost_sales_p4_L1 (configuration ") for t in titles) == 2
    for section in rep["problems"]:
        matches = [
            h
            for (p, ph), h in hand.items()
            if p == section["problem"] and (section["title"] == p or ph[:8] in section["title"])
        ]
        assert len(matches) == 1
        h = matches[0]
        if h["ref"]:
            assert section["reference"]["kind"] == "optimum"
            assert section["reference"]["value"] == pytest.approx(h["ref"]["value"], rel=1e-12)
        else:  # no reference: none is made up from the best solver, and nothing is called a gap
            assert section["reference"] is None
        assert {s["solver"] for s in section["solvers"]} == set(h["rows"])
        means = [s["mean"] for s in section["solvers"]]
        assert means == sorted(means) and section["best"] == section["solvers"][0]["solver"]
        for s in section["solvers"]:
            r = h["rows"][s["solver"]]
            assert s["runs"] == len(r["recs"])
            assert s["mean"] == pytest.approx(r["mean"], rel=1e-12)
            assert s["ci_half_width"] == pytest.approx(r["half"], rel=1e-9)
            # every cost here is >= 0 (inventory costs): the interval's lower end is cut at 0
            assert s["ci_low"] == pytest.approx(max(0.0, r["mean"] - r["half"]), rel=1e-9, abs=1e-12)
            if r["gap"] is None:
                assert s["gap_pct"] is None and s["gap_ci_half_width_pct"] is None
            else:
                assert s["gap_pct"] == pytest.approx(r["gap"], rel=1e-9, abs=1e-12)
                assert s["gap_ci_half_width_pct"] == pytest.approx(r["gap_half"], rel=1e-9)
            assert s["difference"] == pytest.approx(r["diff"], rel=1e-9, abs=1e-12)
            assert s["train_seconds"] == pytest.approx(r["train"], rel=1e-12)
    # the rerun counted, not the sweep's run of that cell
    p4 = next(h for (p, ph), h in hand.items() if p == "inventory/lost_sales_p4_L1" and h["ref"])
    rerun = [r for r in p4["rows"]["base_stock_6"]["recs"] if r["seed"] == 1][0]
    swept_cost = [
        json.loads(rec)["test_cost"]
        for _, p, s, seed, _, rec in raw_rows(report_store)
        if p == "inventory/lost_sales_p4_L1" and s == "base_stock_6" and seed == 1
    ]
    assert rerun["test_cost"] == max(swept_cost) == pytest.approx(min(swept_cost) + 0.5)

    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for (problem, _), h in hand.items():
        assert f"## {problem}" in md
        for solver, r in h["rows"].items():
            row = next(line for line in md.splitlines() if f"| {solver} |" in line and f"{r['mean']:.4f}" in line)
            assert f"[{max(0.0, r['mean'] - r['half']):.4f}, {r['mean'] + r['half']:.4f}]" in row  # cut at 0
            assert (
                f"{r['gap']:.2f} ± {r['gap_half']:.2f}" in row if r["gap"] is not None else f"{r['diff']:+.4g}" in row
            )
            assert re.search(rf"<td>{re.escape(html.escape(solver))}</td>.*?<td class=\"n\">{r['mean']:.4f}</td>", page)


def test_report_page_is_self_contained_with_charts_and_pictures(report_store, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    import opsrl.inventory

    calls = []

    def picture(problem, record):
        calls.append((problem.name, problem.test_scenarios, record["solver"], record["seed"]))
        fig = Figure(figsize=(3, 2))
        fig.subplots().plot([0, 1], [1, 0])
        return fig

    hand = _by_hand(report_store)
    out = tmp_path / "with_hook"
    monkeypatch.setattr(opsrl.inventory, "picture", picture, raising=False)
    assert cli.main(["report", "--store", str(report_store), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    best = []
    for h in hand.values():
        name, row = min(h["rows"].items(), key=lambda kv: (kv[1]["mean"], kv[0]))
        run = min(row["recs"], key=lambda r: (r["test_cost"], r["seed"]))
        best.append((run["problem"], 64, name, run["seed"]))
    assert sorted(calls) == sorted(best)  # the hook got each problem (with its overrides) and its best run
    assert page.count("inventory picture of the best solver") == 3

    monkeypatch.delattr(opsrl.inventory, "picture")
    out = tmp_path / "generic"
    assert cli.main(["report", "--store", str(report_store), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert page.count("trajectory of the best solver") == 3
    for (problem, _), h in hand.items():
        assert html.escape(problem) in page
        for solver in h["rows"]:
            assert f"<td>{html.escape(solver)}</td>" in page
    images = re.findall(r'<img[^>]*src="([^"]+)"', page)
    # per problem a quality-against-time chart and a picture; a gap chart and learning curves (HDPO) on the two
    # swept problems (the third has one solver and no reference: nothing to draw a gap of); one performance
    # profile for the inventory problem set
    assert len(images) == 3 * 2 + 2 * 2 + 1
    assert page.count("quality against time</figcaption>") == 3 and page.count("performance profile</figcaption>") == 1
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<script" not in page and "<link" not in page and "http://" not in page and "https://" not in page
    assert page.count("learning curves</figcaption>") == 2


def test_report_of_a_missing_or_empty_store_is_one_clear_error(tmp_path, capsys):
    assert cli.main(["report", "--store", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no results store" in err and not (tmp_path / "none.sqlite").exists()
    ResultsStore(tmp_path / "empty.sqlite").check_writable()
    assert cli.main(["report", "--store", str(tmp_path / "empty.sqlite"), "--out", str(tmp_path / "o")]) == 2
    assert "holds no runs" in capsys.readouterr().err


def test_report_filters_by_sweep_and_problem(report_store, tmp_path, capsys):
    out = tmp_path / "filtered"
    assert (
        cli.main(["report", "--store", str(report_store), "--out", str(out), "--no-pictures", "--sweep", "test_sweep"])
        == 0
    )
    rep = json.loads((out / "report.json").read_text())
    assert [p["title"] for p in rep["problems"]] == ["inventory/lost_sales_p4_L1", "inventory/lost_sales_p9_L2"]
    assert rep["runs"] == 12
    assert (
        cli.main(
            [
                "report",
                "--store",
                str(report_store),
                "--out",
                str(out),
                "--no-pictures",
                "--problem",
                "inventory/lost_sales_p9_L2",
            ]
        )
        == 0
    )
    rep = json.loads((out / "report.json").read_text())
    assert [p["title"] for p in rep["problems"]] == ["inventory/lost_sales_p9_L2"] and rep["runs"] == 6
    assert cli.main(["report", "--store", str(report_store), "--out", str(out), "--sweep", "nope"]) == 2
    assert "no runs of the sweep(s) nope" in capsys.readouterr().err


def test_interval_of_few_runs_respects_non_negative_costs(tmp_path):
    """Two runs 4.0 and 12.0 (test s.e. 0.1 each): the Student interval by hand is
    8 +- sqrt((12.706 * 4)**2 + (1.96 * 0.1)**2) = [-42.8, 58.8]; costs are never negative here, so the
    report shows [0, 58.8] and says why, and that two runs make a wide interval."""
    from opsrl.bench.report import summarize as build_sections

    def rec(seed, cost):
        return {
            "id": seed + 1,
            "problem": "p",
            "solver": "s",
            "seed": seed,
            "method": "m",
            "family": "inventory",
            "test_cost": cost,
            "test_stderr": 0.1,
            "test": {"n": 100, "scenarios_hash": "h"},
            "reference": {"kind": "optimum", "value": 4.0},
            "train_seconds": 1.0,
            "eval_seconds": 1.0,
            "cell": {"key": f"p|s|{seed}|c", "problem_hash": "ph", "solver_hash": "sh"},
            "curve": [],
        }

    half = math.hypot(stats.t.ppf(0.975, 1) * math.sqrt(32.0) / math.sqrt(2), stats.norm.ppf(0.975) * 0.1)
    assert 8.0 - half < 0
    (section,) = build_sections([rec(0, 4.0), rec(1, 12.0)])
    (row,) = section.rows
    assert row.half == pytest.approx(half, rel=1e-12)
    assert row.low == 0.0 and row.as_dict()["ci_high"] == pytest.approx(8.0 + half)
    assert any("cut at 0" in w for w in section.warnings)
    assert any("only 2 runs" in w for w in section.warnings)
    negative = dict(rec(1, 12.0), test_cost=-1.0)  # a cost below zero: no cut
    (section,) = build_sections([rec(0, 4.0), negative])
    assert section.rows[0].low == pytest.approx(section.rows[0].mean - section.rows[0].half)


def test_bounds_and_oracles_are_shown_apart_and_the_tightest_reference_is_used():
    """Hand-made microgrid runs on 4 scenarios: a controller, a perfect-forecast MPC (an oracle: it reads the
    future) and the perfect-foresight bound. The oracle and the bound are never ranked; the bound (known per
    scenario) is the reference, so the gap is paired: by hand, d = (10, 12, 14, 16) - (8, 9, 10, 11)."""
    from opsrl.bench.report import summarize as build_sections

    def rec(i, solver, method, per, options=None):
        return {
            "id": i,
            "problem": "microgrid/remote",
            "solver": solver,
            "seed": 0,
            "method": method,
            "family": "microgrid",
            "test_cost": sum(per) / len(per),
            "test_stderr": 1.0,
            "test": {"n": len(per), "scenarios_hash": "h", "per_scenario": per},
            "reference": None,
            "train_seconds": 1.0,
            "eval_seconds": 1.0,
            "config": {"solver": {"method": method, "options": options or {}}},
            "cell": {"key": f"k{i}", "problem_hash": "ph", "solver_hash": f"s{i}"},
            "curve": [],
        }

    (section,) = build_sections(
        [
            rec(1, "controller", "mpc", [10.0, 12.0, 14.0, 16.0]),
            rec(2, "oracle_mpc", "mpc_commit", [7.0, 8.0, 9.0, 10.0], {"forecast": "perfect"}),
            rec(3, "perfect_foresight", "perfect_foresight", [8.0, 9.0, 10.0, 11.0]),
        ]
    )
    assert [r.label for r in section.rows] == ["controller"] and section.best.label == "controller"
    oracle, bound = sorted(section.bounds, key=lambda r: r.label)
    assert oracle.oracle and oracle.gap is None and bound.bound == "perfect-foresight bound"
    assert section.reference["solver"] == "perfect_foresight" and section.reference["value"] == 9.5
    d = [2.0, 3.0, 4.0, 5.0]
    sd = math.sqrt(sum((x - 3.5) ** 2 for x in d) / 3)
    row = section.rows[0]
    assert row.gap == pytest.approx(100 * 3.5 / 9.5, rel=1e-12)
    assert row.gap_half == pytest.approx(100 * stats.t.ppf(0.975, 3) * sd / 2 / 9.5, rel=1e-9)
    pairs = {(p.a, p.b): p for p in section.paired}
    assert len(pairs) == 3 and pairs[("controller", "perfect_foresight")].a_better == 0
