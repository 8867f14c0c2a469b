"""A disk cache of Fisher passes: runs whose pass would compute the same numbers share one pass.

Child-Tuning_D's Fisher pass depends only on what happens before training: the model as it is
when the pass starts (pretrained weights, the new head's initialisation, any earlier preparation
such as Mixout's module swap or Top-K's freezing), the training examples, how they are batched,
the run seed (the pass's order comes from its "fisher" stream and its dropout from the global
generator seeded from that stream) and the Fisher settings. Not on the learning rate, the number
of epochs, the keep ratio or the selection rule, so a keep-ratio sweep, the selection ablations
and a mask-only run (trainer.epochs=0) of one task and seed pay for one pass.

The cache key is the SHA-256 of `describe()`: every input above, spelled out (no input is
assumed from a config name), plus the device type, the CPU thread count (matrix kernels may sum
in another order with other thread counts), the torch and transformers versions, and
CACHE_VERSION, which a change to `fisher.fisher_information` must bump. An entry stores that
description next to the scores and is used only when it is equal to the asking run's, so a
changed input can only miss. Entries live in `<paths.cache>/fisher/<key>.pt` (written
atomically; safe to delete); `impl.fisher_cache=false` switches the cache off. A combination of
methods (`child_tuning_d+mixout`) never uses it: an earlier part's preparation can hold state
outside the model's weights (Mixout's mixing probability and random stream, which the pass's
forward passes advance), which the key would miss and a skipped pass would not advance.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

CACHE_VERSION = 1   # bump when the Fisher pass computes differently (childtuning/fisher.py)
SETTINGS = ("clip_per_tensor", "max_grad_norm", "per_example", "dropout", "batch_size", "max_samples")


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:          # numpy has no bfloat16: hash its bits
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def model_fingerprint(model: torch.nn.Module) -> str:
    """Every parameter and buffer (name, dtype, shape, bytes), which of them train, the module
    classes and the model's config: the model as the pass would see it."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict(keep_vars=True).items()):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|{getattr(t, 'requires_grad', False)}|".encode())
        h.update(_tensor_bytes(t))
    h.update(" ".join(type(m).__name__ for m in model.modules()).encode())
    config = getattr(model, "config", None)
    if config is not None:
        h.update(config.to_json_string(use_diff=False).encode())
        h.update(str(getattr(config, "_attn_implementation", None)).encode())
    return h.hexdigest()


def data_fingerprint(features: list[dict]) -> str:
    """The training examples as the loader holds them (token ids, segment ids, labels, in order)."""
    return hashlib.sha256(json.dumps(features, sort_keys=True).encode()).hexdigest()


def batching(loader, batch_size: int) -> dict:
    """How the pass batches: the batch size and the collator's layout settings (packed or padded)."""
    collate = loader.collate
    simple = {k: v for k, v in sorted(vars(collate).items()) if isinstance(v, (bool, int, float, str, type(None)))}
    return {"batch_size": batch_size, "collator": type(collate).__name__, **simple}


def describe(model, names: list[str], params: list[torch.nn.Parameter], loader, settings, seed: int,
             device: torch.device) -> dict:
    """Everything a Fisher pass's result depends on (see the module docstring)."""
    import transformers

    return {"version": CACHE_VERSION, "seed": int(seed),
            "settings": {k: settings[k] for k in SETTINGS},
            "params": [[n, list(p.shape)] for n, p in zip(names, params)],
            "model": model_fingerprint(model), "data": data_fingerprint(loader.features),
            "batching": batching(loader, settings["batch_size"]),
            "device": device.type, "threads": torch.get_num_threads() if device.type == "cpu" else None,
            "torch": torch.__version__, "transformers": transformers.__version__}


def key(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:24]


def path(cache_dir: str | Path, description: dict) -> Path:
    return Path(cache_dir) / "fisher" / f"{key(description)}.pt"


def load(cache_dir: str | Path, description: dict, device: torch.device) -> list[torch.Tensor] | None:
    """The cached scores for exactly this description, on `device`; None if there are none."""
    file = path(cache_dir, description)
    try:
        entry = torch.load(file, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None
    if entry.get("description") != json.loads(json.dumps(description)):   # a key collision or a stale file
        return None
    return [t.to(device) for t in entry["scores"]]


def save(cache_dir: str | Path, description: dict, scores: list[torch.Tensor]) -> Path:
    """Store `scores` under `description` (atomically: concurrent runs may write the same entry)."""
    file = path(cache_dir, description)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.tmp{os.getpid()}")
    try:
        torch.save({"description": json.loads(json.dumps(description)), "scores": [s.detach().cpu() for s in scores]}, tmp)
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)
    return file
