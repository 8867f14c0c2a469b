"""R3F (Aghajanyan et al., ICLR 2021, "Better Fine-Tuning by Reducing Representational Collapse";
fairseq examples/rxf, criterion sentence_prediction_r3f): a second forward pass on the word
embeddings plus small noise, and the loss
    task loss + λ * (KL(p_clean || p_noisy) + KL(p_noisy || p_clean)), averaged over the batch.
As in fairseq: the noise goes on the token embeddings (before positions and layer norm), the noisy
embeddings are detached from the embedding matrix (`token_embeddings.detach().clone() + noise`),
both passes run in training mode (each with its own dropout), gradients flow through both
distributions, and the KL is computed in float32. For a regression head fairseq adds no term:
R3F on STS-B is vanilla fine-tuning (method.regression_term=none); `mse` adds λ * MSE between
the noisy and clean predictions instead (a consistency term in the style of HyPe).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from ..errors import InputError
from .. import packing
from .base import Method, MethodConfig, register

NOISES = ("uniform", "normal")          # fairseq --noise-type
REGRESSION_TERMS = ("none", "mse")


@dataclass
class R3FConfig(MethodConfig):
    eps: float = MISSING                # noise range (uniform: ±eps) or standard deviation (normal)
    noise: str = MISSING                # one of NOISES
    kl_weight: float = MISSING          # λ
    regression_term: str = MISSING      # one of REGRESSION_TERMS


def input_embeddings(model, batch: dict) -> torch.Tensor:
    """The word embeddings of the batch's tokens (what the noise is added to), in the batch's own
    layout (packed rows or padded sequences)."""
    return packing.input_embeddings(model, batch)


def forward_with_embeds(model, batch: dict, embeds: torch.Tensor):
    """The model's outputs on `embeds` in place of the batch's word embeddings: the one place the
    noisy pass runs the model, packed or padded (packing.forward passes RoBERTa's positions)."""
    return packing.forward(model, {k: v for k, v in batch.items() if k != "labels"}, inputs_embeds=embeds)


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """KL(a || b) + KL(b || a) of the two softmax distributions, summed over classes, averaged over
    the batch: sum_c (p_a - p_b)(log p_a - log p_b)."""
    log_a = F.log_softmax(logits_a.float(), dim=-1)
    log_b = F.log_softmax(logits_b.float(), dim=-1)
    return ((log_a.exp() - log_b.exp()) * (log_a - log_b)).sum() / logits_a.shape[0]


@register
class R3F(Method):
    name = "r3f"
    Config = R3FConfig

    @classmethod
    def check(cls, run_cfg):
        super().check(run_cfg)
        m = run_cfg.method
        if m.noise not in NOISES:
            raise InputError(f"method.noise={m.noise!r}; use one of {NOISES}")
        if m.regression_term not in REGRESSION_TERMS:
            raise InputError(f"method.regression_term={m.regression_term!r}; use one of {REGRESSION_TERMS}")
        if m.eps < 0 or m.kl_weight < 0:
            raise InputError(f"method.eps={m.eps} and method.kl_weight={m.kl_weight} must be >= 0")

    def __init__(self, cfg, seed, task):
        super().__init__(cfg, seed, task)
        self._generator, self._resumed_state = None, None
        self.passes = 0

    def noise_like(self, embeds: torch.Tensor) -> torch.Tensor:
        if self._generator is None:       # the run's own "r3f_noise" stream, on the model's device
            self._generator = self.generator("r3f_noise", embeds.device)
            if self._resumed_state is not None:
                self._generator.set_state(self._resumed_state)
        if self.cfg.noise == "uniform":
            u = torch.rand(embeds.shape, generator=self._generator, device=embeds.device, dtype=embeds.dtype)
            return (u * 2 - 1) * self.cfg.eps
        return torch.randn(embeds.shape, generator=self._generator, device=embeds.device, dtype=embeds.dtype) * self.cfg.eps

    def loss(self, model, batch, outputs):
        if self.task.regression and self.cfg.regression_term == "none":
            return outputs.loss                      # fairseq: no noisy pass for a regression target
        embeds = input_embeddings(model, batch).detach()
        noisy = forward_with_embeds(model, batch, embeds + self.noise_like(embeds)).logits
        self.passes += 1
        if self.task.regression:
            term = F.mse_loss(noisy.float().squeeze(-1), outputs.logits.float().squeeze(-1))
            return outputs.loss + self.cfg.kl_weight * term, {"noise_mse": term.detach()}
        term = symmetric_kl(noisy, outputs.logits)
        return outputs.loss + self.cfg.kl_weight * term, {"symmetric_kl": term.detach()}

    def stats(self):
        return {"eps": self.cfg.eps, "noise": self.cfg.noise, "kl_weight": self.cfg.kl_weight,
                "regression_term": self.cfg.regression_term if self.task.regression else None,
                "noisy_passes": self.passes}

    def state_dict(self):
        return {"generator": None if self._generator is None else self._generator.get_state(), "passes": self.passes}

    def load_state_dict(self, state):
        self._generator, self._resumed_state = None, state["generator"]   # applied on the next draw's device
        self.passes = state["passes"]
