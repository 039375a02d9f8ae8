"""Augmented random search against closed forms: an unconstrained quadratic and a quadratic under a cap."""

import numpy as np
import pytest

from opsrl.algos.ars import ars


def test_ars_finds_the_minimum_of_a_quadratic():
    target = np.array([0.5, -1.0, 2.0])

    def evaluate(th):
        return ((th - target) ** 2).sum(1), None

    res = ars(evaluate, np.zeros(3), iterations=300, directions=8, top=4, noise=0.05, step=0.05, progress=False)
    assert np.abs(res.theta - target).max() < 0.05
    assert res.kept_iteration == 300 and res.multiplier == 0.0


def test_ars_under_a_cap_stops_at_the_constrained_optimum():
    # min (x - 3)^2 subject to x <= 1: the optimum is x = 1 with multiplier 2 (x - 3) + lambda = 0, lambda = 4
    def evaluate(th):
        return (th[:, 0] - 3.0) ** 2, th[:, 0]

    def select(th):
        return float((th[0] - 3.0) ** 2), bool(th[0] <= 1.0)

    res = ars(
        evaluate,
        np.array([0.0]),
        iterations=400,
        directions=4,
        top=2,
        noise=0.02,
        step=0.02,
        cap=1.0,
        multiplier=1.0,
        multiplier_step=0.5,
        select=select,
        select_every=1,
        progress=False,
    )
    assert 0.9 < res.theta[0] <= 1.0  # kept: admissible and close to the bound
    assert 2.5 < res.multiplier < 6.0  # near the KKT multiplier 4
    assert res.history[0]["iteration"] == 0 and len(res.history) == 401


def test_ars_keeps_the_start_when_nothing_better_is_admissible():
    # the only admissible point is the start: it is kept although later points cost less
    res = ars(
        lambda th: (((th - 1.0) ** 2).sum(1), None),
        np.zeros(1),
        iterations=10,
        progress=False,
        select=lambda th: (float(((th - 1.0) ** 2).sum()), bool(th[0] == 0.0)),
    )
    assert res.kept_iteration == 0 and res.theta[0] == 0.0


@pytest.mark.parametrize(
    "kw", [{"iterations": -1}, {"directions": 0}, {"noise": 0.0}, {"step": -1.0}, {"top": 9}, {"cap": 0.0}]
)
def test_ars_rejects_bad_settings(kw):
    args = {"iterations": 1, **kw}
    with pytest.raises(ValueError):
        ars(lambda th: (th.sum(1), th.sum(1)), np.zeros(2), progress=False, **args)
