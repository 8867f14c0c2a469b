"""A fresh linear head trained on frozen features: classes (cross-entropy) or a score (MSE), by the
target task; its initialisation and batch order come from the head seed's own random streams."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn.functional import cross_entropy, mse_loss

from .. import metrics as metrics_lib
from .. import seeding

INIT_STREAM, ORDER_STREAM = "probe_head", "probe_order"     # named streams (childtuning/seeding.py)


@dataclass
class HeadResult:
    head: torch.nn.Module               # the linear layer, or it inside `Standardized`
    history: list = field(default_factory=list)    # per epoch: train loss, dev metrics, degenerate
    status: str = "ok"
    reason: str | None = None
    steps: int = 0
    seconds: float = 0.0


def new_head(dim: int, outputs: int, head_seed: int, init_std: float) -> torch.nn.Linear:
    """A linear layer initialised as transformers initialises a new classifier (weights N(0,
    initializer_range), zero bias), from the head seed's "probe_head" stream."""
    head = torch.nn.Linear(dim, outputs)
    with torch.no_grad():
        head.weight.normal_(0.0, init_std, generator=seeding.generator(head_seed, INIT_STREAM))
        head.bias.zero_()
    return head


class Standardized(torch.nn.Module):
    """A linear head that reads standardised features and, for a score, predicts in standardised
    units: `linear((x - x_mean) / x_scale) * y_scale + y_mean`. The statistics are fixed buffers
    from the training set (`standardizer`); only the linear layer trains. Adam's steps are about
    `lr` per weight whatever the features' scale, so without this a head on small features (or a
    score whose mean is far from 0) moves too little in a few epochs to fit (probe.standardize)."""

    def __init__(self, linear: torch.nn.Linear, stats: dict):
        super().__init__()
        self.linear = linear
        for name, value in stats.items():
            self.register_buffer(name, value)

    def forward(self, x):
        return self.linear((x - self.x_mean) / self.x_scale) * self.y_scale + self.y_mean


def standardizer(features: torch.Tensor, labels: torch.Tensor, regression: bool) -> dict:
    """Per-dimension mean and standard deviation of the training features (a dimension that is
    constant is divided by 1), and for a score its mean and standard deviation (classes: 0 and 1)."""
    x = features.double()
    scale = x.std(0, unbiased=False)
    y = labels.double()
    y_mean, y_scale = (y.mean(), y.std(unbiased=False)) if regression else (torch.tensor(0.0), torch.tensor(1.0))
    return {"x_mean": x.mean(0).float(), "x_scale": torch.where(scale > 0, scale, 1.0).float(),
            "y_mean": y_mean.float(), "y_scale": (y_scale if y_scale > 0 else torch.tensor(1.0)).float()}


def predict(head: torch.nn.Module, features: torch.Tensor, regression: bool) -> np.ndarray:
    with torch.no_grad():
        out = head(features)
    return (out.squeeze(-1) if regression else out.argmax(-1)).numpy()


def score(head, features: torch.Tensor, labels: np.ndarray, task) -> tuple[dict, str | None, dict]:
    """The target task's metrics of the head on `features`, why its predictions are degenerate (or
    None), and how they are distributed."""
    preds = predict(head, features, task.regression)
    scores = metrics_lib.compute(list(task.metrics), preds, labels)
    return (scores, metrics_lib.degenerate_reason(preds, task.regression, scores),
            metrics_lib.prediction_summary(preds, labels, task.regression, getattr(task, "labels", None)))


def train_head(batch_features: Callable[[torch.Tensor], torch.Tensor], labels: torch.Tensor, dim: int, task,
               head_seed: int, settings, init_std: float,
               evaluate: Callable[[torch.nn.Module], tuple[dict, str | None, dict]] | None = None,
               stats: dict | None = None) -> HeadResult:
    """Train a fresh head for `settings.epochs` epochs of `settings.batch_size` examples in the order
    of the head seed's "probe_order" stream; Adam at constant `settings.lr`, no weight decay.
    `batch_features(indices)`: the frozen features of those training examples (a cache lookup, or
    the live frozen encoder: the same head either way); `evaluate(head)`: the dev metrics after
    each epoch; `stats` (from `standardizer`, with probe.standardize): the head reads standardised
    features. A non-finite loss stops training with status "diverged"."""
    started = time.perf_counter()
    regression = bool(task.regression)
    head = new_head(dim, 1 if regression else len(task.labels), head_seed, init_std)
    result = HeadResult(head if stats is None else Standardized(head, stats))
    optimizer = torch.optim.Adam(result.head.parameters(), lr=settings.lr, foreach=False)
    order = seeding.generator(head_seed, ORDER_STREAM)
    n = len(labels)
    for epoch in range(settings.epochs):
        perm, losses = torch.randperm(n, generator=order), []
        for start in range(0, n, settings.batch_size):
            idx = perm[start: start + settings.batch_size]
            out = result.head(batch_features(idx))
            y = labels[idx]
            loss = mse_loss(out.squeeze(-1), y.float()) if regression else cross_entropy(out, y.long())
            if not torch.isfinite(loss):
                result.status, result.reason = "diverged", f"non-finite loss {loss.item()} at step {result.steps + 1}"
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            result.steps += 1
            losses.append(loss.item())
        entry = {"epoch": epoch + 1, "step": result.steps, "train_loss": float(np.mean(losses)) if losses else None}
        if evaluate is not None:
            entry["metrics"], entry["degenerate"], entry["predictions"] = evaluate(result.head)
        result.history.append(entry)
        if result.status != "ok":
            break
    final = result.history[-1] if result.history else {}
    if result.status == "ok" and final.get("degenerate"):
        result.status, result.reason = "degenerate", final["degenerate"]
    result.seconds = time.perf_counter() - started
    return result
