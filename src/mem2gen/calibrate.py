"""Calibrating the rule (paper eq 5 and App. B.2): what eqs 4-6 say about real data that no model made, how the
spurious fraction depends on |S'|, and how robust it is to δs.

- :func:`null_rates`: the rule applied to held-out real data in place of a model's samples — S = S_K,
  S_eval and S' drawn from the dataset outside S_K. A model's spurious fraction means something only
  where it exceeds this null.
- :func:`excess`: model minus null, with a bootstrap interval (both sides resampled).
- :func:`synthetic_curve`: eq 5's spurious fraction as S' grows (its first m samples).
- :func:`delta_s_grid`: the spurious fraction for δs on a grid, from one classification's distances
  (App. B.2's procedure, made numeric).
"""
from __future__ import annotations

import numpy as np

from . import layout
from .classify import classify, label
from .data import subset_indices
from .errors import check
from .files import add_csv_columns, read_json, record_digests, write_json
from .stats import ALPHA, LABELS, exceeds

# the rule applied again and again to sets mem2gen made or read: no duplicate scan, pixels known to be in [-1, 1]
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
    settings of :func:`mem2gen.classify.classify`. Returns the null's counts and fractions, the model's
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
    model's rate is higher (:func:`mem2gen.stats.exceeds`) to decide it. ``significant``: p < α for
    this comparison alone; over a table of K, :func:`mem2gen.stats.holm` decides (Run.results does)."""
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


def synthetic_curve(eval_set, train, synthetic, sizes, *, distance: str = "l2", delta_m: float = 1 / 3,
                    delta_s: float = 0.28, device=None) -> list[dict]:
    """Eq 5's spurious fraction (and the other two) with S' = its first m samples, for each m of ``sizes``."""
    out = []
    for m in sizes:
        check(2 <= m <= len(synthetic), f"|S'| = {m} is not in [2, {len(synthetic)}]")
        c = classify(eval_set, train, np.asarray(synthetic[:m]), distance=distance, delta_m=delta_m,
                     delta_s=delta_s, device=device, **_ONCE)
        out.append({"m": int(m), "counts": dict(zip(LABELS, c.counts.tolist())), **c.fractions})
    return out


def delta_s_grid(result, grid) -> list[dict]:
    """The three fractions for each δs of ``grid``, from one classification's distances (δm kept).
    Non-decreasing in δs for the spurious fraction by construction of eq 5."""
    out = []
    for ds in grid:
        labels, _, _ = label(result.d_train[:, 0], result.d_train[:, 1], result.d_syn[:, 0],
                             delta_m=result.delta_m, delta_s=float(ds), rule=result.rule)
        c = np.bincount(labels, minlength=3)
        out.append({"delta_s": float(ds), **{n: float(c[i] / c.sum()) for i, n in enumerate(LABELS)}})
    return out


def point_null(point, *, iterations: int | None = None, device=None) -> dict:
    """The null of one sweep point (a :class:`mem2gen.run.Point`), at its K, |S_eval| and |S'|, kept in the
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


DELTA_S_GRID = tuple(np.round(np.linspace(0.05, 0.45, 17), 3))


def point_calibration(point, *, grid=DELTA_S_GRID, max_factor: int = 64) -> dict:
    """One point's |S'| curve and δs grid, for the model's samples and for the null: eq 5's fractions
    with S' = the first m samples for m = K, 2K, 4K, … up to the run's |S'| (and, for the null, up to
    ``max_factor``·K or what the dataset holds), and for each δs of ``grid`` at one |S'| for both: the
    run's, or the null's where the dataset cannot fill it (``grid_n_synthetic``)."""
    cfg, k = point.config, point.k
    kw = dict(distance=cfg.distance, delta_m=cfg.delta_m, delta_s=cfg.delta_s)
    ev, train, syn = np.asarray(point.eval), point.train_set, point.synthetic
    ms = [k * 2 ** i for i in range(30) if k * 2 ** i <= len(syn)]
    ms = sorted(set(ms + [len(syn)]))
    out = {"K": k, "n_synthetic": len(syn), "model_curve": synthetic_curve(ev, train, syn, ms, **kw),
           "model_grid": delta_s_grid(classify(ev, train, syn, **kw, **_ONCE), grid), "null_curve": [], "null_grid": None}
    n_left = len(point.run.dataset) - k
    if n_left < 4:  # K = N: no held-out data for a null
        return out
    n_eval = min(cfg.n_eval, n_left - 2)
    null_max = min(max_factor * k, n_left - n_eval)
    nev, ntr, nsyn = null_sets(point.run.dataset, k, n_eval=n_eval, n_synthetic=null_max, split_seed=point.split_seed,
                               split=cfg.split,
                               seed=point.seed("bootstrap"))
    null_ms = sorted(set([m for m in (k * 2 ** i for i in range(30)) if 2 <= m <= len(nsyn)] + [len(nsyn)]))
    m_eq = min(len(nsyn), len(syn))  # the δs grids compare model and null at one |S'|
    return {**out, "grid_n_synthetic": m_eq, "null_curve": synthetic_curve(nev, ntr, nsyn, null_ms, **kw),
            "model_grid": delta_s_grid(classify(ev, train, np.asarray(syn[:m_eq]), **kw, **_ONCE), grid),
            "null_grid": delta_s_grid(classify(nev, ntr, nsyn[:m_eq], **kw, **_ONCE), grid)}


# --- is a sample a plausible item at all? ----------------------------------------------------------------

def off_manifold(samples, train, held_out, *, quantile: float = 0.99, distance: str = "l2", device=None,
                 n_real: int | None = None, seed: int = 0, sample_distance=None, space=None,
                 real_distance=None) -> dict:
    """Which samples lie off the data: farther from every real item (S ∪ held-out) than ``quantile`` of
    real held-out items are from their nearest other real item. Dataset-agnostic and offline; by
    construction about 1 − ``quantile`` of real held-out items are off-manifold themselves. Eq 6 calls
    noise "generalized": this is the check that generalized samples are data-like.

    Returns the per-sample flags and distances, the threshold and the real items' distances. With
    ``held_out=None`` (no data outside S) the training set plays both roles, leave-one-out.
    ``n_real`` caps the real items whose distances set the threshold (a seeded draw; each is still
    compared with all real data): a percentile from 5,000 items is as good as from 60,000, and a
    60,000 × 60,000 search is not needed for it. ``sample_distance``: the samples' distances (the rule's
    units) to their nearest item of S, when already known (eq 4's d(x̂, x1); only with ``held_out=None``);
    ``real_distance``: the real items' distances to their nearest other item of S, likewise (only with
    ``held_out=None``; :func:`mem2gen.classify.self_distances`)."""
    from .embed import make_space
    from .neighbors import nearest

    check(0 < quantile < 1, "quantile must lie in (0, 1)")
    space = space or make_space(distance, device=device)
    train = np.asarray(train)
    loo = held_out is None or len(held_out) < 2
    real = train if loo else np.asarray(held_out)
    ref = train if loo else np.concatenate([real, train])  # the real items come first in ref: self_ids below
    kw = dict(space=space, device=device)
    if real_distance is not None:
        check(loo, "real_distance is S against itself: only without held-out data")
        d_real = np.asarray(real_distance, dtype=np.float64)
    else:
        ids = np.arange(len(real))
        if n_real is not None and n_real < len(real):
            ids = np.sort(np.random.default_rng(seed).choice(len(real), n_real, replace=False))
        d_real = nearest(real[ids], ref, 1, self_ids=ids, **kw).distances[:, 0]
        d_real = space.scale * d_real ** space.power
    tau = float(np.quantile(d_real, quantile))
    if sample_distance is not None:
        check(loo, "sample_distance is the distance to S: only without held-out data")
        d = np.asarray(sample_distance, dtype=np.float64)
    else:
        d = space.scale * nearest(samples, ref, 1, **kw).distances[:, 0] ** space.power
    return {"off": d > tau, "distance": d, "threshold": tau, "real_distance": d_real, "quantile": quantile,
            "reference": "S, leave-one-out" if loo else "S and held-out data"}


def point_manifold(point, *, n_real: int = 2000, quantile: float = 0.99, device=None) -> dict:
    """The off-manifold fraction of one sweep point's S_eval (``manifold.json``, computed once), overall
    and per label, with 95% bootstrap intervals. The held-out real items are up to ``n_real`` drawn
    from outside S_K (S_K itself, leave-one-out, where K = N)."""
    f = point.path / layout.MANIFOLD
    if f.exists():
        return read_json(f)
    k, cfg = point.k, point.config
    held = point.held_out(n_real, [point.seed("bootstrap"), 1])
    held = held if len(held) >= 2 else None
    r = off_manifold(np.asarray(point.eval), point.train_set, held, quantile=quantile, distance=cfg.distance,
                     device=device)
    labels = point.labels.labels

    add_csv_columns(point.path / layout.LABELS_CSV, {"off_manifold": r["off"].astype(int).tolist(),
                                                "d_real": [repr(float(v)) for v in r["distance"]]})
    rng = np.random.default_rng(point.seed("bootstrap"))

    def frac(mask):
        n, c = int(mask.size), int(mask.sum())
        if n == 0:
            return {"n": 0, "off": 0, "fraction": None, "ci95": [None, None]}
        draws = rng.binomial(n, c / n, size=cfg.bootstrap_iterations) / n
        return {"n": n, "off": c, "fraction": c / n, "ci95": np.percentile(draws, [2.5, 97.5]).tolist()}

    out = {"K": k, "threshold": r["threshold"], "quantile": quantile, "reference": r["reference"],
           "n_real": 0 if held is None else int(len(held)), "all": frac(r["off"]),
           **{name: frac(r["off"][labels == j]) for j, name in enumerate(LABELS)},
           "median_distance": float(np.median(r["distance"])),
           "median_real_distance": float(np.median(r["real_distance"]))}
    write_json(f, out)
    record_digests(point.path, [layout.MANIFOLD, layout.LABELS_CSV])  # labels.csv took two columns
    return out
