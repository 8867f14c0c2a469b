"""The method interface: the few fixed points where a fine-tuning method plugs into the loop."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

REGISTRY: dict[str, type["Method"]] = {}


def register(cls: type["Method"]) -> type["Method"]:
    """Class decorator: make a method selectable as `method=<cls.name>`."""
    if cls.name in REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


@dataclass
class MethodConfig:
    """Keys every method config has (conf/method/*.yaml). Subclasses add their own."""
    name: str = "vanilla"
    warmup_ratio: float | None = None          # None = trainer.warmup_ratio
    no_decay: str = "by_module_type"           # by_module_type | by_name
    no_decay_names: list[str] = field(default_factory=lambda: ["bias", "LayerNorm.weight"])


@dataclass
class EligibleRule:
    """Which parameters a method acts on: names matching any `include` regex and no `exclude`."""
    include: list[str] = field(default_factory=lambda: [".*"])
    exclude: list[str] = field(default_factory=list)

    def select(self, model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
        inc = [re.compile(p) for p in self.include]
        exc = [re.compile(p) for p in self.exclude]
        return [(n, p) for n, p in model.named_parameters()
                if p.requires_grad and any(r.search(n) for r in inc) and not any(r.search(n) for r in exc)]


class Method:
    """Vanilla behaviour at every hook; methods override the hooks they need.

    Call order per run: prepare() once; then per step: loss() -> backward -> clip ->
    before_optimizer_step() -> optimizer.step() -> after_optimizer_step() -> scheduler.step().
    """
    name: ClassVar[str]
    Config: ClassVar[type] = MethodConfig

    def __init__(self, cfg: Any, seed: int):
        self.cfg = cfg
        self.seed = seed

    def prepare(self, model: torch.nn.Module, train_loader, device: torch.device) -> None:
        """Once, before training (a Fisher pass, a module swap, a copy of the weights...)."""

    def loss(self, model: torch.nn.Module, batch: dict, outputs) -> torch.Tensor:
        return outputs.loss

    def before_optimizer_step(self, model: torch.nn.Module) -> None:
        """After gradient clipping, before the optimizer (where gradient masks go)."""

    def after_optimizer_step(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """After the optimizer step, before the scheduler."""

    def stats(self) -> dict:
        """What the method touched, for the run record (JSON-serialisable)."""
        return {}

    def save_artifacts(self, folder) -> dict:
        """Write large per-run outputs (e.g. a mask) into `folder` (create it if needed);
        return {name: file name}."""
        return {}

    def state_dict(self) -> dict:
        """Everything needed to resume mid-run (masks, random stream state)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
