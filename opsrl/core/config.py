"""Config loading and validation.

Problems and solvers are TOML files. Every section is checked against a schema: a mapping from key to
:class:`Field`. Bad input stops with one :class:`ConfigError` that names the file, the key and what is
allowed there.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ConfigError", "Field", "REQUIRED", "load_toml", "validate", "parse_value", "set_dotted"]


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
    schema: Mapping[str, "Field"] | None = None
    item: type | None = None  # element type of a list
    doc: str = ""


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            list: "a list", dict: "a table"}.get(t, t.__name__)


def _coerce(value: Any, t: type, source: str, key: str, item: type | None = None) -> Any:
    if t is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(source, key, f"expected a number, got {value!r}")
        value = float(value)
        if math.isnan(value):
            raise ConfigError(source, key, "NaN is not allowed")
        return value
    if t is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(source, key, f"expected an integer, got {value!r}")
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
        return value
    if t is dict:
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"expected a table, got {value!r}")
        return value
    raise TypeError(f"unsupported field type {t}")


def validate(section: Mapping[str, Any] | None, schema: Mapping[str, Field], source: str | Path,
             prefix: str = "") -> dict[str, Any]:
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
            out[name] = (validate(field.default, field.schema, source, prefix=key + ".")
                         if field.schema is not None else field.default)
            continue
        value = _coerce(section[name], field.type, source, key, field.item)
        if field.schema is not None:
            value = validate(value, field.schema, source, prefix=key + ".")
        if field.choices is not None and value not in field.choices:
            raise ConfigError(source, key, f"{value!r} is not allowed; choose one of {', '.join(map(repr, field.choices))}")
        if field.check is not None and not field.check(value):
            raise ConfigError(source, key, f"{value!r} is not allowed; expected {field.allowed or 'a valid value'}")
        out[name] = value
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, None, "file not found")
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
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
