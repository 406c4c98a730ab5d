"""``mem2gen train`` and ``mem2gen sample``: one model on S_K, and samples of any model into one .npy."""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import click
import numpy as np

from ..errors import check
from ..io import datasets
from ..io.config import (
    BATCHING,
    INITS,
    SAMPLERS,
    SWEEP_PRESETS,
    ModelSpec,
    TrainConfig,
    check_sampling,
    log_spaced_steps,
)
from ..io.data import SPLITS, subset_indices
from ..io.datasets import load_dataset
from ..io.files import changed_keys, mem2gen_leftover, read_json, run_lock, save_npy, write_json
from ..io.layout import check_path_length
from .options import calls, lib_option


def train_model(data: str, size: int, *, out, kind: str = ModelSpec.kind, arch: str = ModelSpec.arch,
                width: float = ModelSpec.width, dropout: float | None = None, init: str = ModelSpec.init,
                steps: int = TrainConfig.steps,
                batch: int = TrainConfig.batch, lr: float = TrainConfig.lr, ema_decay: float = TrainConfig.ema_decay,
                weight_decay: float = TrainConfig.weight_decay, data_noise: float = TrainConfig.data_noise,
                batching: str = TrainConfig.batching, seed: int = 0, split_seed: int = 3407, split: str = "numpy",
                image_size: int | None = None,
                snapshots: int = 0, bf16: bool = False, device: str | None = None, progress: bool = True) -> dict:
    """Train one DDPM on S_K (the first ``size`` items of the ``split_seed`` permutation of ``data``) into
    ``out``; resumes if interrupted, refuses a folder started with other settings. ``snapshots`` keeps
    that many log-spaced EMA snapshots. ``bf16``: bf16 autocast on a CUDA GPU that computes it natively
    (default fp32 with TF32 matmuls, as the paper presets). ``out/train_indices.npy`` holds the indices
    of S_K in the dataset (``load_dataset(data)[indices]`` is the training set). A sweep preset's
    settings: ``train_model(data, size, out=..., **preset_settings("quick")["train"])``. Returns what was
    trained."""
    from ..models.networks import check_device  # torch

    spec = ModelSpec(kind=kind, arch=arch, width=width, dropout=dropout, init=init)
    check(snapshots >= 0, "snapshots must be 0 or more")
    check(image_size is None or image_size >= 4, f"--image-size {image_size} must be at least 4")
    check(0 <= seed < 2 ** 63 and 0 <= split_seed < 2 ** 63, "seeds must be whole numbers in [0, 2^63)")
    check_device(device)
    cfg = TrainConfig(steps=steps, batch=batch, lr=lr, ema_decay=ema_decay, seed=seed, weight_decay=weight_decay,
                      data_noise=data_noise, bf16=bf16, batching=batching,
                      save_steps=log_spaced_steps(steps, snapshots) if snapshots else ())
    out = Path(out)
    check_path_length(out)
    check(not out.exists() or out.is_dir(), f"--out {out} is a file; give a folder")
    check(not (out.is_symlink() and not out.exists()), f"--out {out} is a dangling symbolic link")
    if out.is_dir() and not (out / "train.json").exists():  # not a training folder of mem2gen's
        foreign = sorted(p.name for p in out.iterdir() if not mem2gen_leftover(p))  # a kill's lock or temporary
        check(not foreign, f"--out {out} holds files mem2gen did not write ({', '.join(foreign[:3])}); "
                           "train into a new or empty folder")
    with run_lock(out, command="mem2gen train"):
        return _train_into(out, data, size, spec, cfg, kind=kind, image_size=image_size, split_seed=split_seed,
                           split=split, seed=seed, device=device, progress=progress)


def _train_into(out: Path, data, size, spec, cfg, *, kind, image_size, split_seed, split, seed, device, progress):
    from ..models.networks import build_model, check_size, n_params, save_model  # torch
    from ..models.train import train

    steps = cfg.steps
    full = load_dataset(data, image_size=image_size)
    check(2 <= size <= len(full), f"training-set size {size} must lie in [2, {len(full)}] (the dataset's items)")
    if kind != "optimal":
        check_size(spec, tuple(full.shape[1:]))  # before anything is written
    indices = subset_indices(len(full), size, seed=split_seed, split=split)
    subset = np.asarray(full[indices])
    settings = json.loads(json.dumps({"data": data, "size": size, "model": spec.__dict__, "train": cfg.__dict__,
                                      "split_seed": split_seed, **({"split": split} if split != "numpy" else {})},
                                     default=list))
    f = out / "train.json"
    if f.exists():
        before = read_json(f)
        # keys added to TrainConfig since that run was started take their defaults (which it used)
        before["train"] = {**json.loads(json.dumps(TrainConfig(steps=steps).__dict__, default=list)),
                           **before.get("train", {})}
        before["model"] = {"init": ModelSpec.init, **before.get("model", {})}
        diff = changed_keys(before, settings)
        check(not diff, f"{out} holds a run with other settings ({', '.join(diff)}); use another --out")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json(f, settings)
    if not (out / "train_indices.npy").exists():
        save_npy(out / "train_indices.npy", indices.astype(np.int64))
    meta = {"data": data, "size": size, "split_seed": split_seed, "split": split}
    model = build_model(spec, subset.shape[1:], seed=seed, train=subset)
    if kind == "optimal":
        save_model(model, out / "model", meta={**meta, "step": 0})
        return {"kind": kind, "params": 0, "size": size, "step": 0, "loss": None, "model": out / "model"}
    res = train(model, subset, cfg, out, device=device, progress=progress, meta=meta)
    return {"kind": kind, "params": n_params(model), "size": size, "step": res.step,
            "loss": res.losses[-1][1] if res.losses else None, "model": out / "model"}


def preset_settings(name: str) -> dict:
    """A sweep preset's settings as keyword arguments: ``{"train": …}`` for :func:`train_model` and
    ``{"sample": …}`` for :func:`sample_model`. The same settings as the preset's points, not the same
    seeds (a sweep derives each point's seeds from its seed and K).

    Parameters
    ----------
    name : str
        A sweep preset's name.

    Returns
    -------
    dict
        ``{"train": {...}, "sample": {...}}``.
    """
    check(name in SWEEP_PRESETS, f"unknown sweep preset {name!r}; use one of {', '.join(SWEEP_PRESETS)}")
    c = SWEEP_PRESETS[name]
    m, t = c.model, c.train
    train = {"data": c.data, "kind": m.kind, "arch": m.arch, "width": m.width, "dropout": m.dropout, "init": m.init,
             "split_seed": c.split_seed, "split": c.split, "image_size": c.image_size,
             **{k: getattr(t, k) for k in ("steps", "batch", "lr", "ema_decay", "weight_decay", "data_noise",
                                           "batching", "bf16")}}
    return {"train": train, "sample": {"sampler": c.sampler, "steps": c.sample_steps, "eta": c.eta,
                                       "batch": c.sample_batch}}


def _with_preset(ctx: click.Context, kw: dict, preset: str | None, part: str) -> dict:
    """``kw`` with every option the user did not give taken from ``preset`` (CLI only)."""
    if preset is None:
        return kw
    given = {k for k in kw if ctx.get_parameter_source(k) not in (click.core.ParameterSource.DEFAULT, None)}
    return {**kw, **{k: v for k, v in preset_settings(preset)[part].items() if k in kw and k not in given}}


DEFAULT_STEPS = {"ddpm": 1000}  # the paper's DDPM: its 1,000 steps; every other sampler: 50


def sample_model(model: str, n: int, *, out, sampler: str = "dpm++sde", steps: int | None = None, eta: float = 0.0,
                 batch: int = 256, seed: int | None = None, device: str | None = None,
                 progress: bool = True) -> np.ndarray:
    """``n`` samples of the model at ``model`` (any folder :func:`mem2gen.models.networks.load_model` reads) into
    one memory-mappable .npy, shard by shard (resumable). The default is DPM-Solver++ SDE with 50 steps
    (seconds to minutes on a CPU), the cheapest sampler whose fractions stayed inside the paper's DDPM-1000
    intervals in the sampler study (BENCHMARKS.md; deterministic DDIM-50 found far less memorization); the
    paper's sampler is ``sampler="ddpm"``, whose steps default to its 1,000. Without a ``seed`` it is derived
    from the output's file name, so that S_eval and S' sampled into two files differ (the same seed would give
    the same samples, and every sample would find itself in S')."""
    from ..models.networks import check_device, load_model  # torch
    from ..models.sample import generate

    out = Path(out)
    check(out.suffix == ".npy", f"--out {out} must end in .npy")
    check_path_length(out)
    check(n >= 1, "the number of samples must be at least 1")
    if seed is None:
        seed = zlib.crc32(out.name.encode())
    check(0 <= seed < 2 ** 63, "the seed must be a whole number in [0, 2^63)")
    if steps is None:
        steps = DEFAULT_STEPS.get(sampler, 50)
    check_sampling(sampler, steps, eta, batch)
    check_device(device)
    with run_lock(out.parent, command="mem2gen sample", name=out.name + ".lock"):
        return generate(load_model(model, device=device), n, out, sampler=sampler, steps=steps, eta=eta,
                        batch=batch, seed=seed, device=device, progress=progress)


PRESET_HELP = "Take every setting not given from this sweep preset (its settings, not its per-point seeds)."


@click.command()
@calls(train_model)
@click.option("--preset", type=click.Choice(list(SWEEP_PRESETS)), help=PRESET_HELP)
@click.option("--data", default=None,
              help="digits | mnist5k | mnist:DIR | fashion-mnist:DIR | cifar10:DIR | lsun-church:DIR | folder:DIR "
                   "| FILE.npy  [required unless --preset]")
@click.option("--size", type=int, required=True, help="Training-set size K (nested subsets of one permutation).")
@lib_option(train_model, "kind", "--kind", type=click.Choice(["mlp", "unet", "optimal"]),
            help="mlp, unet, or optimal (the exact denoiser of S_K: nothing to train).")
@lib_option(train_model, "arch", "--arch", type=click.Choice(list(datasets.ARCHITECTURES)), help="U-Net architecture.")
@lib_option(train_model, "width", "--width", type=float, help="Width multiplier of the network.")
@lib_option(train_model, "dropout", "--dropout", type=float, help="Dropout. [default: the architecture's]")
@lib_option(train_model, "init", "--init", type=click.Choice(INITS),
            help="U-Net initialisation: PyTorch's, or ddpm (variance scaling, as the authors' code).")
@lib_option(train_model, "steps", "--steps", type=int)
@lib_option(train_model, "batch", "--batch", type=int)
@lib_option(train_model, "lr", "--lr", type=float)
@lib_option(train_model, "ema_decay", "--ema-decay", type=float)
@lib_option(train_model, "weight_decay", "--weight-decay", type=float,
            help="AdamW weight decay (0: Adam, the paper's).")
@lib_option(train_model, "data_noise", "--data-noise", type=float,
            help="Std of Gaussian noise added to training images in [-1, 1] (augmentation).")
@lib_option(train_model, "batching", "--batching", type=click.Choice(BATCHING),
            help="sample: batches drawn with replacement; epochs: the authors' (min(batch, K) per epoch).")
@lib_option(train_model, "seed", "--seed", type=int, help="Training seed.")
@lib_option(train_model, "split_seed", "--split-seed", type=int, help="Seed of the permutation that defines S_K.")
@lib_option(train_model, "split", "--split", type=click.Choice(SPLITS),
            help="numpy's permutation, or the authors' (torch.randperm, their random_split).")
@lib_option(train_model, "image_size", "--image-size", type=int, help="Resize folder/LSUN images to this size.")
@lib_option(train_model, "snapshots", "--snapshots", type=int, help="Keep this many log-spaced EMA snapshots.")
@lib_option(train_model, "bf16", "--bf16/--no-bf16", help="bf16 autocast on a GPU that computes bf16 natively.")
@lib_option(train_model, "device", "--device")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--quiet", is_flag=True)
@click.pass_context
def train(ctx, quiet, preset, **kw):
    """Train one DDPM on S_K; resumes from OUT if interrupted. OUT/train_indices.npy: S_K's indices."""
    kw = _with_preset(ctx, kw, preset, "train")
    check(kw["data"] is not None, "give --data (or --preset, whose data is used)")
    r = train_model(**kw, progress=not quiet)
    loss = "" if r["loss"] is None else f" (final loss {r['loss']:.4f})"
    click.echo(f"trained {r['params'] / 1e6:.2f}M-parameter {r['kind']} on K={r['size']} for {r['step']} steps"
               f"{loss}; model in {r['model']}")


@click.command()
@calls(sample_model)
@click.option("--model", required=True, help="A model folder (mem2gen or diffusers UNet2DModel/DDPMPipeline), "
                                             "a training checkpoint state.safetensors, a Hub id in the local cache, "
                                             "or an authors' K.pt (read without running code).")
@click.option("--n", type=int, required=True, help="Number of samples.")
@click.option("--preset", type=click.Choice(list(SWEEP_PRESETS)), help="Take the sampler settings not given from "
                                                                       "this sweep preset.")
@lib_option(sample_model, "sampler", "--sampler", type=click.Choice(SAMPLERS),
            help="dpm++sde: 50 steps, seconds to minutes on a CPU, the fractions of the paper's DDPM-1000 in the "
                 "sampler study; ddpm: the paper's (1,000 steps); ddim: deterministic (finds less memorization).")
@lib_option(sample_model, "steps", "--steps", type=int,
            help="Sampling steps. [default: 1000 (the paper's) for ddpm, 50 for the others]")
@lib_option(sample_model, "eta", "--eta", type=float, help="DDIM eta.")
@lib_option(sample_model, "batch", "--batch", type=int)
@lib_option(sample_model, "seed", "--seed", type=int, help="[default: derived from the --out file name]")
@lib_option(sample_model, "device", "--device")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output .npy (resumable).")
@click.option("--quiet", is_flag=True)
@click.pass_context
def sample(ctx, quiet, preset, **kw):
    """Generate N samples into one memory-mappable .npy, shard by shard (resumable)."""
    kw = _with_preset(ctx, kw, preset, "sample")
    arr = sample_model(**kw, progress=not quiet)
    steps = kw["steps"] or DEFAULT_STEPS.get(kw["sampler"], 50)
    click.echo(f"{len(arr)} samples of shape {arr.shape[1:]} in {kw['out']} ({kw['sampler']}, {steps} steps"
               + (", the paper's sampler)" if (kw["sampler"], steps) == ("ddpm", 1000) else ")"))


COMMANDS = [train, sample]
