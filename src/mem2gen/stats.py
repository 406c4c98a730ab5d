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
