"""A sweep: one diffusion model per training-set size K, then S_eval and S', then the labels
(paper §2-3, Fig. 2). Every point is independent and resumable; the run directory is

    runs/<name>/config.json             the resolved configuration (:class:`mem2gen.io.config.SweepConfig`)
                manifest.json           each point's stage and times
                points/K=<k>/model/     EMA model (diffusers layout for U-Nets)
                             state.safetensors (training checkpoint), eval.npy, synthetic.npy, labels.csv,
                             summary.json, neighbors.png
                results.csv, capacities.json, phase.png, phase.pdf, report.html

Finished points are read back with :class:`mem2gen.runs.run.Run`; where they run is an executor's
business (:mod:`mem2gen.runs.executors`); what is written about them is :mod:`mem2gen.runs.report`'s.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import DamagedFile, Mem2genError, check
from ..io import layout
from ..io import sizes as sizes_mod
from ..io.config import SweepConfig, inert_keys, load_config, parse_grid, read_config_file
from ..io.datasets import load_dataset
from ..io.files import (
    _remove,
    changed_keys,
    check_folder,
    clean_leftovers,
    read_json,
    run_lock,
    write_json,
)
from .compare import compare
from .executors import Sequential, make_executor
from .point import ALL_REPLICATES, PointJob, check_brought, check_brought_set, missing_checks, point_checks
from .report import aggregate
from .run import Run
from .verify import verify

log = logging.getLogger(__name__)
RUN_FILES = (layout.CONFIG, layout.MANIFEST, "results.csv", "capacities.json", "phase.png", "phase.pdf", "report.html",
             "samples.png", "bridge.csv", "transition.json",
             "calibration.png", "landscape.png", "dynamics.csv", "dynamics.json", "dynamics.png",
             *layout.ATTRACTOR_TABLES)
# settings that may change in a run folder: they do not change what its finished points mean
FREE_KEYS = ("name", "sizes", "replicates", "device", "train.checkpoint_every", "train.save_steps", "null_calibration",
             "manifold_check", "quality_check")


def rebuild_report(run_dir, *, echo=print) -> dict:
    """The ``mem2gen report`` command: complete the checks of classified points made before they existed,
    then rebuild results.csv, capacities.json, the phase diagram and report.html."""
    with run_lock(run_dir, command="mem2gen report"):
        for p in Run(run_dir).points():  # points classified before a check existed (or by an older version)
            if p.state == "classified" and missing_checks(p):
                point_checks(p)
        return aggregate(run_dir, echo=echo)


def remove_run_files(run: Path) -> None:
    """Delete what a sweep wrote in ``run`` (its known names), leaving every other file; a symbolic link among
    them is removed as a link (what it points to stays)."""
    for name in RUN_FILES:
        _remove(run / name)
    _remove(run / "jobs")
    points = run / "points"
    if points.is_symlink():  # a link to a folder elsewhere: the link goes, never what it points to
        points.unlink()
    elif points.is_dir():
        for d in points.glob("K=*"):
            _remove(d)
        if not any(points.iterdir()):
            points.rmdir()


def prepare(cfg: SweepConfig, run_dir, *, overwrite: bool = False) -> list[int]:
    """Check the config against the data, the device and the run directory; write config.json. Returns
    the sizes. A run folder accepts a config that differs only in :data:`FREE_KEYS` (more sizes, another
    device, ...); any other difference is refused with the keys named, or, with ``overwrite``, the run's
    own files are removed and it starts again."""
    from ..models.networks import check_device, check_size

    run = Path(run_dir)
    if run.is_symlink() and not run.exists():
        raise Mem2genError(f"{run} is a dangling symbolic link; remove it or choose another --out")
    if run.exists() and not run.is_dir():
        raise Mem2genError(f"{run} is a file; give a directory for the run")
    check_device(cfg.device)
    data = load_dataset(cfg.data, image_size=cfg.image_size)
    n_data = len(data)
    ks = sizes_mod.resolve(list(cfg.sizes) if isinstance(cfg.sizes, tuple) else cfg.sizes, n_data)
    if cfg.model.kind != "optimal" and not cfg.checkpoints:
        check_size(cfg.model, tuple(data.shape[1:]))  # a network that cannot be trained here: before any work
    samples = sum(cfg.sample_bytes(k, data.shape[1:]) for k in ks)
    where = run.resolve()
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    check(samples <= free, f"the samples of this sweep need {samples / 2**30:,.1f} GiB and {where} has "
                           f"{free / 2**30:,.1f} GiB free; lower n_eval, the |S'| factor or cap, or the sizes "
                           "(`mem2gen sweep ... --plan` itemises it)")
    if cfg.checkpoints:  # every size has its model (and its samples, if brought) before any work
        from ..models.networks import model_for_size, samples_for_size

        for k in ks:
            model_for_size(cfg.checkpoints, k)
            if cfg.samples:  # shape, count and range of every brought set (the data's items, S_eval + S')
                check_brought_set(samples_for_size(cfg.samples, k), data.shape[1:], cfg.n_eval + cfg.n_synthetic(k),
                                  k)
    cfg_file = run / layout.CONFIG
    if cfg_file.exists():
        try:
            old = SweepConfig.from_dict(read_json(cfg_file)).to_dict()  # a run of an earlier version reads the same
        except (Mem2genError, ValueError, OSError) as e:
            raise Mem2genError(f"{cfg_file} is not a readable mem2gen sweep config ({str(e)[:120]}); it is left as "
                               "it is: choose another --out") from None
        diff = [k for k in changed_keys(old, cfg.to_dict(), nested=True) if k not in FREE_KEYS]
        if diff:
            if not overwrite:
                raise Mem2genError(f"{run} was made by another config (differs in {', '.join(diff)}); "
                                   "choose another --out or pass --overwrite to start it again")
            remove_run_files(run)
    elif run.exists() and any(p.name != ".lock" for p in run.iterdir()) and not overwrite:
        raise Mem2genError(f"{run} holds files but no sweep config.json; choose another --out or pass --overwrite")
    run.mkdir(parents=True, exist_ok=True)
    try:
        write_json(cfg_file, cfg.to_dict())
    except OSError as e:
        raise Mem2genError(f"cannot write to {run} ({e.strerror}); choose a writable --out") from None
    return ks


def update_manifest(run: Path, ks: list[int], record: dict | None = None) -> dict:
    """manifest.json: each point's stage (read from its files) and, for ``record``'s point, its times."""
    f = run / layout.MANIFEST
    try:
        man = read_json(f) if f.exists() else {"points": {}}
    except DamagedFile:  # derived from the points' files: rebuilt
        man = {"points": {}}
    man["sizes"] = ks
    write_json(f, man)  # the sizes first: the handle below lists the points from them
    for point in Run(run).points():
        p = man["points"].setdefault(str(point.key), {})
        p["state"] = point.state
        if record and str(record.get("K")) == str(point.key):
            p.update({key: round(v, 2) for key, v in record.items() if key != "K"})
    man["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_json(f, man)
    return man


def run_sweep(cfg: SweepConfig, run_dir, *, executor: str = "local", overwrite: bool = False,
              progress: bool = True, echo=print, slurm: dict | None = None, devices: list | None = None) -> dict:
    """Run (or resume) every point, then aggregate and report (results.csv, capacities, report.html).

    ``executor``: local (one point after another, or one worker process per device given several
    ``devices``; by default every visible GPU when there are several), slurm or submitit-local.

    Parameters
    ----------
    cfg : SweepConfig
        The resolved settings.
    run_dir : str or Path
        The run folder (created, or resumed when it holds the same configuration).
    executor, devices, slurm
        Where the points run.
    overwrite : bool
        Replace a run of another configuration in ``run_dir`` (mem2gen's own files only).
    progress, echo
        Progress bars, and where lines go.

    Returns
    -------
    dict
        ``rows`` (results.csv's), ``caps`` (capacities.json's) and the paths written.
    """
    from ..models.networks import check_devices  # torch

    run = check_folder(run_dir)
    check_devices(devices)  # every device of --devices exists, no more workers than cores, before any work
    with run_lock(run, command="mem2gen sweep"):
        ks = prepare(cfg, run, overwrite=overwrite)
        for p in clean_leftovers(run):
            echo(f"removed {p}, left by an interrupted run")
        update_manifest(run, ks)
        handle = Run(run)
        for p in handle.points():
            for problem in verify(p, repair=True):
                echo(f"K={p.key}: {problem}")
        if cfg.samples:  # every brought set the same file as when its point imported it, before any work
            from ..models.networks import samples_for_size

            for p in handle.points():
                check_brought(p, samples_for_size(cfg.samples, p.k), echo=echo)
        todo = [p.key for p in handle.points() if p.state != "classified"]
        n = len(handle.points())
        reps = f" x {cfg.replicates} replicates" if cfg.replicates > 1 else ""
        echo(f"sweep {cfg.name}: {len(ks)} sizes {ks}{reps}; {n - len(todo)} done, {len(todo)} to run ({executor})")
        if cfg.train.ensemble and cfg.replicates > 1:  # one job per K: its replicates trained together
            todo = list(dict.fromkeys(f"{p.k}{ALL_REPLICATES}" for p in handle.points() if p.state != "classified"))
        ex = make_executor(executor, folder=run / "jobs", devices=devices, slurm=slurm, device=cfg.device, echo=echo)
        bars = isinstance(ex, Sequential)  # one point at a time in this process: its progress bars
        job = PointJob(run, progress=progress and bars)
        if todo and not bars:
            echo(f"each point's progress: mem2gen status {run}")
        for record in ex.map(job, todo):
            for r in record.get("members", [record]):
                update_manifest(run, ks, r)
        return rebuild_report(run, echo=echo)  # completes points finished by a version without the checks


def sweep(*, preset: str = "quick", config_file=None, overrides: dict | None = None, out=None, grid=None,
          find_transition: bool = False, executor: str = "local", devices: list | None = None,
          slurm: dict | None = None, overwrite: bool = False,
          progress: bool = True, echo=print, plan: bool = False, plan_gpu: str | None = None) -> dict:
    """The ``mem2gen sweep`` command: a sweep preset, a config file and overrides (dotted keys for nested
    settings) resolved into one :class:`SweepConfig` and run in ``out`` (default ``runs/<name>``).

    ``grid`` (``"KEY=V1,V2"``, or a ``grid:`` mapping in the config file) runs one sweep per value in
    ``out/KEY=V`` (default ``runs/<name>-<KEY>``) and compares them (``out/compare``, the first value
    the reference): an intervention study in one command. Every config is checked before any work.
    ``find_transition`` runs the config's (coarse) sizes, then the paper's schedule around the transition
    they show (:func:`transition_sweep`). ``plan`` runs nothing: it prints what the sweep would cost
    (:mod:`mem2gen.runs.plan`) and returns the plan.

    Parameters
    ----------
    preset : str
        A sweep preset (:data:`mem2gen.io.config.SWEEP_PRESETS`).
    config_file : str or Path, optional
        A YAML/JSON file overriding the preset's keys.
    overrides : dict, optional
        Further keys, dotted for nested settings (``{"train.steps": 500}``).
    out : str or Path, optional
        The run folder (default ``runs/<name>``).
    grid : str or dict, optional
        One sweep per value of one setting, then compared.
    find_transition : bool
        Refine the sizes around the transition the coarse sizes show.
    executor, devices, slurm
        Where the points run (:func:`mem2gen.runs.executors.make_executor`).
    overwrite : bool
        Start again in a folder that holds another configuration's run.
    progress, echo
        Progress bars, and where lines go.
    plan : bool
        Print what the sweep would cost and run nothing.
    plan_gpu : str, optional
        The same for a named GPU (``"H100"``; :data:`mem2gen.runs.plan_gpu.GPUS`), counted, not timed: seconds
        on any machine, no CUDA call, no data files needed.

    Returns
    -------
    dict
        The aggregate (results, capacities, paths; ``report``: report.html), or ``{"plan": ...}``.
    """
    cfg = load_config(preset, config_file, overrides)
    if executor in ("slurm", "submitit-local") and slurm:  # its settings checked before any work
        from .executors import Submitit

        Submitit(Path("."), **slurm)
    if plan or plan_gpu:
        from .plan import plan as make_plan
        from .plan import print_plan

        p = make_plan(cfg, Path(out) if out else Path("runs") / cfg.name, executor=executor, slurm=slurm,
                      device=(devices or [None])[0], gpu=plan_gpu)
        print_plan(p, echo=echo)
        return {"plan": p}
    grid = grid or read_grid(config_file)
    check(not (grid and find_transition), "--grid and --find-transition do not combine; run them one after the other")
    if not grid:
        run = Path(out) if out else Path("runs") / cfg.name
        go = transition_sweep if find_transition else run_sweep
        res = go(cfg, run, executor=executor, overwrite=overwrite, progress=progress, echo=echo, slurm=slurm,
                 devices=devices)
        return {**res, "report": run / "report.html"}

    key, values = parse_grid(grid)
    why = inert_keys(cfg).get(key)
    check(why is None, f"grid over {key}: {why}, so every sweep would be the same")
    base = Path(out) if out else Path("runs") / f"{cfg.name}-{key}"
    members = [(base / f"{key}={v}", load_config(preset, config_file, {**(overrides or {}), key: v,
                                                                         "name": f"{cfg.name}-{key}={v}"}))
               for v in values]
    for run, c in members:  # every member's folder is checked before the first one starts
        if (run / layout.CONFIG).exists():
            prepare(c, run, overwrite=overwrite)
    for i, (run, c) in enumerate(members):
        echo(f"== {key} = {values[i]} ({i + 1}/{len(members)}) ==")
        run_sweep(c, run, executor=executor, overwrite=overwrite, progress=progress, echo=echo, slurm=slurm,
                  devices=devices)
    res = compare([r for r, _ in members], out=base / "compare", overwrite=True, echo=echo)
    return {**res, "report": base / "compare" / "compare.png"}


def transition_points(ks, p_mem, *, tol: float = 0.05) -> tuple[int, int]:
    """A and B of the paper's schedule (App. B.1) from a coarse sweep: A = the largest K where
    P(memorized) ≥ 1 − tol (memorization has not started to fall; the smallest K if there is none),
    B = the smallest K above A where P(memorized) ≤ tol (it has plateaued at ~0)."""
    ks, p = [int(k) for k in ks], [float(x) for x in p_mem]
    full = [k for k, x in zip(ks, p) if x >= 1 - tol]
    a = max(full) if full else min(ks)
    low = [k for k, x in zip(ks, p) if k > a and x <= tol]
    check(len(low) > 0, f"memorization does not fall to {tol} above K = {a} in the coarse sweep "
                        f"({', '.join(f'K={k}: {x:.2f}' for k, x in zip(ks, p))}); there is no transition to refine")
    return a, min(low)


def refine_sizes(a: int, b: int, n: int, *, start: int = 2) -> list[int]:
    """The paper's schedule around a transition: 5 sizes from ``start`` to A, 30 from A to B, 5 from B to
    N (:func:`mem2gen.io.sizes.paper`; without the first 5 when A = ``start``)."""
    if a > start:
        return sizes_mod.paper(a, b, n, start=start)

    return sorted({int(round(x)) for x in np.concatenate([np.linspace(a, b, 30), np.linspace(b, n, 5)[1:]])})


def transition_sweep(cfg: SweepConfig, run_dir, *, echo=print, **kw) -> dict:
    """``mem2gen sweep --find-transition``: run the coarse sweep of ``cfg`` (e.g. ``{doubling: 500}``),
    find A and B (:func:`transition_points`), then add the paper's 5 + 30 + 5 sizes around them to the
    same run folder and run those (transition.json records how). Resumable like any sweep."""
    run = Path(run_dir)
    res = run_sweep(cfg, run, echo=echo, **kw)
    rows = res["rows"]
    a, b = transition_points([r["K"] for r in rows], [r["frac_memorized"] for r in rows], tol=cfg.capacity_tol)
    n = len(load_dataset(cfg.data, image_size=cfg.image_size))
    fine = sorted({r["K"] for r in rows} | set(refine_sizes(a, b, n)))
    write_json(run / "transition.json", {"A": a, "B": b, "tol": cfg.capacity_tol, "coarse": [r["K"] for r in rows],
                                         "rule": "A = largest K with P(mem) >= 1 - tol; B = smallest K > A with "
                                                 "P(mem) <= tol", "sizes": fine})
    echo(f"transition: A = {a}, B = {b}; refining with {len(fine)} sizes")
    return run_sweep(dataclasses.replace(cfg, sizes=tuple(fine)), run, echo=echo, **kw)


def read_grid(config_file) -> dict | None:
    """The ``grid:`` mapping of a sweep config file, if it has one."""
    if not config_file:
        return None

    return read_config_file(config_file).get("grid")
