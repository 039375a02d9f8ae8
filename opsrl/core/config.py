"""Config loading and validation.

Problems and solvers are TOML files. Every section is checked against a schema: a mapping from key to
:class:`Field`. Bad input stops with one :class:`ConfigError` that names the file, the key and what is
allowed there.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ConfigError",
    "Field",
    "REQUIRED",
    "load_toml",
    "validate",
    "parse_value",
    "set_dotted",
    "size",
    "check_memory",
    "Need",
    "check_needs",
    "mlp_bytes",
    "threads",
    "widths",
    "INT_LIMIT",
    "FLOAT_LIMIT",
]

# Every number passes :func:`_coerce`: NaN and infinities are refused, and so is any integer beyond
# ``INT_LIMIT`` or float beyond ``FLOAT_LIMIT`` in magnitude, whatever its field (a field may set a
# tighter ``max``). Sizes (scenarios, periods, lead times, layer widths) set their own ``max`` through
# :func:`size`; what no single key bounds (scenarios x periods) is checked by :func:`check_memory`.
INT_LIMIT = 2**31 - 1
FLOAT_LIMIT = 1e15


class ConfigError(ValueError):
    """A config file, key or value that opsrl cannot accept."""

    def __init__(self, source: str | Path, key: str | None, message: str):
        self.source, self.key, self.message = str(source), key, message
        where = f"{self.source}: key '{key}'" if key else str(self.source)
        super().__init__(f"{where}: {message}")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Field:
    """One key of a config section.

    ``type`` is ``int``, ``float``, ``str``, ``bool``, ``list`` or ``dict`` (a nested schema given by
    ``schema``). ``check`` returns True for an allowed value; ``allowed`` says in words what is allowed.
    """

    type: type
    default: Any = REQUIRED
    allowed: str = ""
    check: Callable[[Any], bool] | None = None
    choices: tuple | None = None
    schema: Mapping[str, Field] | None = None
    item: type | None = None  # element type of a list
    doc: str = ""
    max: float | None = None  # largest allowed value (numbers; default: INT_LIMIT / FLOAT_LIMIT)
    max_len: int | None = None  # most items of a list
    # what the value counts, for the memory estimate made before anything is allocated (opsrl.bench.runner
    # .check_solver_sizes): "scenarios" (that many scenarios of the problem are drawn) or "test_copies" (that
    # many copies of the test set are held at once, such as the plans of a best-of-K)
    counts: str = ""


def _type_name(t: type) -> str:
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }.get(t, t.__name__)


def _coerce(value: Any, t: type, source: str, key: str, item: type | None = None) -> Any:
    if t is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(source, key, f"expected a number, got {value!r}")
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(
                source,
                key,
                f"a {len(str(abs(value)))}-digit number is too large; a number of "
                f"magnitude at most {FLOAT_LIMIT:g} is allowed",
            ) from None
        if math.isnan(value):
            raise ConfigError(source, key, "NaN is not allowed; expected a finite number")
        if math.isinf(value):
            raise ConfigError(source, key, f"{value} is not allowed; expected a finite number")
        if abs(value) > FLOAT_LIMIT:
            raise ConfigError(
                source, key, f"{value:g} is too large; a number of magnitude at most {FLOAT_LIMIT:g} is allowed"
            )
        return value
    if t is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(source, key, f"{value} is not allowed; expected an integer")
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(source, key, f"expected an integer, got {value!r}")
        if abs(value) > INT_LIMIT:
            raise ConfigError(
                source,
                key,
                f"{value if abs(value) < 10**12 else f'{float(value):g}'} is too large; "
                f"an integer of magnitude at most {INT_LIMIT} is allowed",
            )
        return value
    if t is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"expected true or false, got {value!r}")
        return value
    if t is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, f"expected a string, got {value!r}")
        return value
    if t is list:
        if not isinstance(value, list):
            raise ConfigError(source, key, f"expected a list, got {value!r}")
        if item is not None:
            return [_coerce(v, item, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return [_number(v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if t is dict:
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"expected a table, got {value!r}")
        return value
    raise TypeError(f"unsupported field type {t}")


def _number(value: Any, source: str, key: str) -> Any:
    """Numbers inside untyped lists pass the same finiteness and magnitude checks."""
    if isinstance(value, float):
        return _coerce(value, float, source, key)
    if isinstance(value, int) and not isinstance(value, bool):
        return _coerce(value, int, source, key)
    if isinstance(value, list):
        return [_number(v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def _too_large(field: Field, value: Any) -> str | None:
    """Why ``value`` exceeds the field's ``max`` or ``max_len`` (None if it does not)."""
    if field.max is not None:
        items = value if isinstance(value, list) else [value]
        for v in items:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v > field.max:
                what = f" ({field.allowed})" if field.allowed else ""
                return f"{v!r} is too large; at most {field.max:g} is allowed{what}"
    if field.max_len is not None and isinstance(value, list) and len(value) > field.max_len:
        return f"{len(value)} items are too many; at most {field.max_len} are allowed"
    return None


def size(
    default: Any = REQUIRED,
    max: float = 10**6,
    *,
    low: int = 1,
    allowed: str = "",
    doc: str = "",
    item: bool = False,
    counts: str = "",
) -> Field:
    """A size (scenarios, periods, a lead time, a width): an integer from ``low`` to ``max``.

    ``item=True`` makes it a list of such integers (layer widths). The message of a refused value
    says both bounds, so that a typo (``1e9`` periods) is caught before anything is allocated. ``counts``
    (``"scenarios"`` or ``"test_copies"``, see :class:`Field`) puts its memory in the runner's estimate.
    """
    words = allowed or f"an integer from {low} to {max:g}"
    if item:
        return Field(list, default, item=int, allowed=words, doc=doc, max=max, check=lambda v: all(x >= low for x in v))
    return Field(int, default, allowed=words, doc=doc, max=max, check=lambda v: v >= low, counts=counts)


# the widest layer a network may have, and the most layers: a width beyond this is a typo, not a network
MAX_WIDTH = 2**16
MAX_LAYERS = 64


def widths(default: Any = REQUIRED, *, allowed: str = "", doc: str = "") -> Field:
    """Layer widths of a network: a list of 1 to ``MAX_LAYERS`` integers from 1 to ``MAX_WIDTH``. The memory of
    the network itself (parameters and activations) is estimated before it is built (:func:`mlp_bytes`)."""
    words = allowed or f"a list of 1 to {MAX_LAYERS} positive layer widths, each at most {MAX_WIDTH}"
    return Field(
        list,
        default,
        item=int,
        allowed=words,
        doc=doc,
        max=MAX_WIDTH,
        max_len=MAX_LAYERS,
        check=lambda v: len(v) > 0 and all(w >= 1 for w in v),
    )


def cpu_count() -> int:
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads(default: int = 0, *, low: int = 0, allowed: str = "", doc: str = "") -> Field:
    """A number of CPU threads: from 0 (leave the library's setting) to the CPUs this process may use. More
    threads than CPUs only slow a run down, and a huge number crashes the OpenMP runtime."""
    n = cpu_count()
    words = allowed or "torch CPU threads (0: leave as is)"
    return Field(
        int,
        default,
        allowed=f"{words}, from {low} to {n} (the CPUs of this machine)",
        doc=doc,
        check=lambda v: low <= v <= n,
    )


def mlp_bytes(n_in: int, hidden: list[int], n_out: int, rows: float = 1.0, copies: int = 1) -> float:
    """Bytes of ``copies`` MLPs ``n_in -> hidden... -> n_out`` in float32 training: parameters, their
    gradients and Adam's two moments (4 x 4 bytes a parameter), and the activations of ``rows`` inputs
    kept for the backward pass (value and gradient, 2 x 4 bytes a unit a row)."""
    dims = [int(n_in), *map(int, hidden), int(n_out)]
    params = sum((a + 1) * b for a, b in zip(dims[:-1], dims[1:]))
    units = sum(dims[1:])
    return float(copies) * (16.0 * params + 8.0 * float(rows) * units)


@dataclass(frozen=True)
class Need:
    """Memory a run will allocate (an estimate, made before anything is): ``what`` in words, the bytes, and
    the keys that drive it (``source`` is the file or flag they are set in; the first key is the one named)."""

    what: str
    nbytes: float
    source: str
    keys: tuple[str, ...]


def check_needs(needs: list[Need], device: Any = "cpu", fraction: float = 0.5) -> None:
    """Refuse a run whose estimated needs exceed ``fraction`` of the memory free on ``device``: one
    :class:`ConfigError` naming the largest need, its size and the keys to lower."""
    needs = [n for n in needs if n.nbytes > 0]
    if not needs:
        return
    free = available_memory(device)
    total = sum(n.nbytes for n in needs)
    if free is None or total <= fraction * free:
        return
    big = max(needs, key=lambda n: n.nbytes)
    others = "" if len(needs) == 1 else f" (of about {_bytes(total)} for the whole run)"
    keys = " or ".join(f"'{k}'" for k in big.keys)
    raise ConfigError(
        big.source,
        big.keys[0],
        f"{big.what} would need about {_bytes(big.nbytes)} of memory{others}, more than {fraction:.0%} of the "
        f"{_bytes(free)} free on {device}; lower {keys}",
    )


def check_memory(
    nbytes: float,
    source: str,
    key: str,
    what: str,
    device: Any = "cpu",
    fraction: float = 0.5,
    lower: str | None = None,
) -> None:
    """Refuse an allocation of ``nbytes`` (an estimate) that exceeds ``fraction`` of the memory the
    device has free now, naming the key(s) to lower. Called before anything is allocated."""
    free = available_memory(device)
    if free is not None and nbytes > fraction * free:
        raise ConfigError(
            source,
            key,
            f"{what} would need about {_bytes(nbytes)} of memory, more than "
            f"{fraction:.0%} of the {_bytes(free)} free on {device}; lower {lower or repr(key)}",
        )


def load_weights(module: Any, path: str | Path, source: str, key: str) -> Any:
    """Load the torch weights file ``path`` into ``module``; a missing file, a file that is not a torch
    weights file, or weights of another network shape give one :class:`ConfigError` naming ``key``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(source, key, f"file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load fails in many ways on a file that is not its own (IndexError ...)
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ConfigError(
            source,
            key,
            f"{path} is not a torch weights file ({first}); expected a file "
            "written by torch.save(module.state_dict(), path)",
        ) from None
    if not isinstance(state, dict):
        raise ConfigError(source, key, f"{path} holds a {type(state).__name__}, not a state dict of weights")
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0][:160]
        raise ConfigError(source, key, f"the weights in {path} do not fit this network ({first})") from None
    return module


def scenario_bytes(problem: Any, n: int, periods: int, split: str = "dev") -> float | None:
    """Bytes of ``problem.sample(n, split, 0, periods)``, estimated from one-scenario samples of one and
    a few periods (linear in the periods), without drawing the full set; None if it cannot be estimated."""
    import torch

    def nbytes(p: int) -> int:
        sc = problem._sample(1, split, 0, p)
        return sum(v.numel() * v.element_size() for v in sc.values() if isinstance(v, torch.Tensor))

    try:
        short = max(1, min(periods, 2))
        longer = max(1, min(periods, 10))
        a, b = nbytes(short), nbytes(longer)
    except ConfigError:
        raise
    except Exception:
        return None
    per_period = (b - a) / (longer - short) if longer > short else 0.0
    return float(n) * (a + per_period * max(0, periods - short))


def available_memory(device: Any = "cpu") -> float | None:
    """Bytes free on ``device`` now (CPU: MemAvailable of /proc/meminfo), or None if unknown."""
    dev = str(device)
    if dev.startswith("cuda"):
        try:
            import torch

            return float(torch.cuda.mem_get_info(torch.device(dev))[0])
        except Exception:
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def validate(
    section: Mapping[str, Any] | None, schema: Mapping[str, Field], source: str | Path, prefix: str = ""
) -> dict[str, Any]:
    """Check ``section`` against ``schema``; return a new dict with defaults filled in."""
    source = str(source)
    section = dict(section or {})
    unknown = sorted(set(section) - set(schema))
    if unknown:
        key = prefix + unknown[0]
        raise ConfigError(source, key, f"unknown key; allowed keys here: {', '.join(sorted(schema)) or 'none'}")
    out: dict[str, Any] = {}
    for name, field in schema.items():
        key = prefix + name
        if name not in section:
            if field.default is REQUIRED:
                raise ConfigError(source, key, f"missing; {field.allowed or _type_name(field.type)} is required")
            out[name] = (
                validate(field.default, field.schema, source, prefix=key + ".")
                if field.schema is not None
                else field.default
            )
            continue
        value = _coerce(section[name], field.type, source, key, field.item)
        if field.schema is not None:
            value = validate(value, field.schema, source, prefix=key + ".")
        if field.choices is not None and value not in field.choices:
            raise ConfigError(
                source, key, f"{value!r} is not allowed; choose one of {', '.join(map(repr, field.choices))}"
            )
        too_large = _too_large(field, value)
        if too_large:
            raise ConfigError(source, key, too_large)
        if field.check is not None and not field.check(value):
            raise ConfigError(source, key, f"{value!r} is not allowed; expected {field.allowed or 'a valid value'}")
        out[name] = value
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, None, "file not found")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(path, None, f"cannot read the file ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(
            path, None, f"not UTF-8 text (byte {data[e.start]:#04x} at line {line}); save the file as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, None, f"not valid TOML: {e}") from None


def parse_value(text: str) -> Any:
    """Parse a command-line value as a TOML value (``3``, ``0.1``, ``true``, ``[64, 64]``); else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``config['a']['b'] = value`` for ``dotted='a.b'``, creating tables as needed."""
    *parents, last = dotted.split(".")
    node = config
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError("--set", dotted, f"'{p}' is not a table")
    node[last] = value


# Common checks, named so that error messages read well.
def positive(x: float) -> bool:
    return x > 0


def non_negative(x: float) -> bool:
    return x >= 0


def probability(x: float) -> bool:
    return 0.0 <= x <= 1.0
