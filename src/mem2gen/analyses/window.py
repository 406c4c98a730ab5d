"""Does the spurious window follow the training-set size K, the training time, or time per item?

A quantity y measured per model at (K, step) — the memorized fraction, or a spurious excess over the null in
either form — *collapses* onto one curve of x = log step − a · log K when the window is a function of
steps / K^a: a = 0 means training time alone sets it, a → ∞ means K alone (the paper's capacity), a ≈ 1
means time per item (τ_mem ∝ K, Bonnaire et al. 2025). :func:`collapse` scans the direction

    x_θ = cos θ · log step − sin θ · log K,     θ ∈ [0°, 90°],  a = tan θ                       (1)

and scores each by how well the other models predict a model at the same x_θ: a Gaussian kernel
smoother over x_θ (standardized to unit sd, bandwidth ``bandwidth``) with leave-one-*model*-out
predictions (the unit of inference is the model: a model never predicts itself),

    score(θ) = mean_i (y_i − ŷ_{−m(i)}(x_θ,i))².                                                 (2)

The best θ and its 95% interval (percentiles of the best θ over bootstrap resamples of the models within
each K) answer the question; the scores at θ = 0 (steps only), 90° (K only) and of a constant (neither)
are reported beside it, as ratios to the best. A direction is identified only as far as the grid spans
both axes: with K over 32× and steps over 16×, θ near 0 or 90° is measurable, and a ≫ 10 is not told
apart from K alone.
"""
from __future__ import annotations

import numpy as np

from ..errors import check

THETAS = np.linspace(0.0, 90.0, 91)  # degrees: a = tan θ from 0 (steps only) to ∞ (K only)


def _score(y, x, model, bandwidth: float) -> float:
    """Eq 2: the leave-one-model-out error of a Gaussian kernel smoother of y over standardized x."""
    sd = x.std()
    z = (x - x.mean()) / (sd if sd > 0 else 1.0)
    w = np.exp(-0.5 * ((z[:, None] - z[None, :]) / bandwidth) ** 2)
    w[model[:, None] == model[None, :]] = 0.0  # leave the model out, all its rows
    tot = w.sum(1)
    ok = tot > 1e-12
    pred = (w @ y)[ok] / tot[ok]
    return float(np.mean((y[ok] - pred) ** 2))


def scores(y, log_step, log_k, model, *, thetas=THETAS, bandwidth: float = 0.25) -> np.ndarray:
    """score(θ) (eq 2) for each θ of ``thetas`` (degrees)."""
    r = np.radians(np.asarray(thetas, float))
    return np.array([_score(y, np.cos(t) * log_step - np.sin(t) * log_k, model, bandwidth) for t in r])


def collapse(rows: list[dict], measure: str, *, thetas=THETAS, bandwidth: float = 0.25, iterations: int = 400,
             seed: int = 0) -> dict:
    """The direction in (log K, log step) along which ``measure`` stays constant (eqs 1-2), from
    ``rows`` (one per model and step: ``K``, ``replicate``, ``step``, ``measure``; rows where it is None
    are left out). Returns θ, a = tan θ (None at 90°), their bootstrap 95% intervals over models, and the
    scores of steps only (θ = 0), K only (90°) and a constant, each over the best."""
    rs = [r for r in rows if r.get(measure) is not None and np.isfinite(float(r[measure]))]
    check(len({(r["K"], r.get("replicate", 0)) for r in rs}) >= 4 and len({r["K"] for r in rs}) >= 2
          and len({r["step"] for r in rs}) >= 2, f"{measure}: a collapse needs several models, sizes and steps")
    check(bandwidth > 0 and iterations >= 0, "bandwidth > 0 and iterations >= 0")
    y = np.array([float(r[measure]) for r in rs])
    ls, lk = np.log([float(r["step"]) for r in rs]), np.log([float(r["K"]) for r in rs])
    ids = sorted({(r["K"], r.get("replicate", 0)) for r in rs})
    model = np.array([ids.index((r["K"], r.get("replicate", 0))) for r in rs])
    thetas = np.asarray(thetas, float)
    s = scores(y, ls, lk, model, thetas=thetas, bandwidth=bandwidth)
    best = float(thetas[int(np.argmin(s))])
    const = float(np.mean([(y[i] - y[model != model[i]].mean()) ** 2 for i in range(len(y))]))
    boot = []
    rng = np.random.default_rng(seed)
    by_k = {}
    for j, (k, _) in enumerate(ids):
        by_k.setdefault(k, []).append(j)
    rows_of = [np.flatnonzero(model == j) for j in range(len(ids))]
    for _ in range(iterations):  # resample the models within each K; a copy is a model of its own
        pick = [j for k in sorted(by_k) for j in rng.choice(by_k[k], size=len(by_k[k]))]
        idx = np.concatenate([rows_of[j] for j in pick])
        mid = np.concatenate([np.full(len(rows_of[j]), n) for n, j in enumerate(pick)])
        sb = scores(y[idx], ls[idx], lk[idx], mid, thetas=thetas, bandwidth=bandwidth)
        boot.append(float(thetas[int(np.argmin(sb))]))
    lo, hi = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))) if boot else (None, None)

    def a_of(theta):
        return None if theta is None or theta >= 90 else float(np.tan(np.radians(theta)))

    return {"measure": measure, "n_models": len(ids), "n_rows": len(y), "bandwidth": bandwidth,
            "theta": best, "theta_lo95": lo, "theta_hi95": hi, "a": a_of(best), "a_lo95": a_of(lo), "a_hi95": a_of(hi),
            "score_best": float(s.min()), "steps_only_over_best": float(s[0] / s.min()),
            "k_only_over_best": float(s[-1] / s.min()), "constant_over_best": float(const / s.min()),
            "scores": s.tolist(), "thetas": thetas.tolist()}


def verdict(c: dict) -> str:
    """One sentence on a :func:`collapse` result: which of steps, K or steps/K^a its interval allows."""
    lo, hi = c["theta_lo95"], c["theta_hi95"]
    if lo is None:
        return f"best a = {c['a']}; no interval (no bootstrap)"
    def text(v):
        return "∞" if v is None else f"{v:.2f}"

    a, ia = text(c["a"]), f"[{text(c['a_lo95'])}, {text(c['a_hi95'])}]"
    if hi - lo > 45:
        flat = c["constant_over_best"] < 1.3
        tail = "): the measure barely varies over the grid" if flat else "): it varies, along no one direction"
        where = (f"the direction is not identified (the interval spans {hi - lo:.0f}°; a constant predicts "
                 f"{c['constant_over_best']:.2f}× the best error" + tail)
    elif hi >= 90 and lo > 0:
        where = "K alone is within the interval; training time per item is not needed"
    elif lo <= 0 and hi < 90:
        where = "training time alone is within the interval; K adds nothing"
    elif lo <= 0 and hi >= 90:
        where = "the data cannot tell steps from K"
    else:
        where = "neither K alone nor steps alone: a function of steps/K^a"
    return f"a = {a}, 95% interval {ia} (θ {c['theta']:.0f}° [{lo:.0f}°, {hi:.0f}°]): {where}"


def heat_and_collapse(model_rows: list[dict], rows: list[dict], results: dict, path, *, title: str = "") -> None:
    """Top: the model-level mean of each measure over (K, step) (heatmap); bottom: every model's value
    against steps/K^a at its measure's best a, coloured by K."""
    from ..core.plots import log_edges, pyplot, save

    plt = pyplot()
    names = list(results)
    ks = sorted({r["K"] for r in model_rows})
    steps = sorted({r["step"] for r in model_rows})
    fig, axes = plt.subplots(2, len(names), figsize=(4.3 * len(names), 7.4), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for j, name in enumerate(names):
        grid = np.full((len(steps), len(ks)), np.nan)
        for r in model_rows:
            if r.get(name) is not None:
                grid[steps.index(r["step"]), ks.index(r["K"])] = float(r[name])
        ax = axes[0, j]
        diverging = name.startswith("excess")
        lim = max(0.01, float(np.nanmax(np.abs(grid)))) if diverging else 1.0
        im = ax.pcolormesh(log_edges(ks), log_edges(steps), np.ma.masked_invalid(grid),
                           cmap="RdBu_r" if diverging else "magma", vmin=-lim if diverging else 0, vmax=lim)
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set(xscale="log", yscale="log", xlabel="training-set size K", ylabel="training step",
               title=name.replace("_", " "))
        ax.set_xticks(ks, [str(k) for k in ks], minor=False)
        ax.set_xticks([], minor=True)
        c = results[name]
        a = c["a"]
        ax = axes[1, j]
        for k in ks:
            pts = [(r["step"] / (k ** a if a is not None else 1.0), float(r[name])) for r in rows
                   if r["K"] == k and r.get(name) is not None]
            if a is None:  # K alone: plot against K
                pts = [(k, v) for _, v in pts]
            if pts:
                ax.plot(*zip(*pts), "o", ms=3, alpha=0.7, color=cmap(ks.index(k) / max(len(ks) - 1, 1)),
                        label=f"K={k}")
        if diverging:
            ax.axhline(0, color="0.5", lw=0.8)
        ax.set(xscale="log", xlabel="K" if a is None else f"step / K^{a:.2f}", ylabel=name.replace("_", " "),
               title=f"best a = {'∞' if a is None else format(a, '.2f')} (θ {c['theta']:.0f}°)")
        if a is None:
            ax.set_xticks(ks, [str(k) for k in ks], minor=False)
            ax.set_xticks([], minor=True)
        ax.legend(fontsize=6, ncol=2)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save(fig, path)
