"""The rule's null (paper eq 5, App. B.2): eqs 4-6 applied to held-out real data in place of a model's
samples, at the model's |S_eval| and |S'|, and the excess of a fraction over it, in both forms.

Eq 5 counts a sample as spurious only when it is not memorized. Held-out real items are almost never
memorized, a model's samples often are, so the null is read in two forms (both reported everywhere):

- unconditional: P(spurious) of the model against P(spurious) of the null (``spurious``);
- conditional: the spurious share among non-memorized samples, P(spurious | not memorized), of each
  (``spurious_nonmem``), which does not fall because memorization rises.

- :func:`null_sets`: S = S_K, S_eval and S' drawn from the dataset outside S_K (a sweep point's null);
  :func:`held_out_sets`: the same from a held-out set a user brings.
- :func:`against_null`: the one null: those sets labelled, the model re-labelled at the null's |S'|
  where the held-out data cannot fill it, and the excess of each tested class (:data:`TESTED`).
- :func:`excess`: model minus null, with a bootstrap interval (both sides resampled) and an exact test.
"""
from __future__ import annotations

import numpy as np

from ..errors import check
from ..io import layout
from ..io.data import subset_indices
from ..io.files import read_json, record_digests, write_json
from .rule import DELTA_M, DELTA_S, classify
from .stats import ALPHA, LABELS, exceeds

# the rule applied again and again to sets mem2gen made or read: no duplicate scan, pixels known to be in [-1, 1]
_ONCE = {"check_duplicates": False, "pixel_range": "-1,1"}
# the classes whose excess over the null is tested: eq 4, eq 5 unconditionally, eq 5 among non-memorized samples
TESTED = ("memorized", "spurious", "spurious_nonmem")


def counts_of(counts, name: str) -> tuple[int, int]:
    """(k, n) of one tested class from label counts (a dict by label, or three numbers in :data:`LABELS`
    order): the class's count and its denominator, which is every sample for ``memorized`` and
    ``spurious`` and the non-memorized ones (spurious + generalized) for ``spurious_nonmem``."""
    c = dict(zip(LABELS, [int(counts[n]) for n in LABELS])) if isinstance(counts, dict) else \
        dict(zip(LABELS, [int(v) for v in counts]))
    if name == "spurious_nonmem":
        return c["spurious"], c["spurious"] + c["generalized"]
    check(name in LABELS, f"unknown class {name!r}")
    return c[name], sum(c.values())


def share(counts, name: str) -> float | None:
    """A tested class's fraction (:func:`counts_of`); None where its denominator is 0 (every sample
    memorized leaves no non-memorized one)."""
    k, n = counts_of(counts, name)
    return k / n if n else None


def null_sets(data, k: int, *, n_eval: int, n_synthetic: int, split_seed: int = 3407, split: str = "numpy",
              seed: int = 0):
    """(S_eval, S_K, S') of the null: S = the first K of the ``split_seed`` permutation (the sweep's S_K),
    S_eval and S' = disjoint random draws from the other N − K items (S' gets what is left when fewer
    than n_eval + n_synthetic remain). S' grows by prefix with ``n_synthetic``."""
    n = len(data)
    check(2 <= k < n, f"K={k}: the null needs 2 <= K < N = {n}")
    order = subset_indices(n, n, seed=split_seed, split=split)
    rest = order[k:]
    check(len(rest) >= n_eval + 2, f"K={k}: only {len(rest)} items outside S_K; need n_eval + 2")
    pick = np.random.default_rng([seed, k]).permutation(rest)
    ev_idx = np.sort(pick[:n_eval])
    syn_idx = pick[n_eval:n_eval + n_synthetic]
    train = np.asarray(data[order[:k]])
    return np.asarray(data[ev_idx]), train, np.asarray(data[syn_idx])  # S' in drawn order: prefixes are random


def held_out_sets(held_out, *, n_eval: int, n_synthetic: int | None, seed: int = 0):
    """(S_eval, S') of the null from a user's held-out real items: a seeded shuffle of them, the first part
    standing in for S_eval (at most half of them when an S' is wanted) and the next ``n_synthetic`` for
    S' (fewer where they run out); ``n_synthetic=None``: no S' (S_eval leave-one-out, as the model's)."""
    h = np.asarray(held_out)
    check(len(h) >= 4, f"the held-out set has {len(h)} items; the null needs at least 4")
    h = h[np.random.default_rng(seed).permutation(len(h))]
    if n_synthetic is None:
        return h[:min(n_eval, len(h))], None
    n_ev = min(n_eval, len(h) // 2)
    return h[:n_ev], h[n_ev:n_ev + n_synthetic]


def label_null(null_eval, train, null_synthetic, *, iterations: int = 10_000, seed: int = 0, **rule) -> dict:
    """The rule on real items in place of samples: their counts, fractions and bootstrap (``rule``: the
    settings of :func:`mem2gen.core.rule.classify`)."""
    c = classify(null_eval, train, null_synthetic, **{"check_duplicates": False, **rule})
    return {"n_eval": int(len(null_eval)),
            "n_synthetic": int(len(null_eval) if null_synthetic is None else len(null_synthetic)),
            "counts": dict(zip(LABELS, c.counts.tolist())), "fractions": c.fractions,
            "bootstrap": c.bootstrap(iterations=iterations, seed=seed)}


def null_rates(data, k: int, *, n_eval: int, n_synthetic: int, split_seed: int = 3407, split: str = "numpy",
               seed: int = 0, distance: str = "l2", delta_m: float = DELTA_M, delta_s: float = DELTA_S,
               iterations: int = 10_000, device=None) -> dict:
    """Fractions the rule gives to real held-out items in place of a model's samples (:func:`null_sets`).

    Parameters
    ----------
    data : array
        The dataset (all N items).
    k : int
        The training-set size: S = the first K of the split.
    n_eval, n_synthetic : int
        The null's |S_eval| and |S'|.
    split_seed, split : int and str
        The permutation that made S_K.
    seed : int
        The seed of the held-out draws and the bootstrap.
    distance, delta_m, delta_s
        The rule.
    iterations, device
        Bootstrap draws, and where the search runs.

    Returns
    -------
    dict
        ``K``, ``n_eval``, ``n_synthetic``, ``counts``, ``fractions`` and ``bootstrap`` of the null.
    """
    ev, train, syn = null_sets(data, k, n_eval=n_eval, n_synthetic=n_synthetic, split_seed=split_seed, split=split,
                               seed=seed)
    return {"K": int(k), **label_null(ev, train, syn, iterations=iterations, seed=seed, distance=distance,
                                      delta_m=delta_m, delta_s=delta_s, device=device, **_ONCE)}


def against_null(eval_set, train, synthetic, null_eval, null_synthetic, *, model_counts, iterations: int = 10_000,
                 seed: int = 0, **rule) -> dict:
    """The null of one set of samples, the one function behind every null in mem2gen (a sweep point's, a
    brought model's, ``classify --held-out``'s).

    Parameters
    ----------
    eval_set, train, synthetic
        The model's S_eval, the training set S and its S' (None: S_eval leave-one-out).
    null_eval, null_synthetic
        Real items outside S standing in for S_eval and S' (:func:`null_sets`, :func:`held_out_sets`).
    model_counts : sequence of int
        The model's label counts at its full |S'|.
    iterations, seed
        Bootstrap draws and their seed.
    **rule
        The settings of :func:`mem2gen.core.rule.classify` (the rule, device, pixel range, space).

    Returns
    -------
    dict
        The null's ``n_eval``, ``n_synthetic``, ``counts``, ``fractions`` and ``bootstrap``; the model's
        counts at the null's |S'| (``model_counts``: where the held-out data cannot fill the model's |S'|
        the model is labelled again with as many of its own S', its first samples, so both sides see one
        |S'|); ``excess`` per tested class (:data:`TESTED`, both forms of the spurious null).
    """
    out = label_null(null_eval, train, null_synthetic, iterations=iterations, seed=seed, **rule)
    model = dict(zip(LABELS, np.asarray(model_counts).tolist()))
    if null_synthetic is not None and len(null_synthetic) < len(synthetic):
        m = classify(eval_set, train, np.asarray(synthetic[:len(null_synthetic)]), **{"check_duplicates": False,
                                                                                     **rule})
        model = dict(zip(LABELS, m.counts.tolist()))
    out["model_counts"] = model
    out["excess"] = {name: excess(model, out["counts"], name=name, iterations=iterations, seed=seed)
                     for name in TESTED}
    return out


def check_outside(held_out, train, *, factor: float = 0.1, tolerated: float = 0.01) -> dict:
    """Refuse a "held-out" set that holds training items: an exact copy of one, or more than ``tolerated``
    of its items within ``factor`` × the median nearest-neighbour spacing of S (the rule of the duplicate
    check inside S, :func:`mem2gen.core.rule.near_duplicates`), in pixels. A null computed from training
    items reads as a much larger memorized share and hides any excess. Returns the counts it found."""
    from ..io.data import to_float
    from .neighbors import nearest

    h, y = to_float(np.asarray(held_out)), to_float(np.asarray(train))
    check(h.shape[1:] == y.shape[1:], f"the held-out items have shape {tuple(np.asarray(held_out).shape[1:])}, "
                                      f"the training items {tuple(np.asarray(train).shape[1:])}")
    d = nearest(h, y, 1, device="cpu").distances[:, 0]
    sub = y[np.random.default_rng(0).permutation(len(y))[:2000]] if len(y) > 1 else y
    spacing = float(np.median(nearest(sub, y, 2, device="cpu").distances[:, 1])) if len(y) > 1 else 0.0
    exact, near = int((d == 0).sum()), int((d <= factor * spacing).sum())
    check(exact == 0 and near <= tolerated * len(d),
          f"{near} of {len(d)} held-out items ({exact} exact) are copies of training items (within {factor} × "
          "the median spacing of S): the null needs real items from outside the training set")
    return {"exact": exact, "near": near, "checked": len(d)}


def held_out_null(eval_set, train, synthetic, held_out, *, model_counts, iterations: int = 10_000, seed: int = 0,
                  **rule) -> dict:
    """The rule's null for anyone's samples: real items ``held_out`` (outside the training set ``train``)
    labelled in place of the model's samples at its |S_eval| and |S'| where they hold enough
    (:func:`held_out_sets`, :func:`against_null`); one model: the test is over its samples.

    Parameters
    ----------
    eval_set, train, synthetic
        The model's S_eval, S and S' (None: S_eval leave-one-out).
    held_out : array
        Real items outside S.
    model_counts : sequence of int
        The model's label counts at its full |S'|.
    iterations, seed
        Bootstrap draws and the seed of the shuffle and the bootstrap.
    **rule
        The settings of :func:`mem2gen.core.rule.classify`.

    Returns
    -------
    dict
        As :func:`against_null`.
    """
    check_outside(held_out, train)
    null_ev, null_syn = held_out_sets(held_out, n_eval=len(eval_set), seed=seed,
                                      n_synthetic=None if synthetic is None else len(synthetic))
    return against_null(eval_set, train, synthetic, null_ev, null_syn, model_counts=model_counts,
                        iterations=iterations, seed=seed, **rule)


def excess(model_counts, null_counts, *, name: str = "spurious", iterations: int = 10_000, seed: int = 0) -> dict:
    """Model fraction − null fraction for one tested class (:data:`TESTED`), with a 95% bootstrap interval
    (each side's labels resampled on its own) to show its size, and the one-sided exact p-value that the
    model's rate is higher (:func:`mem2gen.core.stats.exceeds`) to decide it. ``significant``: p < α for
    this comparison alone; over a table of K, :func:`mem2gen.core.stats.holm` decides (Run.results does).

    Parameters
    ----------
    model_counts, null_counts : sequence of int or dict
        Label counts (memorized, spurious, generalized) of the model's samples and of the null.
    name : str
        ``"memorized"``, ``"spurious"`` (unconditional) or ``"spurious_nonmem"`` (the share among
        non-memorized samples: the spurious count out of spurious + generalized, resampled binomially
        given that number).

    Returns
    -------
    dict
        ``excess``, ``ci95``, ``p``, ``significant``; all None (with ``undefined``) where a side has no
        sample in the class's denominator.
    """
    if isinstance(model_counts, dict):
        model_counts = [model_counts[n] for n in LABELS]
    if isinstance(null_counts, dict):
        null_counts = [null_counts[n] for n in LABELS]
    a, b = np.asarray(model_counts, dtype=np.int64), np.asarray(null_counts, dtype=np.int64)
    check(a.sum() > 0 and b.sum() > 0, "both sides need labelled samples")
    rng = np.random.default_rng(seed)
    if name == "spurious_nonmem":
        (ka, na), (kb, nb) = counts_of(a, name), counts_of(b, name)
        if na == 0 or nb == 0:
            side = "the model" if na == 0 else "the null"
            return {"excess": None, "ci95": [None, None], "p": None, "significant": None,
                    "undefined": f"{side} has no non-memorized sample"}
        diff = rng.binomial(na, ka / na, size=iterations) / na - rng.binomial(nb, kb / nb, size=iterations) / nb
        lo, hi = np.percentile(diff, [2.5, 97.5])
        p = exceeds(ka, na, kb, nb)
        return {"excess": float(ka / na - kb / nb), "ci95": [float(lo), float(hi)], "p": p,
                "significant": bool(p < ALPHA)}
    j = LABELS.index(name)
    da = rng.multinomial(a.sum(), a / a.sum(), size=iterations)[:, j] / a.sum()
    db = rng.multinomial(b.sum(), b / b.sum(), size=iterations)[:, j] / b.sum()
    diff = da - db
    lo, hi = np.percentile(diff, [2.5, 97.5])
    value = a[j] / a.sum() - b[j] / b.sum()
    p = exceeds(int(a[j]), int(a.sum()), int(b[j]), int(b.sum()))
    return {"excess": float(value), "ci95": [float(lo), float(hi)], "p": p, "significant": bool(p < ALPHA)}


def point_null(point, *, iterations: int | None = None, device=None) -> dict:
    """The null of one sweep point (a :class:`mem2gen.runs.run.Point`), at its K, |S_eval| and |S'| (held-out
    items drawn from the dataset outside S_K, :func:`null_sets`; :func:`against_null`), kept in the point's
    ``null.json`` (computed once)."""
    f = point.path / layout.NULL
    if f.exists():
        return read_json(f)
    cfg = point.config
    it = iterations or cfg.bootstrap_iterations
    n_left = len(point.run.dataset) - point.k
    if n_left < 4:  # K = N: no real data is left to stand in for samples
        res = {"K": point.k, "undefined": f"only {n_left} items outside S_K", "fractions": None}
    else:
        n_eval = min(cfg.n_eval, n_left - 2)
        null_ev, train, null_syn = null_sets(point.run.dataset, point.k, n_eval=n_eval,
                                             n_synthetic=min(point.n_synthetic, n_left - n_eval),
                                             split_seed=point.split_seed, split=cfg.split, seed=point.seed("bootstrap"))
        model = [point.summary["counts"][n] for n in LABELS]
        res = {"K": point.k, **against_null(np.asarray(point.eval), point.train_set, point.synthetic, null_ev, null_syn,
                                            model_counts=model, iterations=it, seed=point.seed("bootstrap"),
                                            distance=cfg.distance, delta_m=cfg.delta_m, delta_s=cfg.delta_s,
                                            device=device, **_ONCE)}
    write_json(f, res)
    record_digests(point.path, [layout.NULL])
    return res
