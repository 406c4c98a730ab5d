"""Recovery (critical) times (the seeds' §7, and the released code's ``run_critical_times.py``): the largest t at
which noising x to t and running the reverse process returns within δ of x with probability ≥ p
(:func:`recovery_times`, bisection over t; :func:`recovery_times_released`, the released linear scan); the
basin radius is the noise's size there. Works on any ε-model and :class:`mem2gen.models.diffusion.Schedule`,
in batches, on the model's device (helpers shared with :mod:`mem2gen.analyses.landscape`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.neighbors import nearest
from ..errors import check
from ..models.diffusion import Schedule, SplitOnOOM
from .landscape import _flat_norm, _rows, _steps

# --- recovery times -------------------------------------------------------------------------------------

@torch.no_grad()
def reverse_from(model, x_t, t, *, schedule: Schedule = Schedule(), steps: int = 20, eta: float = 0.0,
                 generator: torch.Generator | None = None, clip: bool = True) -> torch.Tensor:
    """Run DDIM(η) from each row's own step t down to x̂0 in ``steps`` steps (η = 0: deterministic, the
    probability-flow discretisation; η = 1: ancestral-like). Rows may start at different t."""
    net = SplitOnOOM(model)  # out of device memory: the network on parts of the batch, same results
    x = x_t.clone()
    tt = _steps(t, len(x), x.device)
    ab_all = schedule.alphas_cumprod.to(x.device).float()
    view = (-1, *([1] * (x.ndim - 1)))
    for j in range(steps):
        cur = torch.div(tt * (steps - j), steps, rounding_mode="floor")
        nxt = torch.div(tt * (steps - j - 1), steps, rounding_mode="floor") if j < steps - 1 else None
        ab = ab_all[cur].view(view)
        ab_prev = ab_all[nxt].view(view) if nxt is not None else torch.ones_like(ab)
        eps = net(x, cur)
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        if clip:
            x0 = x0.clamp(-1, 1)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        sigma = eta * ((1 - ab_prev) / (1 - ab)).clamp(min=0).sqrt() * (1 - ab / ab_prev).clamp(min=0).sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).clamp(min=0).sqrt() * eps
        if eta > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return x


def nn_spacing(train, *, device=None) -> float:
    """The median distance from a training item to its nearest other training item (l2, [-1, 1])."""
    nb = nearest(train, train, 1, exclude_self=True, device=device)
    return float(np.median(nb.distances[:, 0]))


@dataclass
class Recovery:
    t_c: np.ndarray  # (n,) largest step with recovery probability ≥ p; −1: not even at t = 0
    radius: np.ndarray  # (n,) rms ‖x_t − x‖ at t_c: √((1 − √ᾱ)²‖x‖² + (1 − ᾱ) d); 0 where t_c = −1
    delta: float
    p: float
    trials: int
    evaluations: int  # network evaluations used
    rule: str = "bisection"
    per_trial: np.ndarray | None = None  # (n, trials), rule "released": each trial's time


def _returned(model, x, t, z, *, delta, steps, eta, schedule, generator, batch) -> torch.Tensor:
    """(n,) the share of the noises ``z`` (trials, n, ...) with which each row of x, noised to its step t
    (one per row) and denoised by DDIM(``eta``) in ``steps`` steps, ends within ``delta`` of itself."""
    trials = len(z)
    xs = x.repeat(trials, *[1] * (x.ndim - 1))
    tt = t.repeat(trials).to(x.device)
    ab = schedule.alphas_cumprod.to(x.device).float()[tt].view(-1, *([1] * (x.ndim - 1)))
    xt = ab.sqrt() * xs + (1 - ab).sqrt() * z.reshape(-1, *x.shape[1:])
    x0 = torch.cat([reverse_from(model, xt[i:i + batch], tt[i:i + batch], schedule=schedule, steps=steps, eta=eta,
                                 generator=generator) for i in range(0, len(xt), batch)])
    return (_flat_norm(x0 - xs) <= delta).reshape(trials, len(x)).float().mean(0).cpu()


def recovery_probability(model, x, t: int, *, delta: float, trials: int = 10, steps: int = 20, eta: float = 0.0,
                         schedule: Schedule = Schedule(), seed: int = 0, batch: int = 8192) -> np.ndarray:
    """(n,) the probability that each sample x, noised to step t (``trials`` noises), comes back within
    ``delta`` under the reverse process (DDIM, ``steps`` steps): the quantity whose threshold crossing
    :func:`recovery_times` finds."""
    check(delta > 0 and trials >= 1 and steps >= 1, "need delta > 0, trials >= 1, steps >= 1")
    x = _rows(x, model)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn((trials, *x.shape), generator=g).to(x.device)
    return _returned(model, x, torch.full((len(x),), int(t), dtype=torch.long), z, delta=delta, steps=steps,
                     eta=eta, schedule=schedule, generator=g, batch=batch).numpy()


def recovery_times(model, x, *, delta: float, p: float = 0.9, trials: int = 10, steps: int = 20, eta: float = 0.0,
                   schedule: Schedule = Schedule(), seed: int = 0, batch: int = 8192, rule: str = "bisection",
                   stride: int = 25) -> Recovery:
    """Recovery (critical) time and basin radius of each sample x.

    ``rule="released"`` is the authors' released rule instead (:func:`recovery_times_released`); the
    two give different numbers for the same samples and are not to be compared with each other.

    x is noised to step t by the forward process (``trials`` independent noises), the reverse
    process runs back from t (DDIM with ``steps`` steps and ``eta``), and a trial counts as recovered
    when ‖x̂0 − x‖ ≤ ``delta``. t_c is the largest t whose recovery probability is ≥ ``p``, found by
    bisection over t ∈ [0, T) for all samples at once (each at its own t, samples × trials in one
    batched pass per round: about log2 T = 10 rounds instead of the released code's linear scan).
    The same forward noises are used at every t (common random numbers), so the estimated
    probability is a smooth function of t. Bisection assumes recovery gets no easier as t grows.
    """
    check(rule in ("bisection", "released"), f"recovery rule {rule!r}: use bisection or released")
    check(delta > 0, "delta must be positive")
    check(0 < p <= 1 and trials >= 1 and steps >= 1, "need 0 < p <= 1, trials >= 1, steps >= 1")
    if rule == "released":
        return recovery_times_released(model, x, delta=delta, p=p, trials=trials, steps=steps, stride=stride,
                                       schedule=schedule, seed=seed, batch=batch)
    x = _rows(x, model)
    n, T = len(x), schedule.T
    g = torch.Generator().manual_seed(seed)
    z = torch.randn((trials, *x.shape), generator=g).to(x.device)
    lo = torch.full((n,), -1, dtype=torch.long)  # recovered at lo (−1: by convention)
    hi = torch.full((n,), T, dtype=torch.long)  # not recovered at hi (T: by convention)
    evaluations = 0
    while bool((hi - lo > 1).any()):
        active = torch.nonzero(hi - lo > 1).flatten()
        mid = (lo[active] + hi[active]) // 2
        ok = _returned(model, x[active], mid, z[:, active], delta=delta, steps=steps, eta=eta, schedule=schedule,
                       generator=g, batch=batch) >= p
        evaluations += len(active) * trials * steps
        lo[active] = torch.where(ok, mid, lo[active])
        hi[active] = torch.where(ok, hi[active], mid)
    t_c = lo.numpy()
    ab = schedule.alphas_cumprod.numpy()[np.maximum(t_c, 0)]
    sq = (_flat_norm(x).cpu().double().numpy()) ** 2
    radius = np.sqrt((1 - np.sqrt(ab)) ** 2 * sq + (1 - ab) * x[0].numel())
    radius[t_c < 0] = 0.0
    return Recovery(t_c, radius, float(delta), float(p), int(trials), int(evaluations))


@torch.no_grad()
def released_ddim(model, x_t, t: int, *, steps: int = 20, schedule: Schedule = Schedule()) -> torch.Tensor:
    """The released code's deterministic DDIM from step t: strides of ⌈t / min(steps, t)⌉ down to 0,
    x_{t'} = √ᾱ_{t'} x̂0 + √(1 − ᾱ_{t'}) ε with ᾱ = 1 once t' < 0, returning the last x̂0 clipped to
    [-1, 1] (no clipping inside the loop, unlike :func:`reverse_from`)."""
    net = SplitOnOOM(model)
    ab_all = schedule.alphas_cumprod.to(x_t.device).float()
    stride = max(1, math.ceil(t / max(1, min(steps, t))))
    x, x0, now = x_t, x_t, int(t)
    while now > 0:
        ab = ab_all[now]
        ab_next = ab_all[now - stride] if now - stride >= 0 else torch.ones((), device=x.device)
        eps = net(x, torch.full((len(x),), now, dtype=torch.long, device=x.device))
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()  # 1. the predicted x0 (DDIM, η = 0)
        x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps  # 2. the next point on the deterministic path
        now -= stride
    return x0.clamp(-1, 1)


@torch.no_grad()
def recovery_times_released(model, x, *, delta: float, p: float = 0.9, trials: int = 10, steps: int = 20,
                            stride: int = 25, schedule: Schedule = Schedule(), seed: int = 0,
                            batch: int = 8192) -> Recovery:
    """The authors' released recovery-time rule: t = 1, 1 + stride, … with fresh noise at every t (one per
    trial), their DDIM back to x̂0 (:func:`released_ddim`), a trial recovered when ‖x̂0 − x‖ ≤ ``delta``;
    each trial's time is the last t before its first failure (1 for a trial that never recovered), and the
    scan stops once every sample's recovery probability at the current t is below ``p``. ``t_c`` is the
    trials' mean per sample (``per_trial`` keeps each); the radius is :func:`recovery_times`' formula at
    the rounded mean."""
    check(delta > 0 and 0 < p <= 1 and trials >= 1 and steps >= 1 and stride >= 1,
          "need delta > 0, 0 < p <= 1, trials >= 1, steps >= 1, stride >= 1")
    x = _rows(x, model)
    n = len(x)
    g = torch.Generator().manual_seed(seed)
    ab_all = schedule.alphas_cumprod.to(x.device).float()
    xs = x.repeat_interleave(trials, dim=0)  # (n·trials, …): trial j of sample i at row i·trials + j
    t_trial = torch.ones(len(xs), dtype=torch.long)
    going = torch.ones(len(xs), dtype=torch.bool)
    evaluations = 0
    for t in range(1, schedule.T, stride):
        noise = torch.randn(xs.shape, generator=g).to(x.device)  # fresh at every t
        ab = ab_all[t]
        xt = ab.sqrt() * xs + (1 - ab).sqrt() * noise
        x0 = torch.cat([released_ddim(model, xt[i:i + batch], t, steps=steps, schedule=schedule)
                        for i in range(0, len(xt), batch)])
        evaluations += len(xt) * min(steps, t)
        ok = (_flat_norm(x0 - xs) <= delta).cpu()
        going &= ok
        if bool((ok.reshape(n, trials).float().mean(1) < p).all()):
            break
        t_trial[going] = t
    per = t_trial.reshape(n, trials).numpy()
    t_c = per.mean(1)
    ab = schedule.alphas_cumprod.numpy()[np.rint(t_c).astype(int)]
    sq = (_flat_norm(x).cpu().double().numpy()) ** 2
    radius = np.sqrt((1 - np.sqrt(ab)) ** 2 * sq + (1 - ab) * x[0].numel())
    return Recovery(t_c, radius, float(delta), float(p), int(trials), int(evaluations), rule="released", per_trial=per)


def recovery_times_linear(model, x, *, delta: float, p: float = 0.9, trials: int = 10, steps: int = 20,
                          stride: int = 25, schedule: Schedule = Schedule(), seed: int = 0) -> np.ndarray:
    """The bisection's rule by a linear scan of t with ``stride`` (the same noises at every t), kept as the
    test's and benchmark's reference: the largest scanned t with recovery probability ≥ p (−1 if none).
    Not the released code's rule (:func:`recovery_times_released`)."""
    x = _rows(x, model)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn((trials, *x.shape), generator=g).to(x.device)
    best = np.full(len(x), -1)
    ab_all = schedule.alphas_cumprod.to(x.device).float()
    xs = x.repeat(trials, *[1] * (x.ndim - 1))
    noise = z.reshape(-1, *x.shape[1:])
    for t in range(0, schedule.T, stride):
        ab = ab_all[t]
        x0 = reverse_from(model, ab.sqrt() * xs + (1 - ab).sqrt() * noise, t, schedule=schedule, steps=steps)
        ok = (_flat_norm(x0 - xs) <= delta).reshape(trials, len(x)).float().mean(0).cpu().numpy() >= p
        best[ok] = t
    return best
