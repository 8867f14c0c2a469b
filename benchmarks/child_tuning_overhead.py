"""Extra time per training step of Child-Tuning_F / _D over vanilla, on MiniLM with real batches.

Each method trains its own copy of the pip-shipped MiniLM on the same batches (real task
text, batch 16, dynamic padding); methods take turns step by step, in a rotating order, so machine noise and cache effects
hit all alike, and the median step time of each is compared (also as the median of per-round ratios to
vanilla, `paired_overhead`, which cancels slow drifts). Also timed: the official-style F mask
(a torch.distributions.Bernoulli per tensor every step, as in AliceMind's
ChildTuningOptimizer) inside the same step, and each mask alone on MiniLM's gradients.

    python benchmarks/child_tuning_overhead.py [--task rte] [--steps 12]
    # on a GPU, a randomly initialised BERT-large-shaped model (no download):
    python benchmarks/child_tuning_overhead.py --device cuda --model tiny_roberta \
        --set model.config.hidden_size=1024 model.config.num_hidden_layers=24 \
              model.config.num_attention_heads=16 model.config.intermediate_size=4096
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

from childtuning import methods, train  # noqa: E402
from childtuning.config import compose, validate  # noqa: E402
from childtuning.loop import train_step  # noqa: E402


class OfficialF(methods.Method):
    """The official F mask: a Bernoulli distribution object per tensor, each step."""
    name = "official_f"

    def prepare(self, model, train_loader, device):
        self.params = list(model.parameters())

    def before_optimizer_step(self, model):
        p = self.cfg.keep_ratio
        for param in self.params:
            grad = param.grad
            mask = torch.distributions.Bernoulli(grad.new_full(size=grad.size(), fill_value=p))
            grad *= mask.sample() / p


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="rte")
    ap.add_argument("--steps", type=int, default=12, help="timed steps per method (after 2 warm-up steps)")
    ap.add_argument("--model", default="minilm", help="a conf/model entry")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra Hydra overrides")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cfgs = {m: validate(compose(f"model={args.model}", f"task={args.task}", f"method={m}", "seed=1",
                                    "trainer.batch_size=16", "impl.progress_bar=false", *args.set))
            for m in ("vanilla", "child_tuning_f", "child_tuning_d")}
    cfg = cfgs["vanilla"]                               # the runner's own pipeline, step by step
    tokenizer, features = train.tokenize_splits(cfg, train.load_data(cfg))
    loader, _ = train.build_loaders(cfg, tokenizer, features)
    batches = [{k: v.to(device) for k, v in b.items()} for b, _ in zip(loader, range(args.steps + 2))]
    base = train.init_model(cfg, tokenizer, torch.device("cpu"))
    no_amp = contextlib.nullcontext, torch.amp.GradScaler("cuda", enabled=False)

    runners = {}
    for name in ("vanilla", "child_tuning_f", "child_tuning_d", "official_f"):
        run_cfg = cfgs["child_tuning_f" if name == "official_f" else name]
        if name == "child_tuning_d":
            run_cfg.method.fisher.max_samples = 32          # the pass itself is not what is timed here
        method = OfficialF(run_cfg.method, 1, None) if name == "official_f" else train.build_method(run_cfg)
        model = copy.deepcopy(base).to(device)
        method.prepare(model, loader, device)
        opt, sched = method.configure_optimizer(model, run_cfg.trainer, 10_000)   # as the runner does
        runners[name] = (model, method, opt, sched, [])

    names = list(runners)
    for i, batch in enumerate(batches):
        for name in names[i % len(names):] + names[: i % len(names)]:   # rotate who goes first
            model, method, opt, sched, times = runners[name]
            model.train()
            sync()
            t0 = time.perf_counter()
            train_step(model, method, batch, opt, sched, no_amp[1], no_amp[0], cfg.trainer.max_grad_norm)
            sync()
            if i >= 2:
                times.append(time.perf_counter() - t0)
    med = {name: statistics.median(r[4]) for name, r in runners.items()}

    # each mask alone, on random gradients of its model (F: all 22.7M weights; D: the eligible ones)
    alone = {}
    for name in ("child_tuning_f", "child_tuning_d", "official_f"):
        model, method = runners[name][:2]
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        method.before_optimizer_step(model)          # warm-up
        sync()
        t0 = time.perf_counter()
        for _ in range(5):
            method.before_optimizer_step(model)
        sync()
        alone[name] = (time.perf_counter() - t0) / 5
    n_params = sum(p.numel() for p in model.parameters())
    mean_len = statistics.mean(b["input_ids"].shape[1] for b in batches)
    result = {"task": args.task, "model": args.model, "device": str(device), "params": n_params, "mean_padded_length": round(mean_len, 1), "steps": args.steps,
              "threads": torch.get_num_threads(), "optimizer": cfg.trainer.optimizer,
              "step_s": {k: round(v, 4) for k, v in med.items()},
              "overhead_f": round(med["child_tuning_f"] / med["vanilla"] - 1, 4),
              "overhead_d": round(med["child_tuning_d"] / med["vanilla"] - 1, 4),
              "overhead_official_f": round(med["official_f"] / med["vanilla"] - 1, 4),
              # the same, as the median over rounds of each round's ratio to vanilla's step in that
              # round: slow drifts of a shared machine cancel within a round
              "paired_overhead": {k: round(statistics.median(t / v for t, v in zip(runners[k][4], runners["vanilla"][4])) - 1, 4)
                                  for k in ("child_tuning_f", "child_tuning_d", "official_f")},
              "mask_alone_s": {k: round(v, 4) for k, v in alone.items()}}
    for k, v in med.items():
        print(f"{k:16s} median step {v * 1000:7.1f} ms  ({v / med['vanilla'] - 1:+.1%} vs vanilla)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
