"""What a probe reads from a frozen encoder: one vector per example, computed once per (encoder,
split) in eval mode (so it is deterministic) and cached on disk by content.

"The representation" (probe.representation):
  head_input  what the model's own sequence-classification head reads from the encoder (default).
              BERT: the pooler output (dense + tanh on [CLS]); the pooler is part of BertModel,
              so it was fine-tuned with the encoder and is kept. RoBERTa / ELECTRA: the first
              token's last hidden state; their head's dense + tanh (gelu) layer belongs to the
              source's classification head, which the probe drops. XLNet: the last token's
              (<cls>; its sequence-summary projection is likewise part of the dropped head).
  token       that token's last hidden state, without BERT's pooler.
  mean        the mean of the example's last hidden states (its attention mask).
Batches are padded (data.Collator), sorted by length to waste little on padding, and the
features are put back in the split's order.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .. import data, families

REPRESENTATIONS = ("head_input", "token", "mean")


def reading(model_type: str) -> families.Reading:
    """Where a model family's classification head reads its encoder (childtuning/families/)."""
    return families.get(model_type, "the probe's encoder").reading


class FrozenEncoder:
    """The encoder (base model) of a sequence-classification model, frozen and in eval mode."""

    def __init__(self, model, tokenizer, representation: str, device: torch.device, autocast):
        self.model_type = model.config.model_type
        self.reading = reading(self.model_type)
        self.base = model.base_model.to(device).eval()    # eval: no dropout, deterministic features
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.tokenizer, self.representation = tokenizer, representation
        self.device, self.autocast = device, autocast
        self.dim = model.config.hidden_size if hasattr(model.config, "hidden_size") else model.config.d_model
        self.init_std = getattr(model.config, "initializer_range", 0.02)
        self._digest = None

    @property
    def digest(self) -> str:
        """sha256 of the encoder's weights (names, dtypes and bytes): the feature cache's key."""
        if self._digest is None:
            h = hashlib.sha256()
            for name, tensor in sorted(self.base.state_dict().items()):
                t = tensor.detach().cpu().contiguous().reshape(-1)
                h.update(f"{name}:{t.dtype}:{tuple(tensor.shape)}".encode())
                h.update(t.view(torch.uint8).numpy().tobytes())
            self._digest = h.hexdigest()
        return self._digest

    @torch.no_grad()
    def __call__(self, batch: dict) -> torch.Tensor:
        """[B, H] float32 features of a padded batch (data.Collator's input_ids, attention_mask, ...)."""
        inputs = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with self.autocast():
            out = self.base(**inputs)
        hidden, mask = out.last_hidden_state.float(), inputs["attention_mask"]
        if self.representation == "mean":
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            return ((hidden * weights).sum(1) / weights.sum(1)).cpu()
        if self.representation == "head_input" and self.reading.pooler:
            return out.pooler_output.float().cpu()
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        if self.reading.token == "first":     # first real token (left padding: after the pads)
            index = mask.argmax(-1)
        else:                                 # last real token (right padding: before the pads)
            index = mask.shape[1] - 1 - mask.flip(-1).argmax(-1)
        return hidden[rows, index].cpu()


def extract(encoder: FrozenEncoder, examples: list[dict], collate, batch_size: int) -> torch.Tensor:
    """[N, H] features of tokenized `examples`, in their order."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    out = torch.empty(len(examples), encoder.dim)
    for start in range(0, len(order), batch_size):
        idx = order[start: start + batch_size]
        out[idx] = encoder(collate([examples[i] for i in idx]))
    return out


def cache_key(encoder: FrozenEncoder, tokenized_key: str, precision: str, eval_batch_size: int, multiple_of: int) -> str:
    """Everything that decides the feature bits: the weights, what is read, the tokens, the precision
    and the batch shapes (padding changes float rounding)."""
    parts = {"weights": encoder.digest, "model_type": encoder.model_type, "representation": encoder.representation,
             "tokens": tokenized_key, "precision": precision, "batch": eval_batch_size, "multiple_of": multiple_of}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def cached(encoder: FrozenEncoder, split: data.Split, max_length: int, cache_dir: str | None, collate,
           batch_size: int, precision: str, multiple_of: int) -> tuple[torch.Tensor, bool]:
    """(features of `split`, whether they came from the cache): computed once per (encoder, split)."""
    tokenized = data.tokenize(split, encoder.tokenizer, max_length, cache_dir)
    key = f"{data.tokenizer_fingerprint(encoder.tokenizer)}-{max_length}-{data.fingerprint(split)}"
    path = Path(cache_dir) / "probe_features" / f"{cache_key(encoder, key, precision, batch_size, multiple_of)}.pt" \
        if cache_dir else None
    if path is not None and path.is_file():
        return torch.load(path), True
    features = extract(encoder, tokenized, collate, batch_size)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(features, tmp)
        os.replace(tmp, path)
    return features, False
