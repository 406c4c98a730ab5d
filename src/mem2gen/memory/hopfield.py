"""The classical Hopfield network (Hopfield 1982; Amit, Gutfreund, Sompolinsky 1985).

    W = (1/N) Σ_μ ξ^μ ξ^μᵀ with zero diagonal (Hebbian),   E(σ) = −½ σᵀWσ,   σ_i ← sign(Σ_j W_ij σ_j).

Retrieval fails above the load α = K/N ≈ 0.138, and spurious fixed points appear (symmetric
mixtures of three patterns at low load, spin-glass states at high load). Here every state is a
row of a (Q, N) array of ±1, and all Q states are updated together.
"""
from __future__ import annotations

import numpy as np

from ..errors import check


def random_patterns(k: int, n: int, *, seed: int = 0) -> np.ndarray:
    """K unbiased random ±1 patterns of N neurons (int8)."""
    return np.where(np.random.default_rng(seed).random((k, n)) < 0.5, -1, 1).astype(np.int8)


class Hopfield:
    """Hebbian Hopfield network storing ±1 ``patterns`` (K, N)."""

    def __init__(self, patterns):
        p = np.asarray(patterns)
        check(p.ndim == 2 and p.shape[0] >= 1 and p.shape[1] >= 2,
              f"patterns must be (K, N) with N >= 2; got {p.shape}")
        check(np.isin(p, (-1, 1)).all(), "the classical Hopfield network stores binary ±1 patterns only; "
                                          "binarize them (e.g. np.sign) or use DenseAM for real-valued ones")
        self.patterns = p.astype(np.float32)
        k, n = p.shape
        self.W = (self.patterns.T @ self.patterns) / n
        np.fill_diagonal(self.W, 0.0)

    @property
    def load(self) -> float:
        return self.patterns.shape[0] / self.patterns.shape[1]

    def _states(self, s) -> np.ndarray:
        s = np.atleast_2d(np.asarray(s, dtype=np.float32))
        check(s.shape[1] == self.W.shape[0], f"states have {s.shape[1]} neurons, the network {self.W.shape[0]}")
        check(np.isin(s, (-1, 1)).all(), "states must be ±1")
        return s

    def energy(self, s) -> np.ndarray:
        s = self._states(s)
        return -0.5 * np.einsum("qi,qi->q", s @ self.W, s)

    def overlaps(self, s) -> np.ndarray:
        """m_μ = σ·ξ^μ / N for every state and pattern: (Q, K)."""
        return self._states(s) @ self.patterns.T / self.W.shape[0]

    def run(self, s, *, mode: str = "async", max_sweeps: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Zero-temperature dynamics until no neuron changes; returns (states, converged flags).

        ``async``: neurons updated one at a time in a random order each sweep (energy never rises);
        ``sync``: all at once (may end in a 2-cycle, then reported as not converged).
        A neuron with zero field keeps its state.
        """
        check(mode in ("async", "sync"), f"unknown mode {mode!r}; use async or sync")
        s = self._states(s).copy()
        rng = np.random.default_rng(seed)
        n = s.shape[1]
        changed = np.ones(len(s), dtype=bool)
        h = s @ self.W  # local fields, kept up to date
        for _ in range(max_sweeps):
            if mode == "sync":
                new = np.where(h > 0, 1.0, np.where(h < 0, -1.0, s))
                changed = (new != s).any(axis=1)
                s, h = new, new @ self.W
            else:
                changed = np.zeros(len(s), dtype=bool)
                for i in rng.permutation(n):
                    new = np.where(h[:, i] > 0, 1.0, np.where(h[:, i] < 0, -1.0, s[:, i]))
                    flip = new != s[:, i]
                    if flip.any():
                        rows = np.flatnonzero(flip)
                        h[rows] += np.outer(new[rows] - s[rows, i], self.W[i])
                        s[rows, i] = new[rows]
                        changed[rows] = True
            if not changed.any():
                break
        return s.astype(np.int8), ~changed


def mixture(patterns, idx=(0, 1, 2)) -> np.ndarray:
    """The symmetric mixture sign(ξ^a + ξ^b + ξ^c) of an odd number of patterns."""
    check(len(idx) % 2 == 1, "a symmetric mixture needs an odd number of patterns")
    return np.sign(np.asarray(patterns, dtype=np.int32)[list(idx)].sum(axis=0)).astype(np.int8)


def end_state_kind(m: np.ndarray, *, hit: float = 0.9, mix: float = 0.25) -> np.ndarray:
    """Name the end states from their overlaps (Q, K): 'pattern', 'negative' (of a pattern),
    'mixture' (no overlap above ``hit``, at least three above ``mix`` in size), else 'spin-glass'."""
    a = np.abs(m)
    best = a.argmax(axis=1)
    top = m[np.arange(len(m)), best]
    kind = np.full(len(m), "spin-glass", dtype=object)
    kind[(a >= mix).sum(axis=1) >= 3] = "mixture"
    kind[top >= hit] = "pattern"
    kind[top <= -hit] = "negative"
    return kind


def retrieval_curve(n: int, alphas, *, trials: int = 8, probes: int = 20, noise: float = 0.0, mode: str = "async",
                    seed: int = 0) -> dict:
    """Mean final overlap with the stored pattern after the dynamics started at it (flipped by
    ``noise``), for each load α = K/N; ``trials`` networks, ``probes`` patterns each."""
    rng = np.random.default_rng(seed)
    out = {"alpha": [], "overlap": [], "success": []}
    for alpha in alphas:
        k = max(1, int(round(alpha * n)))
        ms, ok = [], []
        for _ in range(trials):
            xi = random_patterns(k, n, seed=int(rng.integers(1 << 31)))
            net = Hopfield(xi)
            pick = rng.choice(k, size=min(probes, k), replace=False)
            start = xi[pick].copy()
            if noise:
                start[rng.random(start.shape) < noise] *= -1
            end, _ = net.run(start, mode=mode, seed=int(rng.integers(1 << 31)))
            m = (end.astype(np.float32) * xi[pick]).sum(axis=1) / n
            ms.append(m)
            ok.append(m >= 0.9)
        out["alpha"].append(k / n)
        out["overlap"].append(float(np.concatenate(ms).mean()))
        out["success"].append(float(np.concatenate(ok).mean()))
    return out


def critical_load(curve: dict, *, level: float = 0.5) -> float:
    """α where the retrieval success first falls below ``level`` (linear interpolation)."""
    a, s = np.asarray(curve["alpha"]), np.asarray(curve["success"])
    below = np.flatnonzero(s < level)
    check(len(below) > 0 and below[0] > 0, "the loads do not bracket the transition; widen the range of α")
    i = below[0]
    return float(a[i - 1] + (s[i - 1] - level) * (a[i] - a[i - 1]) / (s[i - 1] - s[i]))


def capacity_experiment(ns=(100, 200, 400, 800), alphas=None, *, trials: int = 6, probes: int = 20,
                        seed: int = 0) -> dict:
    """α_c(N) for several N and its extrapolation α_c(N) = α_∞ + b / √N (finite-size trend)."""
    alphas = np.round(np.arange(0.06, 0.26, 0.01), 3) if alphas is None else np.asarray(alphas)
    rows = []
    for n in ns:
        c = retrieval_curve(n, alphas, trials=trials, probes=probes, seed=seed + n)
        rows.append({"N": n, "alpha_c": critical_load(c), "curve": c})
    x = 1 / np.sqrt([r["N"] for r in rows])
    y = np.array([r["alpha_c"] for r in rows])
    b, a_inf = np.polyfit(x, y, 1) if len(rows) > 1 else (0.0, y[0])
    return {"by_n": rows, "alpha_c_infinite": float(a_inf), "slope": float(b)}


def spurious_census(n: int, alphas, *, starts: int = 200, seed: int = 0) -> list[dict]:
    """Where the dynamics from random starts end, by load: pattern, negative, mixture, spin-glass."""
    rng = np.random.default_rng(seed)
    rows = []
    for alpha in alphas:
        k = max(3, int(round(alpha * n)))
        net = Hopfield(random_patterns(k, n, seed=int(rng.integers(1 << 31))))
        start = random_patterns(starts, n, seed=int(rng.integers(1 << 31)))
        end, _ = net.run(start, seed=int(rng.integers(1 << 31)))
        kinds = end_state_kind(net.overlaps(end))
        rows.append({"alpha": k / n, **{name: float((kinds == name).mean())
                                        for name in ("pattern", "negative", "mixture", "spin-glass")}})
    return rows
