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
    from .files import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return True


COLORS = {"memorized": "#d62728", "spurious": "#2ca02c", "generalized": "#1f77b4"}


def phase_diagram(rows, caps, path, *, title: str = "") -> None:
    """Fractions against K (log scale) with bootstrap 95% bands and MC, SC, GC marked (paper Fig. 2).
    Writes ``path`` (PNG) and the same figure as PDF beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pathlib import Path

    from .files import atomic_path

    k = np.array([r["K"] for r in rows])
    nrows = [r for r in rows if r.get("null_spurious") is not None]
    if nrows:  # a second panel: the spurious fraction zoomed in, against the rule's null on held-out data
        fig, (ax, zoom) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    else:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name in LABELS:
        m = np.array([r[f"mean_{name}"] for r in rows])
        lo = np.array([r[f"lo95_{name}"] for r in rows])
        hi = np.array([r[f"hi95_{name}"] for r in rows])
        ax.plot(k, m, "o-", color=COLORS[name], label=name, ms=4)
        ax.fill_between(k, lo, hi, color=COLORS[name], alpha=0.2, lw=0)
    if nrows:
        kn = [r["K"] for r in nrows]
        zoom.plot(k, [r["mean_spurious"] for r in rows], "o-", color=COLORS["spurious"], ms=4, label="spurious")
        zoom.fill_between(k, [r["lo95_spurious"] for r in rows], [r["hi95_spurious"] for r in rows],
                          color=COLORS["spurious"], alpha=0.2, lw=0)
        zoom.fill_between(kn, [r["null_lo95_spurious"] for r in nrows], [r["null_hi95_spurious"] for r in nrows],
                          facecolor="none", edgecolor="0.4", hatch="///", lw=0)
        zoom.plot(kn, [r["null_spurious"] for r in nrows], ":", color="0.3", lw=1, label="null: held-out real data")
        sig = [r["K"] for r in nrows if r.get("significant_spurious")]
        if sig:
            top = max(r["hi95_spurious"] for r in rows)
            zoom.plot(sig, [top * 1.1] * len(sig), "*", color="k", ms=6, label="above the null (exact test, Holm, 5%)")
        zoom.set_ylabel("spurious")
        zoom.set_xlabel("training-set size K")
        zoom.legend(fontsize=7, loc="center right")
        zoom.grid(alpha=0.3)
    bad = [r["K"] for r in rows if r.get("generalized_off_manifold") is not None and r["frac_generalized"] >= 0.1
           and r["generalized_off_manifold"] > 0.5]
    if bad:  # eq 6 calls noise "generalized": say so on the figure
        ax.text(0.5, 0.5, f"WARNING: at K = {', '.join(map(str, bad))} most generalized samples are\n"
                          "off-manifold (unlike any real data), not good samples", transform=ax.transAxes,
                ha="center", va="center", color="darkred", fontsize=9, bbox=dict(facecolor="w", alpha=0.8))
    for key, style in (("MC", ":"), ("SC", "--"), ("GC", "-.")):
        if caps.get(key) is not None:
            ax.axvline(caps[key], color="k", ls=style, lw=1)
            ax.text(caps[key], 1.02, key, ha="center", va="bottom", fontsize=8, transform=ax.get_xaxis_transform())
    _k_axis(ax, k)
    if not nrows:
        ax.set_xlabel("training-set size K")
    ax.set_ylabel("fraction of samples")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="center left", fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9, pad=14)
    fig.tight_layout()
    path = Path(path)
    for p in (path, path.with_suffix(".pdf")):
        with atomic_path(p) as tmp:
            fig.savefig(tmp, dpi=130, format=p.suffix[1:])
    plt.close(fig)


def hopfield_figure(exp: dict, census: list, path) -> None:
    """Retrieval overlap vs load for each N (α_c marked), and the end-state census."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import atomic_path

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in exp["by_n"]:
        a.plot(r["curve"]["alpha"], r["curve"]["overlap"], "o-", ms=3, label=f"N={r['N']} (α_c={r['alpha_c']:.3f})")
    a.axvline(0.138, color="k", ls=":", lw=1)
    a.set_xlabel("load α = K/N")
    a.set_ylabel("final overlap with the stored pattern")
    a.legend(fontsize=7)
    al = [r["alpha"] for r in census]
    bottom = np.zeros(len(al))
    for name, c in (("pattern", "#d62728"), ("negative", "#ff9896"), ("mixture", "#2ca02c"), ("spin-glass", "#7f7f7f")):
        v = np.array([r[name] for r in census])
        b.bar(range(len(al)), v, bottom=bottom, color=c, label=name)
        bottom += v
    b.set_xticks(range(len(al)), [f"{x:.3f}" for x in al])
    b.set_xlabel("load α")
    b.set_ylabel("end states from random starts")
    b.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def dense_figure(rows: list, path) -> None:
    """One panel per β: fractions of memorized / spurious / generalized retrievals against K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import atomic_path

    betas = sorted({r["beta"] for r in rows})
    fig, axes = plt.subplots(1, len(betas), figsize=(4 * len(betas), 3.4), squeeze=False, sharey=True)
    for ax, beta in zip(axes[0], betas):
        rs = [r for r in rows if r["beta"] == beta]
        k = [r["K"] for r in rs]
        for name in LABELS:
            ax.plot(k, [r[f"frac_{name}"] for r in rs], "o-", ms=3, color=COLORS[name], label=name)
            ax.fill_between(k, [r[f"lo95_{name}"] for r in rs], [r[f"hi95_{name}"] for r in rs],
                            color=COLORS[name], alpha=0.2, lw=0)
        ax.set_xscale("log")
        ax.set_title(f"DenseAM, β = {beta:g}", fontsize=9)
        ax.set_xlabel("stored patterns K")
    axes[0][0].set_ylabel("fraction of retrievals")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def landscape_figure(results: list, path) -> None:
    """Per K: recovery times by group, attractors found vs samples followed (with eq 5's spurious
    fraction on the same subsets of S'), and the fraction of samples explained as mixtures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import atomic_path

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    groups = ["training item", *LABELS]
    colors = {"training item": "0.4", **COLORS}
    ks = [r["K"] for r in results]
    for gi, g in enumerate(groups):
        for xi, r in enumerate(results):
            tc = r["recovery"].get(g, {}).get("t_c", [])
            if tc:
                x = xi + (gi - 1.5) * 0.18
                axes[0].boxplot([tc], positions=[x], widths=0.15, patch_artist=True, showfliers=False,
                                boxprops=dict(facecolor=colors[g], alpha=0.6), medianprops=dict(color="k"))
        axes[0].plot([], [], "s", color=colors[g], alpha=0.6, label=g)
    axes[0].set_xticks(range(len(ks)), [str(k) for k in ks])
    axes[0].set_xlabel("K")
    axes[0].set_ylabel("recovery time t_c")
    axes[0].legend(fontsize=7)
    ax2 = axes[1].twinx()
    for r in results:
        c = r["census"]["curve"]
        m = [e["m"] for e in c]
        line, = axes[1].plot(m, [e["attractors"] for e in c], "o-", ms=3, label=f"K={r['K']}")
        ax2.plot(m, [e["spurious_eq5"] for e in c], "x--", ms=3, color=line.get_color(), alpha=0.6)
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("samples of S' followed (m)")
    axes[1].set_ylabel("distinct attractors (o)")
    ax2.set_ylabel("eq 5 spurious fraction with |S'| = m (x)")
    axes[1].legend(fontsize=7)
    for name in ("spurious", "generalized"):
        ys, xs = [], []
        for r in results:
            mix = r["mixture"].get(name)
            if mix and "3" in mix["by_m"]:
                xs.append(r["K"])
                ys.append(mix["by_m"]["3"]["explained"])
        axes[2].plot(xs, ys, "o-", color=COLORS[name], label=name)
    axes[2].set_xscale("log")
    axes[2].set_ylim(-0.02, 1.02)
    axes[2].set_xlabel("K")
    axes[2].set_ylabel("explained by a convex mixture of 3 items")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def calibration_figure(results: list, path, *, delta_s: float | None = None) -> None:
    """Left: eq 5's spurious fraction against |S'|/K for each K, the model's (solid) and the null's
    (dotted). Middle and right: the spurious fraction over K × δs, the model's and its excess over
    the null (App. B.2's choice of δs made visible)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import atomic_path

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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def toy_figure(results: list, path, *, extent=(-1.2, 1.2), t: int = 50) -> None:
    """One row per K: the learned energy with samples, the exact energy of the training points, and the
    basins of the attractors (training items ●, attractors off the training set ×)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import atomic_path

    n = len(results)
    fig, axes = plt.subplots(n, 3, figsize=(10, 3.1 * n), squeeze=False)
    ext = (extent[0], extent[1], extent[0], extent[1])
    for row, r in zip(axes, results):
        y = np.asarray(r["train"])
        for ax, key, title in ((row[0], "learned_energy", f"K={r['K']}: learned E_t (t={t}; light = low), samples"),
                               (row[1], "exact_energy", "exact E_t of the training points (o)")):
            e = np.asarray(r[key])
            lo, hi = np.percentile(e, [1, 99])
            ax.imshow(np.clip(e, lo, hi), origin="lower", extent=ext, cmap="magma_r")
            ax.set_title(title, fontsize=8)
        s = np.asarray(r["samples"])
        row[0].scatter(s[:, 0], s[:, 1], s=2, c="c", alpha=0.5)
        basin = np.asarray(r["basin"], dtype=float)
        row[2].imshow(np.where(basin < 0, 0.5, 1.0), origin="lower", extent=ext, cmap="gray", vmin=0, vmax=1)
        basin[basin < 0] = np.nan
        row[2].imshow(basin % 20, origin="lower", extent=ext, cmap="tab20", interpolation="nearest", vmin=0, vmax=19)
        a = np.asarray(r["attractors_xy"])
        on = np.asarray(r["attractor_on_item"]) >= 0
        row[2].scatter(a[~on, 0], a[~on, 1], marker="x", c="k", s=30, label="attractor off the training set")
        row[2].set_title(f"basins of training items (grey: ends off them)\nsamples end at {r['attractors']} "
                         f"attractors, {r['off_training']} off the items (x)", fontsize=8)
        for ax in row:
            ax.scatter(y[:, 0], y[:, 1], s=14, facecolors="none", edgecolors="w" if ax is not row[2] else "k", lw=1)
            ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def point_landscape_figure(result: dict, eval_set, train, path) -> None:
    """One point's energy profiles (E_t from each sample to its nearest training item, per label) and
    the best-explained mixtures: each sample, its parents with their weights, and the mixture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .data import to_float
    from .files import atomic_path

    names = [n for n in LABELS if n in result["energy"]]
    mixes = [(n, e) for n in ("spurious", "generalized") for e in result["mixture"].get(n, {}).get("examples", [])]
    ncols = max(len(names), 1)
    fig = plt.figure(figsize=(3.2 * max(ncols, 3), 2.6 + 1.2 * len(mixes)))
    grid = fig.add_gridspec(2, 1, height_ratios=[2.6, 1.2 * max(len(mixes), 1)])
    top = grid[0].subgridspec(1, ncols)
    for j, name in enumerate(names):
        ax = fig.add_subplot(top[j])
        path0 = result["energy"][name]["paths"][0]
        for prof in path0["profile"]:
            ax.plot(path0["s"], prof, color=COLORS[name], alpha=0.5, lw=1)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{name}: E_t along x̂ → x1", fontsize=8)
        ax.set_xlabel("s (0: sample, 1: nearest training item)", fontsize=7)
        ax.tick_params(labelsize=7)
    if mixes:
        bottom = grid[1].subgridspec(len(mixes), 7)
        y = np.asarray(train)
        for r, (name, e) in enumerate(mixes):
            x = np.asarray(eval_set[e["sample"]])
            parents = [y[i] for i in e["parents"]]
            mix = sum(w * to_float(p[None])[0] for w, p in zip(e["weights"], parents)).reshape(np.shape(x))
            cells = [(x, f"{name} #{e['sample']}")] + [(p, f"w={w:.2f}") for p, w in zip(parents, e["weights"])] + [
                (mix, f"mix: res {e['relative']:.2f}·d1")]
            for c, (img, title) in enumerate(cells[:7]):
                ax = fig.add_subplot(bottom[r, c])
                pic = _as_picture(img)
                if pic is not None:
                    ax.imshow(pic, cmap="gray" if pic.ndim == 2 else None, vmin=0, vmax=255)
                ax.set_title(title, fontsize=6)
                ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _save(fig, path, *, dpi: int = 120) -> None:
    import matplotlib.pyplot as plt
    from pathlib import Path

    from .files import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix[1:])
    plt.close(fig)


def _k_axis(ax, ks) -> None:
    """A log axis of training-set sizes labelled in plain numbers: at the sizes themselves when there
    are few, else at powers of ten; never the crowded minor labels matplotlib adds to a short span."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter

    ax.set_xscale("log")
    ks = sorted({int(k) for k in ks})
    if 1 < len(ks) <= 10:
        ax.xaxis.set_major_locator(FixedLocator(ks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.tick_params(axis="x", labelsize=8 if len(ks) <= 6 else 7)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _log_edges(values) -> np.ndarray:
    """Cell edges for values on a log axis: geometric midpoints, extended half a step at each end."""
    v = np.log(np.asarray(sorted(values), float))
    mid = (v[1:] + v[:-1]) / 2 if len(v) > 1 else np.array([])
    lo = v[0] - (mid[0] - v[0] if len(mid) else 0.5)
    hi = v[-1] + (v[-1] - mid[-1] if len(mid) else 0.5)
    return np.exp(np.concatenate([[lo], mid, [hi]]))


def dynamics_figure(rows: list, analysis: dict, path, *, title: str = "") -> None:
    """The (K, training step) map: one panel per class (colour = fraction; white line: τ_mem(K)), and
    τ_mem(K), τ_gen(K), the spurious onset with the power-law fit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted({r["K"] for r in rows})
    steps = sorted({r["step"] for r in rows})
    grid = {name: np.full((len(steps), len(ks)), np.nan) for name in LABELS}
    for r in rows:
        for name in LABELS:
            grid[name][steps.index(r["step"]), ks.index(r["K"])] = r[f"frac_{name}"]
    per_k = analysis["per_K"]
    tau = [(d["K"], d["tau_mem"]) for d in per_k if d["tau_mem_status"] == "ok"]
    fig, axes = plt.subplots(2, 2, figsize=(9.6, 7.2))
    xe, ye = _log_edges(ks), _log_edges(steps)
    for ax, name in zip(axes.flat, LABELS):
        vmax = 1.0 if name != "spurious" else max(0.05, float(np.nanmax(grid[name])))
        im = ax.pcolormesh(xe, ye, np.ma.masked_invalid(grid[name]), cmap="magma", vmin=0, vmax=vmax, shading="flat")
        fig.colorbar(im, ax=ax, fraction=0.046)
        if tau:
            ax.plot(*zip(*tau), "o-", color="w", ms=4, lw=1.2, label="τ_mem (memorized = ½)")
        ax.set(xscale="log", yscale="log", xlabel="training-set size K", ylabel="training step", title=name)
        sig = [(r["K"], r["step"]) for r in rows if r.get("significant_spurious")]
        if name == "spurious" and sig:
            ax.plot(*zip(*sig), "+", color="c", ms=7, mew=1.5, label="above the null (95%)")
            ax.legend(fontsize=7, loc="lower right")
        noise = [(r["K"], r["step"]) for r in rows if (r.get("generalized_off_manifold") or 0) > 0.5
                 and r["frac_generalized"] >= 0.1]
        if name == "generalized" and noise:
            ax.plot(*zip(*noise), "x", color="c", ms=6, mew=1.5, label="most of them off-manifold")
            ax.legend(fontsize=7, loc="lower right")
        if name == "memorized" and tau:
            ax.legend(fontsize=7, loc="lower right")
    ax = axes.flat[3]
    for key, status, style, label in (("tau_mem", "tau_mem_status", "o", "τ_mem (½)"),
                                      ("tau_mem_05", "tau_mem_05_status", "s", "memorized reaches 5%")):
        pts = [(d["K"], d[key]) for d in per_k if d[status] == "ok"]
        if pts:
            ax.plot(*zip(*pts), style, color=COLORS["memorized"], mfc="none" if style == "s" else None, label=label)
    gen = [(d["K"], d["tau_gen"]) for d in per_k if d["tau_gen"] is not None]
    if gen:
        ax.plot(*zip(*gen), "x", color=COLORS["generalized"], ms=8, label="τ_gen (lowest held-out loss)")
    onset = [(d["K"], d["spurious_onset"]) for d in per_k if d["spurious_onset"] is not None]
    if onset:
        ax.plot(*zip(*onset), "^", color=COLORS["spurious"], label="spurious onset")
    fit = analysis["fit"]
    if fit["a"] is not None:
        kk = np.geomspace(min(fit["K"]), max(fit["K"]), 50)
        ci = "" if not fit.get("ci95") else f" [{fit['ci95'][0]:.2f}, {fit['ci95'][1]:.2f}]"
        ax.plot(kk, np.exp(fit["c"]) * kk ** fit["a"], "-", color="0.3", lw=1, label=f"τ_mem ∝ K^{fit['a']:.2f}{ci}")
    ax.set(xscale="log", yscale="log", xlabel="training-set size K", ylabel="training step",
           xlim=(xe[0], xe[-1]), ylim=(ye[0], ye[-1]), title="times")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def compare_figure(runs: list, path, *, settings: list | None = None) -> None:
    """Phase curves of several runs overlaid (one panel per class; line style per run, 95% bands);
    ``settings`` (an index per run) gives replicates of one setting one colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharex=True)
    styles = ["o-", "s--", "^-.", "v:", "D-", "P--", "X-."]
    for i, (label, rows) in enumerate(runs):
        k = [r["K"] for r in rows]
        for ax, name in zip(axes, LABELS):
            color = f"C{settings[i] if settings else i}"
            ax.plot(k, [r[f"mean_{name}"] for r in rows], styles[i % len(styles)], ms=4, lw=1.2,
                    color=color, label=label)
            ax.fill_between(k, [r[f"lo95_{name}"] for r in rows], [r[f"hi95_{name}"] for r in rows],
                            color=color, alpha=0.12, lw=0)
    for ax, name in zip(axes, LABELS):
        _k_axis(ax, [r["K"] for _, rows in runs for r in rows])
        ax.set(xlabel="training-set size K", title=name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of samples")
    legend_rows = (len(runs) + 1) // 2  # the legend below the panels, two runs a row: labels can be long
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=min(2, len(runs)), fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, min(0.4, 0.02 + 0.05 * legend_rows), 1, 1))
    _save(fig, path)


def samples_figure(sets: list, path, *, per_row: int = 12) -> bool:
    """A row of the first ``per_row`` samples of S_eval per K (``sets``: (K, samples) pairs), PNG at
    ``path``; False (nothing drawn) when the samples are not images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not sets or _as_picture(np.asarray(sets[0][1][0])) is None:
        return False
    fig, axes = plt.subplots(len(sets), per_row, figsize=(per_row * 0.8, len(sets) * 0.85), squeeze=False)
    for row, (k, x) in zip(axes, sets):
        for j, ax in enumerate(row):
            ax.axis("off")
            if j < len(x):
                pic = _as_picture(np.asarray(x[j]))
                ax.imshow(pic, cmap="gray" if pic.ndim == 2 else None, vmin=0, vmax=255)
        row[0].text(-0.15, 0.5, f"K={k}", transform=row[0].transAxes, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.99, top=0.98, bottom=0.02, wspace=0.05, hspace=0.1)
    _save(fig, path, dpi=100)
    return True
