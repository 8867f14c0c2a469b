"""Child-Tuning_F and Child-Tuning_D (Xu et al., EMNLP 2021): update only a child network.

Both mask gradients in `before_optimizer_step`, i.e. after clipping and before a stock torch
optimizer, which is where the official ChildTuningOptimizer masks them (inside its copy of
AdamW, after the Trainer has clipped).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import seeding
from ..fisher import fisher_information, top_fraction_masks
from ..masks import BernoulliMasker
from .base import EligibleRule, Method, MethodConfig, register


def layer_of(name: str) -> str:
    """Group a parameter name by layer for statistics: 'bert.encoder.layer.3.x.weight' -> 'layer.3'."""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part in ("layer", "layers") and parts[i + 1].isdigit():
            return f"layer.{parts[i + 1]}"
    return parts[0] if len(parts) < 3 else ".".join(parts[:2])


@dataclass
class ChildTuningConfig(MethodConfig):
    keep_ratio: float = 0.3
    eligible: EligibleRule = field(default_factory=EligibleRule)
    decay_masked_weights: bool = True


class ChildTuning(Method):
    """Shared by F and D: the eligible parameters, the decay switch and the statistics."""
    Config = ChildTuningConfig

    def __init__(self, cfg, seed):
        super().__init__(cfg, seed)
        if not 0.0 < cfg.keep_ratio <= 1.0:
            raise ValueError(f"method.keep_ratio={cfg.keep_ratio} is outside (0, 1]: it is the fraction "
                             "of weights KEPT (the paper's reserve ratio p), e.g. method.keep_ratio=0.3")
        self.names: list[str] = []
        self.params: list[torch.nn.Parameter] = []
        self._saved: list[torch.Tensor] | None = None

    def _select(self, model):
        rule = EligibleRule(**self.cfg.eligible) if not isinstance(self.cfg.eligible, EligibleRule) else self.cfg.eligible
        chosen = rule.select(model)
        if not chosen:
            raise ValueError(f"method.eligible {dict(self.cfg.eligible)} matches no parameter of the model")
        self.names = [n for n, _ in chosen]
        self.params = [p for _, p in chosen]
        self.total_params = sum(p.numel() for p in model.parameters())

    def _current_masks(self) -> list[torch.Tensor | np.ndarray]:
        raise NotImplementedError

    def before_optimizer_step(self, model):
        if not self.cfg.decay_masked_weights:  # remember weights to undo decay on masked entries
            self._saved = [p.detach().clone() for p in self.params]

    def after_optimizer_step(self, model, optimizer):
        if self._saved is None:
            return
        lr_wd = {id(p): g["lr"] * g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
        with torch.no_grad():  # stock AdamW: p <- p - lr*wd*p_old - lr*adam; give back lr*wd*p_old
            for p, old, mask in zip(self.params, self._saved, self._current_masks()):
                if mask is None:
                    continue
                dropped = ~torch.as_tensor(mask, device=p.device).view_as(p).bool()
                p[dropped] += lr_wd[id(p)] * old[dropped]
        self._saved = None

    def stats(self):
        return {"eligible_params": sum(p.numel() for p in self.params),
                "eligible_fraction_of_model": sum(p.numel() for p in self.params) / self.total_params,
                "eligible_tensors": len(self.params)}


@dataclass
class ChildTuningFConfig(ChildTuningConfig):
    sampler: str = "fast"


@register
class ChildTuningF(ChildTuning):
    """Task-free: a fresh Bernoulli(keep_ratio) mask every step, kept entries scaled by 1/keep_ratio."""
    name = "child_tuning_f"
    Config = ChildTuningFConfig

    def prepare(self, model, train_loader, device):
        self._select(model)
        self.masker = BernoulliMasker([p.shape for p in self.params], self.cfg.keep_ratio,
                                      seeding.generator(self.seed, "mask", device), self.cfg.sampler, device,
                                      remember=not self.cfg.decay_masked_weights)

    def before_optimizer_step(self, model):
        super().before_optimizer_step(model)
        self.masker.apply_([p.grad for p in self.params])

    def _current_masks(self):
        return self.masker.last_masks

    def stats(self):
        return {**super().stats(), "keep_ratio": self.cfg.keep_ratio, "sampler": self.cfg.sampler,
                "kept_fraction_of_eligible_per_step": self.masker.kept_fraction()}

    def state_dict(self):
        return {"generator": self.masker.generator.get_state(), "kept": int(self.masker.kept),
                "steps": self.masker.steps}

    def load_state_dict(self, state):
        self.masker.generator.set_state(state["generator"])
        self.masker.kept, self.masker.steps = state["kept"], state["steps"]


@dataclass
class FisherConfig:
    clip_per_tensor: bool = True
    max_grad_norm: float = 1.0
    per_example: bool = False
    dropout: bool = True
    batch_size: int = 16
    max_samples: int | None = None


@dataclass
class ChildTuningDConfig(ChildTuningConfig):
    fisher: FisherConfig = field(default_factory=FisherConfig)


@register
class ChildTuningD(ChildTuning):
    """Task-driven: a fixed mask of the eligible weights with the highest Fisher information."""
    name = "child_tuning_d"
    Config = ChildTuningDConfig

    def prepare(self, model, train_loader, device):
        self._select(model)
        fc = self.cfg.fisher
        seeding.seed_global(self.seed, "fisher")   # dropout during the pass: its own stream
        loader = train_loader.reshuffled(seeding.generator(self.seed, "fisher"), fc.batch_size)
        self.fisher = fisher_information(
            model, loader, self.params, device=device, clip_per_tensor=fc.clip_per_tensor,
            max_grad_norm=fc.max_grad_norm, per_example=fc.per_example, dropout=fc.dropout,
            max_samples=fc.max_samples, progress=getattr(train_loader, "progress", False))
        masks, self.threshold = top_fraction_masks(self.fisher, self.cfg.keep_ratio)
        self.set_masks(masks)

    def set_masks(self, masks: list[torch.Tensor]) -> None:
        self.masks = [m.bool() for m in masks]
        # Multiplying by a float mask is ~8x faster than by a bool mask on CPU.
        self._multipliers = [m.to(p.dtype) for m, p in zip(self.masks, self.params)]

    def before_optimizer_step(self, model):
        super().before_optimizer_step(model)
        with torch.no_grad():
            for p, m in zip(self.params, self._multipliers):
                if p.grad is not None:
                    p.grad.mul_(m)

    def _current_masks(self):
        return self.masks

    def stats(self):
        kept = sum(int(m.sum()) for m in self.masks)
        eligible = sum(m.numel() for m in self.masks)
        per_layer = defaultdict(lambda: [0, 0])
        for name, m in zip(self.names, self.masks):
            per_layer[layer_of(name)][0] += int(m.sum())
            per_layer[layer_of(name)][1] += m.numel()
        return {**super().stats(), "keep_ratio": self.cfg.keep_ratio, "fisher_threshold": self.threshold,
                "kept_params": kept, "kept_fraction_of_eligible": kept / eligible,
                "kept_fraction_per_layer": {k: v[0] / v[1] for k, v in sorted(per_layer.items())}}

    def save_artifacts(self, folder):
        """The child network, bit-packed: one bit per eligible weight, in `names` order."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        path = Path(folder) / "child_mask.npz"
        bits = np.packbits(np.concatenate([m.cpu().numpy().reshape(-1) for m in self.masks]))
        np.savez_compressed(path, bits=bits, names=np.array(self.names),
                            shapes=np.array([str(tuple(m.shape)) for m in self.masks]),
                            threshold=self.threshold, keep_ratio=self.cfg.keep_ratio)
        return {"child_mask": path.name}

    def state_dict(self):
        return {"masks": [m.cpu() for m in self.masks], "threshold": self.threshold}

    def load_state_dict(self, state):
        self.set_masks([m.to(p.device) for m, p in zip(state["masks"], self.params)])
        self.threshold = state["threshold"]
