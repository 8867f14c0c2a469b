"""RecAdam (Chen et al., EMNLP 2020, "Recall and Learn"): Adam whose task update is scaled by an
annealing coefficient λ(t), plus a pull towards the pretrained weights weighted by 1 - λ(t).

Per step t of a pretrained weight θ (authors' RecAdam.py, `RecAdam.step`, with anneal_w = w):
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g²
    θ -= lr * sqrt(1 - b2^t) / (1 - b1^t) * λ(t) * m / (sqrt(v) + eps)     (eps on the uncorrected v)
    θ -= lr * (w - λ(t)) * γ * (θ - θ0)                                   (on the θ just updated)
    θ -= lr * wd * θ                                                      (decay last, if wd > 0)
with λ(t) = w / (1 + exp(-k (t - t0))) (sigmoid; also linear min(1, t/t0) w and constant w).
The new head has no pretrained counterpart and gets the same Adam without λ or pull (the authors'
run_glue_with_RecAdam.py gives it anneal_w = 0). A method with its own update rule, so it comes
in through configure_optimizer; the step runs on multi-tensor (foreach) kernels.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import MISSING

from ..errors import InputError
from . import pretrained
from .base import Method, MethodConfig, param_groups, register


def anneal_sigmoid(t, k, t0, w):
    z = -k * (t - t0)                         # a stable logistic: no overflow for t far below t0
    return w / (1.0 + math.exp(z)) if z <= 0 else w * math.exp(-z) / (1.0 + math.exp(-z))


# method.anneal: λ(t) of the authors' anneal_function (RecAdam.py)
ANNEALS = {"sigmoid": anneal_sigmoid,
           "linear": lambda t, k, t0, w: min(1.0, t / t0) * w,
           "constant": lambda t, k, t0, w: w}


@dataclass
class RecAdamConfig(MethodConfig):
    anneal: str = MISSING           # one of ANNEALS
    k: float = MISSING              # slope of the sigmoid
    t0: Any = MISSING               # midpoint in steps (int), or null = t0_fraction of the run's steps
    t0_fraction: float = MISSING
    anneal_w: float = MISSING       # the scale w of λ(t)
    pretrain_cof: float = MISSING   # γ, the coefficient of the quadratic penalty
    correct_bias: bool = MISSING


class RecAdamOptimizer(torch.optim.Optimizer):
    """RecAdam's update over parameter groups; a group with `anchors` (the pretrained values, one
    per parameter) gets λ(t) and the pull, a group without them plain Adam."""
    decay_order = "after"     # weight decay after the update (for Child-Tuning's decay_masked_weights)

    def __init__(self, params, *, lr, betas, eps, weight_decay=0.0, correct_bias=True, anneal="sigmoid",
                 k=0.5, t0=250, anneal_w=1.0, pretrain_cof=5000.0):
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "correct_bias": correct_bias, "anchors": None}
        super().__init__(params, defaults)
        self.anneal = {"fn": ANNEALS[anneal], "k": k, "t0": t0, "w": anneal_w}
        self.pretrain_cof = pretrain_cof
        self.last_lambda = None

    def anneal_lambda(self, step: int) -> float:
        a = self.anneal
        return a["fn"](step, a["k"], a["t0"], a["w"])

    def state_dict(self):
        # the anchors are the pretrained weights (rebuilt by prepare() on resume): not saved
        state = super().state_dict()
        for group in state["param_groups"]:
            group["anchors"] = group["anchors"] is not None
        return state

    def load_state_dict(self, state_dict):
        anchors = [g["anchors"] for g in self.param_groups]
        super().load_state_dict(state_dict)
        for group, a in zip(self.param_groups, anchors):
            group["anchors"] = a

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            anchored = group["anchors"] is not None and self.anneal["w"] > 0
            anchor_of = dict(zip(map(id, group["params"]), group["anchors"])) if anchored else {}
            by_step = defaultdict(list)       # the official step count is per parameter: bucket by it
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                by_step[state["step"]].append(p)
            for t, params in by_step.items():
                self._update(group, t, params, [anchor_of[id(p)] for p in params] if anchored else None)
        return loss

    def _update(self, group, t, params, anchors):
        beta1, beta2 = group["betas"]
        lr = group["lr"]
        grads = [p.grad for p in params]
        exp_avg = [self.state[p]["exp_avg"] for p in params]
        exp_avg_sq = [self.state[p]["exp_avg_sq"] for p in params]
        torch._foreach_mul_(exp_avg, beta1)
        torch._foreach_add_(exp_avg, grads, alpha=1.0 - beta1)
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1.0 - beta2)
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_add_(denom, group["eps"])
        step_size = lr
        if group["correct_bias"]:
            step_size = lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
        if anchors is not None:
            lam = self.anneal_lambda(t)
            self.last_lambda = lam
            torch._foreach_addcdiv_(params, exp_avg, denom, value=-step_size * lam)
            pull = torch._foreach_sub(params, anchors)
            torch._foreach_add_(params, pull, alpha=-lr * (self.anneal["w"] - lam) * self.pretrain_cof)
        else:
            torch._foreach_addcdiv_(params, exp_avg, denom, value=-step_size)
        if group["weight_decay"] > 0.0:
            torch._foreach_add_(params, params, alpha=-lr * group["weight_decay"])


def total_steps_bound(run_cfg) -> int | None:
    """The run's optimizer steps if the training set has max_train_samples examples (an upper
    bound: a smaller file gives fewer), or None when the size is known only after loading."""
    n = run_cfg.task.max_train_samples
    return None if n is None else run_cfg.trainer.epochs * math.ceil(n / run_cfg.trainer.batch_size)


@register
class RecAdam(Method):
    name = "recadam"
    Config = RecAdamConfig
    prepare_stage = "snapshot"

    @classmethod
    def check(cls, run_cfg):
        super().check(run_cfg)
        m = run_cfg.method
        if m.anneal not in ANNEALS:
            raise InputError(f"method.anneal={m.anneal!r}; use one of {sorted(ANNEALS)}")
        if not m.anneal_w > 0 or m.pretrain_cof < 0 or (m.anneal == "sigmoid" and not m.k > 0):
            raise InputError(f"method.anneal_w={m.anneal_w} must be > 0 (0 is plain Adam: method=vanilla), "
                             f"method.pretrain_cof={m.pretrain_cof} >= 0 and method.k={m.k} > 0")
        if m.anneal == "constant":
            return                                   # t0 plays no part
        if m.t0 is None:
            if not 0.0 < m.t0_fraction < 1.0:
                raise InputError(f"method.t0_fraction={m.t0_fraction} must be in (0, 1): λ(t) reaches half its scale "
                                 "at that fraction of the run's steps")
            return
        if not isinstance(m.t0, int) or m.t0 <= 0:
            raise InputError(f"method.t0={m.t0!r}: a positive number of steps, or null for method.t0_fraction")
        bound = total_steps_bound(run_cfg)
        if bound is not None and m.t0 >= bound:
            raise InputError(_t0_too_late(m.t0, bound))

    def t0_steps(self, total_steps: int) -> int:
        return self.cfg.t0 if self.cfg.t0 is not None else max(1, round(self.cfg.t0_fraction * total_steps))

    def prepare(self, model, train_loader, device):
        named = pretrained.pulled(model, include_head=False)
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.anchors = pretrained.snapshot(self.params)

    def configure_optimizer(self, model, trainer, total_steps):
        self.total_steps = total_steps
        self.t0 = self.t0_steps(total_steps)
        if self.cfg.anneal != "constant" and self.t0 >= total_steps:
            raise InputError(_t0_too_late(self.t0, total_steps))
        anchor_of = {id(p): a for p, a in zip(self.params, self.anchors)}
        groups = []       # the authors' four groups: (pretrained | head) x (decay | no decay)
        for g in param_groups(model, self.cfg.no_decay, self.cfg.no_decay_names, trainer.weight_decay):
            mine = [p for p in g["params"] if id(p) in anchor_of]
            head = [p for p in g["params"] if id(p) not in anchor_of]
            groups += [{"params": mine, "weight_decay": g["weight_decay"], "anchors": [anchor_of[id(p)] for p in mine]},
                       {"params": head, "weight_decay": g["weight_decay"], "anchors": None}]
        self.optimizer = RecAdamOptimizer(
            [g for g in groups if g["params"]], lr=trainer.lr, betas=(trainer.adam_beta1, trainer.adam_beta2),
            eps=trainer.adam_eps, correct_bias=self.cfg.correct_bias, anneal=self.cfg.anneal, k=self.cfg.k,
            t0=self.t0, anneal_w=self.cfg.anneal_w, pretrain_cof=self.cfg.pretrain_cof)
        return self.optimizer, self.linear_schedule(self.optimizer, trainer, total_steps)

    def stats(self):
        return {"anneal": self.cfg.anneal, "k": self.cfg.k, "t0_steps": self.t0, "total_steps": self.total_steps,
                "anneal_w": self.cfg.anneal_w, "pretrain_cof": self.cfg.pretrain_cof,
                "lambda_last_step": self.optimizer.last_lambda,
                "anchored_params": sum(p.numel() for p in self.params),
                "distance_to_pretrained": pretrained.distance_per_layer(self.names, self.params, self.anchors)}


def _t0_too_late(t0: int, total: int) -> str:
    return (f"RecAdam's t0={t0} is not below the run's {total} optimizer steps: λ(t) would stay under half its "
            "scale for the whole run and the encoder would hardly learn the task. Use a smaller method.t0, or "
            "method.t0=null with method.t0_fraction (a fraction of the run's steps)")
