"""Mixout (Lee, Cho & Kang, ICLR 2020): at each training forward, each covered linear layer uses a
weight whose input columns are, with probability p, swapped for their pretrained values, rescaled
so that its expectation is the current weight; eval mode uses the current weight.

With keep mask M_j ~ Bernoulli(1 - p) per input column j (one draw per column, shared by all
output rows, as the authors' mixout.py draws `noise[0]` and repeats it over dim 0):
    W_mix = u + M * (W - u) / (1 - p)      (u: the pretrained weight; E[W_mix] = W)
which is the authors' ((1 - M) u + M W - p u) / (1 - p) rearranged.

Surgery: a covered nn.Linear becomes a MixoutLinear (its class swapped in place, so parameter
names, the state dict and isinstance(nn.Linear) are unchanged) holding its pretrained weight as
a non-persistent buffer, which moves with the model (.to) and stays out of saved models.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from ..errors import InputError
from . import pretrained
from .base import Method, MethodConfig, register

# method.cover: which nn.Linear layers mix.
#   all_linear: every one (the authors' example_huggingface.py replaces every nn.Linear with a
#               MixLinear and every nn.Dropout with Dropout(0)).
#   next_to_dropout: those whose input is a Dropout's output or whose output goes into a Dropout,
#               found by tracing one forward pass (the paper replaces dropout by mixout; the
#               authors' example.py mixes "the nn.Linear right after the nn.Dropout").
COVERS = ("all_linear", "next_to_dropout")
# method.gradient: the gradient that reaches W through W_mix.
#   original: grad * M (the authors' Mixout.backward returns grad_output * noise, without the
#             1/(1-p) of the forward);
#   exact:    grad * M / (1 - p), the true derivative of the forward.
GRADIENTS = ("original", "exact")


@dataclass
class MixoutConfig(MethodConfig):
    p: float = MISSING                    # mix probability
    cover: str = MISSING                  # one of COVERS
    cover_head: bool = MISSING            # the new head's linear layers mix with their random init
    disable_dropout: bool = MISSING       # set every nn.Dropout's p to 0
    gradient: str = MISSING               # one of GRADIENTS
    allow_partial_coverage: bool = MISSING  # run although some weight matrices are not nn.Linear


class _Mix(torch.autograd.Function):
    """W_mix = u + keep * (W - u) / (1 - p); dW = grad * keep * grad_scale."""

    @staticmethod
    def forward(ctx, weight, target, keep, p: float, grad_scale: float):
        ctx.save_for_backward(keep)
        ctx.grad_scale = grad_scale
        return torch.addcmul(target, weight - target, keep, value=1.0 / (1.0 - p))

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return grad * (keep * ctx.grad_scale), None, None, None, None


class _MixoutState:
    """What every covered layer of one run shares: p, the run's "mixout" stream, the gradient rule."""

    def __init__(self, p: float, generator: torch.Generator, grad_scale: float):
        self.p, self.generator, self.grad_scale = p, generator, grad_scale
        self.draws = 0


class MixoutLinear(torch.nn.Linear):
    """An nn.Linear that mixes its weight with `mixout_target` in training mode."""
    mixout: _MixoutState

    def forward(self, x):
        state = self.mixout
        if not self.training or state.p == 0:
            return F.linear(x, self.weight, self.bias)
        keep = torch.empty(self.in_features, device=self.weight.device, dtype=self.weight.dtype)
        keep.bernoulli_(1.0 - state.p, generator=state.generator)
        state.draws += 1
        return F.linear(x, _Mix.apply(self.weight, self.mixout_target, keep, state.p, state.grad_scale), self.bias)


def linears_next_to_dropout(model: torch.nn.Module, device) -> set[str]:
    """Names of the nn.Linear modules that take a Dropout's output or feed a Dropout, in one traced
    training-mode forward pass on a short dummy input (tensor identity; dropouts with p = 0 are
    not dropouts and are ignored)."""
    seen, dropout_in, dropout_out, linear_io = [], set(), set(), {}

    def on_dropout(module, args, output):
        if module.p > 0:
            seen.extend([args[0], output])          # keep alive: ids stay unique during the trace
            dropout_in.add(id(args[0]))
            dropout_out.add(id(output))

    def on_linear(name):
        def hook(module, args, output):
            seen.extend([args[0], output])
            linear_io.setdefault(name, []).append((id(args[0]), id(output)))
        return hook

    handles = [m.register_forward_hook(on_dropout) for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    handles += [m.register_forward_hook(on_linear(n)) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    was_training = model.training
    try:
        model.train()
        with torch.no_grad():
            model(input_ids=torch.arange(1, 9, device=device).unsqueeze(0))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {n for n, calls in linear_io.items() if any(i in dropout_out or o in dropout_in for i, o in calls)}


@register
class Mixout(Method):
    name = "mixout"
    Config = MixoutConfig
    prepare_stage = "surgery"

    @classmethod
    def check(cls, run_cfg):
        super().check(run_cfg)
        m = run_cfg.method
        if not 0.0 <= m.p < 1.0:
            raise InputError(f"method.p={m.p}: the mix probability must be in [0, 1) (p = 1 would use only the "
                             "pretrained weights and never train them)")
        if m.cover not in COVERS:
            raise InputError(f"method.cover={m.cover!r}; use one of {COVERS}")
        if m.gradient not in GRADIENTS:
            raise InputError(f"method.gradient={m.gradient!r}; use one of {GRADIENTS}")

    def prepare(self, model, train_loader, device):
        adjacent = linears_next_to_dropout(model, device) if self.cfg.cover == "next_to_dropout" else None
        covered = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
                   and (adjacent is None or n in adjacent)
                   and (self.cfg.cover_head or pretrained.is_pretrained(model, f"{n}.weight"))]
        self.uncovered_matrices = _weight_matrices_outside_linear(model)
        self.total_params = sum(p.numel() for p in model.parameters())
        uncovered = set(self.uncovered_matrices)
        uncovered_size = sum(p.numel() for n, p in model.named_parameters() if n in uncovered)
        # what Mixout could mix: every linear layer's weight and every raw weight matrix
        self.matrix_params = uncovered_size + sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
        if self.uncovered_matrices and not self.cfg.allow_partial_coverage:
            raise InputError(
                f"mixout: {len(self.uncovered_matrices)} weight tensors of {type(model).__name__} "
                f"({uncovered_size / self.total_params:.1%} of its weights) are raw parameters, not nn.Linear layers, and "
                f"would not be mixed: {', '.join(self.uncovered_matrices[:6])}{' ...' if len(self.uncovered_matrices) > 6 else ''} "
                "(XLNet's relative attention keeps q, k, v, o, r as raw tensors). Set method.allow_partial_coverage=true "
                "to run Mixout on the nn.Linear layers only (the coverage goes into the record)")
        grad_scale = 1.0 if self.cfg.gradient == "original" else 1.0 / (1.0 - self.cfg.p)
        self.state = _MixoutState(self.cfg.p, self.generator("mixout", device), grad_scale)
        for _, module in covered:
            module.__class__ = MixoutLinear
            module.register_buffer("mixout_target", module.weight.detach().clone(), persistent=False)
            module.mixout = self.state
        self.covered_names = [n for n, _ in covered]
        self.mixed_params = sum(m.weight.numel() for _, m in covered)
        self.dropouts_disabled = 0
        if self.cfg.disable_dropout:
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout) and module.p > 0:
                    module.p = 0.0     # also stops attention-probability dropout, read from this module's p
                    self.dropouts_disabled += 1

    def stats(self):
        return {"p": self.cfg.p, "cover": self.cfg.cover, "gradient": self.cfg.gradient,
                "covered_layers": len(self.covered_names), "mixed_params": self.mixed_params,
                "mixed_fraction_of_model": self.mixed_params / self.total_params,
                "mixed_fraction_of_weight_matrices": self.mixed_params / self.matrix_params,
                "uncovered_weight_matrices": self.uncovered_matrices, "dropouts_disabled": self.dropouts_disabled,
                "mask_draws": self.state.draws}

    def state_dict(self):
        return {"generator": self.state.generator.get_state(), "draws": self.state.draws}

    def load_state_dict(self, state):
        self.state.generator.set_state(state["generator"])
        self.state.draws = state["draws"]


def _weight_matrices_outside_linear(model) -> list[str]:
    """Parameters of 2+ dimensions owned by neither an nn.Linear nor an nn.Embedding (XLNet's
    relative-attention projections and biases, its segment and mask embeddings)."""
    owned = {f"{n}.{pn}".lstrip(".") for n, m in model.named_modules()
             if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)) for pn, _ in m.named_parameters(recurse=False)}
    return [n for n, p in model.named_parameters() if p.dim() >= 2 and n not in owned]
