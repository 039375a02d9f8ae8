"""Generic shield units (shielded controller units) and their hierarchy.

``opsrl.shield`` imports only ``opsrl.core`` (and torch). Problem families build their own units on top
(see ``opsrl.microgrid.shields``).
"""

from .units import Change, ShieldUnit, Trace, round_ste, straight_through

__all__ = ["Change", "ShieldUnit", "Trace", "round_ste", "straight_through"]
