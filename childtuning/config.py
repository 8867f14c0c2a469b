"""Typed schemas for the config groups, and the checks that run before any expensive work.

The YAML files under conf/ hold the default values (with where each comes from); the schemas here
hold the types, so an unknown key or a wrong type is an error. Each method checks its own config
(`Method.check`); allowed values of a switch are declared once, by the module that uses them.

A field marked `not_outcome(...)` says where or how to find something, not what a run computes
(a data folder's file names, whether to checkpoint): it stays out of the run id (record.run_id).
A field marked `added_later(...)` changes the outcome but came after committed records existed:
it enters the run id only when set away from the value that reproduces the old behaviour, so
those records keep their ids.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from . import fields, hints, methods, protocol  # noqa: F401 (protocol: registers the ${selected:...} resolver)
from .errors import InputError
from .fields import added_later, not_outcome  # noqa: F401 (the probe's schema imports not_outcome from here)
from .metrics import METRICS
from .models import MODEL_SOURCES


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
    # source=run: "<experiment>/<run_id>" of a run saved with trainer.save_model (childtuning/
    # saved_models.py). Read by the probe (python -m childtuning.probe); fine-tuning refuses it.
    run: Optional[str] = added_later(None)


@dataclass
class HubSource:
    """A hub dataset (`datasets.load_dataset(path, name)`); childtuning/readers.py reads it."""
    path: str = "nyu-mll/glue"
    name: Optional[str] = None
    # Our split name -> the hub's (e.g. dev: validation_matched). A task's splits are the names
    # declared here and in local.files; a run reads train and dev.
    splits: dict[str, str] = field(default_factory=dict)
    text_fields: Optional[list[str]] = None   # when the hub's column names differ
    label_field: Optional[str] = None
    # The hub's label value (as text) -> one of task.labels; null: integers index task.labels and
    # strings are label names.
    label_codes: Optional[dict[str, str]] = None
    drop_labels: list[str] = field(default_factory=list)   # rows with these label values are skipped


@dataclass
class LocalSource:
    """Files in <glue_dir>/<folder>: `*.jsonl` is JSON lines (fields by name), anything else is
    tab-separated with `columns` in file order (checked against the header when `header`)."""
    folder: str = ""
    files: dict[str, str] = field(default_factory=dict)    # our split name -> file name
    header: bool = True
    columns: list[str] = field(default_factory=list)
    rename: dict[str, str] = field(default_factory=dict)   # a file's header/key name -> our column name
    # A file's label value -> one of task.labels (e.g. SNLI's "0" -> entailment; quote numeric
    # codes in YAML); null: the file holds the label names themselves.
    label_codes: Optional[dict[str, str]] = None
    drop_labels: list[str] = field(default_factory=list)   # rows with these label values are skipped


@dataclass
class ResplitConfig:
    """Train and dev cut from one declared split: `train_size` label-stratified examples drawn
    with `seed` become train, the rest (in file order) dev. For offline substitutes."""
    source: str = MISSING
    train_size: int = MISSING
    seed: int = 0


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
    subsample_seed: Optional[int] = None       # null: the run's seed (each seed its own subset)
    # false: a uniform random subset (the first release's); true: exact per-label counts
    # (childtuning/subsets.py says how they are rounded)
    stratified_subsample: bool = added_later(False)
    resplit: Optional[ResplitConfig] = added_later(None)
    # Named maps from another task's predicted labels to this task's, used when this task is an
    # evaluation target (childtuning/transfer.py); the map used is recorded with the target.
    label_maps: dict[str, dict[str, str]] = not_outcome(default_factory=dict)


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
    # Keep the final model beside the record (childtuning/saved_models.py); what the run computes is the same.
    save_model: bool = not_outcome(default=False)


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
    packed_layout: str = MISSING    # varlen | varlen_batched | rows (childtuning/packing.py)
    pad_to_multiple_of: int = MISSING
    fisher_cache: bool = MISSING     # reuse identical Fisher passes (childtuning/fisher_cache.py)


@dataclass
class LoggerConfig:
    name: str = "none"
    project: str = "childtuning"
    entity: Optional[str] = None
    mode: str = "offline"
    dir: Optional[str] = None    # where wandb writes its wandb/ folder (conf/logger/wandb.yaml: the experiment's results folder)


@dataclass
class LeaseConfig:
    """A run claims its id before it starts (childtuning/lease.py); values: conf/config.yaml."""
    enabled: bool = True
    timeout_s: float = 300.0
    heartbeat_s: float = 30.0


@dataclass
class PreflightConfig:
    """A sweep's launch-time check of every cell (childtuning/preflight.py); values: conf/config.yaml."""
    enabled: bool = True
    allow_model_download: bool = False
    dry_run: bool = False       # print each cell's fate and estimated cost, run nothing (childtuning/plan.py)


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
    # Other tasks' splits to score the final model on ("task:split" or {task, split, label_map});
    # validate() rewrites each entry into its explicit form (childtuning/targets.py).
    targets: list[Any] = field(default_factory=list)
    # More targets for runs whose task is a key here (e.g. one list per source task of a sweep);
    # added to `targets`, which alone enters the run id.
    targets_by_task: dict[str, list[Any]] = field(default_factory=dict)
    table: Any = None          # experiment files: the table layout (read by the aggregator only)
    probe: Any = None          # experiment files: the probes of their runs (read by childtuning.probe only)
    protocol: Any = None       # experiment files: a tuning protocol (read by childtuning.protocol only)
    lease: LeaseConfig = field(default_factory=LeaseConfig)
    preflight: PreflightConfig = field(default_factory=PreflightConfig)


SCHEMAS = {"paths": PathsConfig, "model": ModelConfig, "task": TaskConfig, "trainer": TrainerConfig,
           "impl": ImplConfig, "logger": LoggerConfig}


def id_part(group: str, value: dict) -> dict:
    """The part of a config group's resolved value that enters the run id: less its `not_outcome`
    keys, and less each `added_later` key that still has its old-behaviour value. A method's
    config is read by its own schema (methods.id_part)."""
    if group == "method":
        return methods.id_part(value)
    return fields.id_part(SCHEMAS.get(group), value)


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
        task = (raw.get("task") or {}).get("name")
        raise _merge_error(e, known=hints.flat_keys(OmegaConf.to_container(schema)),
                           source={"task": f"conf/task/{task}.yaml" if task else None}) from None
    missing = sorted(OmegaConf.missing_keys(merged))
    check(not missing, f"config value(s) missing: {', '.join(missing)}. Each needs a value, from its group's file "
                       "under conf/ or an override such as method.keep_ratio=0.3")
    return merged


def _merge_error(e: OmegaConfBaseException, where: str = "", known: list[str] = (), source: dict | None = None) -> InputError:
    """The message of a config that does not fit its schema. `where`: the prefix of the keys in `e`;
    `known`: the schema's keys (for an unknown key: where it moved, or the close ones); `source`:
    group -> the file its values came from."""
    key = f"{where}{getattr(e, 'full_key', None) or ''}"
    text = str(e.msg if hasattr(e, "msg") else e).split("\n")[0]
    group = key.split(".")[0]
    origin = f" (set in {source[group]} or by a {group}.* override)" if source and source.get(group) else ""
    hint = hints.suggestion(key, list(known)) if isinstance(e, ConfigKeyError) else ""
    return InputError(f"config error at `{key}`{origin}: {text}{hint}{' ' if hint.endswith('?') else '. '}"
                      "Check the key's spelling and type against conf/ (unknown keys are errors).")


def check_impl(impl: DictConfig) -> None:
    """The checks of `impl` (how a run executes), for a fine-tuning run and a probe alike."""
    from . import loop, packing   # the owners of the allowed values (imported late: they import torch)

    check(impl.precision in loop.PRECISIONS, f"impl.precision={impl.precision!r}; use one of {list(loop.PRECISIONS)}")
    check(impl.packed_layout in packing.LAYOUTS,
          f"impl.packed_layout={impl.packed_layout!r}; use one of {list(packing.LAYOUTS)}")
    check(impl.pad_to_multiple_of >= 1, f"impl.pad_to_multiple_of={impl.pad_to_multiple_of}: use 1 (no rounding) or more, e.g. 8 on a GPU")
    check(impl.device in ("auto", "cpu", "cuda") or impl.device.startswith("cuda:"),
          f"impl.device={impl.device!r}; use auto, cpu or cuda")


def check_task(t: DictConfig) -> None:
    """The checks of one task's config (a run's task, or a task evaluated as a target)."""
    at = f"task {t.name} (conf/task/{t.name}.yaml)"     # where the fix goes
    unknown = [x for x in t.metrics if x not in METRICS]
    check(not unknown, f"{at}: unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    check(t.main_metric in t.metrics, f"{at}: main_metric {t.main_metric!r} is not in metrics {list(t.metrics)}")
    check(t.regression == (t.labels is None), f"{at}: a regression task has labels: null, a classification task a list of labels")
    check(bool(t.text_fields), f"{at}: text_fields is empty")
    if t.local.files:
        for f_ in list(t.text_fields) + [t.label_field]:
            check(f_ in t.local.columns, f"{at}: field {f_!r} is not in local.columns {list(t.local.columns)}")
        odd = sorted(set(t.local.rename.values()) - set(t.local.columns))
        check(not odd, f"{at}: local.rename maps to {odd}, which local.columns {list(t.local.columns)} lacks")
    labels = set(t.labels or [])
    for where, codes in (("local.label_codes", t.local.label_codes), ("hub.label_codes", t.hub.label_codes)):
        bad = sorted({v for v in (codes or {}).values()} - labels)
        check(not bad, f"{at}: {where} maps to {bad}, which are not among its labels {sorted(labels)}")
    for name, pairs in t.label_maps.items():
        bad = sorted(set(pairs.values()) - labels)
        check(not bad, f"{at}: label_maps.{name} maps to {bad}, which are not among its labels "
                       f"{list(t.labels or [])} (a map reads another task's predictions as this task's labels)")
    declared = set(t.local.files) | set(t.hub.splits)
    if t.resplit is not None:
        check(t.resplit.source in declared, f"{at}: resplit.source={t.resplit.source!r} is not a declared split "
                                            f"{sorted(declared)} (local.files or hub.splits)")
        check(t.resplit.train_size > 0, f"{at}: resplit.train_size={t.resplit.train_size}; use a positive number")
        check(not t.regression, f"{at}: resplit draws a label-stratified train set; it needs a classification task")
        declared |= {"train", "dev"}
    for split in ("train", "dev"):
        check(split in declared, f"{at}: no {split} split; declare its file in local.files or its hub "
                                 f"name in hub.splits (declared: {sorted(declared)})")
    check(t.max_train_samples is None or t.max_train_samples > 0,
          f"task.max_train_samples={t.max_train_samples}: use a positive number, or null for the whole training set")
    check(not (t.stratified_subsample and t.regression),
          f"{at}: stratified_subsample needs class labels; a regression task takes a random subset "
          "(task.stratified_subsample=false)")


def load_task_config(name: str, config_dir=None) -> DictConfig:
    """Task `name` as conf/task/<name>.yaml declares it, merged onto its schema and checked: how a
    task that is not the run's own (an evaluation target) is read."""
    from . import REPO_ROOT

    folder = Path(config_dir or REPO_ROOT / "conf") / "task"
    path = folder / f"{name}.yaml"
    known = sorted(p.stem for p in folder.glob("*.yaml"))
    check(path.is_file(), f"unknown task {name!r}: no file {path}; known tasks: {known}")
    try:
        task = OmegaConf.merge(OmegaConf.structured(TaskConfig), OmegaConf.load(path))
    except OmegaConfBaseException as e:
        known = hints.flat_keys(OmegaConf.to_container(OmegaConf.structured(TaskConfig)), "task.")
        raise _merge_error(e, "task.", known, {"task": str(path)}) from None
    missing = sorted(OmegaConf.missing_keys(task))
    check(not missing, f"{path}: value(s) missing: {', '.join(missing)}")
    check_task(task)
    return task


def validate(cfg: DictConfig) -> DictConfig:
    """Return the config merged onto its typed schema; raise InputError naming the fix."""
    from . import optim   # the owner of the allowed values (imported late: it imports torch)

    try:
        raw = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:     # e.g. ${selected:...} before its protocol has chosen
        cause = e
        while cause is not None and not isinstance(cause, InputError):
            cause = cause.__cause__ or cause.__context__
        raise InputError(str(cause or e)) from None
    raw.pop("hydra", None)
    merged = _merge(raw)
    t, tr, md, impl = merged.task, merged.trainer, merged.model, merged.impl
    check(md.source in MODEL_SOURCES, f"model.source={md.source!r}; use one of {MODEL_SOURCES}")
    check(md.source != "hub" or bool(md.pretrained), f"model {md.name}: source=hub needs model.pretrained (a hub id or path)")
    check(md.source != "run", f"model.source=run ({md.run}) names a saved run for the probe (python -m childtuning.probe "
                              "probe.sources=[<experiment>/<run_id>]); a fine-tuning run starts from a pretrained model")
    check(md.padding_side in ("left", "right"), f"model.padding_side={md.padding_side!r}; use left or right")
    check_task(t)
    check(tr.epochs >= 0 and tr.batch_size > 0 and tr.lr > 0 and tr.max_length > 0,
          "trainer.batch_size, trainer.lr and trainer.max_length must be positive, trainer.epochs positive "
          "(or 0 for a run that only prepares, e.g. Child-Tuning_D's child network without training)")
    check(tr.epochs > 0 or methods.REGISTRY[merged.method.name].prepare is not methods.Method.prepare,
          f"trainer.epochs=0 records only what a method prepares before training (Child-Tuning_D's child "
          f"network); method {merged.method.name} prepares nothing, so the run would record nothing")
    check(0 <= tr.warmup_ratio <= 1, f"trainer.warmup_ratio={tr.warmup_ratio} not in [0, 1]")
    check(tr.optimizer in optim.OPTIMIZERS, f"trainer.optimizer={tr.optimizer!r}; use one of {sorted(optim.OPTIMIZERS)}")
    check(tr.optimizer_impl in optim.KERNELS, f"trainer.optimizer_impl={tr.optimizer_impl!r}; use one of {list(optim.KERNELS)}")
    check_impl(impl)
    check(merged.logger.name in ("none", "wandb"), f"logger={merged.logger.name!r}; use none or wandb")
    check(0 < merged.lease.heartbeat_s < merged.lease.timeout_s,
          f"lease.heartbeat_s={merged.lease.heartbeat_s:g} must be positive and below lease.timeout_s="
          f"{merged.lease.timeout_s:g} (a live run's lease would look stale)")
    methods.REGISTRY[merged.method.name].check(merged)
    from . import targets
    merged.targets = targets.resolve(merged.task, list(merged.targets) + list(merged.targets_by_task.get(merged.task.name, [])))
    merged.targets_by_task = {}          # folded into targets (the explicit form is what the record keeps)
    return merged
