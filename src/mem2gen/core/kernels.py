"""Numerical kernels shared by the diffusion side and the associative-memory side.

Both sides need one operation: a softmax-weighted average of stored vectors. A DenseAM step is
x ← Σ_j softmax_j(β xᵀy_j) y_j (eq 10); the empirical optimal denoiser of a DDPM is
E[x0 | x_t] = Σ_j softmax_j(β x_tᵀy_j − (β√ᾱ_t/2)‖y_j‖²) y_j with β = √ᾱ_t/(1 − ᾱ_t) (paper App. C), the
same average with a per-pattern bias. It lives here, below both, streamed over the patterns with
an online log-sum-exp so that no queries × patterns matrix is ever held in memory.
"""
from __future__ import annotations

import contextlib
import os

import torch


def deterministic() -> None:
    """Deterministic kernels for this process (``mem2gen --deterministic``): CUDA then repeats a run bit
    for bit (cuBLAS's workspace fixed, cuDNN's autotuning and nondeterministic algorithms off), at some
    cost in speed; an operation with no deterministic CUDA form is refused by torch with its name. On the
    CPU mem2gen is deterministic without it."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False


@contextlib.contextmanager
def tf32(enabled: bool):
    """TF32 matmuls and convolutions on CUDA while inside (``enabled``) or full fp32 (not), the caller's
    settings restored on the way out: precision is a property of the code that needs it, never left
    behind for the next computation in the process."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(enabled)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def softmax_average(x: torch.Tensor, patterns: torch.Tensor, *, scale, bias=None, chunk: int = 8192):
    """Σ_j softmax_j(scale·xᵀy_j + bias_j) y_j and log Σ_j exp(scale·xᵀy_j + bias_j), per row of x.

    ``scale`` is a scalar or a per-row tensor (n,); ``bias`` a per-pattern tensor (K,) or None.
    Streams over ``patterns`` in chunks with an online log-sum-exp.
    """
    n = x.shape[0]
    scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device).reshape(-1, 1) if not isinstance(
        scale, (int, float)) else scale
    m = torch.full((n, 1), -torch.inf, dtype=x.dtype, device=x.device)
    z = torch.zeros((n, 1), dtype=x.dtype, device=x.device)
    acc = torch.zeros_like(x)
    for s in range(0, patterns.shape[0], chunk):
        y = patterns[s:s + chunk]
        logits = scale * (x @ y.T)
        if bias is not None:
            logits = logits + bias[s:s + chunk].unsqueeze(0)
        m_new = torch.maximum(m, logits.amax(dim=1, keepdim=True))
        w = torch.exp(logits - m_new)
        shrink = torch.exp(m - m_new)
        z = z * shrink + w.sum(dim=1, keepdim=True)
        acc = acc * shrink + w @ y
        m = m_new
    return acc / z, (m + torch.log(z)).squeeze(1)
