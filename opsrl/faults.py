"""Named fault points: where the fault tests deliver a Ctrl-C to a real ``opsrl`` process.

A command's life has moments where an interrupt must lead to one definite outcome (nothing recorded
and an interrupted exit, or the run recorded and exit 0). Each such moment calls :func:`point` with
its name. In normal use this does nothing; with the environment variable ``OPSRL_FAULT_AT`` set to a
point's name (or a comma-separated list of them), the process raises SIGINT in its own main thread at
that point, exactly as a Ctrl-C arriving there would, so each outcome is tested deterministically
(``tests/test_faults.py``). ``OPSRL_FAULT_AT=name:k`` fires at the k-th time the point is reached
(counted from 1), for points reached once per cell of a sweep. With ``OPSRL_FAULT_LOG`` naming a file,
each point that fires appends its name to that file, so a test knows the fault was delivered.

The points, in the order a run meets them: ``start`` (the command line is parsed, nothing imported),
``family_import`` (a problem family's module is about to be imported: its compiled dependencies
initialise there), ``fit`` (training has started), ``before_commit`` (the run is finished and about to be
written), ``insert`` (inside the write transaction, between the insert and the commit), ``after_commit``
(written, nothing printed yet), ``after_print`` (the summary and the ``recorded`` line are out) and
``shutdown`` (the command has returned its status; the interpreter is shutting down).
"""

from __future__ import annotations

import os
import signal
import threading

POINTS = (
    "start",
    "family_import",
    "fit",
    "before_commit",
    "insert",
    "after_commit",
    "after_print",
    "shutdown",
)

_seen: dict[str, int] = {}


def _wanted() -> dict[str, int]:
    out: dict[str, int] = {}
    for item in os.environ.get("OPSRL_FAULT_AT", "").split(","):
        name, _, k = item.strip().partition(":")
        if name:
            out[name] = int(k) if k.isdigit() else 1
    return out


def point(name: str) -> None:
    """Deliver SIGINT here when ``OPSRL_FAULT_AT`` names this point (see the module's docstring)."""
    if "OPSRL_FAULT_AT" not in os.environ or threading.current_thread() is not threading.main_thread():
        return
    want = _wanted().get(name)
    if want is None:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == want:
        log = os.environ.get("OPSRL_FAULT_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{name}:{want}\n")
        signal.raise_signal(signal.SIGINT)
