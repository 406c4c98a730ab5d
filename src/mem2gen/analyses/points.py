"""The loop every analysis of a sweep's points shares: lock the run, and for each classified point reuse its
record while it was made with the same settings, else compute it, stamp it with its settings and the
seconds it took and write it atomically (so a long analysis resumes point by point); then the run's own
outputs (figure, tables) and, where asked, its report."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..io import layout
from ..io.files import read_json, run_lock, write_json
from ..runs.report import aggregate
from ..runs.run import Point, Run


def over_points(run_dir, *, command: str, record: str, compute, settings: dict | None = None, sizes=None,
                what: str = "analyse", after=None, report: bool = True, overwrite: bool = False,
                echo=print) -> list[dict]:
    """Run one analysis over a sweep's classified points (all replicates).

    Parameters
    ----------
    run_dir
        The sweep's folder.
    command : str
        The command named in the run's lock (``"mem2gen landscape"``).
    record : str
        The file each point's result is kept in (in the point's folder).
    compute : callable
        ``compute(point) -> dict``: the analysis of one point.
    settings : dict, optional
        What changes a point's result: a record made with other settings is computed again (None: any
        existing record is reused).
    sizes : sequence of int, optional
        Only these K (default: every classified point).
    what : str
        The verb the progress lines and refusals use.
    after : callable, optional
        ``after(run, results)``: the run-level outputs (a figure, tables), under the same lock.
    report : bool
        Rebuild results.csv and report.html afterwards (the report shows the analysis's section).
    overwrite : bool
        Compute every point again.
    echo : callable
        Where progress lines go.

    Returns
    -------
    list of dict
        The points' records, in the order of the points, each with its point's key (``point``: K or "K.rN").
    """
    run = Run(run_dir)
    results = []
    with run_lock(run.path, command=command):
        points = run.classified(sizes, what=what)
        for i, p in enumerate(points):
            f = p.path / record
            old = read_json(f) if f.exists() and not overwrite else None
            if old is not None and (settings is None or old.get("settings") == settings) and \
                    old.get("K", p.k) == p.k and old.get("replicate", p.replicate) == p.replicate:
                results.append({**old, "point": p.key})  # a record copied from another point is made again
                echo(f"[{i + 1}/{len(points)}] K={p.key}: {record} is up to date")
                continue
            t = time.perf_counter()
            res = compute(p)
            res |= ({} if settings is None else {"settings": settings}) | {
                "seconds": round(time.perf_counter() - t, 1)}
            write_json(f, res)
            echo(f"[{i + 1}/{len(points)}] K={p.key}: {res['seconds']:.0f} s")
            results.append({**res, "point": p.key})
        if after:
            after(run, results)
        if report:
            aggregate(run.path, echo=lambda *a: None)
    return results


# --- the models of a point over training time (dynamics, basins, attractors) --------------------------

def snapshot_steps(point: Point) -> list[int]:
    """The steps with a model to read at this point: its finished snapshots and the final model."""
    cfg = point.config
    if cfg.model.kind == "optimal":
        return []
    snaps = point.path / "snapshots"
    steps = {s for s in cfg.train.save_steps if (snaps / f"step-{s}" / layout.MODEL_RECORD).exists()}
    if point.state in ("trained", "sampled", "classified"):
        steps.add(cfg.train.steps)
    return sorted(steps)


def snapshot_path(point: Point, step: int) -> Path:
    return point.path / "model" if step == point.config.train.steps else point.path / "snapshots" / f"step-{step}"


def snapshot_seed(point: Point, step: int, what: int) -> int:
    extra = [point.replicate] if point.replicate else []  # replicate 0 draws what a run without replicates drew
    return int(np.random.SeedSequence([point.config.seed, point.k, 5, step, what, *extra]).generate_state(1)[0])


def draw_samples(model, n: int, *, seed: int, cfg, device) -> np.ndarray:
    from ..models import diffusion
    from ..models.sample import shard_seed

    out = []
    for s, lo in enumerate(range(0, n, cfg.sample_batch)):
        x = diffusion.sample(model, (min(cfg.sample_batch, n - lo), *model.sample_shape), sampler=cfg.sampler,
                             steps=cfg.sample_steps, eta=cfg.eta, seed=shard_seed(seed, s), device=device)
        out.append(x.float().cpu().numpy())
    return np.concatenate(out)
