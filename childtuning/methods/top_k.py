"""Top-K layer tuning: train only the top K encoder layers (and whatever sits above them: the pooler,
the head); the embeddings and the lower layers are frozen (requires_grad off), so the optimizer
never sees them and backpropagation stops at the lowest trainable layer.

Architectures differ by data, not by branches: an encoder layer is a parameter name matching
method.layer_pattern (BERT/RoBERTa/ELECTRA `<encoder>.encoder.layer.<i>.`, XLNet
`transformer.layer.<i>.`); an encoder parameter outside the layers is below them (embeddings,
ELECTRA's embeddings_project, XLNet's mask_emb) if the model registers it before its first
layer, above them (BERT's pooler) if after; the head is what lies outside the encoder
(methods/pretrained.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from omegaconf import MISSING

from ..errors import InputError
from ..layers import layer_of
from . import pretrained
from .base import Method, MethodConfig, register


@dataclass
class TopKConfig(MethodConfig):
    top_k: int = MISSING             # number of top encoder layers trained
    layer_pattern: str = MISSING     # regex whose first group is an encoder layer's index


@register
class TopK(Method):
    name = "top_k"
    Config = TopKConfig
    prepare_stage = "freezing"

    @classmethod
    def check(cls, run_cfg):
        super().check(run_cfg)
        cls.require_family(run_cfg, "top_k", "Top-K layer tuning")
        m = run_cfg.method
        if m.top_k < 0:
            raise InputError(f"method.top_k={m.top_k}: the number of top layers to train must be >= 0")
        try:
            groups = re.compile(m.layer_pattern).groups
        except re.error as e:
            raise InputError(f"method.layer_pattern={m.layer_pattern!r} is not a regex: {e}") from None
        if groups < 1:
            raise InputError(f"method.layer_pattern={m.layer_pattern!r} needs a group capturing the layer index")

    def prepare(self, model, train_loader, device):
        pattern = re.compile(self.cfg.layer_pattern)
        named = list(model.named_parameters())
        layer = {}
        for n, _ in named:
            match = pattern.search(n)
            if match and pretrained.is_pretrained(model, n):
                layer[n] = int(match.group(1))
        if not layer:
            raise InputError(f"method.layer_pattern={self.cfg.layer_pattern!r} matches no encoder parameter of "
                             f"{type(model).__name__}; give a regex whose first group is the layer index")
        self.num_layers = max(layer.values()) + 1
        if self.cfg.top_k > self.num_layers:
            raise InputError(f"method.top_k={self.cfg.top_k} but the model has {self.num_layers} encoder layers; set "
                             f"method.top_k={self.num_layers} or less, or give this model its K in "
                             f"conf/method_model/top_k_<model>.yaml (as top_k_minilm.yaml does)")
        lowest_trained = self.num_layers - self.cfg.top_k
        first_layer_position = min(i for i, (n, _) in enumerate(named) if n in layer)
        self.frozen_names = []
        for i, (n, p) in enumerate(named):
            if not pretrained.is_pretrained(model, n):
                continue                                       # the head always trains
            below = layer[n] < lowest_trained if n in layer else i < first_layer_position
            if below and p.requires_grad:
                p.requires_grad_(False)
                self.frozen_names.append(n)
        frozen = set(self.frozen_names)
        self.frozen = sum(p.numel() for n, p in named if n in frozen)
        self.total = sum(p.numel() for _, p in named)

    def stats(self):
        outside = sorted({layer_of(n) for n in self.frozen_names} - {f"layer.{i}" for i in range(self.num_layers)})
        return {"top_k": self.cfg.top_k, "encoder_layers": self.num_layers,
                "trained_layers": list(range(self.num_layers - self.cfg.top_k, self.num_layers)),
                "frozen_params": self.frozen, "trainable_fraction_of_model": 1 - self.frozen / self.total,
                "frozen_outside_layers": outside}
