"""Fine-tuning methods, registered by name. Add one: a module here with a @register'd class."""
import importlib
import pkgutil

from .base import REGISTRY, EligibleRule, Method, MethodConfig, TaskInfo, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def build(cfg, seed: int, task: TaskInfo) -> Method:
    if cfg.name not in REGISTRY:
        raise ValueError(f"unknown method {cfg.name!r}; registered: {sorted(REGISTRY)}")
    return REGISTRY[cfg.name](cfg, seed, task)


__all__ = ["REGISTRY", "EligibleRule", "Method", "MethodConfig", "TaskInfo", "register", "build"]
