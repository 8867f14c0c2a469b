"""Task data: read a GLUE-format folder or the hub, subsample, tokenize (cached), batch."""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from . import REPO_ROOT
from .errors import InputError


@dataclass
class Split:
    texts: list[tuple[str, ...]]
    labels: list            # class indices, or floats for regression
    source: str             # file path or hub id, for messages and the record

    def __len__(self):
        return len(self.labels)


def glue_dir_candidates(configured: str | None) -> list[Path]:
    """Where local task folders are looked for, in order: paths.glue_dir ($GLUE_DIR),
    data/glue in the repository, ../shared/data/glue beside it."""
    if configured:
        return [Path(configured).expanduser()]
    return [REPO_ROOT / "data" / "glue", REPO_ROOT.parent / "shared" / "data" / "glue"]


def _hint(task) -> str:
    return (f"Point the run at a folder of GLUE-format task folders with `paths.glue_dir=/path/to/glue` "
            f"or the environment variable GLUE_DIR (it must contain {task.local.folder}/"
            f"{task.local.files.train}), or make the hub dataset {task.hub.path}/{task.hub.name} reachable.")


def read_local_split(task, folder: Path, split: str) -> Split:
    path = folder / task.local.files[split]
    if not path.is_file():
        raise InputError(f"task {task.name}: missing data file {path}. {_hint(task)}")
    columns = list(task.local.columns)
    text_idx = [columns.index(f) for f in task.text_fields]
    label_idx = columns.index(task.label_field)
    labels_known = None if task.regression else [str(x) for x in task.labels]
    texts, labels = [], []
    # utf-8-sig drops MRPC's byte-order mark; no quote processing (GLUE text holds bare quotes).
    with open(path, encoding="utf-8-sig", newline="") as f:
        lines = f.read().split("\n")
    for lineno, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if (lineno == 1 and task.local.header) or not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise InputError(f"{path}:{lineno}: malformed row with {len(fields)} tab-separated fields, "
                             f"expected {len(columns)} ({', '.join(columns)}); fix or remove the row")
        raw = fields[label_idx].strip()
        if task.regression:
            try:
                label = float(raw)
            except ValueError:
                raise InputError(f"{path}:{lineno}: label {raw!r} is not a number (task {task.name} is a regression)") from None
        else:
            if raw not in labels_known:
                raise InputError(f"{path}:{lineno}: label {raw!r} is not one of task {task.name}'s labels "
                                 f"{labels_known}; fix the row or the task's `labels`")
            label = labels_known.index(raw)
        texts.append(tuple(fields[i] for i in text_idx))
        labels.append(label)
    return Split(texts, labels, str(path))


def read_hub_split(task, split: str) -> Split:
    import datasets  # imported lazily: slow, and not needed for local data

    hub_split = {"train": "train", "dev": "validation"}[split]
    try:
        ds = datasets.load_dataset(task.hub.path, task.hub.name, split=hub_split)
    except Exception as e:  # no network, no cache
        raise InputError(f"task {task.name}: no local copy found (looked in "
                         f"{', '.join(map(str, glue_dir_candidates(None)))}) and the hub dataset "
                         f"{task.hub.path}/{task.hub.name} could not be loaded ({type(e).__name__}: {e}). "
                         f"{_hint(task)}") from None
    fields = list(task.hub.get("text_fields") or task.text_fields)
    texts = list(zip(*[ds[f] for f in fields]))
    labels = list(ds[task.hub.get("label_field") or task.label_field])
    if not task.regression:
        bad = [x for x in labels if not 0 <= int(x) < len(task.labels)]
        if bad:
            raise InputError(f"hub {task.hub.path}/{task.hub.name}: label {bad[0]} outside task {task.name}'s "
                             f"{len(task.labels)} labels (unlabelled test split?)")
    return Split(texts, labels, f"hub:{task.hub.path}/{task.hub.name}:{hub_split}")


def load_task(task, glue_dir: str | None) -> dict[str, Split]:
    """Train and dev splits of `task`, from the first local folder that has it, else the hub."""
    for root in glue_dir_candidates(glue_dir):
        folder = root / task.local.folder
        if folder.is_dir():
            return {s: read_local_split(task, folder, s) for s in ("train", "dev")}
        if glue_dir:  # explicitly configured: do not fall through silently
            raise InputError(f"task {task.name}: folder {folder} does not exist under paths.glue_dir={glue_dir}. "
                             f"{_hint(task)}")
    return {s: read_hub_split(task, s) for s in ("train", "dev")}


def subsample(split: Split, n: int | None, generator: torch.Generator) -> Split:
    """A seeded random subset of `n` examples (order kept as in the file); None = all."""
    if n is None or n >= len(split):
        return split
    idx = sorted(torch.randperm(len(split), generator=generator)[:n].tolist())
    return Split([split.texts[i] for i in idx], [split.labels[i] for i in idx], split.source)


def fingerprint(split: Split) -> str:
    h = hashlib.sha256(json.dumps([split.texts, split.labels]).encode())
    return h.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    state = tokenizer.backend_tokenizer.to_str() if getattr(tokenizer, "is_fast", False) else str(tokenizer.get_vocab())
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

    def __init__(self, tokenizer, regression: bool, pad_to: int | None = None):
        self.pad_id = tokenizer.pad_token_id
        self.pad_type = getattr(tokenizer, "pad_token_type_id", 0)
        self.left = tokenizer.padding_side == "left"
        self.regression = regression
        self.pad_to = pad_to

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        length = self.pad_to or max(len(f["input_ids"]) for f in features)
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
        if by_length:  # evaluation: similar lengths share a batch, so less padding (metrics ignore order)
            features = sorted(features, key=lambda f: len(f["input_ids"]))
        self.features, self.batch_size, self.collate = features, batch_size, collate
        self.generator, self.progress = generator, progress

    def __len__(self):
        return math.ceil(len(self.features) / self.batch_size)

    def __iter__(self):
        n = len(self.features)
        order = torch.randperm(n, generator=self.generator).tolist() if self.generator is not None else range(n)
        order = list(order)
        for i in range(0, n, self.batch_size):
            yield self.collate([self.features[j] for j in order[i: i + self.batch_size]])

    def reshuffled(self, generator: torch.Generator, batch_size: int | None = None) -> "BatchLoader":
        return BatchLoader(self.features, batch_size or self.batch_size, self.collate, generator, self.progress)
