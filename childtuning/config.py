"""A run's config: composed from conf/ as the runner composes it, merged onto its typed schemas
(childtuning/schemas.py) and checked before any expensive work, every error naming the fix. Each
method checks its own config (`Method.check`); allowed values of a switch are declared once, by
the module that uses them.
"""
from __future__ import annotations

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import REPO_ROOT, families, hints, loop, methods, optim, packing, sweep, targets, tuning  # noqa: F401 (sweep: method combinations; tuning: ${selected:...})
from .errors import InputError, check
from .models import MODEL_SOURCES
from .schemas import SCHEMAS, RunConfig, id_part, merge_error  # noqa: F401 (SCHEMAS, id_part: used as config.*)
from .tasks import check_task, load_task_config  # noqa: F401 (load_task_config: used as config.*)


def compose(*overrides: str, config_dir=None) -> DictConfig:
    """The run config for command-line `overrides`, composed from conf/ (or `config_dir`) as
    `python -m childtuning.train` composes it (not yet validated)."""
    with initialize_config_dir(config_dir=str(config_dir or REPO_ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


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
        raise merge_error(e, known=hints.flat_keys(OmegaConf.to_container(schema)),
                          source={"task": f"conf/task/{task}.yaml" if task else None}) from None
    missing = sorted(OmegaConf.missing_keys(merged))
    check(not missing, f"config value(s) missing: {', '.join(missing)}. Each needs a value, from its group's file "
                       "under conf/ or an override such as method.keep_ratio=0.3")
    return merged


def check_impl(impl: DictConfig) -> None:
    """The checks of `impl` (how a run executes), for a fine-tuning run and a probe alike."""
    check(impl.precision in loop.PRECISIONS, f"impl.precision={impl.precision!r}; use one of {list(loop.PRECISIONS)}")
    check(impl.packed_layout in packing.LAYOUTS,
          f"impl.packed_layout={impl.packed_layout!r}; use one of {list(packing.LAYOUTS)}")
    check(impl.pad_to_multiple_of >= 1, f"impl.pad_to_multiple_of={impl.pad_to_multiple_of}: use 1 (no rounding) or more, e.g. 8 on a GPU")
    check(impl.device in ("auto", "cpu", "cuda") or impl.device.startswith("cuda:"),
          f"impl.device={impl.device!r}; use auto, cpu or cuda")


def check_family(md: DictConfig, impl: DictConfig) -> None:
    """The model's family (childtuning/families/) is known, or the run asks for nothing that needs
    it (impl.packing=false); the model file's padding side is its family's."""
    family = families.find(md.architecture)
    where = f"model {md.name} (conf/model/{md.name}.yaml, architecture: {md.architecture})"
    check(family is not None or not impl.packing,
          f"{where}: the harness has no model family {md.architecture!r}: add {families.file_for(md.architecture)} "
          "(one file, like the others there), or run without packed batches with impl.packing=false")
    check(family is None or md.padding_side == family.padding_side,
          f"{where}: padding_side {md.padding_side!r}, but models of the {md.architecture} family pad on the "
          f"{family.padding_side if family else ''} ({families.file_for(md.architecture)}); fix the model file")


def validate(cfg: DictConfig) -> DictConfig:
    """Return the config merged onto its typed schema; raise InputError naming the fix."""
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
    check_family(md, impl)
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
    merged.targets = targets.resolve(merged.task, list(merged.targets) + list(merged.targets_by_task.get(merged.task.name, [])))
    merged.targets_by_task = {}          # folded into targets (the explicit form is what the record keeps)
    return merged
