"""Shield units: map a proposed action to a safe one, declare what they guarantee, explain what they did.

A proposal is a dict of batch-first tensors (fields such as ``"gensets"``, ``"battery_kw"``). A
:class:`ShieldUnit` owns some fields and some named constraints (``guarantees``). Units compose into a
hierarchy: a unit first applies its own rule (:meth:`ShieldUnit.apply`), then hands the result to its
children in order, so a parent sets targets that its children refine (a microgrid unit picks how many
gensets must run; the genset group turns that into per-genset commands; each genset unit enforces its own
timers).

Everything is batched tensor code; rules are built from ``clamp``/``minimum``/``where`` so that a shield is
differentiable almost everywhere. Discrete decisions carry a straight-through gradient
(:func:`straight_through`).

Explanation mode: pass a :class:`Trace` and every unit records, per field it changed, the value before and
after and a per-scenario reason. :meth:`Trace.explain` prints them for one scenario.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["ShieldUnit", "Trace", "Change", "straight_through", "round_ste"]

Proposal = dict[str, torch.Tensor]


def straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``hard`` in the forward pass, the gradient of ``soft`` in the backward pass."""
    return hard + (soft - soft.detach())


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer with a straight-through (identity) gradient."""
    return straight_through(torch.round(x.detach()), x)


@dataclass
class Change:
    """One unit's change of one field at one step: values before/after and the reason for each scenario."""

    unit: str
    field: str
    before: torch.Tensor
    after: torch.Tensor
    reasons: list[tuple[torch.Tensor, str]]  # (mask [B], text): the first matching mask explains a scenario

    def changed(self, atol: float = 1e-6) -> torch.Tensor:
        diff = (self.after - self.before).abs()
        if diff.dim() > 1:
            diff = diff.flatten(1).amax(dim=1)
        return diff > atol

    def reason(self, i: int) -> str:
        for mask, text in self.reasons:
            if bool(mask[i]):
                return text
        return "unspecified"


@dataclass
class Trace:
    """What the units of a shield changed at one step (explanation mode)."""

    changes: list[Change] = field(default_factory=list)

    def note(
        self,
        unit: ShieldUnit,
        name: str,
        before: torch.Tensor,
        after: torch.Tensor,
        reasons: Sequence[tuple[torch.Tensor, str]],
    ) -> None:
        self.changes.append(
            Change(
                unit.name, name, before.detach().clone(), after.detach().clone(), [(m.detach(), r) for m, r in reasons]
            )
        )

    def explain(self, i: int = 0, atol: float = 1e-6) -> list[str]:
        """Lines ``unit: field before -> after (reason)`` for every change that affected scenario ``i``."""
        out = []
        for c in self.changes:
            if bool(c.changed(atol)[i]):
                b, a = c.before[i], c.after[i]
                fmt = (
                    (lambda v: f"{float(v):.4g}")
                    if b.dim() == 0
                    else (lambda v: "[" + ", ".join(f"{float(x):.4g}" for x in v.flatten()) + "]")
                )
                out.append(f"{c.unit}: {c.field} {fmt(b)} -> {fmt(a)} ({c.reason(i)})")
        return out

    def units_that_changed(self, i: int = 0, atol: float = 1e-6) -> list[str]:
        seen: list[str] = []
        for c in self.changes:
            if bool(c.changed(atol)[i]) and c.unit not in seen:
                seen.append(c.unit)
        return seen


class ShieldUnit:
    """A node of a shield hierarchy.

    Subclasses set ``name`` and ``guarantees`` (the names of the constraints this unit alone makes
    hold) and override :meth:`apply`. ``children`` are applied after the unit's own rule, in order.
    """

    name: str = "unit"
    guarantees: tuple[str, ...] = ()

    def __init__(self, children: Sequence[ShieldUnit] = ()):
        self.children: tuple[ShieldUnit, ...] = tuple(children)
        names = [u.name for u in self.walk()]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"shield unit names must be unique in a hierarchy; repeated: {sorted(dup)}")

    def apply(self, state: Mapping[str, torch.Tensor], proposal: Proposal, trace: Trace | None) -> Proposal:
        """This unit's own rule; the default passes the proposal through."""
        return proposal

    def __call__(self, state: Mapping[str, torch.Tensor], proposal: Proposal, trace: Trace | None = None) -> Proposal:
        safe = self.apply(state, dict(proposal), trace)
        for child in self.children:
            safe = child(state, safe, trace)
        return safe

    def walk(self) -> Iterator[ShieldUnit]:
        """This unit and all its descendants, depth first."""
        yield self
        for c in self.children:
            yield from c.walk()

    def all_guarantees(self) -> dict[str, str]:
        """Every constraint guaranteed somewhere in the hierarchy, mapped to the unit that owns it."""
        out: dict[str, str] = {}
        for u in self.walk():
            for g in u.guarantees:
                if g in out:
                    raise ValueError(f"constraint {g!r} is claimed by both {out[g]!r} and {u.name!r}")
                out[g] = u.name
        return out

    def tree(self, indent: int = 0) -> str:
        """The hierarchy as indented text, with each unit's guarantees."""
        line = "  " * indent + self.name + (f"  [{', '.join(self.guarantees)}]" if self.guarantees else "")
        return "\n".join([line] + [c.tree(indent + 1) for c in self.children])

    def note(
        self,
        trace: Trace | None,
        name: str,
        before: torch.Tensor,
        after: torch.Tensor,
        reasons: Sequence[tuple[torch.Tensor, str]],
    ) -> None:
        if trace is not None:
            trace.note(self, name, before, after, reasons)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
