"""Typed schemas of the config groups (types and run-id markers; the values live in conf/), and
the part of a resolved group that enters a run id.

The run-id contract, for whoever adds a setting. A run's id (record.run_id) hashes its model,
task, method (its own config only), trainer and seed groups; in them:
- an unmarked field enters the id: it changes what the run computes;
- a field marked `not_outcome(...)` says where or how to find something, not what a run computes
  (a data folder's file names, whether to checkpoint, whether to keep the model): never in the id;
- a field marked `added_later(<old value>)` changes the outcome but came after committed records
  existed: it enters the id only when set away from the value that reproduces the old behaviour,
  so those records keep their ids (at any depth: task.resplit.group is one);
- a field holding another schema (task.resplit) follows these rules inside it.
Other groups (paths, impl, logger, lease, the experiment, evaluation targets) stay out, except the
`impl` keys that change the numbers (record.IMPL_IN_ID: a precision other than fp32, the packed
layout, padding to a multiple), each by its own rule in record.outcome. record.id_contract lists
every key with its status and tests/test_run_id_contract.py holds it against a committed list,
so a new key fails the suite until its status is declared on purpose.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from . import fields, hints
from .errors import InputError
from .fields import added_later, not_outcome


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
    """Train and dev cut from one declared split: `train_size` examples drawn with `seed` become
    train, the rest (in file order) dev. For offline substitutes. Label-stratified, unless `group`
    names a text field (e.g. premise): then whole groups of examples sharing that text are drawn,
    so related examples never sit on both sides (childtuning/subsets.py)."""
    source: str = MISSING
    train_size: int = MISSING
    seed: int = 0
    group: Optional[str] = added_later(None)     # null: pairs drawn one by one (the first resplits)


@dataclass
class BreakdownConfig:
    """A numeric column of the task's files (e.g. SICK's relatedness_score) by whose bins a target
    record of this task also counts its predictions per gold label (`predictions.by_bin`): bins
    [edges[i], edges[i+1]), the last one closed. Evaluation only: no run reads it."""
    column: str = MISSING
    edges: list[float] = MISSING


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
    # evaluation target (childtuning/label_maps.py); the map used is recorded with the target.
    label_maps: dict[str, dict[str, str]] = not_outcome(default_factory=dict)
    breakdown: Optional[BreakdownConfig] = not_outcome(default=None)


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
    # Keep the final model beside the record (childtuning/saved_models.py); what the run computes is
    # the same. null: keep it when the run declares evaluation targets (train.keeps_model).
    save_model: Optional[bool] = not_outcome(default=None)


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
        from . import methods   # deferred: methods import torch, which readers of records (the report) need not
        return methods.id_part(value)
    return fields.id_part(SCHEMAS.get(group), value)


def merge_error(e: OmegaConfBaseException, where: str = "", known: list[str] = (), source: dict | None = None) -> InputError:
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
