"""GPU throughput of the runner's training step on a BERT-large-shaped model, and Table 1's wall time.

A randomly initialised BERT-large-shaped classifier (24 layers, 1024 wide, 16 heads, 335M
weights; nothing downloaded) trains on real batches of each Table 1 task (CoLA, RTE, MRPC,
STS-B training sets, tokenized with a WordPiece vocabulary, max length 128, batch 16, the
runner's seeded order), with the runner's own pieces: packed or padded collation, bf16 autocast,
the official AdamW (adamw_hf, fused), `childtuning.loop.train_step`, the Fisher pass
(`childtuning.fisher.fisher_information`) and length-sorted dev evaluation. Per task it reports
step time in each packed layout of --layouts (default: rows, block-diagonal mask; varlen_batched,
one row of real tokens with one attention call per layer) and padded, real tokens per second and model-FLOPs utilisation on real tokens
(6 x weights x real tokens / time / peak; peak 989e12 = H100/H200 dense bf16), then estimates the
wall time of Table 1 (480 runs: 4 models x 4 tasks x 3 methods x 10 seeds; 3 epochs on the full
training sets; one Fisher epoch per Child-Tuning_D run; a dev evaluation per epoch) for one
process per GPU and for --jobs processes sharing the GPU (measured by running them at once).
RoBERTa- and ELECTRA-large have BERT-large's shape, so they take its packed rates; XLNet-large
keeps dynamic padding, so it is estimated at the padded rate of the same shape (its relative
attention costs somewhat more; stated, not measured).

    GLUE_DIR=data/glue python benchmarks/gpu_throughput.py --tokenizer data/minilm_tokenizer
    # a CPU dry run on a small shape:
    python benchmarks/gpu_throughput.py --device cpu --layers 2 --hidden 64 --heads 2 --steps 2 --jobs 1

The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the checkout, without installing it
import torch  # noqa: E402

from childtuning import data, packing, seeding  # noqa: E402
from childtuning.config import load_task_config  # noqa: E402
from childtuning.fisher import fisher_information  # noqa: E402
from childtuning.loop import autocast_for, predict, train_step  # noqa: E402
from childtuning.methods import TaskInfo  # noqa: E402
from childtuning.methods.base import Method  # noqa: E402
from childtuning.optim import build_optimizer  # noqa: E402

TASKS = ("cola", "rte", "mrpc", "stsb")
PEAK = 989e12              # H100 SXM / H200 dense bf16 tensor-core peak, FLOP/s
RUNS_PER_TASK = {"models": 4, "methods": 3, "seeds": 10, "epochs": 3}


class Vanilla(Method):
    name = "bench_vanilla"


def features_for(task: str, tokenizer, glue_dir: str, max_length: int):
    cfg = load_task_config(task)
    splits = data.load_task(cfg, glue_dir)
    return {s: data.tokenize(splits[s], tokenizer, max_length, None) for s in splits}, cfg


def build(args, device, task_cfg=None):
    """The BERT-large-shaped classifier with the task's head (2 classes when no task is given)."""
    from transformers import BertConfig, BertForSequenceClassification

    info = TaskInfo.of(task_cfg) if task_cfg is not None else TaskInfo("", False, 2)
    num_labels = info.num_labels

    seeding.seed_global(1, "init")
    config = BertConfig(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                        num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                        max_position_embeddings=512, num_labels=num_labels,
                        problem_type="regression" if info.regression else None)
    with torch.device(device):          # initialise on the device: seconds, not a minute, for 335M weights
        return BertForSequenceClassification(config)


def time_steps(model, loader, args, device, n: int) -> tuple[float, int, int]:
    """Median seconds per training step over n steps (after 3 warm-ups), real tokens and positions per step."""
    from transformers import get_linear_schedule_with_warmup

    groups = [{"params": [p for p in model.parameters()], "weight_decay": 0.01}]
    opt = build_optimizer("adamw_hf", groups, lr=4e-5, betas=(0.9, 0.999), eps=1e-8, kernel="fused")
    sched = get_linear_schedule_with_warmup(opt, 0, 10_000)
    method = Vanilla(None, 1, None)
    autocast, scaler = autocast_for(args.precision, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times, real, positions = [], 0, 0
    model.train()
    for i, batch in enumerate(loader):
        if i >= n + 3:
            break
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        sync()
        t0 = time.perf_counter()
        train_step(model, method, batch, opt, sched, scaler, autocast, 1.0)
        sync()
        if i >= 3:
            times.append(time.perf_counter() - t0)
            r, p = packing.token_counts(batch)
            real, positions = real + r, positions + p
    return statistics.median(times), real / len(times), positions / len(times)


def time_fisher(model, loader, device, n: int) -> float:
    """Seconds per batch of the Fisher pass (forward + per-tensor gradients, no optimizer)."""
    params = [p for name, p in model.named_parameters() if "layer" in name]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        fisher_information(model, loader, params, device=device, max_samples=16 * 2)      # warm-up
        sync()
        t0 = time.perf_counter()
        fisher_information(model, loader, params, device=device, max_samples=16 * n)
    sync()
    return (time.perf_counter() - t0) / n


def time_eval(model, loader, args, device, regression: bool) -> float:
    autocast, _ = autocast_for(args.precision, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    predict(model, loader, device, autocast, regression, False)         # warm-up
    sync()
    t0 = time.perf_counter()
    predict(model, loader, device, autocast, regression, False)
    sync()
    return time.perf_counter() - t0


def collator(layout: str, tokenizer, regression: bool, multiple_of: int):
    """The runner's collator for a packed layout (packing.LAYOUTS) or "padded" (dynamic padding)."""
    if layout == "padded":
        return data.Collator(tokenizer, regression, multiple_of=multiple_of)
    return packing.PackedCollator(tokenizer, regression, 128, multiple_of, layout)


def worker(args) -> None:
    """One of --jobs processes: train steps on one task, print seconds per step."""
    device = torch.device(args.device)
    tokenizer = tokenizer_for(args)
    feats, cfg = features_for(args.worker_task, tokenizer, args.glue_dir, 128)
    collate = collator(args.worker_layout, tokenizer, cfg.regression, args.multiple_of)
    loader = data.BatchLoader(feats["train"], 16, collate, seeding.generator(1, "data"))
    model = build(args, device, cfg)
    step, _, _ = time_steps(model, loader, args, device, args.steps)
    print(json.dumps({"step_s": step}), flush=True)


def tokenizer_for(args):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    args.vocab = len(tok)
    return tok


def concurrent(args, task: str, jobs: int, single_step_s: float, layout: str) -> dict:
    """`jobs` processes training on one GPU at once: their aggregate steps per second, and the
    speed-up over one process (aggregate rate x one process's step time)."""
    cmd = [sys.executable, __file__, "--worker-task", task, "--worker-layout", layout, *sys.argv[1:]]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(jobs)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    per_step = [o["step_s"] for o in outs]
    rate = sum(1 / s for s in per_step)
    return {"task": task, "layout": layout, "jobs": jobs, "step_s_each": [round(s, 4) for s in per_step],
            "aggregate_steps_per_s": round(rate, 2), "speedup": round(rate * single_step_s, 2),
            "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--tokenizer", default=None, help="a tokenizer folder (default: MiniLM's, from its package)")
    ap.add_argument("--glue-dir", default=os.environ.get("GLUE_DIR"))
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    ap.add_argument("--jobs", type=int, nargs="+", default=[4], help="processes sharing the GPU in the concurrency "
                                                                       "test (several values: one test each)")
    ap.add_argument("--multiple-of", type=int, default=1, help="round batch lengths / packed row widths up to this")
    ap.add_argument("--concurrency-tasks", nargs="+", default=["rte"], help="tasks of the concurrency test")
    ap.add_argument("--layouts", nargs="+", default=["rows", "varlen_batched"], choices=list(packing.LAYOUTS),
                    help="packed layouts measured against dynamic padding; the fastest one (summed over the tasks' "
                         "estimated run time) gives the estimate and runs the concurrency test")
    ap.add_argument("--concurrency-layout", default=None, choices=[*packing.LAYOUTS, "padded"],
                    help="the batch layout of the concurrency test (default: the fastest packed layout)")
    ap.add_argument("--worker-task", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-layout", default="rows", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tokenizer is None:
        from childtuning.models import minilm_path
        args.tokenizer = minilm_path()
    if args.worker_task:
        return worker(args)
    device = torch.device(args.device)
    tokenizer = tokenizer_for(args)
    n_params = sum(p.numel() for p in build(args, torch.device("meta")).parameters())
    per_task, estimate = {}, {}
    for task in TASKS:
        feats, cfg = features_for(task, tokenizer, args.glue_dir, 128)
        model, reg = build(args, device, cfg), cfg.regression
        gen = lambda: seeding.generator(1, "data")  # noqa: E731 - the same batches for both layouts
        sides = {}
        for layout in [*args.layouts, "padded"]:
            loader = data.BatchLoader(feats["train"], 16, collator(layout, tokenizer, reg, args.multiple_of), gen())
            step, real, pos = time_steps(model, loader, args, device, args.steps)
            sides[layout] = {"step_s": step, "real_tokens_per_step": real, "positions_per_step": pos,
                             "real_tokens_per_s": real / step, "mfu_real_tokens": 6 * n_params * real / step / PEAK}
        packed_loader = data.BatchLoader(feats["train"], 16, collator(args.layouts[0], tokenizer, reg, args.multiple_of), gen())
        fisher_s = time_fisher(model, packed_loader, device, min(args.steps, 10))
        dev_loader = data.BatchLoader(feats["dev"], 64, collator(args.layouts[0], tokenizer, reg, args.multiple_of), by_length=True)
        dev_s = time_eval(model, dev_loader, args, device, reg)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
        n_train, steps_per_epoch = len(feats["train"]), math.ceil(len(feats["train"]) / 16)
        per_task[task] = {"train_size": n_train, "dev_size": len(feats["dev"]), "fisher_s_per_batch": round(fisher_s, 4),
                          "dev_eval_s": round(dev_s, 3),
                          **{f"{layout}_vs_padded_step": round(sides[layout]["step_s"] / sides["padded"]["step_s"], 3)
                             for layout in args.layouts},
                          **{f"{k}_{layout}": round(v, 4 if k != "real_tokens_per_s" else 0) for layout in sides for k, v in sides[layout].items()}}
        r = RUNS_PER_TASK
        run_s = {layout: r["epochs"] * (steps_per_epoch * sides[layout]["step_s"] + dev_s) for layout in sides}
        fisher_run_s = steps_per_epoch * fisher_s
        # BERT, RoBERTa, ELECTRA packed; XLNet padded; one Fisher epoch per D run of each model
        for layout in args.layouts:
            estimate.setdefault(layout, {})[task] = (r["seeds"] * r["methods"] * (3 * run_s[layout] + run_s["padded"])
                                                     + r["seeds"] * r["models"] * fisher_run_s)
        print(f"[{task}] " + "; ".join(f"{layout} {sides[layout]['step_s'] * 1e3:.1f} ms/step "
                                       f"({sides[layout]['real_tokens_per_s']:.0f} real tok/s, MFU {sides[layout]['mfu_real_tokens']:.1%})"
                                       for layout in sides)
              + f"; fisher {fisher_s * 1e3:.1f} ms/batch; dev eval {dev_s:.2f}s", flush=True)
    hours = {layout: sum(by_task.values()) / 3600 for layout, by_task in estimate.items()}
    best_layout = min(hours, key=hours.get)
    total_h = hours[best_layout]
    conc_layout = args.concurrency_layout or best_layout
    conc = [concurrent(args, t, j, per_task[t][f"step_s_{conc_layout}"], conc_layout) for t in args.concurrency_tasks
            for j in args.jobs if j > 1]
    for c in conc:
        print(f"[{c['task']}] {c['jobs']} processes: {c['aggregate_steps_per_s']} steps/s, speed-up {c['speedup']}x", flush=True)
    by_jobs = {j: min(c["speedup"] for c in conc if c["jobs"] == j) for j in {c["jobs"] for c in conc}}
    best = max(by_jobs, key=by_jobs.get, default=1)
    speedup = by_jobs.get(best, 1.0)          # the smallest speed-up over the tasks tried, at the best job count
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__,
              "params": n_params, "precision": args.precision, "multiple_of": args.multiple_of, "optimizer": "adamw_hf fused", "steps_timed": args.steps,
              "layouts": args.layouts, "best_layout": best_layout, "concurrency_layout": conc_layout,
              "table1_estimate_h_one_process_by_layout": {k: round(v, 2) for k, v in hours.items()},
              "per_task": per_task, "table1_estimate_h_one_process": round(total_h, 2),
              "concurrency": conc, "best_jobs": best, "concurrency_speedup": round(speedup, 2),
              "table1_estimate_h_with_jobs": round(total_h / speedup, 2),
              "table1_estimate_h_by_jobs": {j: round(total_h / s, 2) for j, s in sorted(by_jobs.items())},
              "estimate_assumes": "RoBERTa/ELECTRA-large at BERT-large's rate in the best packed layout; XLNet-large at its padded rate; "
                                  "Fisher epoch per D run; 3 dev evaluations per run; no model load or tokenisation time"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
