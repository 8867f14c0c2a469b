"""The one training loop every method shares: AdamW, linear schedule, clipping, method hooks,
dev evaluation each epoch, optional per-epoch checkpoints for preempted jobs."""
from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from . import metrics as metrics_lib
from . import seeding


def param_groups(model: torch.nn.Module, no_decay: str, no_decay_names: list[str], weight_decay: float):
    """Two AdamW groups: with and without weight decay.

    by_name: names containing any of `no_decay_names` (official Child-Tuning trainers:
    ["bias", "LayerNorm.weight"], which misses XLNet's `layer_norm`); by_module_type: biases and
    every torch.nn.LayerNorm's weights (transformers 4.7 Trainer, used by the official vanilla runs).
    """
    if no_decay == "by_name":
        skip = {n for n, _ in model.named_parameters() if any(s in n for s in no_decay_names)}
    else:
        norms = {f"{m_name}.{p_name}".lstrip(".") for m_name, m in model.named_modules()
                 if isinstance(m, torch.nn.LayerNorm) for p_name, _ in m.named_parameters(recurse=False)}
        skip = {n for n, _ in model.named_parameters() if n in norms or "bias" in n}
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in params if n not in skip], "weight_decay": weight_decay},
            {"params": [p for n, p in params if n in skip], "weight_decay": 0.0}]


def _adamw_kernel(impl: str) -> dict:
    return {"fused": {"fused": True}, "foreach": {"foreach": True}, "for_loop": {"foreach": False}}[impl]


@torch.no_grad()
def predict(model, loader, device, autocast, regression: bool, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    preds, labels = [], []
    for batch in tqdm(loader, desc="eval", disable=not progress, leave=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast():
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
        preds.append(logits.squeeze(-1) if regression else logits.argmax(-1))
        labels.append(batch["labels"])
    return torch.cat(preds).cpu().numpy(), torch.cat(labels).cpu().numpy()


def evaluate(model, loader, task, device, autocast, progress=False) -> tuple[dict, str | None]:
    preds, labels = predict(model, loader, device, autocast, task.regression, progress)
    scores = metrics_lib.compute(list(task.metrics), preds, labels)
    return scores, metrics_lib.degenerate_reason(preds, task.regression, scores)


def train(model, method, train_loader, dev_loader, cfg, device, log=lambda d, step: None,
          checkpoint_path: Path | None = None) -> dict:
    """Fine-tune `model` with `method`; returns status, metrics per epoch, steps and time."""
    tr, progress = cfg.trainer, cfg.impl.progress_bar
    use_amp = device.type == "cuda" and cfg.impl.precision != "fp32"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.impl.precision)
    autocast = (lambda: torch.autocast("cuda", dtype=dtype)) if use_amp else contextlib.nullcontext
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and dtype == torch.float16)

    started = time.perf_counter()
    method.prepare(model, train_loader, device)      # e.g. the Fisher pass; before the optimizer
    prepare_seconds = time.perf_counter() - started
    optimizer = torch.optim.AdamW(
        param_groups(model, method.cfg.no_decay, method.cfg.no_decay_names, tr.weight_decay),
        lr=tr.lr, betas=(tr.adam_beta1, tr.adam_beta2), eps=tr.adam_eps, **_adamw_kernel(tr.optimizer_impl))
    total_steps = tr.epochs * len(train_loader)
    warmup_ratio = tr.warmup_ratio if method.cfg.warmup_ratio is None else method.cfg.warmup_ratio
    warmup_steps = math.ceil(total_steps * warmup_ratio)   # transformers 4.7 get_warmup_steps: ceil
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    # Dropout draws from the global RNG: reseed after prepare() so every method sees the same.
    seeding.seed_global(cfg.seed, "dropout")
    state = {"epoch": 0, "step": 0, "history": [], "status": "ok", "reason": None, "seconds": 0.0}
    if checkpoint_path is not None and checkpoint_path.is_file():
        state = _load_checkpoint(checkpoint_path, model, optimizer, scheduler, method, train_loader)
        print(f"resumed from {checkpoint_path} after epoch {state['epoch']}")
    clock = time.perf_counter() - state["seconds"]

    for epoch in range(state["epoch"], tr.epochs):
        model.train()
        losses = []
        bar = tqdm(train_loader, desc=f"train {epoch + 1}/{tr.epochs}", disable=not progress, leave=False)
        for batch in bar:
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast():
                outputs = model(**batch)
                loss = method.loss(model, batch, outputs)
            if not torch.isfinite(loss):
                state.update(status="diverged", reason=f"non-finite loss {loss.item()} at step {state['step'] + 1}")
                break
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), tr.max_grad_norm)
            method.before_optimizer_step(model)        # Child-Tuning masks go here
            scaler.step(optimizer)
            scaler.update()
            method.after_optimizer_step(model, optimizer)
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if state["step"] % 50 == 0:
                log({"train/loss": losses[-1], "train/lr": scheduler.get_last_lr()[0]}, state["step"])
        scores, degenerate = evaluate(model, dev_loader, cfg.task, device, autocast, progress)
        state["history"].append({"epoch": epoch + 1, "step": state["step"], "metrics": scores,
                                 "train_loss": float(np.mean(losses)) if losses else None,
                                 "degenerate": degenerate})
        log({f"dev/{k}": v for k, v in scores.items()} | {"epoch": epoch + 1}, state["step"])
        state["epoch"] = epoch + 1
        if state["status"] != "ok":
            break
        if checkpoint_path is not None and epoch + 1 < tr.epochs:
            state["seconds"] = time.perf_counter() - clock
            _save_checkpoint(checkpoint_path, state, model, optimizer, scheduler, method, train_loader)
    state["seconds"] = time.perf_counter() - clock
    state["prepare_seconds"] = prepare_seconds
    return state


def _rng_state(train_loader) -> dict:
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": np.random.get_state(), "data": train_loader.generator.get_state()}


def _save_checkpoint(path: Path, state, model, optimizer, scheduler, method, train_loader) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"state": state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "method": method.state_dict(), "rng": _rng_state(train_loader)}, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, model, optimizer, scheduler, method, train_loader) -> dict:
    ckpt = torch.load(path, weights_only=False)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    method.load_state_dict(ckpt["method"])
    rng = ckpt["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None:
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    train_loader.generator.set_state(rng["data"])
    return ckpt["state"]
