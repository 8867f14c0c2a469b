"""Typed schemas for the config groups, and the checks that run before any expensive work.

The YAML files under conf/ hold the default values (with where each comes from); the schemas here
hold the types, so an unknown key or a wrong type is an error. Each method checks its own config
(`Method.check`); allowed values of a switch are declared once, by the module that uses them.

A field marked `not_outcome(...)` says where or how to find something, not what a run computes
(a data folder's file names, whether to checkpoint): it stays out of the run id (record.run_id).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import methods
from .errors import InputError
from .metrics import METRICS
from .models import MODEL_SOURCES


def not_outcome(**kwargs):
    """A dataclass field that does not change a run's outcome (left out of the run id)."""
    return field(metadata={"outcome": False}, **kwargs)


@dataclass
class PathsConfig:
    results: str = "results"
    glue_dir: Optional[str] = None
    cache: Optional[str] = ".cache/childtuning"


@dataclass
class ModelConfig:
    name: str = MISSING
    source: str = "hub"
    pretrained: Optional[str] = None
    padding_side: str = "right"
    architecture: str = MISSING            # transformers model_type (checked against the loaded model)
    tokenizer: Optional[str] = None        # tiny models: minilm | bpe | unigram
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class HubSource:
    path: str = "nyu-mll/glue"
    name: Optional[str] = None
    text_fields: Optional[list[str]] = None   # when the hub's column names differ
    label_field: Optional[str] = None


@dataclass
class LocalSource:
    folder: str = ""
    files: dict[str, str] = field(default_factory=dict)
    header: bool = True
    columns: list[str] = field(default_factory=list)


@dataclass
class TaskConfig:
    name: str = MISSING
    # Where the data is (hub id, folder, files, columns): not what a run computes. The data
    # itself is identified by the fingerprints each record keeps.
    hub: HubSource = not_outcome(default_factory=HubSource)
    local: LocalSource = not_outcome(default_factory=LocalSource)
    text_fields: list[str] = field(default_factory=list)
    label_field: str = "label"
    labels: Optional[list[str]] = None
    regression: bool = False
    metrics: list[str] = field(default_factory=list)
    main_metric: str = MISSING
    max_train_samples: Optional[int] = None
    subsample_seed: Optional[int] = None


@dataclass
class TrainerConfig:
    """Values: conf/trainer/default.yaml (the official run script's)."""
    epochs: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    warmup_ratio: float = MISSING
    weight_decay: float = MISSING
    adam_beta1: float = MISSING
    adam_beta2: float = MISSING
    adam_eps: float = MISSING
    max_grad_norm: float = MISSING
    max_length: int = MISSING
    pad_to_max_length: bool = MISSING
    optimizer: str = MISSING
    optimizer_impl: str = MISSING
    checkpoint: bool = not_outcome(default=False)   # a resumed run ends bit-identical to an uninterrupted one


@dataclass
class ImplConfig:
    """How a run executes; values: conf/impl/default.yaml. Not in the run id, except a precision
    other than fp32 and the packed layout (see record.outcome)."""
    device: str = MISSING
    precision: str = MISSING
    num_threads: Optional[int] = None
    progress_bar: bool = MISSING
    eval_batch_size: int = MISSING
    packing: bool = MISSING


@dataclass
class LoggerConfig:
    name: str = "none"
    project: str = "childtuning"
    entity: Optional[str] = None
    mode: str = "offline"


@dataclass
class RunConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    method: Any = None
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    impl: ImplConfig = field(default_factory=ImplConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 1
    experiment: str = "default"
    force: bool = False
    reuse: bool = True         # copy a complete record of the same run id from another experiment
    table: Any = None          # experiment files: the table layout (read by the aggregator only)


SCHEMAS = {"paths": PathsConfig, "model": ModelConfig, "task": TaskConfig, "trainer": TrainerConfig,
           "impl": ImplConfig, "logger": LoggerConfig}


def non_outcome_keys(group: str) -> set[str]:
    """Keys of a config group that the run id leaves out (fields marked with `not_outcome`)."""
    schema = SCHEMAS.get(group)
    return {f.name for f in fields(schema) if f.metadata.get("outcome") is False} if schema else set()


def compose(*overrides: str, config_dir=None) -> DictConfig:
    """The run config for command-line `overrides`, composed from conf/ (or `config_dir`) as
    `python -m childtuning.train` composes it (not yet validated)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from . import REPO_ROOT

    with initialize_config_dir(config_dir=str(config_dir or REPO_ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def check(ok: bool, message: str) -> None:
    """Raise InputError(message) unless `ok`: the one way a config check fails."""
    if not ok:
        raise InputError(message)


def _merge(raw: dict) -> DictConfig:
    name = (raw.get("method") or {}).get("name")
    check(name in methods.REGISTRY, f"unknown method {name!r}; choose one of {sorted(methods.REGISTRY)} "
                                    f"(method=<name>, a file conf/method/<name>.yaml)")
    schema = OmegaConf.structured(RunConfig)
    schema.method = OmegaConf.structured(methods.REGISTRY[name].Config)
    try:
        merged = OmegaConf.merge(schema, raw)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or ""
        raise InputError(f"config error at `{key}`: {e.msg if hasattr(e, 'msg') else e}. "
                         "Check the key's spelling and type against conf/ (unknown keys are errors).") from None
    missing = sorted(OmegaConf.missing_keys(merged))
    check(not missing, f"config value(s) missing: {', '.join(missing)}. Each needs a value, from its group's file "
                       "under conf/ or an override such as method.keep_ratio=0.3")
    return merged


def validate(cfg: DictConfig) -> DictConfig:
    """Return the config merged onto its typed schema; raise InputError naming the fix."""
    from . import loop, optim   # the owners of the allowed values (imported late: they import torch)

    raw = OmegaConf.to_container(cfg, resolve=True)
    raw.pop("hydra", None)
    merged = _merge(raw)
    t, tr, md, impl = merged.task, merged.trainer, merged.model, merged.impl
    check(md.source in MODEL_SOURCES, f"model.source={md.source!r}; use one of {MODEL_SOURCES}")
    check(md.source != "hub" or bool(md.pretrained), f"model {md.name}: source=hub needs model.pretrained (a hub id or path)")
    check(md.padding_side in ("left", "right"), f"model.padding_side={md.padding_side!r}; use left or right")
    unknown = [x for x in t.metrics if x not in METRICS]
    check(not unknown, f"task {t.name}: unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    check(t.main_metric in t.metrics, f"task {t.name}: main_metric {t.main_metric!r} is not in metrics {list(t.metrics)}")
    check(t.regression == (t.labels is None), f"task {t.name}: a regression task has labels: null, a classification task a list of labels")
    check(bool(t.text_fields), f"task {t.name}: text_fields is empty")
    for f_ in list(t.text_fields) + [t.label_field]:
        check(f_ in t.local.columns, f"task {t.name}: field {f_!r} is not in local.columns {list(t.local.columns)}")
    check(t.max_train_samples is None or t.max_train_samples > 0,
          f"task.max_train_samples={t.max_train_samples}: use a positive number, or null for the whole training set")
    check(tr.epochs > 0 and tr.batch_size > 0 and tr.lr > 0 and tr.max_length > 0,
          "trainer.epochs, trainer.batch_size, trainer.lr and trainer.max_length must be positive")
    check(0 <= tr.warmup_ratio <= 1, f"trainer.warmup_ratio={tr.warmup_ratio} not in [0, 1]")
    check(tr.optimizer in optim.OPTIMIZERS, f"trainer.optimizer={tr.optimizer!r}; use one of {sorted(optim.OPTIMIZERS)}")
    check(tr.optimizer_impl in optim.KERNELS, f"trainer.optimizer_impl={tr.optimizer_impl!r}; use one of {list(optim.KERNELS)}")
    check(impl.precision in loop.PRECISIONS, f"impl.precision={impl.precision!r}; use one of {list(loop.PRECISIONS)}")
    check(impl.device in ("auto", "cpu", "cuda") or impl.device.startswith("cuda:"),
          f"impl.device={impl.device!r}; use auto, cpu or cuda")
    check(merged.logger.name in ("none", "wandb"), f"logger={merged.logger.name!r}; use none or wandb")
    methods.REGISTRY[merged.method.name].check(merged)
    return merged
