"""Weight-decay groups: which weights each `method.no_decay` rule exempts, on BERT (`LayerNorm`) and
XLNet (`layer_norm`), and what the shipped method configs hand to the optimizer."""
import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from childtuning.methods import TaskInfo
from childtuning.methods import build as build_method
from childtuning.methods.base import param_groups
from helpers.configs import compose_cfg

OFFICIAL_NAMES = ["bias", "LayerNorm.weight"]      # the official Child-Tuning trainers' no_decay list
ARCHS = {
    "bert": ({"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32},
             "LayerNorm."),
    "xlnet": ({"d_model": 16, "n_layer": 2, "n_head": 2, "d_inner": 32}, "layer_norm."),
}


def tiny(arch: str) -> torch.nn.Module:
    dims, _ = ARCHS[arch]
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(AutoConfig.for_model(arch, vocab_size=60, **dims))


def norm_names(arch: str, model) -> set[str]:
    """The norm weights and biases, found by the architecture's spelling (not by module type, the
    rule under test)."""
    spelling = ARCHS[arch][1]
    names = {n for n, _ in model.named_parameters() if spelling in n}
    assert len(names) >= 4, names                  # a norm weight and bias per layer at least
    return names


def split(groups, model) -> tuple[set[str], set[str]]:
    """(decayed names, not decayed names), checking the groups partition the trainable weights."""
    name_of = {id(p): n for n, p in model.named_parameters()}
    assert len(groups) == 2 and groups[0]["weight_decay"] == 0.01 and groups[1]["weight_decay"] == 0.0
    decay = [name_of[id(p)] for p in groups[0]["params"]]
    no_decay = [name_of[id(p)] for p in groups[1]["params"]]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(decay + no_decay) == sorted(trainable)      # every trainable weight exactly once
    return set(decay), set(no_decay)


@pytest.mark.parametrize("arch", ["bert", "xlnet"])
@pytest.mark.parametrize("rule, names", [("by_module_type", OFFICIAL_NAMES),
                                         ("by_name", ["bias", "LayerNorm.weight", "layer_norm.weight"])])
def test_norm_weights_and_biases_get_no_decay(arch, rule, names):
    model = tiny(arch)
    decay, no_decay = split(param_groups(model, rule, names, 0.01), model)
    norms = norm_names(arch, model)
    biases = {n for n, _ in model.named_parameters() if "bias" in n}   # incl. XLNet's r_w_bias etc.
    assert no_decay == norms | biases
    assert decay == {n for n, _ in model.named_parameters()} - norms - biases


def test_by_name_with_the_official_names_decays_xlnets_layer_norm_weights():
    """The documented quirk of the official CT trainers: `LayerNorm.weight` never matches XLNet's
    `layer_norm.weight`, so those weights are decayed; their biases are not (they contain "bias")."""
    model = tiny("xlnet")
    decay, no_decay = split(param_groups(model, "by_name", OFFICIAL_NAMES, 0.01), model)
    norm_weights = {n for n in norm_names("xlnet", model) if n.endswith("weight")}
    assert norm_weights and norm_weights <= decay
    assert {n for n in norm_names("xlnet", model) if n.endswith("bias")} <= no_decay


def test_frozen_weights_are_in_neither_group():
    model = tiny("bert")
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    groups = param_groups(model, "by_module_type", OFFICIAL_NAMES, 0.01)
    decay, no_decay = split(groups, model)
    assert "bert.embeddings.word_embeddings.weight" not in decay | no_decay


@pytest.mark.parametrize("method", ["vanilla", "child_tuning_f", "child_tuning_d"])
def test_shipped_method_optimizer_exempts_bert_norms(method):
    """What each shipped method config gives the optimizer on BERT: norms and biases undecayed."""
    cfg = compose_cfg("model=tiny_bert", "task=rte", f"method={method}")
    model = tiny("bert")
    optimizer, _ = build_method(cfg.method, 0, TaskInfo.of(cfg.task)).configure_optimizer(model, cfg.trainer, 10)
    name_of = {id(p): n for n, p in model.named_parameters()}
    undecayed = {name_of[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert undecayed == norm_names("bert", model) | {n for n, _ in model.named_parameters() if "bias" in n}


def test_vanilla_exempts_xlnet_norms_by_module_type():
    """Vanilla's rule (the stock Trainer's, by module type) exempts XLNet's `layer_norm` weights too."""
    cfg = compose_cfg("model=tiny_xlnet", "task=rte", "method=vanilla")
    assert cfg.method.no_decay == "by_module_type"
    model = tiny("xlnet")
    optimizer, _ = build_method(cfg.method, 0, TaskInfo.of(cfg.task)).configure_optimizer(model, cfg.trainer, 10)
    name_of = {id(p): n for n, p in model.named_parameters()}
    undecayed = {name_of[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert norm_names("xlnet", model) <= undecayed
