"""Packed batches: a batch's examples laid end to end in rows, block-diagonal attention, exact logits.

Today's `data.Collator` pads every example of a batch to the batch's longest, so a 16-example RTE
batch computes on ~125 positions per example while the mean example holds 67 tokens.
`PackedCollator` lays the SAME examples (same batch, same optimizer step) end to end in rows of at
most `row_length` tokens (first-fit decreasing by length); `forward` runs the encoder with a
block-diagonal mask built on the device, so no token attends outside its own example, restarts
position and token type ids per example, and applies the model's own classification head to each
example's first token. Logits and labels come back in the batch's order.

A packed batch is a dict of tensors (R rows, row width W <= row_length, N examples):

    input_ids          [R, W] long   token ids of the examples, end to end; the tail of a row
                                      (after its last example) holds the pad id
    token_type_ids     [R, W] long   the examples' own segment ids (only if the features have them)
    example_ids        [R, W] long   which example (0..N-1, in batch order) each token belongs to;
                                      -1 on a row's tail. The attention mask is built from it on
                                      the device: a token sees exactly the tokens with the same id
                                      in its row (tail tokens see their row's tail, so no query row
                                      of the mask is empty and no softmax sees only -inf)
    token_positions    [R, W] long   position of each token inside its own example, from 0 (tail: 0);
                                      `forward` adds the architecture's offset (RoBERTa: pad id + 1)
    first_token_index  [N]    long   flat index (row * W + column) of each example's first token,
                                      in batch order: where its [CLS] / <s> sits
    labels             [N]           in batch order (float32 for regression, long for classes)

The varlen layout (`layout="varlen"`) is the same dict with R = 1: every example of the batch end
to end in ONE row, in batch order, with no row tails (only the `multiple_of` rounding adds a tail),
plus

    cu_seq_lens        [S+1]  long   where each segment starts and ends in the row: the N examples,
                                      then the tail if any; [0, len_0, len_0 + len_1, ..., W]

`forward` then runs the encoder without any mask: the linear layers compute on the real tokens
only, and attention (a transformers attention function registered as `VARLEN_ATTENTION`) runs
scaled-dot-product attention on each segment alone. Rows of `row_length` spend compute on each
row's tail (RTE: 0.58 of the padded positions for 0.53 real tokens); the flat row spends none,
at the cost of one small attention call per example and layer.

The `varlen_batched` layout is the varlen row plus

    segment_grid       [S, L] long   row position of each segment's tokens, one segment per line,
                                      padded with -1 to the longest (L)

and runs attention as ONE scaled-dot-product call over the segments gathered into a padded
[S, heads, L, head_dim] batch with a key mask (`VARLEN_BATCHED_ATTENTION`), then takes the real
positions back in row order: the linear layers still compute on the real tokens only, attention
computes on S x L x L positions (a few percent of a step's FLOPs at these lengths), and a layer
costs one attention call, not one per example, which is what a GPU needs (kernel launches, not
arithmetic, bound the step there). Same numbers as `varlen` up to float32 summation order; with
attention dropout on, the dropout draws fall on other shapes, so it is a layout of its own.

An ordinary padded batch (`data.Collator`: input_ids, attention_mask, [token_type_ids], labels)
goes through the same functions unchanged, so callers use `forward` for both layouts.

Perturbing input embeddings (R3F): `embeds = input_embeddings(model, batch)` gives the word
embeddings of the batch's tokens in the batch's own layout ([R, W, E] packed, [B, T, E] padded);
`forward(model, batch, inputs_embeds=embeds + noise)` runs the same model on them. On a packed
batch `forward` always passes explicit position ids, so RoBERTa's positions are the ones it
computes from input ids for an unpadded example (pad id + 1 + index), not the ones it would guess
from `inputs_embeds` alone.

Exactness: packed and padded batches give the same logits, loss and gradients up to float32
summation order (different matrix shapes), not bitwise; with dropout on, the dropout masks are
drawn over different shapes, so a training run's trajectory differs like a different dropout seed.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.nn.functional import binary_cross_entropy_with_logits, cross_entropy, mse_loss, scaled_dot_product_attention
from transformers import AttentionInterface
from transformers.modeling_outputs import SequenceClassifierOutput

from . import families
from .errors import InputError


# Which families pack, their heads and position offsets: childtuning/families/ (a family with
# `packed`: every layer attends only through the additive / boolean mask, absolute positions).


def _bool_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return allowed                                      # sdpa: True = attend


def _additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # The same values transformers' eager_mask makes from a boolean mask: 0 or the dtype's minimum.
    zero = torch.zeros((), dtype=dtype, device=allowed.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


# Attention implementations that take a prepared 4D mask as is (create_bidirectional_mask returns
# a 4D mask unchanged), and the mask each one needs.
MASK_FOR_ATTENTION = {"sdpa": _bool_mask, "eager": _additive_mask}


def _config(model_or_config):
    return getattr(model_or_config, "config", model_or_config)


def packable(model_or_config) -> bool:
    """Whether `forward` can run this model on packed batches (else: dynamic padding)."""
    config = _config(model_or_config)
    attention = getattr(config, "_attn_implementation", None)
    family = families.find(config.model_type)
    return (family is not None and family.packed is not None and not getattr(config, "is_decoder", False)
            and (attention is None or attention in MASK_FOR_ATTENTION))


def is_packed(batch: dict) -> bool:
    return "example_ids" in batch


def is_varlen(batch: dict) -> bool:
    return "cu_seq_lens" in batch


def num_examples(batch: dict) -> int:
    return len(batch["labels"]) if "labels" in batch else (
        len(batch["first_token_index"]) if is_packed(batch) else len(batch["input_ids"]))


def token_counts(batch: dict) -> tuple[int, int]:
    """(real tokens, token positions computed on) of a packed or padded batch: throughput on real tokens."""
    real = batch["example_ids"] >= 0 if is_packed(batch) else batch["attention_mask"].bool()
    return int(real.sum()), real.numel()


# ---------------------------------------------------------------- layout (CPU, in the collator)
def best_rows(lengths: list[int], row_length: int, multiple_of: int = 1) -> tuple[list[list[int]], int]:
    """The rows of a batch and their width: first-fit decreasing into rows of each candidate width
    (the longest example, then every 8 tokens up to row_length), keeping the layout with the fewest
    positions (rows x width; ties: the narrower rows, whose attention costs less). Rows are as wide
    as their fullest one, rounded up to `multiple_of`."""
    best = None
    for capacity in sorted({*range(max(lengths), row_length, 8), row_length}):
        rows = first_fit_decreasing(lengths, capacity)
        width = max(sum(lengths[i] for i in row) for row in rows)
        width = min(-(-width // multiple_of) * multiple_of, max(row_length, width))
        if best is None or (len(rows) * width, width) < (len(best[0]) * best[1], best[1]):
            best = rows, width
    return best


def first_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Rows of example indices: longest first, each into the first row with room (ties: batch order)."""
    rows, free = [], []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, room in enumerate(free):
            if lengths[i] <= room:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(capacity - lengths[i])
    return rows


def _check_lengths(features: list[dict], row_length: int) -> list[int]:
    if not features:
        raise InputError("cannot pack an empty batch")
    lengths = [len(f["input_ids"]) for f in features]
    if min(lengths) < 1 or max(lengths) > row_length:
        raise InputError(f"packing needs examples of 1..{row_length} tokens, got lengths {min(lengths)}..{max(lengths)}; "
                         f"tokenize with truncation to max_length <= the packing row length ({row_length})")
    return lengths


def _fill(features: list[dict], lengths: list[int], rows: list[list[int]], width: int, pad_id: int,
          pad_type_id: int, regression: bool) -> dict[str, torch.Tensor]:
    """The packed batch tensors of `features` laid out in `rows` (example indices, in row order)."""
    has_types = "token_type_ids" in features[0]
    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    token_types = torch.full(shape, pad_type_id, dtype=torch.long)
    example_ids = torch.full(shape, -1, dtype=torch.long)
    positions = torch.zeros(shape, dtype=torch.long)
    first = torch.empty(len(features), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            n, f = lengths[i], features[i]
            end = start + n
            input_ids[r, start:end] = torch.as_tensor(f["input_ids"])
            if has_types:
                token_types[r, start:end] = torch.as_tensor(f["token_type_ids"])
            example_ids[r, start:end] = i
            positions[r, start:end] = torch.arange(n)
            first[i] = r * width + start
            start = end
    batch = {"input_ids": input_ids, "example_ids": example_ids, "token_positions": positions,
             "first_token_index": first}
    if has_types:
        batch["token_type_ids"] = token_types
    if "labels" in features[0]:
        batch["labels"] = torch.tensor([f["labels"] for f in features],
                                       dtype=torch.float32 if regression else torch.long)
    return batch


def pack(features: list[dict], row_length: int, pad_id: int, pad_type_id: int = 0,
         regression: bool = False, multiple_of: int = 1) -> dict[str, torch.Tensor]:
    """A packed batch (see the module docstring) of unpadded `features`, rows at most `row_length`
    wide; `multiple_of` rounds the row width up (GPU matrix kernels prefer multiples of 8)."""
    lengths = _check_lengths(features, row_length)
    rows, width = best_rows(lengths, row_length, multiple_of)
    return _fill(features, lengths, rows, width, pad_id, pad_type_id, regression)


def pack_flat(features: list[dict], row_length: int, pad_id: int, pad_type_id: int = 0,
              regression: bool = False, multiple_of: int = 1) -> dict[str, torch.Tensor]:
    """A varlen batch (see the module docstring): one row, the examples in batch order, each at most
    `row_length` tokens; `multiple_of` rounds the row up, the rounding being one more segment."""
    lengths = _check_lengths(features, row_length)
    total = sum(lengths)
    width = -(-total // multiple_of) * multiple_of
    batch = _fill(features, lengths, [list(range(len(features)))], width, pad_id, pad_type_id, regression)
    bounds = [0, *itertools.accumulate(lengths)] + ([width] if width > total else [])
    batch["cu_seq_lens"] = torch.tensor(bounds, dtype=torch.long)
    return batch


def pack_flat_batched(features: list[dict], row_length: int, pad_id: int, pad_type_id: int = 0,
                      regression: bool = False, multiple_of: int = 1) -> dict[str, torch.Tensor]:
    """A varlen batch with its `segment_grid` (see the module docstring): attention in one call."""
    batch = pack_flat(features, row_length, pad_id, pad_type_id, regression, multiple_of)
    batch["segment_grid"] = segment_grid(batch["cu_seq_lens"])
    return batch


def segment_grid(cu_seq_lens: torch.Tensor) -> torch.Tensor:
    """[S, L]: line j holds the row positions cu_seq_lens[j] .. cu_seq_lens[j + 1] - 1, then -1."""
    starts, sizes = cu_seq_lens[:-1], cu_seq_lens[1:] - cu_seq_lens[:-1]
    offsets = torch.arange(int(sizes.max()), device=cu_seq_lens.device)
    return torch.where(offsets < sizes[:, None], starts[:, None] + offsets, -1)


LAYOUTS = {"rows": pack, "varlen": pack_flat, "varlen_batched": pack_flat_batched}


class PackedCollator:
    """The packed counterpart of `data.Collator`: same constructor, same examples, packed layout."""

    def __init__(self, tokenizer, regression: bool, row_length: int, multiple_of: int = 1, layout: str = "rows"):
        if layout not in LAYOUTS:
            raise InputError(f"packed layout {layout!r} is unknown; use one of {list(LAYOUTS)}")
        if tokenizer.padding_side == "left":
            raise InputError("packed batches are for right-padding models (BERT, RoBERTa, ELECTRA); "
                             "a left-padding tokenizer (XLNet) keeps data.Collator")
        self.pad_id = tokenizer.pad_token_id
        self.pad_type = getattr(tokenizer, "pad_token_type_id", 0)
        self.regression, self.row_length, self.multiple_of = regression, row_length, multiple_of
        self.pack = LAYOUTS[layout]

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        return self.pack(features, self.row_length, self.pad_id, self.pad_type, self.regression, self.multiple_of)


def unpack(batch: dict) -> list[dict]:
    """The features (token id lists, labels) of a packed batch, in batch order: inverse of `pack`."""
    example_ids = batch["example_ids"].reshape(-1).cpu()
    ids = batch["input_ids"].reshape(-1).cpu()
    types = batch["token_type_ids"].reshape(-1).cpu() if "token_type_ids" in batch else None
    features = []
    for i, start in enumerate(batch["first_token_index"].tolist()):
        n = int((example_ids == i).sum())
        f = {"input_ids": ids[start:start + n].tolist()}
        if types is not None:
            f["token_type_ids"] = types[start:start + n].tolist()
        if "labels" in batch:
            f["labels"] = batch["labels"][i].item()
        features.append(f)
    return features


def split_examples(batch: dict) -> list[dict]:
    """One batch per example, in batch order (e.g. per-example Fisher information).

    Padded: `{k: v[i:i+1]}`, each example keeps its padding (today's behaviour). Packed: each
    example alone in a one-row packed batch of its own length, on the batch's device.
    """
    if not is_packed(batch):
        return [{k: v[i:i + 1] for k, v in batch.items()} for i in range(num_examples(batch))]
    device = batch["input_ids"].device
    regression = "labels" in batch and batch["labels"].is_floating_point()
    return [{k: v.to(device) for k, v in pack([f], len(f["input_ids"]), 0, 0, regression).items()}
            for f in unpack(batch)]


def take_examples(batch: dict, n: int) -> dict:
    """The first `n` examples of a batch (batch order), same layout; packed rows left empty are dropped.

    The kept examples keep their places in their rows (their neighbours' tokens become row tail,
    which nothing real attends to), so their logits are the same as in the full batch.
    """
    if not is_packed(batch):
        return {k: v[:n] for k, v in batch.items()}
    if is_varlen(batch):                                         # the first n examples are the row's prefix
        end = int(batch["cu_seq_lens"][n])
        out = {k: batch[k][:, :end] for k in ("input_ids", "token_type_ids", "token_positions", "example_ids")
               if k in batch}
        out.update(first_token_index=batch["first_token_index"][:n], cu_seq_lens=batch["cu_seq_lens"][:n + 1])
        if "segment_grid" in batch:
            out["segment_grid"] = segment_grid(out["cu_seq_lens"])
        if "labels" in batch:
            out["labels"] = batch["labels"][:n]
        return out
    example_ids = batch["example_ids"].masked_fill(batch["example_ids"] >= n, -1)
    keep = (example_ids >= 0).any(dim=1)
    width = example_ids.shape[1]
    new_row = torch.cumsum(keep, 0) - 1                          # old row -> new row
    first = batch["first_token_index"][:n]
    first = new_row[first // width] * width + first % width
    out = {k: batch[k][keep] for k in ("input_ids", "token_type_ids", "token_positions") if k in batch}
    out.update(example_ids=example_ids[keep], first_token_index=first)
    if "labels" in batch:
        out["labels"] = batch["labels"][:n]
    return out


# ---------------------------------------------------------------- the model (on the device)
def _family(model) -> families.Family:
    config = model.config
    if not packable(config):
        packing_families = ", ".join(f for f, fam in sorted(families.FAMILIES.items()) if fam.packed)
        raise InputError(f"packed batches are not supported for model_type={config.model_type!r} with attention "
                         f"{getattr(config, '_attn_implementation', None)!r} (packable: {packing_families} "
                         f"encoders with attention {' or '.join(MASK_FOR_ATTENTION)}); use dynamic padding "
                         f"(data.Collator) for this model")
    return families.get(config.model_type)


def attention_mask(example_ids: torch.Tensor, attention: str, dtype: torch.dtype) -> torch.Tensor:
    """[R, 1, W, W] block-diagonal mask from per-token example ids, in the form `attention` takes."""
    allowed = example_ids[:, None, :, None] == example_ids[:, None, None, :]
    return MASK_FOR_ATTENTION[attention](allowed, dtype)


VARLEN_ATTENTION = "childtuning_varlen"
VARLEN_BATCHED_ATTENTION = "childtuning_varlen_batched"


def varlen_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, segments=None, **kwargs):
    """Attention of a one-row varlen batch: query, key, value [1, heads, W, head_dim]; each segment
    `segments[j]:segments[j + 1]` attends only to itself (the same SDPA call the padded layout makes,
    on that example's tokens alone). Returns [1, W, heads, head_dim] and no weights, like transformers'
    sdpa function."""
    if segments is None or attention_mask is not None or query.shape[0] != 1:
        raise InputError(f"{VARLEN_ATTENTION} runs only one-row varlen batches through packing.forward")
    if segments[0] != 0 or segments[-1] != query.shape[2]:
        raise InputError(f"varlen segments {segments[0]}..{segments[-1]} do not cover the row of {query.shape[2]} "
                         f"tokens; build the batch with packing.pack_flat")
    # split, not slicing: the backward of a split is one concatenation, while each slice's backward
    # would write a zero tensor the size of the whole row (16 examples: 16 full-row fills per layer)
    sizes = [e - s for s, e in itertools.pairwise(segments)]
    out = torch.cat([scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling)
                     for q, k, v in zip(query.split(sizes, 2), key.split(sizes, 2), value.split(sizes, 2))], dim=2)
    return out.transpose(1, 2).contiguous(), None


@dataclass
class SegmentPlan:
    """Where a `varlen_batched` row's tokens go in the padded [S, L] segment batch and back, built
    once per forward from the batch (no device synchronisation): `where` [S, L] row positions (pads
    point at position 0), `real` [S, L] which of them are tokens, `back` [W] each row position's
    place in the flattened [S * L] batch."""
    where: torch.Tensor
    real: torch.Tensor
    back: torch.Tensor

    @classmethod
    def of(cls, batch: dict) -> SegmentPlan:
        grid, bounds = batch["segment_grid"], batch["cu_seq_lens"]
        positions = torch.arange(batch["input_ids"].shape[1], device=grid.device)
        segment = torch.searchsorted(bounds[1:], positions, right=True)
        return cls(where=grid.clamp(min=0), real=grid >= 0,
                   back=segment * grid.shape[1] + positions - bounds[segment])


def varlen_batched_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, segments=None,
                             **kwargs):
    """Attention of a one-row `varlen_batched` batch in one call: `segments` is the batch's
    SegmentPlan; the segments are gathered into [S, heads, L, head_dim], attend under a key mask
    (each segment to itself only), and each row position reads its output back."""
    if not isinstance(segments, SegmentPlan) or attention_mask is not None or query.shape[0] != 1:
        raise InputError(f"{VARLEN_BATCHED_ATTENTION} runs only one-row varlen_batched batches through packing.forward")
    if segments.back.shape[0] != query.shape[2]:
        raise InputError(f"the segment plan covers {segments.back.shape[0]} positions, the row has {query.shape[2]}; "
                         "build the batch with packing.pack_flat_batched")
    gather = lambda t: t[0][:, segments.where].transpose(0, 1)      # noqa: E731 - [S, heads, L, head_dim]
    out = scaled_dot_product_attention(gather(query), gather(key), gather(value),
                                       attn_mask=segments.real[:, None, None, :], dropout_p=dropout, scale=scaling)
    out = out.transpose(1, 2).flatten(0, 1)[segments.back]          # [W, heads, head_dim], row order
    return out.unsqueeze(0), None


AttentionInterface.register(VARLEN_ATTENTION, varlen_attention)
AttentionInterface.register(VARLEN_BATCHED_ATTENTION, varlen_batched_attention)


@contextmanager
def _attention_implementation(config, name: str):
    """Within the block, the model's attention layers look up `name` (every layer shares the config
    object); the model's own setting is back afterwards, also after an error."""
    saved = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = saved


def input_embeddings(model, batch: dict) -> torch.Tensor:
    """Word embeddings of the batch's tokens, in its layout: perturb them and pass to `forward`."""
    return model.get_input_embeddings()(batch["input_ids"])


def sequence_classification_loss(config, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss transformers' *ForSequenceClassification computes (same problem_type rule), without
    writing problem_type into the config as they do on first use."""
    problem = config.problem_type
    if problem is None:
        problem = ("regression" if config.num_labels == 1 else "single_label_classification"
                   if labels.dtype in (torch.long, torch.int) else "multi_label_classification")
    if problem == "regression":
        if config.num_labels == 1:
            return mse_loss(logits.squeeze(), labels.squeeze())
        return mse_loss(logits, labels)
    if problem == "single_label_classification":
        return cross_entropy(logits.view(-1, config.num_labels), labels.view(-1))
    return binary_cross_entropy_with_logits(logits, labels)


def forward(model, batch: dict, inputs_embeds: torch.Tensor | None = None) -> SequenceClassifierOutput:
    """`.loss` (if the batch has labels) and `.logits` [N, num_labels] in batch order, for a packed or
    an ordinary padded batch; `inputs_embeds` (from `input_embeddings`, perturbed) replaces the
    word embeddings of `batch["input_ids"]`."""
    if not is_packed(batch):
        if inputs_embeds is None:
            return model(**batch)
        return model(**{k: v for k, v in batch.items() if k != "input_ids"}, inputs_embeds=inputs_embeds)
    family = _family(model)
    config = model.config
    encoder_inputs = dict(input_ids=None if inputs_embeds is not None else batch["input_ids"],
                          inputs_embeds=inputs_embeds, token_type_ids=batch.get("token_type_ids"),
                          position_ids=batch["token_positions"] + family.packed.position_offset(config))
    if "segment_grid" in batch:
        with _attention_implementation(config, VARLEN_BATCHED_ATTENTION):
            outputs = getattr(model, family.encoder)(**encoder_inputs, segments=SegmentPlan.of(batch))
    elif is_varlen(batch):
        with _attention_implementation(config, VARLEN_ATTENTION):
            outputs = getattr(model, family.encoder)(**encoder_inputs, segments=batch["cu_seq_lens"].tolist())
    else:
        attention = config._attn_implementation or "sdpa"
        dtype = model.get_input_embeddings().weight.dtype
        outputs = getattr(model, family.encoder)(**encoder_inputs,
                                            attention_mask=attention_mask(batch["example_ids"], attention, dtype))
    hidden = outputs.last_hidden_state
    first = hidden.reshape(-1, hidden.shape[-1])[batch["first_token_index"]]
    logits = family.packed.head(model, first[:, None, :])
    loss = sequence_classification_loss(config, logits, batch["labels"]) if "labels" in batch else None
    return SequenceClassifierOutput(loss=loss, logits=logits)
