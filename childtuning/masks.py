"""Gradient masks: Bernoulli masks for Child-Tuning_F, applied in place to gradients.

The official code builds a `torch.distributions.Bernoulli` object per tensor every step and
multiplies `grad *= mask / reserve_p`. That costs ~0.45 s per step on MiniLM's 22.7M weights
on a 2-core CPU, about as much as the step itself. The `fast` sampler below draws the same
distribution from 8 random bits per element (plus 16 more for the ~1/256 of elements whose
first byte ties with the threshold), so the keep probability is floor(p * 2**24) / 2**24,
the resolution of a float32 uniform and of torch.bernoulli. On GPU, `fast` draws one float32
uniform per element into a single flat buffer, compares it with the same q / 2**24 and
multiplies every gradient by its slice in one multi-tensor kernel (`torch._foreach_mul_`):
a handful of kernel launches per step instead of several per tensor.
"""
from __future__ import annotations

import math

import numpy as np
import torch

RESOLUTION_BITS = 24  # keep probability resolution of the fast sampler
# method.sampler: fast = the byte-threshold / flat-uniform draw described above; official = a
# torch.bernoulli draw per tensor, as the official code's Bernoulli objects do (slow).
SAMPLERS = ("fast", "official")


def keep_threshold(keep_ratio: float) -> int:
    """Integer q with P(keep) = q / 2**24 (a uniform 24-bit integer u is kept iff u < q)."""
    return min(2**RESOLUTION_BITS, math.floor(keep_ratio * 2**RESOLUTION_BITS))


class BernoulliMasker:
    """Masks a fixed list of gradient tensors with fresh Bernoulli(keep_ratio) draws.

    `apply_(grads)` multiplies each gradient in place by mask / keep_ratio and returns the
    number of kept entries. `sampler='official'` reproduces the official per-tensor
    torch.bernoulli draw (slow); `'fast'` is the byte-threshold sampler described above on
    CPU and a flat float32 uniform comparison elsewhere (same keep probability).
    """

    def __init__(self, shapes: list[torch.Size], keep_ratio: float, generator: torch.Generator,
                 sampler: str = "fast", device: torch.device | str = "cpu",
                 remember: bool = False):
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; use one of {SAMPLERS}")
        self.keep_ratio = keep_ratio
        self.scale = 1.0 / keep_ratio
        self.generator = generator
        self.sampler = sampler
        self.device = torch.device(device)
        self.numels = [math.prod(s) for s in shapes]
        self.total = sum(self.numels)
        q = keep_threshold(keep_ratio)
        self._byte_threshold, self._tie_threshold = q >> 16, q & 0xFFFF
        self._numpy_path = sampler == "fast" and self.device.type == "cpu"
        self._uniform = self._keep_t = None       # flat buffers of the tensor path, made on first use
        if self._numpy_path:
            # 8 random bytes per int64 word; random_(-2**63) asks torch for all 64 bits.
            self._words = torch.empty((self.total + 7) // 8, dtype=torch.int64)
            self._bytes = self._words.view(torch.uint8)[: self.total].numpy()
            self._keep = np.empty(self.total, dtype=bool)
            self._ties = np.empty(self.total, dtype=bool)
        self.steps = 0
        self.kept = 0
        self.remember = remember   # keep the last step's masks in `last_masks`
        self.last_masks: list = []

    def _draw_cpu(self) -> np.ndarray:
        """One flat boolean keep-mask over all tensors (CPU fast path)."""
        self._words.random_(-(2**63), None, generator=self.generator)
        np.less(self._bytes, self._byte_threshold, out=self._keep)
        if self._byte_threshold < 256:
            np.equal(self._bytes, self._byte_threshold, out=self._ties)
            tied = np.flatnonzero(self._ties)
            if tied.size:
                extra = torch.randint(0, 2**16, (tied.size,), generator=self.generator, dtype=torch.int32)
                self._keep[tied] = extra.numpy() < self._tie_threshold
        return self._keep

    @torch.no_grad()
    def apply_(self, grads: list[torch.Tensor | None]) -> None:
        """Multiply each gradient in place by its mask / keep_ratio; counts kept entries."""
        self.steps += 1
        if self.keep_ratio == 1.0:
            self.kept += self.total
            self.last_masks = [torch.ones(n, dtype=torch.bool) for n in self.numels]
            return
        if self.sampler == "fast" and not self._numpy_path:
            self._apply_flat(grads)
            return
        if self._numpy_path:
            keep = self._draw_cpu()
            if self.remember:
                self.last_masks = np.split(keep.copy(), np.cumsum(self.numels)[:-1])
            scale = np.float32(self.scale)
            offset = 0
            for g, n in zip(grads, self.numels):
                if g is not None:
                    view = g.numpy().reshape(-1)   # shares memory with the gradient
                    np.multiply(view, keep[offset: offset + n], out=view)
                    view *= scale
                offset += n
            self.kept += int(np.count_nonzero(keep))
            return
        self.last_masks = []
        for g in grads:
            if g is None:
                self.last_masks.append(None)
                continue
            if self.sampler == "official":  # official: grad *= Bernoulli(p).sample() / p
                mask = torch.bernoulli(torch.full(g.shape, self.keep_ratio, device=g.device),
                                       generator=self.generator)
            else:
                mask = (torch.rand(g.shape, device=g.device, generator=self.generator)
                        < self.keep_ratio).float()
            self.kept += mask.sum()      # a tensor on GPU: no sync per step
            if self.remember:
                self.last_masks.append(mask.bool())
            g.mul_((mask * self.scale).to(g.dtype))

    def _apply_flat(self, grads: list[torch.Tensor | None]) -> None:
        """The fast sampler as tensor ops (GPU): one uniform draw over all tensors, one compare,
        one scale, one multi-tensor multiply."""
        if self._uniform is None:
            device = next((g.device for g in grads if g is not None), self.device)
            self._uniform = torch.empty(self.total, dtype=torch.float32, device=device)
            self._keep_t = torch.empty(self.total, dtype=torch.bool, device=device)
        self._uniform.uniform_(0.0, 1.0, generator=self.generator)   # multiples of 2**-24
        torch.lt(self._uniform, keep_threshold(self.keep_ratio) / 2**RESOLUTION_BITS, out=self._keep_t)
        self.kept += self._keep_t.sum()          # a tensor: no host sync per step
        if self.remember:
            self.last_masks = [k.clone() for k in self._keep_t.split(self.numels)]
        scaled = torch.mul(self._keep_t, self.scale, out=self._uniform)  # mask / keep_ratio, in place
        pairs = [(g, m.view(g.shape)) for g, m in zip(grads, scaled.split(self.numels)) if g is not None]
        same = [(g, m) for g, m in pairs if g.dtype == torch.float32]
        if same:
            torch._foreach_mul_([g for g, _ in same], [m for _, m in same])
        for g, m in pairs:
            if g.dtype != torch.float32:
                g.mul_(m.to(g.dtype))

    def kept_fraction(self) -> float:
        """Fraction of gradient entries kept over all steps so far."""
        return float(self.kept) / max(1, self.steps * self.total)
