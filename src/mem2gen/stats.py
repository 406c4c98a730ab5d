"""Fractions, bootstrap error bars (App. B.1) and capacities (eqs 1-3)."""
from __future__ import annotations

import numpy as np

from .errors import check

LABELS = ("memorized", "spurious", "generalized")


def bootstrap_fractions(counts, *, iterations: int = 10_000, seed: int = 0, size: int | None = None) -> dict:
    """Bootstrap of the three fractions (App. B.1): each iteration resamples ``size`` (default: all)
    labels with replacement, which is exactly a multinomial draw of the three counts.

    Returns, per class, the mean, standard deviation and 95% percentile interval.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    check(n > 0, "bootstrap needs at least one labelled sample")
    check(iterations >= 1, "bootstrap iterations must be at least 1")
    size = n if size is None else int(size)
    draws = np.random.default_rng(seed).multinomial(size, counts / n, size=iterations) / size
    lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
    return {name: {"mean": float(draws[:, j].mean()), "std": float(draws[:, j].std(ddof=1) if iterations > 1 else 0.0),
                   "ci95": [float(lo[j]), float(hi[j])]}
            for j, name in enumerate(LABELS[:len(counts)])}


def capacities(sizes, p_mem, p_spu, p_gen, *, tol: float = 0.05) -> dict:
    """MC, SC, GC from the curves (eqs 1-3) with tolerance ``tol`` (the paper's ε).

    MC = largest K with P(mem) ≥ 1 − tol; SC = argmax_K P(spurious); GC = smallest K with
    P(gen) ≥ 1 − tol. A capacity that the sizes do not reach is None.
    """
    sizes = np.asarray(sizes)
    order = np.argsort(sizes)
    sizes, p_mem, p_spu, p_gen = (np.asarray(a, dtype=float)[order] for a in (sizes, p_mem, p_spu, p_gen))
    mem = sizes[p_mem >= 1 - tol]
    gen = sizes[p_gen >= 1 - tol]
    return {"MC": int(mem.max()) if len(mem) else None,
            "SC": int(sizes[int(np.argmax(p_spu))]) if len(sizes) else None,
            "GC": int(gen.min()) if len(gen) else None,
            "tol": tol}


def capacity_bootstrap(sizes, counts, *, tol: float = 0.05, iterations: int = 2000, seed: int = 0) -> dict:
    """Uncertainty of MC, SC, GC: resample every point's labels (multinomial) and recompute them.

    ``counts`` is (M, 3): memorized, spurious, generalized counts per size. Returns per capacity the
    median, the 95% interval over the draws where it is defined, and how often it is defined.
    """
    sizes = np.asarray(sizes)
    counts = np.asarray(counts, dtype=np.int64)
    n = counts.sum(axis=1)
    rng = np.random.default_rng(seed)
    draws = {"MC": [], "SC": [], "GC": []}
    for _ in range(iterations):
        f = np.stack([rng.multinomial(n[i], counts[i] / n[i]) / n[i] for i in range(len(n))])
        c = capacities(sizes, f[:, 0], f[:, 1], f[:, 2], tol=tol)
        for key in draws:
            if c[key] is not None:
                draws[key].append(c[key])
    out = {}
    for key, v in draws.items():
        v = np.asarray(v)
        out[key] = ({"median": float(np.median(v)), "ci95": [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))],
                     "defined": len(v) / iterations} if len(v) else {"median": None, "ci95": None, "defined": 0.0})
    return out
