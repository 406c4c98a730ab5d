"""The landscape and attractor studies as one call each over a sweep's points (``mem2gen landscape``,
``mem2gen attractors``): their settings, the shared loop (:func:`mem2gen.analyses.points.over_points`), the
run's figures and tables. Light to import: the analyses themselves (:mod:`mem2gen.analyses.landscape_study`,
:mod:`mem2gen.analyses.attractors`) load torch when a study starts."""
from __future__ import annotations

import json

import numpy as np

from ..core.plots import COLORS, as_picture, pyplot, save
from ..core.stats import LABELS
from ..io import layout
from ..io.config import ATTRACTOR_GROUPS
from ..io.data import to_float
from ..io.files import write_csv
from .points import over_points


def landscape(run_dir, *, sizes: tuple | None = None, n_samples: int = 200, trials: int = 10, steps: int = 20,
              t_energy: int = 100, t_follow: int = 50, seed: int = 0, device: str | None = None,
              overwrite: bool = False, progress: bool = True, echo=print) -> list[dict]:
    """The attractor landscape of every classified point of a sweep (or of ``sizes``): recovery times
    and basin radii, energy profiles, curvature, attractor census against |S'|, mixture test
    (:func:`analyze`). Each point's ``landscape.json`` is kept and reused while its settings stay the same
    (:func:`mem2gen.analyses.points.over_points`); then ``landscape.png`` and the report's Landscape section
    are rebuilt."""
    from ..models.networks import check_device
    from .landscape_study import LandscapeConfig, analyze  # torch

    cfg = LandscapeConfig(n_samples=n_samples, trials=trials, steps=steps, t_energy=t_energy, t_follow=t_follow,
                          seed=seed)
    check_device(device)
    settings = json.loads(json.dumps(cfg.__dict__, default=list))

    def figures(run, results):
        for p, res in zip(run.classified(sizes, what="analyse"), results):
            if not (p.path / layout.LANDSCAPE_FIGURE).exists():
                point_landscape_figure(res, p.eval, p.train_set, p.path / layout.LANDSCAPE_FIGURE)
        landscape_figure(results, run.path / "landscape.png")

    return over_points(run_dir, command="mem2gen landscape", record=layout.LANDSCAPE, settings=settings, sizes=sizes,
                       compute=lambda p: analyze(p, cfg, device=device, progress=progress), after=figures,
                       overwrite=overwrite, echo=echo)


def attractor_study(run_dir, *, sizes: tuple | None = None, ts: tuple = (5, 10, 20, 50, 100, 200, 400),
                    groups: tuple = ATTRACTOR_GROUPS, per_group: int = 32, n_synthetic: int = 512, trials: int = 10,
                    steps: int = 20, window: bool = False, control: str | None = None, n_planted: int = 16,
                    snapshots: bool = False, snapshot_samples: int = 256, seed: int = 0, device: str | None = None,
                    overwrite: bool = False, progress: bool = True,
                    echo=print) -> list[dict]:
    """``mem2gen attractors RUN`` (also ``mem2gen landscape RUN --attractors``): the attractor study at every
    classified point of every replicate (or of ``sizes``). Each point's ``attractors.json`` is kept and reused
    while its settings stay the same (:func:`mem2gen.analyses.points.over_points`: a long study resumes point
    by point); then the run's tables are rewritten: attractors-census.csv (per model, t and group),
    attractors-points.csv (per start: its end, curvature, recovery), attractors-barriers.csv and attractors.csv
    (per model, K, t and group over the models). ``window``: also every 25 steps through the noise levels where
    DenseAM theory puts mixture states (:func:`mem2gen.analyses.attractors.theory_window`, per K; rows marked
    ``in_window``); ``control="planted"``: the positive control beside each model (the exact denoiser of S_K with
    ``n_planted`` planted mixtures, and without them: :func:`mem2gen.analyses.attractors.planted_control`);
    ``snapshots``: also at every EMA snapshot, with ``snapshot_samples`` samples drawn there and classified for
    its groups (:func:`mem2gen.analyses.attractors.snapshot_starts`; rows name their ``step``)."""
    from ..models.networks import check_device
    from .attractors import AttractorConfig, analyze_point, summarize  # torch

    cfg = AttractorConfig(ts=tuple(ts), groups=tuple(groups), per_group=per_group, n_synthetic=n_synthetic,
                          trials=trials, steps=steps, window=window, control=control, n_planted=n_planted,
                          snapshots=snapshots, snapshot_samples=snapshot_samples, seed=seed)
    check_device(device)
    settings = json.loads(json.dumps(cfg.__dict__, default=list))

    def tables(run, results):
        found = {name: [{"K": r["K"], "replicate": r["replicate"], **row} for r in results for row in r[part]]
                 for name, part in zip(layout.ATTRACTOR_TABLES, ("census", "points", "barriers"))}
        for name, rows in found.items():
            if rows:
                write_csv(run.path / name, rows)
        write_csv(run.path / layout.ATTRACTOR_TABLES[3], summarize(*found.values()))

    return over_points(run_dir, command="mem2gen attractors", record=layout.ATTRACTORS, settings=settings,
                       sizes=sizes, compute=lambda p: analyze_point(p, cfg, device=device,
                                                                    progress=echo if progress else None),
                       after=tables, report=False, overwrite=overwrite, echo=echo)


def landscape_figure(results: list, path) -> None:
    """Per K: recovery times by group, attractors found vs samples followed (with eq 5's spurious
    fraction on the same subsets of S'), and the fraction of samples explained as mixtures."""
    plt = pyplot()

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
    save(fig, path)


def point_landscape_figure(result: dict, eval_set, train, path) -> None:
    """One point's energy profiles (E_t from each sample to its nearest training item, per label) and
    the best-explained mixtures: each sample, its parents with their weights, and the mixture."""
    plt = pyplot()

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
                pic = as_picture(img)
                if pic is not None:
                    ax.imshow(pic, cmap="gray" if pic.ndim == 2 else None, vmin=0, vmax=255)
                ax.set_title(title, fontsize=6)
                ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    save(fig, path, dpi=110)
