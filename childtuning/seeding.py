"""Independent, reproducible random streams derived from one run seed, by name.

Each source of randomness gets its own stream so that changing one (e.g. drawing Child-Tuning_F
masks, or a Fisher pass) never shifts another (the training data order, dropout): a vanilla and a
Child-Tuning run with the same seed see the same batches in the same order.

A stream is any name. The six streams of the first release keep the numbers they were derived
with (their position in the original tuple), so committed records still reproduce; any other
name (a new method's own stream, e.g. "mixout") is derived from a hash of the name, so adding a
stream needs no edit here and shifts no existing one.
"""
import random
import zlib

import numpy as np
import torch

# Do not reorder or extend: the index is part of each stream's seed.
_FIRST_RELEASE = ("init", "data", "dropout", "mask", "fisher", "subsample")
_NAMED_OFFSET = 2**32   # hashed names start here, far from the first release's indices


def stream_index(stream: str) -> int:
    """The number that, with the run seed, seeds `stream`."""
    if not stream or not isinstance(stream, str):
        raise ValueError(f"a random stream needs a non-empty name, got {stream!r}")
    if stream in _FIRST_RELEASE:
        return _FIRST_RELEASE.index(stream)
    return _NAMED_OFFSET + zlib.crc32(stream.encode("utf-8"))


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for `stream`, derived from the run seed (stable across versions)."""
    state = np.random.SeedSequence([int(seed), stream_index(stream)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def generator(seed: int, stream: str, device="cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(stream_seed(seed, stream))


def seed_global(seed: int, stream: str) -> None:
    """Seed the global torch/python/numpy RNGs (used by weight init and dropout)."""
    s = stream_seed(seed, stream)
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % 2**32)
