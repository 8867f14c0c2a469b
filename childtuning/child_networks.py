"""How Child-Tuning_D picks its child network from per-weight scores: selection rules by name.

A rule takes the scores of the eligible tensors (Fisher information), the fraction to keep and
a random generator (for rules that draw), and returns one boolean mask per tensor plus what the
record should say about the choice. `method.selection` names the rule.

The ablations of the paper's Sec. 4.3-4.4 keep exactly as many weights as `top` keeps
on the same scores (its threshold can keep a few more than keep_ratio * N when scores tie), so a
child network differs from Child-Tuning_D's in which weights it holds, never in how many:
- bottom: the lowest scores. Weights with exactly zero Fisher information (the gradient was zero
  in every batch of the pass, e.g. a parameter the forward pass does not use, such as XLNet's
  segment biases without segment ids) are the lowest of all, so they enter first; the record
  counts them (zero_fisher_weights, zero_fisher_kept), since such weights may not train at all.
  Ties at the boundary value are broken by position (tensor order, then element order).
- random: a uniformly random subset of the eligible weights of that exact size, drawn from the
  run's own "child_network" stream (the split over tensors is multivariate hypergeometric, then
  a random permutation within each tensor), independent of the scores apart from the count.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .fisher import order_statistics, top_fraction_masks

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


def count(masks: list[torch.Tensor]) -> int:
    return sum(int(m.sum()) for m in masks)


@selection("top")
def top(scores: list[torch.Tensor], keep_ratio: float, generator: torch.Generator, **options) -> tuple[list, dict]:
    """The paper's and the official rule: the weights at or above the (1 - keep_ratio) percentile
    of all scores (one global threshold; ties at the threshold kept)."""
    masks, threshold = top_fraction_masks(scores, keep_ratio, **options)
    return masks, {"fisher_threshold": threshold}


def _same_size_info(masks, top_masks, threshold, scores) -> dict:
    """What the record says of an ablation's child network: its size (= top's), the top rule's
    threshold, how much of it top would also keep, and the weights with exactly zero score."""
    zero = [s == 0 for s in scores]
    kept = count(masks)
    return {"kept_count_rule": "as many as top keeps on these scores", "top_fisher_threshold": threshold,
            "shared_with_top": sum(int((m & t).sum()) for m, t in zip(masks, top_masks)) / max(1, kept),
            "zero_fisher_weights": count(zero), "zero_fisher_kept": sum(int((m & z).sum()) for m, z in zip(masks, zero))}


@selection("bottom")
def bottom(scores: list[torch.Tensor], keep_ratio: float, generator: torch.Generator, **options) -> tuple[list, dict]:
    """The lowest-scored weights, exactly as many as `top` keeps (zero scores first; ties at the
    boundary by position)."""
    top_masks, threshold = top_fraction_masks(scores, keep_ratio, **options)
    k = count(top_masks)
    boundary = order_statistics(scores, [k - 1])[0]          # the k-th smallest score
    masks = [s < boundary for s in scores]
    need = k - count(masks)                                  # how many at the boundary value still fit
    for m, s in zip(masks, scores):
        if need <= 0:
            break
        at = (s == boundary).reshape(-1).nonzero().reshape(-1)[:need]
        m.view(-1)[at] = True
        need -= len(at)
    return masks, _same_size_info(masks, top_masks, threshold, scores)


@selection("random")
def random(scores: list[torch.Tensor], keep_ratio: float, generator: torch.Generator, **options) -> tuple[list, dict]:
    """A uniformly random set of exactly as many eligible weights as `top` keeps, from `generator`."""
    top_masks, threshold = top_fraction_masks(scores, keep_ratio, **options)
    k = count(top_masks)
    sizes = [s.numel() for s in scores]
    # How many fall in each tensor: one multivariate hypergeometric draw (sampling k of all the
    # positions without replacement), from a numpy generator seeded by the run's stream.
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    per_tensor = rng.multivariate_hypergeometric(np.array(sizes, dtype=np.int64), k, method="marginals")
    masks = []
    for s, n, k_t in zip(scores, sizes, per_tensor.tolist()):
        flat = torch.zeros(n, dtype=torch.bool)
        flat[torch.randperm(n, generator=generator)[:k_t]] = True
        masks.append(flat.view(s.shape).to(s.device))
    return masks, _same_size_info(masks, top_masks, threshold, scores)
