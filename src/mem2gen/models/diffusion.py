"""DDPM (Ho et al. 2020; paper App. B.3): linear β from 1e-4 to 2e-2, T = 1000, ε-prediction.

Samplers are diffusers' DDPM (ancestral, the paper's, 1000 steps), DDIM (n steps, η) and DPM-Solver++
(2M, deterministic ``dpm++``, or its SDE form ``dpm++sde``) schedulers driven over any ε-model
``model(x, t) -> ε``. The empirical optimal denoiser of a finite training
set (paper App. C) is an ε-model that needs no training and can only reproduce training points.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ..core.kernels import softmax_average
from ..errors import check

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """The DDPM forward process: q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)."""

    T: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 2e-2

    @property
    def betas(self) -> torch.Tensor:
        return torch.linspace(self.beta_start, self.beta_end, self.T, dtype=torch.float64)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(1.0 - self.betas, dim=0)

    def scheduler(self, sampler: str = "ddpm"):
        """The diffusers scheduler with this process (x0 clipped to [-1, 1], as DDPM sampling does)."""
        from diffusers import DDIMScheduler, DDPMScheduler

        kw = dict(num_train_timesteps=self.T, beta_start=self.beta_start, beta_end=self.beta_end,
                  beta_schedule="linear", prediction_type="epsilon")
        check(sampler in ("ddpm", "ddim", "dpm++", "dpm++sde"), f"unknown sampler {sampler!r}; use ddpm, ddim, "
                                                                 "dpm++ or dpm++sde")
        if sampler.startswith("dpm++"):
            from diffusers import DPMSolverMultistepScheduler

            return DPMSolverMultistepScheduler(**kw, solver_order=2, algorithm_type="dpmsolver++" if sampler == "dpm++"
                                               else "sde-dpmsolver++", lower_order_final=True)
        return DDPMScheduler(**kw, clip_sample=True) if sampler == "ddpm" else DDIMScheduler(
            **kw, clip_sample=True, set_alpha_to_one=True)


def noisy(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    ab = schedule.alphas_cumprod.to(x0.device)[t].to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def loss(model, schedule: Schedule, x0: torch.Tensor, *, generator: torch.Generator | None = None):
    """The simple DDPM loss ‖ε − ε_θ(x_t, t)‖² with t uniform in [0, T)."""
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator, device="cpu").to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device="cpu", dtype=x0.dtype).to(x0.device)
    return F.mse_loss(model(noisy(schedule, x0, t, noise), t), noise)


class SplitOnOOM:
    """``model(x, t)`` that, when the device runs out of memory, calls the network on the same batch in
    2, 4, 8, … parts and keeps that split for the later calls. Only the network call is split: the noise
    and the sampler's steps are drawn for the whole shard as before, so the samples are the same (up to
    the last bits of the network's arithmetic on a smaller batch)."""

    def __init__(self, model):
        self.model, self.parts = model, 1

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        while True:
            try:
                if self.parts == 1:
                    return self.model(x, t)
                return torch.cat([self.model(a, b) for a, b in zip(x.chunk(self.parts), t.chunk(self.parts))])
            except RuntimeError as e:  # torch.OutOfMemoryError (CUDA) is a RuntimeError
                if type(e).__name__ != "OutOfMemoryError" or self.parts >= len(x):
                    raise
                self.parts *= 2
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                log.warning("out of device memory: the network now runs on %d parts of each batch", self.parts)


@torch.no_grad()
def sample(model, shape: tuple, *, schedule: Schedule = Schedule(), sampler: str = "ddpm", steps: int = 1000,
           eta: float = 0.0, seed: int = 0, device=None, dtype=torch.float32, noise=None,
           on_step=None) -> torch.Tensor:
    """Generate ``shape[0]`` samples; deterministic for a given seed (noise drawn on the CPU). ``noise``:
    the initial x_T to start from in place of the seed's; the sampler's later noise is the seed's still, so
    (seed, x_T) regenerates a sample and a changed x_T moves only its start (the sampler's basins).
    ``on_step()`` is called after every denoising step (progress)."""
    check(steps >= 1, "sampling steps must be at least 1")
    check(steps <= schedule.T, f"sampling steps must be at most T = {schedule.T}")
    device = torch.device(device or "cpu")
    sched = schedule.scheduler(sampler)
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=dtype)  # drawn even when replaced: the later noise stays the seed's
    if noise is not None:
        check(tuple(noise.shape) == tuple(shape), f"noise of shape {tuple(noise.shape)} for samples of {tuple(shape)}")
        x = torch.as_tensor(noise, dtype=dtype)
    x = x.to(device)
    net = SplitOnOOM(model)
    for t in sched.timesteps:
        tt = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
        eps = net(x, tt)
        kw = dict(eta=eta) if sampler == "ddim" else {}
        x = sched.step(eps, t, x, generator=g, **kw).prev_sample
        if on_step is not None:
            on_step()
    return x.clamp(-1, 1)


class OptimalDenoiser(torch.nn.Module):
    """The exact ε-model of a finite training set (paper App. C, the ideal memorizer):

        E[x0 | x_t] = Σ_j softmax_j(−‖x_t − √ᾱ_t y_j‖² / (2(1 − ᾱ_t))) y_j,
        ε̂ = (x_t − √ᾱ_t E[x0 | x_t]) / √(1 − ᾱ_t).

    The softmax is expanded as logits (√ᾱ/(1−ᾱ)) x·y_j − (ᾱ/(2(1−ᾱ))) ‖y_j‖² (the ‖x‖² term is common)
    and computed by :func:`mem2gen.core.kernels.softmax_average` (the kernel of a DenseAM step), streamed
    over the training set in blocks of ``chunk`` items.

    Parameters
    ----------
    train : array
        The training set S (images or vectors in [-1, 1]).
    schedule : Schedule
        The DDPM schedule (ᾱ_t).
    dtype : torch.dtype
        The precision of the softmax (float64: exact to the last digits).
    chunk : int
        Training items per block of the streamed softmax.
    """

    def __init__(self, train, *, schedule: Schedule = Schedule(), dtype=torch.float64, chunk: int = 8192):
        super().__init__()
        self.chunk = chunk  # training items per block of the streamed softmax
        y = torch.as_tensor(np.asarray(train)).to(dtype)
        self.sample_shape = tuple(y.shape[1:])
        self.register_buffer("y", y.reshape(len(y), -1))
        self.register_buffer("y2", (self.y * self.y).sum(dim=1))
        self.register_buffer("ab", schedule.alphas_cumprod.to(dtype))

    def _average(self, flat: torch.Tensor, tv) -> tuple[torch.Tensor, torch.Tensor]:
        """E[x0 | x_t] and log Σ_j exp(logit_j) for rows that share the step ``tv``."""
        a = self.ab[tv]
        return softmax_average(flat, self.y, scale=float(a.sqrt() / (1 - a)), bias=-(a / (2 * (1 - a))) * self.y2,
                               chunk=self.chunk)

    def denoise(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """E[x0 | x_t] for each row."""
        flat = x.reshape(len(x), -1).to(self.y.dtype)
        steps = torch.unique(t)
        if len(steps) == 1:  # sampling, curvature: every row shares t (and no in-place writes, for torch.func)
            return self._average(flat, steps[0])[0].reshape(x.shape).to(x.dtype)
        out = torch.empty_like(flat)
        for tv in steps:  # the bias depends on t: group rows by t
            rows = torch.nonzero(t == tv).flatten()
            out[rows] = self._average(flat[rows], tv)[0]
        return out.reshape(x.shape).to(x.dtype)

    def energy(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """E_t(x) = −log p_t(x) up to a constant that depends on t only:
        p_t(x) = (1/K) Σ_j N(x; √ᾱ_t y_j, (1 − ᾱ_t) I), so
        E_t(x) = ‖x‖²/(2(1 − ᾱ_t)) − log Σ_j exp(√ᾱ_t xᵀy_j/(1 − ᾱ_t) − ᾱ_t‖y_j‖²/(2(1 − ᾱ_t))) + const.
        Exact (log-sum-exp in the model's dtype): the reference for the landscape tools."""
        flat = x.reshape(len(x), -1).to(self.y.dtype)
        _, lse = self._average(flat, int(t))
        return (flat * flat).sum(dim=1) / (2 * (1 - self.ab[int(t)])) - lse

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self.ab[t.to(self.ab.device)].to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
        return (x - ab.sqrt() * self.denoise(x, t)) / (1 - ab).sqrt()
