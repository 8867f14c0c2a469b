"""The saved child network of a Child-Tuning run: one bit per eligible weight in the order of the
eligible tensors' names, bit-packed, with those names and shapes (artifacts/<run_id>/child_mask.npz),
and the SHA-256 of the packed bits that the run record carries. One writer, one reader."""
from __future__ import annotations

import ast
import hashlib
import math
from pathlib import Path

import numpy as np

FILE = "child_mask.npz"


def pack(masks) -> np.ndarray:
    """The masks (tensors, in the names' order) as one bit-packed vector (np.packbits)."""
    return np.packbits(np.concatenate([m.cpu().numpy().reshape(-1) for m in masks]))


def digest(packed: np.ndarray) -> str:
    """The SHA-256 of a packed mask: how a record names its child network."""
    return hashlib.sha256(packed.tobytes()).hexdigest()


def write(folder, names: list[str], masks, **meta) -> Path:
    """Save the child network into `folder` (created if needed) with `meta` (keep ratio, selection...)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / FILE
    np.savez_compressed(path, bits=pack(masks), names=np.array(names),
                        shapes=np.array([str(tuple(m.shape)) for m in masks]), **meta)
    return path


def read(path: Path) -> tuple[list[str], list[tuple], np.ndarray]:
    """The eligible tensor names, their shapes and the child network as one boolean vector."""
    with np.load(path) as f:
        names = [str(n) for n in f["names"]]
        shapes = [tuple(ast.literal_eval(str(s))) for s in f["shapes"]]
        total = sum(math.prod(s) for s in shapes)
        return names, shapes, np.unpackbits(f["bits"], count=total).astype(bool)
