"""``mem2gen sweep --plan``: what a sweep will cost, before it runs, from a few timed steps on the device
it would use.

Per point: training steps × the measured time of one step (the preset's network and batch on the
device, a few steps after a warm-up, random data of the dataset's shape: no data files needed), the
sampler's network evaluations ((|S_eval| + |S'|) × sampler steps) × the measured time of one image's
evaluation, and the disk for S_eval and S' (float32), the training checkpoint (weights, EMA and Adam's two
moments), the model and the EMA snapshots. The neighbour search's peak memory is bounded by its blocks
(:func:`mem2gen.core.neighbors.nearest`: a 4,096 × 8,192 score block and one chunk of references). For Slurm,
the job array and each job's wall time against the time limit. A run whose disk need exceeds the free
space where it would be written is refused.

Timed steps are the measurement; everything else is arithmetic. The estimate leaves out the null and
off-manifold searches and the bootstrap (seconds at these sizes) and the data loading; how far it fell
from a real sweep is in BENCHMARKS.md.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import check
from ..io import datasets
from ..io import sizes as sizes_mod
from ..io.config import SweepConfig
from ..io.datasets import load_dataset

GiB = 1 << 30


def _load() -> dict:
    """This machine's load while it was timed: the 1-minute load average against its usable cores."""
    import os

    from ..io.threads import usable_cores

    return {"load_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None, "cores": usable_cores()}


def _n_data(cfg: SweepConfig, *, read: bool = True) -> tuple[int, tuple, str]:
    """The dataset's size and item shape: from its files when they are there (and ``read``), else from the
    registry (Table 1's N; the item shape of the paper's configuration)."""
    ds = datasets.DATASETS.get(cfg.data.split(":")[0])
    known = ds is not None and ds.schedule is not None
    if read or not known:
        try:
            data = load_dataset(cfg.data, image_size=cfg.image_size)
            return len(data), tuple(data.shape[1:]), "its files"
        except Exception:  # noqa: BLE001 - no files here: plan from the registry
            pass
    check(known, f"cannot read {cfg.data!r} and the registry has no size for it; give the data to plan with")
    shape = ds.shape if cfg.image_size is None else (ds.shape[0], cfg.image_size, cfg.image_size)
    return int(ds.schedule[-1]), tuple(shape), "the registry (no files read)"


def _timed(fn, repeat: int) -> float:
    fn()  # warm-up (allocations, kernels chosen)
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def measure(cfg: SweepConfig, shape: tuple, *, device: str | None = None, steps: int = 5,
            image_batch: int = 32) -> dict:
    """Seconds per training step (at the full batch) and per image per sampler step, on ``device``, for
    ``cfg``'s network; its parameter count."""
    import torch

    from ..models.diffusion import Schedule, loss
    from ..models.networks import build_model, n_params

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    g = torch.Generator().manual_seed(0)
    fake = torch.rand((max(2, cfg.train.batch), *shape), generator=g) * 2 - 1
    model = build_model(cfg.model, shape, seed=0, train=fake.numpy()).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    out = {"params": n_params(model), "device": str(dev)}
    if cfg.model.kind != "optimal" and not cfg.checkpoints:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
        x0 = fake[:cfg.train.batch].to(dev)
        sched = Schedule()

        def step():
            opt.zero_grad(set_to_none=True)
            loss(model, sched, x0, generator=g).backward()
            opt.step()
            sync()

        out["train_step_s"] = _timed(step, steps)
    else:
        out["train_step_s"] = 0.0
    model.eval()
    x = fake[:image_batch].to(dev) if len(fake) >= image_batch else (torch.rand((image_batch, *shape)) * 2 - 1).to(dev)
    t = torch.full((len(x),), 500, dtype=torch.long, device=dev)

    def evaluate():
        with torch.no_grad():
            model(x, t)
        sync()

    out["eval_image_s"] = _timed(evaluate, steps) / len(x)
    return out


def plan(cfg: SweepConfig, run_dir, *, executor: str = "local", slurm: dict | None = None, device: str | None = None,
         steps: int = 5, gpu: str | None = None) -> dict:
    """Every point's estimated time, disk and memory, the totals, and whether the disk suffices (see the
    module's docstring). Refuses (one line) a run that does not fit on its disk.

    Parameters
    ----------
    cfg : SweepConfig
        The sweep to plan.
    run_dir : str or Path
        Where it would run (its disk is the one checked).
    executor, slurm, device
        Where it would run.
    steps : int
        Training steps timed per network.
    gpu : str, optional
        Plan for this GPU instead of timing this machine (:mod:`mem2gen.runs.plan_gpu`: FLOPs counted, the
        published peak; no CUDA call).

    Returns
    -------
    dict
        Per point and in total: time, disk and memory, with the assumptions behind them.
    """
    from ..models.networks import check_device
    from .plan_gpu import gpu_plan, gpu_spec

    if gpu is not None:
        gpu_spec(gpu)  # a GPU named that the table knows, before anything is read
    else:
        check_device(device or cfg.device)
    n_data, shape, source = _n_data(cfg, read=gpu is None)
    ks = sizes_mod.resolve(list(cfg.sizes) if isinstance(cfg.sizes, tuple) else cfg.sizes, n_data)
    if gpu is not None:
        g = gpu_plan(cfg, ks, shape, gpu)
        m = {"params": g["counted"]["params"], "device": g["product"], "train_step_s": None, "eval_image_s": None}
        rows_s = {r["K"]: r for r in g["points"]}
    else:
        m = measure(cfg, shape, device=device or cfg.device, steps=steps, image_batch=min(cfg.sample_batch, 128))
    d = int(np.prod(shape))
    trains = cfg.model.kind != "optimal" and not cfg.checkpoints
    snapshots = len(cfg.train.save_steps) if trains else 0
    rows = []
    for k in ks:
        n_syn = cfg.n_synthetic(k)
        evals = (cfg.n_eval + n_syn) * (0 if cfg.samples else cfg.sample_steps)
        if gpu is None:
            train_s, sample_s = (cfg.train.steps * m["train_step_s"] if trains else 0.0), evals * m["eval_image_s"]
        else:  # the pessimistic end
            train_s, sample_s = rows_s[k]["train_s_slow"], rows_s[k]["sample_s_slow"]
        weights = 4 * m["params"] * ((4 if trains else 0) + 1 + snapshots)  # checkpoint (4 copies), model, snapshots
        rows.append({"K": k, "replicates": cfg.replicates, "train_steps": cfg.train.steps if trains else 0,
                     "train_s": train_s, "sample_evals": evals, "sample_s": sample_s,
                     "disk_bytes": cfg.sample_bytes(k, shape) + weights * cfg.replicates,
                     "seconds": (train_s + sample_s) * cfg.replicates})
    search_bytes = 4 * (4096 * 8192 + (min(cfg.n_eval, 4096) + 8192) * d)
    total = {"seconds": sum(r["seconds"] for r in rows), "disk_bytes": sum(r["disk_bytes"] for r in rows),
             "search_peak_bytes": search_bytes, "points": len(ks) * cfg.replicates}
    where = Path(run_dir).resolve()
    while not where.exists():
        where = where.parent
    total["free_bytes"] = shutil.disk_usage(where).free
    out = {"sizes": ks, "data": source, "measured": m, "points": rows, "total": total}
    if gpu is not None:
        out["gpu"] = g
    else:
        out["load"] = _load()
    if executor == "slurm":
        limit = (slurm or {}).get("timeout_min") or 24 * 60
        longest = max(r["seconds"] / cfg.replicates for r in rows)
        out["slurm"] = {"array": len(ks) * cfg.replicates, "longest_job_s": longest, "limit_s": limit * 60,
                        "fits": longest * 1.2 <= limit * 60}
    check(total["disk_bytes"] <= total["free_bytes"],
          f"this sweep needs about {total['disk_bytes'] / GiB:.3g} GiB on disk; {where} has "
          f"{total['free_bytes'] / GiB:.3g} GiB free: free space, or lower n_eval, the |S'| factor or the sizes")
    return out


def hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def print_plan(p: dict, echo=print) -> None:
    m, t = p["measured"], p["total"]
    if "gpu" in p:
        from .plan_gpu import print_gpu_plan

        print_gpu_plan(p["gpu"], hms, echo=echo)
        echo(f"disk: {t['disk_bytes'] / GiB:.3g} GiB ({t['free_bytes'] / GiB:.3g} GiB free here), the neighbour "
             f"search's peak {t['search_peak_bytes'] / GiB:.2g} GiB; sizes from {p['data']}")
        return
    echo(f"plan: {len(p['sizes'])} sizes (data: {p['data']}), {m['params'] / 1e6:.2f}M parameters on {m['device']}: "
         f"{m['train_step_s'] * 1e3:.1f} ms per training step, {m['eval_image_s'] * 1e3:.2f} ms per image per "
         "sampler step (measured)")
    echo(f"{'K':>7} {'models':>6} {'train steps':>12} {'train':>9} {'sampler evals':>14} {'sample':>9} {'disk':>10}")
    for r in p["points"]:
        echo(f"{r['K']:>7} {r['replicates']:>6} {r['train_steps']:>12,} {hms(r['train_s']):>9} "
             f"{r['sample_evals']:>14,} "
             f"{hms(r['sample_s']):>9} {r['disk_bytes'] / GiB:>8.3g} G")
    echo(f"total: {hms(t['seconds'])} of one device, {t['disk_bytes'] / GiB:.3g} GiB on disk "
         f"({t['free_bytes'] / GiB:.3g} GiB free), the neighbour search's peak {t['search_peak_bytes'] / GiB:.2g} GiB")
    load = p.get("load") or {}
    if load.get("load_1min") is not None:
        echo(f"timed on this machine now (load {load['load_1min']:.1f} on {load['cores']} cores): other work running "
             "slows the steps timed and the estimate with them; for a GPU not present, --plan-gpu NAME")
    if "slurm" in p:
        s = p["slurm"]
        echo(f"slurm: a job array of {s['array']}, the longest job {hms(s['longest_job_s'])} against a limit of "
             f"{hms(s['limit_s'])}" + ("" if s["fits"] else ": raise --timeout-min (a job stopped by its limit "
                                                           "resumes when the command runs again)"))
