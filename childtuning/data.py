"""Task data: load a task's splits (readers.py, subsets.py), tokenize (cached), batch."""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import torch

from .readers import Split, read_split  # noqa: F401 (used as data.*)
from .subsets import held_out, resplit, subsample, training_subset  # noqa: F401 (used as data.*)

RUN_SPLITS = ("train", "dev")   # what a fine-tuning run reads; evaluation targets name others


def load_task(task, glue_dir: str | None, splits=RUN_SPLITS) -> dict[str, Split]:
    """The named splits of `task` (each from its local file, else the hub: childtuning/readers.py).
    A task with `resplit` cuts train and dev from one declared split (childtuning/subsets.py)."""
    out = {}
    if task.resplit is not None and {"train", "dev"} & set(splits):
        pool = read_split(task, task.resplit.source, glue_dir)
        group = task.resplit.group
        out["train"], out["dev"] = resplit(pool, task.resplit.train_size, task.resplit.seed, task.name,
                                           list(task.text_fields).index(group) if group else None, group or "")
    for split in splits:
        if split not in out:
            out[split] = read_split(task, split, glue_dir)
    return {s: out[s] for s in splits}


def fingerprint(split: Split) -> str:
    h = hashlib.sha256(json.dumps([split.texts, split.labels]).encode())
    return h.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    """What decides the token ids: the vocabulary, normaliser, pre-tokeniser, model and template.
    Not the backend's truncation and padding state, which calling the tokenizer sets (so a key
    taken after a first call differed from one taken before it, and caches missed at random)."""
    if getattr(tokenizer, "is_fast", False):
        state = json.loads(tokenizer.backend_tokenizer.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        state = json.dumps(state, sort_keys=True)
    else:
        state = str(tokenizer.get_vocab())
    return hashlib.sha256((state + tokenizer.padding_side).encode()).hexdigest()[:16]


def tokenize(split: Split, tokenizer, max_length: int, cache_dir: str | None) -> list[dict]:
    """Token ids per example (no padding), cached on disk by tokenizer, length and data."""
    key = f"{tokenizer_fingerprint(tokenizer)}-{max_length}-{fingerprint(split)}"
    path = Path(cache_dir) / "tokenized" / f"{key}.pt" if cache_dir else None
    if path is not None and path.is_file():
        return torch.load(path)
    columns = list(zip(*split.texts))
    enc = tokenizer(*columns, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "token_type_ids") if k in enc]
    features = [{**{k: enc[k][i] for k in keys}, "labels": split.labels[i]} for i in range(len(split))]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(features, tmp)
        os.replace(tmp, path)
    return features


class Collator:
    """Pads a list of features to the longest in the batch (or to a fixed length)."""

    def __init__(self, tokenizer, regression: bool, pad_to: int | None = None, multiple_of: int = 1):
        self.pad_id = tokenizer.pad_token_id
        self.multiple_of = multiple_of      # round the batch's length up (GPU matrix kernels prefer multiples of 8)
        self.pad_type = getattr(tokenizer, "pad_token_type_id", 0)
        self.left = tokenizer.padding_side == "left"
        self.regression = regression
        self.pad_to = pad_to

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        length = self.pad_to or -(-max(len(f["input_ids"]) for f in features) // self.multiple_of) * self.multiple_of
        out = {"input_ids": [], "attention_mask": []}
        has_types = "token_type_ids" in features[0]
        if has_types:
            out["token_type_ids"] = []
        for f in features:
            pad = length - len(f["input_ids"])
            def padded(seq, value):
                return [value] * pad + list(seq) if self.left else list(seq) + [value] * pad
            out["input_ids"].append(padded(f["input_ids"], self.pad_id))
            out["attention_mask"].append(padded([1] * len(f["input_ids"]), 0))
            if has_types:
                out["token_type_ids"].append(padded(f["token_type_ids"], self.pad_type))
        batch = {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}
        batch["labels"] = torch.tensor([f["labels"] for f in features],
                                       dtype=torch.float32 if self.regression else torch.long)
        return batch


class BatchLoader:
    """Batches of features in an order drawn from `generator` (None = file order, or by length)."""

    def __init__(self, features: list[dict], batch_size: int, collate, generator: torch.Generator | None = None,
                 progress: bool = False, by_length: bool = False):
        # evaluation: similar lengths share a batch, so less padding (metrics ignore order); `source_index`
        # keeps each example's position in `features` (a target's breakdown lines predictions up with it)
        self.source_index = list(range(len(features)))
        if by_length:
            self.source_index.sort(key=lambda i: len(features[i]["input_ids"]))     # stable, as before
            features = [features[i] for i in self.source_index]
        self.features, self.batch_size, self.collate = features, batch_size, collate
        self.generator, self.progress = generator, progress

    def __len__(self):
        return math.ceil(len(self.features) / self.batch_size)

    def __iter__(self):
        return self.batches()

    def batches(self, skip: int = 0):
        """The batches in this pass's order, less the first `skip` (drawn, not built): a resumed
        epoch draws the same order from the same generator state and skips the batches done."""
        n = len(self.features)
        order = torch.randperm(n, generator=self.generator).tolist() if self.generator is not None else range(n)
        order = list(order)
        for i in range(skip * self.batch_size, n, self.batch_size):
            yield self.collate([self.features[j] for j in order[i: i + self.batch_size]])

    def reshuffled(self, generator: torch.Generator, batch_size: int | None = None) -> "BatchLoader":
        return BatchLoader(self.features, batch_size or self.batch_size, self.collate, generator, self.progress)
