"""Problem families, solver methods, and bundled problem and solver files.

Bundled files live in the top-level ``problems/``, ``solvers/`` and ``sweeps/`` folders of the source tree
(a checkout or an editable install reads them there); a non-editable install (a wheel) carries copies of
them in ``opsrl/_bundled/`` (see ``setup.py``), read from there. More roots can be added with the
``OPSRL_PATH`` environment variable (``os.pathsep``-separated folders, each with ``problems/``,
``solvers/`` and/or ``sweeps/``), searched first. A name is a path to a TOML file or a bundled name such as
``inventory/lost_sales_p9_L4`` or ``hdpo_mlp``.
"""

from __future__ import annotations

import copy
import difflib
import functools
import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .core import ConfigError, Family, Field, Method, Problem, SolveContext, load_toml, validate
from .faults import point as fault_point

# family name -> module defining FAMILY; imported lazily so that one family's imports never load another
FAMILY_MODULES = {
    "inventory": "opsrl.inventory",
    "jobshop": "opsrl.jobshop",
    "microgrid": "opsrl.microgrid",
    "vm": "opsrl.vm",
    "hydro": "opsrl.hydro",
    "lotsizing": "opsrl.lotsizing",
}

SOLVER_SCHEMA = {
    "method": Field(str, allowed="a method name (see `opsrl list`)"),
    "description": Field(str, ""),
    "family": Field(
        list,
        [],
        item=str,
        allowed="the problem families the solver is written for: a name or a list of names of "
        + ", ".join(FAMILY_MODULES),
        check=lambda v: all(name in FAMILY_MODULES for name in v),
        doc="the families whose problems this solver is written for (its policy, options and problem keys); "
        "given another family's problem it stops with one message naming the solvers that fit. Empty: any "
        "family its method applies to (a generic method's solver with generic settings)",
    ),
    "policy": Field(dict, {}),
    "options": Field(dict, {}),
    "problem": Field(
        dict,
        {},
        doc="problem keys (dotted) this solver sets on every problem it runs on, such as how "
        "the problem reads its action; a user's problem override of the same key wins",
    ),
}


BUNDLED_KINDS = ("problems", "solvers", "sweeps")


def roots() -> list[Path]:
    """Folders searched for bundled files, in order: ``$OPSRL_PATH``, then the source tree (when this
    package runs from one: its parent holds ``pyproject.toml``) or else the installed copies."""
    out = [Path(p) for p in os.environ.get("OPSRL_PATH", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    if (here.parent / "pyproject.toml").is_file() and any((here.parent / k).is_dir() for k in BUNDLED_KINDS):
        out.append(here.parent)
    if (here / "_bundled").is_dir():
        out.append(here / "_bundled")
    return out


def bundled(kind: str) -> dict[str, Path]:
    """Bundled names of ``kind`` (``problems`` or ``solvers``) and their files; earlier roots win."""
    return dict(_bundled(kind, tuple(roots())))


@functools.lru_cache(maxsize=16)
def _bundled(kind: str, search: tuple[Path, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in search:
        base = root / kind
        if base.is_dir():
            for f in sorted(base.rglob("*.toml")):
                found.setdefault(f.relative_to(base).with_suffix("").as_posix(), f)
    return found


def resolve(kind: str, name: str | Path) -> Path:
    path = Path(name)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise ConfigError(path, None, "file not found")
        return path
    names = bundled(kind)
    if str(name) in names:
        return names[str(name)]
    close = difflib.get_close_matches(str(name), names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `opsrl list` shows the bundled names"
    raise ConfigError(name, None, f"no such {kind[:-1]} file or bundled name{hint}")


def family(name: str, source: str = "<config>") -> Family:
    if name not in FAMILY_MODULES:
        raise ConfigError(source, "family", f"{name!r} is not a problem family; allowed: {', '.join(FAMILY_MODULES)}")
    if FAMILY_MODULES[name] not in sys.modules:
        fault_point("family_import")
    try:
        module = importlib.import_module(FAMILY_MODULES[name])
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith(FAMILY_MODULES[name]):
            raise ConfigError(source, "family", f"family {name!r} is not available in this version of opsrl") from None
        raise
    fam = getattr(module, "FAMILY", None)
    if fam is None:  # a module that does not define its family (yet)
        raise ConfigError(
            source,
            "family",
            f"family {name!r} is not available in this version of opsrl ({FAMILY_MODULES[name]} defines no FAMILY)",
        )
    return fam


def generic_methods() -> dict[str, Method]:
    from .algos import METHODS

    return dict(METHODS)


def methods_for(fam: Family) -> dict[str, Method]:
    return {**generic_methods(), **fam.methods}


def solver_table(raw: dict[str, Any]) -> dict[str, Any]:
    """A solver file's table as :data:`SOLVER_SCHEMA` reads it: ``family = "vm"`` is ``family = ["vm"]``."""
    if isinstance(raw.get("family"), str):
        raw = {**raw, "family": [raw["family"]]}
    return raw


def solvers_for(family_name: str | None) -> list[str]:
    """The bundled solvers written for ``family_name``'s problems (their ``family`` key names it); with None,
    those that name no family (generic settings of a generic method)."""
    out = []
    for name, path in bundled("solvers").items():
        try:
            declared = load_toml(path).get("family", [])
        except ConfigError:
            continue
        declared = [declared] if isinstance(declared, str) else declared if isinstance(declared, list) else []
        if (family_name in declared) if family_name is not None else not declared:
            out.append(name)
    return out


def _fitting(fam: Family) -> str:
    """Which bundled solvers fit ``fam``'s problems, in words."""
    generic = [n for n in solvers_for(None) if load_toml(bundled("solvers")[n]).get("method") in methods_for(fam)]
    out = f"bundled solvers that fit: {', '.join(solvers_for(fam.name)) or 'none'}"
    if generic:
        out += (
            f", and those of the generic methods (such as hdpo_mlp) where their method applies ({', '.join(generic)})"
        )
    return out + "; `opsrl list` shows them"


def load_problem(name: str | Path, overrides: dict[str, Any] | None = None) -> Problem:
    """Build a problem from a file or bundled name; ``overrides`` are dotted keys set before validation."""
    path = resolve("problems", name)
    problem = build_problem(load_toml(path), str(path), overrides, _bundled_name("problems", path) or path.stem)
    problem.origin = {"file": str(path), "overrides": dict(overrides or {})}
    return problem


def build_problem(
    table: Mapping[str, Any], source: str = "<dict>", overrides: dict[str, Any] | None = None, name: str | None = None
) -> Problem:
    """Build a problem from a table such as a problem file holds (``family``, ``description``, the family's keys;
    a table may also give its ``name``), with ``overrides`` (dotted keys) set before validation.

    Relative file paths in the table resolve against the folder of ``source`` when it is a file, else against
    the working directory. The problem remembers the table (``problem.origin``), so that a solver that sets
    problem keys can build it again with them (:func:`load_for_solver`).
    """
    from .core.config import set_dotted

    if not isinstance(table, Mapping):
        raise ConfigError(source, None, f"a problem is a table (dict) of keys, got {type(table).__name__}")
    origin = copy.deepcopy(dict(table))
    cfg = copy.deepcopy(dict(table))
    for k, v in (overrides or {}).items():
        set_dotted(cfg, k, v)
    if "family" not in cfg:
        raise ConfigError(source, "family", f"missing; one of {', '.join(FAMILY_MODULES)} is required")
    if not isinstance(cfg["family"], str):
        raise ConfigError(source, "family", f"{cfg['family']!r} is not allowed; one of {', '.join(FAMILY_MODULES)}")
    fam = family(cfg.pop("family"), source)
    description = cfg.pop("description", "")
    given_name = cfg.pop("name", None)
    if given_name is not None and (not isinstance(given_name, str) or not given_name.strip()):
        raise ConfigError(source, "name", f"{given_name!r} is not allowed; a non-empty string names the problem")
    problem = fam.build(cfg, source)
    problem.family = fam.name
    problem.name = given_name or name or (problem.name if problem.name != Problem.name else fam.name)
    problem.description = description
    problem.source = source
    problem.origin = {"table": origin, "source": source, "overrides": dict(overrides or {})}
    return problem


def family_of(problem: Problem, source: str = "problem") -> Family:
    """The family of a problem object: its ``family`` attribute, else the family module that defines its class.

    A problem class of the user's own (no opsrl family) gets a family of its own name with no methods of its
    own: the generic methods (``hdpo``, ``ppo`` ...) and a :class:`Method` object still run on it.
    """
    if not isinstance(problem, Problem):
        raise ConfigError(
            source,
            None,
            f"a {type(problem).__name__} is not a problem; allowed: an opsrl.core.Problem object, a problem "
            "file, a bundled name or a table (dict)",
        )
    name = getattr(problem, "family", "") or ""
    if name in FAMILY_MODULES:
        return family(name, source)
    module = type(problem).__module__
    for fam_name, mod in FAMILY_MODULES.items():
        if module == mod or module.startswith(mod + "."):
            return family(fam_name, source)
    return Family(name or type(problem).__name__, _no_build)


def _no_build(config: Mapping[str, Any], source: str) -> Problem:
    raise ConfigError(source, "family", "a problem class of your own is built in Python, not from a table")


def load_solver(name: str | Path, fam: Family, overrides: dict[str, Any] | None = None) -> tuple[str, Method, dict]:
    """Return ``(name, method, config)`` with the method's options validated and filled in."""
    from .core.config import set_dotted

    path = resolve("solvers", name)
    source = str(path)
    raw = load_toml(path)
    methods = methods_for(fam)
    for k, v in (overrides or {}).items():
        top = k.split(".")[0]
        set_dotted(raw, k if top in SOLVER_SCHEMA else f"options.{k}", v)
    cfg = validate(solver_table(raw), SOLVER_SCHEMA, source)
    if cfg["method"] not in methods:
        raise ConfigError(
            source,
            "method",
            f"{cfg['method']!r} does not apply to {fam.name} problems; allowed: the methods "
            f"{', '.join(sorted(methods))}; " + _fitting(fam),
        )
    if cfg["family"] and fam.name not in cfg["family"]:  # a method of both, or a generic one, set for another
        raise ConfigError(
            source,
            "family",
            f"this solver is written for {' and '.join(cfg['family'])} problems, not for {fam.name} problems; "
            + _fitting(fam),
        )
    method = methods[cfg["method"]]
    cfg["options"] = validate(cfg["options"], method.options, source, prefix="options.")
    cfg["problem"] = _dotted(cfg["problem"])
    cfg["source"] = source
    return _bundled_name("solvers", path) or path.stem, method, cfg


def fit_solver(name: str | Path, problem: Problem, ctx: SolveContext):
    """Fit solver ``name`` (bundled name or file) on ``problem``: its ``SolveOutcome``. The default
    ``SolveContext.fit_solver`` of the runner and the command line."""
    from dataclasses import replace

    _, method, cfg = load_solver(name, family(problem.family))
    return method.fit(problem, cfg["options"], cfg, replace(ctx, progress=False, source=cfg["source"]))


def _dotted(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` and ``{"a.b": 1}`` both as ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        if isinstance(v, dict):
            out.update(_dotted(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def load_for_solver(problem: str | Path | Problem, scfg: dict, overrides: dict[str, Any] | None = None) -> Problem:
    """Load ``problem`` with the keys solver config ``scfg`` sets in its ``[problem]`` table, then ``overrides``.
    A key the problem rejects is reported against the solver file that set it.

    ``problem`` may also be a problem object built by :func:`load_problem` or :func:`build_problem` (it is
    built again from its file or table, with its own overrides); a problem built in Python without a table
    must already have the values the solver sets.
    """
    keys = scfg.get("problem") or {}
    if isinstance(problem, Problem):
        origin = getattr(problem, "origin", None)
        if origin is None:
            return _check_solver_keys(problem, scfg)
        overrides = {**origin["overrides"], **(overrides or {})}
    try:
        if isinstance(problem, Problem):
            if "file" in origin:
                rebuilt = load_problem(origin["file"], {**keys, **overrides})
            else:
                rebuilt = build_problem(origin["table"], origin["source"], {**keys, **overrides}, problem.name)
            rebuilt.origin["overrides"] = dict(overrides)
            return rebuilt
        return load_problem(problem, {**keys, **(overrides or {})})
    except ConfigError as e:
        hit = next((k for k in keys if e.key is not None and (e.key == k or e.key.startswith(k + "."))), None)
        if hit is None or hit in (overrides or {}):
            raise
        raise ConfigError(scfg["source"], f"problem.{hit}", f"rejected by {e.source}: {e.message}") from None


def _check_solver_keys(problem: Problem, scfg: dict) -> Problem:
    """A problem object without a table: it must already hold the values the solver's [problem] table sets."""
    config = getattr(problem, "config", None) or {}
    for key, want in (scfg.get("problem") or {}).items():
        node: Any = config
        for part in key.split("."):
            node = node.get(part, _MISSING) if isinstance(node, Mapping) else _MISSING
        if node != want:
            raise ConfigError(
                scfg["source"],
                f"problem.{key}",
                f"this solver needs the problem built with {key} = {want!r}, and this {type(problem).__name__} "
                f"object has {'no such key' if node is _MISSING else repr(node)}; build it with that value "
                f"(for example opsrl.problem(..., **{{{key!r}: {want!r}}}))",
            )
    return problem


_MISSING = object()


def _bundled_name(kind: str, path: Path) -> str | None:
    target = path.resolve()
    for name, p in bundled(kind).items():
        if p.resolve() == target:
            return name
    return None
