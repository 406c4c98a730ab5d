"""Figures that several commands share: neighbour grids (paper Figs 1, 3-5), the phase diagram (Fig. 2),
sample rows, and the helpers every figure uses (:func:`pyplot`, :func:`save`, :func:`k_axis`). A figure
drawn by one analysis lives beside it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.data import to_uint8
from ..io.files import atomic_path
from .stats import LABELS


def as_picture(x: np.ndarray) -> np.ndarray | None:
    """One sample as an (H, W) or (H, W, 3) uint8 picture, or None if it is not an image."""
    x = to_uint8(np.asarray(x))
    if x.ndim == 1:
        side = int(round(np.sqrt(x.size)))
        return x.reshape(side, side) if side * side == x.size else None
    return x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)


def pick_examples(result, per_class: int = 4) -> dict:
    """The clearest samples of each class: memorized by smallest d1, spurious by smallest d'1,
    generalized by largest d'1 (farthest from everything the model made)."""
    picks = {}
    for j, name in enumerate(LABELS):
        idx = np.flatnonzero(result.labels == j)
        key = -result.d_syn[idx, 0] if name == "generalized" else (
            result.d_train[idx, 0] if name == "memorized" else result.d_syn[idx, 0])
        picks[name] = idx[np.argsort(key, kind="stable")[:per_class]]
    return picks


def neighbor_grid(result, eval_set, train, synthetic, path, *, per_class: int = 4, top: int = 5) -> bool:
    """Each chosen sample with its top neighbours from S (upper row) and S' (lower row); PNG at ``path``.

    Returns False (and draws nothing) when the samples are not images.
    """
    plt = pyplot()

    if as_picture(eval_set[0]) is None:
        return False
    picks = pick_examples(result, per_class)
    rows = [(name, i) for name in LABELS for i in picks[name]]
    if not rows:
        return False
    top = min(top, result.i_train.shape[1], result.i_syn.shape[1])
    # one canvas of tiles and one Axes (an Axes per tile made this figure the slowest part of a small point)
    first = as_picture(eval_set[0])
    h, w = first.shape[:2]
    gap, head = max(1, w // 8), max(4, h // 2)  # between tiles; room above each tile for its caption
    n_rows, n_cols = 2 * len(rows), top + 1
    canvas = np.full((n_rows * (h + head), n_cols * (w + gap), 3), 255, np.uint8)
    fig, ax = plt.subplots(figsize=(1.1 * n_cols, 1.1 * n_rows))
    for r, (name, i) in enumerate(rows):
        for line, (ref, nn, dist, tag) in enumerate([(train, result.i_train, result.d_train, "S"),
                                                      (synthetic, result.i_syn, result.d_syn, "S'")]):
            y0 = (2 * r + line) * (h + head) + head
            pics = [eval_set[i] if line == 0 else None] + [ref[j] for j in nn[i, :top]]
            for c, pic in enumerate(pics):
                if pic is None:
                    continue
                img = as_picture(pic)
                x0 = c * (w + gap)
                canvas[y0:y0 + h, x0:x0 + w] = img[..., None] if img.ndim == 2 else img
                label = f"{name}\n#{i}" if c == 0 else f"{tag} {dist[i, c - 1]:.3g}"
                ax.text(x0 + w / 2, y0 - 0.5, label, ha="center", va="bottom", fontsize=7 if c == 0 else 6)
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    fig.tight_layout(pad=0.3)
    save(fig, path, dpi=110)
    return True


COLORS = {"memorized": "#d62728", "spurious": "#2ca02c", "generalized": "#1f77b4"}


def phase_diagram(rows, caps, path, *, title: str = "", replicates=None) -> None:
    """:func:`phase_figure` written to ``path`` (PNG) and as PDF beside it."""
    plt = pyplot()
    fig = phase_figure(rows, caps, title=title, replicates=replicates)
    path = Path(path)
    for p in (path, path.with_suffix(".pdf")):
        with atomic_path(p) as tmp:
            fig.savefig(tmp, dpi=130, format=p.suffix[1:])
    plt.close(fig)


def phase_figure(rows, caps, *, title: str = "", replicates=None):
    """Fractions against K (log scale) with 95% bands and MC, SC, GC marked (paper Fig. 2); with
    ``replicates`` (one row per point) each model as a thin line under the mean and its model-level band.
    The lower panel compares the spurious fraction with the null at equal |S_eval| and |S'|. Legends sit
    right of the panels and warnings below them, so neither covers a curve or the other."""
    plt = pyplot()
    k = np.array([r["K"] for r in rows])
    # the lower panel compares with the null at its |S'| (rows whose files cannot say it are left out)
    nrows = [r for r in rows if r.get("null_spurious") is not None and r.get("frac_spurious_at_null") is not None]
    if nrows:  # a second panel: the spurious fraction zoomed in, against the rule's null on held-out data
        fig, (ax, zoom) = plt.subplots(2, 1, figsize=(9.0, 5.8), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    else:
        fig, ax = plt.subplots(figsize=(9.0, 4.2))
    for name in LABELS:
        m = np.array([r[f"frac_{name}"] for r in rows])
        lo = np.array([r[f"lo95_{name}"] for r in rows])
        hi = np.array([r[f"hi95_{name}"] for r in rows])
        ax.plot(k, m, "o-", color=COLORS[name], label=name, ms=4)
        ax.fill_between(k, lo, hi, color=COLORS[name], alpha=0.2, lw=0)
    for rep in sorted({r["replicate"] for r in replicates or []}):
        mine = sorted((r for r in replicates if r["replicate"] == rep), key=lambda r: r["K"])
        for name in LABELS:
            ax.plot([r["K"] for r in mine], [r[f"frac_{name}"] for r in mine], "-", color=COLORS[name], lw=0.6,
                    alpha=0.45, label="each model" if rep == 0 and name == "memorized" else None)
    if nrows:
        kn = [r["K"] for r in nrows]
        models = any(r.get("n_replicates", 1) > 1 for r in rows)
        zoom.plot(kn, [r["frac_spurious_at_null"] for r in nrows], "o-", color=COLORS["spurious"], ms=4,
                  label="spurious (mean over models)" if models else "spurious")
        if models:
            zoom.fill_between(kn, [r["excess_lo95_spurious"] + r["null_spurious"] for r in nrows],
                              [r["excess_hi95_spurious"] + r["null_spurious"] for r in nrows],
                              color=COLORS["spurious"], alpha=0.2, lw=0)
        zoom.fill_between(kn, [r["null_lo95_spurious"] or r["null_spurious"] for r in nrows],
                          [r["null_hi95_spurious"] or r["null_spurious"] for r in nrows],
                          facecolor="none", edgecolor="0.4", hatch="///", lw=0)
        zoom.plot(kn, [r["null_spurious"] for r in nrows], ":", color="0.3", lw=1, label="null: held-out real data")
        cond = [r for r in nrows if r.get("frac_spurious_nonmem_at_null") is not None
                and r.get("null_spurious_nonmem") is not None]
        if cond:  # the conditional form: the spurious share among non-memorized samples, and its null
            zoom.plot([r["K"] for r in cond], [r["frac_spurious_nonmem_at_null"] for r in cond], "s--",
                      color=COLORS["spurious"], ms=3, lw=0.9, mfc="none", label="spurious | not memorized")
            zoom.plot([r["K"] for r in cond], [r["null_spurious_nonmem"] for r in cond], "-.", color="0.5", lw=0.9,
                      label="its null")
        sig = [r["K"] for r in nrows if r.get("significant_spurious")]
        if sig:
            top = max(r["frac_spurious_at_null"] for r in nrows) or 0.01
            top = max([top] + [r["frac_spurious_nonmem_at_null"] for r in cond])
            zoom.plot(sig, [top * 1.15] * len(sig), "*", color="k", ms=6,
                      label="above the null: t-test over models, Holm, 5%" if models else
                      "above the null within this one model (exact test, Holm, 5%)")
        zoom.set_title("spurious and its null at equal |S_eval| and |S'|" + ("" if models else
                       "; one model per K: between-model variance not measured"), fontsize=7)
        zoom.set_ylabel("spurious (both forms)")
        zoom.set_xlabel("training-set size K")
        zoom.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        zoom.grid(alpha=0.3)
    bad = [r["K"] for r in rows if r.get("generalized_off_manifold") is not None and r["frac_generalized"] >= 0.1
           and r["generalized_off_manifold"] > 0.5]
    warnings = []
    if bad:  # eq 6 calls noise "generalized": say so on the figure
        warnings.append(f"WARNING: at K = {', '.join(map(str, bad))} most generalized samples are off-manifold "
                        "(unlike any real data), not good samples")
    for key, style in (("MC", ":"), ("SC", "--"), ("GC", "-.")):
        if caps.get(key) is not None:
            ax.axvline(caps[key], color="k", ls=style, lw=1)
            ax.text(caps[key], 1.02, key, ha="center", va="bottom", fontsize=8, transform=ax.get_xaxis_transform())
    if caps.get("warnings"):  # under-training: said where the capacities are read
        warnings.append("WARNING: signs of under-training (see the report); capacities may move")
    k_axis(ax, k)
    if not nrows:
        ax.set_xlabel("training-set size K")
    ax.set_ylabel("fraction of samples")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9, pad=14)
    below = 0.035 * len(warnings)  # a strip under the panels for the warnings
    for i, w in enumerate(warnings):
        fig.text(0.01, 0.008 + 0.035 * (len(warnings) - 1 - i), w, color="darkred", fontsize=8, ha="left",
                 va="bottom")
    fig.tight_layout(rect=(0, below, 1, 1))
    return fig


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported on first use: it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path, *, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` atomically, in the format its suffix names, and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix[1:])
    pyplot().close(fig)


def k_axis(ax, ks) -> None:
    """A log axis of training-set sizes labelled in plain numbers: at the sizes themselves when there
    are few, else at powers of ten; never the crowded minor labels matplotlib adds to a short span."""
    from matplotlib.ticker import (
        FixedLocator,
        NullFormatter,
        NullLocator,
        ScalarFormatter,
    )

    ax.set_xscale("log")
    ks = sorted({int(k) for k in ks})
    if 1 < len(ks) <= 10:
        ax.xaxis.set_major_locator(FixedLocator(ks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.tick_params(axis="x", labelsize=8 if len(ks) <= 6 else 7)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def log_edges(values) -> np.ndarray:
    """Cell edges for values on a log axis: geometric midpoints, extended half a step at each end."""
    v = np.log(np.asarray(sorted(values), float))
    mid = (v[1:] + v[:-1]) / 2 if len(v) > 1 else np.array([])
    lo = v[0] - (mid[0] - v[0] if len(mid) else 0.5)
    hi = v[-1] + (v[-1] - mid[-1] if len(mid) else 0.5)
    return np.exp(np.concatenate([[lo], mid, [hi]]))


def samples_figure(sets: list, path, *, per_row: int = 12) -> bool:
    """A row of the first ``per_row`` samples of S_eval per K (``sets``: (K, samples) pairs), PNG at
    ``path``; False (nothing drawn) when the samples are not images."""
    plt = pyplot()

    if not sets or as_picture(np.asarray(sets[0][1][0])) is None:
        return False
    fig, axes = plt.subplots(len(sets), per_row, figsize=(per_row * 0.8, len(sets) * 0.85), squeeze=False)
    for row, (k, x) in zip(axes, sets):
        for j, ax in enumerate(row):
            ax.axis("off")
            if j < len(x):
                pic = as_picture(np.asarray(x[j]))
                ax.imshow(pic, cmap="gray" if pic.ndim == 2 else None, vmin=0, vmax=255)
        row[0].text(-0.15, 0.5, f"K={k}", transform=row[0].transAxes, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.99, top=0.98, bottom=0.02, wspace=0.05, hspace=0.1)
    save(fig, path, dpi=100)
    return True
