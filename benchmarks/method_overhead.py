"""Training-step time of every method relative to vanilla, on MiniLM with real task batches.

Each method trains its own copy of the pip-shipped MiniLM on the same batches (real task text,
batch 16, dynamic padding), built by the runner's own pipeline (load_data, tokenize_splits,
build_loaders, init_model, build_method) and stepped by loop.train_step. Methods take turns step
by step, in a rotating order, so machine noise and cache effects hit all alike; the median step
time of each is divided by vanilla's. Expected: R3F about 2x (a second forward and backward),
Top-K below 1x (no gradients or updates below the top layers), the others within a few percent.

    python benchmarks/method_overhead.py [--task rte] [--steps 12] [--methods vanilla r3f ...]
        [--set trainer.max_length=64 ...] [--method-set top_k:method.top_k=2 ...]
"""
import argparse
import contextlib
import copy
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402

from childtuning import train  # noqa: E402
from childtuning.config import compose, validate  # noqa: E402
from childtuning.loop import train_step  # noqa: E402

# label -> (method, extra overrides); every method with its shipped defaults
METHODS = {
    "vanilla": ("vanilla", []),
    "child_tuning_f": ("child_tuning_f", []),
    "child_tuning_d": ("child_tuning_d", ["method.fisher.max_samples=32"]),   # the pass itself is not timed
    "wd_pretrained": ("wd_pretrained", []),
    "wd_pretrained_coupled": ("wd_pretrained", ["method.form=coupled"]),
    "top_k": ("top_k", []),
    "mixout": ("mixout", []),
    "recadam": ("recadam", []),
    "r3f": ("r3f", []),
    "child_tuning_d+mixout": ("child_tuning_d+mixout", ["method.parts.child_tuning_d.fisher.max_samples=32"]),
}
EXPECTED = {"r3f": "about 2x", "top_k": "below 1x", "other": "within a few percent of 1x"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="rte")
    ap.add_argument("--steps", type=int, default=12, help="timed steps per method (after 2 warm-up steps)")
    ap.add_argument("--model", default="minilm", help="a conf/model entry")
    ap.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra Hydra overrides (all methods)")
    ap.add_argument("--method-set", nargs="*", default=[], metavar="LABEL:KEY=VALUE",
                    help="an override for one method, e.g. top_k:method.top_k=2")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    names = ["vanilla"] + [m for m in args.methods if m != "vanilla"]
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def cfg_for(label):
        method, overrides = METHODS[label]
        own = [s.split(":", 1)[1] for s in args.method_set if s.split(":", 1)[0] == label]
        return validate(compose(f"model={args.model}", f"task={args.task}", f"method={method}", "seed=1",
                                "trainer.batch_size=16", "impl.progress_bar=false", *overrides, *args.set, *own))

    cfg = cfg_for("vanilla")                                # the runner's own pipeline, step by step
    tokenizer, features = train.tokenize_splits(cfg, train.load_data(cfg))
    loader, _ = train.build_loaders(cfg, tokenizer, features)
    batches = [{k: v.to(device) for k, v in b.items()} for b, _ in zip(loader, range(args.steps + 2))]
    base = train.init_model(cfg, tokenizer, torch.device("cpu"))
    no_amp = contextlib.nullcontext, torch.amp.GradScaler("cuda", enabled=False)

    runners, settings = {}, {}
    for label in names:
        run_cfg = cfg_for(label)
        method = train.build_method(run_cfg)
        model = copy.deepcopy(base).to(device)
        method.prepare(model, loader, device)
        opt, sched = method.configure_optimizer(model, run_cfg.trainer, 10_000)   # as the runner does
        runners[label] = (model, method, opt, sched, [])
        settings[label] = {k: v for k, v in method.stats().items()
                           if k in ("top_k", "p", "form", "t0_steps", "keep_ratio", "mixed_fraction_of_model")}

    for i, batch in enumerate(batches):
        for label in names[i % len(names):] + names[: i % len(names)]:   # rotate who goes first
            model, method, opt, sched, times = runners[label]
            model.train()
            sync()
            t0 = time.perf_counter()
            train_step(model, method, batch, opt, sched, no_amp[1], no_amp[0], cfg.trainer.max_grad_norm)
            sync()
            if i >= 2:
                times.append(time.perf_counter() - t0)
    med = {label: statistics.median(r[4]) for label, r in runners.items()}
    ratio = {label: round(v / med["vanilla"], 3) for label, v in med.items()}
    for label, v in med.items():
        print(f"{label:24s} median step {v * 1000:7.1f} ms  ({ratio[label]:.2f}x vanilla)")
    mean_len = statistics.mean(b["input_ids"].shape[1] for b in batches)
    print(json.dumps({"task": args.task, "model": args.model, "device": str(device), "threads": torch.get_num_threads(),
                      "steps": args.steps, "batch_size": 16, "mean_padded_length": round(mean_len, 1),
                      "optimizer": cfg.trainer.optimizer, "step_s": {k: round(v, 4) for k, v in med.items()},
                      "ratio_to_vanilla": ratio, "settings": settings, "expected": EXPECTED,
                      "overrides": args.set + args.method_set}))


if __name__ == "__main__":
    main()
