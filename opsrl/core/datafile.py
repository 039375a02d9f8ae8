"""Reading data files (JSON, CSV) and checking them against one declared schema per format.

Every loader of a data file (a VM snapshot or trace, a hydro case, a microgrid series, a shipped policy's
parameters) goes the same way:

1. :func:`resolve` the path a problem file names against that problem file's folder (not the working
   directory), so the same problem file works from any folder;
2. :func:`read_text` (or :func:`load_json`, :func:`read_csv`): a missing file, a folder, an unreadable file
   and bytes that are not UTF-8 (line and byte named) each give one :class:`ConfigError`;
3. :func:`check` the parsed data against the format's schema (a pydantic model or type) before any field is
   used: the first problem becomes one :class:`ConfigError` naming the file, the path inside it
   (``cluster_list[0].host_info[3].numa``, ``row 5.wind_kw``), what was found and what is allowed.

Numbers in data files pass the same rules as numbers in TOML files: finite, and at most
:data:`~opsrl.core.config.FLOAT_LIMIT` (floats) or :data:`~opsrl.core.config.INT_LIMIT` (integers) in
magnitude (:data:`Number`, :data:`Integer`). Ids that must be unique are checked with :func:`unique`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic import Field as PydanticField
from pydantic_core import PydanticCustomError

from .config import FLOAT_LIMIT, INT_LIMIT, ConfigError

__all__ = [
    "Record",
    "Number",
    "Integer",
    "Id",
    "resolve",
    "check_file",
    "read_text",
    "load_json",
    "read_csv",
    "check",
    "refuse",
    "check_rows",
    "unique",
    "location",
]


class Record(BaseModel):
    """Base of the schemas of data-file entries: keys a format does not use are allowed (real files carry
    many), and every float must be finite."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)


_MAGNITUDE = f"a finite number of magnitude at most {FLOAT_LIMIT:g} is allowed"


def _guard_number(v: Any) -> Any:
    """What pydantic's float would take but a data file must not give: true/false, an integer too large
    for a float. The rest (strings such as CSV cells, NaN, infinities, magnitudes) pydantic checks."""
    if v is True or v is False:
        raise PydanticCustomError("number", "expected a number")
    if type(v) is int and abs(v) > FLOAT_LIMIT:
        raise PydanticCustomError("number", _MAGNITUDE)
    return v


def _guard_integer(v: Any) -> Any:
    if v is True or v is False:
        raise PydanticCustomError("integer", "expected an integer")
    return v


def refuse(message: str) -> PydanticCustomError:
    """The error a schema's own validator raises: ``message`` says what is allowed (it is shown after
    what was found)."""
    return PydanticCustomError("allowed", message)


def _id(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise PydanticCustomError("id", "expected an id (a string or an integer)")
    return v


# A finite number of magnitude at most FLOAT_LIMIT (a string holding one is read, as in CSV cells).
Number = Annotated[
    float, BeforeValidator(_guard_number), PydanticField(allow_inf_nan=False, ge=-FLOAT_LIMIT, le=FLOAT_LIMIT)
]
# An integer of magnitude at most INT_LIMIT (an integer-valued float such as 3.0 is accepted).
Integer = Annotated[int, BeforeValidator(_guard_integer), PydanticField(ge=-INT_LIMIT, le=INT_LIMIT)]
# An id: a string or an integer, never null, a number with a fraction, a list or a table.
Id = Annotated[str | int, BeforeValidator(_id)]


# --- files ------------------------------------------------------------------------------------------
def resolve(path: str | Path, source: str | Path | None) -> Path:
    """``path`` as a problem file names it: an absolute path as is, a relative one against the folder of the
    problem file ``source`` (when ``source`` is a file; a config given as a table has no folder, and its
    relative paths start at the working directory)."""
    p = Path(path).expanduser()
    if p.is_absolute() or source is None:
        return p
    src = Path(str(source))
    try:
        if src.is_file():
            return src.resolve().parent / p
    except (OSError, ValueError):  # a source such as "<config>" or "--problem-set" names no file
        pass
    return p


def _where(path: Path, source: str | Path | None, key: str | None) -> tuple[str | Path, str | None]:
    return (source, key) if source is not None else (path, None)


def check_file(path: str | Path, source: str | Path | None = None, key: str | None = None) -> Path:
    """``path``, if it is a file; a missing file or a folder is a ConfigError against ``source``'s ``key``
    (the problem file that names it) or else against the path itself."""
    path = Path(path)
    src, k = _where(path, source, key)
    if path.is_dir():
        raise ConfigError(src, k, f"{path} is a folder; a data file is required")
    if not path.is_file():
        raise ConfigError(src, k, f"file not found: {path}")
    return path


def read_bytes(path: str | Path, source: str | Path | None = None, key: str | None = None) -> bytes:
    """The bytes of the file ``path`` (see :func:`check_file`); an unreadable file is a ConfigError too."""
    path = check_file(path, source, key)
    src, k = _where(path, source, key)
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(src, k, f"cannot read {path} ({e.strerror or e})") from None


def read_text(path: str | Path, source: str | Path | None = None, key: str | None = None) -> str:
    """The file ``path`` as UTF-8 text (see :func:`read_bytes`); bytes that are not UTF-8 are a ConfigError
    against the file naming the line and the byte."""
    data = read_bytes(path, source, key)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(
            path,
            f"line {line}",
            f"not UTF-8 text (byte {data[e.start]:#04x} at line {line}, byte {col} of the line); "
            "a file saved as UTF-8 is required",
        ) from None
    return text[1:] if text.startswith("\ufeff") else text  # a byte-order mark is not data


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def load_json(path: str | Path, source: str | Path | None = None, key: str | None = None) -> Any:
    """The JSON document in ``path``; text that is not JSON is a ConfigError naming line and column, and so
    is a key that appears twice in one object (JSON readers would keep the last silently). ``NaN`` and
    ``Infinity`` are read (as Python writes them) and then refused by the schema's numbers."""
    text = read_text(path, source, key)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise ConfigError(
            path, f"line {e.lineno}", f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})"
        ) from None
    except _DuplicateKey as e:
        raise ConfigError(
            path, str(e.args[0]), "this key appears twice in one object; each key of an object must be unique"
        ) from None
    except RecursionError:
        raise ConfigError(path, None, "not valid JSON: nested too deeply") from None


def read_csv(
    path: str | Path,
    required: Sequence[str] = (),
    source: str | Path | None = None,
    key: str | None = None,
) -> list[dict[str, str]]:
    """The rows of a CSV file with a header line, as dicts of strings. The header must name every column of
    ``required`` (once); every row must have as many fields as the header. Errors name the file and
    ``row N`` (its line number: the header is line 1)."""
    text = read_text(path, source, key)
    try:
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:
        raise ConfigError(path, None, f"not valid CSV ({e})") from None
    if not lines or not any(c.strip() for c in lines[0]):
        need = f"; a header line naming {', '.join(required)} is required" if required else ""
        raise ConfigError(path, "row 1", f"no header line{need}")
    header = [c.strip() for c in lines[0]]
    seen: dict[str, int] = {}
    for i, c in enumerate(header):
        if c in seen:
            raise ConfigError(path, "row 1", f"column {c!r} appears twice (columns {seen[c] + 1} and {i + 1})")
        seen[c] = i
    missing = [c for c in required if c not in seen]
    if missing:
        raise ConfigError(
            path,
            "row 1",
            f"lacks column(s) {', '.join(missing)}; found {', '.join(header)}; required: {', '.join(required)}",
        )
    rows = []
    for n, cells in enumerate(lines[1:], start=2):
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # a blank line
        if len(cells) != len(header):
            raise ConfigError(
                path,
                f"row {n}",
                f"has {len(cells)} field(s), the header has {len(header)} ({', '.join(header)}); "
                "every row needs one value per column",
            )
        rows.append({"_line": n, **dict(zip(header, cells))})
    return rows


# --- schemas ----------------------------------------------------------------------------------------
def location(loc: Iterable[Any]) -> str:
    """A pydantic error location as a path: ``('a', 0, 'b')`` -> ``a[0].b``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_ALLOWED = {
    "model_type": "a table (JSON object) is required",
    "model_attributes_type": "a table (JSON object) is required",
    "dict_type": "a table (JSON object) is required",
    "list_type": "a list is required",
    "missing": "missing; it is required",
    "int_type": "an integer is required",
    "int_parsing": "an integer is required",
    "int_from_float": "an integer is required",
    "float_type": "a number is required",
    "float_parsing": "a number is required",
    "finite_number": "a finite number is required",
    "bool_type": "true or false is required",
    "bool_parsing": "true or false is required",
    "string_type": "a string is required",
}


_CUSTOM = ("number", "integer", "id", "allowed")
_BOUNDS = {"greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le", "less_than": "lt"}


def _kind_words(kind: str) -> str:
    return {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "missing":
        return _ALLOWED["missing"]
    ctx = err.get("ctx") or {}
    if kind in _CUSTOM:
        allowed = err["msg"]
    elif kind == "finite_number" and str(err.get("input")).strip().lower() == "nan":
        allowed = "NaN is not allowed; a finite number is required"
    elif kind == "literal_error":
        allowed = f"allowed: {ctx['expected']}"
    elif kind in _BOUNDS and abs(ctx.get(_BOUNDS[kind], 0)) in (FLOAT_LIMIT, INT_LIMIT):
        limit = ctx[_BOUNDS[kind]]
        allowed = _MAGNITUDE if abs(limit) == FLOAT_LIMIT else f"an integer of magnitude at most {INT_LIMIT} is allowed"
    elif kind in _BOUNDS and _BOUNDS[kind] in ctx:
        bound = ctx[_BOUNDS[kind]]
        allowed = (
            f"allowed: a value {_kind_words(kind)} {bound:g}"
            if isinstance(bound, float)
            else f"allowed: a value {_kind_words(kind)} {bound}"
        )
    elif kind == "too_long":
        allowed = f"allowed: at most {ctx.get('max_length')} item(s)"
    elif kind == "too_short":
        allowed = f"allowed: at least {ctx.get('min_length')} item(s)"
    elif kind in _ALLOWED:
        allowed = _ALLOWED[kind]
    else:
        msg = err["msg"]
        allowed = msg[0].lower() + msg[1:] if msg else "not allowed"
        for old, new in (("input should be", "allowed:"), ("value error, ", "")):
            allowed = allowed.replace(old, new)
    return f"found {_show(err.get('input'))}; {allowed}"


def _error(e: ValidationError, path: str | Path, prefix: str, where: Callable[[tuple], str] | None) -> ConfigError:
    err = e.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    key = where(loc) if where is not None else location(loc)
    if prefix:
        key = prefix + ("" if not key or key.startswith("[") else ".") + key
    return ConfigError(path, key or None, _message(err))


_ADAPTERS: dict[Any, TypeAdapter] = {}


def _adapter(schema: Any) -> TypeAdapter:
    """One TypeAdapter per schema (building one costs more than validating a small file)."""
    try:
        adapter = _ADAPTERS.get(schema)
    except TypeError:  # an unhashable schema
        return TypeAdapter(schema)
    if adapter is None:
        adapter = _ADAPTERS[schema] = TypeAdapter(schema)
    return adapter


def check(
    schema: Any, data: Any, path: str | Path, prefix: str = "", where: Callable[[tuple], str] | None = None
) -> Any:
    """``data`` validated against ``schema`` (a pydantic model, or a type such as ``list[Model]``); the first
    problem is one :class:`ConfigError` against ``path`` whose key is the path inside the file (``prefix``
    first; ``where`` turns a pydantic location into a key where the default dotted path does not fit)."""
    adapter = _adapter(schema)
    try:
        return adapter.validate_python(data)
    except ValidationError as e:
        raise _error(e, path, prefix, where) from None
    except RecursionError:
        raise ConfigError(path, prefix or None, "nested too deeply") from None


def check_rows(model: type[BaseModel], rows: list[dict[str, Any]], path: str | Path, table: str | None = None) -> list:
    """Rows of :func:`read_csv` validated against ``model``; the first row with a problem is named: the key is
    ``row N.column`` (N: the line in the file). Rows of a database ``table`` have no lines: the key is
    ``table.column`` and the message names the row's number."""
    try:
        return _adapter(list[model]).validate_python(rows)  # all rows in one call (fast for long series)
    except ValidationError as e:
        loc = e.errors(include_url=False)[0]["loc"]
        i = loc[0] if loc and isinstance(loc[0], int) else 0
        n = rows[i].get("_line", i + 1) if i < len(rows) and isinstance(rows[i], dict) else i + 1
        if table is None:
            raise _error(e, path, "", lambda loc: location((f"row {n}", *loc[1:]))) from None
        err = _error(e, path, table, lambda loc: location(loc[1:]))
        raise ConfigError(path, err.key, f"row {n}: {err.message}") from None


def unique(ids: Iterable[tuple[Hashable, str]], path: str | Path, what: str) -> None:
    """Refuse an id that appears twice: ``ids`` are ``(id, where)`` pairs; the error names the second
    place and the first."""
    first: dict[Hashable, str] = {}
    for value, where in ids:
        if value is None:
            continue
        if value in first:
            raise ConfigError(
                path,
                where,
                f"{what} {_show(value)} appears twice (first at {first[value]}); each {what} must be unique",
            )
        first[value] = where
