"""Combinations of methods (`method=child_tuning_d+mixout`), built by one rule, not by hand per pair.

The rule:
1. prepare: every part prepares, in the order of the stage its class names (base.PREPARE_STAGES:
   module surgery -> freezing -> snapshots -> child network; ties keep the order of the name),
   so each stage sees the model as it will train (Child-Tuning_D's Fisher pass runs on the
   Mixout model, only over the layers Top-K leaves trainable).
2. Each of the hooks in base.EXCLUSIVE_HOOKS (the optimizer, the loss, the two steps around the
   optimizer) is used by at most one part (`Method.hooks_used`, which depends on the part's
   settings); a combination where two parts use the same one is refused at validation, naming
   both. The optimizer is the part's that defines it; if none does, the default optimizer with
   the settings (warm-up, no-decay rule) of the FIRST part named: `child_tuning_d+mixout` trains
   with Child-Tuning_D's optimizer settings.
3. Everything else is kept per part: stats, state (for resuming) and artifacts under each part's
   name; each part draws from its own named random streams.

Config: no file per combination. childtuning/sweep.py gives Hydra's config store one entry
`method/<a>+<b>` for every ordered pair of methods with a conf/method file (vanilla aside), built
by the same rule: each part's own config under `parts.<name>` (its conf/method file plus its per-task and
per-model files), so the run id hashes both parts' settings and an override addresses one part:
`method.parts.child_tuning_d.keep_ratio=0.2`. A pair whose parts clash is refused at validation.
One key sits beside `parts`: `method.warmup_ratio`, `parts` by default (each part keeps its own);
any other value (a ratio, or null = trainer.warmup_ratio) replaces every part's, which is how
`preset=fair_warmup` reaches a combination's optimizer settings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from .. import fields
from ..errors import InputError
from .base import EXCLUSIVE_HOOKS, PREPARE_STAGES, REGISTRY, Method


KEEP_PARTS = "parts"


@dataclass
class CompositeConfig:
    name: str = MISSING
    parts: dict[str, Any] = MISSING     # part name -> that method's own config
    # `parts`: each part's own warm-up; a ratio or null (trainer.warmup_ratio) replaces every part's
    # (preset=fair_warmup). Out of the run id while `parts` (added after combinations existed).
    warmup_ratio: Any = fields.added_later(KEEP_PARTS)


_CLASSES: dict[tuple[str, ...], type] = {}


def composite_class(parts: tuple[str, ...]) -> type[Composite]:
    """The Method class combining registered methods `parts` (in this order), cached."""
    if parts not in _CLASSES:
        _CLASSES[parts] = type(f"Composite[{'+'.join(parts)}]", (Composite,),
                               {"name": "+".join(parts), "part_names": parts})
    return _CLASSES[parts]


REGISTRY.combine = composite_class     # the registry builds "a+b" names with this


class Composite(Method):
    """The parts of `part_names`, called at each hook by the module's rule."""
    Config = CompositeConfig
    part_names: tuple[str, ...] = ()

    @classmethod
    def part_configs(cls, cfg) -> dict[str, Any]:
        """Each part's config, typed by that part's own schema (unknown keys are errors)."""
        given = set(cfg.parts or {})
        if given != set(cls.part_names):
            raise InputError(f"method={cls.name}: method.parts has {sorted(given)}, expected one entry per part "
                             f"{list(cls.part_names)} (each part's config under method.parts.<name>, as "
                             "childtuning/sweep.py composes it)")
        typed = {}
        for name in cls.part_names:
            try:
                typed[name] = OmegaConf.merge(OmegaConf.structured(REGISTRY[name].Config), cfg.parts[name])
            except OmegaConfBaseException as e:
                raise InputError(f"method.parts.{name}: {e.msg if hasattr(e, 'msg') else e}. Check the key's "
                                 f"spelling and type against conf/method/{name}.yaml") from None
            missing = sorted(OmegaConf.missing_keys(typed[name]))
            if missing:
                raise InputError(f"method.parts.{name}: value(s) missing: {', '.join(missing)}; give them in "
                                 f"conf/method/{name}.yaml (or its per-task file) or as method.parts.{name}.<key>=<value>")
            if typed[name].name != name:
                raise InputError(f"method.parts.{name}.name is {typed[name].name!r}; it must be {name!r}")
            if cfg.get("warmup_ratio", KEEP_PARTS) != KEEP_PARTS:
                typed[name].warmup_ratio = cfg.warmup_ratio
        return typed

    @classmethod
    def hook_owners(cls, parts: dict[str, Any]) -> dict[str, str]:
        """hook -> the one part that uses it; refuses a combination where two parts use one."""
        owners = {}
        for hook in EXCLUSIVE_HOOKS:
            users = [n for n in cls.part_names if hook in REGISTRY[n].hooks_used(parts[n])]
            if len(users) > 1:
                raise InputError(f"method={cls.name}: {users[0]} and {users[1]} both use the `{hook}` hook "
                                 f"({_WHY[hook]}); a combination gives each of {list(EXCLUSIVE_HOOKS)} to one part "
                                 "only. Combine methods whose hooks do not overlap, or change a part's settings "
                                 "so that it no longer uses this hook (see its conf/method file)")
            if users:
                owners[hook] = users[0]
        return owners

    @classmethod
    def prepare_order(cls) -> list[str]:
        staged = [n for n in cls.part_names if REGISTRY[n].prepare_stage is not None]
        for n in staged:
            if REGISTRY[n].prepare_stage not in PREPARE_STAGES:
                raise ValueError(f"method {n}: prepare_stage {REGISTRY[n].prepare_stage!r} not in {PREPARE_STAGES}")
        return sorted(staged, key=lambda n: PREPARE_STAGES.index(REGISTRY[n].prepare_stage))  # stable: name order

    @classmethod
    def check(cls, run_cfg):
        parts = cls.part_configs(run_cfg.method)
        for name, part_cfg in parts.items():     # each part checks the run as if it were alone
            alone = run_cfg.copy()
            with open_dict(alone):
                alone.method = part_cfg
            REGISTRY[name].check(alone)
        cls.hook_owners(parts)

    def __init__(self, cfg, seed, task):
        super().__init__(cfg, seed, task)
        part_cfgs = self.part_configs(cfg)
        self.parts = {n: REGISTRY[n](part_cfgs[n], seed, task) for n in self.part_names}
        self.owners = self.hook_owners(part_cfgs)

    @classmethod
    def id_part(cls, value: dict) -> dict:
        parts = value.get("parts") or {}
        return {**fields.id_part(cls.Config, value),
                "parts": {n: REGISTRY[n].id_part(v) if n in REGISTRY else v for n, v in parts.items()}}

    def use_cache(self, cache_dir):
        # No reuse inside a combination: an earlier part's preparation is state a cache key cannot
        # fully see (Mixout's mixing probability and random stream, which the Fisher pass's
        # forward passes also advance), so a cached pass could differ, or shift what follows.
        super().use_cache(None)

    def _owner(self, hook: str) -> Method | None:
        return self.parts[self.owners[hook]] if hook in self.owners else None

    def prepare(self, model, train_loader, device):
        for name in self.prepare_order():
            self.parts[name].prepare(model, train_loader, device)

    def configure_optimizer(self, model, trainer, total_steps):
        owner = self._owner("configure_optimizer") or self.parts[self.part_names[0]]
        return owner.configure_optimizer(model, trainer, total_steps)

    def loss(self, model, batch, outputs):
        owner = self._owner("loss")
        return owner.loss(model, batch, outputs) if owner else outputs.loss

    def before_optimizer_step(self, model):
        if owner := self._owner("before_optimizer_step"):
            owner.before_optimizer_step(model)

    def after_optimizer_step(self, model, optimizer):
        if owner := self._owner("after_optimizer_step"):
            owner.after_optimizer_step(model, optimizer)

    def stats(self):
        return {"parts": {n: p.stats() for n, p in self.parts.items()},
                "prepare_order": self.prepare_order(), "hook_owners": dict(self.owners),
                "optimizer_settings_from": self.owners.get("configure_optimizer", self.part_names[0])}

    def save_artifacts(self, folder):
        saved = {}
        for name, part in self.parts.items():
            saved.update({f"{name}.{k}": v for k, v in part.save_artifacts(folder).items()})
        return saved

    def state_dict(self):
        return {n: p.state_dict() for n, p in self.parts.items()}

    def load_state_dict(self, state):
        for n, p in self.parts.items():
            p.load_state_dict(state[n])


# Why each hook cannot be shared, for the refusal message.
_WHY = {"configure_optimizer": "each builds its own optimizer; a run has one",
        "loss": "each returns the whole training loss",
        "before_optimizer_step": "each edits the gradients in place, and the result would depend on the order",
        "after_optimizer_step": "each corrects the optimizer's update, assuming it is the only correction"}

