"""The method interface: the few fixed points where a fine-tuning method plugs into the loop."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from omegaconf import MISSING

from .. import families, fields, optim, seeding
from ..errors import InputError


class Registry(dict):
    """Method classes by name. A name of registered names joined by "+" (`child_tuning_d+mixout`)
    is their composition (methods/composite.py), built by rule on first use; it is not listed.
    `combine` (parts -> class) is set by methods/composite.py, which builds on this module."""

    combine = None

    @staticmethod
    def parts_of(name) -> tuple[str, ...] | None:
        """The part names of a composite name, or None if `name` is not one."""
        if not isinstance(name, str) or "+" not in name:
            return None
        parts = tuple(name.split("+"))
        return parts if len(set(parts)) == len(parts) and all(parts) else None

    def __contains__(self, name) -> bool:
        parts = self.parts_of(name)
        if parts is None:
            return dict.__contains__(self, name)
        return all(dict.__contains__(self, p) for p in parts)

    def __missing__(self, name):
        if name not in self or self.parts_of(name) is None:
            raise KeyError(name)
        return self.combine(self.parts_of(name))


REGISTRY: dict[str, type["Method"]] = Registry()

# Composition (methods/composite.py): parts prepare in this order, each in the stage its class
# names, so later stages see the model as it will train: module surgery (Mixout) -> freezing
# (Top-K) -> snapshots of the weights (towards which a method pulls) -> the child network
# (Child-Tuning_F's sampler, Child-Tuning_D's Fisher pass) -> then the optimizer.
PREPARE_STAGES = ("surgery", "freezing", "snapshot", "child_network")
# Hooks that at most one part of a composed method may use (`Method.hooks_used`).
EXCLUSIVE_HOOKS = ("configure_optimizer", "loss", "before_optimizer_step", "after_optimizer_step")


def register(cls: type["Method"]) -> type["Method"]:
    """Class decorator: make a method selectable as `method=<cls.name>`."""
    if cls.name in REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


@dataclass(frozen=True)
class TaskInfo:
    """What a method may know of the task: its name and the kind of head."""
    name: str
    regression: bool
    num_labels: int

    @classmethod
    def of(cls, task_cfg) -> "TaskInfo":
        return cls(task_cfg.name, bool(task_cfg.regression), 1 if task_cfg.regression else len(task_cfg.labels))


# Which weights get no weight decay (method.no_decay):
#   by_name: names containing any of method.no_decay_names (the official Child-Tuning trainers:
#            ["bias", "LayerNorm.weight"], which misses XLNet's `layer_norm`);
#   by_module_type: biases and every torch.nn.LayerNorm's weights (transformers 4.7 Trainer, used
#            by the official vanilla runs).
NO_DECAY_RULES = ("by_module_type", "by_name")


def param_groups(model: torch.nn.Module, no_decay: str, no_decay_names: list[str], weight_decay: float):
    """Two optimizer groups of the trainable weights: with and without weight decay."""
    if no_decay == "by_name":
        skip = {n for n, _ in model.named_parameters() if any(s in n for s in no_decay_names)}
    else:
        norms = {f"{m_name}.{p_name}".lstrip(".") for m_name, m in model.named_modules()
                 if isinstance(m, torch.nn.LayerNorm) for p_name, _ in m.named_parameters(recurse=False)}
        skip = {n for n, _ in model.named_parameters() if n in norms or "bias" in n}
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in params if n not in skip], "weight_decay": weight_decay},
            {"params": [p for n, p in params if n in skip], "weight_decay": 0.0}]


@dataclass
class MethodConfig:
    """Keys every method config has; the values are in conf/method/<name>.yaml."""
    name: str = MISSING
    warmup_ratio: Any = MISSING        # a float in [0, 1], or null = trainer.warmup_ratio
    no_decay: str = MISSING            # one of NO_DECAY_RULES
    no_decay_names: list[str] = MISSING


@dataclass
class EligibleRule:
    """Which parameters a method acts on: names matching any `include` regex and no `exclude`."""
    include: list[str] = field(default_factory=lambda: [".*"])
    exclude: list[str] = field(default_factory=list)

    @staticmethod
    def check(eligible, where: str = "method.eligible") -> None:
        """Each pattern is a regex (at validation, before any data or weights are read)."""
        for key in ("include", "exclude"):
            for pattern in eligible.get(key) or []:
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise InputError(f"{where}.{key} has {pattern!r}, which is not a regex ({e}); "
                                     f"e.g. {where}.{key}=[layer]") from None

    def select(self, model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
        inc = [re.compile(p) for p in self.include]
        exc = [re.compile(p) for p in self.exclude]
        return [(n, p) for n, p in model.named_parameters()
                if p.requires_grad and any(r.search(n) for r in inc) and not any(r.search(n) for r in exc)]


class Method:
    """Vanilla behaviour at every hook; a method overrides the hooks it needs.

    Call order per run: check() at validation; prepare() once; configure_optimizer() once; then
    per step: loss() -> backward -> clip -> before_optimizer_step() -> optimizer.step() ->
    after_optimizer_step() -> scheduler.step().
    """
    name: ClassVar[str]
    Config: ClassVar[type] = MethodConfig
    prepare_stage: ClassVar[str | None] = None    # one of PREPARE_STAGES if prepare() does anything

    def __init__(self, cfg: Any, seed: int, task: TaskInfo):
        self.cfg = cfg
        self.seed = seed
        self.task = task
        self.cache_dir: str | None = None

    @classmethod
    def id_part(cls, value: dict) -> dict:
        """The part of this method's resolved config that enters the run id: all of it, less the
        keys its schema marks `added_later` while they keep their old value (childtuning.fields)."""
        return fields.id_part(cls.Config, value)

    def use_cache(self, cache_dir: str | None) -> None:
        """Where this run may reuse results of earlier runs (None: nowhere); set by methods.build."""
        self.cache_dir = cache_dir

    @classmethod
    def check(cls, run_cfg) -> None:
        """Refuse, with InputError naming the fix, a run this method cannot do. Gets the whole
        validated run config (task, trainer, model...), before any data or model is loaded."""
        m = run_cfg.method
        if m.warmup_ratio is not None and not 0 <= m.warmup_ratio <= 1:
            raise InputError(f"method.warmup_ratio={m.warmup_ratio} not in [0, 1] (null = trainer.warmup_ratio)")
        if m.no_decay not in NO_DECAY_RULES:
            raise InputError(f"method.no_decay={m.no_decay!r}; use one of {NO_DECAY_RULES}")

    @staticmethod
    def require_family(run_cfg, applies: str, method: str) -> None:
        """Refuse a run whose model family (childtuning/families/) is unknown, or says `applies`
        (a Family flag, e.g. "top_k") is false for it."""
        arch = run_cfg.model.architecture
        family = families.get(arch, f"{method} needs the model's family: model {run_cfg.model.name}")
        if not getattr(family, applies):
            raise InputError(f"{method} does not apply to {arch} models ({families.file_for(arch)} says "
                             f"{applies}=False); choose another method or model")

    @classmethod
    def hooks_used(cls, cfg) -> set[str]:
        """Which EXCLUSIVE_HOOKS this method uses with method config `cfg` (for composition).
        Default: those its class overrides; a method whose hook is a no-op under some settings
        narrows this."""
        return {h for h in EXCLUSIVE_HOOKS if getattr(cls, h) is not getattr(Method, h)}

    def generator(self, stream: str, device="cpu") -> torch.Generator:
        """This run's random stream `stream` (any name; see childtuning.seeding)."""
        return seeding.generator(self.seed, stream, device)

    def prepare(self, model: torch.nn.Module, train_loader, device: torch.device) -> None:
        """Once, before the optimizer exists (a Fisher pass, a module swap, a copy of the weights...)."""

    def configure_optimizer(self, model: torch.nn.Module, trainer, total_steps: int):
        """The optimizer and the learning-rate schedule. Default: trainer.optimizer over two groups
        (decay / no decay by method.no_decay), linear schedule with warm-up (method.warmup_ratio,
        else trainer.warmup_ratio). A method with its own update rule (RecAdam) overrides this."""
        groups = param_groups(model, self.cfg.no_decay, self.cfg.no_decay_names, trainer.weight_decay)
        optimizer = optim.build_optimizer(trainer.optimizer, groups, lr=trainer.lr, eps=trainer.adam_eps,
                                          betas=(trainer.adam_beta1, trainer.adam_beta2), kernel=trainer.optimizer_impl)
        return optimizer, self.linear_schedule(optimizer, trainer, total_steps)

    def linear_schedule(self, optimizer, trainer, total_steps: int):
        """Linear decay to 0 after a linear warm-up over method.warmup_ratio (else trainer.warmup_ratio)."""
        from transformers import get_linear_schedule_with_warmup

        warmup = trainer.warmup_ratio if self.cfg.warmup_ratio is None else self.cfg.warmup_ratio
        warmup_steps = math.ceil(total_steps * warmup)     # transformers 4.7 get_warmup_steps: ceil
        return get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)

    def loss(self, model: torch.nn.Module, batch: dict, outputs):
        """The training loss: a scalar tensor, or (loss, {name: scalar tensor}) whose extra terms are
        averaged per epoch into the record (e.g. R3F's KL term)."""
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
