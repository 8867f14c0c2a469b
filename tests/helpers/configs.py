"""Run configs for tests: composed from conf/ as the runner composes them, a tiny RTE run, and the
slices of a config that the loop and a method read."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from helpers.paths import REPO

# A target that scores an RTE model on MRPC's dev split, its labels mapped by hand.
MRPC_MAP = "{task: mrpc, split: dev, label_map: {entailment: '1', not_entailment: '0'}}"


def compose_cfg(*overrides: str, config_dir: Path | None = None):
    """The run config for `overrides`, composed from conf/ as `python -m childtuning.train` does."""
    from childtuning.config import compose      # deferred: it loads torch and transformers (seconds)

    return compose(*overrides, config_dir=config_dir)


def tiny_rte_cfg(results, glue, *extra):
    """One epoch of tiny_bert on 24 RTE examples from `glue`, writing under `results`."""
    return compose_cfg("model=tiny_bert", "task=rte", "task.max_train_samples=24", "trainer.epochs=1",
                       "trainer.batch_size=8", "impl.progress_bar=false", f"paths.results={results}",
                       f"paths.glue_dir={glue}", f"paths.cache={results}/cache", *extra)


def resolved_method_cfg(name, **over):
    """The shipped method config, with the values it normally takes from task and trainer."""
    cfg = OmegaConf.load(REPO / "conf" / "method" / f"{name}.yaml")
    if "keep_ratio" in cfg:
        cfg.keep_ratio = 0.3
    if "fisher" in cfg:
        cfg.fisher.max_grad_norm, cfg.fisher.batch_size = 1.0, 4
    return OmegaConf.merge(cfg, over)


def loop_cfg(**trainer):
    """The slice of a run config that loop.train reads."""
    return OmegaConf.create({"seed": 1, "task": {"regression": False, "metrics": ["accuracy"]},
                             "impl": {"precision": "fp32", "progress_bar": False},
                             "trainer": {"epochs": 1, "lr": 1e-3, "weight_decay": 0.01, "adam_beta1": 0.9,
                                         "adam_beta2": 0.999, "adam_eps": 1e-8, "max_grad_norm": 1.0,
                                         "warmup_ratio": 0.1, "optimizer": "adamw_torch",
                                         "optimizer_impl": "for_loop", **trainer}})
