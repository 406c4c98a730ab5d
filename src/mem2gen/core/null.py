"""The rule's null (paper eq 5, App. B.2): eqs 4-6 applied to held-out real data in place of a model's
samples, at the model's |S_eval| and |S'|, and the excess of a fraction over it.

- :func:`null_sets`, :func:`null_rates`: S = S_K, S_eval and S' drawn from the dataset outside S_K.
- :func:`held_out_null`: the same for anyone's samples and a held-out set they bring.
- :func:`excess`: model minus null, with a bootstrap interval (both sides resampled) and an exact test.
"""
from __future__ import annotations

import numpy as np

from ..errors import check
from ..io import layout
from ..io.data import subset_indices
from ..io.files import read_json, record_digests, write_json
from .rule import classify
from .stats import ALPHA, LABELS, exceeds

_ONCE = {"check_duplicates": False, "pixel_range": "-1,1"}


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


def null_rates(data, k: int, *, n_eval: int, n_synthetic: int, split_seed: int = 3407, split: str = "numpy",
               seed: int = 0,
               distance: str = "l2", delta_m: float = 1 / 3, delta_s: float = 0.28, iterations: int = 10_000,
               device=None) -> dict:
    """Fractions the rule gives to real held-out items in place of a model's samples (:func:`null_sets`)."""
    ev, train, syn = null_sets(data, k, n_eval=n_eval, n_synthetic=n_synthetic, split_seed=split_seed, split=split,
                               seed=seed)
    c = classify(ev, train, syn, distance=distance, delta_m=delta_m, delta_s=delta_s, device=device,
                 **_ONCE)
    return {"K": int(k), "n_eval": int(len(ev)), "n_synthetic": int(len(syn)),
            "counts": dict(zip(LABELS, c.counts.tolist())), "fractions": c.fractions,
            "bootstrap": c.bootstrap(iterations=iterations, seed=seed)}


def held_out_null(eval_set, train, synthetic, held_out, *, model_counts, iterations: int = 10_000, seed: int = 0,
                  **rule) -> dict:
    """The rule's null for anyone's samples: real items ``held_out`` (outside the training set ``train``)
    labelled by the same rule in place of the model's samples, at the model's |S_eval| and |S'| where
    ``held_out`` holds enough (a seeded shuffle of it: the first part stands in for S_eval, the next for
    S'; with ``synthetic=None``, S_eval with leave-one-out as the model's). Where it holds too few for
    the full |S'|, the model is labelled again with as many of its own S' (its first samples), so both
    sides see one |S'|. ``model_counts``: the model's label counts at its full |S'|; ``rule``: the
    settings of :func:`mem2gen.core.rule.classify`. Returns the null's counts and fractions, the model's
    counts at the null's |S'|, and per tested class the excess with its interval and exact p-value
    (one model: the test is over its samples)."""
    h = np.asarray(held_out)
    n_eval = len(eval_set)
    check(len(h) >= 4, f"the held-out set has {len(h)} items; the null needs at least 4")
    h = h[np.random.default_rng(seed).permutation(len(h))]
    if synthetic is None:
        null_ev, null_syn = h[:min(n_eval, len(h))], None
    else:
        n_ev = min(n_eval, len(h) // 2)
        null_ev, null_syn = h[:n_ev], h[n_ev:n_ev + len(synthetic)]
    c = classify(null_ev, train, null_syn, check_duplicates=False, **rule)
    model = dict(zip(LABELS, np.asarray(model_counts).tolist()))
    if null_syn is not None and len(null_syn) < len(synthetic):
        m = classify(eval_set, train, np.asarray(synthetic[:len(null_syn)]), check_duplicates=False, **rule)
        model = dict(zip(LABELS, m.counts.tolist()))
    counts = dict(zip(LABELS, c.counts.tolist()))
    return {"n_eval": int(len(null_ev)), "n_synthetic": int(len(null_ev) if null_syn is None else len(null_syn)),
            "counts": counts, "fractions": c.fractions, "model_counts": model,
            "excess": {name: excess([model[n] for n in LABELS], [counts[n] for n in LABELS], name=name,
                                    iterations=iterations, seed=seed) for name in ("memorized", "spurious")}}


def excess(model_counts, null_counts, *, name: str = "spurious", iterations: int = 10_000, seed: int = 0) -> dict:
    """Model fraction − null fraction for one class, with a 95% bootstrap interval (each side's labels
    resampled, multinomially, on its own) to show its size, and the one-sided exact p-value that the
    model's rate is higher (:func:`mem2gen.core.stats.exceeds`) to decide it. ``significant``: p < α for
    this comparison alone; over a table of K, :func:`mem2gen.core.stats.holm` decides (Run.results does)."""
    a, b = np.asarray(model_counts, dtype=np.int64), np.asarray(null_counts, dtype=np.int64)
    check(a.sum() > 0 and b.sum() > 0, "both sides need labelled samples")
    j = LABELS.index(name)
    rng = np.random.default_rng(seed)
    da = rng.multinomial(a.sum(), a / a.sum(), size=iterations)[:, j] / a.sum()
    db = rng.multinomial(b.sum(), b / b.sum(), size=iterations)[:, j] / b.sum()
    diff = da - db
    lo, hi = np.percentile(diff, [2.5, 97.5])
    value = a[j] / a.sum() - b[j] / b.sum()
    p = exceeds(int(a[j]), int(a.sum()), int(b[j]), int(b.sum()))
    return {"excess": float(value), "ci95": [float(lo), float(hi)], "p": p, "significant": bool(p < ALPHA)}


def point_null(point, *, iterations: int | None = None, device=None) -> dict:
    """The null of one sweep point (a :class:`mem2gen.runs.run.Point`), at its K, |S_eval| and |S'|, kept in the
    point's ``null.json`` (computed once), with the point's excess over it. Where the dataset holds too
    few items outside S_K for the point's |S'|, the null's S' is smaller and the model is re-labelled
    with the same number of its own samples (the first ones of its S'), so both sides see one |S'|."""
    f = point.path / layout.NULL
    if f.exists():
        return read_json(f)
    cfg = point.config
    it = iterations or cfg.bootstrap_iterations
    n_left = len(point.run.dataset) - point.k
    if n_left < 4:  # K = N: no real data is left to stand in for samples
        res = {"K": point.k, "undefined": f"only {n_left} items outside S_K", "fractions": None}
        write_json(f, res)
        record_digests(point.path, [layout.NULL])
        return res
    res = null_rates(point.run.dataset, point.k, n_eval=min(cfg.n_eval, n_left - 2),
                     n_synthetic=min(point.n_synthetic, n_left - min(cfg.n_eval, n_left - 2)),
                     split_seed=point.split_seed, split=cfg.split, seed=point.seed("bootstrap"), distance=cfg.distance,
                     delta_m=cfg.delta_m, delta_s=cfg.delta_s, iterations=it, device=device)
    model = point.summary["counts"]
    if res["n_synthetic"] < point.n_synthetic:  # too little held-out data for the full |S'|: compare like with like

        c = classify(np.asarray(point.eval), point.train_set, np.asarray(point.synthetic[:res["n_synthetic"]]),
                     distance=cfg.distance, delta_m=cfg.delta_m, delta_s=cfg.delta_s, device=device, **_ONCE)
        model = dict(zip(LABELS, c.counts.tolist()))
    res["model_counts"] = model  # the model's labels at the null's |S'| (its own S', first n_synthetic)
    res["excess"] = {name: excess([model[n] for n in LABELS], [res["counts"][n] for n in LABELS], name=name,
                                  iterations=it, seed=point.seed("bootstrap"))
                     for name in ("memorized", "spurious")}
    write_json(f, res)
    record_digests(point.path, [layout.NULL])
    return res
