"""Generating S_eval and S' to disk: shards with their own seeds, written into one memory-mappable
.npy, resumable shard by shard (a crash loses at most the shard in progress)."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import DamagedFile, check
from ..io.config import check_sampling
from ..io.files import changed_keys, fingerprint, read_json, sha256_of, write_json
from . import diffusion
from .networks import weights_digest

log = logging.getLogger(__name__)


def shard_seed(seed: int, shard: int) -> int:
    return int(np.random.SeedSequence([seed, shard, 0x5A17]).generate_state(1, dtype=np.uint64)[0] >> 1)


def generate(model, n: int, path, *, sampler: str = "ddpm", steps: int = 1000, eta: float = 0.0, batch: int = 256,
             seed: int = 0, device=None, schedule: diffusion.Schedule = diffusion.Schedule(),
             progress: bool = True, stop_after: int | None = None) -> np.ndarray:
    """Write ``n`` samples of ``model`` (floats in [-1, 1]) to ``path`` (.npy) and return it memory-mapped.

    Samples are made in shards of ``batch``; shard s uses seed (seed, s), so the result does not
    depend on interruptions. Work in progress lives in ``path.partial.npy`` and ``path.progress.json``.
    ``stop_after`` ends after that many new shards (as a crash would), for tests.

    Parameters
    ----------
    model : torch.nn.Module
        An ε-model.
    n : int
        Samples to make.
    path : str or Path
        The .npy file.
    sampler, steps, eta
        The sampler (``ddpm``, ``ddim``, ``dpm++sde``), its steps and DDIM's η.
    batch, seed
        Shard size, and the seed every shard's seed derives from.
    device, schedule, progress
        Where it runs, the noise schedule, and a progress bar.
    stop_after : int, optional
        End after this many new shards (tests).

    Returns
    -------
    numpy.memmap
        The ``n`` samples, float32 in [-1, 1].
    """
    check(n >= 1, "the number of samples must be at least 1")
    check_sampling(sampler, steps, eta, batch)
    path = Path(path)
    check(not path.is_dir(), f"{path} is a folder; give a .npy file path")
    shape = tuple(model.sample_shape)
    settings = {"n": n, "shape": list(shape), "sampler": sampler, "steps": steps, "eta": eta, "batch": batch,
                "seed": seed, "model": weights_digest(model)}
    record = record_path(path)
    _orphan_record(path)
    if path.exists():  # finished: reuse it only if the same model and settings made it, and it is intact
        check(record.exists(), f"{path} exists but records nothing of what made it (no {record.name}); delete it "
                               "or choose another path")
        made = read_json(record)
        diff = changed_keys({k: made.get(k) for k in settings}, settings)
        check(not diff, f"{path} was made with other settings (differs in {', '.join(diff)}); delete it (and "
                        f"{record.name}) or choose another path")
        check(made.get("fingerprint") == fingerprint(path), f"{path} does not match its record (damaged or "
                                                             "replaced); delete it and its record to make it again")
        log.info("%s: reusing %d samples (its record matches: same model, sampler and seed)", path, n)
        return np.load(path, mmap_mode="r")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(device).eval()
    need = 4 * n * int(np.prod(shape))
    free = shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free
    check(need < free,
          f"{n} samples of shape {shape} need {need / 1e9:.3g} GB; {path.parent} has {free / 1e9:.3g} GB free")
    partial = path.with_name(path.name + ".partial.npy")
    prog_file = progress_path(path)
    done: list[int] = []
    if prog_file.exists() and partial.exists():
        prog = json.loads(prog_file.read_text())
        check({k: prog.get(k) for k in settings} == settings,
              f"{partial} was started with other settings {({k: prog.get(k) for k in settings})}; "
              "delete it (and its .progress.json) or rerun with those settings")
        done = prog["done"]
        out = np.load(partial, mmap_mode="r+")
        log.info("%s: resuming after %d of %d batches", partial, len(done), -(-n // batch))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(n, *shape))
    shards = [s for s in range(-(-n // batch)) if s not in set(done)]
    n_shards = -(-n // batch)  # the bar moves per denoising step of each shard, so its ETA shows from the first
    bar = tqdm(total=n_shards * steps, initial=len(done) * steps, desc=f"sample {path.name} ({sampler}-{steps})",
               unit="step", disable=not progress, mininterval=1.0)
    with bar:  # closed on errors too, so an error's line is not glued to the bar
        for count, s in enumerate(shards):
            if stop_after is not None and count >= stop_after:
                break
            lo, hi = s * batch, min((s + 1) * batch, n)
            x = diffusion.sample(model, (hi - lo, *shape), schedule=schedule, sampler=sampler, steps=steps, eta=eta,
                                 seed=shard_seed(seed, s), device=device, on_step=lambda: bar.update(1))
            out[lo:hi] = x.float().cpu().numpy()
            out.flush()
            done.append(s)
            write_json(prog_file, {**settings, "done": sorted(done)})
            bar.set_postfix_str(f"{min(n, len(done) * batch)}/{n} images", refresh=False)
    if len(set(done)) < -(-n // batch):  # stopped early: resumable
        return out
    del out
    write_json(record, {**settings, "sha256": sha256_of(partial), "fingerprint": fingerprint(partial),
                        "bytes": partial.stat().st_size})
    os.replace(partial, path)  # the record first: a finished .npy always has one
    prog_file.unlink()
    return np.load(path, mmap_mode="r")


def import_samples(samples: np.ndarray, path, model, *, source: str, digest: str | None = None) -> np.ndarray:
    """Samples ``model`` made elsewhere (``source``: where they came from), written to ``path`` (.npy,
    float32 in [-1, 1]) with the same record as :func:`generate`'s, so a sweep verifies and reuses them as
    its own. A finished file is reused when its record names the same source, model and count.

    Parameters
    ----------
    samples : array
        The samples (floats in [-1, 1] or uint8).
    path : str or Path
        The .npy file to write.
    model : torch.nn.Module
        The model that made them (its weights' digest goes into the record).
    source : str
        Where they came from (a file and slice).
    digest : str, optional
        The sha256 of the file they came from: recorded, so a replaced file is noticed on resume.

    Returns
    -------
    numpy.memmap
        The samples as written.
    """
    path = Path(path)
    raw = np.asarray(samples)
    x = raw.astype(np.float32) / np.float32(127.5) - np.float32(1) if raw.dtype == np.uint8 else \
        raw.astype(np.float32)
    check(x.ndim >= 2 and np.isfinite(x).all() and x.min() >= -1.0001 and x.max() <= 1.0001,
          f"{source}: samples must be uint8 or finite floats in [-1, 1] (the authors' and mem2gen's range)")
    settings = {"n": len(x), "shape": list(x.shape[1:]), "sampler": "imported", "source": source,
                "model": weights_digest(model)} | ({"source_sha256": digest} if digest else {})
    record = record_path(path)
    _orphan_record(path)
    if path.exists() and record.exists():
        made = read_json(record)
        if not changed_keys({k: made.get(k) for k in settings},
                            settings) and made.get("fingerprint") == fingerprint(path):
            return np.load(path, mmap_mode="r")
    partial = path.with_name(path.name + ".partial.npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(partial, np.clip(x, -1, 1))
    write_json(record, {**settings, "sha256": sha256_of(partial), "fingerprint": fingerprint(partial),
                        "bytes": partial.stat().st_size})
    os.replace(partial, path)
    return np.load(path, mmap_mode="r")


def _orphan_record(path: Path) -> None:
    """A record whose sample file is missing. The record is written just before the finished file is
    renamed into place, so mem2gen killed between the two leaves exactly this: the rename is finished. A
    record of mem2gen's with nothing finished behind it is dropped (the samples are made again); a file
    there that is not mem2gen's record is refused, never replaced."""
    record, partial = record_path(path), path.with_name(path.name + ".partial.npy")
    if path.exists() or not record.exists():
        return
    try:
        made = read_json(record)
    except DamagedFile:
        made = None
    check(isinstance(made, dict) and {"sha256", "fingerprint", "bytes", "model"} <= set(made),
          f"{record} exists but {path} does not, and it is not a record mem2gen wrote: mem2gen does not replace "
          "it; move it away or choose another --out")
    if partial.exists() and partial.stat().st_size == made["bytes"] and fingerprint(partial) == made["fingerprint"]:
        os.replace(partial, path)  # killed between writing the record and the rename: finish it
    else:
        record.unlink()


def record_path(path) -> Path:
    """The record beside a finished sample file (``eval.npy`` → ``eval.npy.json``): the settings and model
    that made it, and its checksums."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def progress_path(path) -> Path:
    """Where an unfinished generate() keeps the shards done so far (``eval.npy`` → ``eval.npy.progress.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".progress.json")


def samples_made(path) -> int:
    """How many samples of ``path`` exist: all of a finished file, those of the finished shards of one in
    progress, else 0."""
    path = Path(path)
    if path.exists():
        return len(np.load(path, mmap_mode="r"))
    try:
        prog = read_json(progress_path(path))
        return sum(min(prog["batch"], prog["n"] - s * prog["batch"]) for s in set(prog["done"]))
    except (ValueError, OSError, KeyError, TypeError):
        return 0
