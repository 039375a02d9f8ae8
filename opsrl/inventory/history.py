"""Real demand histories: a loader, a data-driven single-store problem and newsvendor baselines.

Analysts bring their own data, one demand series per store/item (details in ``docs/inventory_history.md``):

* **long** layout (the default): one row per (date, item) with columns ``date``, ``item`` and ``demand``
  (names configurable: ``data.date_column``, ``data.item_column``, ``data.demand_column``);
* **wide** layout: a ``date`` column and one column per series (every other column, or ``data.items``).

CSV or Parquet (``data.format = "auto"`` picks by suffix; Parquet needs pandas and pyarrow). Demand must be
numeric, finite and >= 0; every series must have exactly one value for every period (``data.freq`` =
``"day"`` or ``"week"``) between the first and last date of the file: no gaps, no duplicates. Bad input
stops with one :class:`~opsrl.core.ConfigError` naming the problem file, the key, the data file, the
column and row, and what is allowed.

The periods are split chronologically, never shuffled: train, then dev, then test
(``data.dev_fraction`` / ``data.test_fraction``, or the first dev and test dates ``data.dev_start`` /
``data.test_start``).

:class:`DemandHistory` (``model = "data_driven"``) is the single store of :mod:`.single_store` (same
dynamics, reused by composition: lead time L, lost sales or backlog, holding/shortage/ordering costs) run
on windows of the actual history. The batch is items x windows: training windows are drawn at random
(series and start) inside the train periods; dev and test windows are fixed (series cycle fastest, starts
spread evenly over the split), by default one window per series covering the whole test span. A policy
sees at period t the inventory state, the last k demands (up to t - 1) and the calendar features of t,
all in units of the series' *scale* (its mean train demand). **Actions are orders in units of that scale**
(order 1.0 = one mean period of demand), so that one network serves series of any size; costs are in
the data's own units.

Baselines (methods of the inventory family): order up to the critical-fractile quantile p/(p+h) of
(L+1)-period demand of each series, estimated on its train periods: ``newsvendor_saa`` (empirical
quantile: sample average approximation), ``newsvendor_normal`` (Normal fit of the period demand) and
``newsvendor_seasonal`` (empirical quantile per day of the week of the order).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from ..core import (
    ActionSpec,
    ConfigError,
    Field,
    Method,
    Problem,
    Scenarios,
    SolveContext,
    SolveOutcome,
    State,
    generator,
    numpy_rng,
    validate,
)
from ..core.config import non_negative, positive
from .single_store import SingleStore

FREQS = {"day": 1, "week": 7}
CALENDAR = {"day_of_week": 7, "month": 12, "year_cycle": 2}

DATA_SCHEMA = {
    "path": Field(
        str, allowed="a CSV or Parquet file, relative to the problem file (or 'opsrl:<path in the package>')"
    ),
    "format": Field(str, "auto", choices=("auto", "csv", "parquet")),
    "layout": Field(str, "long", choices=("long", "wide")),
    "date_column": Field(str, "date"),
    "item_column": Field(str, "item", doc="long layout: the series key (store, item, store-item ...)"),
    "demand_column": Field(str, "demand", doc="long layout: the demand column"),
    "items": Field(list, [], item=str, doc="series to keep (default: all)"),
    "freq": Field(str, "day", choices=tuple(FREQS)),
    "dev_fraction": Field(float, 0.2, allowed="a fraction in (0, 1)", check=lambda v: 0 < v < 1),
    "test_fraction": Field(float, 0.2, allowed="a fraction in (0, 1)", check=lambda v: 0 < v < 1),
    "dev_start": Field(str, "", allowed="an ISO date (first dev period); overrides dev_fraction"),
    "test_start": Field(str, "", allowed="an ISO date (first test period); overrides test_fraction"),
}

FEATURES_SCHEMA = {
    "lags": Field(int, 7, allowed="an integer from 0 to 10^4 (past demands observed)", check=non_negative, max=10**4),
    "calendar": Field(
        list,
        ["auto"],
        item=str,
        allowed="a list of " + ", ".join(CALENDAR) + " (['auto']: day_of_week and month for daily "
        "data, month for weekly data; []: none)",
    ),
}

INITIAL_SCHEMA = {
    "low": Field(float, 0.0, allowed="a number >= 0 (in units of the series' scale)", check=non_negative),
    "high": Field(float, 2.0, allowed="a number >= low (in units of the series' scale)", check=non_negative),
}

TEST_SCHEMA = {
    "scenarios": Field(int, 0, allowed="an integer >= 0 (0: one window per series)", check=non_negative),
    "periods": Field(int, 0, allowed="an integer >= 0 (0: the whole test span)", check=non_negative),
    "warmup": Field(int, 14, allowed="an integer >= 0", check=non_negative),
    "seed": Field(int, 0, allowed="an integer >= 0", check=non_negative),
}

SCHEMA = {
    "model": Field(str, "data_driven", choices=("data_driven",)),
    "lead_time": Field(int, allowed="an integer >= 0", check=non_negative),
    "holding_cost": Field(float, allowed="a number >= 0", check=non_negative),
    "shortage_cost": Field(float, allowed="a number > 0", check=positive),
    "ordering_cost": Field(float, 0.0, allowed="a number >= 0", check=non_negative),
    "unmet": Field(str, "lost_sales", choices=("lost_sales", "backlog")),
    "periods": Field(int, 56, allowed="a positive integer (training window length)", check=positive),
    "warmup": Field(int, 14, allowed="an integer >= 0 (periods left out of the training loss)", check=non_negative),
    "data": Field(dict, allowed="a table", schema=DATA_SCHEMA),
    "features": Field(dict, {}, schema=FEATURES_SCHEMA),
    "initial": Field(dict, {}, schema=INITIAL_SCHEMA),
    "test": Field(dict, {}, schema=TEST_SCHEMA),
}


# --- loading ---------------------------------------------------------------------------------------


@dataclass
class History:
    """Demand ``[S, T]`` of ``S`` series over ``T`` consecutive periods ``dates`` (``datetime64[D]``)."""

    dates: np.ndarray
    items: list[str]
    demand: np.ndarray
    freq: str = "day"
    path: str = ""

    @property
    def periods(self) -> int:
        return self.demand.shape[1]


def resolve_path(path: str, base: Path | None) -> Path:
    """``opsrl:<path>`` is a file inside the installed package; other relative paths start at ``base``."""
    if path.startswith("opsrl:"):
        from importlib import resources

        return Path(str(resources.files("opsrl") / path[len("opsrl:") :]))
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return p


def _read(path: Path, fmt: str, source: str, key: str):
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas comes with ortools
        raise ConfigError(source, key, "reading demand histories needs pandas (pip install pandas)") from None
    if fmt == "auto":
        fmt = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
    if not path.is_file():
        raise ConfigError(source, key, f"file not found: {path}")
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except ImportError as e:
        raise ConfigError(source, "data.format", f"Parquet input needs pyarrow (pip install pyarrow): {e}") from None
    except Exception as e:  # noqa: BLE001 - any parser error is a bad file
        raise ConfigError(source, key, f"{path.name} could not be read as {fmt.upper()}: {e}") from None


def _numbers(values, name: str, rows: np.ndarray, fname: str, source: str, key: str) -> np.ndarray:
    """Demand values as floats; one error for the first empty, non-numeric, NaN or negative value."""
    import pandas as pd

    s = pd.Series(values).reset_index(drop=True)
    text = s.astype(str).str.strip()
    empty = s.isna().to_numpy() | text.str.lower().isin(["", "nan", "na", "n/a", "null", "none"]).to_numpy()
    num = pd.to_numeric(s.where(~empty), errors="coerce").to_numpy(dtype=float)
    bad = ~empty & ~np.isfinite(num)
    if empty.any():
        i = int(np.argmax(empty))
        raise ConfigError(
            source,
            key,
            f"{fname}: column '{name}' has a missing or NaN value at data row "
            f"{rows[i]}; every period needs a demand >= 0",
        )
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(
            source,
            key,
            f"{fname}: column '{name}' has a non-numeric or infinite value "
            f"{s.iloc[i]!r} at data row {rows[i]}; demand must be a number >= 0",
        )
    if (num < 0).any():
        i = int(np.argmax(num < 0))
        raise ConfigError(
            source,
            key,
            f"{fname}: column '{name}' has a negative demand {num[i]:g} at data row {rows[i]}; demand must be >= 0",
        )
    return num


def _dates(values, name: str, rows: np.ndarray, fname: str, source: str, key: str) -> np.ndarray:
    import pandas as pd

    parsed = pd.to_datetime(pd.Series(values).reset_index(drop=True), errors="coerce")
    if parsed.isna().any():
        i = int(np.argmax(parsed.isna().to_numpy()))
        raise ConfigError(
            source,
            key,
            f"{fname}: column '{name}' has a value that is not a date, "
            f"{values.iloc[i] if hasattr(values, 'iloc') else values[i]!r}, at data row {rows[i]}; "
            "dates must be ISO dates such as 2024-01-31",
        )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.dt.normalize().to_numpy().astype("datetime64[D]")


def _check_calendar(dates: np.ndarray, freq: str, fname: str, source: str, key: str, what: str = "") -> np.ndarray:
    """The full range of periods from the first to the last date; error on misaligned dates."""
    step = FREQS[freq]
    first, last = dates.min(), dates.max()
    offset = (dates - first).astype(np.int64)
    if (offset % step).any():
        i = int(np.argmax(offset % step != 0))
        raise ConfigError(
            source,
            "data.freq",
            f"{fname}: date {dates[i]} is not a whole number of {freq}s after "
            f"the first date {first}; with freq = '{freq}' dates are {step} day(s) apart",
        )
    return np.arange(first, last + np.timedelta64(step, "D"), np.timedelta64(step, "D"))


def load_history(
    path: str | Path,
    *,
    layout: str = "long",
    fmt: str = "auto",
    date_column: str = "date",
    item_column: str = "item",
    demand_column: str = "demand",
    freq: str = "day",
    items: list[str] | None = None,
    source: str | Path | None = None,
    key: str = "data.path",
) -> History:
    """Read and check a demand history (see the module docstring for the layouts and the rules).

    ``source`` is the config file named in errors (default: the data file itself); ``key`` the config key
    naming the file.
    """
    path = Path(path)
    source = str(source if source is not None else path)
    if freq not in FREQS:
        raise ConfigError(source, "data.freq", f"{freq!r} is not allowed; choose one of {', '.join(FREQS)}")
    if layout not in ("long", "wide"):
        raise ConfigError(source, "data.layout", f"{layout!r} is not allowed; choose 'long' or 'wide'")
    frame = _read(path, fmt, source, key)
    fname = path.name
    cols = [str(c) for c in frame.columns]
    frame.columns = cols
    need = {"data.date_column": date_column}
    if layout == "long":
        need |= {"data.item_column": item_column, "data.demand_column": demand_column}
    for k, col in need.items():
        if col not in cols:
            raise ConfigError(
                source,
                k,
                f"{fname} has no column '{col}'; its columns are {', '.join(cols) or 'none'}"
                f" ({layout} layout needs {', '.join(repr(c) for c in need.values())})",
            )
    if len(frame) == 0:
        raise ConfigError(source, key, f"{fname} has no data rows")
    rows = np.arange(1, len(frame) + 1)  # data rows, 1-based (the header is not counted)
    dates = _dates(frame[date_column], date_column, rows, fname, source, key)

    if layout == "long":
        names = frame[item_column].astype(str).str.strip().to_numpy()
        demand = _numbers(frame[demand_column], demand_column, rows, fname, source, key)
        keys = np.char.add(dates.astype(str).astype("U10"), np.char.add("|", names.astype("U")))
        uniq, first_idx, counts = np.unique(keys, return_index=True, return_counts=True)
        if (counts > 1).any():
            k0 = uniq[np.argmax(counts > 1)]
            dup = rows[keys == k0][:2]
            d0, i0 = k0.split("|", 1)
            raise ConfigError(
                source,
                key,
                f"{fname}: duplicate ({date_column}, {item_column}) = ({d0}, {i0}) at data "
                f"rows {dup[0]} and {dup[1]}; each series has one row per period",
            )
        series = list(dict.fromkeys(names))  # order of first appearance
        calendar = _check_calendar(dates, freq, fname, source, key)
        T, S = len(calendar), len(series)
        step = FREQS[freq]
        col = (dates - calendar[0]).astype(np.int64) // step
        lookup = {n: i for i, n in enumerate(series)}
        row = np.fromiter((lookup[n] for n in names), dtype=np.int64, count=len(names))
        table = np.full((S, T), np.nan)
        table[row, col] = demand
        missing = np.isnan(table)
        if missing.any():
            s, t = np.argwhere(missing)[0]
            raise ConfigError(
                source,
                key,
                f"{fname}: series '{series[s]}' has no row for {calendar[t]} (a gap: "
                f"{int(missing.sum())} (date, item) pairs missing); every series needs one row per "
                f"{freq} from {calendar[0]} to {calendar[-1]}",
            )
    else:
        value_cols = [c for c in cols if c != date_column]
        if not value_cols:
            raise ConfigError(
                source, key, f"{fname}: the wide layout needs one column per series besides '{date_column}'"
            )
        order = np.argsort(dates, kind="stable")
        sd = dates[order]
        if len(sd) > 1 and (sd[1:] == sd[:-1]).any():
            i = int(np.argmax(sd[1:] == sd[:-1]))
            a, b = sorted((rows[order][i], rows[order][i + 1]))
            raise ConfigError(
                source,
                key,
                f"{fname}: duplicate {date_column} {sd[i]} at data rows {a} and {b}; "
                "the wide layout has one row per period",
            )
        calendar = _check_calendar(dates, freq, fname, source, key)
        if len(calendar) != len(dates):
            present = np.isin(calendar, dates)
            raise ConfigError(
                source,
                key,
                f"{fname}: no row for {calendar[np.argmin(present)]} (a gap: "
                f"{int((~present).sum())} periods missing); one row per {freq} from {calendar[0]} to "
                f"{calendar[-1]} is required",
            )
        series = value_cols
        table = np.stack([_numbers(frame[c].iloc[order], c, rows[order], fname, source, key) for c in value_cols])
    if items:
        unknown = [i for i in items if i not in series]
        if unknown:
            raise ConfigError(
                source,
                "data.items",
                f"{fname} has no series {unknown[0]!r}; its series are "
                f"{', '.join(series[:20])}{' ...' if len(series) > 20 else ''}",
            )
        table = table[[series.index(i) for i in items]]
        series = list(items)
    return History(calendar, [str(s) for s in series], table.astype(np.float64), freq, str(path))


def split_bounds(history: History, cfg: Mapping[str, Any], source: str) -> dict[str, tuple[int, int]]:
    """Chronological ``[start, end)`` period ranges of train, dev and test."""
    T = history.periods

    def at(date: str, k: str) -> int:
        try:
            d = np.datetime64(date, "D")
        except ValueError:
            raise ConfigError(source, k, f"{date!r} is not an ISO date such as 2024-01-31") from None
        if not history.dates[0] < d <= history.dates[-1]:
            raise ConfigError(
                source, k, f"{date} is outside the history (after {history.dates[0]}, up to {history.dates[-1]})"
            )
        return int(np.searchsorted(history.dates, d))

    test0 = at(cfg["test_start"], "data.test_start") if cfg["test_start"] else T - int(round(cfg["test_fraction"] * T))
    dev0 = at(cfg["dev_start"], "data.dev_start") if cfg["dev_start"] else test0 - int(round(cfg["dev_fraction"] * T))
    key = "data.dev_start" if cfg["dev_start"] else "data.dev_fraction"
    if not 0 < dev0 < test0 < T:
        raise ConfigError(
            source,
            key,
            f"the history has {T} periods ({history.dates[0]} .. {history.dates[-1]}); "
            f"the split leaves train {max(dev0, 0)}, dev {max(test0 - dev0, 0)}, test {T - test0} "
            "periods: each needs at least one (train, then dev, then test)",
        )
    return {"train": (0, dev0), "dev": (dev0, test0), "test": (test0, T)}


def calendar_features(dates: np.ndarray, names: list[str]) -> np.ndarray:
    """Features ``[T, C]`` of each date: day_of_week (one-hot 7), month (one-hot 12), year_cycle (sin, cos)."""
    out = []
    d = dates.astype("datetime64[D]")
    for name in names:
        if name == "day_of_week":
            dow = (d.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
            out.append(np.eye(7)[dow])
        elif name == "month":
            month = d.astype("datetime64[M]").astype(np.int64) % 12
            out.append(np.eye(12)[month])
        elif name == "year_cycle":
            doy = (d - d.astype("datetime64[Y]")).astype(np.int64)
            ang = 2 * np.pi * doy / 365.25
            out.append(np.stack([np.sin(ang), np.cos(ang)], axis=1))
    return np.concatenate(out, axis=1) if out else np.zeros((len(d), 0))


def day_of_week(dates: np.ndarray) -> np.ndarray:
    return (dates.astype("datetime64[D]").astype(np.int64) + 3) % 7


# --- the problem -----------------------------------------------------------------------------------


class DemandHistory(Problem):
    """A single store per series, run on windows of a demand history; see the module docstring.

    State: ``x`` (the single store's inventory state, data units), ``lags`` (last k demands), ``period``
    (index of the current period in the history), ``item`` (series index), ``scale`` (series scale).
    """

    family = "inventory"

    def __init__(
        self,
        history: History,
        bounds: Mapping[str, tuple[int, int]],
        lead_time: int,
        holding_cost: float,
        shortage_cost: float,
        unmet: str = "lost_sales",
        ordering_cost: float = 0.0,
        periods: int = 56,
        warmup: int = 14,
        lags: int = 7,
        calendar: list[str] | None = None,
        initial: tuple[float, float] = (0.0, 2.0),
        test: Mapping[str, int] | None = None,
    ):
        self.history, self.bounds = history, dict(bounds)
        a, b = self.bounds["train"]
        train = history.demand[:, a:b]
        scale = train.mean(axis=1)
        # a series with no train demand gets the overall mean as its scale (so that features stay finite)
        scale = np.where(scale > 0, scale, max(float(history.demand.mean()), 1.0))
        self.scales = scale
        # the dynamics are the single store's (demand level only matters for its own observe, not used here)
        self.store = SingleStore(
            lead_time,
            holding_cost,
            shortage_cost,
            float(scale.mean()),
            1.0,
            "normal",
            unmet,
            ordering_cost,
            periods,
            warmup,
        )
        self.L, self.h, self.p, self.c, self.unmet = self.store.L, self.store.h, self.store.p, self.store.c, unmet
        self.periods, self.warmup, self.lags = int(periods), int(warmup), int(lags)
        if calendar is None or calendar == ["auto"]:
            calendar = ["day_of_week", "month"] if history.freq == "day" else ["month"]
        self.calendar = list(calendar)
        step = np.timedelta64(FREQS[history.freq], "D")
        dates = np.append(history.dates, history.dates[-1] + step)  # one more: the state after the last period
        self._cal = torch.as_tensor(calendar_features(dates, self.calendar), dtype=self.dtype)
        self._demand = torch.as_tensor(history.demand, dtype=torch.float64)
        self.initial = initial
        test = dict(test or {})
        self.test_scenarios = test.get("scenarios") or len(history.items)
        self.test_periods = test.get("periods") or self.span("test")
        self.test_warmup = test.get("warmup", 14)
        self.test_seed = test.get("seed", 0)
        self.action_spec = ActionSpec("continuous", (1,), 0.0, math.inf, integer=False)
        self.action_scale = 1.0  # orders are in units of the series' scale
        self.name = f"data_driven_{Path(history.path).stem or 'history'}"
        self.config = {}

    # --- scenarios -----------------------------------------------------------------------------
    def span(self, split: str) -> int:
        a, b = self.bounds[split]
        return b - a

    @property
    def state_dim(self) -> int:
        return max(self.L, 1)

    def sample(
        self, n: int, split: str, seed: int, periods: int | None = None, device: str | torch.device = "cpu"
    ) -> Scenarios:
        """Windows of ``periods`` periods (at most the split's own length: longer requests are shortened)."""
        periods = self.periods if periods is None else int(periods)
        if split in self.bounds and periods > 0:
            periods = min(periods, self.span(split))
        return super().sample(n, split, seed, periods, device)

    def windows(self, n: int, split: str, seed: int, periods: int) -> tuple[np.ndarray, np.ndarray]:
        """Series and first period of each window: random in train, fixed and evenly spread in dev/test."""
        a, b = self.bounds[split]
        S = len(self.history.items)
        if split == "train":
            rng = numpy_rng(seed, split, "windows")
            return rng.integers(0, S, n), rng.integers(a, b - periods + 1, n)
        m = -(-n // S)
        starts = a + np.round(np.linspace(0, b - periods - a, m)).astype(np.int64)
        j = np.arange(n)
        return j % S, starts[j // S]

    def _sample(self, n: int, split: str, seed: int, periods: int) -> dict[str, torch.Tensor]:
        item, start = self.windows(n, split, seed, periods)
        D = self.history.demand
        demand = D[item[:, None], start[:, None] + np.arange(periods)[None, :]]
        lag_idx = start[:, None] - self.lags + np.arange(self.lags)[None, :]
        scale = self.scales[item]
        history = np.where(lag_idx >= 0, D[item[:, None], np.clip(lag_idx, 0, None)], scale[:, None])
        lo, hi = self.initial
        g0 = generator(seed, split, "initial")
        x0 = lo + (hi - lo) * torch.rand(n, self.state_dim, generator=g0, dtype=torch.float64)
        x0 = x0 * torch.as_tensor(scale)[:, None]
        return {
            "demand": torch.as_tensor(demand, dtype=self.dtype),
            "history": torch.as_tensor(history, dtype=self.dtype).reshape(n, self.lags),
            "initial": x0.to(self.dtype),
            "item": torch.as_tensor(item, dtype=torch.long),
            "start": torch.as_tensor(start, dtype=torch.long),
            "scale": torch.as_tensor(scale, dtype=self.dtype),
        }

    # --- dynamics (the single store's, on data units) --------------------------------------------
    def initial_state(self, scenarios: Scenarios) -> State:
        return {
            "x": scenarios["initial"],
            "lags": scenarios["history"],
            "period": scenarios["start"],
            "item": scenarios["item"],
            "scale": scenarios["scale"],
        }

    def post_decision(self, state: State, action: torch.Tensor) -> tuple[State, torch.Tensor]:
        order = action.reshape(-1, 1).clamp_min(0.0) * state["scale"][:, None]
        post, cost = self.store.post_decision({"x": state["x"]}, order)
        return {**state, "x": post["x"]}, cost

    def transition(self, post_state: State, scenarios: Scenarios, t: int) -> tuple[State, torch.Tensor]:
        nxt, cost = self.store.transition({"x": post_state["x"]}, scenarios, t)
        d = scenarios["demand"][:, t : t + 1]
        lags = torch.cat([post_state["lags"][:, 1:], d], dim=1) if self.lags else post_state["lags"]
        return {**post_state, "x": nxt["x"], "lags": lags, "period": post_state["period"] + 1}, cost

    # --- views ---------------------------------------------------------------------------------
    def _calendar(self, period: torch.Tensor) -> torch.Tensor:
        if self._cal.device != period.device:
            self._cal = self._cal.to(period.device)
        return self._cal[period]

    def observe(self, state: State) -> torch.Tensor:
        s = state["scale"][:, None]
        x = state["x"] / s
        return torch.cat(
            [x, x.sum(dim=1, keepdim=True), state["lags"] / s, self._calendar(state["period"]).to(x.dtype)], dim=1
        )

    def observe_post(self, post_state: State) -> torch.Tensor:
        return self.observe(post_state)

    def describe(self) -> str:
        h = self.history
        b = self.bounds
        return (
            f"data-driven single store, {self.unmet.replace('_', ' ')}, L={self.L}, h={self.h:g}, p={self.p:g}; "
            f"{len(h.items)} series x {h.periods} {h.freq}s from {Path(h.path).name} "
            f"(train {self.span('train')}, dev {self.span('dev')}, test {self.span('test')} periods, "
            f"test from {h.dates[b['test'][0]]})"
        )

    # --- statistics of the train periods (what the baselines may use) -----------------------------
    def train_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """(L+1)-period demand sums ``[S, n]`` starting at each train period t (t + L still in train),
        and the day of week of each t ``[n]``."""
        a, b = self.bounds["train"]
        D = self.history.demand[:, a:b]
        k = self.L + 1
        sums = np.lib.stride_tricks.sliding_window_view(D, k, axis=1).sum(axis=2)  # exact sums (no cumsum)
        return sums, day_of_week(self.history.dates[a : b - k + 1])


def build(config: Mapping[str, Any], source: str) -> DemandHistory:
    cfg = validate(config, SCHEMA, source)
    d = cfg["data"]
    base = Path(source).parent if Path(source).is_file() else None
    path = resolve_path(d["path"], base)
    history = load_history(
        path,
        layout=d["layout"],
        fmt=d["format"],
        date_column=d["date_column"],
        item_column=d["item_column"],
        demand_column=d["demand_column"],
        freq=d["freq"],
        items=d["items"],
        source=source,
    )
    bounds = split_bounds(history, d, source)
    feats = cfg["features"]
    cal = feats["calendar"]
    for i, name in enumerate(cal):
        if name not in CALENDAR and not (name == "auto" and len(cal) == 1):
            raise ConfigError(
                source,
                f"features.calendar[{i}]",
                f"{name!r} is not a calendar feature; allowed: {', '.join(CALENDAR)} (or ['auto'] alone)",
            )
    if "day_of_week" in cal and d["freq"] != "day":
        raise ConfigError(source, "features.calendar", "day_of_week needs daily data (data.freq = 'day')")
    span = {k: b - a for k, (a, b) in bounds.items()}
    if cfg["periods"] > span["train"]:
        raise ConfigError(
            source,
            "periods",
            f"a training window of {cfg['periods']} periods does not fit in the "
            f"{span['train']} train periods of {path.name}; use a shorter window or more train data",
        )
    if cfg["warmup"] >= cfg["periods"]:
        raise ConfigError(source, "warmup", f"must be less than periods ({cfg['periods']})")
    if span["train"] < cfg["lead_time"] + 2:
        raise ConfigError(
            source,
            "data.dev_fraction",
            f"{span['train']} train periods are too few for lead time "
            f"{cfg['lead_time']} (the baselines need at least L + 2)",
        )
    if span["dev"] <= cfg["warmup"]:
        raise ConfigError(
            source, "data.dev_fraction", f"the {span['dev']} dev periods must exceed the warm-up ({cfg['warmup']})"
        )
    t = cfg["test"]
    test_periods = min(t["periods"] or span["test"], span["test"])
    if t["warmup"] >= test_periods:
        raise ConfigError(source, "test.warmup", f"must be less than the {test_periods} test periods")
    init = cfg["initial"]
    if init["high"] < init["low"]:
        raise ConfigError(source, "initial.high", f"must be >= initial.low ({init['low']})")
    problem = DemandHistory(
        history,
        bounds,
        cfg["lead_time"],
        cfg["holding_cost"],
        cfg["shortage_cost"],
        cfg["unmet"],
        cfg["ordering_cost"],
        cfg["periods"],
        cfg["warmup"],
        feats["lags"],
        cal,
        (init["low"], init["high"]),
        {**t, "periods": test_periods},
    )
    problem.config = cfg
    return problem


# --- newsvendor baselines --------------------------------------------------------------------------


class OrderUpTo(torch.nn.Module):
    """Order ``(level - inventory position)^+`` with a level per series (``levels [S]``) or per series
    and day of the week of the order (``levels [S, 7]``, with ``dow [T + 1]`` of each history period)."""

    def __init__(self, levels: np.ndarray, dow: np.ndarray | None = None):
        super().__init__()
        self.register_buffer("levels", torch.as_tensor(levels, dtype=torch.float32))
        self.register_buffer("dow", None if dow is None else torch.as_tensor(dow, dtype=torch.long))

    def forward(self, state: State, t: int = 0) -> torch.Tensor:
        item = state["item"]
        level = self.levels[item] if self.dow is None else self.levels[item, self.dow[state["period"]]]
        ip = state["x"].sum(dim=1)
        return ((level.to(ip) - ip).clamp_min(0.0) / state["scale"])[:, None]


def critical_fractile(problem: DemandHistory, fractile: float = -1.0) -> float:
    return fractile if fractile > 0 else problem.p / (problem.p + problem.h)


def saa_levels(problem: DemandHistory, fractile: float = -1.0) -> np.ndarray:
    """Empirical (SAA) quantile of each series' (L+1)-period train demand: the smallest level S whose
    empirical CDF reaches the fractile, which minimises the sample-average newsvendor cost."""
    sums, _ = problem.train_sums()
    return np.quantile(sums, critical_fractile(problem, fractile), axis=1, method="inverted_cdf")


def normal_levels(problem: DemandHistory, fractile: float = -1.0) -> np.ndarray:
    """(L+1) m + z sqrt(L+1) s with m, s the mean and standard deviation of each series' train demand."""
    a, b = problem.bounds["train"]
    D = problem.history.demand[:, a:b]
    z = stats.norm.ppf(critical_fractile(problem, fractile))
    k = problem.L + 1
    return np.maximum(k * D.mean(axis=1) + z * math.sqrt(k) * D.std(axis=1, ddof=1), 0.0)


def seasonal_levels(problem: DemandHistory, fractile: float = -1.0) -> np.ndarray:
    """Empirical quantile per series and day of the week of the order ``[S, 7]``."""
    sums, dow = problem.train_sums()
    q = critical_fractile(problem, fractile)
    out = np.empty((sums.shape[0], 7))
    for w in range(7):
        sel = sums[:, dow == w]
        out[:, w] = (
            np.quantile(sel, q, axis=1, method="inverted_cdf")
            if sel.shape[1]
            else np.quantile(sums, q, axis=1, method="inverted_cdf")
        )
    return out


NEWSVENDOR_OPTIONS = {
    "fractile": Field(
        float,
        -1.0,
        allowed="a quantile level in (0, 1) (default: the critical fractile p/(p+h))",
        check=lambda v: v == -1.0 or 0 < v < 1,
    ),
}


def _check(problem, ctx: SolveContext) -> None:
    if not isinstance(problem, DemandHistory):
        raise ConfigError(
            ctx.source, "method", 'newsvendor baselines apply to data-driven problems (model = "data_driven")'
        )


def _fit_saa(problem, o, config, ctx) -> SolveOutcome:
    _check(problem, ctx)
    levels = saa_levels(problem, o["fractile"])
    return SolveOutcome(policy=OrderUpTo(levels).to(ctx.device), info={"levels": levels.tolist()})


def _fit_normal(problem, o, config, ctx) -> SolveOutcome:
    _check(problem, ctx)
    levels = normal_levels(problem, o["fractile"])
    return SolveOutcome(policy=OrderUpTo(levels).to(ctx.device), info={"levels": levels.tolist()})


def _fit_seasonal(problem, o, config, ctx) -> SolveOutcome:
    _check(problem, ctx)
    if problem.history.freq != "day":
        raise ConfigError(ctx.source, "method", "newsvendor_seasonal needs daily data (day-of-week levels)")
    levels = seasonal_levels(problem, o["fractile"])
    step = np.timedelta64(1, "D")
    dow = day_of_week(np.append(problem.history.dates, problem.history.dates[-1] + step))
    return SolveOutcome(policy=OrderUpTo(levels, dow).to(ctx.device), info={"levels": levels.tolist()})


HISTORY_METHODS = (
    Method(
        "newsvendor_saa",
        _fit_saa,
        NEWSVENDOR_OPTIONS,
        description="order up to the empirical p/(p+h) quantile of (L+1)-period train demand (SAA)",
    ),
    Method(
        "newsvendor_normal",
        _fit_normal,
        NEWSVENDOR_OPTIONS,
        description="order up to the p/(p+h) quantile of a Normal fit of train demand",
    ),
    Method(
        "newsvendor_seasonal",
        _fit_seasonal,
        NEWSVENDOR_OPTIONS,
        description="empirical p/(p+h) quantile of (L+1)-period train demand per day of the week",
    ),
)
