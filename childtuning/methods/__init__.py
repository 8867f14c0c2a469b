"""Fine-tuning methods, registered by name. Add one: a module here with a @register'd class."""
from __future__ import annotations

import importlib
import pkgutil

from .base import REGISTRY, EligibleRule, Method, MethodConfig, TaskInfo, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def build(cfg, seed: int, task: TaskInfo, cache_dir: str | None = None) -> Method:
    """The method of config `cfg`; `cache_dir`: where it may keep results that are reused across
    runs (Child-Tuning_D's Fisher information), None for no cache."""
    if cfg.name not in REGISTRY:
        raise ValueError(f"unknown method {cfg.name!r}; registered: {sorted(REGISTRY)}")
    method = REGISTRY[cfg.name](cfg, seed, task)
    method.use_cache(cache_dir)
    return method


def id_part(value: dict) -> dict:
    """The part of a resolved method config that enters the run id (`Method.id_part`)."""
    name = value.get("name")
    return REGISTRY[name].id_part(value) if name in REGISTRY else value


__all__ = ["REGISTRY", "EligibleRule", "Method", "MethodConfig", "TaskInfo", "register", "build", "id_part"]
