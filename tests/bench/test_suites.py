"""The per-family benchmark suites: every quick variant runs into one store, its numbers meet the references
that are known independently, and the report of that store marks bounds, pairs solvers, draws the
performance profiles and the quality-against-time charts, and renders in a real headless browser.

The quick suites take about 2 to 3 minutes of one core together (CP-SAT's time limits included), once per
module.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import pytest

from opsrl.bench.report import write_report
from opsrl.bench.store import ResultsStore
from opsrl.bench.sweep import bundled_sweeps, load_sweep, run_sweep

SUITES = [
    "jobshop_taillard",
    "vm_medium",
    "microgrid_controllers",
    "hydro_cases",
    "lotsizing_published",
    "inventory_networks",
]

# published optima (Fisher and Thompson 1963; Lawrence 1984 la01-la05, proven optimal in the literature)
FT06 = 55
LA_10X5 = {"la01": 666, "la02": 655, "la03": 597, "la04": 590, "la05": 593}


@pytest.fixture(scope="module")
def suites(tmp_path_factory):
    """One store holding one run of every quick suite; records by (problem, solver label)."""
    tmp = tmp_path_factory.mktemp("suites")
    mp = pytest.MonkeyPatch()
    mp.setenv("OPSRL_CACHE", str(tmp / "cache"))
    store = ResultsStore(tmp / "store.sqlite")
    try:
        for name in SUITES:
            sweep = load_sweep(f"{name}_quick")
            result = run_sweep(sweep, store, progress=False, cell_progress=False, log=lambda m: None)
            assert result.complete and not result.failed, (name, result.failed)
    finally:
        mp.undo()
    recs = {(r["problem"], r["solver"]): r for r in store.records()}
    return store, recs


def test_every_family_has_a_quick_and_a_full_suite(capsys):
    from opsrl import cli

    names = bundled_sweeps()
    assert cli.main(["bench", "--list"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    for name in SUITES:
        assert name in names and f"{name}_quick" in names
        assert {name, f"{name}_quick"} <= listed
        full, quick = load_sweep(name), load_sweep(f"{name}_quick")
        assert full.cells and quick.cells and not quick.skipped


def test_jobshop_cpsat_reaches_the_published_optima(suites):
    _, recs = suites
    # (cpsat_0.2s is there for the time chart; its result may depend on the machine's load, so it is not checked)
    assert recs[("jobshop/ft06", "cpsat_5s")]["test_cost"] == FT06
    la = recs[("jobshop/la_10x5", "cpsat_5s")]
    assert {r["instance"]: r["makespan"] for r in la["jobshop"]["instances"]} == LA_10X5
    assert la["test_cost"] == pytest.approx(sum(LA_10X5.values()) / 5, abs=1e-9)
    assert la["reference"]["kind"] == "optimum" and la["reference"]["value"] == pytest.approx(620.2)
    for (problem, _label), r in recs.items():  # no schedule beats the optimum
        if problem == "jobshop/la_10x5":
            for row in r["jobshop"]["instances"]:
                assert row["makespan"] >= LA_10X5[row["instance"]]


def test_vm_cpsat_is_proven_optimal_on_the_tiny_instance(suites):
    _, recs = suites
    cp = recs[("vm/tiny", "vm_cpsat_full_4s")]
    assert cp["vm"]["optimal"] == 8
    best = cp["vm"]["per_snapshot"]["final_fr"]
    for row, fr in zip(cp["vm"]["snapshots"], best):
        assert fr == pytest.approx(row["bound_fr"], abs=1e-6)
    for (problem, _label), r in recs.items():  # no plan of any solver goes below the proven optimum
        if problem == "vm/tiny":
            for fr, opt in zip(r["vm"]["per_snapshot"]["final_fr"], best):
                assert fr >= opt - 1e-6


def test_bounds_lie_below_every_policy_on_every_scenario(suites):
    _, recs = suites
    bounds = {
        "microgrid/remote": "perfect_foresight",
        "hydro/case3": "hindsight_lp",
        "lotsizing/i15_m5": "hindsight_2",
    }
    for problem, bound in bounds.items():
        b = recs[(problem, bound)]["test"]["per_scenario"]
        others = [r for (p, s), r in recs.items() if p == problem and s != bound]
        assert len(others) >= 4
        for r in others:
            x = r["test"]["per_scenario"]
            n = min(len(x), len(b))
            assert all(xi >= bi - 1e-6 * abs(bi) for xi, bi in zip(x[:n], b[:n])), (problem, r["solver"])
    # the microgrid's perfect-foresight solver is the family's reference, on the same days
    mg = recs[("microgrid/remote", "perfect_foresight")]
    assert mg["test_cost"] == pytest.approx(mg["reference"]["value"], rel=1e-9)


def test_hydro_references(suites):
    _, recs = suites
    sdp = recs[("hydro/case3", "hydro_sdp")]
    assert sdp["reference"]["kind"] == "optimum"
    # SDDP's lower bound of the expected cost lies below the SDP optimum (on a grid) and near it
    bound = recs[("hydro/case3", "sddp_20it")]["info"]["bound"]
    assert bound <= sdp["reference"]["value"] * (1 + 1e-6)
    assert bound >= sdp["reference"]["value"] * (1 - 0.01)


def test_inventory_references(suites):
    _, recs = suites
    ech = recs[("inventory/serial_K2", "echelon_stock")]
    # echelon base stock at the exact Clark-Scarf levels is optimal on a serial system: within 3 standard errors
    assert ech["reference"]["kind"] == "optimum"
    assert abs(ech["test_cost"] - ech["reference"]["value"]) <= 3 * ech["test_stderr"]
    for problem in ("inventory/serial_K2", "inventory/warehouse_n3"):  # the hindsight LP is about 0 here
        assert abs(recs[(problem, "hindsight_lp")]["test_cost"]) < 1e-6


@pytest.fixture(scope="module")
def report(suites, tmp_path_factory):
    store, _ = suites
    out = tmp_path_factory.mktemp("suites_report")
    write_report(store, out, title="opsrl quick suites")
    return out, json.loads((out / "report.json").read_text())


def _section(rep, problem):
    return next(s for s in rep["problems"] if s["problem"] == problem)


def test_report_marks_bounds_and_never_ranks_them(report):
    _, rep = report
    declared_bounds = {"hindsight_lp", "perfect_foresight", "hindsight_mip"}
    for s in rep["problems"]:
        assert all(row["method"] not in declared_bounds for row in s["solvers"]), s["problem"]
        assert all(row["bound"] for row in s["bounds"])
        assert s["best"] == s["solvers"][0]["solver"]
    # trivially loose bounds: shown, flagged, never the reference, no gap against them
    for problem in ("inventory/serial_K2", "inventory/warehouse_n3", "lotsizing/i15_m5"):
        s = _section(rep, problem)
        (b,) = s["bounds"]
        assert b["loose"] and b["gap_pct"] is None
        assert s["reference"] is None or s["reference"].get("solver") != b["solver"]
    wh = _section(rep, "inventory/warehouse_n3")
    assert wh["reference"]["kind"] == "lower_bound" and wh["reference"]["value"] > 5  # the store-level bound
    assert all(row["gap_pct"] > 0 for row in wh["solvers"])
    # lot sizing: no usable reference, so no percentage gap anywhere; differences to the best solver instead
    ls = _section(rep, "lotsizing/i15_m5")
    assert ls["reference"] is None and all(row["gap_pct"] is None for row in ls["solvers"])
    assert ls["solvers"][0]["difference"] == 0.0
    # a bound that is a tight reference: the microgrid's perfect foresight and hydro's optimum
    mg = _section(rep, "microgrid/remote")
    assert mg["reference"]["kind"] == "lower_bound" and all(row["gap_pct"] > 0 for row in mg["solvers"])
    assert _section(rep, "hydro/case3")["reference"]["kind"] == "optimum"
    # VM: the metric is the final fragment rate (positive), the reference CP-SAT's proven bound of the full model
    tiny = _section(rep, "vm/tiny")
    assert tiny["metric"]["name"] == "final fragment rate"
    assert "CP-SAT" in tiny["reference"]["source"] and tiny["solvers"][0]["gap_pct"] == pytest.approx(0, abs=1e-4)
    assert all(row["mean"] > 0 for row in tiny["solvers"])


def test_report_fixed_instances_and_single_instances(report):
    _, rep = report
    ft06 = _section(rep, "jobshop/ft06")
    assert ft06["fixed_instances"] and all(row["deterministic"] for row in ft06["solvers"])
    assert all(row["ci_half_width"] == 0 for row in ft06["solvers"])
    la = _section(rep, "jobshop/la_10x5")
    assert la["fixed_instances"] and set(la["instances"]) == set(LA_10X5)
    for row in la["solvers"]:  # the per-instance mean gap, recomputed from the per-instance makespans
        gaps = [100 * (la["instances"][i][row["solver"]] - opt) / opt for i, opt in LA_10X5.items()]
        assert row["mean_instance_gap_pct"] == pytest.approx(sum(gaps) / 5, rel=1e-9, abs=1e-9)


def test_report_paired_differences(report, suites):
    _, rep = report
    _, recs = suites
    for s in rep["problems"]:
        k = len(s["solvers"]) + len(s["bounds"])
        assert len(s["paired"]) == k * (k - 1) // 2, s["problem"]
    # one pair by hand: hydro, myopic - SDP policy on the same 64 scenarios
    s = _section(rep, "hydro/case3")
    a = recs[("hydro/case3", "myopic")]["test"]["per_scenario"]
    b = recs[("hydro/case3", "hydro_sdp")]["test"]["per_scenario"]
    d = [x - y for x, y in zip(a, b)]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    from scipy import stats

    p = next(p for p in s["paired"] if {p["a"], p["b"]} == {"myopic", "hydro_sdp"})
    sign = 1 if p["a"] == "myopic" else -1
    assert p["scenarios"] == 64
    assert sign * p["mean_difference"] == pytest.approx(mean, rel=1e-9)
    assert p["ci_half_width"] == pytest.approx(stats.t.ppf(0.975, 63) * sd / 8, rel=1e-9)
    assert p["a_better" if sign < 0 else "b_better"] == sum(x > 0 for x in d)


def test_report_profiles_wins_and_time_charts(report):
    out, rep = report
    assert set(rep["profiles"]) == {"jobshop", "vm", "microgrid", "hydro", "lotsizing", "inventory"}
    prof = rep["profiles"]["jobshop"]
    assert prof["instances"] == 6  # ft06 and la01-la05
    assert all(r == 1.0 for r in prof["ratios"]["cpsat_5s"])  # the optimum everywhere
    assert rep["wins"]["jobshop"]["cpsat_5s"] == 6
    page = (out / "report.html").read_text()
    assert page.count("quality against time</figcaption>") == len(rep["problems"])
    assert page.count("performance profile</figcaption>") == 6
    assert page.count('<tr class="bound">') == sum(len(s["bounds"]) for s in rep["problems"])


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="needs a chromium browser (apt-get install chromium)")
def test_report_renders_in_headless_chromium_with_every_image_loaded(report, tmp_path):
    out, rep = report
    page = (out / "report.html").read_text()
    n_img = len(re.findall(r"<img ", page))
    assert n_img >= 2 * len(rep["problems"]) + 6
    # the page has no script of its own; a copy gets one that counts the images that decoded
    probe = (
        "<script>window.addEventListener('load',()=>{const im=[...document.images];"
        "document.body.setAttribute('data-images',im.length+':'+im.filter(i=>i.complete&&i.naturalWidth>0).length)"
        "})</script></body>"
    )
    copy = tmp_path / "probe.html"
    copy.write_text(page.replace("</body>", probe))
    args = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    dom = subprocess.run(
        [*args, "--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    m = re.search(r'data-images="(\d+):(\d+)"', dom)
    assert m, "the page did not finish loading in chromium"
    assert int(m.group(1)) == n_img and int(m.group(2)) == n_img
    shot = tmp_path / "report.png"
    subprocess.run(
        [*args, "--hide-scrollbars", "--window-size=1200,1600", f"--screenshot={shot}", (out / "report.html").as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
