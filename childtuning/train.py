"""Entry point: one fine-tuning run from a Hydra config to one JSON run record.

    python -m childtuning.train model=minilm task=rte method=child_tuning_d seed=3
    python -m childtuning.train -m exp=table1_cpu          # a sweep declared in experiments/

A run is a pipeline of named steps, each usable on its own (the benchmarks call them):
validate -> load_data -> tokenize_splits -> build_loaders -> init_model -> build_method ->
loop.train -> build_record -> write. Around it (docs/reliability.md): a complete record is skipped; the
results folder is probed (storage.py), the model looked up offline and the data found (preflight.py)
before any work (from the command line, preflight.py's Hydra callback has checked the same before
Hydra made its folder); the run claims its id (lease.py) so concurrent sweeps run it once; while it works,
preemption signals (signals.py) stop it at a step boundary with a checkpoint; a corrupt record is
set aside and rerun (integrity.py).
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path

import hydra
import torch
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from . import (SCHEMA_VERSION, comparisons, data, hydra_errors, integrity, lease, methods, packing, preflight,
               saved_models, seeding, signals, storage, targets)
from .config import validate
from .integrity import read_complete
from .errors import InputError
from .logger import Logger
from .loop import Interrupted, autocast_for, predict, train
from .models import build_model, build_tokenizer
from .record import (RUNS, TARGETS, artifacts_dir, checkpoint_path, leases_dir, prediction_fields, run_id,
                     runs_dir, uses_packing, versions, write_atomic)
from .threads import threads_for


def device_for(impl) -> torch.device:
    if impl.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(impl.device)


def load_data(cfg) -> dict[str, data.Split]:
    """Read, subsample and check the task data (cheap; runs before any model is loaded)."""
    splits = data.load_task(cfg.task, cfg.paths.glue_dir)
    splits["train"] = data.training_subset(splits["train"], cfg.task, cfg.seed)
    for name, split in splits.items():
        if len(split) == 0:
            raise InputError(f"task {cfg.task.name}: the {name} set is empty ({split.source}); "
                             "check the file or task.max_train_samples")
    return splits


def tokenize_splits(cfg, splits: dict[str, data.Split]):
    """The tokenizer and each split's token ids (cached on disk by content)."""
    tokenizer = build_tokenizer(cfg.model, [" ".join(t) for t in splits["train"].texts], cfg.paths.cache)
    features = {s: data.tokenize(splits[s], tokenizer, cfg.trainer.max_length, cfg.paths.cache) for s in splits}
    return tokenizer, features


def collator(cfg, tokenizer, regression: bool):
    """Packed batches where the run packs (record.uses_packing), else padded to the batch's longest
    example (or to max_length with trainer.pad_to_max_length)."""
    multiple = cfg.impl.pad_to_multiple_of
    if uses_packing(OmegaConf.to_container(cfg, resolve=True)):
        return packing.PackedCollator(tokenizer, regression, cfg.trainer.max_length, multiple, cfg.impl.packed_layout)
    return data.Collator(tokenizer, regression, cfg.trainer.max_length if cfg.trainer.pad_to_max_length else None, multiple)


def eval_loader(cfg, tokenizer, features: list[dict], regression: bool) -> data.BatchLoader:
    """Evaluation batches, sorted by length (metrics ignore the order)."""
    return data.BatchLoader(features, cfg.impl.eval_batch_size, collator(cfg, tokenizer, regression), by_length=True)


def build_loaders(cfg, tokenizer, features: dict) -> tuple[data.BatchLoader, data.BatchLoader]:
    """Training batches in the order of the run's "data" stream; dev batches sorted by length."""
    train_loader = data.BatchLoader(features["train"], cfg.trainer.batch_size, collator(cfg, tokenizer, cfg.task.regression),
                                    seeding.generator(cfg.seed, "data"), cfg.impl.progress_bar)
    return train_loader, eval_loader(cfg, tokenizer, features["dev"], cfg.task.regression)


def target_loaders(cfg, tokenizer, target_list: list[targets.Target]) -> list[data.BatchLoader]:
    """Each evaluation target's batches, tokenized with the run's tokenizer (cached by content)."""
    return [eval_loader(cfg, tokenizer, data.tokenize(t.split, tokenizer, cfg.trainer.max_length, cfg.paths.cache),
                        regression=bool(t.task.regression)) for t in target_list]


def keeps_model(cfg) -> bool:
    """trainer.save_model, where null (the default) keeps the final model of a run that declares
    evaluation targets, so that a target added later is scored without training again."""
    return bool(cfg.targets) if cfg.trainer.save_model is None else bool(cfg.trainer.save_model)


def score_targets(cfg, record: dict, target_list: list[targets.Target], model, tokenizer, device,
                  model_from: str) -> list[dict]:
    """Score `model` (eval mode) on each target and write each target record; returns them."""
    autocast, _ = autocast_for(cfg.impl.precision, device)
    written = []
    for target, loader in zip(target_list, target_loaders(cfg, tokenizer, target_list)):
        scored = targets.score(model, target, loader, device, autocast, predict)
        written.append(targets.write(cfg.paths.results, record, target, scored, model_from, device))
        print(f"{record['run_id']}: target {target.name} {target.task.main_metric} "
              f"{scored['metrics'][target.task.main_metric]:.2f} ({model_from})", flush=True)
    return written


def score_from_kept_model(cfg, record: dict, entries) -> list[dict]:
    """Score a finished run's kept model on the targets `entries` (no training): a target added
    after the run, or one whose record was lost. Raises InputError (naming the fix) when the run
    kept no model."""
    saved = saved_models.resolve(cfg.paths.results, f"{record['experiment']}/{record['run_id']}")
    target_list = targets.load(cfg, entries)             # bad target data fails before the model loads
    torch.set_num_threads(threads_for(cfg.impl.num_threads))
    device = device_for(cfg.impl)
    model, tokenizer = saved_models.load(saved)
    model.to(device)
    return score_targets(cfg, record, target_list, model, tokenizer, device,
                         f"kept model {saved.ref} (sha256 checked)")


def init_model(cfg, tokenizer, device: torch.device) -> torch.nn.Module:
    """The pretrained encoder with a new head, initialised from the run's "init" stream."""
    seeding.seed_global(cfg.seed, "init")
    task = methods.TaskInfo.of(cfg.task)
    model = build_model(cfg.model, task.num_labels, task.regression, tokenizer).to(device)
    if uses_packing(OmegaConf.to_container(cfg, resolve=True)) and not packing.packable(model):
        raise InputError(f"model {cfg.model.name} cannot run packed batches (attention implementation "
                         f"{model.config._attn_implementation!r}); use impl.packing=false")
    return model


def build_method(cfg) -> methods.Method:
    cache = cfg.paths.cache if cfg.impl.fisher_cache else None    # reused results, e.g. Fisher passes
    return methods.build(cfg.method, cfg.seed, methods.TaskInfo.of(cfg.task), cache)


def build_record(cfg, rid: str, splits: dict, device: torch.device, started: str, state: dict | None,
                 error: str | None, method: methods.Method, artifacts: dict) -> dict:
    """The run record. `state`: what loop.train returned, or None when the run failed with `error`.
    Evaluation targets are not in it: each has a target record (childtuning/targets.py)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    history = state["history"] if state else []
    final = history[-1] if history else None
    main = cfg.task.main_metric
    status, reason = (state["status"], state["reason"]) if state else ("failed", error)
    if status == "ok" and final and final["degenerate"]:
        status, reason = "degenerate", final["degenerate"]
    best = max(history, key=lambda h: h["metrics"][main], default=None)
    return {
        "schema_version": SCHEMA_VERSION, "run_id": rid, "experiment": cfg.experiment,
        # the comparisons its experiment declared when it ran (childtuning/comparisons.py)
        "comparisons_digest": comparisons.digest(OmegaConf.select(cfg, "table.comparisons")),
        "model": cfg.model.name, "task": cfg.task.name, "method": cfg.method.name, "seed": cfg.seed,
        "method_params": resolved["method"], "hyperparameters": resolved["trainer"],
        "status": status, "reason": reason,
        "metrics": final["metrics"] if final else {},
        "main_metric": {"name": main, "value": final["metrics"][main] if final else None,
                        "checkpoint": "last epoch (paper protocol)" if cfg.trainer.epochs else
                        "none: trainer.epochs=0 records only the method's preparation (no training, no evaluation)"},
        "best_epoch": {"epoch": best["epoch"], "value": best["metrics"][main],
                       "note": "best dev epoch, for reference only; not the headline"} if best else None,
        "history": history, **prediction_fields(final), "steps": state["step"] if state else 0,
        "train_seconds": state["seconds"] if state else None,
        "prepare_seconds": state["prepare_seconds"] if state else None,
        # each time the run went on from a checkpoint (a preemption, a killed node): step and place
        "resumed_from_checkpoint": state.get("resumptions", []) if state else [],
        "method_stats": method.stats() if state else {}, "artifacts": artifacts,
        "data": {s: {"source": splits[s].source, "size": len(splits[s]), "fingerprint": data.fingerprint(splits[s])}
                 for s in splits},
        "device": {"type": device.type, "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                   "precision": cfg.impl.precision, "threads": torch.get_num_threads(), "host": socket.gethostname()},
        "versions": versions(), "started_at": started,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": resolved,
    }


def link_or_copy(source: str, target: str) -> None:
    """A hard link of `source` at `target` (no second copy of a saved model); a copy where linking
    fails (another file system, no link support)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def fresh_artifacts(folder: Path) -> Path:
    """`folder`, emptied: files of an earlier attempt (or links to another experiment's) are
    unlinked, never written through."""
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def reuse_record(cfg, rid: str, record_path: Path) -> dict | None:
    """A complete record of the same run id made by another experiment under the same results
    folder, copied into this experiment (its artifacts hard-linked where the file system allows,
    else copied) and marked `reused_from`; None if there is none. Same id = same configuration of
    everything that decides the outcome. A run writing artifacts removes its folder first
    (`fresh_artifacts`), so a rerun never writes through a link into the other experiment's files."""
    for other in sorted(Path(cfg.paths.results).glob(f"*/{RUNS}/{rid}.json")):
        record = read_complete(other)
        if other == record_path or record is None:
            continue
        if cfg.targets and not (record.get("artifacts") or {}).get("model"):
            continue            # its model is gone: this run's targets could not be scored without training
        source = other.parent.parent.name
        record = {**record, "experiment": cfg.experiment,
                  "comparisons_digest": comparisons.digest(OmegaConf.select(cfg, "table.comparisons")),
                  "reused_from": {"experiment": source, "run_id": rid, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}}
        artifacts = artifacts_dir(other.parent, rid)
        if artifacts.is_dir():
            shutil.copytree(artifacts, fresh_artifacts(artifacts_dir(record_path.parent, rid)),
                            copy_function=link_or_copy)
        record = write_atomic(record_path, record)
        print(f"reuse {rid}: identical run recorded by experiment {source} ({other}); reuse=false reruns it")
        return record
    return None


def run(cfg: DictConfig) -> dict | None:
    """Run (or skip) one configured run; returns its record, or None when another live process
    holds the run (its lease) and is running it now."""
    cfg = validate(cfg)
    rid = run_id(cfg)
    out = runs_dir(cfg.paths.results, cfg.experiment)
    record_path = out / f"{rid}.json"
    existing = read_complete(record_path)
    if existing is not None and not cfg.force:
        return finished(cfg, existing, record_path)
    storage.probe(out)                            # a full or read-only results folder fails here, before any work
    preflight.check_model(cfg)                    # a hub model missing from the cache, before the data is read
    preflight.check_data(cfg)                     # no local file and no readable hub copy: refused before any work
    torch.set_num_threads(threads_for(cfg.impl.num_threads))   # null: the cores this process may use (threads.py)
    claim = lease.Lease(leases_dir(out), rid, cfg.lease.timeout_s, cfg.lease.heartbeat_s) \
        if cfg.lease.enabled else None
    owner = claim.acquire() if claim else None
    if owner is not None:
        print(f"skip {rid}: leased by {owner.describe()}: another sweep is running it (a lease not renewed for "
              f"lease.timeout_s={cfg.lease.timeout_s:g} s is taken over)")
        return None
    try:
        with signals.Preemption() as preemption:
            return run_claimed(cfg, rid, record_path, claim, preemption)
    finally:
        if claim:
            claim.release()


def finished(cfg, record: dict, record_path: Path) -> dict:
    """A run with a complete record is not run again; its declared targets that have no target
    record yet are scored from its kept model."""
    clear_leftovers(cfg, record["run_id"], record_path.parent)
    todo = targets.missing(cfg.paths.results, cfg.experiment, record["run_id"], cfg.targets)
    if todo and record["status"] in ("ok", "degenerate"):
        storage.probe(record_path.parent.parent / TARGETS)
        score_from_kept_model(cfg, record, todo)
    print(f"skip {record['run_id']}: complete record at {record_path} (force=true reruns it)")
    return record


def clear_leftovers(cfg, rid: str, out: Path) -> None:
    """A run killed after its record was written (scoring its targets, or in the instant before it
    removes its checkpoint and lease) leaves its lease and perhaps its last checkpoint; a relaunch
    skips the run, so they are removed here, once no live process holds the run's lease (a live one
    may be a force=true rerun, whose checkpoint is in use)."""
    if cfg.lease.enabled:
        lease.clear_stale(leases_dir(out), rid, cfg.lease.timeout_s)
        owner = lease.live_owner(leases_dir(out), rid, cfg.lease.timeout_s)
        if owner is not None and owner.token not in lease.held_tokens():
            return
    checkpoint = checkpoint_path(out, rid)
    if checkpoint.exists():
        checkpoint.unlink(missing_ok=True)
        print(f"{rid}: removed {checkpoint}, left by a run killed after writing its record")


def run_claimed(cfg, rid: str, record_path: Path, claim: lease.Lease | None, preemption: signals.Preemption) -> dict | None:
    """The run, once this process holds its lease: the record is looked at again (another process
    may have finished it meanwhile; a corrupt one is set aside), then the pipeline."""
    out = record_path.parent
    existing, corrupt = integrity.read(record_path)
    if existing is not None and not cfg.force:
        return finished(cfg, existing, record_path)
    if corrupt:
        moved = integrity.set_aside(record_path, corrupt)
        print(f"corrupt record {record_path} ({corrupt}): moved to {moved}; running {rid} again")
    # Resumed from when present; written at epoch ends with trainer.checkpoint, and on a preemption signal.
    checkpoint = checkpoint_path(out, rid)
    for folder, name in ((out, record_path.name), (checkpoint.parent, checkpoint.name)):
        for tmp in folder.glob(f".{name}.tmp*"):     # a killed writer's half file (we hold the lease: no one else writes)
            tmp.unlink(missing_ok=True)
    if cfg.reuse and not cfg.force:
        reused = reuse_record(cfg, rid, record_path)
        if reused is not None:
            return finished(cfg, reused, record_path)
    print(f"start {rid} on {socket.gethostname()} pid {os.getpid()}", flush=True)
    splits = load_data(cfg)                       # bad data fails here, before the model loads
    target_list = targets.load(cfg)
    device = device_for(cfg.impl)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tokenizer, features = tokenize_splits(cfg, splits)
    train_loader, dev_loader = build_loaders(cfg, tokenizer, features)
    model = init_model(cfg, tokenizer, device)
    method = build_method(cfg)
    log = Logger(cfg.logger, rid, OmegaConf.to_container(cfg, resolve=True))

    def stop() -> str | None:
        return preemption.requested() or (claim.lost() if claim else None)

    state, error = None, None
    try:
        state = train(model, method, train_loader, dev_loader, cfg, device, log, checkpoint, stop)
    except Interrupted as e:     # stopped at a step boundary: preempted (requeue), or the lease was taken over
        log.finish({"status": "interrupted"})
        if preemption.requested():
            raise preemption.preempted(f"{rid}: {e}") from None
        print(f"{rid}: {e}; no record written (another process holds this run now)")
        return None
    except InputError:           # bad input found only now (e.g. a method's refusal in prepare): no record
        raise
    except Exception as e:  # noqa: BLE001 - recorded as a failed run, never dropped
        traceback.print_exc()
        error, state = f"{type(e).__name__}: {e}", None
    if claim and claim.lost():
        print(f"{rid}: {claim.lost()}; no record written (the new owner writes it)")
        return None
    folder = fresh_artifacts(artifacts_dir(out, rid)) if state else None
    artifacts = method.save_artifacts(folder) if state else {}
    if state and keeps_model(cfg):                # the final model: for probes and later evaluation targets
        artifacts["model"] = saved_models.save(model, tokenizer, folder)
    record = build_record(cfg, rid, splits, device, started, state, error, method, artifacts)
    try:
        record = write_atomic(record_path, record)
    except OSError as e:                          # full disk, quota: the old file stays, the record is printed
        raise storage.unwritten(record, record_path, e) from None
    if checkpoint.exists():
        checkpoint.unlink()
    if target_list and state and state["status"] == "ok":    # the final model, in eval mode, on each target
        score_targets(cfg, record, target_list, model, tokenizer, device, "end of run")
    log.finish({"status": record["status"], **record["metrics"]})
    value = record["main_metric"]["value"]
    print(f"{rid}: {record['status']}{' (' + record['reason'] + ')' if record['reason'] else ''} | "
          f"{cfg.task.main_metric} {value if value is None else round(value, 2)} | {record['steps']} steps in "
          f"{record['train_seconds'] or 0:.0f}s | {record_path}", flush=True)
    if preemption.requested():   # the signal came after the last step: the record is safe, now exit as asked
        raise preemption.preempted(f"{rid}: finished and recorded before the signal could stop it")
    return record


def in_sweep() -> bool:
    """Whether this process runs a job of a Hydra multirun (-m)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def remove_run_folder() -> None:
    """Remove the folder Hydra made for this single run (its config copy), and the experiment's
    hydra/ folder if that leaves it empty: a refused run leaves nothing under paths.results."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    folder = Path(HydraConfig.get().runtime.output_dir)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.rmdir()    # only when empty
    except OSError:
        pass


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    try:
        record = run(cfg)
    except signals.Preempted as e:
        print(f"preempted: {e}", file=sys.stderr, flush=True)
        e.exit()                 # submitit's requeue, or exit 128 + signal number
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        if in_sweep():           # a job of a sweep: Hydra marks it failed and the sweep goes on
            raise
        remove_run_folder()
        sys.exit(2)
    return record["main_metric"]["value"] if record else None


def cli() -> None:
    """`python -m childtuning.train`: main(), with Hydra's own refusals of the command line (an
    unknown key, a missing config file) explained with the likely fix and exiting 2, as the
    harness's own errors do. HYDRA_FULL_ERROR=1 set by the user keeps Hydra's traces."""
    if os.environ.get("HYDRA_FULL_ERROR"):
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"          # Hydra raises its errors here instead of printing them and exiting 1
    try:
        main()
    except HydraException as e:
        print(f"error: {hydra_errors.explain(e, sys.argv[1:])}", file=sys.stderr, flush=True)
        sys.exit(2)
    except Exception:  # noqa: BLE001 - anything else: its trace, and exit 1 as Hydra would
        traceback.print_exc()
        sys.exit(1)
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


if __name__ == "__main__":
    cli()
