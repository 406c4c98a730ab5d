"""A sweep: one diffusion model per training-set size K, then S_eval and S', then the labels
(paper §2-3, Fig. 2). Every point is independent and resumable; the run directory is

    runs/<name>/config.json             the resolved configuration
                manifest.json           each point's stages, times
                points/K=<k>/model/     EMA model (diffusers layout for U-Nets) + train state
                             eval.npy, synthetic.npy, labels.csv, summary.json, neighbors.png
                results.csv, capacities.json, phase.png, phase.pdf, report.html
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import sizes as sizes_mod
from .errors import Mem2genError, check
from .files import changed_keys, read_json, write_json
from .models import ModelSpec
from .train import TrainConfig

STAGES = ("trained", "sampled", "classified")


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep depends on; a run directory belongs to exactly one of these."""

    name: str = "quick"
    data: str = "digits"
    image_size: int | None = None
    sizes: object = (2, 8, 32, 128, 512, 1797)  # a list, {"doubling": start} or {"paper": dataset}
    split_seed: int = 3407
    seed: int = 0
    model: ModelSpec = ModelSpec(kind="mlp", hidden=512, depth=3)
    train: TrainConfig = TrainConfig(steps=3000, batch=128, lr=1e-3, checkpoint_every=500)
    sampler: str = "ddpm"  # ancestral, as the paper; DDIM-50 finds far less memorization (BENCHMARKS.md)
    sample_steps: int = 250
    eta: float = 0.0
    sample_batch: int = 512
    n_eval: int = 500
    synthetic_factor: int = 4  # |S'| = factor·K (paper: 4 greyscale, 16 colour)
    synthetic_cap: int | None = None
    distance: str = "l2"
    delta_m: float = 1 / 3
    delta_s: float = 0.28
    capacity_tol: float = 0.05
    bootstrap_iterations: int = 10_000
    device: str | None = None

    def __post_init__(self):
        check(self.sampler in ("ddpm", "ddim"), f"sampler {self.sampler!r}: use ddpm or ddim")
        check(self.n_eval >= 1 and self.synthetic_factor >= 1, "n_eval and synthetic_factor must be positive")
        check(0 < self.capacity_tol < 1, "capacity_tol must lie in (0, 1)")
        from .classify import check_thresholds

        check_thresholds(self.delta_m, self.delta_s, "ratio")

    def n_synthetic(self, k: int) -> int:
        n = self.synthetic_factor * k
        return min(n, self.synthetic_cap) if self.synthetic_cap else n

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sizes"] = list(self.sizes) if isinstance(self.sizes, (list, tuple)) else self.sizes
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: dict, base: "SweepConfig | None" = None) -> "SweepConfig":
        """Build from a (possibly partial) dict over ``base``; unknown keys are an error."""
        base = base or cls()
        d = dict(d)
        nested = {"model": ModelSpec, "train": TrainConfig}
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - known)
        check(not bad, f"unknown config key(s) {bad}; known: {sorted(known)}")
        for key, typ in nested.items():
            if key in d:
                sub = d[key]
                check(isinstance(sub, dict), f"config key {key!r} must be a mapping")
                fields = {f.name for f in dataclasses.fields(typ)}
                bad = sorted(set(sub) - fields)
                check(not bad, f"unknown {key} key(s) {bad}; known: {sorted(fields)}")
                if "save_steps" in sub:
                    sub = {**sub, "save_steps": tuple(sub["save_steps"])}
                d[key] = dataclasses.replace(getattr(base, key), **sub)
        if isinstance(d.get("sizes"), list):
            d["sizes"] = tuple(d["sizes"])
        try:
            return dataclasses.replace(base, **d)
        except TypeError as e:
            raise Mem2genError(f"bad config value: {e}") from None


def _paper(dataset: str, data: str, channels: int) -> SweepConfig:
    from .classify import PRESETS

    colour = channels == 3
    return SweepConfig(
        name=f"paper-{dataset}", data=data, sizes={"paper": dataset}, image_size=64 if dataset == "lsun-church" else None,
        model=ModelSpec(kind="unet", preset=dataset),
        train=TrainConfig(steps={"cifar10": 500_000, "lsun-church": 800_000}.get(dataset, 400_000),
                          batch=64 if dataset == "lsun-church" else 128, lr=2e-4, ema_decay=0.9999,
                          checkpoint_every=5000),
        sampler="ddpm", sample_steps=1000, sample_batch=512, n_eval=10_000, synthetic_factor=16 if colour else 4,
        distance=PRESETS[dataset]["distance"], delta_s=PRESETS[dataset]["delta_s"])


PRESETS = {
    "quick": SweepConfig(),
    "mnist5k": SweepConfig(name="mnist5k", data="mnist5k", sizes=(2, 16, 64, 256, 1024, 5000),
                           model=ModelSpec(kind="unet", preset="mnist-small"),
                           train=TrainConfig(steps=4000, batch=64, lr=1e-3, checkpoint_every=500),
                           n_eval=1000, delta_s=0.28),
    "paper-mnist": _paper("mnist", "mnist:data/mnist", 1),
    "paper-fashion-mnist": _paper("fashion-mnist", "fashion-mnist:data/fashion-mnist", 1),
    "paper-cifar10": _paper("cifar10", "cifar10:data/cifar-10-batches-py", 3),
    "paper-lsun-church": _paper("lsun-church", "lsun-church:data/lsun-church", 3),
}


def load_config(preset: str | None = None, file=None, overrides: dict | None = None) -> SweepConfig:
    """A preset, optionally updated from a YAML/JSON file and then from explicit overrides."""
    check(preset is None or preset in PRESETS, f"unknown preset {preset!r}; use one of {sorted(PRESETS)}")
    cfg = PRESETS[preset or "quick"]
    if file:
        import yaml

        path = Path(file)
        check(path.is_file(), f"config file {path} not found")
        try:
            d = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise Mem2genError(f"{path}: not valid YAML/JSON ({str(e).splitlines()[0]})") from None
        check(isinstance(d, dict), f"{path}: the config must be a mapping of keys to values")
        if "preset" in d:
            cfg = load_config(d.pop("preset"))
        cfg = SweepConfig.from_dict(d, cfg)
    if overrides:
        cfg = SweepConfig.from_dict({k: v for k, v in overrides.items() if v is not None}, cfg)
    return cfg


# --- one point -------------------------------------------------------------------------------------

def point_dir(run: Path, k: int) -> Path:
    return run / "points" / f"K={k}"


def point_state(run: Path, k: int, cfg: SweepConfig) -> str:
    """The last finished stage of point K, read from its artifacts (not from the manifest)."""
    d = point_dir(run, k)
    meta = d / "model" / "mem2gen.json"
    if not (meta.exists() and read_json(meta).get("step") == cfg.train.steps):
        return "started" if d.exists() else "pending"
    if not ((d / "eval.npy").exists() and (d / "synthetic.npy").exists()):
        return "trained"
    if not (d / "summary.json").exists():
        return "sampled"
    return "classified"


def _seed(cfg: SweepConfig, k: int, what: int) -> int:
    return int(np.random.SeedSequence([cfg.seed, k, what]).generate_state(1)[0])


def run_point(run_dir, k: int, *, progress: bool = True, device: str | None = None) -> dict:
    """Train, sample and classify point K of the sweep in ``run_dir``; each stage resumes or is skipped.
    ``device`` overrides the config's (where the point runs does not change its results' meaning)."""
    from .classify import classify, write_outputs
    from .data import load_dataset, nested_subset
    from .diffusion import Schedule
    from .sample import generate
    from .train import train

    run = Path(run_dir)
    cfg = SweepConfig.from_dict(read_json(run / "config.json"))
    if device:
        cfg = dataclasses.replace(cfg, device=device)
    d = point_dir(run, k)
    d.mkdir(parents=True, exist_ok=True)
    times = {}
    data = nested_subset(load_dataset(cfg.data, image_size=cfg.image_size), k, seed=cfg.split_seed)
    t = time.perf_counter()
    tcfg = dataclasses.replace(cfg.train, seed=_seed(cfg, k, 0))
    model = cfg.model.build(data.shape[1:], seed=_seed(cfg, k, 4))
    res = train(model, data, tcfg, d, device=cfg.device, progress=progress, meta={"size": k, "data": cfg.data})
    times["train_s"] = time.perf_counter() - t
    model = res.model
    t = time.perf_counter()
    kw = dict(sampler=cfg.sampler, steps=cfg.sample_steps, eta=cfg.eta, batch=cfg.sample_batch,
              device=cfg.device, schedule=Schedule(), progress=progress)
    ev = generate(model, cfg.n_eval, d / "eval.npy", seed=_seed(cfg, k, 1), **kw)
    syn = generate(model, cfg.n_synthetic(k), d / "synthetic.npy", seed=_seed(cfg, k, 2), **kw)
    times["sample_s"] = time.perf_counter() - t
    t = time.perf_counter()
    if not (d / "summary.json").exists():
        c = classify(ev, data, syn, distance=cfg.distance, delta_m=cfg.delta_m, delta_s=cfg.delta_s,
                     device=cfg.device)
        boot = c.bootstrap(iterations=cfg.bootstrap_iterations, seed=_seed(cfg, k, 3))
        write_outputs(d, c, ev, data, syn, boot=boot, grid=True, extra={"K": k})  # summary.json last
    times["classify_s"] = time.perf_counter() - t
    return {"K": k, **times}


# --- the whole sweep ---------------------------------------------------------------------------------

def prepare(cfg: SweepConfig, run_dir, *, overwrite: bool = False) -> list[int]:
    """Check the config against the data and the run directory; write config.json. Returns the sizes."""
    from .data import load_dataset

    run = Path(run_dir)
    n_data = len(load_dataset(cfg.data, image_size=cfg.image_size))
    ks = sizes_mod.resolve(list(cfg.sizes) if isinstance(cfg.sizes, tuple) else cfg.sizes, n_data)
    cfg_file = run / "config.json"
    if cfg_file.exists():
        diff = changed_keys(read_json(cfg_file), cfg.to_dict())
        if diff:
            if not overwrite:
                raise Mem2genError(f"{run} was made by another config (differs in {', '.join(diff)}); "
                                   "choose another --out or pass --overwrite to start it again")
            shutil.rmtree(run)
    elif run.exists() and any(run.iterdir()) and not overwrite:
        raise Mem2genError(f"{run} holds files but no sweep config.json; choose another --out or pass --overwrite")
    run.mkdir(parents=True, exist_ok=True)
    try:
        write_json(cfg_file, cfg.to_dict())
    except OSError as e:
        raise Mem2genError(f"cannot write to {run} ({e.strerror}); choose a writable --out") from None
    return ks


def update_manifest(run: Path, cfg: SweepConfig, ks: list[int], times: dict | None = None) -> dict:
    f = run / "manifest.json"
    man = read_json(f) if f.exists() else {"points": {}}
    for k in ks:
        p = man["points"].setdefault(str(k), {})
        p["state"] = point_state(run, k, cfg)
        if times and times.get("K") == k:
            p.update({key: round(v, 2) for key, v in times.items() if key != "K"})
    man["sizes"] = ks
    man["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_json(f, man)
    return man


def run_sweep(cfg: SweepConfig, run_dir, *, executor: str = "local", overwrite: bool = False,
              progress: bool = True, echo=print, slurm: dict | None = None, devices: list | None = None) -> dict:
    """Run (or resume) every point, then aggregate and report.

    ``local`` runs the points one after another, or, given several ``devices`` (default: every
    visible GPU when there are several), one worker process per device, each taking the next point.
    """
    run = Path(run_dir)
    ks = prepare(cfg, run, overwrite=overwrite)
    todo = [k for k in ks if point_state(run, k, cfg) != "classified"]
    update_manifest(run, cfg, ks)
    echo(f"sweep {cfg.name}: {len(ks)} sizes {ks}; {len(ks) - len(todo)} done, {len(todo)} to run ({executor})")
    if devices is None and executor == "local":
        import torch

        n_gpu = torch.cuda.device_count()
        devices = [f"cuda:{i}" for i in range(n_gpu)] if n_gpu > 1 else None
    if executor == "local" and devices and len(devices) > 1 and len(todo) > 1:
        for times in _run_on_devices(run, todo, devices, echo):
            update_manifest(run, cfg, ks, times)
    elif executor == "local":
        for i, k in enumerate(todo):
            t = time.perf_counter()
            echo(f"[{i + 1}/{len(todo)}] K={k}")
            times = run_point(run, k, progress=progress)
            update_manifest(run, cfg, ks, times)
            echo(f"    K={k} done in {time.perf_counter() - t:.0f} s")
    elif executor in ("slurm", "submitit-local"):
        from .executors import run_submitit

        for times in run_submitit(run, todo, cluster="slurm" if executor == "slurm" else "local", **(slurm or {})):
            update_manifest(run, cfg, ks, times)
    else:
        raise Mem2genError(f"unknown executor {executor!r}; use local, slurm or submitit-local")
    return aggregate(run, echo=echo)


def _device_worker(run_dir: str, device: str, jobs, results) -> None:
    while True:
        try:
            k = jobs.get_nowait()
        except Exception:  # noqa: BLE001 - queue.Empty from a multiprocessing queue
            return
        try:
            results.put(run_point(run_dir, k, progress=False, device=device))
        except Exception as e:  # noqa: BLE001 - reported to the parent, which raises
            results.put({"K": k, "error": f"{type(e).__name__}: {e}"})


def _run_on_devices(run: Path, todo: list[int], devices: list[str], echo):
    """One process per device; each takes the next unfinished point from a shared queue."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    jobs, results = ctx.Queue(), ctx.Queue()
    for k in todo:
        jobs.put(k)
    procs = [ctx.Process(target=_device_worker, args=(str(run), dev, jobs, results), daemon=True) for dev in devices]
    for p in procs:
        p.start()
    echo(f"running {len(todo)} points on {len(devices)} devices: {', '.join(devices)}")
    errors = []
    for _ in todo:
        r = results.get()
        if "error" in r:
            errors.append(f"K={r['K']}: {r['error']}")
            echo(f"    K={r['K']} failed: {r['error']}")
        else:
            echo(f"    K={r['K']} done")
            yield r
    for p in procs:
        p.join()
    if errors:
        raise Mem2genError("some points failed (run the command again to retry them): " + "; ".join(errors))


def aggregate(run_dir, *, echo=print) -> dict:
    """results.csv, capacities.json, the phase diagram and report.html from the finished points."""
    from .plots import phase_diagram
    from .report import write_report
    from .stats import LABELS, capacities, capacity_bootstrap

    run = Path(run_dir)
    cfg = SweepConfig.from_dict(read_json(run / "config.json"))
    ks = read_json(run / "manifest.json")["sizes"]
    rows = []
    for k in ks:
        f = point_dir(run, k) / "summary.json"
        if f.exists():
            s = read_json(f)
            row = {"K": k, "n_eval": s["n_eval"], "n_synthetic": s["n_synthetic"]}
            for name in LABELS:
                b = s["bootstrap"][name]
                row |= {f"count_{name}": s["counts"][name], f"frac_{name}": s["fractions"][name],
                        f"mean_{name}": b["mean"], f"std_{name}": b["std"], f"lo95_{name}": b["ci95"][0],
                        f"hi95_{name}": b["ci95"][1]}
            rows.append(row)
    check(len(rows) > 0, f"{run}: no point is classified yet; run the sweep first")
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    from .files import write_text

    write_text(run / "results.csv", buf.getvalue())
    K = [r["K"] for r in rows]
    fr = {name: [r[f"frac_{name}"] for r in rows] for name in LABELS}
    caps = capacities(K, fr["memorized"], fr["spurious"], fr["generalized"], tol=cfg.capacity_tol)
    counts = np.array([[r[f"count_{n}"] for n in LABELS] for r in rows])
    caps["bootstrap"] = capacity_bootstrap(K, counts, tol=cfg.capacity_tol, seed=cfg.seed)
    write_json(run / "capacities.json", caps)
    phase_diagram(rows, caps, run / "phase.png", title=f"{cfg.name}: {cfg.data}, {cfg.distance}, "
                                                          f"δm={cfg.delta_m:.3g}, δs={cfg.delta_s:.3g}")
    write_report(run, cfg, rows, caps)
    echo(format_table(rows, caps))
    echo(f"report: {run / 'report.html'}")
    return {"rows": rows, "capacities": caps}


def format_table(rows, caps) -> str:
    lines = [f"{'K':>7} {'memorized':>16} {'spurious':>16} {'generalized':>16}"]
    for r in rows:
        cells = [f"{r[f'mean_{n}']:.3f} ± {r[f'std_{n}']:.3f}" for n in ("memorized", "spurious", "generalized")]
        lines.append(f"{r['K']:>7} " + " ".join(f"{c:>16}" for c in cells))
    lines.append(f"MC = {caps['MC']}, SC = {caps['SC']}, GC = {caps['GC']} (tolerance {caps['tol']})")
    return "\n".join(lines)


def status(run_dir) -> list[tuple[int, str]]:
    run = Path(run_dir)
    check((run / "config.json").exists(), f"{run}: not a sweep directory (no config.json)")
    cfg = SweepConfig.from_dict(read_json(run / "config.json"))
    ks = read_json(run / "manifest.json")["sizes"] if (run / "manifest.json").exists() else []
    return [(k, point_state(run, k, cfg)) for k in ks]
