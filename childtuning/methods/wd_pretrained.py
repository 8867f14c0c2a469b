"""Weight decay towards the pretrained weights (Wiese et al., CoNLL 2017; Lee et al., ICLR 2020's
wdecay(w_pre, λ)): pull the weights towards a frozen copy of their pretrained values, not zero.

Two forms (method.form), whose strengths are not comparable (orders of magnitude apart):
- decoupled: AdamW's own decay, re-centred. The optimizer moves each decayed weight by
  -lr*wd*θ (torch: before its Adam update, transformers 4.7: after); adding lr*wd*θ0 right after
  the step turns that into -lr*wd*(θ - θ0) in the optimizer's own order, with its own strength
  (trainer.weight_decay) and its own no-decay groups. This is Lee et al.'s wdecay(w_pre, 0.01) in
  place of BERT's AdamW wdecay(0, 0.01).
- coupled: the term (coupled_strength / 2) * sum ||θ - θ0||² added to the loss (Wiese et al.'s L2
  towards the source model), so its gradient coupled_strength * (θ - θ0) goes through clipping
  and Adam's normalisation with the task gradient; the optimizer's decay towards zero stays.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import MISSING

from ..errors import InputError
from . import pretrained
from .base import Method, MethodConfig, register

FORMS = ("decoupled", "coupled")


@dataclass
class WeightDecayToPretrainedConfig(MethodConfig):
    form: str = MISSING                # one of FORMS
    coupled_strength: float = MISSING  # λ of the coupled form; the decoupled one uses trainer.weight_decay
    pull_head: bool = MISSING          # also pull the new head towards its random initial values


@register
class WeightDecayToPretrained(Method):
    name = "wd_pretrained"
    Config = WeightDecayToPretrainedConfig
    prepare_stage = "snapshot"

    @classmethod
    def check(cls, run_cfg):
        super().check(run_cfg)
        m = run_cfg.method
        if m.form not in FORMS:
            raise InputError(f"method.form={m.form!r}; use one of {FORMS}")
        if m.form == "coupled" and not m.coupled_strength > 0:
            raise InputError(f"method.coupled_strength={m.coupled_strength}: the coupled form needs a positive strength")
        if m.form == "decoupled" and not run_cfg.trainer.weight_decay > 0:
            raise InputError("method.form=decoupled re-centres the optimizer's weight decay, but trainer.weight_decay="
                             f"{run_cfg.trainer.weight_decay}: set it > 0 (the run script's 0.01), or use method.form=coupled")

    @classmethod
    def hooks_used(cls, cfg):
        return {"loss"} if cfg.form == "coupled" else {"after_optimizer_step"}

    def prepare(self, model, train_loader, device):
        # Every trainable weight is remembered (for the distances in the record); `pulled` marks
        # those the method pulls: the pretrained ones, and the head's if pull_head.
        named = pretrained.pulled(model, include_head=True)
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.starts = pretrained.snapshot(self.params)
        self.pulled = [self.cfg.pull_head or pretrained.is_pretrained(model, n) for n in self.names]
        self._start_of = {id(p): s for p, s, pull in zip(self.params, self.starts, self.pulled) if pull}
        self._pulled_pairs = [(p, s) for p, s, pull in zip(self.params, self.starts, self.pulled) if pull]
        self.strengths_seen: set[float] = set()

    def loss(self, model, batch, outputs):
        if self.cfg.form != "coupled":
            return outputs.loss
        squares = sum((p - s).pow(2).sum() for p, s in self._pulled_pairs)
        term = 0.5 * self.cfg.coupled_strength * squares
        return outputs.loss + term, {"l2_to_pretrained": term.detach()}

    @torch.no_grad()
    def after_optimizer_step(self, model, optimizer):
        if self.cfg.form != "decoupled":
            return
        for group in optimizer.param_groups:
            lr_wd = group["lr"] * group["weight_decay"]
            if lr_wd == 0:
                continue
            self.strengths_seen.add(group["weight_decay"])
            # the optimizer skipped (did not decay) parameters without a gradient; so do we
            pairs = [(p, self._start_of[id(p)]) for p in group["params"] if p.grad is not None and id(p) in self._start_of]
            if pairs:
                params, starts = zip(*pairs)
                torch._foreach_add_(list(params), list(starts), alpha=lr_wd)

    def stats(self):
        pulled = [(n, p, s) for n, p, s, pull in zip(self.names, self.params, self.starts, self.pulled) if pull]
        head = [(n, p, s) for n, p, s, pull in zip(self.names, self.params, self.starts, self.pulled) if not pull]
        out = {"form": self.cfg.form, "pull_head": self.cfg.pull_head,
               "pulled_params": sum(p.numel() for _, p, _ in pulled),
               "distance_to_pretrained": pretrained.distance_per_layer(*zip(*pulled)) if pulled else None,
               "head_distance_to_init": pretrained.distance_per_layer(*zip(*head))["total"] if head else None}
        if self.cfg.form == "coupled":
            out["strength"] = self.cfg.coupled_strength
        else:
            out["strength"] = sorted(self.strengths_seen)   # the optimizer's weight decay of the decayed groups
        return out
