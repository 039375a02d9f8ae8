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

__all__ = ["Instance", "PUBLISHED", "OLDER", "SETTINGS", "generate", "min_biased", "load", "save", "from_table"]

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


# --- a plant of the user's own: TOML or JSON ------------------------------------------------------
MATRIX_KEYS = ("capacity", "setup_cost", "setup_loss")  # [machines, items]
VECTOR_KEYS = ("holding_cost", "lost_sales_cost", "max_inventory", "initial_inventory")  # [items]
REQUIRED_KEYS = ("capacity", "setup_cost", "holding_cost", "lost_sales_cost")
DEFAULTS = {"setup_loss": 0.0, "max_inventory": 100.0, "initial_inventory": 0.0}
FILE_KEYS = (*MATRIX_KEYS, *VECTOR_KEYS, "initial_setup", "items", "machines", "description")


def array(value, shape: tuple[int, ...], source: str, key: str) -> np.ndarray:
    """``value`` as a float array of ``shape`` with every entry finite and >= 0, else one ConfigError."""
    from ..core import ConfigError

    what = "machines x items" if len(shape) == 2 else ("machines" if key == "initial_setup" else "items")
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(
            source, key, f"expected numbers in the shape {' x '.join(map(str, shape))} ({what})"
        ) from None
    if a.shape != shape:
        raise ConfigError(
            source,
            key,
            f"expected shape {' x '.join(map(str, shape))} ({what}), got {' x '.join(map(str, a.shape)) or 'a number'}",
        )
    if not np.isfinite(a).all():
        raise ConfigError(source, key, "NaN or infinite values are not allowed")
    if (a < 0).any():
        idx = tuple(int(i) for i in np.argwhere(a < 0)[0])
        raise ConfigError(source, key, f"negative value {a[idx]:g} at {list(idx)}; numbers >= 0 are allowed")
    return a


def from_table(table, source: str) -> Instance:
    """A plant from a table (the content of an instance file, or a dict): ``capacity``, ``setup_cost`` and
    optionally ``setup_loss`` as machines x items matrices; ``holding_cost``, ``lost_sales_cost`` and optionally
    ``max_inventory`` (default 100), ``initial_inventory`` (default 0) one number per item; optionally
    ``initial_setup``, one integer 0..items per machine (0: idle, the default). ``items`` and ``machines``, if
    given, must match the matrices. Every bad field is one ConfigError naming ``source`` and the key."""
    from ..core import ConfigError

    if not isinstance(table, dict):
        raise ConfigError(source, None, f"a lot-sizing instance is a table of keys, got {type(table).__name__}")
    unknown = sorted(set(table) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(source, unknown[0], f"unknown key; allowed: {', '.join(FILE_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in table]
    if missing:
        raise ConfigError(source, missing[0], f"missing; an instance needs {', '.join(REQUIRED_KEYS)}")
    cap = table["capacity"]
    if not isinstance(cap, list) or not cap or not all(isinstance(r, list) and r for r in cap):
        raise ConfigError(source, "capacity", "a non-empty list of lists (machines x items) of numbers >= 0")
    M, I = len(cap), len(cap[0])
    for key, n in (("machines", M), ("items", I)):
        if key in table and (isinstance(table[key], bool) or table[key] != n):
            raise ConfigError(
                source, key, f"{table[key]!r} does not match the capacity matrix ({M} x {I}); allowed: {n}"
            )
    arrays = {}
    for k in MATRIX_KEYS:
        arrays[k] = array(table[k], (M, I), source, k) if k in table else np.full((M, I), DEFAULTS[k])
    for k in VECTOR_KEYS:
        arrays[k] = array(table[k], (I,), source, k) if k in table else np.full(I, DEFAULTS[k])
    setup = np.zeros(M, dtype=np.int64)
    if "initial_setup" in table:
        a = array(table["initial_setup"], (M,), source, "initial_setup")
        if (a != np.round(a)).any() or (a > I).any():
            raise ConfigError(source, "initial_setup", f"one integer in 0..{I} per machine (0: idle)")
        setup = a.astype(np.int64)
    if (arrays["max_inventory"] <= 0).any():
        i = int(np.argmax(arrays["max_inventory"] <= 0))
        raise ConfigError(source, "max_inventory", f"item {i + 1} has a cap of 0; every cap must be > 0")
    return Instance(initial_setup=setup, **arrays)


def load(path, source: str = "<problem>", key: str = "instance") -> Instance:
    """A plant from a TOML or JSON file (the keys of :func:`from_table`); a missing or unreadable file is
    reported against ``source``'s ``key``, a bad field against the file."""
    import json
    from pathlib import Path

    from ..core import ConfigError, load_toml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(source, key, f"file not found: {path}; allowed: a TOML or JSON lot-sizing instance")
    if path.suffix.lower() == ".json":
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ConfigError(path, None, f"not a readable JSON file ({e})") from None
    elif path.suffix.lower() == ".toml":
        table = load_toml(path)
    else:
        raise ConfigError(source, key, f"{path.name}: allowed: a .toml or .json file")
    return from_table(table, str(path))


def save(inst: Instance, path) -> None:
    """Write a plant as a JSON instance file that :func:`load` reads back (to edit a generated one)."""
    import json
    from pathlib import Path

    table = {k: getattr(inst, k).tolist() for k in (*MATRIX_KEYS, *VECTOR_KEYS)}
    table["initial_setup"] = [int(v) for v in inst.initial_setup]
    Path(path).write_text(json.dumps(table, indent=1))
