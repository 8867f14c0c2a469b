"""How Child-Tuning_D picks its child network from per-weight scores: selection rules by name.

A rule takes the scores of the eligible tensors (Fisher information), the fraction to keep and
a random generator (for rules that draw), and returns one boolean mask per tensor plus what the
record should say about the choice. `method.selection` names the rule.
"""
from __future__ import annotations

from typing import Callable

import torch

from .fisher import top_fraction_masks

Rule = Callable[..., tuple[list[torch.Tensor], dict]]
SELECTIONS: dict[str, Rule] = {}


def selection(name: str):
    """Decorator: register a selection rule as `method.selection=<name>`."""
    def add(rule: Rule) -> Rule:
        if name in SELECTIONS:
            raise ValueError(f"selection rule {name!r} registered twice")
        SELECTIONS[name] = rule
        return rule
    return add


@selection("top")
def top(scores: list[torch.Tensor], keep_ratio: float, generator: torch.Generator, **options) -> tuple[list, dict]:
    """The paper's and the official rule: the weights at or above the (1 - keep_ratio) percentile
    of all scores (one global threshold; ties at the threshold kept)."""
    masks, threshold = top_fraction_masks(scores, keep_ratio, **options)
    return masks, {"fisher_threshold": threshold}
