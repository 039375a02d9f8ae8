"""Seeding: one independent random stream per (seed, split, stream name).

Scenarios are drawn on the CPU from these streams and then moved to the requested device, so the same
seed and split give bit-identical scenarios on any device. Splits never share a stream: the split is
part of the seed sequence's entropy, as is a hash of the stream's name (demand, initial state, ...).
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

SPLITS = ("train", "dev", "test")


def _split_id(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    return SPLITS.index(split)


def seed_sequence(seed: int, split: str, stream: str) -> np.random.SeedSequence:
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.SeedSequence([int(seed), _split_id(split), zlib.crc32(stream.encode())])


def generator(seed: int, split: str, stream: str) -> torch.Generator:
    """A CPU ``torch.Generator`` for one named stream of one split."""
    state = seed_sequence(seed, split, stream).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def numpy_rng(seed: int, split: str, stream: str) -> np.random.Generator:
    return np.random.default_rng(seed_sequence(seed, split, stream))
