"""One evaluation for every sample set: the rule's labels (eqs 4-6) with their bootstrap, the null in both
forms where real held-out items are given, and the checks beside them (near-duplicates in S, off-manifold
samples, a quality score), written by one writer (labels.csv, summary.json, neighbors.png).

A sweep point (:func:`mem2gen.runs.sweep.run_point`) and ``mem2gen classify``
(:func:`mem2gen.commands.classify.classify_files`) both call :func:`evaluate` and :meth:`Evaluation.write`;
a sweep point's null comes from the dataset instead (:func:`mem2gen.core.null.point_null`), through the same
:func:`mem2gen.core.null.against_null`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import check
from ..io import layout
from ..io.data import as_samples
from ..io.files import add_csv_columns, write_json
from .checks import off_manifold as find_off_manifold
from .null import held_out_null
from .plots import neighbor_grid
from .rule import Classification, Rule, classify
from .stats import LABELS


@dataclass
class Evaluation:
    """What :func:`evaluate` found for one sample set.

    Attributes
    ----------
    classification : Classification
        Per-sample labels and the distances behind them.
    bootstrap : dict
        Per class: mean, std and 95% interval over label resamples (App. B.1).
    null : dict or None
        :func:`mem2gen.core.null.against_null`'s record (both forms of the null), with held-out items.
    off_manifold : dict or None
        The off-manifold summary (fraction overall and per label, threshold, reference).
    quality : dict or None
        FD and KID against real items (:mod:`mem2gen.core.quality`), when asked for.
    seconds : float
        Wall time of the labelling.
    """

    classification: Classification
    bootstrap: dict
    null: dict | None = None
    off_manifold: dict | None = None
    quality: dict | None = None
    seconds: float = 0.0
    flags: dict | None = field(default=None, repr=False)  # per-sample off-manifold flags and distances

    def checks(self) -> dict | None:
        """The checks that ran (off-manifold, quality, null), by name; None when none did."""
        found = {k: v for k, v in (("off_manifold", self.off_manifold), ("quality", self.quality),
                                   ("null", self.null)) if v is not None}
        return found or None

    def summary(self, extra: dict | None = None) -> dict:
        """summary.json: the classification, its bootstrap, ``extra`` (the caller's record), then the checks."""
        out = {**self.classification.summary(), "bootstrap": self.bootstrap, **(extra or {})}
        for name in ("null", "off_manifold", "quality"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    def write(self, out, eval_set, train, synthetic, *, extra: dict | None = None, grid: bool = True) -> list[str]:
        """labels.csv (with the off-manifold columns where checked), neighbors.png and, last, summary.json into
        ``out``. Each file is written atomically, so an existing summary.json means the rest is complete.
        Returns the names written."""
        out = Path(out)
        self.classification.write_csv(out / layout.LABELS_CSV)
        if self.flags is not None:
            add_csv_columns(out / layout.LABELS_CSV, {"off_manifold": self.flags["off"].astype(int).tolist(),
                                                     "d_real": [repr(float(v)) for v in self.flags["distance"]]})
        files = [layout.LABELS_CSV, layout.SUMMARY]
        if grid and neighbor_grid(self.classification, eval_set, train,
                                  eval_set if synthetic is None else synthetic, out / layout.GRID):
            files.append(layout.GRID)
        write_json(out / layout.SUMMARY, self.summary(extra))
        return files


def rescaled(a, pixel_range: str):
    """A set's pixels as the rule saw them: [0, 1] floats rescaled to [-1, 1] under ``pixel_range="0,1"``."""
    a = as_samples(a, name="set")
    return np.asarray(a, dtype=np.float32) * 2 - 1 if pixel_range == "0,1" and a.dtype.kind == "f" else a


def evaluate(eval_set, train, synthetic=None, *, rule: Rule = Rule(), held_out=None, off_manifold: bool = False,
             quality: bool | None = False, iterations: int = 10_000, seed: int = 0, bootstrap_seed: int | None = None,
             pixel_range: str = "auto", device=None, space=None, progress: bool = False,
             **options) -> Evaluation:
    """Label ``eval_set`` by the rule and run the checks asked for.

    Parameters
    ----------
    eval_set, train, synthetic
        S_eval, S and S' (arrays or memmaps; ``synthetic=None``: S_eval leave-one-out).
    rule : Rule
        Distance and thresholds (eqs 4-6).
    held_out : array, optional
        Real items outside S: the rule's null at the same |S_eval| and |S'| in both forms
        (:func:`mem2gen.core.null.held_out_null`).
    off_manifold : bool
        Images: flag samples farther from S than 99% of S's items are from their nearest other item (the
        duplicate check's S-against-S search is reused, so this costs no search of its own).
    quality : bool or None
        Images: FD and KID against up to 2,000 real items (S and ``held_out``) in features of a network
        trained on them now; it needs :data:`QUALITY_MIN_REAL` real items (fewer: refused). ``None``: scored
        when there are that many, else a note in ``ev.quality`` says why not.
    iterations, seed, bootstrap_seed
        Bootstrap draws; the seed of every draw (``bootstrap_seed``, default ``seed``: the bootstrap's).
    pixel_range, device, space, progress
        As :func:`mem2gen.core.rule.classify`.
    **options
        Further settings of :func:`mem2gen.core.rule.classify` (``k``, ``features_metric``, LPIPS options,
        ``check_duplicates``, ``self_check``).

    Returns
    -------
    Evaluation
    """
    check(iterations >= 1, "bootstrap iterations must be at least 1")
    n_real = len(train) + (0 if held_out is None else len(held_out))
    check(quality is not True or n_real >= QUALITY_MIN_REAL,
          f"the quality score needs at least {QUALITY_MIN_REAL} real items (S and the held-out set together; FD and "
          f"KID in 256 features from fewer are noise); there are {n_real}: give --held-out items or drop --quality")
    boot_seed = seed if bootstrap_seed is None else bootstrap_seed
    if space is None:  # one space (and one LPIPS network) for every search below
        from .embed import make_space

        space = make_space(rule.distance, metric=options.get("features_metric", "l2"),
                           net=options.get("lpips_net", "alex"), backbone=options.get("lpips_backbone"),
                           lin=options.get("lpips_lin"), device=device, resize=options.get("lpips_resize"))
    settings = {**rule.settings(), "device": device, "pixel_range": pixel_range, "space": space, **options}
    if off_manifold:
        settings.setdefault("self_check", 5000)
    t0 = time.perf_counter()
    res = classify(eval_set, train, synthetic, progress=progress, seed=seed, **settings)
    seconds = time.perf_counter() - t0
    ev = Evaluation(res, res.bootstrap(iterations=iterations, seed=boot_seed), seconds=seconds)
    if held_out is not None:
        null_settings = {k: v for k, v in settings.items() if k not in ("check_duplicates", "self_check")}
        ev.null = held_out_null(eval_set, train, synthetic, held_out, model_counts=res.counts, iterations=iterations,
                                seed=boot_seed, **null_settings)
    e, tr = rescaled(eval_set, pixel_range), rescaled(train, pixel_range)
    images = rule.distance != "features" and e.ndim == 4 and min(e.shape[2:]) >= 4 and len(e) >= 2 and len(tr) >= 4
    check(quality is not True or images, "the quality score needs images (at least 4x4, 2 samples, 4 training items)")
    if quality is None:
        quality = images and n_real >= QUALITY_MIN_REAL
        if images and not quality:
            ev.quality = {"skipped": f"not scored: {n_real} real items (S and held-out), fewer than the "
                                     f"{QUALITY_MIN_REAL} a score needs"}
    if off_manifold and images:  # eq 4's search gives the samples' distance to S; the duplicate check's, S's spacing
        n_self = settings["self_check"]
        same = res.train_self if res.train_self is not None and len(res.train_self["ids"]) == min(n_self, len(tr)) \
            else None
        ev.flags = find_off_manifold(e, tr, None, distance=rule.distance, device=device, n_real=n_self, seed=seed,
                                     space=space, sample_distance=res.d_train[:, 0],
                                     real_distance=None if same is None else same["distance"])
        ev.off_manifold = {"fraction": float(ev.flags["off"].mean()), "reference": ev.flags["reference"],
                           "quantile": ev.flags["quantile"], "threshold": ev.flags["threshold"],
                           **{name: float(ev.flags["off"][res.labels == j].mean()) if (res.labels == j).any()
                              else None for j, name in enumerate(LABELS)}}
    if quality:
        from .quality import quality as score  # torch
        from .quality import train_features

        real = tr if held_out is None else np.concatenate([tr, rescaled(held_out, pixel_range)])
        ref = real[np.sort(np.random.default_rng(seed).choice(len(real), 2000, replace=False))] \
            if len(real) > 2000 else real
        where = "S" if held_out is None else "S and held-out"
        ev.quality = {**score(e, ref, train_features(real, seed=seed), seed=seed),
                      "reference": f"{len(ref):,} items of {where}"}
    return ev


QUALITY_MIN_REAL = 500  # real items below which no quality score is given (both halves of ≥ 250 in 256 features)
OFF_DATA_WARN = 0.05  # generalized samples off the data above this share (real items: 1 − quantile = 1%) are named
FD_WARN = 2.0  # samples whose FD exceeds this many times real data's own (same sizes) are named poor


def caveats(checks: dict | None) -> list[str]:
    """What a reader of the fractions must know about the samples' quality (:meth:`Evaluation.checks`):
    generalized samples off the data, a quality score far from real data's own, or no score at all. Eq 6 calls
    anything neither memorized nor spurious "generalized", noise and blur included."""
    checks, out = checks or {}, []
    o, q = checks.get("off_manifold"), checks.get("quality")
    if o and o.get("generalized") is not None and o["generalized"] > OFF_DATA_WARN:
        out.append(f"generalized but off the data: {o['generalized']:.0%} of the generalized samples lie farther "
                   f"from every real item than 99% of real items do (real data: 1%); eq 6 counts them as generalized")
    if q and "fd" in q and q["fd"] > FD_WARN * q["real_fd"]:
        out.append(f"poor samples: FD {q['fd']:.3g} against real data, {q['fd'] / q['real_fd']:.1f}x real data's own "
                   f"{q['real_fd']:.3g} at the same sizes ({q['n_samples']} samples, {q['reference']}); the "
                   f"generalized fraction counts them as generalized")
    if q is None or "skipped" in q:
        why = q["skipped"] if q else "not asked for"
        out.append(f"sample quality {why}: off-manifold alone misses blurry samples, which lie near real data")
    return out
