"""Write the synthetic example demand history bundled with opsrl (run from the repository root).

    python data/inventory/make_example.py

Output: ``opsrl/inventory/data/demand_history_example.csv`` (package data), long layout with columns
``date,item,demand``: 6 items x 1095 days (2021-01-01 .. 2023-12-31).

SYNTHETIC: no real sales are in this file. Each item's daily demand is negative binomial around

    mean_t = base * weekly[day of week] * (1 + amp * sin(2 pi (day of year - phase) / 365.25)) * (1 + trend * t / 365)
             * exp(level_t),   level_t = 0.8 level_{t-1} + 0.15 eps_t (a persistent local level)

with item-specific parameters (retail-like: weekend peaks for some items, weekday peaks for others),
and a few one-day promotions (demand x 2.5) at random dates. What a policy can learn from it: the weekly
pattern from the calendar features, the local level from the last demands. The generator is seeded, so
the file is reproducible bit for bit with the same NumPy version.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

ITEMS = {  # name: base, weekly profile (Mon..Sun), annual amplitude, phase (days), trend per year, dispersion
    "bread": (40.0, [0.9, 0.85, 0.9, 0.95, 1.1, 1.5, 1.2], 0.05, 0, 0.00, 30.0),
    "milk": (60.0, [1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 0.7], 0.08, 200, 0.02, 40.0),
    "charcoal": (8.0, [0.5, 0.5, 0.6, 0.8, 1.3, 2.2, 1.6], 0.6, 100, 0.05, 5.0),
    "coffee": (25.0, [1.3, 1.2, 1.1, 1.0, 0.9, 0.7, 0.5], 0.10, 20, 0.03, 15.0),
    "ice_cream": (15.0, [0.7, 0.7, 0.8, 0.9, 1.2, 1.8, 1.6], 0.5, 110, 0.00, 8.0),
    "batteries": (5.0, [1.0, 1.0, 1.0, 1.0, 1.1, 1.2, 0.7], 0.25, 250, -0.03, 3.0),
}


def generate(seed: int = 20240917) -> list[tuple[str, str, int]]:
    rng = np.random.default_rng(seed)
    dates = np.arange(np.datetime64("2021-01-01"), np.datetime64("2024-01-01"))
    n = len(dates)
    dow = (dates.astype(np.int64) + 3) % 7
    doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
    t = np.arange(n)
    rows = []
    for name, (base, weekly, amp, phase, trend, r) in ITEMS.items():
        level = np.zeros(n)
        eps = rng.standard_normal(n)
        for k in range(1, n):
            level[k] = 0.8 * level[k - 1] + 0.15 * eps[k]
        mean = (
            base
            * np.asarray(weekly)[dow]
            * (1 + amp * np.sin(2 * np.pi * (doy - phase) / 365.25))
            * (1 + trend * t / 365)
            * np.exp(level)
        )
        promo = rng.random(n) < 0.01
        mean = np.where(promo, 2.5 * mean, mean)
        demand = rng.negative_binomial(r, r / (r + mean))  # mean `mean`, variance mean + mean^2 / r
        rows += [(str(d), name, int(v)) for d, v in zip(dates, demand)]
    rows.sort()
    return rows


def main() -> None:
    out = Path(__file__).resolve().parents[2] / "opsrl" / "inventory" / "data" / "demand_history_example.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["date", "item", "demand"])
        w.writerows(generate())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
