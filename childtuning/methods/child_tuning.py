"""Child-Tuning_F and Child-Tuning_D (Xu et al., EMNLP 2021): update only a child network.

Both mask gradients in `before_optimizer_step`, i.e. after clipping and before a stock torch
optimizer, which is where the official ChildTuningOptimizer masks them (inside its copy of
AdamW, after the Trainer has clipped).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import MISSING

from .. import child_mask, fisher_cache, optim, seeding
from ..errors import InputError
from ..fields import added_later
from ..fisher import INTERPOLATIONS, fisher_information
from ..layers import layer_of
from ..masks import SAMPLERS, BernoulliMasker
from ..child_networks import SELECTIONS
from .base import EligibleRule, Method, MethodConfig, register


@dataclass
class ChildTuningConfig(MethodConfig):
    keep_ratio: float = MISSING     # per-task values: conf/method_task/<method>_<task>.yaml
    eligible: EligibleRule = field(default_factory=EligibleRule)
    decay_masked_weights: bool = MISSING


class ChildTuning(Method):
    """Shared by F and D: the eligible parameters, the decay switch and the statistics."""
    Config = ChildTuningConfig
    prepare_stage = "child_network"     # after any freezing: only trainable weights are eligible

    @classmethod
    def hooks_used(cls, cfg):
        used = super().hooks_used(cfg)
        return used if not cfg.decay_masked_weights else used - {"after_optimizer_step"}  # a no-op then

    @classmethod
    def check(cls, run_cfg):
        super().check(run_cfg)
        m = run_cfg.method
        if not 0.0 < m.keep_ratio <= 1.0:
            raise InputError(f"method.keep_ratio={m.keep_ratio} is outside (0, 1]: it is the fraction of weights KEPT "
                             "(the paper's reserve ratio p; the author's values are 0.1-0.4), e.g. method.keep_ratio=0.3")
        EligibleRule.check(m.eligible)

    def __init__(self, cfg, seed, task):
        super().__init__(cfg, seed, task)
        self.names: list[str] = []
        self.params: list[torch.nn.Parameter] = []
        self._saved: list[torch.Tensor] | None = None
        self._decay_order: str | None = None     # the optimizer's decay order, learnt at its first step

    def _select(self, model):
        rule = EligibleRule(**self.cfg.eligible) if not isinstance(self.cfg.eligible, EligibleRule) else self.cfg.eligible
        chosen = rule.select(model)
        if not chosen:
            raise InputError(f"method.eligible {dict(self.cfg.eligible)} matches no trainable parameter of "
                             f"{type(model).__name__}; widen method.eligible.include (e.g. [layer] or ['.*'])")
        self.names = [n for n, _ in chosen]
        self.params = [p for _, p in chosen]
        self.total_params = sum(p.numel() for p in model.parameters())

    def _current_masks(self) -> list[torch.Tensor | np.ndarray]:
        raise NotImplementedError

    def before_optimizer_step(self, model):
        # decay before the update (torch) needs the old weights to give back lr*wd*p_old; an
        # optimizer that decays after its update (adamw_hf) does not (known from its first step on)
        if not self.cfg.decay_masked_weights and self._decay_order != "after":
            self._saved = [p.detach().clone() for p in self.params]

    def after_optimizer_step(self, model, optimizer):
        if self.cfg.decay_masked_weights:
            return
        lr_wd = {id(p): g["lr"] * g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
        self._decay_order = self._decay_order or optim.decay_order(optimizer)
        saved = self._saved or [None] * len(self.params)
        with torch.no_grad():  # give the dropped entries back what the decay took this step
            for p, old, mask in zip(self.params, saved, self._current_masks()):
                if mask is None:
                    continue
                dropped = ~torch.as_tensor(mask, device=p.device).view_as(p).bool()
                optim.undo_decay_(p, old, dropped, lr_wd[id(p)], self._decay_order)
        self._saved = None

    def stats(self):
        return {"eligible_params": sum(p.numel() for p in self.params),
                "eligible_fraction_of_model": sum(p.numel() for p in self.params) / self.total_params,
                "eligible_tensors": len(self.params)}


@dataclass
class ChildTuningFConfig(ChildTuningConfig):
    sampler: str = MISSING          # one of masks.SAMPLERS


@register
class ChildTuningF(ChildTuning):
    """Task-free: a fresh Bernoulli(keep_ratio) mask every step, kept entries scaled by 1/keep_ratio."""
    name = "child_tuning_f"
    Config = ChildTuningFConfig

    @classmethod
    def check(cls, run_cfg):
        super().check(run_cfg)
        if run_cfg.method.sampler not in SAMPLERS:
            raise InputError(f"method.sampler={run_cfg.method.sampler!r}; use one of {SAMPLERS}")

    def prepare(self, model, train_loader, device):
        self._select(model)
        self.masker = BernoulliMasker([p.shape for p in self.params], self.cfg.keep_ratio,
                                      self.generator("mask", device), self.cfg.sampler, device,
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
    clip_per_tensor: bool = MISSING
    max_grad_norm: float = MISSING
    per_example: bool = MISSING
    dropout: bool = MISSING
    batch_size: int = MISSING
    max_samples: Any = MISSING      # an int, or null = the whole training set


# method.prune: when the eligible weights outside the child network are set to zero (the
# paper's pruning ablation, Sec. 4.4). none: never (Child-Tuning_D); before_training: after the
# child network is chosen on the unpruned model, before the first step; the child network then
# trains as usual and the pruned weights stay zero (their gradient is masked, so Adam's moments
# stay zero, and weight decay of a zero weight is zero).
PRUNE_TIMINGS = ("none", "before_training")


@dataclass
class ChildTuningDConfig(ChildTuningConfig):
    fisher: FisherConfig = field(default_factory=FisherConfig)    # the scores
    selection: str = MISSING                                      # the rule, one of selection.SELECTIONS
    percentile_interpolation: str = MISSING                       # one of fisher.INTERPOLATIONS
    prune: str = added_later("none")                              # one of PRUNE_TIMINGS


@register
class ChildTuningD(ChildTuning):
    """Task-driven: a fixed mask of the eligible weights with the highest Fisher information."""
    name = "child_tuning_d"
    Config = ChildTuningDConfig

    @classmethod
    def check(cls, run_cfg):
        super().check(run_cfg)
        cls.require_family(run_cfg, "child_tuning_d", "Child-Tuning_D")
        m = run_cfg.method
        if m.selection not in SELECTIONS:
            raise InputError(f"method.selection={m.selection!r}; use one of {sorted(SELECTIONS)}")
        if m.percentile_interpolation not in INTERPOLATIONS:
            raise InputError(f"method.percentile_interpolation={m.percentile_interpolation!r}; use one of {INTERPOLATIONS}")
        if m.fisher.batch_size <= 0 or (m.fisher.max_samples is not None and m.fisher.max_samples <= 0):
            raise InputError("method.fisher.batch_size and method.fisher.max_samples must be positive "
                             "(max_samples: null = the whole training set)")
        if m.prune not in PRUNE_TIMINGS:
            raise InputError(f"method.prune={m.prune!r}; use one of {PRUNE_TIMINGS}")

    def __init__(self, cfg, seed, task):
        super().__init__(cfg, seed, task)
        self.cache_info: dict = {"fisher_cache": "off"}
        self.pruned = 0

    def prepare(self, model, train_loader, device):
        self._select(model)
        self.fisher = self.scores(model, train_loader, device)
        masks, self.selection_info = SELECTIONS[self.cfg.selection](
            self.fisher, self.cfg.keep_ratio, self.generator("child_network"),
            interpolation=self.cfg.percentile_interpolation)
        self.set_masks(masks)
        if self.cfg.prune == "before_training":
            with torch.no_grad():
                for p, m in zip(self.params, self._multipliers):
                    p.mul_(m)
            self.pruned = sum(int((~m).sum()) for m in self.masks)

    def scores(self, model, train_loader, device) -> list[torch.Tensor]:
        """Fisher information of each eligible weight: one pass over the training set, its order
        and its dropout from the run's own "fisher" stream; from the cache (childtuning/fisher_cache.py)
        when an identical pass was made before."""
        fc = self.cfg.fisher
        description = None
        if self.cache_dir:
            description = fisher_cache.describe(model, self.names, self.params, train_loader, fc, self.seed, device,
                                                 self.generator("fisher"))
            self.cache_info = {"fisher_cache": "miss", "fisher_cache_key": fisher_cache.key(description)}
            cached = fisher_cache.load(self.cache_dir, description, device)
            if cached is not None:
                self.cache_info["fisher_cache"] = "hit"
                return cached
        seeding.seed_global(self.seed, "fisher")   # dropout during the pass: its own stream
        loader = train_loader.reshuffled(self.generator("fisher"), fc.batch_size)
        scores = fisher_information(
            model, loader, self.params, device=device, clip_per_tensor=fc.clip_per_tensor,
            max_grad_norm=fc.max_grad_norm, per_example=fc.per_example, dropout=fc.dropout,
            max_samples=fc.max_samples, progress=getattr(train_loader, "progress", False))
        if description is not None:
            fisher_cache.save(self.cache_dir, description, scores)
        return scores

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
        return {**super().stats(), "keep_ratio": self.cfg.keep_ratio, "selection": self.cfg.selection,
                **self.selection_info, "kept_params": kept, "kept_fraction_of_eligible": kept / eligible,
                "kept_fraction_per_layer": {k: v[0] / v[1] for k, v in sorted(per_layer.items())},
                **({"prune": self.cfg.prune, "pruned_params": self.pruned} if self.cfg.prune != "none" else {}),
                **self.cache_info, "child_mask_sha256": child_mask.digest(child_mask.pack(self.masks))}

    def save_artifacts(self, folder):
        """The child network, bit-packed: one bit per eligible weight, in `names` order."""
        path = child_mask.write(folder, self.names, self.masks, keep_ratio=self.cfg.keep_ratio,
                                selection=self.cfg.selection, prune=self.cfg.prune,
                                **{k: v for k, v in self.selection_info.items() if v is not None})
        return {"child_mask": path.name}

    def state_dict(self):
        return {"masks": [m.cpu() for m in self.masks], "selection_info": self.selection_info}

    def load_state_dict(self, state):
        self.set_masks([m.to(p.device) for m, p in zip(state["masks"], self.params)])
        self.selection_info = state["selection_info"]
