"""Wall time of our runner against `transformers.Trainer`: vanilla MiniLM fine-tuning on MRPC / RTE.

Both sides fine-tune the pip-shipped all-MiniLM-L6-v2 with a fresh 2-class head on the same
training and dev examples (read with `childtuning.data.load_task`, subsampled the same way when
--max-train-samples is given), with the same hyper-parameters: batch 16, lr 4e-5, linear schedule
with 10% warm-up, weight decay 0.01, seed 1, --epochs epochs, dev batch 64, CPU, the same number
of torch threads (recorded). The only intended difference is the batch layout:

* ours: `childtuning.train.run` with its defaults: packed batches (each batch's examples laid end
  to end, in the default `impl.packed_layout`; `--no-packing`: dynamic padding, each batch padded to
  its own longest example) and the official AdamW (adamw_hf, fused);
* Trainer: every example padded to 128 tokens (`padding="max_length"`, `default_data_collator`),
  as `run_glue.py` and the official Child-Tuning code do by default.

What is timed (model loading, tokenisation and building the data are excluded on both sides):

* ours: `record["train_seconds"]` from the run record, i.e. `childtuning.loop.train`: optimizer and
  schedule set-up, every training step, and the dev evaluation after each epoch (metrics included);
* Trainer: `trainer.train()` (optimizer/accelerator set-up and every training step, no saving, no
  logging, no evaluation during training) plus one `trainer.evaluate()` on dev per the same
  protocol as ours, which evaluates once after each epoch. With --epochs > 1 the Trainer is
  evaluated only once at the end, so it is timed with one dev pass against our one per epoch.

Also reported, untimed in the ratio: each side's total wall time including model load and
tokenisation (`*_total_s`), and how many token positions each side's training batches hold.

Both sides run in one process, one after the other; the order alternates per task (first task:
ours then Trainer; second: Trainer then ours, and so on), printed and recorded as `order`. Before
anything is timed, one untimed warm-up (a MiniLM training step and a dev-size forward pass) takes
the process's one-time start-up costs (kernel and allocator initialisation) off whichever side
runs first.
The targets (ratio <= 0.45 on MRPC, <= 0.6 on RTE: issue 12) are only reported, never asserted.

On a GPU (`--device cuda`, issue 31: target ratio <= 0.5 on both) both sides run in --precision
(bf16 autocast) and the Trainer gets the speed settings its documentation recommends for one GPU
(the "efficient training on a single GPU" guide): `bf16`, `tf32`, the fused AdamW
(`optim="adamw_torch_fused"`), and, with `--trainer-padding dynamic`, each batch padded to its own
longest example rounded up to 8 (`DataCollatorWithPadding(pad_to_multiple_of=8)`) with
`group_by_length=True` (batches of similar lengths). Left out: `torch_compile` (its compilation
would be timed inside a one-epoch run) and data-loader workers (the examples are tokenised
beforehand). Ours runs with `impl.device=cuda`, --precision and --pad-to-multiple-of.

`Trainer` in transformers 5.x needs the `accelerate` package (in the project's `dev` extras).

    python benchmarks/run_vs_trainer.py [--tasks mrpc rte] [--epochs 1] [--max-train-samples N]
                                        [--glue-dir DIR]
    python benchmarks/run_vs_trainer.py --device cuda --precision bf16 --pad-to-multiple-of 8 \
                                        --no-packing --trainer-padding dynamic

The last line printed is one JSON object with the times, ratios and dev scores per task.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import childtuning.train  # noqa: E402
from childtuning.config import compose, validate  # noqa: E402
from childtuning.models import minilm_path  # noqa: E402

TARGETS = {"cpu": {"mrpc": 0.45, "rte": 0.6}, "cuda": {"mrpc": 0.5, "rte": 0.5}}   # issues 12 and 31
MAX_LENGTH = 128
BATCH, EVAL_BATCH, LR, WARMUP, WEIGHT_DECAY, SEED = 16, 64, 4e-5, 0.1, 0.01, 1


def compose_cfg(task: str, epochs: int, glue_dir: str | None, workdir: str, max_train: int | None, threads: int,
                packing: bool = True, device: str = "cpu", precision: str = "fp32", multiple_of: int = 1):
    overrides = ["model=minilm", f"task={task}", "method=vanilla", f"seed={SEED}",
                 f"trainer.epochs={epochs}", f"trainer.batch_size={BATCH}", f"trainer.lr={LR}",
                 f"trainer.warmup_ratio={WARMUP}", f"trainer.weight_decay={WEIGHT_DECAY}",
                 f"trainer.max_length={MAX_LENGTH}", "trainer.pad_to_max_length=false",
                 f"impl.eval_batch_size={EVAL_BATCH}", f"impl.num_threads={threads}", f"impl.device={device}",
                 f"impl.precision={precision}", f"impl.pad_to_multiple_of={multiple_of}",
                 f"paths.results={workdir}/results", f"paths.cache={workdir}/cache",
                 "experiment=bench", "impl.progress_bar=false", "logger=none", "force=true",
                 f"impl.packing={str(packing).lower()}"]
    if max_train:
        overrides.append(f"task.max_train_samples={max_train}")
    if glue_dir:                 # else the runner's own lookup ($GLUE_DIR, data/glue, ../shared/data/glue)
        overrides.append(f"paths.glue_dir={glue_dir}")
    return compose(*overrides)


def run_ours(cfg, threads: int) -> dict:
    torch.set_num_threads(threads)
    started = time.perf_counter()
    record = childtuning.train.run(cfg)
    total = time.perf_counter() - started
    if record["status"] not in ("ok", "degenerate"):
        raise RuntimeError(f"our run failed: {record['status']} ({record['reason']})")
    return {"seconds": record["train_seconds"], "total_seconds": total, "dev": record["metrics"],
            "status": record["status"], "reason": record["reason"], "steps": record["steps"],
            "threads": record["device"]["threads"], "train_size": record["data"]["train"]["size"],
            "dev_size": record["data"]["dev"]["size"]}


def as_dataset(columns: dict):
    """The encoded examples as a `datasets.Dataset` (as run_glue.py builds them), or, where the
    datasets package is missing (a device machine without it), as a plain list of examples."""
    try:
        import datasets
    except ImportError:
        return [dict(zip(columns, row)) for row in zip(*columns.values())], "list"
    return datasets.Dataset.from_dict(columns), "datasets"


def length_grouped(arguments) -> dict:
    """The TrainingArguments setting that batches examples of similar length: `group_by_length=True`
    up to transformers 5.x's `train_sampling_strategy="group_by_length"`, whichever this version has."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(arguments)}
    return {"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in names else \
        {"group_by_length": True}


def run_trainer(cfg, epochs: int, threads: int, workdir: str, fast: bool = False, dynamic: bool = False) -> dict:
    """`fast`: the Trainer's documented single-GPU speed settings (bf16 from the run's precision,
    tf32, fused AdamW); `dynamic`: per-batch padding to a multiple of 8 over length-grouped batches
    instead of every example padded to 128."""
    import transformers
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments, default_data_collator)

    torch.set_num_threads(threads)
    started = time.perf_counter()
    splits = childtuning.train.load_data(validate(cfg))     # load_task + the same subsample as ours
    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)

    def encode(split):
        columns = list(zip(*split.texts))
        enc = tokenizer(*columns, padding=False if dynamic else "max_length", max_length=MAX_LENGTH, truncation=True)
        return as_dataset({**{k: list(v) for k, v in enc.items()}, "labels": list(split.labels)})

    (train_ds, container), (dev_ds, _) = encode(splits["train"]), encode(splits["dev"])
    transformers.set_seed(SEED)                      # as run_glue.py: seed before the head is created
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)

    def compute_metrics(p) -> dict:
        preds = np.argmax(p.predictions, axis=-1)
        out = {"accuracy": 100.0 * float(accuracy_score(p.label_ids, preds))}
        if cfg.task.name == "mrpc":
            out["f1"] = 100.0 * float(f1_score(p.label_ids, preds))
        return out

    on_gpu = cfg.impl.device != "cpu"
    speed = {"bf16": cfg.impl.precision == "bf16", "tf32": True, "optim": "adamw_torch_fused"} if fast else {}
    args = TrainingArguments(
        output_dir=str(Path(workdir) / "trainer"), per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=EVAL_BATCH, learning_rate=LR, num_train_epochs=epochs,
        warmup_steps=WARMUP,                         # < 1: a ratio of the total steps (5.x has no warmup_ratio)
        weight_decay=WEIGHT_DECAY, seed=SEED, eval_strategy="no", save_strategy="no",
        logging_strategy="no", report_to=[], disable_tqdm=True, log_level="error",
        dataloader_num_workers=0, use_cpu=not on_gpu, **(length_grouped(TrainingArguments) if dynamic else {}), **speed)
    collate = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8) if dynamic else default_data_collator
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=dev_ds,
                      processing_class=tokenizer, data_collator=collate, compute_metrics=compute_metrics)
    torch.set_num_threads(threads)                   # in case set-up changed it
    t0 = time.perf_counter()
    train_out = trainer.train()
    scores = trainer.evaluate()
    if on_gpu:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    total = time.perf_counter() - started
    dev = {k[len("eval_"):]: v for k, v in scores.items() if k in ("eval_accuracy", "eval_f1")}
    return {"seconds": seconds, "total_seconds": total, "dev": dev, "steps": train_out.global_step,
            "train_loss": train_out.training_loss, "threads": torch.get_num_threads(), "optim": str(getattr(args.optim, "value", args.optim)),
            "train_size": len(train_ds), "dev_size": len(dev_ds), "data": container,
            "settings": {**speed, "padding": "dynamic, multiple of 8, grouped by length" if dynamic else "max_length 128"}}


def padding_stats(cfg, epochs: int) -> dict:
    """Token positions per training epoch: ours (the runner's own loader, same batch order as our
    run) vs fixed 128."""
    vcfg = validate(cfg)
    tokenizer, features = childtuning.train.tokenize_splits(vcfg, childtuning.train.load_data(vcfg))
    loader, _ = childtuning.train.build_loaders(vcfg, tokenizer, features)
    feats = features["train"]
    lengths = [len(f["input_ids"]) for f in feats]
    ours = sum(b["input_ids"].numel() for _ in range(epochs) for b in loader) / epochs   # the run's epochs
    fixed = MAX_LENGTH * len(feats)
    return {"mean_example_len": float(np.mean(lengths)), "truncated": int(sum(n >= MAX_LENGTH for n in lengths)),
            "ours_positions_per_epoch": int(ours), "trainer_positions_per_epoch": fixed,
            "positions_ratio": ours / fixed}


def warm_up(threads: int, device: str = "cpu") -> float:
    """One untimed training step and one no-grad forward on a throwaway MiniLM; returns its seconds."""
    from transformers import AutoModelForSequenceClassification
    torch.set_num_threads(threads)
    started = time.perf_counter()
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2).to(device)
    with torch.device(device):
        _warm_up_steps(model)
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def _warm_up_steps(model) -> None:
    ids = torch.randint(1000, 2000, (BATCH, MAX_LENGTH))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.zeros(BATCH, dtype=torch.long))
    out.loss.backward()
    model.eval()
    with torch.no_grad():
        ids = torch.randint(1000, 2000, (EVAL_BATCH, MAX_LENGTH))
        model(input_ids=ids, attention_mask=torch.ones_like(ids))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["mrpc", "rte"], choices=["mrpc", "rte"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-train-samples", type=int, default=None, help="subsample the training sets (quick check)")
    ap.add_argument("--glue-dir", default=None, help="GLUE-format folder (default: the runner's own lookup)")
    ap.add_argument("--no-packing", action="store_true", help="ours with dynamic padding instead of packed batches")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="both sides' autocast (GPU only)")
    ap.add_argument("--pad-to-multiple-of", type=int, default=1, help="ours: impl.pad_to_multiple_of")
    ap.add_argument("--trainer-padding", default="max_length", choices=["max_length", "dynamic"],
                    help="the Trainer's batches: every example padded to 128 (run_glue.py's default), or dynamic")
    args = ap.parse_args()
    if args.device == "cpu" and args.precision != "fp32":
        sys.exit("--precision bf16 is for --device cuda (CPU runs are fp32)")
    try:
        import accelerate  # noqa: F401
    except ImportError:
        sys.exit("transformers.Trainer needs the `accelerate` package: pip install accelerate")
    glue = str(Path(args.glue_dir).expanduser().resolve()) if args.glue_dir else None
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads; glue dir {glue}; epochs {args.epochs}"
          f"{'; max train samples ' + str(args.max_train_samples) if args.max_train_samples else ''}", flush=True)
    targets = TARGETS[args.device]
    print(f"untimed warm-up: {warm_up(threads, args.device):.1f}s", flush=True)
    result: dict = {}
    for i, task in enumerate(args.tasks):
        with tempfile.TemporaryDirectory(prefix=f"bench-{task}-") as work:
            cfg = compose_cfg(task, args.epochs, glue, work, args.max_train_samples, threads, not args.no_packing,
                              args.device, args.precision, args.pad_to_multiple_of)
            order = ["ours", "trainer"] if i % 2 == 0 else ["trainer", "ours"]
            out = {}
            for side in order:
                print(f"[{task}] running {side} ...", flush=True)
                out[side] = run_ours(cfg, threads) if side == "ours" else run_trainer(
                    cfg, args.epochs, threads, work, fast=args.device == "cuda", dynamic=args.trainer_padding == "dynamic")
                print(f"[{task}] {side}: {out[side]['seconds']:.1f}s timed ({out[side]['total_seconds']:.1f}s "
                      f"with loading), {out[side]['steps']} steps, dev {out[side]['dev']}", flush=True)
            pad = padding_stats(cfg, args.epochs)
        ours, tr = out["ours"], out["trainer"]
        ratio = ours["seconds"] / tr["seconds"]
        result[task] = {
            "ours_s": round(ours["seconds"], 2), "trainer_s": round(tr["seconds"], 2), "ratio": round(ratio, 3),
            "target_ratio": targets[task], "meets_target": ratio <= targets[task],
            "ours_dev": {k: round(v, 2) for k, v in ours["dev"].items()},
            "trainer_dev": {k: round(v, 2) for k, v in tr["dev"].items()},
            "ours_total_s": round(ours["total_seconds"], 2), "trainer_total_s": round(tr["total_seconds"], 2),
            "ours_status": ours["status"], "steps": {"ours": ours["steps"], "trainer": tr["steps"]},
            "train_size": ours["train_size"], "dev_size": ours["dev_size"], "order": order,
            "threads": {"ours": ours["threads"], "trainer": tr["threads"]}, "trainer_optim": tr["optim"],
            "trainer_data": tr["data"], "trainer_settings": tr["settings"],
            "padding": {k: round(v, 3) if isinstance(v, float) else v for k, v in pad.items()},
        }
        print(f"[{task}] ours {ours['seconds']:.1f}s vs Trainer {tr['seconds']:.1f}s: ratio {ratio:.3f} "
              f"(target <= {targets[task]}: {'met' if ratio <= targets[task] else 'NOT met'}); "
              f"ours pads to {pad['positions_ratio']:.0%} of the Trainer's token positions", flush=True)
    result.update({"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                   "precision": args.precision, "pad_to_multiple_of": args.pad_to_multiple_of,
                   "epochs": args.epochs, "threads": threads, "max_train_samples": args.max_train_samples,
                   "ours_layout": "padded" if args.no_packing else compose().impl.packed_layout,
                   "torch": torch.__version__, "timed": "train + per-epoch dev eval; no model load/tokenisation"})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
