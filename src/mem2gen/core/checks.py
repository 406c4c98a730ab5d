"""Is a sample a plausible item at all? The off-manifold check beside the rule: eq 6 calls noise
"generalized", so generalized samples are checked against real data.
"""
from __future__ import annotations

import numpy as np

from ..errors import check
from ..io import layout
from ..io.files import add_csv_columns, read_json, record_digests, write_json
from .stats import LABELS


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
    ``held_out=None``; :func:`mem2gen.core.rule.self_distances`)."""
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
