"""The five prior fine-tuning methods (weight decay towards the pretrained weights, Top-K, Mixout,
RecAdam, R3F) and their combinations with Child-Tuning: exact maths on tiny models, the rule that
composes methods, and the configs they refuse."""
import contextlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from transformers import AutoConfig, AutoModelForSequenceClassification

import childtuning.train as train_mod
from childtuning import loop
from childtuning.config import validate
from childtuning.errors import InputError
from childtuning.methods import Method, TaskInfo, register
from childtuning.methods import build as build_method
from childtuning.methods.composite import composite_class
from childtuning.methods.mixout import MixoutLinear, linears_next_to_dropout
from childtuning.methods.r3f import symmetric_kl
from childtuning.methods.recadam import ANNEALS, RecAdamOptimizer
from childtuning.record import run_id
from helpers.configs import compose_cfg
from helpers.models import tiny_loader
from helpers.paths import REPO

TASK = TaskInfo("rte", regression=False, num_labels=2)
ARCHS = ("bert", "roberta", "electra", "xlnet")
PRIORS = ("wd_pretrained", "top_k", "mixout", "recadam", "r3f")
TRAINER = OmegaConf.create({"lr": 1e-3, "weight_decay": 0.01, "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_eps": 1e-8,
                            "warmup_ratio": 0.0, "optimizer": "adamw_torch", "optimizer_impl": "for_loop",
                            "max_grad_norm": 1.0})


def method_cfg(file, /, **over):
    """A shipped method config (conf/method/<file>.yaml) with overrides."""
    return OmegaConf.merge(OmegaConf.load(REPO / "conf" / "method" / f"{file}.yaml"), over)


def tiny_model(arch="bert", seed=0, dropout=True):
    """A tiny random model of conf/model/tiny_<arch>.yaml's shape (vocabulary of 64 tokens)."""
    torch.manual_seed(seed)
    shape = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / f"tiny_{arch}.yaml").config)
    if not dropout:
        shape.update({"dropout": 0.0} if arch == "xlnet" else {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0})
    config = AutoConfig.for_model(arch, vocab_size=64, pad_token_id=0, num_labels=2, **shape)
    return AutoModelForSequenceClassification.from_config(config)


def batch(n=4, length=10, seed=0, left_pad=False):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 64, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    for i in range(n):                       # examples of different lengths: some padding
        pad = i * 2
        if pad:
            (mask[i, :pad] if left_pad else mask[i, length - pad:]).zero_()
    ids = ids.masked_fill(mask == 0, 0)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 2, (n,), generator=g)}


def prepared(name, model, **over):
    method = build_method(method_cfg(name, **over), 1, TASK)
    method.prepare(model, None, torch.device("cpu"))
    return method


def step(model, method, b, total_steps=10):
    optimizer, scheduler = method.configure_optimizer(model, TRAINER, total_steps)
    no_amp = torch.amp.GradScaler("cuda", enabled=False)
    model.train()
    loop.train_step(model, method, b, optimizer, scheduler, no_amp, contextlib.nullcontext, 1.0)
    return optimizer


def perturb(model, scale=0.01, seed=1):
    """Move every weight a little away from its starting value (as training would)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


# ---------------------------------------------------------------- weight decay towards pretrained
def test_coupled_pull_adds_strength_times_distance_to_the_gradient():
    model = tiny_model(dropout=False)
    method = prepared("wd_pretrained", model, form="coupled", coupled_strength=0.5)
    starts = {n: p.detach().clone() for n, p in model.named_parameters()}
    perturb(model)
    b = batch()
    model.zero_grad()
    model(**b).loss.backward()
    task_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    loss, terms = method.loss(model, b, model(**b))
    loss.backward()
    distance_sq = sum(float((p.detach() - starts[n]).pow(2).sum()) for n, p in model.named_parameters()
                      if n.startswith("bert."))
    assert float(terms["l2_to_pretrained"]) == pytest.approx(0.25 * distance_sq, rel=1e-5)
    for n, p in model.named_parameters():
        pull = 0.5 * (p.detach() - starts[n]) if n.startswith("bert.") else 0.0   # the head is not pulled
        torch.testing.assert_close(p.grad, task_grads[n] + pull, rtol=1e-5, atol=1e-7)


def test_decoupled_pull_recentres_adamws_decay_on_the_pretrained_weights():
    model = tiny_model(dropout=False)
    method = prepared("wd_pretrained", model, form="decoupled")
    starts = {n: p.detach().clone() for n, p in model.named_parameters()}
    perturb(model)
    reference = tiny_model(dropout=False)
    reference.load_state_dict(model.state_dict())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    b = batch()
    optimizer = step(model, method, b)
    # reference: the same AdamW step without decay, then the decay applied by hand
    decayed = {n for n, p in model.named_parameters() for g in optimizer.param_groups
               if g["weight_decay"] > 0 and any(p is q for q in g["params"])}
    assert decayed and not any("LayerNorm" in n or n.endswith("bias") for n in decayed)
    ref_opt = torch.optim.AdamW([p for p in reference.parameters()], lr=1e-3, weight_decay=0.0, foreach=False)
    reference.train()
    reference(**b).loss.backward()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
    ref_opt.step()
    lr_wd = 1e-3 * 0.01
    for n, p in model.named_parameters():
        expected = dict(reference.named_parameters())[n].detach()
        if n in decayed:
            centre = starts[n] if n.startswith("bert.") else torch.zeros_like(p)   # the head decays towards 0
            expected = expected - lr_wd * (before[n] - centre)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=1e-9)


def test_wd_pretrained_records_the_distance_per_layer():
    model = tiny_model()
    method = prepared("wd_pretrained", model)
    with torch.no_grad():
        model.bert.encoder.layer[1].output.dense.weight.add_(1.0)
    stats = method.stats()
    size = model.bert.encoder.layer[1].output.dense.weight.numel()
    assert stats["distance_to_pretrained"]["per_layer"]["layer.1"] == pytest.approx(math.sqrt(size))
    assert stats["distance_to_pretrained"]["per_layer"]["layer.0"] == 0.0
    assert stats["head_distance_to_init"] == 0.0 and stats["form"] == "decoupled"


# ---------------------------------------------------------------- Top-K
@pytest.mark.parametrize("arch", ARCHS)
def test_top_k_trains_only_the_top_layers_and_leaves_the_rest_bitwise_unchanged(arch):
    model = tiny_model(arch)
    method = prepared("top_k", model, top_k=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for s in range(2):
        optimizer = step(model, method, batch(seed=s, left_pad=arch == "xlnet"))
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    for n, p in model.named_parameters():
        top_or_head = ".layer.1." in f".{n}" or not n.startswith(model.base_model_prefix + ".") or "pooler" in n
        assert p.requires_grad == top_or_head, n
        assert (id(p) in in_optimizer) == top_or_head, n           # the optimizer sees trainable weights only
        if not top_or_head:
            assert torch.equal(p, before[n]), n
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert any(".layer.1." in f".{n}" for n in changed)
    assert method.stats()["trained_layers"] == [1] and method.stats()["encoder_layers"] == 2


def test_top_k_refuses_more_layers_than_the_model_has_and_a_pattern_that_matches_nothing():
    with pytest.raises(InputError, match=r"has 2 encoder layers; set method.top_k=2 or less, or .*conf/method_model/top_k_<model>.yaml"):
        prepared("top_k", tiny_model(), top_k=3)
    with pytest.raises(InputError, match="matches no encoder parameter"):
        prepared("top_k", tiny_model(), layer_pattern=r"blocks\.(\d+)\.")


# ---------------------------------------------------------------- Mixout
def mixout_linear(p=0.9, gradient="original", seed=0):
    """A tiny BERT after Mixout's surgery, its first query layer moved away from its target."""
    model = tiny_model(dropout=False)
    method = prepared("mixout", model, p=p, gradient=gradient)
    layer = model.bert.encoder.layer[0].attention.self.query
    with torch.no_grad():
        layer.weight.add_(torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(seed)))
    return model, method, layer


def test_mixout_expectation_is_the_current_weight_column_by_column():
    _, _, layer = mixout_linear(p=0.9)
    w, u = layer.weight.detach(), layer.mixout_target
    layer.train()
    eye = torch.eye(layer.in_features)
    n = 4000
    with torch.no_grad():
        draws = torch.stack([layer(eye) - layer.bias for _ in range(n)]).transpose(1, 2)   # W_mix, [n, out, in]
    kept_column = (u + (w - u) / 0.1).unsqueeze(0)
    for j in range(layer.in_features):               # each column is whole: all kept or all swapped
        col = draws[:, :, j]
        kept = torch.isclose(col, kept_column[:, :, j], rtol=1e-5, atol=1e-6).all(1)
        swapped = torch.isclose(col, u[:, j].unsqueeze(0), rtol=1e-5, atol=1e-6).all(1)
        assert bool((kept ^ swapped).all())
    keep_rate = float(torch.isclose(draws, kept_column, rtol=1e-5, atol=1e-6).float().mean())
    assert abs(keep_rate - 0.1) < 5 * math.sqrt(0.1 * 0.9 / (n * layer.in_features))
    # Monte Carlo: std of W_mix is |W - u| sqrt(p / (1 - p)) = 3 |W - u|; 5-sigma bound on the mean
    bound = 5 * 3 * (w - u).abs() / math.sqrt(n) + 1e-6
    assert bool(((draws.double().mean(0) - w.double()).abs() <= bound).all())
    assert not torch.allclose(draws.mean(0), u)      # not trivially the target


def test_mixout_eval_mode_uses_the_current_weight():
    _, _, layer = mixout_linear()
    x = torch.randn(3, layer.in_features)
    layer.eval()
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    layer.train()
    assert not torch.allclose(layer(x), F.linear(x, layer.weight, layer.bias))


@pytest.mark.parametrize("gradient,scale", [("original", 1.0), ("exact", 1 / (1 - 0.9))])
def test_mixout_gradient_reaches_kept_columns_only(gradient, scale):
    _, _, layer = mixout_linear(gradient=gradient)
    eye = torch.eye(layer.in_features)
    upstream = torch.randn(layer.in_features, layer.out_features, generator=torch.Generator().manual_seed(3))
    layer.train()
    layer.weight.grad = None
    out = layer(eye)
    (out * upstream).sum().backward()
    kept = ~torch.isclose(out.detach() - layer.bias.detach(), layer.mixout_target.T, rtol=1e-5, atol=1e-6).all(1)
    assert 0 < int(kept.sum()) < layer.in_features
    expected = upstream.T * kept.float().unsqueeze(0) * scale        # d(sum out*R)/dW_mix = R^T
    torch.testing.assert_close(layer.weight.grad, expected, rtol=1e-5, atol=1e-7)


def test_mixout_targets_are_buffers_that_move_with_the_model_and_stay_out_of_its_state_dict():
    model, _, layer = mixout_linear()
    assert isinstance(layer, MixoutLinear) and isinstance(layer, torch.nn.Linear)
    state_keys = set(model.state_dict())
    assert "bert.encoder.layer.0.attention.self.query.mixout_target" not in state_keys
    assert state_keys == set(tiny_model(dropout=False).state_dict())     # saved models unchanged
    model.to(torch.float64)                                              # .to() moves buffers (a dtype here)
    assert layer.mixout_target.dtype == torch.float64


def test_mixout_uses_its_own_stream_and_switches_dropout_off():
    model = tiny_model()                                                 # dropout 0.1 everywhere
    method = prepared("mixout", model)
    assert all(m.p == 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    assert method.stats()["dropouts_disabled"] > 0
    model.train()
    state = torch.get_rng_state()
    model(**batch())
    assert torch.equal(torch.get_rng_state(), state)                     # masks never touch the global RNG
    a, b = tiny_model(), tiny_model()
    prepared("mixout", a), prepared("mixout", b)
    a.train(), b.train()
    assert torch.equal(a(**batch()).logits, b(**batch()).logits)         # same seed, same masks


def test_mixout_covers_every_linear_of_bert_and_refuses_xlnets_raw_attention_unless_allowed():
    stats = prepared("mixout", tiny_model()).stats()
    assert stats["mixed_fraction_of_weight_matrices"] == 1.0 and stats["uncovered_weight_matrices"] == []
    with pytest.raises(InputError, match=r"rel_attn\.q.*allow_partial_coverage"):
        prepared("mixout", tiny_model("xlnet"))
    stats = prepared("mixout", tiny_model("xlnet"), allow_partial_coverage=True).stats()
    assert 0 < stats["mixed_fraction_of_weight_matrices"] < 1
    assert "transformer.layer.0.rel_attn.q" in stats["uncovered_weight_matrices"]


def test_mixout_next_to_dropout_covers_the_linears_beside_a_dropout():
    model = tiny_model()
    names = linears_next_to_dropout(model, torch.device("cpu"))
    expected = {"classifier"} | {f"bert.encoder.layer.0.attention.self.{x}" for x in ("query", "key", "value")}
    expected |= {f"bert.encoder.layer.{i}.{x}" for i in (0, 1) for x in ("attention.output.dense", "output.dense")}
    assert names == expected
    method = prepared("mixout", tiny_model(), cover="next_to_dropout")
    assert method.stats()["covered_layers"] == len(expected)


# ---------------------------------------------------------------- RecAdam
def test_recadam_anneal_functions_match_the_authors_formulas():
    for t in (1, 5, 10, 11, 30):
        assert ANNEALS["sigmoid"](t, 0.5, 10, 1.0) == pytest.approx(float(1 / (1 + np.exp(-0.5 * (t - 10)))), rel=1e-12)
        assert ANNEALS["linear"](t, 0.5, 10, 0.8) == pytest.approx(min(1, t / 10) * 0.8)
        assert ANNEALS["constant"](t, 0.5, 10, 0.7) == 0.7
    assert ANNEALS["sigmoid"](1, 1.0, 5000, 1.0) == pytest.approx(math.exp(-4999), abs=0)   # no overflow far below t0


def test_recadam_lambda_and_pull_match_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    anchor = torch.randn(5, generator=g, dtype=torch.float64)
    theta = torch.nn.Parameter(anchor.clone())
    head = torch.nn.Parameter(torch.randn(3, generator=g, dtype=torch.float64))
    lr, b1, b2, eps, wd, k, t0, w, gamma = 1e-2, 0.9, 0.999, 1e-8, 0.01, 0.5, 2, 1.0, 50.0
    opt = RecAdamOptimizer([{"params": [theta], "anchors": [anchor], "weight_decay": wd},
                            {"params": [head], "anchors": None, "weight_decay": 0.0}],
                           lr=lr, betas=(b1, b2), eps=eps, anneal="sigmoid", k=k, t0=t0, anneal_w=w, pretrain_cof=gamma)
    th, hd = anchor.clone(), head.detach().clone()
    m, v, mh, vh = [torch.zeros_like(x) for x in (th, th, hd, hd)]
    for t in range(1, 5):
        grad, grad_h = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
        theta.grad, head.grad = grad.clone(), grad_h.clone()
        opt.step()
        lam = w / (1 + math.exp(-k * (t - t0)))
        size = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m, v = b1 * m + (1 - b1) * grad, b2 * v + (1 - b2) * grad * grad
        th = th - size * lam * m / (v.sqrt() + eps)
        th = th - lr * (w - lam) * gamma * (th - anchor)
        th = th - lr * wd * th
        mh, vh = b1 * mh + (1 - b1) * grad_h, b2 * vh + (1 - b2) * grad_h * grad_h
        hd = hd - size * mh / (vh.sqrt() + eps)                     # the head: plain Adam, no λ, no pull
        torch.testing.assert_close(theta.detach(), th, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(head.detach(), hd, rtol=1e-12, atol=1e-14)
        assert opt.last_lambda == pytest.approx(lam, rel=1e-12)


def test_recadam_pulls_only_pretrained_weights_and_resolves_t0_from_the_run_length():
    model = tiny_model(dropout=False)
    method = prepared("recadam", model)
    optimizer = step(model, method, batch(), total_steps=20)
    assert isinstance(optimizer, RecAdamOptimizer) and method.t0 == 6          # 0.3 * 20
    anchored = {id(p) for g in optimizer.param_groups if g["anchors"] is not None for p in g["params"]}
    for n, p in model.named_parameters():
        assert (id(p) in anchored) == n.startswith("bert."), n
    assert set(optimizer.state_dict()["param_groups"][0]) >= {"anchors", "lr"}   # anchors not serialised
    assert not any(torch.is_tensor(g["anchors"]) or isinstance(g["anchors"], list)
                   for g in optimizer.state_dict()["param_groups"])
    with pytest.raises(InputError, match="t0=6 is not below the run's 5"):
        method.cfg.t0 = 6
        method.configure_optimizer(model, TRAINER, 5)


# ---------------------------------------------------------------- R3F
def r3f_pipeline(arch, tmp_path, glue, *extra):
    cfg = validate(compose_cfg(f"model=tiny_{arch}", "task=rte", "task.max_train_samples=8", "trainer.batch_size=8",
                               "trainer.epochs=1", "impl.progress_bar=false", f"paths.results={tmp_path}",
                               f"paths.glue_dir={glue}", f"paths.cache={tmp_path}/cache", "method=r3f", *extra))
    tokenizer, features = train_mod.tokenize_splits(cfg, train_mod.load_data(cfg))
    loader, _ = train_mod.build_loaders(cfg, tokenizer, features)
    return cfg, next(iter(loader)), train_mod.init_model(cfg, tokenizer, torch.device("cpu")), train_mod.build_method(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["padded", "varlen", "varlen_batched", "rows"])
@pytest.mark.parametrize("arch", ARCHS)
def test_r3f_kl_is_zero_without_noise_in_eval_mode(arch, layout, tmp_path, synthetic_glue):
    from childtuning import packing
    packed = layout != "padded"
    _, b, model, method = r3f_pipeline(arch, tmp_path, synthetic_glue, "method.eps=0.0",
                                       f"impl.packing={str(packed).lower()}",
                                       *([f"impl.packed_layout={layout}"] if packed else []))
    if packing.is_packed(b):
        assert packed and arch != "xlnet"                                # XLNet always pads
    else:
        assert int((b["attention_mask"] == 0).sum()) > 0                # the batch has padding
    model.eval()
    with torch.no_grad():
        outputs = packing.forward(model, b)
        _, terms = method.loss(model, b, outputs)
    assert float(terms["symmetric_kl"]) == 0.0
    method.cfg.eps = 1e-2                                              # the noisy pass is really taken
    with torch.no_grad():
        _, terms = method.loss(model, b, outputs)
    assert float(terms["symmetric_kl"]) > 0


def test_symmetric_kl_equals_fairseqs_two_kl_div_terms():
    a, b = torch.randn(6, 3), torch.randn(6, 3)
    fairseq = (F.kl_div(F.log_softmax(a, -1), F.softmax(b, -1), reduction="sum")
               + F.kl_div(F.log_softmax(b, -1), F.softmax(a, -1), reduction="sum")) / 6
    torch.testing.assert_close(symmetric_kl(a, b), fairseq, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_r3f_on_a_regression_task_is_vanilla_unless_switched(tmp_path, synthetic_glue):
    def run(*extra):
        return train_mod.run(compose_cfg("model=tiny_bert", "task=stsb", "task.max_train_samples=16", "trainer.epochs=1",
                                         "trainer.batch_size=8", "impl.progress_bar=false", f"paths.results={tmp_path}",
                                         f"paths.glue_dir={synthetic_glue}", f"paths.cache={tmp_path}/cache", *extra))
    vanilla, r3f = run(), run("method=r3f")
    assert r3f["history"][0]["train_loss"] == vanilla["history"][0]["train_loss"]
    assert r3f["metrics"] == vanilla["metrics"] and "loss_terms" not in r3f["history"][0]
    mse = run("method=r3f", "method.regression_term=mse")
    assert mse["history"][0]["loss_terms"]["noise_mse"] > 0 and mse["method_stats"]["noisy_passes"] == 2


# ---------------------------------------------------------------- composition
COMBINATIONS = [f"{ct}+{prior}" for ct in ("child_tuning_f", "child_tuning_d") for prior in PRIORS]


def part_override(combo, key, value):
    prior = combo.split("+")[1]
    return f"method.parts.{prior}.{key}={value}"


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("combo", COMBINATIONS)
def test_each_combination_trains_on_every_architecture_or_is_refused(combo, arch, tmp_path, synthetic_glue):
    extra = [part_override(combo, "top_k", 1)] if combo.endswith("top_k") else []
    if combo.startswith("child_tuning_d"):
        extra.append("method.parts.child_tuning_d.fisher.max_samples=8")
    cfg = validate(compose_cfg(f"model=tiny_{arch}", "task=rte", "task.max_train_samples=16", "trainer.batch_size=8",
                               "trainer.epochs=1", "impl.progress_bar=false", f"paths.results={tmp_path}",
                               f"paths.glue_dir={synthetic_glue}", f"paths.cache={tmp_path}/cache", f"method={combo}",
                               *extra))
    tokenizer, features = train_mod.tokenize_splits(cfg, train_mod.load_data(cfg))
    loader, dev = train_mod.build_loaders(cfg, tokenizer, features)
    model = train_mod.init_model(cfg, tokenizer, torch.device("cpu"))
    method = train_mod.build_method(cfg)
    if combo.endswith("mixout") and arch == "xlnet":                   # refused by Mixout's coverage rule
        with pytest.raises(InputError, match="allow_partial_coverage"):
            loop.train(model, method, loader, dev, cfg, torch.device("cpu"))
        return
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    state = loop.train(model, method, loader, dev, cfg, torch.device("cpu"))
    assert state["status"] == "ok" and state["step"] == 2           # (RecAdam's t0 must fall inside the run)
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    stats = method.stats()
    assert set(stats["parts"]) == set(combo.split("+"))


def test_the_rule_orders_prepare_by_stage_not_by_name():
    assert composite_class(("child_tuning_d", "top_k")).prepare_order() == ["top_k", "child_tuning_d"]
    assert composite_class(("child_tuning_f", "mixout")).prepare_order() == ["mixout", "child_tuning_f"]
    assert composite_class(("r3f", "child_tuning_d")).prepare_order() == ["child_tuning_d"]


def test_child_tuning_after_top_k_sees_only_the_trainable_layers():
    model = tiny_model()
    cfg = OmegaConf.create({"name": "child_tuning_d+top_k",
                            "parts": {"child_tuning_d": method_cfg("child_tuning_d", keep_ratio=0.3,
                                                                   fisher={"max_grad_norm": 1.0, "batch_size": 4}),
                                      "top_k": method_cfg("top_k", top_k=1)}})
    method = build_method(cfg, 1, TASK)
    method.prepare(model, tiny_loader(n=8), torch.device("cpu"))      # random (ids, label) batches
    eligible = method.parts["child_tuning_d"].names
    assert eligible and all(".layer.1." in n for n in eligible)       # CT_D's eligible rule is `layer`


def runner_cfg(method, *extra):
    return compose_cfg("model=tiny_bert", "task=rte", f"method={method}", *extra)


def with_method(base, method: dict):
    cfg = base.copy()
    cfg.method = OmegaConf.create(method)
    return cfg


def test_two_parts_using_one_hook_are_refused_naming_both():
    base = runner_cfg("vanilla")
    coupled = method_cfg("wd_pretrained", form="coupled")
    with pytest.raises(InputError, match=r"wd_pretrained and r3f both use the `loss` hook"):
        validate(with_method(base, {"name": "wd_pretrained+r3f", "parts": {"wd_pretrained": coupled, "r3f": method_cfg("r3f")}}))
    with pytest.raises(InputError, match=r"recadam and _test_second_optimizer both use the `configure_optimizer`"):
        validate(with_method(base, {"name": "recadam+_test_second_optimizer",
                                    "parts": {"recadam": method_cfg("recadam"),
                                              "_test_second_optimizer": method_cfg("vanilla", name="_test_second_optimizer")}}))
    # settings decide: decoupled decay and Child-Tuning's undo of decay both correct the step
    with pytest.raises(InputError, match=r"child_tuning_d and wd_pretrained both use the `after_optimizer_step`"):
        validate(runner_cfg("child_tuning_d+wd_pretrained", "method.parts.child_tuning_d.decay_masked_weights=false"))
    assert validate(runner_cfg("child_tuning_d+wd_pretrained")).method.name == "child_tuning_d+wd_pretrained"


@register
class _SecondOptimizer(Method):
    """Brings its own optimizer (as RecAdam does)."""
    name = "_test_second_optimizer"

    def configure_optimizer(self, model, trainer, total_steps):
        return super().configure_optimizer(model, trainer, total_steps)


def test_a_combination_takes_the_optimizer_settings_of_its_optimizer_part_or_first_part():
    model = tiny_model()
    method = build_method(validate(runner_cfg("child_tuning_d+mixout")).method, 1, TASK)
    _, scheduler = method.configure_optimizer(model, OmegaConf.merge(TRAINER, {"warmup_ratio": 0.5}), 10)
    assert scheduler.get_last_lr()[0] == pytest.approx(1e-3)          # Child-Tuning_D's warmup_ratio 0
    assert "configure_optimizer" not in method.owners                 # no part defines one: the first part's
    method = build_method(validate(runner_cfg("child_tuning_d+recadam")).method, 1, TASK)
    assert method.owners["configure_optimizer"] == "recadam"
    # preset=fair_warmup reaches every part of a combination: vanilla's (the trainer's) warm-up
    fair = validate(runner_cfg("child_tuning_d+mixout", "preset=fair_warmup"))
    method = build_method(fair.method, 1, TASK)
    assert all(p.cfg.warmup_ratio is None for p in method.parts.values())
    _, scheduler = method.configure_optimizer(tiny_model(), OmegaConf.merge(TRAINER, {"warmup_ratio": 0.5}), 10)
    assert scheduler.get_last_lr()[0] == pytest.approx(0.0)            # step 0 of a 5-step warm-up
    # ... and enters the run id; the default (each part's own) leaves the old ids as they were
    plain = validate(runner_cfg("child_tuning_d+mixout"))
    assert run_id(fair) != run_id(plain)
    assert "warmup_ratio" not in composite_class(("child_tuning_d", "mixout")).id_part(
        OmegaConf.to_container(plain.method, resolve=True))


# The combinations the committed studies run (prior_methods_cpu): each composed by the rule, no file of its own.
COMBINATIONS = [f"child_tuning_{v}+{m}" for v in "fd" for m in ("mixout", "r3f", "recadam", "top_k", "wd_pretrained")]


def test_no_combination_has_a_file_and_every_pair_composes_by_the_rule():
    assert not list((REPO / "conf" / "method").glob("*+*.yaml"))
    from hydra.core.config_store import ConfigStore

    stored = {name[:-5] for name in ConfigStore.instance().list("method")}
    assert set(COMBINATIONS) <= stored and "mixout+child_tuning_d" in stored and "vanilla+mixout" not in stored
    # the rule's node for a pair: each part's files under parts.<name>, nothing else
    from childtuning.sweep import combination_node
    node = combination_node(("child_tuning_d", "mixout"))
    assert node["name"] == "child_tuning_d+mixout" and node["defaults"][0] == "child_tuning_d@parts.child_tuning_d"


@pytest.mark.slow
def test_combination_configs_hold_both_parts_and_their_run_ids_follow_each_part():
    base = validate(runner_cfg("child_tuning_d+mixout", "task=mrpc"))
    assert base.method.parts.child_tuning_d.keep_ratio == 0.1          # Child-Tuning_D's MRPC value (method_task)
    assert base.method.parts.mixout.p == 0.9
    ids = {run_id(base), run_id(validate(runner_cfg("child_tuning_d+mixout", "task=mrpc", "method.parts.mixout.p=0.8"))),
           run_id(validate(runner_cfg("child_tuning_d+mixout", "task=mrpc", "method.parts.child_tuning_d.keep_ratio=0.2"))),
           run_id(validate(runner_cfg("mixout", "task=mrpc")))}
    assert len(ids) == 4
    for name in COMBINATIONS:
        cfg = validate(runner_cfg(name))
        assert cfg.method.name == name and list(cfg.method.parts) == name.split("+")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["minilm", "tiny_bert"])
def test_each_part_of_a_combination_gets_the_settings_it_has_alone(model):
    """A part's per-task and per-model files (conf/method_task, conf/method_model) apply inside any
    combination, so no combination needs its own copy: on MiniLM, Top-K's K is 3 alone and in
    child_tuning_{f,d}+top_k, and Child-Tuning_D's MRPC keep ratio is 0.1 alone and combined."""
    for name in COMBINATIONS:
        combined = compose_cfg(f"model={model}", "task=mrpc", f"method={name}").method
        for part in name.split("+"):
            alone = compose_cfg(f"model={model}", "task=mrpc", f"method={part}").method
            assert OmegaConf.to_container(combined.parts[part]) == OmegaConf.to_container(alone), (name, part)
    expected_k = 3 if model == "minilm" else 6        # conf/method_model/top_k_minilm.yaml; top_k.yaml
    assert compose_cfg(f"model={model}", "method=child_tuning_d+top_k").method.parts.top_k.top_k == expected_k


# ---------------------------------------------------------------- bad configs
@pytest.mark.slow
@pytest.mark.parametrize("method,override,message", [
    ("wd_pretrained", "method.form=both", "method.form"),
    ("wd_pretrained", "trainer.weight_decay=0.0", "trainer.weight_decay"),
    ("wd_pretrained", "method.coupled_strength=0.0", "positive strength"),   # (with form=coupled below)
    ("top_k", "method.top_k=-1", ">= 0"),
    ("top_k", "method.layer_pattern=layer", "group"),
    ("mixout", "method.p=1.0", r"\[0, 1\)"),
    ("mixout", "method.cover=dropout", "method.cover"),
    ("mixout", "method.gradient=true", "method.gradient"),
    ("recadam", "method.anneal=cosine", "method.anneal"),
    ("recadam", "method.t0=-5", "positive number of steps"),
    ("recadam", "method.t0_fraction=1.0", r"\(0, 1\)"),
    ("recadam", "method.k=0", "method.k"),
    ("r3f", "method.noise=laplace", "method.noise"),
    ("r3f", "method.regression_term=kl", "method.regression_term"),
    ("child_tuning_d+mixout", "+method.parts.mixout.q=0.5", "method.parts.mixout"),
    ("child_tuning_d+mixout", "method.parts.mixout.p=1.5", r"\[0, 1\)"),
    ("child_tuning_d+mixout", "method.parts.child_tuning_d.keep_ratio=0", "keep_ratio"),
])
def test_bad_method_configs_are_refused_before_any_data_is_read(method, override, message):
    extra = ["method.form=coupled"] if "coupled_strength" in override else []
    with pytest.raises(InputError, match=message):
        validate(runner_cfg(method, override, *extra))


def test_recadam_refuses_an_absolute_t0_past_the_runs_steps_at_validation():
    # 16 examples, batch 8, 2 epochs: 4 steps
    cfg = runner_cfg("recadam", "task.max_train_samples=16", "trainer.batch_size=8", "trainer.epochs=2", "method.t0=4")
    with pytest.raises(InputError, match="t0=4 is not below the run's 4"):
        validate(cfg)
    assert validate(runner_cfg("recadam", "task.max_train_samples=16", "trainer.batch_size=8", "trainer.epochs=2",
                               "method.t0=3")).method.t0 == 3


def test_a_combination_needs_each_part_under_parts():
    with pytest.raises(InputError, match="expected one entry per part"):
        validate(with_method(runner_cfg("vanilla"), {"name": "child_tuning_d+mixout",
                                                     "parts": {"mixout": method_cfg("mixout")}}))


@pytest.mark.slow
@pytest.mark.parametrize("method,stat", [("wd_pretrained", "distance_to_pretrained"), ("top_k", "trained_layers"),
                                         ("mixout", "mixed_fraction_of_model"), ("recadam", "lambda_last_step"),
                                         ("r3f", "noisy_passes")])
def test_each_prior_method_runs_through_the_runner_and_records_its_stats(method, stat, tmp_path, synthetic_glue):
    extra = ["method.top_k=1"] if method == "top_k" else []
    rec = train_mod.run(runner_cfg(method, "task.max_train_samples=16", "trainer.batch_size=8", "trainer.epochs=1",
                                   "impl.progress_bar=false", f"paths.results={tmp_path}", f"paths.glue_dir={synthetic_glue}",
                                   f"paths.cache={tmp_path}/cache", *extra))
    assert rec["status"] in ("ok", "degenerate"), rec["reason"]
    assert rec["method_stats"][stat] is not None and rec["method_params"]["name"] == method
    if method == "r3f":
        assert rec["history"][0]["loss_terms"]["symmetric_kl"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["recadam", "mixout", "r3f", "child_tuning_f+mixout"])
def test_a_preempted_run_resumes_to_the_same_result(method, tmp_path, synthetic_glue, monkeypatch):
    """Each method's state (RecAdam's optimizer without its anchors, Mixout's and R3F's random
    streams, a combination's parts) survives a checkpoint: the resumed run ends where an
    uninterrupted one does."""
    def cfg(folder):
        return runner_cfg(method, "task.max_train_samples=16", "trainer.batch_size=8", "trainer.epochs=3",
                          "trainer.checkpoint=true", "impl.progress_bar=false", f"paths.results={folder}",
                          f"paths.glue_dir={synthetic_glue}", f"paths.cache={tmp_path}/cache")
    full = train_mod.run(cfg(tmp_path / "a"))
    real_evaluate = train_mod.train.__globals__["evaluate"]
    calls = []

    def preempt(*a, **k):                                   # killed during epoch 2's evaluation
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*a, **k)
    monkeypatch.setitem(train_mod.train.__globals__, "evaluate", preempt)
    with pytest.raises(KeyboardInterrupt):
        train_mod.run(cfg(tmp_path / "b"))
    monkeypatch.setitem(train_mod.train.__globals__, "evaluate", real_evaluate)
    resumed = train_mod.run(cfg(tmp_path / "b"))
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    assert [h.get("loss_terms") for h in resumed["history"]] == [h.get("loss_terms") for h in full["history"]]
    assert resumed["metrics"] == full["metrics"]
