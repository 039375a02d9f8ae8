"""The solver-comparison report of a results store: one self-contained HTML page and a Markdown summary.

Per problem (a problem name with one configuration and test set; see :mod:`opsrl.bench.cells`):

* a table of solvers: runs (seeds), mean test cost, a 95% confidence interval, the gap to the
  problem's reference (optimum, lower bound or best known, as stored with the runs) with its interval,
  and the mean train and solve (test evaluation) times;
* a bar chart of the gaps, the learning curves of the solvers that learn, and the problem's own
  picture for the best solver.

Statistics, for a solver with runs (seeds) ``i = 1..k``, test costs ``x_i`` and test standard errors
``s_i`` (every run is evaluated on the same test scenarios):

* mean cost ``m = mean(x_i)``;
* ``k = 1``: the interval is ``m +- z * s_1`` with ``z = 1.96`` (normal quantile 0.975): the test
  scenarios' sampling error only;
* ``k >= 2``: half-width ``sqrt((t_{k-1} * sd(x) / sqrt(k))**2 + (z * mean(s_i))**2)``, the seed-to-seed
  spread (Student t quantile 0.975 with ``k - 1`` degrees of freedom) combined with the test sampling
  error, which the seeds share and so do not average out;
* a problem with a single test scenario (one deterministic instance) has no test sampling error to
  estimate: its intervals cover the seed-to-seed spread only, and the report says so;
* with only 2 or 3 runs the Student quantile is large (12.7 for 2 runs) and the report says so; where no
  run and no reference of a problem has a negative cost, the interval's lower end is cut at 0 (said too);
* gap ``100 * (m - r) / |r|`` for the reference ``r``, its half-width ``100 * h / |r|`` (with the
  reference's own standard error added in quadrature when it has one). A problem without a
  reference is compared with its best solver in the report (kind ``best in report``).

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
    train_seconds: float = math.nan
    solve_seconds: float = math.nan
    learns: bool = False

    @property
    def low(self) -> float:
        """The interval's lower end: ``mean - half``, but never below a bound the data respect."""
        return max(self.mean - self.half, self.floor)

    @property
    def seeds(self) -> list[int]:
        return sorted(r["seed"] for r in self.runs)

    @property
    def best_run(self) -> dict[str, Any]:
        return min(self.runs, key=lambda r: (r["test_cost"], r["seed"]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "solver": self.label,
            "method": self.method,
            "runs": len(self.runs),
            "seeds": self.seeds,
            "mean": self.mean,
            "ci_low": self.low,
            "ci_high": self.mean + self.half,
            "ci_half_width": self.half,
            "gap_pct": self.gap,
            "gap_ci_half_width_pct": self.gap_half,
            "train_seconds": self.train_seconds,
            "solve_seconds": self.solve_seconds,
            "run_ids": [r["id"] for r in self.runs],
        }


@dataclass
class ProblemSection:
    problem: str
    title: str
    family: str
    description: str
    reference: dict[str, Any] | None  # {"kind", "value", "source", ...}
    rows: list[SolverRow]
    test: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    picture: str | None = None  # base64 PNG
    picture_note: str = ""

    @property
    def best(self) -> SolverRow:
        return self.rows[0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "title": self.title,
            "family": self.family,
            "reference": self.reference,
            "best": self.best.label,
            "test": self.test,
            "warnings": self.warnings,
            "solvers": [r.as_dict() for r in self.rows],
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
    return isinstance(x, (int, float)) and math.isfinite(x)


def summarize(records: Iterable[dict[str, Any]]) -> list[ProblemSection]:
    """Group runs by problem configuration and solver configuration; compute every number of the report."""
    records = latest_per_cell(records)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["problem"], _problem_hash(r))].append(r)
    hashes_per_name = Counter(name for name, _ in groups)
    sections = []
    for (name, p_hash), runs in sorted(groups.items(), key=lambda kv: (kv[0][0], min(r["id"] for r in kv[1]))):
        warnings: list[str] = []
        one_scenario = False
        title = name if hashes_per_name[name] == 1 else f"{name} (configuration {p_hash[:8]})"
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
        rows = []
        for (label, s_hash), srun in by_solver.items():
            shown = label if labels_count[label] == 1 else f"{label} [{s_hash[:6]}]"
            good = [r for r in srun if _finite(r.get("test_cost"))]
            if len(good) < len(srun):
                warnings.append(f"{shown}: {len(srun) - len(good)} run(s) without a finite test cost left out")
            if not good:
                continue
            seeds = Counter(r["seed"] for r in good)
            if any(n > 1 for n in seeds.values()):
                warnings.append(f"{shown}: several runs of one seed (recorded outside a sweep); all are counted")
            row = SolverRow(shown, good[0].get("method", ""), good)
            costs = [r["test_cost"] for r in good]
            row.mean = sum(costs) / len(costs)
            stderrs = [r.get("test_stderr", math.nan) for r in good]
            single = [not _finite(e) and (r.get("test") or {}).get("n") == 1 for e, r in zip(stderrs, good)]
            if any(single):  # one test scenario (a single deterministic instance): no sampling error to estimate
                stderrs = [0.0 if one else e for e, one in zip(stderrs, single)]
                one_scenario = True
            row.half = confidence_half_width(costs, stderrs)
            row.train_seconds = sum(r.get("train_seconds", math.nan) for r in good) / len(good)
            row.solve_seconds = sum(r.get("eval_seconds", math.nan) for r in good) / len(good)
            row.learns = any(r.get("curve") for r in good)
            rows.append(row)
        if not rows:
            continue
        rows.sort(key=lambda r: (r.mean, r.label))
        # few runs make a wide Student interval that can reach below zero; a cost no run and no reference has
        # ever been negative for is taken as one that cannot be, and its interval is cut at zero (and said so)
        ref_values = [(r.get("reference") or {}).get("value") for r in runs]
        non_negative = all(_finite(x) and x >= 0 for row in rows for x in (rr["test_cost"] for rr in row.runs)) and all(
            v is None or (_finite(v) and v >= 0) for v in ref_values
        )
        for row in rows:
            k = len(row.runs)
            if non_negative:
                row.floor = 0.0
                if row.mean - row.half < 0:
                    warnings.append(f"{row.label}: the 95% interval is cut at 0 (costs here are never negative)")
            if 2 <= k <= 3:
                t = float(stats.t.ppf(0.975, k - 1))
                warnings.append(
                    f"{row.label}: only {k} runs; the seed-to-seed part of its interval uses Student's t "
                    f"with {k - 1} degree{'s' if k > 2 else ''} of freedom ({t:.1f} standard errors), so it "
                    "is wide: more seeds narrow it"
                )
        if one_scenario:
            warnings.append("one test scenario: intervals cover the seed-to-seed spread only (zero for one seed)")
        refs = Counter(json.dumps(r["reference"], sort_keys=True) for r in runs if r.get("reference"))
        if refs:
            reference = json.loads(refs.most_common(1)[0][0])
            if len(refs) > 1:
                warnings.append(f"runs carry {len(refs)} different references; the most common one is used")
        else:
            reference = {
                "kind": "best in report",
                "value": rows[0].mean,
                "source": f"no known optimum or bound; best mean cost here ({rows[0].label})",
            }
        ref_value = reference["value"]
        if _finite(ref_value) and ref_value != 0:
            ref_half = Z95 * reference["stderr"] if _finite(reference.get("stderr")) else 0.0
            for row in rows:
                row.gap = 100.0 * (row.mean - ref_value) / abs(ref_value)
                row.gap_half = 100.0 * math.hypot(row.half, ref_half) / abs(ref_value)
        test_hashes = {(r.get("test") or {}).get("scenarios_hash") for r in runs}
        if len(test_hashes) > 1:
            warnings.append("the runs were not all evaluated on the same test scenarios; compare with care")
        t = runs[0].get("test") or {}
        test = {k: t.get(k) for k in ("n", "periods", "warmup", "metric", "scenarios_hash")}
        family = runs[0].get("family") or _family_of(runs[0])
        sections.append(
            ProblemSection(name, title, family, runs[0].get("problem_description", ""), reference, rows, test, warnings)
        )
    return sections


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
    from matplotlib.figure import Figure

    rows = [r for r in section.rows if r.gap is not None]
    if not rows:
        return None
    fig = Figure(figsize=(6.4, 0.45 * len(rows) + 1.2))
    ax = fig.subplots()
    y = list(range(len(rows)))[::-1]
    ax.barh(y, [r.gap for r in rows], xerr=[r.gap_half for r in rows], color=_colors(len(rows)), capsize=3)
    ax.set_yticks(y, [r.label for r in rows])
    ax.axvline(0.0, color="black", lw=0.8)
    kind = section.reference["kind"]
    ax.set_xlabel(f"gap to {kind} (%), 95% interval")
    ax.grid(axis="x", alpha=0.3)
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
    if ref and ref["kind"] != "best in report" and _finite(ref["value"]):
        ax.axhline(ref["value"], color="black", ls="--", lw=0.8, label=f"{ref['kind']} {ref['value']:.4g}")
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


def _table_rows(section: ProblemSection) -> list[list[str]]:
    out = []
    for r in section.rows:
        ci = f"[{_num(r.low)}, {_num(r.mean + r.half)}]"
        gap = "n/a" if r.gap is None else f"{_num(r.gap, 2)} ± {_num(r.gap_half, 2)}"
        out.append(
            [r.label, r.method, str(len(r.runs)), _num(r.mean), ci, gap, _secs(r.train_seconds), _secs(r.solve_seconds)]
        )
    return out


HEADERS = ["solver", "method", "runs", "mean cost", "95% CI", "gap %", "train s", "solve s"]


def _ref_line(section: ProblemSection) -> str:
    ref = section.reference
    src = f" ({ref['source']})" if ref.get("source") else ""
    return f"{ref['kind']} {_num(ref['value'])}{src}"


def _test_line(section: ProblemSection) -> str:
    t = section.test
    return (
        f"{t.get('n')} test scenarios of {t.get('periods')} periods, warm-up {t.get('warmup')}, "
        f"metric {t.get('metric')}"
    )


def markdown(sections: Sequence[ProblemSection], meta: dict[str, Any]) -> str:
    lines = [
        f"# {meta['title']}",
        "",
        f"{meta['runs']} runs from `{meta['store']}`, written {meta['created']}. "
        "Costs are mean test costs; intervals are 95% (see docs/bench.md). Charts and pictures: report.html.",
        "",
    ]
    for s in sections:
        lines += [f"## {s.title}", ""]
        if s.description:
            lines += [s.description, ""]
        lines += [f"Reference: {_ref_line(s)}.  ", f"Test set: {_test_line(s)}.  ", f"Best: **{s.best.label}**.", ""]
        lines.append("| " + " | ".join(HEADERS) + " |")
        lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(HEADERS) - 2)) + "|")
        for row in _table_rows(s):
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        lines.append("")
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
tr.best td{font-weight:600}.meta{color:#555;font-size:.92em}.warn{color:#a0522d}
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
    for row in section.rows:
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
    for row in section.rows:
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
        "Mean test costs over runs (seeds), every run on the problem's same test scenarios; 95% intervals combine "
        "the seed-to-seed spread and the test sampling error (docs/bench.md).</p>",
        f'<p class="meta">opsrl {e(", ".join(meta["versions"]))}; hardware {e("; ".join(meta["hardware"]))}</p>',
    ]
    out.append("<nav>" + "".join(f'<a href="#p{i}">{e(s.title)}</a>' for i, s in enumerate(sections)) + "</nav>")
    for i, s in enumerate(sections):
        c = charts.get(s.title, {})
        out.append(f'<section id="p{i}"><h2>{e(s.title)}</h2>')
        if s.description:
            out.append(f"<p>{e(s.description)}</p>")
        out.append(
            f'<p class="meta">Reference: {e(_ref_line(s))}<br>Test set: {e(_test_line(s))}<br>'
            f"Family: {e(s.family or 'unknown')}</p>"
        )
        out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in HEADERS) + "</tr></thead><tbody>")
        for j, row in enumerate(_table_rows(s)):
            cls = ' class="best"' if j == 0 else ""
            cells = "".join(f"<td>{e(v)}</td>" if k < 2 else f'<td class="n">{e(v)}</td>' for k, v in enumerate(row))
            out.append(f"<tr{cls}>{cells}</tr>")
        out.append("</tbody></table>")
        for w in s.warnings:
            out.append(f'<p class="warn">warning: {e(w)}</p>')
        out.append('<div class="figs">')
        if c.get("gaps"):
            out.append(
                f"<figure>{_img(c['gaps'], 'gaps of ' + s.title)}<figcaption>gap to the {e(s.reference['kind'])}"
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
    records = list(store.records())
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
        raise ValueError(f"{store.path}: the store holds no runs")
    sections = summarize(records)
    used = latest_per_cell(records)
    meta = {
        "title": title,
        "store": str(store.path),
        "runs": len(used),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": sorted({(r.get("versions") or {}).get("opsrl", "?") for r in used}),
        "hardware": sorted({_hw(r) for r in used}),
    }
    charts: dict[str, dict[str, str | None]] = {}
    for s in tqdm(sections, desc="report", unit="problem", disable=not progress, leave=False):
        charts[s.title] = {"gaps": gap_chart(s), "curves": learning_curves(s)}
        if pictures:
            s.picture, s.picture_note = problem_picture(s)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "report.html", "markdown": out / "report.md", "json": out / "report.json"}
    _write(paths["html"], html_page(sections, meta, charts))
    _write(paths["markdown"], markdown(sections, meta))
    _write(paths["json"], json.dumps({**meta, "problems": [s.as_dict() for s in sections]}, indent=1, allow_nan=True))
    return {**{k: str(v) for k, v in paths.items()}, "runs": len(used), "problems": [s.title for s in sections]}


def _hw(r: dict[str, Any]) -> str:
    hw = r.get("hardware") or {}
    return f"{hw.get('machine', '?')} {hw.get('cpus', '?')} CPUs, {hw.get('gpu') or hw.get('device', 'cpu')}"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
