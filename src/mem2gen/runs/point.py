"""One sweep point: train (or take a brought model), sample S_eval and S', evaluate (the labels, the null and
the checks, :func:`mem2gen.core.evaluate.evaluate`), each stage resumed or skipped when finished; a K's
replicates trained together as one ensemble; the picklable job executors run."""
from __future__ import annotations

import dataclasses
import logging
import time

from ..core.checks import point_manifold
from ..core.evaluate import evaluate
from ..core.null import point_null
from ..core.rule import Rule
from ..errors import check
from ..io import layout
from ..io.data import load_array
from ..io.files import (
    read_json,
    record_digests,
    sha256_of,
)
from .run import Point, Run

log = logging.getLogger(__name__)


def run_point(point: Point, *, progress: bool = True, device: str | None = None) -> dict:
    """Train, sample and classify one point; each stage resumes or is skipped when finished.
    ``device`` overrides the config's (where a point runs does not change its results' meaning)."""
    from ..models.diffusion import Schedule
    from ..models.networks import build_model, weights_digest
    from ..models.sample import generate, record_path
    from ..models.train import train

    cfg, k, d = point.config, point.k, point.path
    device = device or cfg.device
    d.mkdir(parents=True, exist_ok=True)
    times = {}
    data = point.train_set
    t = time.perf_counter()
    if cfg.checkpoints:  # a model brought along: copied into the point (its digest then guards the samples)
        if point.state in ("pending", "started"):
            from ..models.networks import load_model, model_for_size, save_model

            src = model_for_size(cfg.checkpoints, k)
            brought = load_model(src)
            check(tuple(brought.sample_shape) == tuple(data.shape[1:]),
                  f"{src} makes samples of shape {tuple(brought.sample_shape)}; the data's items are "
                  f"{tuple(data.shape[1:])}")
            save_model(brought, d / layout.MODEL, meta={"step": 0, "size": k, "data": cfg.data,
                                                        "source": getattr(brought, "source", str(src))})
        model = point.load_model(device=device)
    elif cfg.model.kind == "optimal":  # the exact ε-model of S_K: nothing to train
        if point.state in ("pending", "started"):
            from ..models.networks import save_model

            save_model(build_model(cfg.model, data.shape[1:], train=data), d / layout.MODEL,
                       meta={"step": 0, "size": k, "data": cfg.data})
        model = point.load_model(device=device)
    else:
        tcfg = dataclasses.replace(cfg.train, seed=point.seed("train"))
        model = build_model(cfg.model, data.shape[1:], seed=point.seed("init"))
        model = train(model, data, tcfg, d, device=device, progress=progress,
                      meta={"size": k, "data": cfg.data}).model
    times["train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    kw = dict(sampler=cfg.sampler, steps=cfg.sample_steps, eta=cfg.eta, batch=cfg.sample_batch,
              device=device, schedule=Schedule(), progress=progress)
    if cfg.samples:  # the brought model's own samples: S_eval first, then S'
        from ..models.networks import samples_for_size
        from ..models.sample import import_samples

        src = samples_for_size(cfg.samples, k)
        made, digest = check_brought(point, src)
        n_eval, n_syn = cfg.n_eval, point.n_synthetic
        ev = import_samples(made[:n_eval], d / layout.EVAL, model, source=f"{src} [0:{n_eval}]", digest=digest)
        syn = import_samples(made[n_eval:n_eval + n_syn], d / layout.SYNTHETIC, model,
                             source=f"{src} [{n_eval}:{n_eval + n_syn}]", digest=digest)
    else:
        ev = generate(model, cfg.n_eval, d / layout.EVAL, seed=point.seed("eval"), **kw)
        syn = generate(model, point.n_synthetic, d / layout.SYNTHETIC, seed=point.seed("synthetic"), **kw)
    times["sample_s"] = time.perf_counter() - t
    t = time.perf_counter()
    if point.state != "classified":
        res = evaluate(ev, data, syn, rule=Rule.of_config(cfg), iterations=cfg.bootstrap_iterations,
                       bootstrap_seed=point.seed("bootstrap"), pixel_range="-1,1", device=device)
        made_from = {"model": weights_digest(model)} | {
            name: read_json(record_path(d / f"{name}.npy"))["sha256"] for name in ("eval", "synthetic")}
        res.write(d, ev, data, syn, extra={"K": k, "made_from": made_from})  # summary.json last
        record_digests(d, [layout.LABELS_CSV, layout.SUMMARY])
    point_checks(point, device=device)
    times["classify_s"] = time.perf_counter() - t
    log.info("K=%s: train %.1f s, sample %.1f s, classify and checks %.1f s", point.key, times["train_s"],
             times["sample_s"], times["classify_s"])
    return {"K": point.key, **times}


def brought_digest(src) -> str:
    """The sha256 of a brought sample set: its file, or its folder's files in name order."""
    import hashlib
    from pathlib import Path

    src = Path(src)
    if src.is_file():
        return sha256_of(src)
    h = hashlib.sha256()
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        h.update(f.relative_to(src).as_posix().encode() + b"\0" + sha256_of(f).encode())
    return h.hexdigest()


def check_brought_set(src, item: tuple, need: int, k: int):
    """A brought sample set (``sweep --samples``) checked before it is used: the data's item shape, enough
    samples for S_eval and S', uint8 or floats in [-1, 1] (not [0, 1], which would be read as dark images).
    Returns the array."""
    from ..io.data import check_values

    made = load_array(src)
    check(made.ndim >= 2 and tuple(made.shape[1:]) == tuple(item),
          f"samples {src}: items of shape {tuple(made.shape[1:])}; the data's items are {tuple(item)}")
    check(len(made) >= need, f"samples {src} holds {len(made)} samples; K = {k} needs n_eval + |S'| = {need}")
    span = check_values(made, name=f"samples {src}", pixels=True)
    check(span is None or not (span[0] >= 0 and span[1] <= 1),
          f"samples {src}: float pixels lie in [{span[0] if span else 0:.3g}, {span[1] if span else 0:.3g}], which "
          "looks like [0, 1]; mem2gen reads float samples as [-1, 1]: give x * 2 - 1 (or uint8)")
    return made


def check_brought(point: Point, src, *, echo=None) -> tuple:
    """:func:`check_brought_set` at a point, and, where the point imported samples before, the same file as
    then (its sha256 is recorded with them; a record of an earlier version without it is said, through
    ``echo``, to be a check that cannot be made). Returns the array and its digest."""
    from ..models.sample import record_path

    made = check_brought_set(src, point.run.dataset.shape[1:], point.config.n_eval + point.n_synthetic, point.k)
    digest = brought_digest(src)
    rec = record_path(point.path / layout.EVAL)
    if rec.exists():
        was = read_json(rec).get("source_sha256")
        if was is None and echo:
            echo(f"K={point.key}: its samples were imported by an earlier version, which did not record {src}'s "
                 "digest: a replaced set cannot be noticed there")
        check(was is None or was == digest,
              f"K={point.key}: {src} changed since its samples were imported (sha256 {(was or '')[:12]}... then, "
              f"{digest[:12]}... now); remove {point.path} to use the new set, or put the old one back")
    return made, digest


def missing_checks(point: Point) -> list[str]:
    """The checks a classified point's config asks for whose file it does not hold yet."""
    cfg = point.config
    wanted = [(cfg.null_calibration, layout.NULL), (cfg.manifold_check, layout.MANIFOLD),
              (cfg.quality_check and cfg.n_eval >= 2, layout.QUALITY)]
    return [name for asked, name in wanted if asked and not (point.path / name).exists()]


def point_checks(point: Point, *, device: str | None = None) -> None:
    """The rule's null, the off-manifold check and the quality score of a classified point, each computed
    once and kept in the point's folder (null.json, manifold.json, quality.json), as its config asks; their
    searches run on ``device`` (default: the config's). Only the missing ones run."""
    device = device or point.config.device
    missing = missing_checks(point)
    if layout.NULL in missing:
        point_null(point, device=device)
    if layout.MANIFOLD in missing:
        point_manifold(point, device=device)
    if layout.QUALITY in missing:
        from ..core.quality import point_quality

        point_quality(point)


def train_replicates(run: Run, k: int, *, device: str | None = None, progress: bool = True) -> float:
    """``train.ensemble``: train every replicate of K not yet trained at once, as one stacked MLP
    (:func:`mem2gen.models.ensemble.train_ensemble`); returns the seconds it took."""
    from ..models.ensemble import train_ensemble
    from ..models.networks import build_model

    cfg, t = run.config, time.perf_counter()
    todo = [p for p in run.points() if p.k == k and p.state in ("pending", "started")]
    if todo:
        for p in todo:
            p.path.mkdir(parents=True, exist_ok=True)
        train_ensemble([build_model(cfg.model, p.train_set.shape[1:], seed=p.seed("init")) for p in todo],
                       [p.train_set for p in todo],
                       [dataclasses.replace(cfg.train, seed=p.seed("train")) for p in todo],
                       [p.path for p in todo], device=device or cfg.device, progress=progress,
                       metas=[{"size": k, "data": cfg.data}] * len(todo))
    return time.perf_counter() - t


ALL_REPLICATES = ".r*"  # a job key "K.r*": every replicate of K, trained as one ensemble (train.ensemble)


class PointJob:
    """``job(key, device=None)``: run the point named ``key`` (K, or "K.r<replicate>"; with
    ``train.ensemble``, "K.r*": every replicate of K, trained together) of one run directory
    (picklable, for executors).
    The run's dataset is loaded once per process, however many points the process runs."""

    def __init__(self, run_dir, *, progress: bool = False):
        self.run_dir, self.progress = str(run_dir), progress
        self._run = None

    def __getstate__(self):
        return {"run_dir": self.run_dir, "progress": self.progress, "_run": None}

    def __call__(self, key, device: str | None = None) -> dict:
        self._run = self._run or Run(self.run_dir)
        if str(key).endswith(ALL_REPLICATES):
            k = int(str(key)[:-len(ALL_REPLICATES)])
            seconds = train_replicates(self._run, k, device=device, progress=self.progress)
            members = [run_point(p, progress=self.progress, device=device) for p in self._run.points()
                       if p.k == k and p.state != "classified"]
            for m in members:  # the ensemble's time, shared
                m["train_s"] += seconds / len(members)
            return {"K": key, "members": members}
        return run_point(self._run.point_of(key), progress=self.progress, device=device)


# --- the whole sweep ---------------------------------------------------------------------------------

# what a sweep writes at the top of its folder: all that --overwrite removes (with points/K=*/ and jobs/)
