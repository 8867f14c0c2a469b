"""Typed schemas for every config group, and the checks that run before any expensive work."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import methods
from .errors import InputError
from .metrics import METRICS
from .models import MODEL_SOURCES


@dataclass
class PathsConfig:
    results: str = "results"
    glue_dir: Optional[str] = None
    cache: Optional[str] = ".cache/childtuning"


@dataclass
class ModelConfig:
    name: str = "minilm"
    source: str = "hub"
    pretrained: Optional[str] = None
    padding_side: str = "right"
    architecture: Optional[str] = None     # tiny models: transformers model_type
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
    name: str = ""
    hub: HubSource = field(default_factory=HubSource)
    local: LocalSource = field(default_factory=LocalSource)
    text_fields: list[str] = field(default_factory=list)
    label_field: str = "label"
    labels: Optional[list[str]] = None
    regression: bool = False
    metrics: list[str] = field(default_factory=list)
    main_metric: str = ""
    max_train_samples: Optional[int] = None
    subsample_seed: Optional[int] = None
    keep_ratio: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainerConfig:
    epochs: int = 3
    batch_size: int = 16
    lr: float = 4e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    max_length: int = 128
    pad_to_max_length: bool = False
    optimizer_impl: str = "fused"
    checkpoint: bool = False


@dataclass
class ImplConfig:
    device: str = "auto"
    precision: str = "fp32"
    num_threads: Optional[int] = None
    progress_bar: bool = True
    eval_batch_size: int = 64


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
    table: Any = None          # experiment files: the table layout (read by the aggregator only)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


def validate(cfg: DictConfig) -> DictConfig:
    """Return the config merged onto its typed schema; raise InputError naming the fix."""
    raw = OmegaConf.to_container(cfg, resolve=True)
    raw.pop("hydra", None)
    method_raw = raw.get("method") or {}
    name = method_raw.get("name")
    _check(name in methods.REGISTRY, f"unknown method {name!r}; choose one of {sorted(methods.REGISTRY)} "
                                     f"(method=<name>, a file conf/method/<name>.yaml)")
    schema = OmegaConf.structured(RunConfig)
    schema.method = OmegaConf.structured(methods.REGISTRY[name].Config)
    try:
        merged = OmegaConf.merge(schema, raw)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or ""
        raise InputError(f"config error at `{key}`: {e.msg if hasattr(e, 'msg') else e}. "
                         "Check the key's spelling and type against conf/ (unknown keys are errors).") from None
    t, tr, m, md = merged.task, merged.trainer, merged.method, merged.model
    _check(md.source in MODEL_SOURCES, f"model.source={md.source!r}; use one of {MODEL_SOURCES}")
    _check(md.source != "hub" or bool(md.pretrained), f"model {md.name}: source=hub needs model.pretrained (a hub id or path)")
    _check(md.padding_side in ("left", "right"), f"model.padding_side={md.padding_side!r}; use left or right")
    if "keep_ratio" in m:
        _check(0.0 < m.keep_ratio <= 1.0,
               f"method.keep_ratio={m.keep_ratio} is outside (0, 1]: it is the fraction of weights KEPT "
               "(the paper's reserve ratio p; the author's values are 0.1-0.4), e.g. method.keep_ratio=0.3")
    if "sampler" in m:
        _check(m.sampler in ("fast", "official"), f"method.sampler={m.sampler!r}; use fast or official")
    _check(m.no_decay in ("by_name", "by_module_type"), f"method.no_decay={m.no_decay!r}; use by_name or by_module_type")
    _check(m.warmup_ratio is None or 0 <= m.warmup_ratio <= 1, f"method.warmup_ratio={m.warmup_ratio} not in [0, 1]")
    unknown = [x for x in t.metrics if x not in METRICS]
    _check(not unknown, f"task {t.name}: unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    _check(t.main_metric in t.metrics, f"task {t.name}: main_metric {t.main_metric!r} is not in metrics {list(t.metrics)}")
    _check(t.regression == (t.labels is None), f"task {t.name}: a regression task has labels: null, a classification task a list of labels")
    _check(bool(t.text_fields), f"task {t.name}: text_fields is empty")
    for f_ in list(t.text_fields) + [t.label_field]:
        _check(f_ in t.local.columns, f"task {t.name}: field {f_!r} is not in local.columns {list(t.local.columns)}")
    _check(t.max_train_samples is None or t.max_train_samples > 0,
           f"task.max_train_samples={t.max_train_samples}: use a positive number, or null for the whole training set")
    _check(tr.epochs > 0 and tr.batch_size > 0 and tr.lr > 0 and tr.max_length > 0,
           "trainer.epochs, trainer.batch_size, trainer.lr and trainer.max_length must be positive")
    _check(tr.optimizer_impl in ("fused", "foreach", "for_loop"),
           f"trainer.optimizer_impl={tr.optimizer_impl!r}; use fused, foreach or for_loop")
    _check(0 <= tr.warmup_ratio <= 1, f"trainer.warmup_ratio={tr.warmup_ratio} not in [0, 1]")
    _check(merged.impl.precision in ("fp32", "bf16", "fp16"), f"impl.precision={merged.impl.precision!r}; use fp32, bf16 or fp16")
    _check(merged.impl.device in ("auto", "cpu", "cuda") or merged.impl.device.startswith("cuda:"),
           f"impl.device={merged.impl.device!r}; use auto, cpu or cuda")
    _check(merged.logger.name in ("none", "wandb"), f"logger={merged.logger.name!r}; use none or wandb")
    return merged


# Groups whose values change a run's outcome; the run id hashes exactly these.
OUTCOME_KEYS = ("model", "task", "method", "trainer", "seed")
