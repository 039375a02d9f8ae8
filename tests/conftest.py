import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets its own results store and cache, and a fixed thread count."""
    monkeypatch.setenv("OPSRL_STORE", str(tmp_path / "results.sqlite"))
    monkeypatch.setenv("OPSRL_CACHE", str(tmp_path / "cache"))
    # under pytest-xdist every worker gets one thread, so workers do not fight over the cores
    torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1))
    yield


@pytest.fixture
def one_thread():
    """Small batched tensors: one thread (two threads on a busy machine only wait for each other)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
