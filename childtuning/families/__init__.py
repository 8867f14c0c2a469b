"""Model families: what the harness must know about an architecture, one file per family.

A family is a transformers `model_type` (the `architecture:` of a conf/model file). Its file here
registers a `Family` with everything the harness reads about it: where its classification head
reads the encoder (the probe), how packed batches run through it (or that they don't), the side
its tokenizer pads on, the names of its encoder layers (Top-K, per-layer statistics) and whether
Top-K layer tuning and Child-Tuning_D apply. Every consumer asks `get(model_type)`; a model whose
family has no file here stops with a message naming the file to add (or, for packing alone, runs
with impl.packing=false). Adding a family is this one file plus a conf/model YAML.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

from ..errors import InputError


@dataclass(frozen=True)
class Reading:
    """Where a family's sequence-classification head reads its encoder."""
    token: str          # "first" or "last" real token of the example
    pooler: bool        # the base model's pooler output is what the head reads


@dataclass(frozen=True)
class Packed:
    """How a packed batch runs through a family's classification model (childtuning/packing.py)."""
    head: Callable       # (model, first tokens' hidden states [N, 1, H]) -> logits
    position_offset: Callable[[object], int]     # model config -> position id of an example's first token


@dataclass(frozen=True)
class Family:
    model_type: str      # transformers config.model_type
    encoder: str         # the model's attribute holding the encoder (its base_model_prefix)
    reading: Reading
    packed: Packed | None            # None: batches are padded for this family (impl.packing has no effect)
    padding_side: str                # "right" or "left" (XLNet)
    layer_pattern: str               # regex matching an encoder layer's parameter names; group 1: its index
    top_k: bool = True               # Top-K layer tuning applies
    child_tuning_d: bool = True      # Child-Tuning_D applies


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.model_type in FAMILIES:
        raise ValueError(f"model family {family.model_type!r} registered twice")
    if family.padding_side not in ("left", "right"):
        raise ValueError(f"model family {family.model_type}: padding_side {family.padding_side!r} is not left/right")
    FAMILIES[family.model_type] = family
    return family


def file_for(model_type: str) -> str:
    return f"childtuning/families/{model_type}.py"


def get(model_type: str, what: str = "this model") -> Family:
    """The registered family of `model_type`; InputError naming the file to add when there is none."""
    if model_type not in FAMILIES:
        raise InputError(f"{what} is a {model_type!r} model, and the harness has no model family {model_type!r}: add "
                         f"{file_for(model_type)} registering a childtuning.families.Family (see the files for "
                         f"{', '.join(sorted(FAMILIES))} beside it)")
    return FAMILIES[model_type]


def find(model_type: str) -> Family | None:
    return FAMILIES.get(model_type)


for _module in pkgutil.iter_modules(__path__):          # every family file registers itself
    importlib.import_module(f"{__name__}.{_module.name}")
