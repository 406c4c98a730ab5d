"""Calibrating the rule (paper eq 5 and App. B.2): how the spurious fraction depends on |S'|, and how
robust it is to δs, for a model and for its null.

- :func:`synthetic_curve`: eq 5's spurious fraction as S' grows (its first m samples).
- :func:`delta_s_grid`: the spurious fraction for δs on a grid, from one classification's distances
  (App. B.2's procedure, made numeric).
"""
from __future__ import annotations

import numpy as np

from ..core.null import _ONCE, null_sets
from ..core.plots import pyplot, save
from ..core.rule import classify, label
from ..core.stats import LABELS
from ..errors import check
from ..io import layout
from .points import over_points


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
           "model_grid": delta_s_grid(classify(ev, train, syn, **kw, **_ONCE), grid), "null_curve": [],
           "null_grid": None}
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


def calibrate(run_dir, *, sizes: tuple | None = None, overwrite: bool = False, echo=print) -> list[dict]:
    """The rule's calibration at every classified point of a sweep (or of ``sizes``): eq 5's fractions as
    S' grows (its prefixes, m = K, 2K, 4K, …) and over a δs grid, for the model's samples and for the
    null (held-out real data); ``calibration.json`` per point, ``calibration.png`` and the report's
    Calibration section (:func:`point_calibration`, through :func:`mem2gen.analyses.points.over_points`)."""
    def figure(run, results):
        calibration_figure(results, run.path / "calibration.png", delta_s=run.config.delta_s)

    return over_points(run_dir, command="mem2gen calibrate", record=layout.CALIBRATION, sizes=sizes, what="calibrate",
                       compute=lambda p: {**point_calibration(p), "point": p.key}, after=figure,
                       overwrite=overwrite, echo=echo)


def calibration_figure(results: list, path, *, delta_s: float | None = None) -> None:
    """Left: eq 5's spurious fraction against |S'|/K for each K, the model's (solid) and the null's
    (dotted). Middle and right: the spurious fraction over K × δs, the model's and its excess over
    the null (App. B.2's choice of δs made visible)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    cmap = plt.get_cmap("viridis")
    for i, r in enumerate(results):
        col = cmap(i / max(1, len(results) - 1))
        k = r["K"]
        axes[0].plot([c["m"] / k for c in r["model_curve"]], [c["spurious"] for c in r["model_curve"]], "o-",
                     color=col, ms=3, label=f"K={k}")
        axes[0].plot([c["m"] / k for c in r["null_curve"]], [c["spurious"] for c in r["null_curve"]], ":",
                     color=col, lw=1)
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("|S'| / K")
    axes[0].set_ylabel("spurious fraction (eq 5); dotted: null")
    axes[0].legend(fontsize=6, ncol=2)
    axes[0].grid(alpha=0.3)
    ks = [r["K"] for r in results]
    grid = [g["delta_s"] for g in results[0]["model_grid"]]
    model = np.array([[g["spurious"] for g in r["model_grid"]] for r in results])
    null = np.array([[g["spurious"] for g in r["null_grid"]] if r["null_grid"] else [np.nan] * len(grid)
                     for r in results])
    for ax, z, title, kw in ((axes[1], model, "model: spurious fraction", dict(cmap="viridis", vmin=0)),
                             (axes[2], model - null, "model − null (blank: no held-out data)",
                              dict(cmap="RdBu_r", vmin=-np.nanmax(np.abs(model - null)) - 1e-9,
                                   vmax=np.nanmax(np.abs(model - null)) + 1e-9))):
        im = ax.imshow(z.T, origin="lower", aspect="auto", **kw,
                       extent=(-0.5, len(ks) - 0.5, grid[0], grid[-1]))
        ax.set_xticks(range(len(ks)), [str(k) for k in ks], fontsize=7)
        ax.set_xlabel("K")
        ax.set_ylabel("δs")
        ax.set_title(title, fontsize=9)
        if delta_s is not None:
            ax.axhline(delta_s, color="w", ls="--", lw=1)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save(fig, path)
