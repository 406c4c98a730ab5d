"""The bridge between diffusion and Dense Associative Memory (paper App. C, eqs 11-13).

The diffusion energy of a finite training set {y_j} at reverse time τ = T − t, noise scale σ,

    E_DM(x, t) = −σ² log (1/K) Σ_j exp(−‖x − y_j‖² / (2τσ²))                        (eq 11)

becomes, for normalised patterns ‖y_j‖ = 1 and β(t) = 1/(τσ²), the DenseAM energy

    E_DAM(x, t) = β⁻¹(t) E_DM(x, t) / σ² = −β⁻¹ log Σ_j exp(β xᵀy_j) + ½‖x‖² + const     (eqs 12-13)

and the exact score of the training set is that energy's gradient; its fixed point map is the
empirical optimal denoiser (:class:`mem2gen.models.diffusion.OptimalDenoiser`), computed by the same
kernel, :func:`mem2gen.memory.dense.softmax_average`.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import check
from .dense import DenseAM, softmax_average


def bridge_beta(tau: float, sigma: float) -> float:
    """β(t) = 1 / (τσ²) (eq 13)."""
    check(tau > 0 and sigma > 0, "tau and sigma must be positive")
    return 1.0 / (tau * sigma ** 2)


def diffusion_energy(x, patterns, *, tau: float, sigma: float) -> np.ndarray:
    """E_DM(x, t) of eq 11 for each row of x, in float64 (log-sum-exp, streamed over the patterns)."""
    check(tau > 0 and sigma > 0, "tau and sigma must be positive")
    y = torch.as_tensor(np.asarray(patterns), dtype=torch.float64)
    x = torch.as_tensor(np.atleast_2d(np.asarray(x)), dtype=torch.float64)
    check(x.shape[1] == y.shape[1], f"x has dimension {x.shape[1]}, the patterns {y.shape[1]}")
    s2 = tau * sigma ** 2
    # −‖x−y‖²/(2s2) = (xᵀy)/s2 − ‖y‖²/(2s2) − ‖x‖²/(2s2)
    _, lse = softmax_average(x, y, scale=1.0 / s2, bias=-(y * y).sum(dim=1) / (2 * s2))
    log_mean = lse - (x * x).sum(dim=1) / (2 * s2) - np.log(len(y))
    return (-sigma ** 2 * log_mean).numpy()


def dense_energy_at(x, patterns, *, tau: float, sigma: float) -> np.ndarray:
    """E_DAM(x, t): the DenseAM energy (eq 10) at β(t) = 1/(τσ²)."""
    return DenseAM(np.asarray(patterns), beta=bridge_beta(tau, sigma)).energy(x)


def normalize(patterns) -> np.ndarray:
    """Rows scaled to unit norm, as the bridge assumes (‖y_j‖ = 1)."""
    p = np.asarray(patterns, dtype=np.float64).reshape(len(patterns), -1)
    norms = np.linalg.norm(p, axis=1, keepdims=True)
    check(bool((norms > 0).all()), "patterns must be non-zero to be normalised")
    return p / norms


def energy_agreement(learned, exact) -> dict:
    """How well a learned energy difference matches the exact one (eq 11 against a model's E_t), over
    pairs: their correlation (None when either is constant), the median relative error over pairs whose
    exact difference is not ~0 (None when none is), how often their signs agree, and both medians."""
    learned, exact = np.asarray(learned, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    check(learned.shape == exact.shape and learned.ndim == 1 and len(learned) >= 2,
          "give two equally long 1-D arrays of at least 2 energy differences")
    ok = np.abs(exact) > 1e-9
    rel = np.abs(learned[ok] - exact[ok]) / np.abs(exact[ok])
    corr = float(np.corrcoef(learned, exact)[0, 1]) if np.std(learned) > 0 and np.std(exact) > 0 else None
    return {"corr": corr, "median_rel_error": float(np.median(rel)) if ok.any() else None,
            "sign_agreement": float(np.mean(np.sign(learned) == np.sign(exact))),
            "median_exact": float(np.median(exact)), "median_learned": float(np.median(learned))}
