"""A tiny random BERT, batches of random token ids for it, a method built for a two-label task, and the
repository's own tiny models (conf/model/tiny_*.yaml) with their tokenizers."""
from __future__ import annotations

import torch
from omegaconf import OmegaConf
from transformers import AutoConfig, AutoModelForSequenceClassification

from childtuning import seeding
from childtuning.data import BatchLoader
from childtuning.methods import TaskInfo
from childtuning.methods import build as build_method
from childtuning.models import build_model, build_tokenizer
from helpers.paths import REPO

RTE_TASK = TaskInfo("rte", regression=False, num_labels=2)


def rte_method(cfg, seed):
    """The method `cfg` describes, built for RTE_TASK."""
    return build_method(cfg, seed, RTE_TASK)


def tiny_bert_model(seed=0, dropout=0.1):
    """A 2-layer BERT of width 16 over a 50-token vocabulary, two labels, seeded weights."""
    torch.manual_seed(seed)
    config = AutoConfig.for_model("bert", vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=32, num_labels=2,
                                  hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return AutoModelForSequenceClassification.from_config(config)


def conf_model(name: str, texts: list[str], seed: int = 0):
    """(model, tokenizer) of conf/model/<name>.yaml (a tiny_* model: random weights from `seed`, two
    labels), its tokenizer trained on `texts` where the file says so."""
    model_cfg = OmegaConf.load(REPO / "conf" / "model" / f"{name}.yaml")
    tokenizer = build_tokenizer(model_cfg, texts, None)
    torch.manual_seed(seed)
    return build_model(model_cfg, 2, False, tokenizer), tokenizer


def collate(features):
    return {"input_ids": torch.stack([f[0] for f in features]), "attention_mask": torch.ones(len(features), 8, dtype=torch.long),
            "labels": torch.stack([f[1] for f in features])}


def tiny_loader(n=40, batch_size=4, seed=0):
    """`n` examples of 8 random token ids and a random label, batched in an order drawn from the
    `data` stream of `seed`."""
    g = torch.Generator().manual_seed(123)
    feats = [(torch.randint(1, 50, (8,), generator=g), torch.randint(0, 2, (), generator=g)) for _ in range(n)]
    return BatchLoader(feats, batch_size, collate, seeding.generator(seed, "data"))
