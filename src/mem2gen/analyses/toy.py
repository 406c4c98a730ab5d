"""A 2-D toy whose energy is known exactly: K points on a circle (or drawn from a Gaussian
mixture), one small MLP ε-model trained per K, and its learned energy landscape beside the exact
energy of the empirical distribution at the same step t,

    E_t(x) = −log (1/K) Σ_j N(x; √ᾱ_t y_j, (1 − ᾱ_t) I)        (the optimal denoiser's, exact),

with the basins of the model's attractors and where its samples go. In two dimensions eq 5 labels
almost every non-memorized sample spurious (any sample has close neighbours in S'), so the toy counts
with the attractor census instead: distinct end points of the denoiser fixed-point iteration, and
how many of them sit on a training item.
"""
from __future__ import annotations

import time

import numpy as np

from ..core.plots import pyplot, save
from ..errors import check
from ..io.config import ModelSpec, TrainConfig
from ..io.files import prepare_out_dir, staged_dir, write_json, write_text

SHAPES = ("circle", "gmm")


def toy_points(shape: str, k: int, *, seed: int = 0, radius: float = 0.8) -> np.ndarray:
    """K training points in [-1, 1]²: uniform angles on a circle of ``radius``, or draws from a mixture
    of four Gaussians (centres (±0.5, ±0.5), std 0.1)."""
    check(shape in SHAPES, f"unknown toy data {shape!r}; use one of {', '.join(SHAPES)}")
    check(k >= 2, "K must be at least 2")
    rng = np.random.default_rng([seed, k])
    if shape == "circle":
        a = rng.uniform(0, 2 * np.pi, k)
        return (radius * np.stack([np.cos(a), np.sin(a)], 1)).astype(np.float32)
    centres = np.array([[0.5, 0.5], [-0.5, 0.5], [0.5, -0.5], [-0.5, -0.5]])
    return np.clip(centres[rng.integers(0, 4, k)] + 0.1 * rng.standard_normal((k, 2)), -1, 1).astype(np.float32)


def run_toy(*, out="runs/toy", data: str = "circle", sizes: tuple = (2, 4, 8, 16, 32, 64), steps: int = 4000,
            hidden: int = 256, depth: int = 3, t_energy: int = 50, t_follow: int = 20, grid: int = 64,
            n_samples: int = 1000, seed: int = 0, device: str | None = None, overwrite: bool = False,
            progress: bool = True, echo=print) -> list[dict]:
    """Train one MLP per K on ``data`` (circle or gmm), then for each: the learned and exact energy at
    ``t_energy`` on a ``grid`` × ``grid`` image of [-1.2, 1.2]², the attractor of every grid point
    (basins), and a census of where ``n_samples`` DDPM samples end, all on ``device`` (default: CUDA when
    present). Writes toy.csv, toy.json and toy.png."""
    import torch

    from ..core.embed import default_device
    from ..models.diffusion import OptimalDenoiser, Schedule, sample
    from ..models.networks import build_model, check_device
    from ..models.train import train
    from . import landscape as L
    from . import recovery as R

    check(len(sizes) > 0 and min(sizes) >= 2, "give sizes of at least 2")
    check(steps >= 1 and grid >= 4 and n_samples >= 2, "steps >= 1, grid >= 4, n_samples >= 2")
    check(seed >= 0 and hidden >= 1 and depth >= 0, "seed >= 0, hidden >= 1, depth >= 0")
    check(0 <= t_energy < 1000 and 0 <= t_follow < 1000, "t_energy and t_follow lie in [0, T = 1000)")
    check_device(device)
    device = str(device or default_device())  # training, sampling and every search on one device
    toy_points(data, 2)  # validates the name before any work
    prepare_out_dir(out, overwrite=overwrite, names=("toy.csv", "toy.json", "toy.png"))
    sched = Schedule()
    lin = np.linspace(-1.2, 1.2, grid)
    gx, gy = np.meshgrid(lin, lin)
    pts = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float64)
    results = []
    for k in sizes:
        t0 = time.perf_counter()
        y = toy_points(data, k, seed=seed)
        model = build_model(ModelSpec(kind="mlp", hidden=hidden, depth=depth), (2,), seed=seed)
        model = train(model, y, TrainConfig(steps=steps, batch=128, lr=1e-3, seed=seed), device=device,
                      progress=progress).model.eval()
        exact = OptimalDenoiser(y)
        origin = torch.zeros_like(pts)
        learned_e = L.relative_energy(model, origin.float(), pts.float(), t_energy, schedule=sched)
        exact_e = (exact.energy(pts, t_energy) - exact.energy(origin, t_energy)).numpy()
        delta = 0.25 * min(R.nn_spacing(y, device=device), 0.2)
        basin_ends = L.follow(model, pts.float(), t=t_follow, schedule=sched).cpu().numpy()
        samples = sample(model, (n_samples, 2), sampler="ddpm", steps=250, seed=seed,
                         device=next(model.parameters()).device).cpu().numpy()
        ends = L.follow(model, samples, t=t_follow, schedule=sched).cpu().numpy()
        c = L.census(ends, delta=delta, train=y)
        centres = np.stack([ends[c.component == a].mean(0) for a in range(c.n_attractors)])
        dist = np.linalg.norm(basin_ends[:, None] - y[None], axis=2)  # basin of item j: the dynamics end on j
        basin = np.where(dist.min(1) <= delta, dist.argmin(1), -1)  # −1: ends off every training item
        off = c.training_item < 0
        row = {"K": int(k), "attractors": c.n_attractors, "on_training_items": c.n_training,
               "off_training": int(off.sum()), "samples_in_off_training": float(c.occupancy[off].sum() / n_samples),
               "training_items_reached": int(len(set(c.training_item[~off].tolist()))),
               "energy_corr": float(np.corrcoef(learned_e, exact_e)[0, 1]), "seconds": 0.0}
        row["seconds"] = round(time.perf_counter() - t0, 1)
        echo(f"K={k}: {row['attractors']} attractors, {row['on_training_items']} on training items, "
             f"{row['off_training']} off them holding {row['samples_in_off_training']:.1%} of the samples; "
             f"learned vs exact energy r = {row['energy_corr']:.3f} ({row['seconds']:.0f} s)")
        results.append({**row, "train": y.tolist(), "learned_energy": learned_e.reshape(grid, grid).tolist(),
                        "exact_energy": exact_e.reshape(grid, grid).tolist(),
                        "basin": basin.reshape(grid, grid).tolist(), "samples": samples[:300].tolist(),
                        "attractors_xy": centres.tolist(),
                        "attractor_on_item": c.training_item.tolist()})
    keys = ["K", "attractors", "on_training_items", "off_training", "samples_in_off_training",
            "training_items_reached", "energy_corr", "seconds"]
    with staged_dir(out, overwrite=overwrite) as stage:
        write_text(stage / "toy.csv", ",".join(keys) + "\n" + "".join(
            ",".join(str(r[key]) for key in keys) + "\n" for r in results))
        write_json(stage / "toy.json", {"data": data, "t_energy": t_energy, "t_follow": t_follow, "steps": steps,
                                        "extent": [-1.2, 1.2], "points": results})
        toy_figure(results, stage / "toy.png", extent=(-1.2, 1.2), t=t_energy)
    return [{key: r[key] for key in keys} for r in results]


def toy_figure(results: list, path, *, extent=(-1.2, 1.2), t: int = 50) -> None:
    """One row per K: the learned energy with samples, the exact energy of the training points, and the
    basins of the attractors (training items ●, attractors off the training set ×)."""
    plt = pyplot()

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
    save(fig, path, dpi=100)
