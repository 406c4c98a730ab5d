"""``mem2gen calibrate``: the rule against its null at every classified point of a sweep."""
from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from ..analyses.calibration import point_calibration
from ..core.plots import pyplot, save
from ..io import layout
from ..io.files import read_json, run_lock, write_json
from ..runs.report import aggregate
from ..runs.run import Run
from .options import Numbers, calls, lib_option


def calibrate(run_dir, *, sizes: tuple | None = None, overwrite: bool = False, echo=print) -> list[dict]:
    """The rule's calibration at every classified point of a sweep (or of ``sizes``): eq 5's fractions as
    S' grows (its prefixes, m = K, 2K, 4K, …) and over a δs grid, for the model's samples and for the
    null (held-out real data); ``calibration.json`` per point, ``calibration.png`` and the report's
    Calibration section (:func:`mem2gen.analyses.calibration.point_calibration`)."""
    run = Run(run_dir)
    with run_lock(run.path, command="mem2gen calibrate"):
        results = []
        for p in run.classified(sizes, what="calibrate"):
            f = p.path / layout.CALIBRATION
            if f.exists() and not overwrite:
                results.append({**read_json(f), "point": p.key})
                continue
            t = time.perf_counter()
            res = {**point_calibration(p), "point": p.key}
            write_json(f, res)
            echo(f"K={p.key}: calibrated in {time.perf_counter() - t:.0f} s")
            results.append(res)
        calibration_figure(results, run.path / "calibration.png", delta_s=run.config.delta_s)
        aggregate(run.path, echo=lambda *a: None)
        return results


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


@click.command("calibrate")
@calls(calibrate)
@click.argument("run_dir", type=click.Path(path_type=Path))
@lib_option(calibrate, "sizes", "--sizes", type=Numbers(int), help="Sizes K. [default: every classified point]")
@lib_option(calibrate, "overwrite", "--overwrite", is_flag=True, help="Recompute points already calibrated.")
def calibrate_cmd(**kw):
    """The rule against its null: spurious fraction vs |S'| and vs delta_s, the model's and real data's."""
    results = calibrate(**kw, echo=click.echo)
    head = ("point", "|S'|", "model spurious, smallest -> full |S'|", "null, smallest -> largest")
    click.echo(f"{head[0]:>6} {head[1]:>9} {head[2]:>38} {head[3]:>26}")
    for r in results:
        m, n = r["model_curve"], r["null_curve"]
        null = f"{n[0]['spurious']:>17.3f} -> {n[-1]['spurious']:.3f}" if n else f"{'no held-out data':>26}"
        click.echo(f"{r['point']:>6} {r['n_synthetic']:>9} {m[0]['spurious']:>29.3f} -> {m[-1]['spurious']:.3f} {null}")
    click.echo(f"wrote calibration.json per point, {kw['run_dir']}/calibration.png and the report's Calibration section")


COMMANDS = [calibrate_cmd]
