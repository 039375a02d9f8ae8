"""A hand-made plant of 2 items and 2 machines, used by several tests."""

from opsrl.lotsizing.simulator import build

HAND = {
    "items": 2,
    "machines": 2,
    "initial": "instance",
    "periods": 3,
    "capacity": [[10, 0], [4, 6]],
    "setup_cost": [[5, 7], [3, 2]],
    "setup_loss": [[1, 1], [2, 1]],
    "holding_cost": [0.5, 0.25],
    "lost_sales_cost": [2, 3],
    "max_inventory": [12, 12],
    "initial_inventory": [3, 1],
    "initial_setup": [1, 0],
}


def hand_problem(**kw):
    return build({**HAND, **kw}, "hand.toml")
