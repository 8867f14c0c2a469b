"""The probe command: every (encoder, target task, head seed) of a plan, each probe one record.

Order of work: settings and target data are read and checked, then every source run is found
and its saved model verified (sources.plan), all before any model is loaded; bad input raises
InputError and writes no record. Then per encoder: load it once, compute each target split's
features once (features.cached), train one head per head seed on them, write each record. A
probe whose record exists and is complete is skipped (force=true reruns it), so the command is
resumable; an encoder whose probes all exist is not even loaded.
"""
from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import torch
from omegaconf import OmegaConf

from .. import data, integrity, methods, saved_models, seeding, sweep
from ..config import check_impl
from ..schemas import ImplConfig, PathsConfig
from ..tasks import load_task_config
from ..errors import InputError
from ..loop import autocast_for
from ..models import build_model, build_tokenizer
from ..record import write_atomic
from ..threads import threads_for
from ..train import device_for
from . import config, records, sources
from .features import FrozenEncoder, cached
from .head import score, standardizer, train_head


@dataclass
class Target:
    """A target task: its config, its train and dev splits (read and checked up front)."""
    task: object
    resolved: dict
    info: methods.TaskInfo
    splits: dict


def check_labels(task, split: data.Split) -> None:
    """A head must be able to learn the target's label kind from its training set."""
    if task.regression:
        values = np.asarray(split.labels, dtype=float)
        if not np.all(np.isfinite(values)) or np.std(values) == 0:
            raise InputError(f"target {task.name}: a regression head needs finite, non-constant scores in its training "
                             f"set ({split.source}); fix the data or the task's `regression`")
        return
    if len(task.labels) < 2 or len(set(split.labels)) < 2:
        raise InputError(f"target {task.name}: a classification head needs at least two classes in its training set "
                         f"({split.source} has {sorted(set(split.labels))} of labels {list(task.labels)}); "
                         "probe another task or fix the data")


def load_targets(names, glue_dir) -> list[Target]:
    """Each target's task file and data (train: the head's training set, a task file's
    max_train_samples applying with subsample seed task.subsample_seed or 0; dev: its score)."""
    out = []
    for name in names:
        task = load_task_config(name)
        splits = data.load_task(task, glue_dir)
        splits["train"] = data.training_subset(splits["train"], task, 0)
        for split_name, split in splits.items():
            if len(split) == 0:
                raise InputError(f"target {name}: the {split_name} set is empty ({split.source})")
        check_labels(task, splits["train"])
        out.append(Target(task, OmegaConf.to_container(task, resolve=True), methods.TaskInfo.of(task), splits))
    return out


def load_encoder(source, targets: list[Target], settings, impl, cache_dir, device) -> FrozenEncoder:
    """The source's encoder, frozen: a saved run's model, or the pretrained model built as a run
    starts it (a tiny random model from the "init" stream of seed 0)."""
    if source.saved is not None:
        model, tokenizer = saved_models.load(source.saved)
    else:
        model_cfg = OmegaConf.create(source.model)
        texts = [" ".join(t) for target in targets for t in target.splits["train"].texts[:400]]
        tokenizer = build_tokenizer(model_cfg, texts, cache_dir)
        seeding.seed_global(0, "init")
        model = build_model(model_cfg, 2, False, tokenizer)
    autocast, _ = autocast_for(impl.precision, device)
    return FrozenEncoder(model, tokenizer, settings.representation, device, autocast)


def probe_source(source, targets, todo, settings, impl, paths, experiment, device) -> list[dict]:
    """Every pending probe of one encoder: `todo` maps (target index, head seed) -> probe id."""
    encoder = load_encoder(source, targets, settings, impl, paths.cache, device)
    written = []
    for t_index, target in enumerate(targets):
        seeds = [(seed, pid) for (i, seed), pid in todo.items() if i == t_index]
        if not seeds:
            continue
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        feats, info, error, stats = {}, {}, None, None
        try:
            collate = data.Collator(encoder.tokenizer, target.task.regression, None, impl.pad_to_multiple_of)
            for split in ("train", "dev"):
                t0 = time.perf_counter()
                feats[split], hit = cached(encoder, target.splits[split], settings.max_length, paths.cache, collate,
                                           impl.eval_batch_size, impl.precision, impl.pad_to_multiple_of)
                info[split] = {"cached": hit, "seconds": time.perf_counter() - t0, "dim": encoder.dim}
            if settings.standardize:            # the target's training statistics, shared by its head seeds
                stats = standardizer(feats["train"], torch.tensor(target.splits["train"].labels), target.task.regression)
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - recorded as failed probes, never dropped
            traceback.print_exc()
            error = f"{type(e).__name__}: {e}"
        for seed, pid in seeds:
            result, why = None, error
            if error is None:
                try:
                    train_x, dev_x = feats["train"], feats["dev"]
                    labels = torch.tensor(target.splits["train"].labels)
                    dev_labels, task = np.asarray(target.splits["dev"].labels), target.task
                    result = train_head(lambda idx, x=train_x: x[idx], labels, encoder.dim, task, seed, settings,
                                        encoder.init_std,
                                        lambda head, x=dev_x, y=dev_labels, t=task: score(head, x, y, t), stats)
                except Exception as e:  # noqa: BLE001
                    traceback.print_exc()
                    why = f"{type(e).__name__}: {e}"
            record = records.build(pid, experiment, source, target, seed, settings, result, why, info, device,
                                   impl.precision, started)
            write_atomic(records.probes_dir(paths.results, experiment) / f"{pid}.json", record)
            value = record["main_metric"]["value"]
            print(f"{pid}: {record['status']}{' (' + record['reason'] + ')' if record['reason'] else ''} | "
                  f"{target.task.name} {target.task.main_metric} {value if value is None else round(value, 2)}")
            written.append(record)
    return written


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """(probe.* overrides without the prefix, every other override for the run config)."""
    probe = [a[len("probe."):] for a in argv if a.startswith("probe.")]
    return probe, [a for a in argv if not a.startswith("probe.")]


def run(argv: list[str]) -> dict:
    """Probe every encoder of the plan that `argv` (Hydra-style overrides, e.g. exp=task_transfer_cpu
    paths.results=... probe.head_seeds=[1,2]) composes; returns counts of written and skipped probes."""
    probe_args, overrides = split_overrides(argv)
    try:
        cfg = sweep.compose(overrides)
    except Exception as e:  # noqa: BLE001 - Hydra's own errors (unknown option, bad override): bad input
        raise InputError(f"cannot compose {' '.join(overrides) or 'the default config'}: {e}") from None
    settings = config.load(OmegaConf.select(cfg, "probe"), probe_args)
    paths = OmegaConf.merge(OmegaConf.structured(PathsConfig), cfg.paths)
    impl = OmegaConf.merge(OmegaConf.structured(ImplConfig), cfg.impl)
    check_impl(impl)
    targets = load_targets(settings.targets, paths.glue_dir)         # bad data fails here, before any model
    plan = sources.plan(cfg, overrides, settings, paths.results)      # and missing runs / checksums here
    k, n = config.shard_of(settings)
    plan = plan[k::n]
    folder = records.probes_dir(paths.results, cfg.experiment)
    counts = {"written": 0, "skipped": 0}
    pending = []
    for source in plan:
        todo = {}
        for i, target in enumerate(targets):
            for seed in settings.head_seeds:
                pid = records.probe_id(source, target.resolved, seed, settings, impl.precision)
                path = folder / f"{pid}.json"
                existing, corrupt = records.read(path)
                if existing is not None and not cfg.force:
                    counts["skipped"] += 1
                    continue
                if corrupt:                         # damaged or foreign: kept aside for a person to see, probed again
                    print(f"corrupt probe record {path} ({corrupt}): moved to {integrity.set_aside(path, corrupt)}")
                todo[(i, seed)] = pid
        pending.append((source, todo))
    print(f"probe {cfg.experiment}{f' (shard {k}/{n})' if n > 1 else ''}: {len(plan)} encoder(s) x {len(targets)} target(s) x {len(settings.head_seeds)} "
          f"head seed(s); {counts['skipped']} probe(s) already recorded in {folder}")
    torch.set_num_threads(threads_for(impl.num_threads))    # null: the cores this process may use
    device = device_for(impl)
    for source, todo in pending:
        if todo:
            counts["written"] += len(probe_source(source, targets, todo, settings, impl, paths, cfg.experiment, device))
    return counts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(sys.modules[__package__].__doc__)      # the package's docstring is the command's help
        return 0
    try:
        counts = run(argv)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"done: {counts['written']} probe(s) written, {counts['skipped']} already recorded")
    return 0
