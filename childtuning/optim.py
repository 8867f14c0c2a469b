"""Optimizers the training loop can build by name (placeholder until the official AdamW lands)."""
from __future__ import annotations

import torch

# trainer.optimizer_impl: which torch kernel runs the same algorithm
KERNELS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for_loop": {"foreach": False}}


def _adamw_torch(param_groups, *, lr, betas, eps, kernel):
    return torch.optim.AdamW(param_groups, lr=lr, betas=betas, eps=eps, **KERNELS[kernel])


OPTIMIZERS = {"adamw_torch": _adamw_torch}


def build_optimizer(name: str, param_groups: list[dict], *, lr: float, betas: tuple[float, float], eps: float,
                    kernel: str) -> torch.optim.Optimizer:
    return OPTIMIZERS[name](param_groups, lr=lr, betas=betas, eps=eps, kernel=kernel)


def decay_order(optimizer) -> str:
    return "before"


@torch.no_grad()
def undo_decay_(param, old, dropped, lr_wd: float, order: str) -> None:
    """Give the `dropped` entries back the decay the last step applied (torch order: decay before
    the update, p_new = p_old*(1-a) - u, so add a*p_old)."""
    param[dropped] += lr_wd * old[dropped]
