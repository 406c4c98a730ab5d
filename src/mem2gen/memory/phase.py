"""The memory-side analogue of the paper's Figure 2: store K patterns in a Dense Associative Memory,
retrieve from random starts, and label the end points with the same memorized / spurious /
generalized rule (eqs 4-6) against the stored set S and an independent set of retrievals S'."""
from __future__ import annotations

import numpy as np

from ..core.rule import classify
from ..core.stats import LABELS
from .bridge import normalize
from .dense import DenseAM


def random_starts(n: int, dim: int, *, seed: int) -> np.ndarray:
    """Starting states: isotropic Gaussian directions scaled to unit norm (the patterns' scale)."""
    x = np.random.default_rng(seed).standard_normal((n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def dense_phase(data, sizes, betas, *, n_eval: int = 500, synthetic_factor: int = 4, steps: int = 50,
                delta_m: float = 1 / 3, delta_s: float = 0.28, seed: int = 0) -> list[dict]:
    """Fractions of memorized / spurious / generalized retrievals for each (K, β).

    S_K are the first K rows of ``data`` (normalised); S_eval and S' are retrievals from independent
    random starts, |S'| = synthetic_factor · K (at least n_eval).
    """
    y_all = normalize(data)
    rows = []
    for beta in betas:
        for k in sizes:
            am = DenseAM(y_all[:k], beta=beta)
            ev = am.retrieve(random_starts(n_eval, y_all.shape[1], seed=seed + 2 * k), steps=steps)
            syn = am.retrieve(random_starts(max(synthetic_factor * k, n_eval), y_all.shape[1], seed=seed + 2 * k + 1),
                              steps=steps)
            c = classify(ev, y_all[:k], syn, distance="features", delta_m=delta_m, delta_s=delta_s)
            boot = c.bootstrap(iterations=2000, seed=seed)
            rows.append({"beta": float(beta), "K": int(k), **{f"frac_{n}": c.fractions[n] for n in LABELS},
                         **{f"std_{n}": boot[n]["std"] for n in LABELS},
                         **{f"lo95_{n}": boot[n]["ci95"][0] for n in LABELS},
                         **{f"hi95_{n}": boot[n]["ci95"][1] for n in LABELS},
                         **{f"mean_{n}": boot[n]["mean"] for n in LABELS}})
    return rows


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosines between a (n, d) and b (m, d): (n, m)."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-300)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-300)
    return a @ b.T


def capacity_table(data, sizes, betas, *, trials: int = 50, noise: float = 0.3, steps: int = 100,
                   tol: float = 0.99, seed: int = 0) -> list[dict]:
    """Per (β, K): how often a noisy cue (pattern + Gaussian noise of norm ``noise``) is retrieved
    (end point within cosine ``tol`` of its own pattern), and how often the symmetric mixture of
    three stored patterns is a fixed point (the dynamics stay at the mixture, near no single pattern)."""
    y_all = normalize(data)
    rng = np.random.default_rng(seed)
    rows = []
    for beta in betas:
        for k in sizes:
            y = y_all[:k]
            am = DenseAM(y, beta=beta)
            pick = rng.integers(0, k, trials)
            eps = rng.standard_normal((trials, y.shape[1]))
            cue = y[pick] + noise * eps / np.linalg.norm(eps, axis=1, keepdims=True)
            end = am.retrieve(cue, steps=steps)
            c = _cos(end, y)
            ok = (c.argmax(axis=1) == pick) & (c.max(axis=1) >= tol)
            row = {"beta": float(beta), "K": int(k), "retrieved": float(ok.mean()), "mixture_fixed": None}
            if k >= 3:
                triples = np.stack([rng.choice(k, 3, replace=False) for _ in range(trials)])
                start = y[triples].mean(axis=1)
                end = am.retrieve(start, steps=steps)
                stay = np.einsum("ij,ij->i", end, start) / (np.linalg.norm(end, axis=1) * np.linalg.norm(start, axis=1))
                row["mixture_fixed"] = float(((stay >= tol) & (_cos(end, y).max(axis=1) < tol)).mean())
            rows.append(row)
    return rows
