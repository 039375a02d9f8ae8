"""Hydro-thermal dispatch (long-term, DC network): the stage LP of the TS-DDR contract, SDP and SDDP references.

Read in this order: :mod:`.cases` (reading and checking a case folder), :mod:`.model` (the problem and its
stage LP).
"""

from __future__ import annotations

from ..core import Family
from .model import Hydro, build

__all__ = ["FAMILY", "Hydro", "build"]

FAMILY = Family("hydro", build, {})
