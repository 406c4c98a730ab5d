"""Dense Associative Memory with the softmax (log-sum-exp) energy, paper eq 10.

    E(x) = −β⁻¹ log Σ_j exp(β xᵀy_j) + ½‖x‖²,   fixed-point update  x ← Σ_j softmax_j(β xᵀy) y_j.

The update is a softmax-weighted average of the stored patterns, computed by
:func:`mem2gen.core.kernels.softmax_average`, the kernel the diffusion optimal denoiser uses too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.kernels import softmax_average
from ..errors import check


def _as_tensor(x, dtype, device=None) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.to(dtype=dtype, device=device)


@dataclass
class DenseAM:
    """Softmax Dense Associative Memory storing ``patterns`` (K, N) at inverse temperature ``beta``."""

    patterns: np.ndarray
    beta: float = 1.0
    dtype: torch.dtype = torch.float64
    device: str | None = None

    def __post_init__(self):
        check(float(self.beta) > 0, f"beta = {self.beta} must be positive")
        p = np.asarray(self.patterns)
        check(p.ndim == 2 and p.shape[0] >= 1, f"patterns must be a (K, N) array; got shape {p.shape}")
        check(np.isfinite(p).all(), "patterns hold NaN or Inf")
        self.y_ = _as_tensor(p, self.dtype, self.device)

    def _x(self, x) -> torch.Tensor:
        x = _as_tensor(x, self.dtype, self.y_.device)
        x = x.unsqueeze(0) if x.ndim == 1 else x
        check(x.ndim == 2 and x.shape[1] == self.y_.shape[1],
              f"states have dimension {tuple(x.shape)[1:]} but the patterns have {self.y_.shape[1]}")
        return x

    def energy(self, x) -> np.ndarray:
        """E(x) = −β⁻¹ log Σ_j exp(β xᵀy_j) + ½‖x‖² (eq 10)."""
        x = self._x(x)
        _, lse = softmax_average(x, self.y_, scale=self.beta)
        return (-lse / self.beta + 0.5 * (x * x).sum(dim=1)).cpu().numpy()

    def update(self, x) -> np.ndarray:
        """One fixed-point step x ← Σ_j softmax_j(β xᵀy) y_j (= x − ∇E(x))."""
        out, _ = softmax_average(self._x(x), self.y_, scale=self.beta)
        return out.cpu().numpy()

    def gradient(self, x) -> np.ndarray:
        """∇E(x) = x − Σ_j softmax_j(β xᵀy) y_j."""
        x = self._x(x)
        out, _ = softmax_average(x, self.y_, scale=self.beta)
        return (x - out).cpu().numpy()

    def retrieve(self, x, *, steps: int = 20, tol: float = 0.0, batch: int = 4096) -> np.ndarray:
        """Iterate the update from each row of x (queries batched with matrix products)."""
        x = self._x(x)
        out = torch.empty_like(x)
        for s in range(0, len(x), batch):
            h = x[s:s + batch]
            for _ in range(steps):
                new, _ = softmax_average(h, self.y_, scale=self.beta)
                done = tol > 0 and float((new - h).abs().max()) <= tol
                h = new
                if done:
                    break
            out[s:s + batch] = h
        return out.cpu().numpy()


def mixture_is_fixed_point(patterns, idx=(0, 1, 2), *, beta: float, steps: int = 200, tol: float = 0.99) -> bool:
    """Whether the dynamics started at the mean of the chosen patterns stay at a mixture: the end point
    keeps a cosine of at least ``tol`` with the start and is not within it of any single pattern."""
    p = np.asarray(patterns, dtype=np.float64)
    start = p[list(idx)].mean(axis=0)
    end = DenseAM(p, beta=beta).retrieve(start[None], steps=steps)[0]

    def cos(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))

    return cos(end, start) >= tol and max(cos(end, q) for q in p) < tol
