"""Fractions, bootstrap error bars (App. B.1) and capacities (eqs 1-3)."""
from __future__ import annotations

import numpy as np

from .errors import check

LABELS = ("memorized", "spurious", "generalized")
ALPHA = 0.05  # family-wise level of "significantly above the null" over one table's cells (one-sided)


def exceeds(count: int, n: int, null_count: int, null_n: int) -> float:
    """One-sided p-value that a class's rate in the model's samples (count of n) exceeds its rate in the
    rule's null (null_count of null_n): Fisher's exact test, conditional on the total count. Exact for
    the small counts where a bootstrap interval is not (0 of 500 on the null side has no bootstrap
    spread at all, though the rate behind it may well be 0.5%)."""
    from scipy.stats import fisher_exact

    check(0 <= count <= n and 0 <= null_count <= null_n and n > 0 and null_n > 0, "counts must lie in [0, n], n > 0")
    return float(fisher_exact([[count, n - count], [null_count, null_n - null_count]], alternative="greater")[1])


def pooled_excess(rows, lo, hi, *, name: str = "spurious") -> dict | None:
    """The model's and the null's counts of one class summed over the sizes lo < K < hi (e.g. between MC
    and GC) and the one-sided exact p-value of the pooled excess: a small excess spread over the
    transition that no single K resolves. None when no size in the window has a null."""
    sel = [r for r in rows if lo < r["K"] < hi and r.get(f"null_count_{name}") is not None]
    if not sel:
        return None
    a, na = sum(r[f"model_count_{name}_at_null"] for r in sel), sum(r["model_n_at_null"] for r in sel)
    b, nb = sum(r[f"null_count_{name}"] for r in sel), sum(r["null_n"] for r in sel)
    return {"sizes": [r["K"] for r in sel], "model": a, "model_n": na, "null": b, "null_n": nb,
            "model_fraction": a / na, "null_fraction": b / nb, "p": exceeds(a, na, b, nb)}


def holm(pvalues, *, alpha: float = ALPHA) -> np.ndarray:
    """Holm's step-down correction: which of the tests (None: not tested) reject at family-wise ``alpha``.
    A table of many K (or K × step) is many tests; without it, 40 sizes would show a 'significant'
    excess at one or two K by chance alone."""
    p = np.array([np.inf if x is None else float(x) for x in pvalues])
    m = int(np.isfinite(p).sum())
    out = np.zeros(len(p), bool)
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        if not np.isfinite(p[i]) or p[i] > alpha / (m - rank):
            break
        out[i] = True
    return out


def mark_significant(rows, name: str = "spurious") -> list[dict]:
    """Set ``significant_<name>`` of every tested row (``p_<name>`` not None) from its p-value,
    Holm-corrected over the rows: one table, one family of tests. Untested rows keep theirs."""
    tested = [r for r in rows if r.get(f"p_{name}") is not None]
    for r, sig in zip(tested, holm([r[f"p_{name}"] for r in tested])):
        r[f"significant_{name}"] = int(sig)
    return rows


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


def capacities(sizes, p_mem, p_spu, p_gen, *, tol: float = 0.05, spurious_significant=None) -> dict:
    """MC, SC, GC from the curves (eqs 1-3) with tolerance ``tol`` (the paper's ε).

    MC = largest K with P(mem) ≥ 1 − tol; SC = argmax_K P(spurious); GC = smallest K with
    P(gen) ≥ 1 − tol. A capacity the curves do not determine is None, and ``reasons`` says why.
    Given ``spurious_significant`` (per K: does P(spurious) exceed the rule's null significantly?),
    SC is taken over those K only, and is undetermined when there are none: a maximum of noise is
    not a capacity.
    """
    sizes = np.asarray(sizes)
    order = np.argsort(sizes)
    sizes, p_mem, p_spu, p_gen = (np.asarray(a, dtype=float)[order] for a in (sizes, p_mem, p_spu, p_gen))
    sig = np.ones(len(sizes), bool) if spurious_significant is None else np.asarray(spurious_significant, bool)[order]
    mem = sizes[p_mem >= 1 - tol]
    gen = sizes[p_gen >= 1 - tol]
    out = {"MC": int(mem.max()) if len(mem) else None, "SC": None, "GC": int(gen.min()) if len(gen) else None,
           "tol": tol, "reasons": {}}
    if len(sizes) and sig.any():
        masked = np.where(sig, p_spu, -np.inf)
        out["SC"] = int(sizes[int(np.argmax(masked))])
    if out["MC"] is None and len(sizes):
        out["reasons"]["MC"] = (f"P(memorized) < 1 − ε = {1 - tol:.3g} at every K "
                                f"(highest {p_mem.max():.3f} at K={int(sizes[int(np.argmax(p_mem))])})")
    if out["GC"] is None and len(sizes):
        out["reasons"]["GC"] = (f"P(generalized) < 1 − ε = {1 - tol:.3g} at every K "
                                f"(highest {p_gen.max():.3f} at K={int(sizes[int(np.argmax(p_gen))])})")
    if out["SC"] is None and len(sizes):
        out["reasons"]["SC"] = ("at no K does P(spurious) exceed the rule's null significantly "
                                f"(highest {p_spu.max():.3f} at K={int(sizes[int(np.argmax(p_spu))])})")
    return out


def capacity_draws(sizes, counts, *, tol: float = 0.05, iterations: int = 2000, seed: int = 0,
                   spurious_significant=None) -> dict:
    """MC, SC, GC recomputed after resampling every point's labels (multinomial), ``iterations`` times.

    ``counts`` is (M, 3): memorized, spurious, generalized counts per size. Returns per capacity an
    array of the draws, NaN where a draw leaves it undefined (draw i of two runs pair up in
    :func:`capacity_shift`)."""
    sizes = np.asarray(sizes)
    counts = np.asarray(counts, dtype=np.int64)
    n = counts.sum(axis=1)
    rng = np.random.default_rng(seed)
    draws = {key: np.full(iterations, np.nan) for key in ("MC", "SC", "GC")}
    for i in range(iterations):
        f = np.stack([rng.multinomial(n[j], counts[j] / n[j]) / n[j] for j in range(len(n))])
        c = capacities(sizes, f[:, 0], f[:, 1], f[:, 2], tol=tol, spurious_significant=spurious_significant)
        for key in draws:
            if c[key] is not None:
                draws[key][i] = c[key]
    return draws


def capacity_bootstrap(sizes, counts, *, tol: float = 0.05, iterations: int = 2000, seed: int = 0,
                       spurious_significant=None) -> dict:
    """Uncertainty of MC, SC, GC (:func:`capacity_draws`): per capacity the median, the 95% interval
    over the draws where it is defined, and how often it is defined."""
    draws = capacity_draws(sizes, counts, tol=tol, iterations=iterations, seed=seed,
                           spurious_significant=spurious_significant)
    out = {}
    for key, v in draws.items():
        v = v[~np.isnan(v)]
        out[key] = ({"median": float(np.median(v)), "ci95": [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))],
                     "defined": len(v) / iterations} if len(v) else {"median": None, "ci95": None, "defined": 0.0})
    return out


def capacity_shift(reference: np.ndarray, other: np.ndarray) -> dict:
    """A capacity's change between two independent runs, from their bootstrap draws: the median of
    log2(other / reference) (capacities live on a log grid), its 95% interval over the draws where
    both are defined, and whether the interval excludes 0."""
    both = ~np.isnan(reference) & ~np.isnan(other)
    if both.mean() < 0.5:
        return {"log2_ratio": None, "ci95": None, "significant": False, "defined": float(both.mean())}
    d = np.log2(other[both] / reference[both])
    lo, hi = np.percentile(d, [2.5, 97.5])
    return {"log2_ratio": float(np.median(d)), "ci95": [float(lo), float(hi)], "significant": bool(lo > 0 or hi < 0),
            "defined": float(both.mean())}
