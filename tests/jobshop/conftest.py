"""Fixtures of the job-shop tests."""

import pytest

from opsrl.jobshop import instances as I


@pytest.fixture(scope="session")
def standard():
    return [I.load(n) for n in I.names()]
