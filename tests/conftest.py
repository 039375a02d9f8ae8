import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets its own results store and cache, and a fixed thread count."""
    monkeypatch.setenv("OPSRL_STORE", str(tmp_path / "results.sqlite"))
    monkeypatch.setenv("OPSRL_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
