"""Forward+backward time of MiniLM on packed vs dynamically padded batches of real GLUE training pairs.

The training set (default RTE) is tokenized with MiniLM's tokenizer (max_length 128) and cut into
batches of 16 in a seeded random order, as the training loader does. For a sample of those
batches each layout runs one training-mode forward+backward (`childtuning.packing.forward`, the
same function for both layouts):

* padded: `data.Collator` (each batch padded to its longest example), the model's default
  attention (sdpa);
* packed/sdpa: `packing.PackedCollator` rows of 128 tokens, boolean block-diagonal mask;
* packed/eager: the same rows, additive mask, transformers' eager attention.

Repeats are interleaved (every repeat visits every batch, the layouts in a rotating order), each
batch's time is the median over repeats, and ratios are sums of those medians over the sampled
batches. Also measured: building the block-diagonal mask alone, the collators' CPU time, one
AdamW step (it does not shrink with packing, so it bounds the whole-epoch ratio), and, in eval
mode on one batch, the largest packed-vs-padded difference of logits, loss and gradients, and
eval-mode forward time (no gradients, as in the dev evaluation) of the three layouts.
Token counts (real-token share, packed/padded positions) are over the whole epoch's batches.

The CPU is shared with other jobs: read the ratios, not the seconds.

    python benchmarks/packing_forward.py [--task rte] [--batches 16] [--repeats 3] [--threads 1]

The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from childtuning import data, packing  # noqa: E402
from childtuning.models import minilm_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MAX_LENGTH, BATCH = 128, 16           # official run script: batch 16, max length 128
LAYOUTS = ("padded", "packed_sdpa", "packed_eager")


def default_glue_dir() -> str:
    return os.environ.get("GLUE_DIR") or str((REPO / ".." / "shared" / "data" / "glue").resolve())


def epoch_batches(task: str, glue_dir: str, seed: int, tokenizer) -> list[list[dict]]:
    task_cfg = OmegaConf.load(REPO / "conf" / "task" / f"{task}.yaml")
    train = data.load_task(task_cfg, glue_dir)["train"]
    features = data.tokenize(train, tokenizer, MAX_LENGTH, cache_dir=None)
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed)).tolist()
    return [[features[j] for j in order[i: i + BATCH]] for i in range(0, len(order), BATCH)]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step(model, batch) -> None:
    packing.forward(model, batch).loss.backward()
    model.zero_grad(set_to_none=True)


def max_differences(model, packed, padded) -> dict:
    model.eval()
    out = {}
    for name, batch in (("packed", packed), ("padded", padded)):
        model.zero_grad(set_to_none=True)
        res = packing.forward(model, batch)
        res.loss.backward()
        out[name] = (res.loss.detach(), res.logits.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    model.train()
    (la, xa, ga), (lb, xb, gb) = out["packed"], out["padded"]
    return {"loss": (la - lb).abs().item(), "logits": (xa - xb).abs().max().item(),
            "grads": max((a - b).abs().max().item() for a, b in zip(ga, gb)),
            "grad_scale": max(b.abs().max().item() for b in gb)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="rte")
    ap.add_argument("--glue-dir", default=default_glue_dir())
    ap.add_argument("--batches", type=int, default=16, help="sampled batches timed (spread over the epoch)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    batches = epoch_batches(args.task, args.glue_dir, args.seed, tokenizer)
    padded_collate = data.Collator(tokenizer, regression=False)
    packed_collate = packing.PackedCollator(tokenizer, regression=False, row_length=MAX_LENGTH)

    # Token counts over the whole epoch.
    real = padded_positions = packed_positions = 0
    for feats in batches:
        padded, packed = padded_collate(feats), packed_collate(feats)
        real += int(padded["attention_mask"].sum())
        padded_positions += padded["input_ids"].numel()
        packed_positions += packed["input_ids"].numel()

    torch.manual_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2)
    model.train()
    picks = [batches[round(i * (len(batches) - 1) / max(args.batches - 1, 1))] for i in range(args.batches)]
    inputs = {"padded": [padded_collate(f) for f in picks], "packed": [packed_collate(f) for f in picks]}
    attention = {"padded": "sdpa", "packed_sdpa": "sdpa", "packed_eager": "eager"}
    runs = {name: (lambda i, layout=name.split("_")[0]: step(model, inputs[layout][i])) for name in LAYOUTS}
    example_ids = [b["example_ids"] for b in inputs["packed"]]
    masks = {"mask_sdpa": lambda i: packing.attention_mask(example_ids[i], "sdpa", torch.float32),
             "mask_eager": lambda i: packing.attention_mask(example_ids[i], "eager", torch.float32),
             "collate_padded": lambda i: padded_collate(picks[i]),
             "collate_packed": lambda i: packed_collate(picks[i])}

    diffs = max_differences(model, inputs["packed"][0], inputs["padded"][0])
    model.set_attn_implementation("sdpa")
    for name in LAYOUTS:                                     # warm-up, untimed
        model.set_attn_implementation(attention[name])
        runs[name](0)
    times = {name: [[] for _ in picks] for name in (*LAYOUTS, *masks)}
    for rep in range(args.repeats):
        for i in range(len(picks)):
            order = LAYOUTS[(i + rep) % 3:] + LAYOUTS[:(i + rep) % 3]   # rotate who goes first
            for name in order:
                model.set_attn_implementation(attention[name])   # untimed: switching walks the modules
                times[name][i].append(timed(lambda: runs[name](i)))
            for name, fn in masks.items():
                times[name][i].append(timed(lambda: fn(i)))
    model.eval()
    with torch.no_grad():
        for rep in range(args.repeats):
            for i in range(len(picks)):
                for name in LAYOUTS[rep % 3:] + LAYOUTS[:rep % 3]:
                    model.set_attn_implementation(attention[name])
                    layout = name.split("_")[0]
                    times.setdefault(f"eval_{name}", [[] for _ in picks])[i].append(
                        timed(lambda: packing.forward(model, inputs[layout][i])))
    model.train()
    total = {name: sum(statistics.median(t) for t in per_batch) for name, per_batch in times.items()}

    model.set_attn_implementation("sdpa")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-9, fused=True)   # conf/trainer optimizer_impl: fused
    opt_times = []
    for i in range(args.repeats + 1):
        step_grads = packing.forward(model, inputs["padded"][i % len(picks)]).loss
        step_grads.backward()
        opt_times.append(timed(lambda: (optimizer.step(), optimizer.zero_grad(set_to_none=True))))
    optimizer_step = statistics.median(opt_times[1:])

    n = len(picks)
    best = min(("packed_sdpa", "packed_eager"), key=total.get)
    epoch_ratio = (total[best] + n * optimizer_step) / (total["padded"] + n * optimizer_step)
    sample_positions = (sum(b["input_ids"].numel() for b in inputs["packed"]) /
                        sum(b["input_ids"].numel() for b in inputs["padded"]))
    result = {
        "benchmark": "packing_forward", "task": args.task, "model": "minilm", "threads": args.threads,
        "train_batches": len(batches), "timed_batches": n, "repeats": args.repeats,
        "real_token_share_padded": round(real / padded_positions, 4),
        "positions_ratio_packed_vs_padded": round(packed_positions / padded_positions, 4),
        "positions_ratio_timed_batches": round(sample_positions, 4),
        "step_seconds_padded": round(total["padded"] / n, 4),
        "step_ratio_packed_sdpa": round(total["packed_sdpa"] / total["padded"], 4),
        "step_ratio_packed_eager": round(total["packed_eager"] / total["padded"], 4),
        "eval_forward_ratio_packed_sdpa": round(total["eval_packed_sdpa"] / total["eval_padded"], 4),
        "eval_forward_ratio_packed_eager": round(total["eval_packed_eager"] / total["eval_padded"], 4),
        "mask_share_of_packed_step": {k: round(total[f"mask_{k}"] / total[f"packed_{k}"], 5) for k in ("sdpa", "eager")},
        "collate_ms": {k: round(1000 * total[f"collate_{k}"] / n, 3) for k in ("padded", "packed")},
        "optimizer_step_share_padded": round(optimizer_step * n / (total["padded"] + optimizer_step * n), 4),
        "fastest_packed": best,
        "estimated_epoch_ratio_training_steps": round(epoch_ratio, 4),
        "max_abs_difference_eval_mode": {k: float(f"{v:.3g}") for k, v in diffs.items()},
    }
    for k, v in result.items():
        print(f"{k:40s} {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
