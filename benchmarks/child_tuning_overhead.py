"""Extra time per training step of Child-Tuning_F / _D over vanilla, on MiniLM with real batches.

Each method trains its own copy of the pip-shipped MiniLM on the same batches (real task
text, batch 16, dynamic padding); methods take turns step by step, in a rotating order, so machine noise and cache effects
hit all alike, and the median step time of each is compared. Also timed: the official-style F mask
(a torch.distributions.Bernoulli per tensor every step, as in AliceMind's
ChildTuningOptimizer) inside the same step, and each mask alone on MiniLM's gradients.

    python benchmarks/child_tuning_overhead.py [--task rte] [--steps 12]
    # on a GPU, a randomly initialised BERT-large-shaped model (no download):
    python benchmarks/child_tuning_overhead.py --device cuda --model tiny_roberta \
        --set model.config.hidden_size=1024 model.config.num_hidden_layers=24 \
              model.config.num_attention_heads=16 model.config.intermediate_size=4096
"""
import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from childtuning import data, methods, seeding  # noqa: E402
from childtuning.loop import _adamw_kernel, param_groups  # noqa: E402
from childtuning.models import build_model, build_tokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


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
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfgs = {m: compose("config", overrides=[f"model={args.model}", f"task={args.task}", f"method={m}", *args.set])
                for m in ("vanilla", "child_tuning_f", "child_tuning_d")}
    from childtuning.config import validate
    cfgs = {m: validate(c) for m, c in cfgs.items()}
    cfg = cfgs["vanilla"]
    splits = data.load_task(cfg.task, cfg.paths.glue_dir)
    tok = build_tokenizer(cfg.model, [" ".join(t) for t in splits["train"].texts], cfg.paths.cache)
    feats = data.tokenize(splits["train"], tok, cfg.trainer.max_length, cfg.paths.cache)
    loader = data.BatchLoader(feats, 16, data.Collator(tok, cfg.task.regression), seeding.generator(1, "data"))
    batches = [{k: v.to(device) for k, v in b.items()} for b, _ in zip(loader, range(args.steps + 2))]
    seeding.seed_global(1, "init")
    base = build_model(cfg.model, 2, False, tok)

    runners = {}
    for name in ("vanilla", "child_tuning_f", "child_tuning_d", "official_f"):
        mcfg = cfgs["child_tuning_f" if name == "official_f" else name].method
        if name == "child_tuning_d":
            mcfg.fisher.max_samples = 32          # the pass itself is not what is timed here
        method = OfficialF(mcfg, 1) if name == "official_f" else methods.build(mcfg, 1)
        model = copy.deepcopy(base).to(device)
        method.prepare(model, loader, device)
        opt = torch.optim.AdamW(param_groups(model, mcfg.no_decay, mcfg.no_decay_names, 0.01), lr=4e-5,
                                **_adamw_kernel(cfg.trainer.optimizer_impl))   # as the runner does
        runners[name] = (model, method, opt, [])

    def step(model, method, opt, batch):
        model.train()
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        method.before_optimizer_step(model)
        opt.step()
        method.after_optimizer_step(model, opt)
        opt.zero_grad(set_to_none=True)

    names = list(runners)
    for i, batch in enumerate(batches):
        for name in names[i % len(names):] + names[: i % len(names)]:   # rotate who goes first
            model, method, opt, times = runners[name]
            sync()
            t0 = time.perf_counter()
            step(model, method, opt, batch)
            sync()
            if i >= 2:
                times.append(time.perf_counter() - t0)
    med = {name: statistics.median(r[3]) for name, r in runners.items()}

    # each mask alone, on random gradients of its model (F: all 22.7M weights; D: the eligible ones)
    alone = {}
    for name in ("child_tuning_f", "child_tuning_d", "official_f"):
        model, method, _, _ = runners[name]
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
              "threads": torch.get_num_threads(),
              "step_s": {k: round(v, 4) for k, v in med.items()},
              "overhead_f": round(med["child_tuning_f"] / med["vanilla"] - 1, 4),
              "overhead_d": round(med["child_tuning_d"] / med["vanilla"] - 1, 4),
              "overhead_official_f": round(med["official_f"] / med["vanilla"] - 1, 4),
              "mask_alone_s": {k: round(v, 4) for k, v in alone.items()}}
    for k, v in med.items():
        print(f"{k:16s} median step {v * 1000:7.1f} ms  ({v / med['vanilla'] - 1:+.1%} vs vanilla)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
