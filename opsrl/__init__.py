"""opsrl: differentiable, batched operations simulators and the methods that control them.

The Python API (``docs/api.md``), imported on first use so that ``import opsrl`` stays light:

* :func:`problem` -- a problem object from a bundled name, a problem file or a table (dict), with overrides;
* :func:`solver` -- a solver configuration from a bundled name or a solver file, with options;
* :func:`run` -- one solver on one problem (a name, a table or an object built in Python): a :class:`Result`
  with the run's record, its fitted ``policy`` and ``plot()``; ``store=`` records it as ``opsrl run`` does;
* :func:`compare` -- problems x solvers x seeds, as ``opsrl bench`` does: a pandas DataFrame, one row per run;
* :func:`results` -- the runs of a results store as a DataFrame (``opsrl export`` writes them to CSV/Parquet).

Problems and solvers of every family are listed by ``opsrl list``; bad input raises
:class:`ConfigError` (a ``ValueError``) naming the argument or file, the key and what is allowed.
"""

from typing import Any as _Any

__version__ = "0.1.0"

__all__ = ["problem", "solver", "run", "compare", "results", "Result", "Solver", "ConfigError", "__version__"]

_API = {"problem", "solver", "run", "compare", "results", "export", "Result", "Solver"}


def __getattr__(name: str) -> _Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "ConfigError":
        from .core import ConfigError

        return ConfigError
    raise AttributeError(f"module 'opsrl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
