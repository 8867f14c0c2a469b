"""A disk cache of Fisher passes: runs whose pass would compute the same numbers share one pass.

Child-Tuning_D's Fisher pass depends only on what happens before training: the model as it is
when the pass starts (pretrained weights, the new head's initialisation, Top-K's freezing), the
batches it sees (the training examples, in the order of the run's "fisher" stream, laid out by
the collator: packed or padded), the dropout (the global generator seeded from that stream, so
the run seed) and the Fisher settings. Not on the learning rate, the number
of epochs, the keep ratio or the selection rule, so a keep-ratio sweep, the selection ablations
and a mask-only run (trainer.epochs=0) of one task and seed pay for one pass.

The cache key is the SHA-256 of `describe()`: every input above, spelled out (no input is
assumed from a config name; the batches are hashed tensor by tensor as the pass would receive
them, so a change to the data, the order or the batching code changes the key), plus the device type, the CPU thread count (matrix kernels may sum
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


def batches_fingerprint(loader, batch_size: int, order: torch.Generator) -> str:
    """Every batch the pass would receive (all tensors, in order): the examples, their order from
    `order` (a fresh copy of the pass's stream) and the collator's layout, packed or padded."""
    h = hashlib.sha256(type(loader.collate).__name__.encode())
    for batch in loader.reshuffled(order, batch_size):
        for name in sorted(batch):
            t = batch[name]
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(_tensor_bytes(t))
    return h.hexdigest()


def describe(model, names: list[str], params: list[torch.nn.Parameter], loader, settings, seed: int,
             device: torch.device, order: torch.Generator) -> dict:
    """Everything a Fisher pass's result depends on (see the module docstring). `order`: a fresh
    generator of the pass's own stream (consumed here; the pass draws from another fresh one)."""
    import transformers

    return {"version": CACHE_VERSION, "seed": int(seed),
            "settings": {k: settings[k] for k in SETTINGS},
            "params": [[n, list(p.shape)] for n, p in zip(names, params)],
            "model": model_fingerprint(model), "batches": batches_fingerprint(loader, settings["batch_size"], order),
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
