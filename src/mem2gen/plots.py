"""Figures: neighbour grids (paper Figs 1, 3-5)."""
from __future__ import annotations

import numpy as np

from .data import to_uint8
from .stats import LABELS


def _as_picture(x: np.ndarray) -> np.ndarray | None:
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if _as_picture(eval_set[0]) is None:
        return False
    picks = pick_examples(result, per_class)
    rows = [(name, i) for name in LABELS for i in picks[name]]
    if not rows:
        return False
    top = min(top, result.i_train.shape[1], result.i_syn.shape[1])
    fig, axes = plt.subplots(2 * len(rows), top + 1, figsize=(1.1 * (top + 1), 1.1 * 2 * len(rows)), squeeze=False)
    for r, (name, i) in enumerate(rows):
        for line, (ref, nn, dist, tag) in enumerate([(train, result.i_train, result.d_train, "S"),
                                                      (synthetic, result.i_syn, result.d_syn, "S'")]):
            ax_row = axes[2 * r + line]
            pics = [eval_set[i] if line == 0 else None] + [ref[j] for j in nn[i, :top]]
            for c, pic in enumerate(pics):
                ax = ax_row[c]
                ax.set_xticks([]), ax.set_yticks([])
                if pic is None:
                    ax.axis("off")
                    continue
                img = _as_picture(pic)
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
                if c == 0:
                    ax.set_title(f"{name}\n#{i}", fontsize=7)
                else:
                    ax.set_title(f"{tag} {dist[i, c - 1]:.3g}", fontsize=6)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
