"""Exact tests of Child-Tuning's maths: F masks, the Fisher estimate, D's selection, the step."""
import math

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from childtuning import seeding
from childtuning.fisher import fisher_information, order_statistics, top_fraction_masks
from childtuning.masks import BernoulliMasker
from childtuning.methods.base import EligibleRule, param_groups
from helpers.configs import loop_cfg, resolved_method_cfg
from helpers.models import rte_method, tiny_bert_model, tiny_loader


# ---------------------------------------------------------------- Child-Tuning_F masks
def masker_for(shapes, keep, seed, sampler):
    """`fast_flat` is the GPU code path of the fast sampler, run on CPU tensors."""
    masker = BernoulliMasker(shapes, keep, torch.Generator().manual_seed(seed), sampler.replace("_flat", ""))
    if sampler == "fast_flat":
        masker._numpy_path = False
    return masker


@pytest.mark.parametrize("sampler", ["fast", "fast_flat", "official"])
@pytest.mark.parametrize("keep", [0.2, 0.3])
def test_f_mask_fraction_within_binomial_bounds_and_unbiased(sampler, keep):
    shapes = [torch.Size([500, 400]), torch.Size([123]), torch.Size([7, 11, 13])]
    masker = masker_for(shapes, keep, 5, sampler)
    total, kept, scaled_sum = 0, 0, 0.0
    for _ in range(5):
        grads = [torch.ones(s) for s in shapes]
        masker.apply_(grads)
        flat = torch.cat([g.reshape(-1) for g in grads])
        assert set(torch.unique(flat).tolist()) <= {0.0, float(torch.tensor(1 / keep))}
        total += flat.numel()
        kept += int((flat != 0).sum())
        scaled_sum += float(flat.double().sum())
    sd = math.sqrt(keep * (1 - keep) / total)
    assert abs(kept / total - keep) < 5 * sd                 # fraction kept: 5-sigma binomial bound
    assert abs(scaled_sum / total - 1.0) < 5 * sd / keep     # E[mask / keep] = 1
    assert masker.kept_fraction() == pytest.approx(kept / total)


@pytest.mark.parametrize("sampler", ["fast", "fast_flat"])
def test_f_masks_are_fresh_each_step_and_reproducible(sampler):
    shapes = [torch.Size([1000])]
    a, b = masker_for(shapes, 0.3, 1, sampler), masker_for(shapes, 0.3, 1, sampler)
    draws = []
    for _ in range(2):
        ga, gb = torch.ones(1000), torch.ones(1000)
        a.apply_([ga])
        b.apply_([gb])
        assert torch.equal(ga, gb)                     # same stream, same masks
        draws.append(ga != 0)
    assert not torch.equal(draws[0], draws[1])         # a fresh mask every step


def test_f_fast_sampler_resolves_ties_with_extra_bits():
    # keep = 77.5/256: the first byte alone would give 77/256 or 78/256.
    keep = 77.5 / 256
    masker = BernoulliMasker([torch.Size([4_000_000])], keep, torch.Generator().manual_seed(2))
    g = torch.ones(4_000_000)
    masker.apply_([g])
    frac = float((g != 0).double().mean())
    sd = math.sqrt(keep * (1 - keep) / g.numel())
    assert abs(frac - keep) < 5 * sd and abs(frac - 77 / 256) > 5 * sd and abs(frac - 78 / 256) > 5 * sd


def test_f_flat_path_skips_missing_gradients_and_keeps_other_dtypes():
    shapes = [torch.Size([300]), torch.Size([200]), torch.Size([100])]
    masker = masker_for(shapes, 0.5, 3, "fast_flat")
    masker.remember = True
    grads = [torch.ones(300), None, torch.ones(100, dtype=torch.float64)]
    masker.apply_(grads)
    assert set(torch.unique(grads[0]).tolist()) == {0.0, 2.0} and grads[2].dtype == torch.float64
    assert torch.equal(grads[0] != 0, masker.last_masks[0])      # the gradient got its own slice
    assert torch.equal(grads[2] != 0, masker.last_masks[2])


# ---------------------------------------------------------------- Child-Tuning_D selection
def test_percentile_threshold_matches_numpy_on_random_and_tied_data():
    g = torch.Generator().manual_seed(0)
    for trial in range(60):
        tensors = [torch.rand(int(torch.randint(1, 400, (1,), generator=g)), generator=g) ** 3 for _ in range(3)]
        if trial % 2:
            tensors = [(t * 8).round() / 8 for t in tensors]       # many ties
        keep = [0.1, 0.2, 0.3, 0.4, 0.77, 1.0][trial % 6]
        flat = np.concatenate([t.numpy() for t in tensors])
        polar = np.percentile(flat, (1 - keep) * 100)             # the official computation
        masks, thr = top_fraction_masks(tensors, keep)
        assert thr == float(polar)
        assert np.array_equal(np.concatenate([m.numpy() for m in masks]), flat >= polar)


def test_d_keeps_exactly_the_top_k_without_ties():
    scores = [torch.randperm(1000, generator=torch.Generator().manual_seed(1)).float().reshape(10, 100),
              torch.arange(1000, 1500).float()]
    masks, _ = top_fraction_masks(scores, 0.3)
    n = 1500
    k = n - math.ceil((n - 1) * (1 - 0.3))          # official '>=' on the linear percentile
    kept = torch.cat([s[m] for s, m in zip(scores, masks)])
    assert len(kept) == k and float(kept.min()) == n - k   # exactly the k largest values


def test_order_statistics_rejects_negative_values():
    with pytest.raises(ValueError, match="non-negative"):
        order_statistics([torch.tensor([1.0, -2.0])], [0])


def test_fisher_pass_is_mean_of_clipped_squared_batch_gradients():
    # The tiny model's per-tensor gradient norms span ~1e-13 to ~2.5e-3 (median ~2e-4): a bound of
    # 1e-4 clips most tensors and leaves the smallest alone, so both branches of the clip are checked.
    bound = 1e-4
    model, loader = tiny_bert_model(dropout=0.0), tiny_loader(n=12, batch_size=4)
    params = [p for n, p in model.named_parameters() if "layer" in n]
    fisher = fisher_information(model, loader, params, device=torch.device("cpu"), max_grad_norm=bound)
    expected = [torch.zeros_like(p) for p in params]
    clipped = torch.zeros(len(params), dtype=torch.bool)
    batches = list(loader.reshuffled(seeding.generator(0, "data")))   # same order as the pass above
    for batch in batches:
        model.zero_grad()
        model(**batch).loss.backward()
        for i, (e, p) in enumerate(zip(expected, params)):
            g = p.grad.clone()
            clipped[i] |= float(g.norm()) > bound
            g = g * min(1.0, bound / (float(g.norm()) + 1e-6))
            e += g * g / len(batches)
    assert 0 < int(clipped.sum()) < len(params)            # the clip acts on some tensors, not all
    for f, e in zip(fisher, expected):
        torch.testing.assert_close(f, e, rtol=1e-5, atol=1e-12)
    # and it changes the estimate: clipping shrinks every tensor it acted on
    unclipped = fisher_information(model, loader, params, device=torch.device("cpu"), clip_per_tensor=False)
    for f, u, c in zip(fisher, unclipped, clipped.tolist()):
        if c:
            assert float(u.sum()) > float(f.sum()) and not torch.allclose(u, f, rtol=1e-3, atol=0)


def test_fisher_per_example_and_unused_parameters():
    model, loader = tiny_bert_model(dropout=0.0), tiny_loader(n=6, batch_size=3)
    unused = torch.nn.Parameter(torch.ones(3))          # receives no gradient (like XLNet's r_s_bias)
    params = [model.classifier.weight, unused]
    fisher = fisher_information(model, loader, params, device=torch.device("cpu"), clip_per_tensor=False,
                                per_example=True)
    assert torch.count_nonzero(fisher[1]) == 0
    expected = torch.zeros_like(params[0])
    for batch in loader.reshuffled(seeding.generator(0, "data")):
        for i in range(3):
            model.zero_grad()
            model(**{k: v[i: i + 1] for k, v in batch.items()}).loss.backward()
            expected += model.classifier.weight.grad ** 2 / 6
    torch.testing.assert_close(fisher[0], expected, rtol=1e-5, atol=1e-12)


# ---------------------------------------------------------------- methods inside the step
def one_step(model, method, loader, lr=1e-3, wd=0.01, max_norm=1.0):
    """The loop's own train_step, with the gradients seen just before and after the method's masks."""
    import contextlib
    from childtuning.loop import train_step
    opt = torch.optim.AdamW(param_groups(model, method.cfg.no_decay, method.cfg.no_decay_names, wd), lr=lr)
    seen = {}
    real_hook = method.before_optimizer_step

    def spy(m):
        seen["grads"] = {n: p.grad.clone() for n, p in m.named_parameters()}
        real_hook(m)
        seen["masked"] = {n: p.grad.clone() for n, p in m.named_parameters()}
    method.before_optimizer_step = spy
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    train_step(model, method, next(iter(loader)), opt, scheduler, torch.amp.GradScaler("cuda", enabled=False),
               contextlib.nullcontext, max_norm)
    del method.before_optimizer_step
    return seen["grads"], seen["masked"], opt


@pytest.mark.parametrize("name", ["wd_pretrained", "child_tuning_f"])
@pytest.mark.parametrize("overflow", [True, False])
def test_fp16_skipped_step_skips_the_methods_correction(name, overflow):
    """A gradient scaler that finds overflowed gradients skips the optimizer step; the method's
    after-step correction (wd_pretrained's decay towards theta0, Child-Tuning's giving back the
    decay of dropped weights) must not run on a step that did not happen, or it moves the weights.
    A CPU GradScaler stands in for fp16 on a GPU; a gradient hook forces the overflow."""
    import contextlib
    from childtuning.loop import train_step
    over = {"decay_masked_weights": False} if name == "child_tuning_f" else {}
    model, loader = tiny_bert_model(dropout=0.0), tiny_loader()
    method = rte_method(resolved_method_cfg(name, **over), seed=1)
    method.prepare(model, loader, torch.device("cpu"))
    opt = torch.optim.AdamW(param_groups(model, method.cfg.no_decay, method.cfg.no_decay_names, 0.01), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    calls = []
    real_hook = method.after_optimizer_step
    method.after_optimizer_step = lambda m, o: (calls.append(1), real_hook(m, o))
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    if overflow:
        model.classifier.weight.register_hook(lambda grad: grad * float("inf"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_step(model, method, next(iter(loader)), opt, scheduler, scaler, contextlib.nullcontext, 1.0)
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    if overflow:
        assert scaler.get_scale() < 1024.0              # the scaler saw the overflow
        assert calls == [] and moved == []
    else:
        assert calls == [1] and moved


@pytest.mark.parametrize("name", ["child_tuning_f", "child_tuning_d"])
def test_non_eligible_weights_get_unmasked_gradients(name):
    model, loader = tiny_bert_model(), tiny_loader()
    method = rte_method(resolved_method_cfg(name, eligible={"include": ["layer"], "exclude": []}), seed=1)
    method.prepare(model, loader, torch.device("cpu"))
    grads, masked, _ = one_step(model, method, loader)
    eligible = set(method.names)
    assert eligible and all("layer" in n for n in eligible)
    for n in grads:
        if n not in eligible:
            assert torch.equal(grads[n], masked[n]), n
    dropped = sum(int(((masked[n] == 0) & (grads[n] != 0)).sum()) for n in eligible)
    assert dropped > 0


def test_d_never_kept_weight_changes_only_through_weight_decay():
    model, loader = tiny_bert_model(), tiny_loader()
    method = rte_method(resolved_method_cfg("child_tuning_d"), seed=1)
    method.prepare(model, loader, torch.device("cpu"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lr, wd = 1e-3, 0.01
    for _ in range(3):
        grads, masked, opt = one_step(model, method, loader, lr=lr, wd=wd)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    params = dict(model.named_parameters())
    for n, mask in zip(method.names, method.masks):
        p = params[n]
        expected = before[n].clone()
        if id(p) in decayed:
            for _ in range(3):
                expected.mul_(1 - lr * wd)          # torch AdamW's decoupled decay, the only change
        assert torch.equal(p.detach()[~mask], expected[~mask]), n
        if mask.any():
            assert not torch.equal(p.detach()[mask], before[n][mask]), n


def test_decay_masked_weights_switch_off_keeps_never_kept_weights():
    model, loader = tiny_bert_model(), tiny_loader()
    method = rte_method(resolved_method_cfg("child_tuning_d", decay_masked_weights=False), seed=1)
    method.prepare(model, loader, torch.device("cpu"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    one_step(model, method, loader, lr=1e-2, wd=0.1)
    params = dict(model.named_parameters())
    for n, mask in zip(method.names, method.masks):
        torch.testing.assert_close(params[n].detach()[~mask], before[n][~mask], rtol=0, atol=1e-7)


def test_step_order_is_backward_clip_mask_optimizer_step(monkeypatch):
    from childtuning import loop
    events = []
    real_clip, real_step = torch.nn.utils.clip_grad_norm_, torch.optim.AdamW.step
    real_backward = torch.Tensor.backward
    monkeypatch.setattr(torch.Tensor, "backward", lambda self, *a, **k: (events.append("backward"), real_backward(self, *a, **k))[1])
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: (events.append("clip"), real_clip(*a, **k))[1])
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, *a, **k: (events.append("step"), real_step(self, *a, **k))[1])
    model, loader = tiny_bert_model(), tiny_loader(n=8)
    method = rte_method(resolved_method_cfg("child_tuning_f"), seed=1)
    real_mask = type(method).before_optimizer_step
    monkeypatch.setattr(type(method), "before_optimizer_step", lambda self, m: (events.append("mask"), real_mask(self, m))[1])
    loop.train(model, method, loader, tiny_loader(n=4), loop_cfg(), torch.device("cpu"))
    assert events == ["backward", "clip", "mask", "step"] * 2


@pytest.mark.parametrize("impl", ["for_loop", "fused"])
def test_d_equals_independent_reference_adamw_on_masked_gradients(impl):
    """Ten steps of our loop with Child-Tuning_D == masked gradients fed to a hand-written AdamW
    (bit-identical with torch's reference AdamW loop; to float rounding with the fused kernel)."""
    from childtuning import loop
    lr, wd, b1, b2, eps, steps = 1e-3, 0.01, 0.9, 0.999, 1e-8, 10
    cfg = loop_cfg(lr=lr, weight_decay=wd, adam_beta1=b1, adam_beta2=b2, adam_eps=eps, optimizer_impl=impl)
    ours, method = tiny_bert_model(dropout=0.0), rte_method(resolved_method_cfg("child_tuning_d"), seed=1)
    loop.train(ours, method, tiny_loader(n=4 * steps), tiny_loader(n=4), cfg, torch.device("cpu"))

    ref = tiny_bert_model(dropout=0.0)                  # same initial weights (same seed)
    masks = dict(zip(method.names, method.masks))
    no_decay = {n for n, _ in ref.named_parameters() if "bias" in n or "LayerNorm.weight" in n}
    state = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in ref.named_parameters()}
    for t, batch in enumerate(tiny_loader(n=4 * steps), start=1):
        ref.zero_grad()
        ref(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        lr_t = lr * max(0.0, (steps - (t - 1)) / steps)    # linear decay, no warmup (official CT)
        with torch.no_grad():
            for n, p in ref.named_parameters():
                g = p.grad * masks[n] if n in masks else p.grad
                m, v = state[n]
                p.mul_(1 - lr_t * (0.0 if n in no_decay else wd))
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v.sqrt() / (1 - b2 ** t) ** 0.5).add_(eps)
                p.addcdiv_(m, denom, value=-lr_t / (1 - b1 ** t))
    for (n, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
        tol = {"rtol": 0, "atol": 0} if impl == "for_loop" else {"rtol": 1e-5, "atol": 1e-7}
        torch.testing.assert_close(p, q, **tol, msg=n)


def test_eligibility_rule_official_d_on_all_architectures():
    rule = EligibleRule(include=["layer"], exclude=[])
    for arch, extra in [("bert", {}), ("roberta", {}), ("electra", {"embedding_size": 8}),
                        ("xlnet", {"d_model": 16, "n_layer": 2, "n_head": 2, "d_inner": 32})]:
        dims = {} if arch == "xlnet" else {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                                           "intermediate_size": 32}
        model = AutoModelForSequenceClassification.from_config(AutoConfig.for_model(arch, vocab_size=60, **dims, **extra))
        names = [n for n, _ in rule.select(model)]
        assert names and all(".layer." in n or ".layer" in n for n in names), arch
        assert not any("embeddings" in n or "classifier" in n or "sequence_summary" in n for n in names), arch
