"""The one training loop every method shares: the method's optimizer and schedule, clipping,
method hooks, dev evaluation each epoch; checkpoints at epoch ends (optional) and at any step
boundary where a preempted run is asked to stop, resumed bit for bit."""
from __future__ import annotations

import contextlib
import os
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import metrics as metrics_lib
from . import packing, seeding
from .storage import StorageError, explain

# impl.precision: autocast dtype on GPU (fp32 = no autocast; CPU runs are always fp32)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_for(precision: str, device: torch.device):
    """A context-manager factory for the forward passes, and the gradient scaler fp16 needs."""
    dtype = PRECISIONS[precision]
    use_amp = device.type == "cuda" and dtype is not None
    autocast = (lambda: torch.autocast("cuda", dtype=dtype)) if use_amp else contextlib.nullcontext
    return autocast, torch.amp.GradScaler("cuda", enabled=use_amp and dtype == torch.float16)


def split_loss(result) -> tuple[torch.Tensor, dict]:
    """A method's loss hook returns a loss, or (loss, {name: extra scalar for the log})."""
    return result if isinstance(result, tuple) else (result, {})


def train_step(model, method, batch: dict, optimizer, scheduler, scaler, autocast, max_grad_norm: float):
    """One optimizer step: forward -> method loss -> backward -> clip -> method (masks) ->
    optimizer -> method -> schedule. Returns (loss, extra terms); a non-finite loss returns
    before backward, leaving weights and optimizer untouched."""
    with autocast():
        outputs = packing.forward(model, batch)     # packed or padded batch alike
        loss, terms = split_loss(method.loss(model, batch, outputs))
    if not torch.isfinite(loss):
        return loss, terms
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    method.before_optimizer_step(model)        # Child-Tuning masks go here
    scale = scaler.get_scale() if scaler.is_enabled() else None
    scaler.step(optimizer)
    scaler.update()
    # fp16: the scaler skips the step of overflowed gradients and lowers its scale; a method's
    # correction of the step (giving back a decay the step took) must be skipped with it. Reading
    # the scale waits for the GPU once per fp16 step; fp32 and bf16 runs have no scaler and skip this.
    if scale is None or scaler.get_scale() >= scale:
        method.after_optimizer_step(model, optimizer)
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss, terms


@torch.no_grad()
def predict(model, loader, device, autocast, regression: bool, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    preds, labels = [], []
    for batch in tqdm(loader, desc="eval", disable=not progress, leave=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast():
            logits = packing.forward(model, {k: v for k, v in batch.items() if k != "labels"}).logits.float()
        preds.append(logits.squeeze(-1) if regression else logits.argmax(-1))
        labels.append(batch["labels"])
    return torch.cat(preds).cpu().numpy(), torch.cat(labels).cpu().numpy()


def evaluate(model, loader, task, device, autocast, progress=False) -> tuple[dict, str | None, dict]:
    """The split's metrics, why its predictions are degenerate (or None), and how they are distributed."""
    preds, labels = predict(model, loader, device, autocast, task.regression, progress)
    scores = metrics_lib.compute(list(task.metrics), preds, labels)
    return (scores, metrics_lib.degenerate_reason(preds, task.regression, scores),
            metrics_lib.prediction_summary(preds, labels, task.regression, getattr(task, "labels", None)))


class Interrupted(Exception):
    """Training stopped at a step boundary because `stop()` asked (a preemption signal, a lost
    lease); the checkpoint, if any, holds everything needed to go on from there."""


def train(model, method, train_loader, dev_loader, cfg, device, log=lambda d, step: None,
          checkpoint_path: Path | None = None, stop=lambda: None) -> dict:
    """Fine-tune `model` with `method`; returns status, metrics per epoch, steps and time.

    `checkpoint_path`: resume from the checkpoint there if one exists, save one there at each
    epoch end when trainer.checkpoint, and whenever `stop()` returns a reason (checked after every
    step and every epoch): then raise Interrupted."""
    tr, progress = cfg.trainer, cfg.impl.progress_bar
    autocast, scaler = autocast_for(cfg.impl.precision, device)

    started = time.perf_counter()
    method.prepare(model, train_loader, device)      # e.g. the Fisher pass; before the optimizer
    prepare_seconds = time.perf_counter() - started
    optimizer, scheduler = method.configure_optimizer(model, tr, tr.epochs * len(train_loader))
    # Dropout draws from the global RNG: reseed after prepare() so every method sees the same.
    seeding.seed_global(cfg.seed, "dropout")
    state = {"epoch": 0, "step": 0, "history": [], "status": "ok", "reason": None, "seconds": 0.0}
    if checkpoint_path is not None and checkpoint_path.is_file():
        state = _load_checkpoint(checkpoint_path, model, optimizer, scheduler, scaler, method, train_loader)
        where = f"{state['partial']['batches']} batches into epoch {state['epoch'] + 1}" if state.get("partial") \
            else f"after epoch {state['epoch']}"
        print(f"resumed from {checkpoint_path} at step {state['step']}, {where}")
        # Kept in the state (so in later checkpoints too): the record lists every resumption.
        state["resumptions"] = state.get("resumptions", []) + [{"step": state["step"], "where": where}]
    clock = time.perf_counter() - state["seconds"]

    def save(partial: dict | None) -> None:
        state["seconds"] = time.perf_counter() - clock
        _save_checkpoint(checkpoint_path, {**state, "partial": partial}, model, optimizer, scheduler, scaler,
                         method, train_loader)

    def check_stop(partial: dict | None) -> None:
        reason = stop()
        if reason is None:
            return
        where = "no progress to keep"
        if checkpoint_path is not None and state["step"] > 0:
            save(partial)
            where = f"checkpoint {checkpoint_path} at step {state['step']}"
        raise Interrupted(f"{reason}: stopped at step {state['step']} ({where})")

    check_stop(state.get("partial"))
    for epoch in range(state["epoch"], tr.epochs):
        model.train()
        # Where this epoch stands: batches done, their losses, and the data stream's state before
        # the epoch's order was drawn (a resumed epoch draws the same order and skips the done ones).
        generator = train_loader.generator
        part = state.pop("partial", None) or {"batches": 0, "losses": [], "extras": {},
                                               "data": generator.get_state() if generator is not None else None}
        if generator is not None:
            generator.set_state(part["data"])
        losses, extras = part["losses"], defaultdict(list, part["extras"])
        bar = tqdm(train_loader.batches(skip=part["batches"]), desc=f"train {epoch + 1}/{tr.epochs}",
                   total=len(train_loader), initial=part["batches"], disable=not progress, leave=False)
        for batch in bar:
            batch = {k: v.to(device) for k, v in batch.items()}
            loss, terms = train_step(model, method, batch, optimizer, scheduler, scaler, autocast, tr.max_grad_norm)
            if not torch.isfinite(loss):
                state.update(status="diverged", reason=f"non-finite loss {loss.item()} at step {state['step'] + 1}")
                break
            state["step"] += 1
            part["batches"] += 1
            losses.append(loss.item())
            for name, value in terms.items():
                extras[name].append(float(value))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if state["step"] % 50 == 0:
                log({"train/loss": losses[-1], "train/lr": scheduler.get_last_lr()[0]}, state["step"])
            check_stop({**part, "extras": dict(extras)})
        scores, degenerate, predictions = evaluate(model, dev_loader, cfg.task, device, autocast, progress)
        entry = {"epoch": epoch + 1, "step": state["step"], "metrics": scores,
                 "train_loss": float(np.mean(losses)) if losses else None, "degenerate": degenerate,
                 "predictions": predictions}
        if extras:
            entry["loss_terms"] = {name: float(np.mean(v)) for name, v in sorted(extras.items())}
        state["history"].append(entry)
        log({f"dev/{k}": v for k, v in scores.items()} | {"epoch": epoch + 1}, state["step"])
        state["epoch"] = epoch + 1
        if state["status"] != "ok":
            break
        if epoch + 1 < tr.epochs:
            if checkpoint_path is not None and tr.checkpoint:
                save(None)
            check_stop(None)
    state.pop("partial", None)
    state["seconds"] = time.perf_counter() - clock
    state["prepare_seconds"] = prepare_seconds
    return state


def _rng_state(train_loader) -> dict:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": np.random.get_state(), "python": random.getstate(),
            "data": train_loader.generator.get_state() if train_loader.generator is not None else None}


def _save_checkpoint(path: Path, state, model, optimizer, scheduler, scaler, method, train_loader) -> None:
    """Everything a resumed run needs to continue bit for bit, written atomically. A file system
    that refuses it (full, quota) is a StorageError: no record, the run can be relaunched."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state": state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "method": method.state_dict(),
                    "rng": _rng_state(train_loader)}, tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise StorageError(f"could not save the checkpoint {path}: {e.strerror or e}; {explain(e)}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _load_checkpoint(path: Path, model, optimizer, scheduler, scaler, method, train_loader) -> dict:
    ckpt = torch.load(path, weights_only=False)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    method.load_state_dict(ckpt["method"])
    rng = ckpt["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None:
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    if "python" in rng:
        random.setstate(rng["python"])
    if rng["data"] is not None:
        train_loader.generator.set_state(rng["data"])
    return ckpt["state"]
