import subprocess
import sys

import pytest

from opsrl.core import ConfigError
from opsrl.lotsizing.simulator import build

from .helpers import HAND


@pytest.mark.parametrize(
    "change,key,words",
    [
        ({"capacity": [[10, 0], [-4, 6]]}, "capacity", "negative value -4"),
        ({"setup_cost": [[5, 7], [3, -2]]}, "setup_cost", "negative"),
        ({"lost_sales_cost": [2, -3]}, "lost_sales_cost", "negative"),
        ({"holding_cost": [0.5, float("nan")]}, "holding_cost", "NaN"),
        ({"capacity": [[10, 0], [4, 0]]}, "capacity", "item 2 has capacity 0 on every machine"),
        ({"capacity": [[0, 0], [4, 6]], "idle": False}, "capacity", "allows no action"),
        ({"capacity": [[10, 0]]}, "capacity", "expected shape 2 x 2"),
        ({"demand": {"distribution": "gamma"}}, "demand.distribution", "choose one of"),
        ({"demand": {"distribution": "pmf", "values": [1, 2], "probs": [0.5, 0.6]}}, "demand.probs", "sum to 1"),
        ({"initial_setup": [3, 0]}, "initial_setup", "0..2"),
        ({"colour": "red"}, "colour", "unknown key"),
    ],
)
def test_bad_input_names_the_file_and_key(change, key, words):
    with pytest.raises(ConfigError) as e:
        build({**HAND, **change}, "plant.toml")
    assert e.value.source == "plant.toml" and e.value.key.split("[")[0] == key and words in e.value.message


def test_cli_exit_status_2_on_bad_problem(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('family = "lotsizing"\nitems = 3\nmachines = 2\nsetup_cost = [[1, 2, -3], [1, 1, 1]]\n')
    r = subprocess.run(
        [sys.executable, "-m", "opsrl.cli", "run", str(f), "lotsizing_cover_rule", "--no-store"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "setup_cost" in r.stderr and "bad.toml" in r.stderr
