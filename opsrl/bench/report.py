"""The solver-comparison report of a results store: one self-contained HTML page and a Markdown summary.

Per problem (a problem name with one configuration and test set; see :mod:`opsrl.bench.cells`), read
through what the problem's family declares (:class:`~opsrl.core.Family`: its metric, its bound solvers,
the bounds its runs carry, its instances):

* a table of solvers ranked by the family's metric, then the bound solvers as marked rows, never ranked:
  runs (seeds), mean, a 95% interval, the gap to the tightest usable reference (an optimum, else a
  best-known value, else the largest lower bound that is not trivially loose) with its interval, or the
  difference where a percentage means nothing; the per-instance mean gap; the family's side metrics; the
  mean train and solve (test evaluation) times;
* paired differences of every pair on the test scenarios both evaluated (the per-scenario costs each
  record keeps), with intervals;
* charts: the gaps, quality against time (train and solve seconds), the learning curves, and the
  problem's own picture for the best solver.

Per problem set (the problems of one family): the instances each solver wins and the Dolan-Moré
performance profile.

Statistics, for a solver with runs (seeds) ``i = 1..k``, test costs ``x_i`` and test standard errors
``s_i`` (every run is evaluated on the same test scenarios):

* mean cost ``m = mean(x_i)``;
* ``k = 1``: the interval is ``m +- z * s_1`` with ``z = 1.96`` (normal quantile 0.975): the test
  scenarios' sampling error only;
* ``k >= 2``: half-width ``sqrt((t_{k-1} * sd(x) / sqrt(k))**2 + (z * mean(s_i))**2)``, the seed-to-seed
  spread (Student t quantile 0.975 with ``k - 1`` degrees of freedom) combined with the test sampling
  error, which the seeds share and so do not average out;
* a problem with a single test scenario (one deterministic instance), or whose test set is a fixed class
  of instances (not a random sample), has no test sampling error to estimate: its intervals cover the
  seed-to-seed spread only (``deterministic`` where the runs agree), and the report says so;
* with only 2 or 3 runs the Student quantile is large (12.7 for 2 runs) and the report says so; where no
  run and no reference of a problem has a negative cost, the interval's lower end is cut at 0 (said too);
* gap ``100 * (m - r) / |r|`` for the reference ``r``, its half-width ``100 * h / |r|`` (with the
  reference's own standard error added in quadrature when it has one), or from the paired differences
  where the reference is a bound known per scenario. A problem without a reference gets no gap: each
  solver's difference to the best solver is shown instead;
* paired difference of ``a`` and ``b``: see :func:`paired_difference`.

When a store holds the same cell more than once (``opsrl run`` repeated by hand), the latest run counts.

The problem's picture: the family's ``picture(problem, record) -> matplotlib Figure | None`` hook if
it has one (a ``picture`` field of its :class:`~opsrl.core.Family`, or a module-level ``picture``
function of the family's module); otherwise a generic trajectory picture drawn from the run's stored
trace (:class:`opsrl.bench.runner.TraceRecorder`: states, actions and cost per period of the best
run's policy on the first test scenarios, recorded during its evaluation). Nothing is re-trained for
the report.
"""

from __future__ import annotations

import base64
import datetime as _dt
import fnmatch
import html
import importlib
import io
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy import stats

from .cells import _digest
from .store import ResultsStore

Z95 = float(stats.norm.ppf(0.975))


# --- statistics ----------------------------------------------------------------------------------
def confidence_half_width(costs: Sequence[float], stderrs: Sequence[float]) -> float:
    """Half-width of the 95% interval of the mean of ``costs`` (see the module docstring)."""
    k = len(costs)
    if k == 0:
        return math.nan
    se_test = sum(stderrs) / k if all(math.isfinite(s) for s in stderrs) else math.nan
    if k == 1:
        return Z95 * se_test
    mean = sum(costs) / k
    sd = math.sqrt(sum((x - mean) ** 2 for x in costs) / (k - 1))
    t = float(stats.t.ppf(0.975, k - 1))
    return math.hypot(t * sd / math.sqrt(k), Z95 * se_test)


LOOSE_FRACTION = 0.1  # a lower bound below this fraction of the best solver's value is trivially loose
NEAR_ZERO = 1e-9  # a reference this small (relative to the values compared) gets no percentage gap


def dotted(record: Any, path: str) -> Any:
    """``record["a"]["b"]`` for the path ``"a.b"``; None where a step is missing."""
    for part in path.split("."):
        if not isinstance(record, dict) or part not in record:
            return None
        record = record[part]
    return record


@dataclass(frozen=True)
class FamilyView:
    """What the report reads of a family's declaration (defaults where the family is unknown)."""

    metric: Any
    bounds: dict[str, Any]
    record_bounds: tuple
    instances: Any = None
    fixed_instances: Any = None
    oracle: Any = None


def family_view(name: str) -> FamilyView:
    from ..core import ConfigError, Metric
    from ..registry import FAMILY_MODULES, family

    fam = None
    if name in FAMILY_MODULES:
        try:
            fam = family(name)
        except ConfigError:
            fam = None
    if fam is None:
        return FamilyView(Metric(), {}, ())
    return FamilyView(
        getattr(fam, "metric", None) or Metric(),
        {b.method: b for b in getattr(fam, "bounds", ())},
        tuple(getattr(fam, "record_bounds", ())),
        getattr(fam, "instances", None),
        getattr(fam, "fixed_instances", None),
        getattr(fam, "oracle", None),
    )


@dataclass
class SolverRow:
    label: str
    method: str
    runs: list[dict[str, Any]]
    mean: float = math.nan
    half: float = math.nan
    floor: float = -math.inf  # the interval's lower end is cut here (0 where no cost can be negative)
    gap: float | None = None
    gap_half: float | None = None
    diff: float | None = None  # metric minus the reference (or minus the best solver's, without a reference)
    gap_note: str = ""
    train_seconds: float = math.nan
    solve_seconds: float = math.nan
    learns: bool = False
    bound: str | None = None  # the kind of bound this solver computes (declared by the family): never ranked
    loose: str = ""  # why this bound is trivially loose (not used as a reference)
    oracle: str = ""  # why this run reads the future (not a policy one could run): shown apart, never ranked
    deterministic: bool = False  # no spread to show: one deterministic instance (or a fixed class) and equal runs
    instance_gap: float | None = None  # mean over the instances of each instance's gap (papers' figure)
    beside: dict[str, float] = field(default_factory=dict)
    values: list[float] = field(default_factory=list)  # the metric of each run (the runs' order)

    @property
    def low(self) -> float:
        """The interval's lower end: ``mean - half``, but never below a bound the data respect."""
        return max(self.mean - self.half, self.floor)

    @property
    def seeds(self) -> list[int]:
        return sorted(r["seed"] for r in self.runs)

    @property
    def best_run(self) -> dict[str, Any]:
        return min(zip(self.values, self.runs), key=lambda vr: (vr[0], vr[1]["seed"]))[1]

    def per_scenario(self, path: str) -> list[list[float]] | None:
        """Each run's per-scenario values (None if a run lacks them or has a non-finite one)."""
        out = []
        for r in self.runs:
            x = dotted(r, path)
            if not isinstance(x, list) or not x or not all(_finite(v) for v in x):
                return None
            out.append([float(v) for v in x])
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "solver": self.label,
            "method": self.method,
            "bound": self.bound,
            "loose": self.loose or None,
            "oracle": self.oracle or None,
            "runs": len(self.runs),
            "seeds": self.seeds,
            "mean": self.mean,
            "ci_low": self.low,
            "ci_high": self.mean + self.half,
            "ci_half_width": self.half,
            "deterministic": self.deterministic,
            "gap_pct": self.gap,
            "gap_ci_half_width_pct": self.gap_half,
            "difference": self.diff,
            "gap_note": self.gap_note or None,
            "mean_instance_gap_pct": self.instance_gap,
            "beside": self.beside,
            "train_seconds": self.train_seconds,
            "solve_seconds": self.solve_seconds,
            "run_ids": [r["id"] for r in self.runs],
        }


@dataclass
class Paired:
    """The mean paired difference ``a - b`` over the test scenarios both solvers were evaluated on."""

    a: str
    b: str
    n: int
    mean: float
    half: float
    relative: float | None  # 100 * mean / b's mean, where the metric is a positive quantity
    a_better: int
    b_better: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "scenarios": self.n,
            "mean_difference": self.mean,
            "ci_half_width": self.half,
            "relative_pct": self.relative,
            "a_better": self.a_better,
            "b_better": self.b_better,
        }


@dataclass
class ProblemSection:
    problem: str
    title: str
    family: str
    description: str
    reference: dict[str, Any] | None  # {"kind", "value", "source", ...}; None: no reference
    rows: list[SolverRow]  # solvers (policies), best first
    test: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    picture: str | None = None  # base64 PNG
    picture_note: str = ""
    bounds: list[SolverRow] = field(default_factory=list)  # bound solvers: shown, never ranked
    references: list[dict[str, Any]] = field(default_factory=list)  # every candidate, with why it is (not) used
    metric: dict[str, Any] = field(default_factory=dict)
    paired: list[Paired] = field(default_factory=list)
    paired_note: str = ""
    fixed: bool = False  # the test scenarios are a fixed class of instances, not a random sample
    instances: dict[str, dict[str, float]] = field(default_factory=dict)  # instance -> solver -> mean value

    @property
    def best(self) -> SolverRow | None:
        return self.rows[0] if self.rows else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "title": self.title,
            "family": self.family,
            "metric": self.metric,
            "reference": self.reference,
            "references": self.references,
            "best": self.best.label if self.best else None,
            "test": self.test,
            "fixed_instances": self.fixed,
            "warnings": self.warnings,
            "solvers": [r.as_dict() for r in self.rows],
            "bounds": [r.as_dict() for r in self.bounds],
            "paired": [p.as_dict() for p in self.paired],
            "paired_note": self.paired_note or None,
            "instances": self.instances,
        }


def latest_per_cell(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per cell (the latest); records from before cells existed count per (problem, solver, seed)."""
    by_key: dict[Any, dict[str, Any]] = {}
    for r in records:
        key = (r.get("cell") or {}).get("key") or ("legacy", r["problem"], r["solver"], r["seed"], _legacy_hash(r))
        if key not in by_key or r["id"] > by_key[key]["id"]:
            by_key[key] = r
    return sorted(by_key.values(), key=lambda r: r["id"])


def _legacy_hash(r: dict[str, Any]) -> str:
    t = r.get("test") or {}
    return "v1-" + _digest([r.get("config", {}).get("problem"), t.get("n"), t.get("periods"), t.get("warmup")], 10)


def _problem_hash(r: dict[str, Any]) -> str:
    return (r.get("cell") or {}).get("problem_hash") or _legacy_hash(r)


def _solver_hash(r: dict[str, Any]) -> str:
    return (r.get("cell") or {}).get("solver_hash") or "v1-" + _digest(
        {k: v for k, v in (r.get("config", {}).get("solver") or {}).items() if k not in ("source", "description")}, 10
    )


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _seed_part(runs_means: Sequence[float]) -> float:
    """Half-width of the seed-to-seed part of a 95% interval of a mean over runs (0 for one run)."""
    k = len(runs_means)
    if k < 2:
        return 0.0
    m = sum(runs_means) / k
    sd = math.sqrt(sum((x - m) ** 2 for x in runs_means) / (k - 1))
    return float(stats.t.ppf(0.975, k - 1)) * sd / math.sqrt(k)


def paired_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], sample: bool) -> tuple:
    """Mean paired difference of two solvers' per-scenario values (``[runs][scenarios]`` each, same scenarios).

    Per scenario ``j``: ``d_j = mean over a's runs of a_j - mean over b's runs of b_j``. The 95% half-width
    combines, in quadrature, the scenario part ``t_{n-1} sd(d) / sqrt(n)`` (only where the scenarios are a
    random ``sample``; a fixed class of instances has none) with each solver's seed-to-seed part
    (``t_{k-1} sd / sqrt(k)`` of its runs' means over these scenarios). Returns ``(n, mean, half, a better,
    b better)``, counting the scenarios where one is lower than the other."""
    n = min(min(len(x) for x in a), min(len(x) for x in b))
    ma = [sum(x[j] for x in a) / len(a) for j in range(n)]
    mb = [sum(x[j] for x in b) / len(b) for j in range(n)]
    d = [p - q for p, q in zip(ma, mb)]
    mean = sum(d) / n
    scen = 0.0
    if sample and n > 1:
        sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
        scen = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    seed_a = _seed_part([sum(x[:n]) / n for x in a])
    seed_b = _seed_part([sum(x[:n]) / n for x in b])
    half = math.sqrt(scen**2 + seed_a**2 + seed_b**2)
    tol = 1e-12 * max(1.0, max(abs(x) for x in ma + mb))
    return n, mean, half, sum(x < -tol for x in d), sum(x > tol for x in d)


def _row_stats(row: SolverRow, sample: bool, n_test: int | None) -> None:
    """Mean, interval and timing of a row from its runs' metric values."""
    k = len(row.runs)
    row.mean = sum(row.values) / k
    stderrs = [r.get("test_stderr", math.nan) for r in row.runs]
    if not sample or n_test == 1:  # a fixed instance or class: no test sampling error to estimate
        stderrs = [0.0] * k
    row.half = confidence_half_width(row.values, stderrs)
    row.deterministic = (not sample or n_test == 1) and max(row.values) - min(row.values) <= 1e-12 * max(
        1.0, abs(row.mean)
    )
    row.train_seconds = sum(r.get("train_seconds", math.nan) for r in row.runs) / k
    row.solve_seconds = sum(r.get("eval_seconds", math.nan) for r in row.runs) / k
    row.learns = any(r.get("curve") for r in row.runs)


def _matches(problem: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(problem, p) for p in patterns)


def summarize(records: Iterable[dict[str, Any]]) -> list[ProblemSection]:
    """Group runs by problem configuration and solver configuration; compute every number of the report."""
    records = latest_per_cell(records)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["problem"], _problem_hash(r))].append(r)
    hashes_per_name = Counter(name for name, _ in groups)
    sections = []
    views: dict[str, FamilyView] = {}
    for (name, p_hash), runs in sorted(groups.items(), key=lambda kv: (kv[0][0], min(r["id"] for r in kv[1]))):
        family_name = runs[0].get("family") or _family_of(runs[0])
        if family_name not in views:
            views[family_name] = family_view(family_name)
        section = _section(name, p_hash, runs, hashes_per_name[name] > 1, family_name, views[family_name])
        if section is not None:
            sections.append(section)
    return sections


def _section(
    name: str, p_hash: str, runs: list[dict[str, Any]], several: bool, family_name: str, view: FamilyView
) -> ProblemSection | None:
    warnings: list[str] = []
    metric = view.metric
    title = f"{name} (configuration {p_hash[:8]})" if several else name
    t = runs[0].get("test") or {}
    test = {k: t.get(k) for k in ("n", "periods", "warmup", "metric", "scenarios_hash")}
    n_test = t.get("n")
    value_path, metric_name = metric.value, metric.name
    if value_path != "test_cost" and any(
        not _finite(dotted(r, value_path)) for r in runs if _finite(r.get("test_cost"))
    ):
        warnings.append(f"some runs do not record {value_path}; the test cost is compared instead of the {metric.name}")
        value_path, metric_name = "test_cost", "test cost"
    fixed = bool(view.fixed_instances and all(view.fixed_instances(r) for r in runs))
    sample = not fixed
    by_solver: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_solver[(r["solver"], _solver_hash(r))].append(r)
    labels_count = Counter(label for label, _ in by_solver)
    for label, n in sorted(labels_count.items()):
        if n > 1:
            warnings.append(
                f"{label} has runs of {n} configurations (its file, overrides or opsrl's defaults "
                "changed between runs); they are shown apart, marked with their solver hash"
            )
    rows: list[SolverRow] = []
    bounds: list[SolverRow] = []
    for (label, s_hash), srun in by_solver.items():
        shown = label if labels_count[label] == 1 else f"{label} [{s_hash[:6]}]"
        good = [r for r in srun if _finite(r.get("test_cost")) and _finite(dotted(r, value_path))]
        if len(good) < len(srun):
            warnings.append(f"{shown}: {len(srun) - len(good)} run(s) without a finite test cost left out")
        if not good:
            continue
        seeds = Counter(r["seed"] for r in good)
        if any(n > 1 for n in seeds.values()):
            warnings.append(f"{shown}: several runs of one seed (recorded outside a sweep); all are counted")
        method = good[0].get("method", "")
        row = SolverRow(shown, method, good, values=[float(dotted(r, value_path)) for r in good])
        _row_stats(row, sample, n_test)
        for lab, path in metric.beside:
            vals = [dotted(r, path) for r in good]
            if vals and all(_finite(v) for v in vals):
                row.beside[lab] = sum(vals) / len(vals)
        why = view.oracle(good[0]) if view.oracle else None
        if why:
            row.bound, row.oracle = "oracle, not a policy", why
            bounds.append(row)
        elif method in view.bounds:
            decl = view.bounds[method]
            row.bound = decl.kind
            if _matches(name, decl.loose_on):
                row.loose = decl.loose_why or "declared trivially loose on this problem"
            bounds.append(row)
        else:
            rows.append(row)
    if not rows and not bounds:
        return None
    rows.sort(key=lambda r: (r.mean, r.label))
    bounds.sort(key=lambda r: (-r.mean, r.label))
    all_rows = rows + bounds
    # few runs make a wide Student interval that can reach below zero; a value no run and no reference has
    # ever been negative for is taken as one that cannot be, and its interval is cut at zero (and said so)
    ref_values = [(r.get("reference") or {}).get("value") for r in runs]
    non_negative = all(x >= 0 for row in all_rows for x in row.values) and all(
        v is None or (_finite(v) and v >= 0) for v in ref_values
    )
    for row in all_rows:
        k = len(row.runs)
        if non_negative:
            row.floor = 0.0
            if row.mean - row.half < 0:
                warnings.append(f"{row.label}: the 95% interval is cut at 0 (costs here are never negative)")
        if 2 <= k <= 3 and not row.deterministic:
            tq = float(stats.t.ppf(0.975, k - 1))
            warnings.append(
                f"{row.label}: only {k} runs; the seed-to-seed part of its interval uses Student's t "
                f"with {k - 1} degree{'s' if k > 2 else ''} of freedom ({tq:.1f} standard errors), so it "
                "is wide: more seeds narrow it"
            )
    if n_test == 1:
        warnings.append("one test scenario (a deterministic instance): intervals cover the seed-to-seed spread only")
    elif fixed:
        warnings.append(
            f"the {n_test} test instances are a fixed class, not a random sample: intervals cover the seed-to-seed "
            "spread only, and the per-instance mean gap is the figure papers report"
        )
    counts = sorted({(r.runs[0].get("test") or {}).get("n") for r in rows + bounds} - {None})
    if len(counts) > 1:
        warnings.append(
            f"solvers here evaluated different numbers of the test scenarios ({', '.join(map(str, counts))}: the "
            "first n of the same set); their means are over different scenarios, so compare them through the "
            "paired differences, which use the scenarios both evaluated"
        )
    test_hashes = {(r.get("test") or {}).get("scenarios_hash") for r in runs}
    if len(test_hashes) > 1:
        warnings.append("the runs were not all evaluated on the same test scenarios; compare with care")
    candidates = _reference_candidates(name, runs, rows, bounds, view, value_path, warnings)
    reference = _choose_reference(candidates)
    section = ProblemSection(
        name,
        title,
        family_name,
        runs[0].get("problem_description", ""),
        reference,
        rows,
        test,
        warnings,
        bounds=bounds,
        references=candidates,
        metric={
            "name": metric_name,
            "unit": metric.unit,
            "direction": metric.direction,
            "path": value_path,
            "per_scenario": metric.per_scenario if value_path == metric.value else "test.per_scenario",
        },
        fixed=fixed,
    )
    _gaps(section, metric.ratio, sample)
    _instance_gaps(section, view)
    _pairs(section, metric.per_scenario, metric.ratio, sample, len(test_hashes) == 1)
    return section


def _reference_candidates(
    name: str,
    runs: list[dict[str, Any]],
    rows: list[SolverRow],
    bounds: list[SolverRow],
    view: FamilyView,
    value_path: str,
    warnings: list[str],
) -> list[dict[str, Any]]:
    """Every reference the runs offer: the family's (stored with the runs), the bound solvers' and the bounds
    other runs carry (CP-SAT's proven bound, SDDP's); each says whether it is usable and why not."""
    out: list[dict[str, Any]] = []
    refs = Counter(json.dumps(r["reference"], sort_keys=True) for r in runs if r.get("reference"))
    if refs and value_path == "test_cost":
        ref = json.loads(refs.most_common(1)[0][0])
        if len(refs) > 1:
            warnings.append(f"runs carry {len(refs)} different references; the most common one is used")
        out.append({**ref, "from": "family"})
    for b in bounds:
        if b.oracle:
            continue
        n_b = min(len(dotted(r, "test.per_scenario") or []) or (r.get("test") or {}).get("n") or 0 for r in b.runs)
        out.append(
            {
                "kind": "lower_bound",
                "value": b.mean,
                "source": f"{b.label}: {b.bound}",
                "from": "bound solver",
                "solver": b.label,
                "scenarios": n_b,
                **({"loose": b.loose} if b.loose else {}),
            }
        )
    for rb in view.record_bounds:
        for row in rows:
            if row.method != rb.method:
                continue
            vals = [rb.value(r) for r in row.runs]
            if vals and all(_finite(v) for v in vals):
                pick = max if rb.sense == "lower" else min
                i = vals.index(pick(vals))
                cand = {
                    "kind": "lower_bound" if rb.sense == "lower" else "upper_bound",
                    "value": vals[i],
                    "source": f"{rb.kind}, from {row.label}",
                    "from": "run record",
                }
                per = rb.per_scenario(row.runs[i]) if getattr(rb, "per_scenario", None) else None
                if per and all(_finite(v) for v in per):
                    cand["per_scenario"] = per
                out.append(cand)
    best = rows[0].mean if rows else None
    for c in out:
        if c.get("loose") or c["kind"] != "lower_bound" or best is None or not _finite(c["value"]):
            continue
        if best > 0 and c["value"] < LOOSE_FRACTION * best:
            c["loose"] = (
                f"below {LOOSE_FRACTION:g} x the best solver's value ({_num(best)}): trivially loose, "
                "so no gap is taken against it"
            )
            for b in bounds:
                if c.get("solver") == b.label:
                    b.loose = c["loose"]
    return out


def _choose_reference(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The tightest usable reference: an optimum, else the best-known value, else the largest lower bound."""
    usable = [c for c in candidates if not c.get("loose") and _finite(c.get("value"))]
    for kind in ("optimum", "best_known"):
        hit = [c for c in usable if c["kind"] == kind]
        if hit:
            chosen = hit[0]
            break
    else:
        lower = [c for c in usable if c["kind"] == "lower_bound"]
        chosen = None
        if lower:
            top = max(c["value"] for c in lower)
            tied = [c for c in lower if c["value"] >= top - 1e-9 * max(1.0, abs(top))]
            # of equal bounds, one known per scenario (a bound solver's, CP-SAT's per snapshot) gives paired gaps
            chosen = next((c for c in tied if c.get("from") == "bound solver" or c.get("per_scenario")), tied[0])
    for c in candidates:
        c["used"] = c is chosen
    return chosen


def _gaps(section: ProblemSection, ratio: bool, sample: bool) -> None:
    """Gap of every solver (and bound) to the reference; without one, the difference to the best solver."""
    ref = section.reference
    rows = section.rows + section.bounds
    if ref is None:
        if section.rows:
            best = section.rows[0].mean
            for row in rows:
                if not row.loose:
                    row.diff = row.mean - best
        return
    r = float(ref["value"])
    scale = max([abs(r)] + [abs(x.mean) for x in rows])
    compared = [x for x in rows if not x.loose]  # a loose bound (about 0, even -1e-15) is not compared
    percent = ratio and r > 0 and abs(r) > NEAR_ZERO * scale and all(x.mean >= -NEAR_ZERO * scale for x in compared)
    if not percent:
        section.warnings.append(
            f"the reference {_num(r)} is not a positive quantity (or the values compared may be negative): "
            "differences are shown, not percentages"
        )
    ref_half = Z95 * ref["stderr"] if _finite(ref.get("stderr")) else 0.0
    n_ref = ref.get("scenarios") if ref.get("from") == "bound solver" else None
    bound_row = next((b for b in section.bounds if b.label == ref.get("solver")), None)
    for row in rows:
        if row is bound_row:
            row.diff, row.gap, row.gap_half = 0.0, 0.0 if percent else None, 0.0 if percent else None
            continue
        if row.loose or row.oracle:  # a trivially loose bound, an oracle: shown, never measured
            continue
        d, base, half = row.mean - r, r, math.hypot(row.half, ref_half)
        path = section.metric.get("per_scenario") or "test.per_scenario"
        if bound_row is None and ref.get("per_scenario"):  # a bound per scenario carried by a run: pair with it
            a = row.per_scenario(path)
            if a is not None and min(len(x) for x in a) == len(ref["per_scenario"]):
                n, d, half, _, _ = paired_difference(a, [ref["per_scenario"]], sample)
        elif bound_row is not None:  # a bound solver's per-scenario bounds: pair on the scenarios both evaluated
            a, b = row.per_scenario(path), bound_row.per_scenario(path)
            n_row = (row.runs[0].get("test") or {}).get("n")
            if a is None or b is None:
                if n_ref != n_row:
                    row.gap_note = (
                        f"no gap: the bound covers {n_ref} scenarios, this one {n_row}, per-scenario costs missing"
                    )
                    continue
            else:
                n, d, half, _, _ = paired_difference(a, b, sample)
                base = sum(sum(x[:n]) / n for x in b) / len(b)
                if n != n_row or n != n_ref:
                    row.gap_note = f"on the first {n} test scenarios, which both evaluated (paired with the bound)"
        row.diff = d
        if percent and base > 0:
            row.gap = 100.0 * d / base
            row.gap_half = 100.0 * half / base


def _instance_gaps(section: ProblemSection, view: FamilyView) -> None:
    """Per instance (a class's instances, a VM's snapshots): each solver's mean value, and the mean of the
    per-instance gaps to the instances' own references where the family gives them."""
    if view.instances is None:
        return
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for row in section.rows + section.bounds:
        per_run = [view.instances(r) for r in row.runs]
        if not per_run or any(p is None for p in per_run):
            continue
        names = set.intersection(*(set(p) for p in per_run))
        gaps = []
        for inst in sorted(names):
            v = sum(p[inst][0] for p in per_run) / len(per_run)
            table[inst][row.label] = v
            ref = per_run[0][inst][1]
            if _finite(ref) and ref > 0:
                gaps.append(100.0 * (v - ref) / ref)
        if gaps and len(gaps) == len(names):
            row.instance_gap = sum(gaps) / len(gaps)
    section.instances = dict(table)


def _pairs(section: ProblemSection, path: str, ratio: bool, sample: bool, same_test: bool) -> None:
    """Paired differences of every pair of solvers (bounds included) on the scenarios they share."""
    rows = section.rows + section.bounds
    if len(rows) < 2:
        return
    if not same_test:
        section.paired_note = "no paired differences: the runs were evaluated on different test scenarios"
        return
    per = {row.label: row.per_scenario(path) for row in rows}
    missing = [label for label, p in per.items() if p is None]
    if missing:
        section.paired_note = (
            f"no per-scenario costs recorded for {', '.join(missing)} (runs from before they were kept): "
            "those pairs are left out"
        )
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            if per[a.label] is None or per[b.label] is None:
                continue
            n, mean, half, a_better, b_better = paired_difference(per[a.label], per[b.label], sample)
            rel = None
            if ratio and not b.loose and b.mean > 0 and all(x.mean >= 0 for x in rows if not x.loose):
                rel = 100.0 * mean / b.mean
            section.paired.append(Paired(a.label, b.label, n, mean, half, rel, a_better, b_better))


def wins_table(sections: Sequence[ProblemSection]) -> dict[str, dict[str, int]]:
    """Per family (problem set): how many instances each solver wins (lowest value; ties count for each).

    An instance is a named instance or snapshot of a problem where the family splits its runs so, else the
    problem itself (its mean)."""
    out: dict[str, dict[str, int]] = {}
    for fam, insts in _instance_sets(sections).items():
        wins: Counter = Counter()
        for values in insts.values():
            if len(values) < 2:
                continue
            best = min(values.values())
            tol = 1e-12 * max(1.0, abs(best))
            for label, v in values.items():
                wins[label] += v <= best + tol
        solvers = sorted({label for values in insts.values() for label in values})
        out[fam] = {label: int(wins[label]) for label in solvers}
    return out


def _instance_sets(sections: Sequence[ProblemSection]) -> dict[str, dict[str, dict[str, float]]]:
    """family -> instance -> solver -> value, over the solvers (bounds excluded) of every section."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for s in sections:
        solvers = {r.label for r in s.rows}
        if s.instances:
            for inst, vals in s.instances.items():
                out[s.family or "?"][f"{s.title}: {inst}"] = {k: v for k, v in vals.items() if k in solvers}
        else:
            out[s.family or "?"][s.title] = {r.label: r.mean for r in s.rows}
    return dict(out)


def performance_profile(values: dict[str, dict[str, float]]) -> tuple[dict[str, list[float]], int]:
    """Dolan-Moré performance ratios: per solver, ``value / best value`` on each instance (inf where it did not
    run it); instances whose best value is not positive are left out. Returns ``(ratios, instances used)``."""
    solvers = sorted({label for v in values.values() for label in v})
    ratios: dict[str, list[float]] = {label: [] for label in solvers}
    used = 0
    for v in values.values():
        if not v:
            continue
        best = min(v.values())
        if not (_finite(best) and best > 0):
            continue
        used += 1
        for label in solvers:
            ratios[label].append(v[label] / best if label in v else math.inf)
    return ratios, used


def _family_of(record: dict[str, Any]) -> str:
    from ..core import ConfigError, load_toml

    try:
        return str(load_toml(record["config"]["problem_file"]).get("family", ""))
    except (ConfigError, KeyError, TypeError):
        return record["problem"].split("/")[0] if "/" in record["problem"] else ""


# --- figures -------------------------------------------------------------------------------------
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    import sys

    if "matplotlib.pyplot" in sys.modules:  # a hook may have made its figure with pyplot
        sys.modules["matplotlib.pyplot"].close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def gap_chart(section: ProblemSection) -> str | None:
    """Bars of the solvers' gaps to the reference (or, without one, their differences to the best solver)."""
    from matplotlib.figure import Figure

    rows = [r for r in section.rows if r.gap is not None]
    pct = bool(rows)
    if not rows:
        rows = [r for r in section.rows if r.diff is not None]
    if not rows or len(rows) + len(section.bounds) < 2:
        return None
    fig = Figure(figsize=(6.4, 0.45 * len(rows) + 1.2))
    ax = fig.subplots()
    y = list(range(len(rows)))[::-1]
    vals = [r.gap if pct else r.diff for r in rows]
    err = [r.gap_half if pct else None for r in rows]
    ax.barh(y, vals, xerr=None if not pct else err, color=_colors(len(rows)), capsize=3)
    ax.set_yticks(y, [r.label for r in rows])
    ax.axvline(0.0, color="black", lw=0.8)
    ref = section.reference
    if ref is None:
        ax.set_xlabel(f"{section.metric.get('name', 'value')} minus the best solver's (no reference)")
    elif pct:
        ax.set_xlabel(f"gap to the {_kind(ref)} (%), 95% interval")
    else:
        ax.set_xlabel(f"{section.metric.get('name', 'value')} minus the {_kind(ref)}")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _kind(ref: dict[str, Any]) -> str:
    return str(ref.get("kind", "")).replace("_", " ")


def time_chart(section: ProblemSection) -> str | None:
    """Quality against time: each solver's metric (95% interval) against its train and its solve wall time;
    configurations of one method (CP-SAT at several time limits) joined as a curve; bounds and the reference
    as horizontal lines."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    rows = section.rows
    if not rows:
        return None
    fig = Figure(figsize=(9.6, 3.6))
    axes = fig.subplots(1, 2, sharey=True)
    colors = dict(zip([r.label for r in rows], _colors(len(rows))))
    by_method: dict[str, list[SolverRow]] = defaultdict(list)
    for r in rows:
        by_method[r.method].append(r)
    for ax, attr, name in ((axes[0], "train_seconds", "train"), (axes[1], "solve_seconds", "solve (test evaluation)")):
        for r in rows:
            x = max(getattr(r, attr), 1e-3) if _finite(getattr(r, attr)) else None
            if x is None:
                continue
            ax.errorbar(
                [x],
                [r.mean],
                yerr=[[r.mean - r.low], [r.half]],
                fmt="o",
                color=colors[r.label],
                capsize=3,
                label=r.label if ax is axes[0] else None,
            )
        for method, group in by_method.items():
            pts = sorted((max(getattr(r, attr), 1e-3), r.mean) for r in group if _finite(getattr(r, attr)))
            if len(pts) > 1:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    color="grey",
                    lw=1.0,
                    ls="-",
                    alpha=0.7,
                    label=f"{method}: {len(pts)} configurations" if ax is axes[0] else None,
                )
        for b in section.bounds:
            ax.axhline(
                b.mean,
                color="black",
                ls=":" if b.loose else "-.",
                lw=0.9,
                label=f"{b.label} ({'oracle' if b.oracle else 'bound'}{', loose' if b.loose else ''})"
                if ax is axes[0]
                else None,
            )
        ref = section.reference
        if ref is not None and ref.get("from") != "bound solver" and _finite(ref.get("value")):
            ax.axhline(
                ref["value"],
                color="black",
                ls="--",
                lw=0.8,
                label=f"{_kind(ref)} {ref['value']:.4g}" if ax is axes[0] else None,
            )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"{name} seconds (mean over runs; log)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(section.metric.get("name", "value"))
    fig.legend(fontsize=7, loc="upper center", ncol=4, bbox_to_anchor=(0.5, 1.12))
    return _png(fig)


def profile_chart(family: str, values: dict[str, dict[str, float]]) -> str | None:
    """The Dolan-Moré performance profile of a problem set: the share of instances on which each solver is
    within a factor tau of the best solver there."""
    from matplotlib.figure import Figure

    ratios, used = performance_profile(values)
    if used == 0 or len(ratios) < 2:
        return None
    finite = [x for v in ratios.values() for x in v if math.isfinite(x)]
    top = max(finite + [1.0]) * 1.05
    if top <= 1.0:
        top = 1.01
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.subplots()
    for color, (label, rs) in zip(_colors(len(ratios)), sorted(ratios.items())):
        xs = sorted(rs)
        taus = [1.0] + [x for x in xs if math.isfinite(x)] + [top]
        rho = [sum(x <= tau for x in xs) / len(xs) for tau in taus]
        ax.step(taus, rho, where="post", color=color, lw=1.4, label=label)
    ax.set_xlim(1.0, top)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("tau: within this factor of the best solver on an instance")
    ax.set_ylabel("share of instances")
    ax.set_title(f"performance profile, {family} ({used} instance{'' if used == 1 else 's'})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def _curve_axes(entries: list[dict[str, Any]]) -> tuple[str, str] | None:
    keys = [k for k, v in entries[0].items() if _finite(v)]
    x = "step" if "step" in keys else None
    for y in ("dev_cost", "cost", "train_loss"):
        if y in keys:
            return x or "", y
    rest = [k for k in keys if k not in ("step", "seconds")]
    return (x or "", rest[0]) if rest else None


def learning_curves(section: ProblemSection) -> str | None:
    from matplotlib.figure import Figure

    rows = [r for r in section.rows if r.learns]
    if not rows:
        return None
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.subplots()
    ylabel = None
    for color, row in zip(_colors(len(section.rows)), section.rows):
        if row not in rows:
            continue
        for j, run in enumerate(sorted(row.runs, key=lambda r: r["seed"])):
            curve = run.get("curve") or []
            axes = _curve_axes(curve) if curve else None
            if axes is None:
                continue
            xk, yk = axes
            xs = [e[xk] if xk else i for i, e in enumerate(curve)]
            ax.plot(
                xs,
                [e.get(yk, math.nan) for e in curve],
                color=color,
                lw=1.2,
                alpha=0.85,
                label=row.label if j == 0 else None,
            )
            ylabel = ylabel or yk.replace("_", " ")
            ax.set_xlabel(xk or "evaluation")
    ref = section.reference
    if ref and _finite(ref["value"]):
        ax.axhline(ref["value"], color="black", ls="--", lw=0.8, label=f"{_kind(ref)} {ref['value']:.4g}")
    ax.set_ylabel(ylabel or "")
    ax.set_title("learning curves (one line per seed)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def trace_figure(record: dict[str, Any]):
    """Generic trajectory picture from a run's stored trace: states, actions and cost per period."""
    from matplotlib.figure import Figure

    tr = record.get("trace") or {}
    if "cost" not in tr:
        return None
    panels = [(f"state {name}", series) for name, series in tr.get("state", {}).items()]
    if "action" in tr:
        panels.append(("action", tr["action"]))
    stride = tr.get("stride", 1)
    panels.append(("cost per period" if stride == 1 else f"cost per period\n(mean of {stride})", tr["cost"]))
    fig = Figure(figsize=(7.2, 1.6 * len(panels) + 0.8))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    colors = _colors(10)
    t = tr.get("t") or list(range(len(tr["cost"][0])))
    for ax, (name, series) in zip(axes, panels):
        width = len(series[0][0]) if series and series[0] else 0
        for s, scen in enumerate(series):
            for c in range(width):
                y = [row[c] for row in scen]
                style = dict(
                    color=colors[c % 10],
                    alpha=1.0 if s == 0 else 0.3,
                    lw=1.3 if s == 0 else 0.8,
                    label=(f"[{c}]" if width > 1 else None) if s == 0 else None,
                )
                if stride == 1:
                    ax.step(t, y, where="post", **style)
                else:
                    ax.plot(t, y, **style)
        if tr.get("warmup"):
            ax.axvspan(0, min(tr["warmup"], tr["periods"]), color="grey", alpha=0.12, lw=0)
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if width > 1:
            ax.legend(fontsize=7, ncol=min(width, 8), loc="upper right")
    axes[-1].set_xlabel("period")
    skipped = f"; not drawn: {', '.join(tr['skipped'])}" if tr.get("skipped") else ""
    fig.suptitle(
        f"{record['solver']} (seed {record['seed']}) on {record['problem']}: first {tr['scenarios']} test "
        f"scenarios (scenario 0 solid; warm-up shaded){skipped}",
        fontsize=8,
        wrap=True,
    )
    return fig


def picture_hook(family_name: str):
    """The family's ``picture(problem, record)`` hook, or None."""
    from ..core import ConfigError
    from ..registry import FAMILY_MODULES, family

    if family_name not in FAMILY_MODULES:
        return None
    try:
        fam = family(family_name)
    except ConfigError:
        return None
    hook = getattr(fam, "picture", None)
    if hook is None:
        hook = getattr(importlib.import_module(FAMILY_MODULES[family_name]), "picture", None)
    return hook if callable(hook) else None


def problem_picture(section: ProblemSection) -> tuple[str | None, str]:
    """The problem's own picture for the best solver (best run): ``(base64 PNG or None, note)``."""
    if section.best is None:
        return None, "no picture: only bounds ran on this problem"
    run = section.best.best_run
    who = f"{section.best.label}, seed {run['seed']}"
    hook = picture_hook(section.family)
    if hook is not None:
        try:
            from ..registry import load_problem

            cell = run.get("cell") or {}
            file = (run.get("config") or {}).get("problem_file")
            problem = load_problem(
                file if file and Path(file).is_file() else run["problem"], cell.get("problem_overrides") or {}
            )
            fig = hook(problem, run)
        except Exception as e:  # a picture must never cost the report
            return None, f"the {section.family} family's picture failed: {type(e).__name__}: {e}"
        if fig is not None:
            return _png(fig), f"{section.family} picture of the best solver ({who})"
    fig = trace_figure(run)
    if fig is not None:
        return _png(fig), f"trajectory of the best solver ({who}) from its recorded trace"
    why = (run.get("trace") or {}).get("note") or "its run recorded no policy trace (a per-scenario solver)"
    return None, f"no picture of the best solver ({who}): {why}"


# --- writing -------------------------------------------------------------------------------------
def _num(x: float | None, digits: int = 4) -> str:
    if x is None or not _finite(x):
        return "n/a"
    return f"{x:.{digits}f}"


def _secs(x: float) -> str:
    if not _finite(x):
        return "n/a"
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def _headers(section: ProblemSection) -> list[str]:
    ref = section.reference
    has_gap = any(r.gap is not None for r in section.rows + section.bounds)
    if ref is None:
        delta = "Δ to best here"
    elif has_gap:
        delta = "gap %"
    else:
        delta = f"Δ to {_kind(ref)}"
    head = ["rank", "solver", "method", "runs", section.metric.get("name") or "mean", "95% CI", delta]
    if any(r.instance_gap is not None for r in section.rows):
        head.append("mean gap per instance %")
    head += list(_beside_labels(section))
    return head + ["train s", "solve s"]


def _beside_labels(section: ProblemSection) -> list[str]:
    labels: list[str] = []
    for r in section.rows + section.bounds:
        labels += [k for k in r.beside if k not in labels]
    return labels


def _table_rows(section: ProblemSection) -> list[tuple[str, list[str]]]:
    """``(css class, cells)`` per row: the solvers ranked, then the bounds (never ranked)."""
    out = []
    with_instance = any(r.instance_gap is not None for r in section.rows)
    beside = _beside_labels(section)
    for i, r in enumerate(section.rows + section.bounds):
        if r.deterministic:
            ci = "deterministic" if len(r.runs) == 1 or r.half == 0 else f"[{_num(r.low)}, {_num(r.mean + r.half)}]"
        else:
            ci = f"[{_num(r.low)}, {_num(r.mean + r.half)}]"
        if r.gap is not None and r.deterministic and r.gap_half == 0:
            delta = _num(r.gap, 2)  # exact: nothing random about one deterministic instance or a fixed class
        elif r.gap is not None:
            delta = f"{_num(r.gap, 2)} ± {_num(r.gap_half, 2)}"
        elif r.diff is not None:
            delta = f"{r.diff:+.4g}"
        else:
            delta = "n/a"
        if r.gap_note and r.gap_note.startswith("no gap"):
            delta = "n/a"
        if r.loose:
            delta = "loose: not a reference"
        if r.oracle:
            delta = "oracle: not compared"
        if r.oracle:
            rank, cls, method = "oracle", "bound", f"{r.method} (oracle: {r.oracle})"
        elif r.bound:
            rank, cls = "bound", "bound"
            method = f"{r.method} ({r.bound}{'; trivially loose' if r.loose else ''})"
        else:
            rank, cls, method = str(i + 1), "best" if i == 0 else "", r.method
        cells = [rank, r.label, method, str(len(r.runs)), _num(r.mean), ci, delta]
        if with_instance:
            cells.append("n/a" if r.instance_gap is None else _num(r.instance_gap, 2))
        cells += [_num(r.beside.get(k), 4) if k in r.beside else "" for k in beside]
        cells += [_secs(r.train_seconds), _secs(r.solve_seconds)]
        out.append((cls, cells))
    return out


def _ref_line(section: ProblemSection) -> str:
    ref = section.reference
    if ref is None:
        return "none known here (no optimum, best-known value or usable bound): differences to the best solver"
    src = f" ({ref['source']})" if ref.get("source") else ""
    return f"{_kind(ref)} {_num(ref['value'])}{src}"


def _other_refs(section: ProblemSection) -> list[str]:
    out = []
    for c in section.references:
        if c.get("used"):
            continue
        why = c.get("loose") or "the reference above is used (an optimum or best-known value, or a tighter bound)"
        out.append(f"{_kind(c)} {_num(c.get('value'))} ({c.get('source', '')}): not used, {why}")
    return out


def _test_line(section: ProblemSection) -> str:
    t = section.test
    n = t.get("n")
    kind = ("fixed instance" if n == 1 else "fixed instances") if section.fixed else "test scenarios"
    return (
        f"{t.get('n')} {kind} of {t.get('periods')} periods, warm-up {t.get('warmup')}, "
        f"metric {section.metric.get('name')} (test cost: {t.get('metric')})"
    )


def _paired_rows(section: ProblemSection) -> list[list[str]]:
    out = []
    for p in section.paired:
        rel = "" if p.relative is None else f"{p.relative:+.3f}"
        real = "yes" if abs(p.mean) > p.half else "no"
        half = "exact" if p.half == 0 else f"± {p.half:.3g}"
        out.append([p.a, p.b, str(p.n), f"{p.mean:+.5g}", half, rel, real, f"{p.a_better} / {p.b_better}"])
    return out


PAIRED_HEADERS = [
    "a",
    "b",
    "scenarios",
    "mean a − b",
    "95% interval",
    "% of b",
    "interval excludes 0",
    "a lower / b lower",
]


def markdown(sections: Sequence[ProblemSection], meta: dict[str, Any]) -> str:
    lines = [
        f"# {meta['title']}",
        "",
        f"{meta['runs']} runs from `{meta['store']}`, written {meta['created']}. "
        "Values are each family's metric on the test scenarios; intervals are 95% (see docs/bench.md). Bounds are "
        "marked and never ranked. Charts and pictures: report.html.",
        "",
    ]
    if meta.get("left_out"):
        lines += [f"Left out, incomplete in the store: {'; '.join(meta['left_out'])}.", ""]
    for fam, wins in meta.get("wins", {}).items():
        lines += [f"## Problem set: {fam}", "", "Instances won (lowest value; ties count for each):", ""]
        lines += ["| solver | wins |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in wins.items()] + [""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        if s.description:
            lines += [s.description, ""]
        lines += [f"Reference: {_ref_line(s)}.  ", f"Test set: {_test_line(s)}.  "]
        lines += [f"Other reference: {x}.  " for x in _other_refs(s)]
        lines += [f"Best: **{s.best.label}**." if s.best else "No solver here, bounds only.", ""]
        head = _headers(s)
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|")
        for _, row in _table_rows(s):
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        lines.append("")
        if s.paired:
            lines += ["Paired differences on the same test scenarios:", ""]
            lines.append("| " + " | ".join(PAIRED_HEADERS) + " |")
            lines.append("|---|---|" + "---:|" * (len(PAIRED_HEADERS) - 2))
            for row in _paired_rows(s):
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
        if s.paired_note:
            lines += [f"> {s.paired_note}", ""]
        for w in s.warnings:
            lines.append(f"> warning: {w}")
        if s.warnings:
            lines.append("")
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0}th,td{padding:.3em .7em;border-bottom:1px solid #e4e4e4}
th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{font-weight:600}
tr.bound td{font-style:italic;background:#f3f6fb;color:#345}.meta{color:#555;font-size:.92em}.warn{color:#a0522d}
.figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}figure{margin:0}
figcaption{font-size:.85em;color:#555}img{max-width:100%}
nav a{margin-right:1em}
"""


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _runs_details(section: ProblemSection) -> str:
    """Every run behind the table, and each solver's configuration, folded away (no script needed)."""
    e = html.escape
    head = ["solver", "seed", "test cost", "± s.e.", "train s", "solve s", "device", "opsrl", "created", "run id"]
    rows = []
    for row in section.rows + section.bounds:
        for r in sorted(row.runs, key=lambda r: r["seed"]):
            vals = [
                row.label,
                str(r["seed"]),
                _num(r.get("test_cost")),
                _num(r.get("test_stderr")),
                _secs(r.get("train_seconds", math.nan)),
                _secs(r.get("eval_seconds", math.nan)),
                str(r.get("device", "")),
                str((r.get("versions") or {}).get("opsrl", "")),
                str(r.get("created", "")),
                str(r["id"]),
            ]
            rows.append("<tr>" + "".join(f"<td>{e(v)}</td>" for v in vals) + "</tr>")
    configs = []
    for row in section.rows + section.bounds:
        cfg = (row.runs[0].get("config") or {}).get("solver") or {}
        shown = {k: cfg.get(k) for k in ("method", "policy", "options") if cfg.get(k)}
        over = (row.runs[0].get("cell") or {}).get("solver_overrides")
        if over:
            shown["overrides"] = over
        configs.append(f"<dt>{e(row.label)}</dt><dd><code>{e(json.dumps(shown, sort_keys=True))}</code></dd>")
    return (
        "<details><summary>runs and solver configurations</summary><table><thead><tr>"
        + "".join(f"<th>{e(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table><dl>"
        + "".join(configs)
        + "</dl></details>"
    )


def _html_table(head: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]], text_cols: int) -> str:
    e = html.escape
    out = ["<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for cls, row in rows:
        c = f' class="{cls}"' if cls else ""
        cells = "".join(
            f"<td>{e(v)}</td>" if k < text_cols else f'<td class="n">{e(v)}</td>' for k, v in enumerate(row)
        )
        out.append(f"<tr{c}>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def html_page(
    sections: Sequence[ProblemSection], meta: dict[str, Any], charts: dict[str, dict[str, str | None]]
) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(meta['title'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(meta['title'])}</h1>",
        f'<p class="meta">{meta["runs"]} runs from <code>{e(meta["store"])}</code>, written {e(meta["created"])}. '
        "Each family's own metric on the problem's test scenarios, the same for every solver (common random "
        "numbers); 95% intervals combine the seed-to-seed spread and the test sampling error (docs/bench.md). "
        "Bounds are marked rows and lines, never ranked; gaps are to the tightest usable reference.</p>",
        f'<p class="meta">opsrl {e(", ".join(meta["versions"]))}; hardware {e("; ".join(meta["hardware"]))}</p>',
    ]
    if meta.get("left_out"):
        out.append(f'<p class="meta">Left out, incomplete in the store: {e("; ".join(meta["left_out"]))}</p>')
    sets = meta.get("wins", {})
    nav = [f'<a href="#set-{e(f)}">problem set {e(f)}</a>' for f in sets]
    nav += [f'<a href="#p{i}">{e(s.title)}</a>' for i, s in enumerate(sections)]
    out.append("<nav>" + "".join(nav) + "</nav>")
    for fam, wins in sets.items():
        out.append(f'<section id="set-{e(fam)}"><h2>Problem set: {e(fam)}</h2>')
        prof = charts.get(f"profile:{fam}", {}).get("profile")
        n_inst = meta.get("instances", {}).get(fam, 0)
        out.append(
            f'<p class="meta">{n_inst} instance{"" if n_inst == 1 else "s"} (a named instance or snapshot where the '
            "family splits its runs so, "
            "else each problem). Wins: the lowest value on an instance (ties count for each).</p>"
        )
        out.append('<div class="figs">')
        out.append(_html_table(["solver", "instances won"], [("", [k, str(v)]) for k, v in wins.items()], 1))
        if prof:
            out.append(
                f"<figure>{_img(prof, 'performance profile of ' + fam)}<figcaption>Dolan-Moré "
                "performance profile</figcaption></figure>"
            )
        out.append("</div>")
        out.append("</section>")
    for i, s in enumerate(sections):
        c = charts.get(s.title, {})
        out.append(f'<section id="p{i}"><h2>{e(s.title)}</h2>')
        if s.description:
            out.append(f"<p>{e(s.description)}</p>")
        others = "".join(f"<br>Other reference: {e(x)}" for x in _other_refs(s))
        out.append(
            f'<p class="meta">Reference: {e(_ref_line(s))}{others}<br>Test set: {e(_test_line(s))}<br>'
            f"Family: {e(s.family or 'unknown')}</p>"
        )
        out.append(_html_table(_headers(s), _table_rows(s), 3))
        notes = [f"{r.label}: gap {r.gap_note}" for r in s.rows + s.bounds if r.gap_note]
        for n in notes:
            out.append(f'<p class="meta">{e(n)}</p>')
        if s.paired:
            body = _html_table(PAIRED_HEADERS, [("", r) for r in _paired_rows(s)], 2)
            out.append(
                f"<details{' open' if len(s.paired) <= 15 else ''}><summary>paired differences on the same test "
                f"scenarios ({len(s.paired)} pairs)</summary>{body}</details>"
            )
        if s.paired_note:
            out.append(f'<p class="meta">{e(s.paired_note)}</p>')
        for w in s.warnings:
            out.append(f'<p class="warn">warning: {e(w)}</p>')
        out.append('<div class="figs">')
        if c.get("gaps"):
            cap = f"gap to the {_kind(s.reference)}" if s.reference else "difference to the best solver"
            out.append(f"<figure>{_img(c['gaps'], 'gaps of ' + s.title)}<figcaption>{e(cap)}</figcaption></figure>")
        if c.get("time"):
            out.append(
                f"<figure>{_img(c['time'], 'quality against time of ' + s.title)}<figcaption>quality against time"
                "</figcaption></figure>"
            )
        if c.get("curves"):
            out.append(
                f"<figure>{_img(c['curves'], 'learning curves of ' + s.title)}<figcaption>learning curves"
                "</figcaption></figure>"
            )
        if s.picture:
            out.append(
                f"<figure>{_img(s.picture, 'picture of ' + s.title)}<figcaption>{e(s.picture_note)}"
                "</figcaption></figure>"
            )
        out.append("</div>")
        out.append(_runs_details(s))
        if not s.picture and s.picture_note:
            out.append(f'<p class="meta">{e(s.picture_note)}</p>')
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(
    store: ResultsStore,
    out_dir: str | Path = "opsrl-report",
    *,
    title: str = "opsrl solver comparison",
    pictures: bool = True,
    problems: Sequence[str] | None = None,
    sweeps: Sequence[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write ``report.html``, ``report.md`` and ``report.json`` (the numbers) into ``out_dir``.

    ``problems`` and ``sweeps`` restrict the report to those problems and to runs of those sweeps.
    """
    from tqdm.auto import tqdm

    if not store.path.exists():
        raise ValueError(f"{store.path}: no results store there (run `opsrl bench` or `opsrl run` first)")
    records, left_out = [], []
    for r in store.records():
        why = incomplete(r)
        if why is None:
            records.append(r)
        else:  # said in the report and by the command, never dropped silently
            left_out.append(f"run {r.get('id')}: {why}")
    if sweeps:
        missing = sorted(set(sweeps) - {r.get("sweep") for r in records})
        if missing:
            raise ValueError(f"{store.path}: no runs of the sweep(s) {', '.join(missing)}")
        records = [r for r in records if r.get("sweep") in set(sweeps)]
    if problems:
        missing = sorted(set(problems) - {r["problem"] for r in records})
        if missing:
            raise ValueError(f"{store.path}: no runs of {', '.join(missing)}")
        records = [r for r in records if r["problem"] in set(problems)]
    if not records:
        if left_out:
            raise ValueError(f"{store.path}: the store holds no complete runs ({'; '.join(left_out[:3])})")
        raise ValueError(f"{store.path}: the store holds no runs")
    sections = summarize(records)
    used = latest_per_cell(records)
    meta = {
        "title": title,
        "store": str(store.path),
        "runs": len(used),
        "left_out": left_out,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": sorted({(r.get("versions") or {}).get("opsrl", "?") for r in used}),
        "hardware": sorted({_hw(r) for r in used}),
    }
    sets = _instance_sets(sections)
    meta["wins"] = wins_table(sections)
    meta["instances"] = {fam: len(v) for fam, v in sets.items()}
    charts: dict[str, dict[str, str | None]] = {}
    for fam, values in sets.items():
        charts[f"profile:{fam}"] = {"profile": profile_chart(fam, values)}
    for s in tqdm(sections, desc="report", unit="problem", disable=not progress, leave=False):
        charts[s.title] = {"gaps": gap_chart(s), "curves": learning_curves(s), "time": time_chart(s)}
        if pictures:
            s.picture, s.picture_note = problem_picture(s)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "report.html", "markdown": out / "report.md", "json": out / "report.json"}
    _write(paths["html"], html_page(sections, meta, charts))
    _write(paths["markdown"], markdown(sections, meta))
    profiles = {fam: dict(zip(("ratios", "instances"), performance_profile(v))) for fam, v in sets.items()}
    doc = {**meta, "profiles": profiles, "problems": [s.as_dict() for s in sections]}
    _write(paths["json"], json.dumps(doc, indent=1, allow_nan=True))
    return {
        **{k: str(v) for k, v in paths.items()},
        "runs": len(used),
        "problems": [s.title for s in sections],
        "left_out": left_out,
    }


_REQUIRED = {"problem": str, "solver": str, "seed": int}


def incomplete(record: dict[str, Any]) -> str | None:
    """Why a stored record cannot be reported (a field missing or of the wrong type), or None."""
    for key, kind in _REQUIRED.items():
        v = record.get(key)
        if not isinstance(v, kind) or isinstance(v, bool):
            return f"{key!r} is {'missing' if v is None else f'{v!r}, not a {kind.__name__}'}"
    cost = record.get("test_cost")
    if not _finite(cost):
        return f"'test_cost' is {'missing' if cost is None else repr(cost)}, not a finite number"
    if not isinstance(record.get("test", {}), dict) or not isinstance(record.get("cell", {}) or {}, dict):
        return "'test' or 'cell' is not a table"
    return None


def _hw(r: dict[str, Any]) -> str:
    hw = r.get("hardware") or {}
    return f"{hw.get('machine', '?')} {hw.get('cpus', '?')} CPUs, {hw.get('gpu') or hw.get('device', 'cpu')}"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
