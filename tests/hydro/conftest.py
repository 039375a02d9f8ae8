"""Fixtures of the hydro tests."""

import pytest
import torch
from hydro_tiny import tiny_case

torch.set_num_threads(1)


@pytest.fixture
def tiny(tmp_path):
    return tiny_case(tmp_path / "tiny")
