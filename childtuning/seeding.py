"""Independent, reproducible random streams derived from one run seed.

Each source of randomness gets its own stream so that changing one (e.g. drawing Child-Tuning_F
masks, or a Fisher pass) never shifts another (the training data order, dropout): a vanilla and a
Child-Tuning run with the same seed see the same batches in the same order.
"""
import random

import numpy as np
import torch

STREAMS = ("init", "data", "dropout", "mask", "fisher", "subsample")


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for `stream`, derived from the run seed (stable across versions)."""
    if stream not in STREAMS:
        raise ValueError(f"unknown random stream {stream!r}; known: {STREAMS}")
    state = np.random.SeedSequence([int(seed), STREAMS.index(stream)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def generator(seed: int, stream: str, device="cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(stream_seed(seed, stream))


def seed_global(seed: int, stream: str) -> None:
    """Seed the global torch/python/numpy RNGs (used by weight init and dropout)."""
    s = stream_seed(seed, stream)
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % 2**32)
