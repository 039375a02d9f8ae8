"""Instances of the capacitated lot-sizing problem, drawn as in the published study (Felizardo et al., PDPPO).

The authors' generator (``code/Lot-sizing/cfg_env/generate_setting.py`` of leokan92/pdppo) draws every
field with one helper: a vector over the integers ``lo, lo + 1, ..., hi`` (``numpy.arange(lo, hi + 1)``, so
step one even for fractional bounds) where the first value has probability ``p0`` and the others share
``1 - p0`` equally; ``lo == hi`` gives a constant. The fields and their ``(hi, lo, p0)`` are
:data:`PUBLISHED` (the six ``setting_*_t100_i100.json`` instances) and :data:`OLDER` (the earlier 15 x 5
setting, ``setting_15items_5machines_i100.json``, and the commented-out block of the same script). The
authors draw without a seed; here every instance comes from a documented integer seed through
:func:`opsrl.core.numpy_rng`, and a capacity matrix with an item that no machine can make is drawn again
(the authors only warn, ``check_all_zeros``), so that every generated instance is feasible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core import numpy_rng

__all__ = ["Instance", "PUBLISHED", "OLDER", "SETTINGS", "generate", "min_biased"]

# field: (hi, lo, p0) exactly as the authors' calls generate_matrix(rows, cols, hi, lo, p0)
PUBLISHED = {
    "initial_setup": (None, 0, 0.4),  # hi = n_items: 0 (idle) w.p. 0.4, else an item 1..n_items
    "capacity": (40, 0, 0.4),  # machine_production: 0 (cannot make) w.p. 0.4, else 1..40
    "max_inventory": (100, 100, 0.5),  # constant 100
    "initial_inventory": (50, 0, 0.05),  # 0 w.p. 0.05, else 1..50
    "holding_cost": (0.01, 0.01, 0.5),  # constant 0.01
    "lost_sales_cost": (0.3, 0.1, 0.5),  # arange(0.1, 1.3) = {0.1, 1.1}, each w.p. 0.5
    "setup_cost": (30, 15, 0.2),  # 15 w.p. 0.2, else 16..30
    "setup_loss": (3, 1, 0.7),  # 1 w.p. 0.7, else 2 or 3
}
OLDER = dict(
    PUBLISHED,
    **{
        "initial_inventory": (0, 0, 0.05),  # constant 0
        "lost_sales_cost": (0.2, 0.2, 0.5),  # constant 0.2
        "setup_cost": (2, 1, 0.2),  # 1 w.p. 0.2, else 2
        "setup_loss": (1, 1, 0.7),  # constant 1
    },
)
SETTINGS = {"published": PUBLISHED, "older": OLDER}


@dataclass
class Instance:
    """One plant: ``capacity``, ``setup_cost``, ``setup_loss`` are ``[machines, items]``; the rest ``[items]``
    except ``initial_setup`` ``[machines]`` (0 idle, ``i`` = item ``i``, 1-based as in the authors' code)."""

    capacity: np.ndarray
    setup_cost: np.ndarray
    setup_loss: np.ndarray
    holding_cost: np.ndarray
    lost_sales_cost: np.ndarray
    max_inventory: np.ndarray
    initial_inventory: np.ndarray
    initial_setup: np.ndarray
    redraws: int = 0

    @property
    def items(self) -> int:
        return self.capacity.shape[1]

    @property
    def machines(self) -> int:
        return self.capacity.shape[0]


def min_biased(rng: np.random.Generator, size, hi: float, lo: float, p0: float) -> np.ndarray:
    """The authors' ``generate_vector_min_bias``: values ``lo + k`` (``k = 0 .. floor(hi - lo)``), the first
    with probability ``p0``, the others uniformly with the rest."""
    if hi == lo:
        return np.full(size, lo, dtype=float)
    choices = np.arange(lo, hi + 1)
    probs = np.full(len(choices), (1 - p0) / (len(choices) - 1))
    probs[0] = p0
    return rng.choice(choices, size=size, p=probs).astype(float)


def generate(items: int, machines: int, seed: int, setting: str = "published", max_redraws: int = 1000) -> Instance:
    """Draw an instance from ``seed`` with the published generator (``setting``: ``published`` or ``older``)."""
    s = SETTINGS[setting]
    rng = numpy_rng(seed, "test", f"lotsizing-instance-{setting}-{items}x{machines}")
    init_setup = min_biased(rng, machines, items, *s["initial_setup"][1:]).astype(np.int64)
    redraws = 0
    while True:
        cap = min_biased(rng, (machines, items), *s["capacity"])
        if (cap.sum(0) > 0).all():
            break
        redraws += 1
        if redraws > max_redraws:
            raise ValueError(f"no capacity matrix with every item makeable in {max_redraws} draws")
    return Instance(
        capacity=cap,
        max_inventory=min_biased(rng, items, *s["max_inventory"]),
        initial_inventory=min_biased(rng, items, *s["initial_inventory"]),
        holding_cost=min_biased(rng, items, *s["holding_cost"]),
        lost_sales_cost=min_biased(rng, items, *s["lost_sales_cost"]),
        setup_cost=min_biased(rng, (machines, items), *s["setup_cost"]),
        setup_loss=min_biased(rng, (machines, items), *s["setup_loss"]),
        initial_setup=init_setup,
        redraws=redraws,
    )
