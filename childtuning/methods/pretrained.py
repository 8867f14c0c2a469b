"""Which weights came from pretraining, frozen copies of them, and how far training moved them.

Used by the methods that pull towards (weight decay, RecAdam) or mix with (Mixout) the pretrained
weights. A parameter is pretrained if it lives in the model's encoder, the submodule transformers
names `base_model_prefix` (`bert`, `roberta`, `electra`, `transformer` for XLNet); everything
else (`classifier`, XLNet's `sequence_summary` and `logits_proj`) is the task head, initialised at
random for the run. This is RecAdam's own split (run_glue_with_RecAdam.py: names containing
`args.model_type` get the pull, the classifier does not), keyed by data instead of the model type
(which would miss XLNet, whose encoder is called `transformer`).
"""
from __future__ import annotations

import math
from collections import defaultdict

import torch

from ..layers import layer_of  # the record's layer names, one definition


def is_pretrained(model: torch.nn.Module, name: str) -> bool:
    """Whether parameter `name` of `model` belongs to its pretrained encoder (not the new head)."""
    prefix = getattr(model, "base_model_prefix", "")
    if not prefix or not hasattr(model, prefix):
        raise ValueError(f"{type(model).__name__} has no encoder attribute `base_model_prefix` ({prefix!r}); "
                         "cannot tell its pretrained weights from its head")
    return name.startswith(prefix + ".")


def pulled(model: torch.nn.Module, include_head: bool) -> list[tuple[str, torch.nn.Parameter]]:
    """The trainable parameters a method pulls towards their starting values: the pretrained ones,
    and the head's too if `include_head`."""
    return [(n, p) for n, p in model.named_parameters()
            if p.requires_grad and (include_head or is_pretrained(model, n))]


@torch.no_grad()
def snapshot(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Frozen copies (same device and dtype), taken before training."""
    return [p.detach().clone() for p in params]


@torch.no_grad()
def distance_per_layer(names: list[str], params: list[torch.Tensor], starts: list[torch.Tensor]) -> dict:
    """||theta - theta_0|| (L2 over all entries) per layer and in total, for the record."""
    squares = defaultdict(float)
    for name, p, p0 in zip(names, params, starts):
        squares[layer_of(name)] += float((p.detach().float() - p0.float()).pow(2).sum())
    return {"total": math.sqrt(sum(squares.values())),
            "per_layer": {k: math.sqrt(v) for k, v in sorted(squares.items())}}
