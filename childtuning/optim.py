"""Optimizers the training loop builds by name: torch's AdamW and the official runs' transformers 4.7 AdamW.

`build_optimizer(name, param_groups, lr=, betas=, eps=, kernel=)` is the one entry point;
`OPTIMIZERS` (its keys are the allowed names) and `KERNELS` are the allowed values. Where each
optimizer applies weight decay relative to the Adam update (`decay_order`) matters to
Child-Tuning's `decay_masked_weights=false`, which gives masked entries back their decay with
`undo_decay_`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.optim.adamw import adamw as torch_adamw_update

from .errors import InputError

# trainer.optimizer_impl: which arithmetic kernel runs the update (speed and memory; results agree
# to float32 rounding). fused: one pass per tensor; foreach: multi-tensor ops, several passes;
# for_loop: one tensor at a time (least extra memory).
_TORCH_KERNEL_FLAGS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for_loop": {"foreach": False}}
KERNELS = tuple(_TORCH_KERNEL_FLAGS)


class TransformersAdamW(torch.optim.Optimizer):
    """transformers 4.7.0 `AdamW` (correct_bias=True), the optimizer of the official runs.

    Per step t (transformers/optimization.py, `AdamW.step`):
        m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g          (no bias correction of v inside the sqrt)
        p = p - lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)
        p = p - lr*wd*p                                       (decay AFTER the update, only if wd > 0)
    torch.optim.AdamW instead adds eps after bias-correcting v and decays before the update.

    Kernels: `foreach` and `for_loop` perform exactly the official per-tensor operations (bitwise
    equal to them on CPU; about 5-10x the fused step's time on CPU). `fused` runs torch's fused
    AdamW kernel, one pass, no slower than adamw_torch (benchmarks/optimizer_step.py): the official
    Adam update equals torch's with eps replaced by eps/sqrt(1-b2^t), and the decay is folded in
    (the kernel computes p*f - lr'*adam; lr' = lr*f makes that f*(p - lr*adam), the official
    order; a separate decay pass would cost ~25% more). The CPU kernel rounds f to float32, whose
    steps below 1 (6e-8) are large against a typical lr*wd (4e-7 becomes 4.17e-7, a 4% stronger
    decay every step, as in torch's own AdamW). So f is chosen each step such that the running
    product of the factors stays within half a float32 step of prod(1 - lr_t*wd): the rounding
    is carried from step to step, per group (CUDA's kernel decays in higher precision and would
    not need it; there it only moves each step's decay by at most half a float32 step).
    Agreement with the official arithmetic is within float32 rounding (tests/test_optim.py).

    One step count per parameter group (`group["step"]`, in the state dict, with the rounding
    carry `group["decay_carry"]`); the official code counts per parameter, which differs only if
    a parameter gets a gradient in some steps and not in others: that raises an error here.
    Works with torch.amp.GradScaler: the scaler unscales and skips non-finite steps itself.
    """

    def __init__(self, params, *, lr: float, betas: tuple[float, float], eps: float,
                 weight_decay: float = 0.0, kernel: str = "fused"):
        if kernel not in KERNELS:
            raise InputError(f"unknown optimizer kernel {kernel!r}; use one of {KERNELS}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "step": 0, "decay_carry": 0.0}
        super().__init__(params, defaults)
        for group in self.param_groups:
            _check_hyper(group)
        self.kernel = kernel

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        # torch leaves a loaded "step" tensor where it was saved (e.g. on the CPU after
        # map_location="cpu"); the fused kernel needs it beside its parameter.
        for p, state in self.state.items():
            if "step" in state:
                state["step"] = state["step"].to(device=p.device, dtype=torch.float32)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        update = _HF_KERNELS[self.kernel]
        for group in self.param_groups:
            tensors = self._gather(group)
            if tensors[0]:
                group["step"] += 1
                update(group, *tensors)
        return loss

    def _gather(self, group):
        """Params with a gradient and their state; lazily initialised on the group's first step."""
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        for p in group["params"]:
            state = self.state.get(p)
            if p.grad is None:
                if state:
                    raise _uneven_gradients(p, group)
                continue
            if p.grad.is_sparse:
                raise RuntimeError("adamw_hf does not support sparse gradients")
            if not state:
                if group["step"] > 0:
                    raise _uneven_gradients(p, group)
                state = self.state[p]
                # Per-parameter step tensors as torch keeps them: the fused kernel reads them.
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        return params, grads, exp_avgs, exp_avg_sqs, steps


def _check_hyper(group: dict) -> None:
    b1, b2 = group["betas"]
    if not (group["lr"] >= 0 and 0 <= b1 < 1 and 0 <= b2 < 1 and group["eps"] >= 0 and group["weight_decay"] >= 0):
        raise InputError(f"adamw_hf needs lr >= 0, betas in [0, 1), eps >= 0, weight_decay >= 0; got lr={group['lr']}, "
                         f"betas={group['betas']}, eps={group['eps']}, weight_decay={group['weight_decay']}")


def _uneven_gradients(p, group) -> RuntimeError:
    return RuntimeError(
        f"adamw_hf counts steps per parameter group (now {group['step']}), but a parameter of shape {tuple(p.shape)} "
        "has a gradient in some steps and not in others, so its official per-parameter step count would differ. "
        "Give it a gradient every step (zero_grad(set_to_none=False)), freeze it, or use trainer.optimizer=adamw_torch.")


def _official_arithmetic(group, params, grads, exp_avgs, exp_avg_sqs) -> None:
    """transformers 4.7 AdamW's operations, as multi-tensor ops (per tensor: the same ops)."""
    b1, b2 = group["betas"]
    t, lr, wd = group["step"], group["lr"], group["weight_decay"]
    step_size = lr * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)   # official: in this order, in float64
    torch._foreach_mul_(exp_avgs, b1)
    torch._foreach_add_(exp_avgs, grads, alpha=1.0 - b1)
    torch._foreach_mul_(exp_avg_sqs, b2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - b2)
    denoms = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(denoms, group["eps"])
    torch._foreach_addcdiv_(params, exp_avgs, denoms, value=-step_size)
    if wd > 0:                                                     # official: `if weight_decay > 0.0`
        torch._foreach_add_(params, params, alpha=-lr * wd)


def _foreach_update(group, params, grads, exp_avgs, exp_avg_sqs, steps) -> None:
    torch._foreach_add_(steps, 1)
    _official_arithmetic(group, params, grads, exp_avgs, exp_avg_sqs)


def _for_loop_update(group, params, grads, exp_avgs, exp_avg_sqs, steps) -> None:
    for one in zip(params, grads, exp_avgs, exp_avg_sqs, steps):   # one tensor at a time: least memory
        one[-1].add_(1)
        _official_arithmetic(group, *([x] for x in one[:-1]))


def float32_decay_factor(lr_times_wd: float, carry: float) -> tuple[float, float]:
    """The float32 factor f nearest to 1 - (lr*wd + carry), and the new carry (what f missed).

    Carrying the rounding keeps sum(1 - f) within half a float32 step (2**-25) of sum(lr*wd).
    """
    wanted = lr_times_wd + carry
    factor = float(np.float32(1.0 - wanted))
    return factor, wanted - (1.0 - factor)            # 1 - factor is exact in float64


def _fused_update(group, params, grads, exp_avgs, exp_avg_sqs, steps) -> None:
    b1, b2 = group["betas"]
    t, lr, wd = group["step"], group["lr"], group["weight_decay"]
    factor = 1.0
    if lr > 0 and wd > 0:   # at lr = 0 (first warm-up step) the official update changes nothing
        factor, group["decay_carry"] = float32_decay_factor(lr * wd, group["decay_carry"])
    # torch's kernel: p*fl32(1 - lr'*wd') - lr'/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps'); with
    # eps' = eps/sqrt(1-b2^t) this is p*f - lr'*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v) + eps), and
    # lr' = lr*f, lr'*wd' = 1 - f make it f*(p - official update): the official value.
    lr_kernel = lr * factor
    torch_adamw_update(params, grads, exp_avgs, exp_avg_sqs, [], steps, fused=True, amsgrad=False,
                       beta1=b1, beta2=b2, lr=lr_kernel, weight_decay=(1.0 - factor) / lr_kernel if factor != 1.0 else 0.0,
                       eps=group["eps"] / math.sqrt(1.0 - b2 ** t), maximize=False)


_HF_KERNELS = {"fused": _fused_update, "foreach": _foreach_update, "for_loop": _for_loop_update}


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build one optimizer, its class, and where its weight decay sits relative to the Adam update."""
    build: Callable[..., torch.optim.Optimizer]
    cls: type
    decay_order: str            # "before": p*(1-lr*wd) - update (torch); "after": (p - update)*(1-lr*wd) (hf)


def _torch_adamw(param_groups, *, lr, betas, eps, kernel):
    # Exactly torch.optim.AdamW: the committed records were made with it (fused) and must reproduce.
    return torch.optim.AdamW(param_groups, lr=lr, betas=betas, eps=eps, **_TORCH_KERNEL_FLAGS[kernel])


def _hf_adamw(param_groups, *, lr, betas, eps, kernel):
    return TransformersAdamW(param_groups, lr=lr, betas=betas, eps=eps, kernel=kernel)


OPTIMIZERS: dict[str, OptimizerSpec] = {
    "adamw_torch": OptimizerSpec(_torch_adamw, torch.optim.AdamW, "before"),
    "adamw_hf": OptimizerSpec(_hf_adamw, TransformersAdamW, "after"),   # transformers 4.7.0, as pinned by the official code
}


def build_optimizer(name: str, param_groups: list[dict], *, lr: float, betas: tuple[float, float], eps: float,
                    kernel: str) -> torch.optim.Optimizer:
    """The optimizer `name` over `param_groups` (dicts with "params" and "weight_decay")."""
    if name not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {name!r}; use one of {tuple(OPTIMIZERS)} (trainer.optimizer)")
    if kernel not in KERNELS:
        raise InputError(f"unknown optimizer kernel {kernel!r}; use one of {KERNELS} (trainer.optimizer_impl)")
    missing = [i for i, g in enumerate(param_groups) if "weight_decay" not in g]
    if missing:  # torch.optim.AdamW would silently give such a group its default decay of 0.01
        raise InputError(f"parameter groups {missing} have no 'weight_decay'; give every group one (0.0 for none)")
    return OPTIMIZERS[name].build(param_groups, lr=lr, betas=tuple(betas), eps=eps, kernel=kernel)


def decay_order(optimizer: torch.optim.Optimizer) -> str:
    """"before" or "after": where `optimizer` applies weight decay relative to its Adam update."""
    for spec in OPTIMIZERS.values():
        if type(optimizer) is spec.cls:
            return spec.decay_order
    if getattr(optimizer, "decay_order", None) in ("before", "after"):   # a method's own optimizer (RecAdam)
        return optimizer.decay_order
    raise TypeError(f"no decay order known for {type(optimizer).__name__}; known: "
                    f"{[spec.cls.__name__ for spec in OPTIMIZERS.values()]}")


@torch.no_grad()
def undo_decay_(param: torch.Tensor, old_value: torch.Tensor | None, dropped_mask: torch.Tensor,
                lr_times_wd: float, order: str) -> None:
    """After an optimizer step, give the `dropped_mask` entries of `param` their value without this step's decay.

    order "before" (torch): p_new = p_old*(1 - a) - u, so p_old - u = p_new + a*p_old (needs `old_value`,
    the weights before the step). order "after" (hf): p_new = p_mid*(1 - a) with p_mid = p_old - u,
    so p_mid = p_new / (1 - a) (`old_value` unused; may be None). a = lr_times_wd. Exact up to
    float32 rounding of the restored value and of the factor the kernel applied.
    """
    if lr_times_wd == 0:
        return
    if order == "before":
        if old_value is None:
            raise ValueError("undo_decay_ with order 'before' needs the weights from before the step (old_value)")
        restored = param + lr_times_wd * old_value      # the arithmetic the runner used before this module
    elif order == "after":
        # p + p*a/(1-a) rather than p / (1-a): a float32 (1-a) would be off by up to 2**-25, a large
        # part of a typical a = 4e-7; the small multiplier a/(1-a) keeps its full relative precision.
        restored = param + (lr_times_wd / (1.0 - lr_times_wd)) * param
    else:
        raise ValueError(f"unknown decay order {order!r}; use 'before' or 'after'")
    param.copy_(torch.where(dropped_mask.view_as(param), restored, param))
