"""The optimizer registry: adamw_hf against transformers 4.7 AdamW's definition, state dicts, decay order."""
import io
import math

import numpy as np
import pytest
import torch

from childtuning.errors import InputError
from childtuning.optim import (_HF_KERNELS, KERNELS, OPTIMIZERS, TransformersAdamW, build_optimizer,
                               decay_order, undo_decay_)

BETAS, EPS = (0.9, 0.999), 1e-8
# The CUDA tests: `pytest -m cuda` selects them (benchmarks/gpu_session.py runs them on a lent GPU).
NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = [pytest.mark.cuda, NEEDS_CUDA]
STEPS = 30
# (base lr, weight decays of the two groups). The realistic case (official lr 4e-5, weight decay
# 0.01, eps 1e-8, gradients down to 1e-10) is where eps matters; in the large case lr*wd*update
# is large enough for the decay order to show.
CASES = {"off": (4e-5, (0.0, 0.0)), "realistic": (4e-5, (0.01, 0.0)), "large": (1e-3, (0.3, 0.05))}


def lr_at(base: float, t: int) -> float:
    """Linear warm-up from 0 over 3 steps, then linear decay: the first step has lr 0, like the loop's."""
    return base * min((t - 1) / 3, (STEPS + 1 - t) / (STEPS - 2))


def make_data(seed=0, sizes=(3000, 1000)):
    """Weights ~ N(0, 0.05); gradients log-uniform in [1e-10, 1e-2] with random signs, fixed per step."""
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(n, generator=g) * 0.05 for n in sizes]
    grads = [[torch.exp(torch.empty(n).uniform_(math.log(1e-10), math.log(1e-2), generator=g))
              * torch.randn(n, generator=g).sign() for n in sizes] for _ in range(STEPS)]
    return weights, grads


def official_reference(weights, grads, base_lr, wds, dtype=torch.float32, steps=STEPS):
    """transformers 4.7.0 AdamW.step, written from its definition, one tensor at a time."""
    ps = [w.clone().to(dtype) for w in weights]
    ms, vs = [torch.zeros_like(p) for p in ps], [torch.zeros_like(p) for p in ps]
    b1, b2 = BETAS
    for t in range(1, steps + 1):
        lr = lr_at(base_lr, t)
        for p, m, v, g, wd in zip(ps, ms, vs, grads[t - 1], wds):
            g = g.to(dtype)
            m.mul_(b1).add_(g, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            denom = v.sqrt().add_(EPS)                       # eps on the bias-uncorrected v
            step_size = lr * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
            p.addcdiv_(m, denom, value=-step_size)
            if wd > 0:
                p.add_(p, alpha=-lr * wd)                    # decay after the update
    return ps, ms, vs


def run(name, kernel, weights, grads, base_lr, wds, steps=STEPS, tweak=None, device="cpu"):
    """`steps` steps of the registered optimizer under a LambdaLR schedule; returns params and optimizer."""
    ps = [torch.nn.Parameter(w.to(device, copy=True)) for w in weights]
    opt = build_optimizer(name, [{"params": [p], "weight_decay": wd} for p, wd in zip(ps, wds)],
                          lr=base_lr, betas=BETAS, eps=EPS, kernel=kernel)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: lr_at(1.0, k + 1))
    for t in range(1, steps + 1):
        for p, g in zip(ps, grads[t - 1]):
            p.grad = g.to(device, copy=True)
        if tweak:
            tweak(opt, t)
        opt.step()
        sched.step()
    return [p.detach() if device == "cpu" else p.detach().cpu() for p in ps], opt


def error_units(a: list, b: list, base_lr: float) -> float:
    """Largest |a - b| in float32 spacings of the larger of |b| and lr: the size of the terms a step adds."""
    worst = 0.0
    for x, y in zip(a, b):
        y = y.double()
        scale = torch.from_numpy(np.spacing(np.maximum(np.abs(y.float().numpy()), np.float32(base_lr)))).double()
        worst = max(worst, ((x.double() - y).abs() / scale).max().item())
    return worst


# Tolerance of the non-bitwise paths, in the units of error_units: 1.5 per step. Calibration
# (30 steps, seeds 0-7, all CASES): the official float32 arithmetic itself is up to 0.74 per step
# from exact (float64) arithmetic; the fused adamw_hf and the eps-rewritten torch AdamW are up to
# 0.84 per step from exact and up to 0.80 per step from the official float32 result.
UNITS_PER_STEP = 1.5


def assert_within_float32_rounding(got, weights, grads, base_lr, wds):
    ref32, _, _ = official_reference(weights, grads, base_lr, wds)
    ref64, _, _ = official_reference(weights, grads, base_lr, wds, dtype=torch.float64)
    tolerance = UNITS_PER_STEP * STEPS
    assert error_units(ref32, ref64, base_lr) <= tolerance   # the bar the official arithmetic itself meets
    assert error_units(got, ref64, base_lr) <= tolerance
    assert error_units(got, ref32, base_lr) <= tolerance


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_adamw_hf_matches_the_official_definition(case, seed):
    base_lr, wds = CASES[case]
    weights, grads = make_data(seed)
    ref_p, ref_m, ref_v = official_reference(weights, grads, base_lr, wds)
    for kernel in ("foreach", "for_loop"):     # the official operations: bitwise equal on CPU
        got, opt = run("adamw_hf", kernel, weights, grads, base_lr, wds)
        states = [opt.state[p] for g in opt.param_groups for p in g["params"]]
        assert all(torch.equal(a, b) for a, b in zip(got, ref_p)), kernel
        assert all(torch.equal(s["exp_avg"], m) and torch.equal(s["exp_avg_sq"], v)
                   for s, m, v in zip(states, ref_m, ref_v)), kernel
        assert [g["step"] for g in opt.param_groups] == [STEPS, STEPS]
    got, _ = run("adamw_hf", "fused", weights, grads, base_lr, wds)   # torch's fused kernel, rewritten eps and lr
    assert_within_float32_rounding(got, weights, grads, base_lr, wds)


@pytest.mark.cuda
@NEEDS_CUDA
@pytest.mark.parametrize("kernel", KERNELS)
def test_adamw_hf_on_cuda_within_float32_rounding(kernel):
    """On CUDA every kernel (torch's CUDA fused kernel, CUDA foreach kernels) stays within the tolerance."""
    for case, (base_lr, wds) in CASES.items():
        weights, grads = make_data(0)
        got, opt = run("adamw_hf", kernel, weights, grads, base_lr, wds, device="cuda")
        assert [g["step"] for g in opt.param_groups] == [STEPS, STEPS]
        ref32, _, _ = official_reference(weights, grads, base_lr, wds)
        print(f"cuda {kernel} {case}: bitwise equal to the CPU official arithmetic: "
              f"{all(torch.equal(a, b) for a, b in zip(got, ref32))}, error units {error_units(got, ref32, base_lr):.2f}")
        assert_within_float32_rounding(got, weights, grads, base_lr, wds)


def test_torch_adamw_is_far_outside_that_tolerance():
    """The tolerance discriminates: torch's own AdamW (eps after bias correction, decay first) fails it."""
    base_lr, wds = CASES["realistic"]
    weights, grads = make_data(0)
    ref32, _, _ = official_reference(weights, grads, base_lr, wds)
    got, _ = run("adamw_torch", "fused", weights, grads, base_lr, wds)
    assert error_units(got, ref32, base_lr) > 1000 * UNITS_PER_STEP * STEPS


@pytest.mark.parametrize("kernel", KERNELS)
def test_hint_official_adam_is_torch_adamw_with_eps_over_sqrt_bias_correction(kernel):
    """With weight decay 0 and eps_t = eps / sqrt(1 - b2^t), torch.optim.AdamW is the official Adam update.

    Not bitwise (torch updates the moments with lerp / fma, divides sqrt(v) by the bias
    correction before adding eps), but within the same float32-rounding tolerance.
    """
    base_lr, wds = CASES["off"]
    weights, grads = make_data(0)

    def official_eps(opt, t):
        for group in opt.param_groups:
            group["eps"] = EPS / math.sqrt(1.0 - BETAS[1] ** t)

    got, opt = run("adamw_torch", kernel, weights, grads, base_lr, wds, tweak=official_eps)
    assert type(opt) is torch.optim.AdamW
    ref32, _, _ = official_reference(weights, grads, base_lr, wds)
    assert not all(torch.equal(a, b) for a, b in zip(got, ref32))
    assert_within_float32_rounding(got, weights, grads, base_lr, wds)


def test_fused_decay_carries_its_float32_rounding():
    """Zero gradients: only decay. The fused kernel multiplies by a float32 factor (steps of 2**-24
    below 1); lr*wd = 4e-7 lies between two steps, so without the carried rounding the decay would
    be 0.29 steps too strong every step (87 steps after 300). With it the product of the factors
    stays within half a step of the exact (1 - lr*wd)**300. Weights of 1.0 in float64 make the
    product observable without the weights' own rounding."""
    steps, lr, wd = 300, 4e-5, 0.01
    p = torch.nn.Parameter(torch.ones(8, dtype=torch.float64))
    opt = build_optimizer("adamw_hf", [{"params": [p], "weight_decay": wd}], lr=lr, betas=BETAS, eps=EPS,
                          kernel="fused")
    for _ in range(steps):
        p.grad = torch.zeros_like(p)
        opt.step()
    missed = p.detach() - (1.0 - lr * wd) ** steps
    assert missed.abs().max().item() <= 2 ** -25
    assert missed[0].item() == pytest.approx(opt.param_groups[0]["decay_carry"], rel=1e-3)  # the carry is what is missing


@pytest.mark.parametrize("name,kernel,device", [("adamw_hf", "fused", "cpu"), ("adamw_hf", "foreach", "cpu"),
                                                ("adamw_torch", "fused", "cpu"),
                                                pytest.param("adamw_hf", "fused", "cuda", marks=CUDA)])
def test_state_dict_round_trip_continues_bitwise(name, kernel, device):
    """Checkpoint the optimizer mid-run (torch.save, loaded onto the CPU), resume in a fresh one: bitwise the same continuation."""
    base_lr, wds = CASES["realistic"]
    weights, grads = make_data(0)
    half = STEPS // 2
    _, opt = run(name, kernel, weights, grads, base_lr, wds, steps=half, device=device)
    mid = [p.detach().clone() for group in opt.param_groups for p in group["params"]]
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    if name == "adamw_hf" and kernel == "fused":
        assert opt.param_groups[0]["decay_carry"] != 0      # the carry is part of what must survive

    def continue_run(opt):
        ps = [p for group in opt.param_groups for p in group["params"]]
        for t in range(half + 1, STEPS + 1):
            for group in opt.param_groups:
                group["lr"] = lr_at(base_lr, t)
            for p, g in zip(ps, grads[t - 1]):
                p.grad = g.to(device, copy=True)
            opt.step()
        return [p.detach().cpu() for p in ps]

    straight = continue_run(opt)
    ps = [torch.nn.Parameter(w) for w in mid]
    fresh = build_optimizer(name, [{"params": [p], "weight_decay": wd} for p, wd in zip(ps, wds)],
                            lr=base_lr, betas=BETAS, eps=EPS, kernel=kernel)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, map_location="cpu", weights_only=True))
    resumed = continue_run(fresh)
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("kernel", KERNELS)
def test_adamw_hf_under_grad_scaler(kernel, device):
    """scaler.step(opt): a finite step equals the unscaled step bitwise (power-of-two scale); an inf step is skipped."""
    w = torch.randn(50, generator=torch.Generator().manual_seed(0)).to(device)
    x = torch.randn(50, generator=torch.Generator().manual_seed(1)).to(device)
    direct, scaled = torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())
    kw = dict(lr=1e-3, betas=BETAS, eps=EPS, kernel=kernel)
    opt_d = build_optimizer("adamw_hf", [{"params": [direct], "weight_decay": 0.1}], **kw)
    opt_s = build_optimizer("adamw_hf", [{"params": [scaled], "weight_decay": 0.1}], **kw)
    scaler = torch.amp.GradScaler(device, init_scale=2.0 ** 12)
    for _ in range(3):
        ((direct * x).sum() ** 2).backward()
        opt_d.step()
        opt_d.zero_grad()
        scaler.scale((scaled * x).sum() ** 2).backward()
        scaler.unscale_(opt_s)
        scaler.step(opt_s)
        scaler.update()
        opt_s.zero_grad()
    assert torch.equal(direct.detach(), scaled.detach())
    before = scaled.detach().clone()
    scaled.grad = torch.full_like(scaled, float("inf"))
    scaler.step(opt_s)
    scaler.update()
    assert torch.equal(scaled.detach(), before) and opt_s.param_groups[0]["step"] == 3


def test_adamw_hf_refuses_uneven_gradients():
    """One step count per group: a parameter that skips a step would get the wrong official count."""
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = TransformersAdamW([a, b], lr=1e-3, betas=BETAS, eps=EPS)
    a.grad, b.grad = torch.ones(3), torch.ones(3)
    opt.step()
    a.grad, b.grad = torch.ones(3), None
    with pytest.raises(RuntimeError, match="per parameter group"):
        opt.step()
    late = torch.nn.Parameter(torch.ones(3))
    opt2 = TransformersAdamW([a, late], lr=1e-3, betas=BETAS, eps=EPS)
    a.grad, late.grad = torch.ones(3), None
    opt2.step()
    late.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="per parameter group"):
        opt2.step()


@pytest.mark.parametrize("kernel", KERNELS)
def test_adamw_torch_is_exactly_torch_adamw(kernel):
    """adamw_torch is torch.optim.AdamW with the kernel flags the loop used: bitwise the same steps."""
    weights, grads = make_data(0)
    got, opt = run("adamw_torch", kernel, weights, grads, 4e-5, (0.01, 0.0), steps=5)
    assert type(opt) is torch.optim.AdamW
    flags = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for_loop": {"foreach": False}}[kernel]
    ps = [torch.nn.Parameter(w.clone()) for w in weights]
    direct = torch.optim.AdamW([{"params": [ps[0]], "weight_decay": 0.01}, {"params": [ps[1]], "weight_decay": 0.0}],
                               lr=4e-5, betas=BETAS, eps=EPS, **flags)
    sched = torch.optim.lr_scheduler.LambdaLR(direct, lambda k: lr_at(1.0, k + 1))
    for t in range(5):
        for p, g in zip(ps, grads[t]):
            p.grad = g.clone()
        direct.step()
        sched.step()
    assert all(torch.equal(a, b.detach()) for a, b in zip(got, ps))


def test_registry_rejects_unknown_names_kernels_and_groups_without_decay():
    assert set(OPTIMIZERS) == {"adamw_torch", "adamw_hf"}
    assert set(KERNELS) == set(_HF_KERNELS) == {"fused", "foreach", "for_loop"}
    p = torch.nn.Parameter(torch.ones(2))
    kw = dict(lr=1e-3, betas=BETAS, eps=EPS)
    with pytest.raises(InputError, match="adamw_torch"):
        build_optimizer("adam", [{"params": [p], "weight_decay": 0.0}], kernel="fused", **kw)
    with pytest.raises(InputError, match="for_loop"):
        build_optimizer("adamw_hf", [{"params": [p], "weight_decay": 0.0}], kernel="apex", **kw)
    with pytest.raises(InputError, match="weight_decay"):
        build_optimizer("adamw_torch", [{"params": [p]}], kernel="fused", **kw)
    with pytest.raises(InputError, match="weight_decay"):
        build_optimizer("adamw_hf", [{"params": [p], "weight_decay": -0.1}], kernel="fused", **kw)


def test_decay_order_names_each_registered_optimizer():
    p = torch.nn.Parameter(torch.ones(2))
    kw = dict(lr=1e-3, betas=BETAS, eps=EPS, kernel="fused")
    assert decay_order(build_optimizer("adamw_torch", [{"params": [p], "weight_decay": 0.1}], **kw)) == "before"
    assert decay_order(build_optimizer("adamw_hf", [{"params": [p], "weight_decay": 0.1}], **kw)) == "after"
    with pytest.raises(TypeError):
        decay_order(torch.optim.SGD([p], lr=0.1))


def test_undo_decay_algebra_in_float64():
    """Both orders: the restored entries equal p_old - u exactly up to float64 rounding; the others are untouched."""
    g = torch.Generator().manual_seed(0)
    p_old, u = torch.randn(1000, generator=g, dtype=torch.float64), torch.randn(1000, generator=g, dtype=torch.float64) * 1e-3
    dropped = torch.rand(1000, generator=g) < 0.7
    a = 3e-4
    for order, p_new in (("before", p_old * (1 - a) - u), ("after", (p_old - u) * (1 - a))):
        p = p_new.clone()
        undo_decay_(p, p_old, dropped, a, order)
        assert torch.allclose(p[dropped], (p_old - u)[dropped], rtol=1e-14, atol=0), order
        assert torch.equal(p[~dropped], p_new[~dropped]), order
    with pytest.raises(ValueError, match="old_value"):
        undo_decay_(p_new.clone(), None, dropped, a, "before")


def test_undo_decay_after_is_unbiased_for_a_realistic_decay_in_float32():
    """lr*wd = 4e-7 in float32: restoring by p / (1 - a) would divide by a float32 (1 - a), 0.29 of
    a float32 step (2**-24) away from the true one, a systematic error of 1.7e-8 per step; the
    restore must stay unbiased (mean relative error far below that)."""
    a = 4e-7
    decayed = (torch.randn(100_000, generator=torch.Generator().manual_seed(0)) * 0.05 * (1 - a)).float()
    exact = decayed.double() / (1 - a)
    p = decayed.clone()
    undo_decay_(p, None, torch.ones_like(p, dtype=torch.bool), a, "after")
    relative = (p.double() - exact) / exact
    assert abs(relative.mean().item()) < 2 ** -24 / 8


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("kernel", ["fused", "foreach"])
def test_undo_decay_gives_dropped_weights_the_undecayed_trajectory(name, kernel):
    """5 steps with decay and undo on a fixed 70% of entries equal, on those entries, 5 steps without decay.

    lr 1e-3, wd 0.3: using the other optimizer's order leaves an error of about lr*wd*update per
    step (~1e-7), 25x the tolerance; the kept entries do decay.
    """
    weights, grads = make_data(0, sizes=(4000,))
    lr, wd, steps = 1e-3, 0.3, 5
    dropped = torch.rand(4000, generator=torch.Generator().manual_seed(5)) < 0.7
    p_decay, p_plain = torch.nn.Parameter(weights[0].clone()), torch.nn.Parameter(weights[0].clone())
    kw = dict(lr=lr, betas=BETAS, eps=EPS, kernel=kernel)
    opt_decay = build_optimizer(name, [{"params": [p_decay], "weight_decay": wd}], **kw)
    opt_plain = build_optimizer(name, [{"params": [p_plain], "weight_decay": 0.0}], **kw)
    for t in range(steps):
        p_decay.grad, p_plain.grad = grads[t][0].clone(), grads[t][0].clone()
        old = p_decay.detach().clone()
        opt_decay.step()
        opt_plain.step()
        undo_decay_(p_decay, old, dropped, lr * wd, decay_order(opt_decay))
    diff = (p_decay.detach() - p_plain.detach()).abs()
    # tolerance: 4 float32 spacings of the weights (~0.05) after 5 steps
    assert diff[dropped].max().item() <= 4 * np.spacing(np.float32(0.2))
    assert diff[~dropped].min().item() > 0
