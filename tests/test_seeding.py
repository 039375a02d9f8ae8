import torch

from opsrl.registry import load_problem


def test_same_seed_and_split_identical_other_splits_differ():
    p = load_problem("inventory/lost_sales_p9_L4")
    a, b = p.sample(64, "train", 7, 30), p.sample(64, "train", 7, 30)
    for k in a.data:
        assert torch.equal(a[k], b[k])
    dev, test, other = p.sample(64, "dev", 7, 30), p.sample(64, "test", 7, 30), p.sample(64, "train", 8, 30)
    for s in (dev, test, other):
        assert not torch.equal(a["demand"], s["demand"])
        assert not torch.equal(a["initial"], s["initial"])


def test_streams_are_separate_and_prefix_stable():
    """Initial states come from their own stream, so they do not depend on the horizon."""
    p = load_problem("inventory/lost_sales_p9_L4")
    a, b = p.sample(16, "test", 3, 20), p.sample(16, "test", 3, 40)
    assert torch.equal(a["initial"], b["initial"])


def test_demand_law_matches_poisson_moments():
    p = load_problem("inventory/lost_sales_p9_L4")
    d = p.sample(4000, "train", 0, 50)["demand"].double()
    assert abs(d.mean().item() - 5.0) < 0.02  # s.e. = sqrt(5 / 200000) = 0.005
    assert abs(d.var().item() - 5.0) < 0.1
    assert torch.equal(d, d.round()) and d.min() >= 0
