"""Fractions, bootstrap error bars (App. B.1), tests against the rule's null, capacities (eqs 1-3).

Two units of inference. Within one model, a fraction's uncertainty is the resampling of its samples
(the bootstrap, Fisher's exact test). Across replicate models of one setting (same data, other seeds),
models differ far more than samples do, so a setting's fraction is the mean over its models, its
interval a t-interval over the models' fractions (which holds both sources of variance: each model's
fraction carries its own sampling noise), and "above the null" a one-sided t-test on the models'
excesses, each over its own null (:func:`model_interval`, :func:`model_test`): the summary-statistics
form of a one-way random-effects model, exact for equal |S_eval| under normality.
"""
from __future__ import annotations

import numpy as np

from ..errors import check

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


def model_interval(values, *, level: float = 0.95, fraction: bool = True) -> dict:
    """Mean of one quantity over replicate models, its between-model sd and the t-interval for the mean
    (df = R − 1; clipped to [0, 1] for a ``fraction``, not for a difference such as an excess). With one
    model the sd and interval are None: between-model variance is not measured."""
    from scipy.stats import t as student_t

    v = np.asarray(values, dtype=float)
    check(len(v) >= 1, "an interval needs at least one model")
    m = float(v.mean())
    if len(v) < 2:
        return {"mean": m, "sd": None, "ci95": [None, None], "n": 1}
    sd = float(v.std(ddof=1))
    half = float(student_t.ppf(0.5 + level / 2, len(v) - 1)) * sd / np.sqrt(len(v))
    lo, hi = m - half, m + half
    if fraction:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    return {"mean": m, "sd": sd, "ci95": [float(lo), float(hi)], "n": int(len(v))}


def model_test(excesses) -> float | None:
    """One-sided p-value that a setting's models exceed the null: a one-sample t-test of the models'
    excesses (each model's fraction minus its own null's, at equal |S_eval| and |S'|) against 0. When the
    excesses do not vary, the sign test (0.5^R if all are positive, else 1). None for fewer than 2 models."""
    from scipy.stats import ttest_1samp

    e = np.asarray(excesses, dtype=float)
    if len(e) < 2:
        return None
    if np.ptp(e) == 0:
        return float(0.5 ** len(e)) if e[0] > 0 else 1.0
    return float(ttest_1samp(e, 0.0, alternative="greater").pvalue)


def pooled_models_excess(point_rows, lo, hi, *, name: str = "spurious") -> dict | None:
    """The model-level form of :func:`pooled_excess`: per replicate, its model's and its null's counts
    summed over lo < K < hi, the replicate's excess, and :func:`model_test` over the replicates."""
    by_rep: dict = {}
    for r in point_rows:
        if lo < r["K"] < hi and r.get(f"null_count_{name}") is not None:
            by_rep.setdefault(r.get("replicate", 0), []).append(r)
    if len(by_rep) < 2:
        return None
    exc, sizes = [], sorted({r["K"] for rs in by_rep.values() for r in rs})
    for rs in by_rep.values():
        a, na = sum(r[f"model_count_{name}_at_null"] for r in rs), sum(r["model_n_at_null"] for r in rs)
        b, nb = sum(r[f"null_count_{name}"] for r in rs), sum(r["null_n"] for r in rs)
        exc.append(a / na - b / nb)
    iv = model_interval(exc, fraction=False)
    return {"sizes": sizes, "replicates": len(exc), "excess": iv["mean"], "sd": iv["sd"], "ci95": iv["ci95"],
            "excesses": exc, "p": model_test(exc)}


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


def capacities(sizes, p_mem, p_spu, p_gen, *, tol: float = 0.05, spurious_significant=None, off_data=None) -> dict:
    """MC, SC, GC from the curves (eqs 1-3) with tolerance ``tol`` (the paper's ε).

    MC = largest K with P(mem) ≥ 1 − tol; SC = argmax_K P(spurious); GC = smallest K with
    P(gen) ≥ 1 − tol. A capacity the curves do not determine is None, and ``reasons`` says why.
    Given ``spurious_significant`` (per K: does P(spurious) exceed the rule's null significantly?),
    SC is taken over those K only, and is undetermined when there are none: a maximum of noise is
    not a capacity. Given ``off_data`` (per K: are most generalized samples off the data?), no such K
    is named GC: eq 6 calls noise "generalized", and noise is not generalization.
    """
    sizes = np.asarray(sizes)
    order = np.argsort(sizes)
    sizes, p_mem, p_spu, p_gen = (np.asarray(a, dtype=float)[order] for a in (sizes, p_mem, p_spu, p_gen))
    sig = np.ones(len(sizes), bool) if spurious_significant is None else np.asarray(spurious_significant, bool)[order]
    off = np.zeros(len(sizes), bool) if off_data is None else np.asarray(off_data, bool)[order]
    mem = sizes[p_mem >= 1 - tol]
    gen = sizes[(p_gen >= 1 - tol) & ~off]
    out = {"MC": int(mem.max()) if len(mem) else None, "SC": None, "GC": int(gen.min()) if len(gen) else None,
           "tol": tol, "reasons": {}}
    if len(sizes) and sig.any():
        masked = np.where(sig, p_spu, -np.inf)
        out["SC"] = int(sizes[int(np.argmax(masked))])
    out |= brackets(sizes, out)
    if out["MC"] is None and len(sizes):
        out["reasons"]["MC"] = (f"P(memorized) < 1 − ε = {1 - tol:.3g} at every K "
                                f"(highest {p_mem.max():.3f} at K={int(sizes[int(np.argmax(p_mem))])})")
    if out["GC"] is None and len(sizes) and ((p_gen >= 1 - tol) & off).any():
        out["reasons"]["GC"] = (f"P(generalized) ≥ 1 − ε only where most generalized samples are off the data "
                                f"(K = {', '.join(str(int(k)) for k in sizes[(p_gen >= 1 - tol) & off])}): noise, "
                                "not generalization")
    elif out["GC"] is None and len(sizes):
        out["reasons"]["GC"] = (f"P(generalized) < 1 − ε = {1 - tol:.3g} at every K "
                                f"(highest {p_gen.max():.3f} at K={int(sizes[int(np.argmax(p_gen))])})")
    if out["SC"] is None and len(sizes):
        out["reasons"]["SC"] = ("at no K does P(spurious) exceed the rule's null significantly "
                                f"(highest {p_spu.max():.3f} at K={int(sizes[int(np.argmax(p_spu))])})")
    return out


def brackets(sizes, caps: dict) -> dict:
    """Where each capacity lies between the grid's sizes (the grid cannot see between them, and nor can
    a bootstrap over labels). MC (the largest K still memorizing) lies in [K_i, K_i+1): memorizing at K_i,
    not at the next size; GC (the smallest generalizing) in (K_j-1, K_j]; SC (the peak) in the cell
    (K_s-1, K_s+1) around it. An end of the grid leaves that side open (None). Returns ``mc_bracket``,
    ``sc_bracket``, ``gc_bracket``: each {"lo", "hi", "text"} (or None where the capacity is undetermined).

    Parameters
    ----------
    sizes : sequence of int
        The grid, sorted.
    caps : dict
        MC, SC, GC as :func:`capacities` found them.
    """
    ks = [int(k) for k in sizes]

    def bracket(key, lo, hi, left, right):
        if lo is None:
            text = f"{key} {'≤' if right == ']' else '<'} {hi}"
        elif hi is None:
            text = f"{key} {'≥' if left == '[' else '>'} {lo}"
        else:
            text = f"{key} in {left}{lo}, {hi}{right}"
        return {"lo": lo, "hi": hi, "text": text}

    def neighbour(k, step):
        i = ks.index(k) + step
        return ks[i] if 0 <= i < len(ks) else None

    mc, sc, gc = caps.get("MC"), caps.get("SC"), caps.get("GC")
    return {"mc_bracket": None if mc is None else bracket("MC", mc, neighbour(mc, 1), "[", ")"),
            "sc_bracket": None if sc is None else bracket("SC", neighbour(sc, -1), neighbour(sc, 1), "(", ")"),
            "gc_bracket": None if gc is None else bracket("GC", neighbour(gc, -1), gc, "(", "]")}


def capacity_draws(sizes, counts, *, tol: float = 0.05, iterations: int = 2000, seed: int = 0,
                   spurious_significant=None, off_data=None) -> dict:
    """MC, SC, GC recomputed after resampling every point's labels (multinomial), ``iterations`` times.

    ``counts`` is (M, 3): memorized, spurious, generalized counts per size; or (M, R, 3) for R replicate
    models per size, resampled hierarchically (R models drawn with replacement, then each one's labels;
    the fractions averaged over the drawn models). Returns per capacity an array of the draws, NaN where
    a draw leaves it undefined (draw i of two runs pair up in :func:`capacity_shift`)."""
    sizes = np.asarray(sizes)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim == 2:
        counts = counts[:, None, :]
    n = counts.sum(axis=2)
    R = counts.shape[1]
    rng = np.random.default_rng(seed)
    draws = {key: np.full(iterations, np.nan) for key in ("MC", "SC", "GC")}

    def fractions(j):
        if R == 1:  # one model: its labels only (the draws of a run without replicates, as before)
            return rng.multinomial(n[j, 0], counts[j, 0] / n[j, 0]) / n[j, 0]
        picks = rng.integers(R, size=R)
        return np.mean([rng.multinomial(n[j, r], counts[j, r] / n[j, r]) / n[j, r] for r in picks], axis=0)

    for i in range(iterations):
        f = np.stack([fractions(j) for j in range(len(n))])
        c = capacities(sizes, f[:, 0], f[:, 1], f[:, 2], tol=tol, spurious_significant=spurious_significant,
                       off_data=off_data)
        for key in draws:
            if c[key] is not None:
                draws[key][i] = c[key]
    return draws


def capacity_bootstrap(sizes, counts, *, tol: float = 0.05, iterations: int = 2000, seed: int = 0,
                       spurious_significant=None, off_data=None) -> dict:
    """Uncertainty of MC, SC, GC (:func:`capacity_draws`): per capacity the median, the 95% interval
    over the draws where it is defined, how often it is defined, and the distribution: the share of all
    draws that put it at each K (a capacity on a coarse grid is a distribution, not a point; empty where
    it is never defined). Every capacity carries the same four keys."""
    draws = capacity_draws(sizes, counts, tol=tol, iterations=iterations, seed=seed,
                           spurious_significant=spurious_significant, off_data=off_data)
    out = {}
    for key, v in draws.items():
        v = v[~np.isnan(v)]
        if not len(v):
            out[key] = {"median": None, "ci95": None, "defined": 0.0, "distribution": {}}
            continue
        ks, c = np.unique(v, return_counts=True)
        out[key] = {"median": float(np.median(v)),
                    "ci95": [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))],
                    "defined": len(v) / iterations,
                    "distribution": {str(int(k)): round(float(x) / iterations, 4) for k, x in zip(ks, c)}}
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


def still_falling(losses, *, tail: float = 1 / 3, alpha: float = 0.01, drop: float = 0.02) -> bool | None:
    """Whether a training loss is still falling at the end: over the last ``tail`` of the logged
    (step, loss) pairs, the least-squares slope is negative at one-sided level ``alpha`` and the line
    falls by more than ``drop`` of the mean loss across that stretch. None when fewer than 6 values lie
    there (too short a log to tell)."""
    from scipy.stats import linregress

    pts = np.asarray(losses, dtype=float).reshape(-1, 2)
    pts = pts[pts[:, 0] >= pts[-1, 0] * (1 - tail)] if len(pts) else pts
    if len(pts) < 6 or np.ptp(pts[:, 0]) == 0:
        return None
    fit = linregress(pts[:, 0], pts[:, 1])
    fall = -fit.slope * np.ptp(pts[:, 0]) / max(abs(float(pts[:, 1].mean())), 1e-12)
    p_one_sided = fit.pvalue / 2 if fit.slope < 0 else 1 - fit.pvalue / 2
    return bool(p_one_sided < alpha and fall > drop)
