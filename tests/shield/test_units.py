"""Generic shield units: composition order, guarantees, explanation trace, straight-through gradients."""

import pytest
import torch

from opsrl.shield import ShieldUnit, Trace, round_ste, straight_through


class Clip(ShieldUnit):
    def __init__(self, name, field, lo, hi, guarantees=(), children=()):
        self.name, self.field, self.lo, self.hi, self.guarantees = name, field, lo, hi, tuple(guarantees)
        super().__init__(children)

    def apply(self, state, proposal, trace):
        x = proposal[self.field]
        y = x.clamp(self.lo, self.hi)
        self.note(trace, self.field, x, y, [(x > self.hi, f"above {self.hi}"), (x < self.lo, f"below {self.lo}")])
        proposal[self.field] = y
        return proposal


def test_parent_applies_before_children_in_order():
    # parent clips to [0, 10], then child A to [2, 8], then child B to [0, 5]: the result is [2, 5]
    root = Clip("root", "x", 0, 10, ["x.range"], [Clip("a", "x", 2, 8, ["x.a"]), Clip("b", "x", 0, 5, ["x.b"])])
    out = root({}, {"x": torch.tensor([-3.0, 3.0, 20.0])})
    assert out["x"].tolist() == [2.0, 3.0, 5.0]
    assert root.all_guarantees() == {"x.range": "root", "x.a": "a", "x.b": "b"}
    assert [u.name for u in root.walk()] == ["root", "a", "b"]
    assert "root  [x.range]" in root.tree()


def test_duplicate_names_and_guarantees_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        Clip("r", "x", 0, 1, children=[Clip("a", "x", 0, 1), Clip("a", "x", 0, 1)])
    root = Clip("r", "x", 0, 1, ["c"], [Clip("a", "x", 0, 1, ["c"])])
    with pytest.raises(ValueError, match="claimed by both"):
        root.all_guarantees()


def test_trace_explains_which_unit_changed_what_and_why():
    root = Clip("root", "x", 0, 10, children=[Clip("cap", "x", 0, 5)])
    trace = Trace()
    root({}, {"x": torch.tensor([20.0, 4.0, -1.0])}, trace)
    assert trace.explain(0) == ["root: x 20 -> 10 (above 10)", "cap: x 10 -> 5 (above 5)"]
    assert trace.explain(1) == []
    assert trace.explain(2) == ["root: x -1 -> 0 (below 0)"]
    assert trace.units_that_changed(0) == ["root", "cap"]


def test_straight_through_gradients():
    soft = torch.tensor([0.3, 1.7], requires_grad=True)
    hard = round_ste(soft)
    assert hard.tolist() == [0.0, 2.0]
    (hard * torch.tensor([2.0, 3.0])).sum().backward()
    assert soft.grad.tolist() == [2.0, 3.0]
    x = torch.tensor([0.5], requires_grad=True)
    y = straight_through(torch.tensor([1.0]), 4 * x)
    y.sum().backward()
    assert y.item() == 1.0 and x.grad.item() == 4.0
