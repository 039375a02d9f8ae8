"""The examples of docs/envs.md run as written (one per library, small budgets)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

pytest.importorskip("gymnasium")
pytest.importorskip("torchrl")
pytest.importorskip("sb3_contrib")

DOC = Path(__file__).resolve().parents[2] / "docs" / "envs.md"
SECTIONS = re.split(r"^## ", DOC.read_text(), flags=re.M)[1:]
BLOCKS = [(s.splitlines()[0], code) for s in SECTIONS for code in re.findall(r"^```python\n(.*?)^```$", s, re.S | re.M)]


def test_every_library_has_an_example():
    titles = [t for t, _ in BLOCKS]
    assert any("Stable-Baselines3" in t for t in titles)
    assert any("CleanRL" in t for t in titles)
    assert any("TorchRL" in t for t in titles)


@pytest.mark.parametrize("title,code", BLOCKS, ids=[t for t, _ in BLOCKS])
def test_doc_example_runs(title, code):
    torch.set_num_threads(1)  # small networks: one thread is fastest, and several fight on a busy machine
    exec(compile(code, f"{DOC.name}: {title}", "exec"), {"__name__": "__docs__"})
