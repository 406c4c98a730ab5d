"""File-to-file tasks: each ``mem2gen`` command is one of these functions (or a library call named in
:mod:`mem2gen.cli`). They validate their settings before any work, write their outputs atomically
(a staged folder renamed into place), and return what the command prints. Defaults live here, in the
signatures; the CLI reads them from there.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import ModelSpec, TrainConfig
from .errors import Mem2genError, check


@dataclass
class Classified:
    """What :func:`classify_files` and :func:`planted_demo` return."""

    result: object  # the Classification
    bootstrap: dict
    files: list
    seconds: float
    agreement: float | None = None  # planted demo only
    checks: dict | None = None  # classify_files: off-manifold fractions and FD/KID against S


def classify_files(eval_path, train_path, synthetic_path=None, *, out, dataset: str | None = None,
                   distance: str | None = None, delta_m: float | None = None, delta_s: float | None = None,
                   rule: str = "ratio", features_metric: str = "l2", lpips_net: str = "alex", lpips_backbone=None,
                   lpips_lin=None, k: int = 5, iterations: int = 10_000, seed: int = 0, device: str | None = None,
                   protocol: str = "paper", pixel_range: str = "auto", grid: bool = True, checks: bool = True,
                   quality: bool = False, overwrite: bool = False, progress: bool = True) -> Classified:
    """Classify the samples in ``eval_path`` against ``train_path`` (S) and ``synthetic_path`` (S'; omit
    it to use the eval set with leave-one-out) and write labels.csv, summary.json and neighbors.png
    into ``out`` (see :func:`mem2gen.classify.classify` for the settings). With ``checks`` (images
    only), also whether each sample is off-manifold (against S, leave-one-out, the threshold from up to
    5,000 of S's items: labels.csv, summary.json); with ``quality``, the set's FD and KID against up to
    2,000 items of S in features of a network trained on S at run time (:mod:`mem2gen.quality`; it costs
    a training run, ~1 min at MNIST's size on one core, so it is asked for, not the default).

    ``protocol="released"`` is the authors' released evaluation in full: the absolute comparison
    (``rule="absolute"``) with one generated set as both S_eval and S' (each sample's own match
    dropped), so no ``synthetic_path``; their l2 path's ranking (by 1/(d + 1e-8) ascending, i.e. the
    farthest items) is not reproduced: neighbours here are always the nearest."""
    from .classify import classify, rule_settings
    from .data import as_samples, load_array, parse_path_key
    from .files import prepare_out_dir, sha256_of, staged_dir
    from .report import write_classification

    check(protocol in ("paper", "released"), f"protocol {protocol!r}: use paper or released")
    if protocol == "released":
        check(synthetic_path is None, "the released protocol uses the evaluation set as S' too: omit --synthetic")
        check(rule in ("ratio", "absolute"), f"unknown rule {rule!r}")
        rule = "absolute"
    distance, delta_m, delta_s = rule_settings(dataset=dataset, distance=distance, delta_m=delta_m, delta_s=delta_s,
                                               rule=rule)
    check(iterations >= 1, "bootstrap iterations must be at least 1")
    check(seed >= 0 and k >= 2, "the seed must be >= 0 and k >= 2")
    paths = {"eval": eval_path, "train": train_path} | ({"synthetic": synthetic_path} if synthetic_path else {})
    input_files = [parse_path_key(spec)[0] for spec in paths.values()]
    prepare_out_dir(out, overwrite=overwrite, inputs=input_files)
    arrays = {name: load_array(spec) for name, spec in paths.items()}
    t0 = time.perf_counter()
    res = classify(arrays["eval"], arrays["train"], arrays.get("synthetic"), distance=distance, delta_m=delta_m,
                   delta_s=delta_s, rule=rule, k=k, features_metric=features_metric, lpips_net=lpips_net,
                   lpips_backbone=lpips_backbone, lpips_lin=lpips_lin, device=device, pixel_range=pixel_range,
                   progress=progress)
    seconds = time.perf_counter() - t0
    boot = res.bootstrap(iterations=iterations, seed=seed)
    extra = {"inputs": {n: {"path": str(s), "sha256": sha256_of(parse_path_key(s)[0])} for n, s in paths.items()},
             "protocol": protocol,
             "bootstrap_iterations": iterations, "bootstrap_seed": seed, "seconds": round(seconds, 3)}
    ev = as_samples(arrays["eval"], name="eval")
    syn = as_samples(arrays["synthetic"], name="synthetic") if synthetic_path else ev
    tr = as_samples(arrays["train"], name="train")
    off = None
    images = distance != "features" and ev.ndim == 4 and min(ev.shape[2:]) >= 4 and len(ev) >= 2 and len(tr) >= 4
    check(not quality or images, "the quality score needs images (at least 4x4, 2 samples, 4 training items)")
    if checks and images:
        from .calibrate import off_manifold

        off = off_manifold(ev, tr, None, distance=distance, device=device, n_real=5000, seed=seed,
                           sample_distance=res.d_train[:, 0])  # eq 4's search already found it
        extra["off_manifold"] = {"fraction": float(off["off"].mean()), "reference": off["reference"],
                                 "quantile": off["quantile"], "threshold": off["threshold"],
                                 **{name: float(off["off"][res.labels == j].mean()) if (res.labels == j).any() else None
                                    for j, name in enumerate(("memorized", "spurious", "generalized"))}}
    if quality:
        from .quality import quality as score, train_features

        ref = tr[np.sort(np.random.default_rng(seed).choice(len(tr), 2000, replace=False))] if len(tr) > 2000 else tr
        extra["quality"] = {**score(ev, ref, train_features(tr, seed=seed), seed=seed),
                            "reference": "S" if len(tr) <= 2000 else "2,000 items of S"}
    from .files import run_lock

    with run_lock(Path(out).resolve().parent, command="mem2gen classify", name=Path(out).name + ".lock"), \
            staged_dir(out, overwrite=overwrite, inputs=input_files) as stage:  # feature vectors: no grid
        files = write_classification(stage, res, ev, tr, syn, boot=boot, extra=extra,
                                     grid=grid and distance != "features")
        if off is not None:
            from .files import add_csv_columns

            add_csv_columns(stage / "labels.csv", {"off_manifold": off["off"].astype(int).tolist(),
                                                   "d_real": [repr(float(v)) for v in off["distance"]]})
    return Classified(res, boot, files, seconds,
                      checks={k: extra[k] for k in ("off_manifold", "quality") if k in extra} or None)


def planted_demo(*, out="runs/demo", overwrite: bool = False) -> Classified:
    """Classify a built-in planted example (digits) whose right labels are known by construction,
    writing the three sets beside the classification so that ``mem2gen classify`` can be tried on them."""
    from .classify import classify
    from .examples import planted
    from .files import save_npy, staged_dir
    from .report import write_classification

    ev, tr, syn, truth = planted()
    res = classify(ev, tr, syn)
    boot = res.bootstrap()
    agreement = float((res.labels == truth).mean())
    with staged_dir(out, overwrite=overwrite) as stage:
        for name, a in (("eval", ev), ("train", tr), ("synthetic", syn)):
            save_npy(stage / f"{name}.npy", a)
        files = write_classification(stage, res, ev, tr, syn, boot=boot, grid=True,
                                     extra={"planted_truth_agreement": agreement})
    return Classified(res, boot, files, 0.0, agreement)


def train_model(data: str, size: int, *, out, kind: str = ModelSpec.kind, arch: str = ModelSpec.arch,
                width: float = ModelSpec.width, dropout: float | None = None, steps: int = TrainConfig.steps,
                batch: int = TrainConfig.batch, lr: float = TrainConfig.lr, ema_decay: float = TrainConfig.ema_decay,
                weight_decay: float = TrainConfig.weight_decay, data_noise: float = TrainConfig.data_noise,
                seed: int = 0, split_seed: int = 3407, split: str = "numpy", image_size: int | None = None,
                snapshots: int = 0, device: str | None = None, progress: bool = True) -> dict:
    """Train one DDPM on S_K (the first ``size`` items of the ``split_seed`` permutation of ``data``) into
    ``out``; resumes if interrupted, refuses a folder started with other settings. ``snapshots`` keeps
    that many log-spaced EMA snapshots. Returns what was trained."""
    from .files import run_lock
    from .models import check_device
    from .train import log_spaced_steps

    spec = ModelSpec(kind=kind, arch=arch, width=width, dropout=dropout)
    check(snapshots >= 0, "snapshots must be 0 or more")
    check(image_size is None or image_size >= 4, f"--image-size {image_size} must be at least 4")
    check(seed >= 0 and split_seed >= 0, "seeds must be whole numbers >= 0")
    check_device(device)
    cfg = TrainConfig(steps=steps, batch=batch, lr=lr, ema_decay=ema_decay, seed=seed, weight_decay=weight_decay,
                      data_noise=data_noise,
                      save_steps=log_spaced_steps(steps, snapshots) if snapshots else ())
    out = Path(out)
    check(not out.exists() or out.is_dir(), f"--out {out} is a file; give a folder")
    check(not (out.is_symlink() and not out.exists()), f"--out {out} is a dangling symbolic link")
    with run_lock(out, command="mem2gen train"):
        return _train_into(out, data, size, spec, cfg, kind=kind, image_size=image_size, split_seed=split_seed,
                           split=split, seed=seed, device=device, progress=progress)


def _train_into(out: Path, data, size, spec, cfg, *, kind, image_size, split_seed, split, seed, device, progress):
    import json

    from .data import nested_subset
    from .datasets import load_dataset
    from .files import changed_keys, read_json, write_json
    from .models import build_model, n_params, save_model
    from .train import train

    steps = cfg.steps
    subset = nested_subset(load_dataset(data, image_size=image_size), size, seed=split_seed, split=split)
    settings = json.loads(json.dumps({"data": data, "size": size, "model": spec.__dict__, "train": cfg.__dict__,
                                      "split_seed": split_seed, **({"split": split} if split != "numpy" else {})},
                                     default=list))
    f = out / "train.json"
    if f.exists():
        before = read_json(f)
        # keys added to TrainConfig since that run was started take their defaults (which it used)
        before["train"] = {**json.loads(json.dumps(TrainConfig(steps=steps).__dict__, default=list)),
                           **before.get("train", {})}
        diff = changed_keys(before, settings)
        check(not diff, f"{out} holds a run with other settings ({', '.join(diff)}); use another --out")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json(f, settings)
    meta = {"data": data, "size": size, "split_seed": split_seed, "split": split}
    model = build_model(spec, subset.shape[1:], seed=seed, train=subset)
    if kind == "optimal":
        save_model(model, out / "model", meta={**meta, "step": 0})
        return {"kind": kind, "params": 0, "size": size, "step": 0, "loss": None, "model": out / "model"}
    res = train(model, subset, cfg, out, device=device, progress=progress, meta=meta)
    return {"kind": kind, "params": n_params(model), "size": size, "step": res.step,
            "loss": res.losses[-1][1] if res.losses else None, "model": out / "model"}


def sample_model(model: str, n: int, *, out, sampler: str = "ddpm", steps: int = 1000, eta: float = 0.0,
                 batch: int = 256, seed: int | None = None, device: str | None = None,
                 progress: bool = True) -> np.ndarray:
    """``n`` samples of the model at ``model`` (any folder :func:`mem2gen.models.load_model` reads) into
    one memory-mappable .npy, shard by shard (resumable). Without a ``seed`` it is derived from the
    output's file name, so that S_eval and S' sampled into two files differ (the same seed would give
    the same samples, and every sample would find itself in S')."""
    from .files import run_lock
    from .models import check_device, load_model
    from .sample import generate

    out = Path(out)
    check(out.suffix == ".npy", f"--out {out} must end in .npy")
    check(n >= 1, "the number of samples must be at least 1")
    from .config import check_sampling

    if seed is None:
        import zlib

        seed = zlib.crc32(out.name.encode())
    check(seed >= 0, "the seed must be a whole number >= 0")
    check_sampling(sampler, steps, eta, batch)
    check_device(device)
    with run_lock(out.parent, command="mem2gen sample", name=out.name + ".lock"):
        return generate(load_model(model, device=device), n, out, sampler=sampler, steps=steps, eta=eta,
                        batch=batch, seed=seed, device=device, progress=progress)


def hopfield_capacity(*, out, ns: tuple = (100, 200, 400, 800), trials: int = 6, probes: int = 20, seed: int = 0,
                      overwrite: bool = False) -> dict:
    """Retrieval overlap against the load α = K/N for several N, α_c(N) and its extrapolation, and a
    census of end states from random starts; retrieval.csv, census.csv, summary.json, hopfield.png."""
    from .files import staged_dir, write_csv, write_json
    from .memory import capacity_experiment, spurious_census
    from .plots import hopfield_figure

    check(len(ns) > 0 and min(ns) >= 20, "give network sizes of at least 20")
    check(seed >= 0, "the seed must be a whole number >= 0")
    check(trials >= 1 and probes >= 1, "trials and probes must be at least 1")
    from .files import prepare_out_dir

    prepare_out_dir(out, overwrite=overwrite)
    exp = capacity_experiment(list(ns), trials=trials, probes=probes, seed=seed)
    census = spurious_census(max(ns), [0.02, 0.05, 0.1, 0.138, 0.2, 0.3], seed=seed)
    with staged_dir(out, overwrite=overwrite) as stage:
        write_csv(stage / "retrieval.csv", [{"N": r["N"], "alpha": a, "overlap": m, "success": s}
                                            for r in exp["by_n"] for a, m, s in zip(
                                                r["curve"]["alpha"], r["curve"]["overlap"], r["curve"]["success"])])
        write_csv(stage / "census.csv", census)
        write_json(stage / "summary.json", {"alpha_c_by_n": {r["N"]: r["alpha_c"] for r in exp["by_n"]},
                                            "alpha_c_infinite": exp["alpha_c_infinite"], "census": census})
        hopfield_figure(exp, census, stage / "hopfield.png")
    return {"experiment": exp, "census": census, "N": max(ns)}


def dense_memory(*, out, data: str = "digits", betas: tuple = (20.0, 60.0, 200.0),
                 sizes: tuple = (2, 8, 32, 128, 512, 1797), n_eval: int = 500, steps: int = 50, delta_s: float = 0.28,
                 seed: int = 0, overwrite: bool = False) -> dict:
    """The memory-side Figure 2: DenseAM retrievals labelled memorized / spurious / generalized per
    (β, K), plus noisy-cue retrieval and 3-mixture fixed points; results.csv, capacity.csv, dense.png."""
    from .data import nested_subset, to_float
    from .datasets import load_dataset
    from .files import prepare_out_dir, staged_dir, write_csv
    from .memory.phase import capacity_table, dense_phase
    from .plots import dense_figure

    from .config import check_thresholds

    check(len(betas) > 0 and all(0 < b < float("inf") for b in betas), "beta values must be positive and finite")
    check(len(sizes) > 0 and min(sizes) >= 2, "give sizes of at least 2")
    check_thresholds(1 / 3, delta_s, "ratio")
    check(n_eval >= 1 and steps >= 1, "n_eval and steps must be at least 1")
    check(seed >= 0, "the seed must be a whole number >= 0")
    prepare_out_dir(out, overwrite=overwrite)
    flat = to_float(nested_subset(load_dataset(data), max(sizes)), np.float64)
    rows = dense_phase(flat, list(sizes), list(betas), n_eval=n_eval, steps=steps, delta_s=delta_s, seed=seed)
    caps = capacity_table(flat, list(sizes), list(betas), steps=max(steps, 50), seed=seed)
    with staged_dir(out, overwrite=overwrite) as stage:
        write_csv(stage / "results.csv", rows)
        write_csv(stage / "capacity.csv", caps)
        dense_figure(rows, stage / "dense.png")
    return {"rows": rows, "capacity": caps}


def landscape(run_dir, *, sizes: tuple | None = None, n_samples: int = 200, trials: int = 10, steps: int = 20,
              t_energy: int = 100, t_follow: int = 50, seed: int = 0, device: str | None = None,
              overwrite: bool = False, progress: bool = True, echo=print) -> list[dict]:
    """The attractor landscape of every classified point of a sweep (or of ``sizes``): recovery times
    and basin radii, energy profiles, curvature, attractor census against |S'|, mixture test
    (:func:`mem2gen.landscape.analyze`). Each point's ``landscape.json`` is kept and reused while its
    settings stay the same; then ``landscape.png`` and the report's Landscape section are rebuilt."""
    from .files import run_lock
    from .landscape import LandscapeConfig
    from .models import check_device
    from .run import Run

    cfg = LandscapeConfig(n_samples=n_samples, trials=trials, steps=steps, t_energy=t_energy, t_follow=t_follow,
                          seed=seed)
    check_device(device)
    run = Run(run_dir)
    with run_lock(run.path, command="mem2gen landscape"):
        return _landscape(run, cfg, sizes=sizes, device=device, overwrite=overwrite, progress=progress, echo=echo)


def _landscape(run, cfg, *, sizes, device, overwrite, progress, echo) -> list[dict]:
    from .files import read_json, write_json
    from .landscape import analyze
    from .plots import landscape_figure, point_landscape_figure
    from .report import aggregate

    settings = json.loads(json.dumps(cfg.__dict__, default=list))
    results = []
    for p in run.classified(sizes, what="analyse"):
        f = p.path / "landscape.json"
        if f.exists() and not overwrite and read_json(f).get("settings") == settings:
            echo(f"K={p.k}: landscape.json is up to date")
            results.append(read_json(f))
            if not (p.path / "landscape.png").exists():
                point_landscape_figure(results[-1], p.eval, p.train_set, p.path / "landscape.png")
            continue
        t = time.perf_counter()
        res = analyze(p, cfg, device=device, progress=progress)
        res["seconds"] = round(time.perf_counter() - t, 1)
        point_landscape_figure(res, p.eval, p.train_set, p.path / "landscape.png")
        write_json(f, res)
        echo(f"K={p.k}: analysed in {res['seconds']:.0f} s")
        results.append(res)
    landscape_figure(results, run.path / "landscape.png")
    aggregate(run.path, echo=lambda *a: None)
    return results


def calibrate(run_dir, *, sizes: tuple | None = None, overwrite: bool = False, echo=print) -> list[dict]:
    """The rule's calibration at every classified point of a sweep (or of ``sizes``): eq 5's fractions as
    S' grows (its prefixes, m = K, 2K, 4K, …) and over a δs grid, for the model's samples and for the
    null (held-out real data); ``calibration.json`` per point, ``calibration.png`` and the report's
    Calibration section (:func:`mem2gen.calibrate.point_calibration`)."""
    from .files import run_lock
    from .run import Run

    run = Run(run_dir)
    with run_lock(run.path, command="mem2gen calibrate"):
        return _calibrate(run, sizes=sizes, overwrite=overwrite, echo=echo)


def _calibrate(run, *, sizes, overwrite, echo) -> list[dict]:
    from .calibrate import point_calibration
    from .files import read_json, write_json
    from .plots import calibration_figure
    from .report import aggregate

    results = []
    for p in run.classified(sizes, what="calibrate"):
        f = p.path / "calibration.json"
        if f.exists() and not overwrite:
            results.append(read_json(f))
            continue
        t = time.perf_counter()
        res = point_calibration(p)
        write_json(f, res)
        echo(f"K={p.k}: calibrated in {time.perf_counter() - t:.0f} s")
        results.append(res)
    calibration_figure(results, run.path / "calibration.png", delta_s=run.config.delta_s)
    aggregate(run.path, echo=lambda *a: None)
    return results


def bridge(run_dir, *, sizes: tuple | None = None, ts: tuple = (50, 100, 300), n_samples: int = 100,
           seed: int = 0, echo=print) -> list[dict]:
    """Eqs 10-13 measured on a sweep: how close is each point's learned energy to the DenseAM energy of
    its own training set? For ``n_samples`` samples x of S_eval and training items y (below), the
    trained model's E_t(x) − E_t(y) (a line integral of its ε, :func:`mem2gen.landscape.relative_energy`;
    y is x's second-nearest training item, x2 of eq 4, so that a copy of x1 still has a difference)
    against the same difference of the exact energy of S_K — eq 11, which is the DenseAM energy (eq 10)
    in its distance form at β(t) = √ᾱ_t/(1 − ᾱ_t) (:meth:`mem2gen.diffusion.OptimalDenoiser.energy`).
    Per K and t: the correlation, the median relative error and how often the signs agree. Writes
    ``bridge.json`` per point and ``bridge.csv`` in the run folder."""
    import torch

    from .diffusion import OptimalDenoiser
    from .files import run_lock, write_csv, write_json
    from .landscape import relative_energy
    from .neighbors import nearest
    from .run import Run

    check(len(ts) > 0 and all(0 < t < 1000 for t in ts), "t values must lie in (0, 1000)")
    check(n_samples >= 2 and seed >= 0, "n_samples must be at least 2 and the seed >= 0")
    run = Run(run_dir)
    rows = []
    with run_lock(run.path, command="mem2gen memory bridge"):
        for p in run.classified(sizes, what="compare with the DenseAM energy"):
            train = p.train_set
            pick = np.sort(np.random.default_rng([seed, p.k]).permutation(len(p.eval))[:n_samples])
            x = np.asarray(p.eval[pick], dtype=np.float32)
            y = np.asarray(train[nearest(x, train, 2).indices[:, 1]], dtype=np.float32)  # x2: a copy of x1 still differs
            exact = OptimalDenoiser(train)
            res = {"K": p.k, "n": int(len(x)), "by_t": []}
            for t in ts:
                learned = relative_energy(p.model, y, x, int(t))
                xt, yt = torch.from_numpy(x).double(), torch.from_numpy(y).double()
                truth = (exact.energy(xt, int(t)) - exact.energy(yt, int(t))).numpy()
                ok = np.abs(truth) > 1e-9
                rel = np.abs(learned[ok] - truth[ok]) / np.abs(truth[ok])
                corr = float(np.corrcoef(learned, truth)[0, 1]) if np.std(learned) > 0 and np.std(truth) > 0 else None
                row = {"K": p.k, "t": int(t), "corr": corr, "median_rel_error": float(np.median(rel)) if ok.any() else None,
                       "sign_agreement": float(np.mean(np.sign(learned) == np.sign(truth))),
                       "median_exact": float(np.median(truth)), "median_learned": float(np.median(learned))}
                res["by_t"].append(row)
                rows.append(row)
                fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
                echo(f"K={p.k:<6} t={t:<4} corr {fmt(corr, '.3f')}  median relative error "
                     f"{fmt(row['median_rel_error'], '.3g')}  signs agree {row['sign_agreement']:.2f}")
            write_json(p.path / "bridge.json", res)
        write_csv(run.path / "bridge.csv", rows)
    return rows


__all__ = ["Classified", "Mem2genError", "bridge", "calibrate", "classify_files", "dense_memory", "hopfield_capacity", "landscape",
           "planted_demo", "sample_model", "train_model"]
