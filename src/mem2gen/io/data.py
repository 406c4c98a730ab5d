"""Data: sample sets from files (.npy, .npz, image folders), their layout and checks.

Sample sets are kept as they are on disk (uint8 stays uint8, .npy is memory-mapped) and turned
into float chunk by chunk where they are used, so a set of hundreds of thousands of images never
has to sit in memory as float.

Conventions: images are (N, C, H, W); uint8 pixels map to [-1, 1] by x/127.5 - 1; float
pixels must already be in [-1, 1]. Feature vectors are (N, D) and are used as given.
"""
from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from ..errors import Mem2genError, check

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
MAX_PIXELS = 1 << 26  # per image: a header claiming more is refused before any pixel is decoded
_CHUNK = 65536


def load_array(spec, *, key: str | None = None, mmap: bool = True) -> np.ndarray:
    """Load a sample set from ``.npy`` (memory-mapped), ``.npz`` (``file.npz:KEY``, its ``samples`` array as
    the authors' files hold it, or its only array; nothing in it is unpickled), a folder of ``.npz`` files
    (their ``samples``, concatenated in name order: the authors' generated batches) or an image folder."""
    path, spec_key = parse_path_key(spec)
    path, key = Path(path), key or spec_key
    check(path.exists(), f"{path}: no such file or folder")
    if path.is_dir():
        batches = sorted(path.glob("*.npz"))
        if batches and not any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
            return np.concatenate([load_array(f, key=key) for f in batches])
        return load_image_folder(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = list(z.keys())
                if key is None:
                    check(len(names) == 1 or "samples" in names, f"{path} holds arrays {names}; name one as {path}:KEY")
                    key = "samples" if "samples" in names else names[0]
                check(key in names, f"{path} has no array {key!r}; it holds {names}")
                try:
                    return z[key]
                except ValueError as e:
                    if "allow_pickle" not in str(e):
                        raise
                    raise Mem2genError(f"{path}: {key!r} holds pickled objects, which mem2gen never unpickles "
                                       "(they could run code); name a plain array as FILE.npz:KEY") from None
    except Mem2genError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise Mem2genError(f"{path}: unreadable or truncated array file ({e}); re-create it") from None
    raise Mem2genError(f"{path}: unknown format {suffix!r}; use .npy, .npz or a folder of PNG/JPEG images")


def load_image_folder(path) -> np.ndarray:
    """All images of a folder (sorted by name) as uint8 (N, C, H, W); they must share one size."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    check(len(files) > 0, f"{path}: no PNG/JPEG images in this folder")
    images = []
    for f in files:
        try:
            with Image.open(f) as im:  # reads the header only
                w, h = im.size
                check(w * h <= MAX_PIXELS, f"{f}: its header claims {w} x {h} pixels; mem2gen reads images of at most "
                                           f"{MAX_PIXELS:,} pixels (a sample set's images are small)")
                if im.mode.startswith("I"):  # 16-bit greyscale ("I;16*", or "I" holding 0..65535): scale, not clip
                    a = np.asarray(im).astype(np.float64)
                    deep = im.mode.startswith("I;16") or a.max() > 255
                    images.append(np.clip(np.rint(a / 257.0 if deep else a), 0, 255).astype(np.uint8))
                    continue
                im = im.convert("L") if im.mode in ("L", "LA", "1") else im.convert("RGB")
                images.append(np.asarray(im))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
            raise Mem2genError(f"{f}: unreadable image ({e})") from None
    shapes = {im.shape for im in images}
    sizes = {s[:2] for s in shapes}
    check(len(sizes) == 1, f"{path}: images differ in size {sorted(sizes)}; resize them to one size")
    check(len(shapes) == 1, f"{path}: images differ in channels (greyscale and colour mixed); convert them to one mode")
    arr = np.stack(images)
    return arr[:, None] if arr.ndim == 3 else arr.transpose(0, 3, 1, 2)


def parse_path_key(spec: str) -> tuple[str, str | None]:
    """Split ``file.npz:KEY`` into the path and the array name."""
    head, sep, tail = str(spec).rpartition(":")
    if sep and head.lower().endswith(".npz"):
        return head, tail
    return str(spec), None


def as_samples(arr: np.ndarray, *, name: str, images: bool = True) -> np.ndarray:
    """Bring a set to (N, C, H, W) images or (N, D) vectors; no copy of the data."""
    arr = np.asarray(arr) if not isinstance(arr, np.ndarray) else arr
    check(arr.dtype == np.uint8 or np.issubdtype(arr.dtype, np.floating),
          f"{name}: dtype {arr.dtype} is not supported; use uint8 pixels or float values")
    check(arr.ndim >= 2 and arr.shape[0] > 0, f"{name}: empty set or no sample axis (shape {arr.shape})")
    check(all(s > 0 for s in arr.shape), f"{name}: empty set (shape {arr.shape})")
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim == 4:
        if arr.shape[1] in (1, 3) and arr.shape[3] not in (1, 3):
            return arr
        if arr.shape[3] in (1, 3):
            return arr.transpose(0, 3, 1, 2)
        if arr.shape[1] in (1, 3):
            return arr
    raise Mem2genError(f"{name}: shape {arr.shape} is not (N,H,W), (N,C,H,W), (N,H,W,C) or (N,D)")


def check_values(arr: np.ndarray, *, name: str, pixels: bool) -> tuple | None:
    """Reject NaN/Inf anywhere and, for float pixels, values outside [-1, 1]; scans in chunks.
    Returns the (min, max) of float data (None for uint8)."""
    if arr.dtype == np.uint8:
        return None
    lo, hi = np.inf, -np.inf
    for start in range(0, arr.shape[0], _CHUNK):
        block = np.asarray(arr[start:start + _CHUNK])
        if not np.isfinite(block).all():
            bad = start + int(np.argwhere(~np.isfinite(block.reshape(len(block), -1)).all(axis=1))[0, 0])
            raise Mem2genError(f"{name}: sample {bad} holds NaN or Inf; remove or regenerate it")
        lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    if pixels:
        check(lo >= -1.001 and hi <= 1.001,
              f"{name}: float pixels span [{lo:.3g}, {hi:.3g}] but must lie in [-1, 1]; rescale them or pass uint8")
    return lo, hi


def to_float(block: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 pixels to [-1, 1]; floats cast; flattened to (n, D)."""
    block = np.asarray(block)
    out = block.reshape(len(block), -1).astype(dtype, copy=False)
    if not out.flags.writeable:  # a read-only memmap slice: torch wants its own copy
        out = out.copy()
    if block.dtype == np.uint8:
        out = out / dtype(127.5) - dtype(1.0)
    return out


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[-1, 1] floats (or uint8) to uint8 pixels, for pictures and image files."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    return np.clip(np.rint((x.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


# --- dataset files (the registry in datasets.py picks the loader) ---------------------------------

def read_idx(path) -> np.ndarray:
    """An IDX file (MNIST's format), gzipped or not."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
        check(len(raw) >= 4 and raw[0] == 0 and raw[1] == 0 and raw[2] == 8, f"{path}: not an IDX file of uint8")
        ndim = raw[3]
        dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
        body = raw[4 + 4 * ndim:]
        check(len(body) == int(np.prod(dims)),
              f"{path}: truncated IDX file ({len(body)} of {int(np.prod(dims))} bytes)")
        return np.frombuffer(body, dtype=np.uint8).reshape(dims)
    except (OSError, EOFError) as e:
        raise Mem2genError(f"{path}: unreadable IDX file ({e})") from None


def load_idx_dir(where: Path) -> np.ndarray:
    if where.is_file():
        files = [where]
    else:
        check(where.is_dir(), f"{where}: no such folder")
        files = sorted(p for p in where.iterdir() if "train-images" in p.name and "idx3" in p.name)
        check(len(files) >= 1, f"{where}: no train-images-idx3-ubyte[.gz] file here")
    arr = read_idx(files[0])
    check(arr.ndim == 3, f"{files[0]}: expected images (N, H, W), found shape {arr.shape}")
    return arr[:, None]


class _NumpyOnlyUnpickler:
    """Unpickles CIFAR's batches allowing only numpy array reconstruction (no arbitrary code)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    @classmethod
    def load(cls, f):
        class U(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) in cls.ALLOWED:
                    return super().find_class(module, name)
                raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

        return U(f, encoding="bytes").load()


def load_cifar10(where: Path) -> np.ndarray:
    files = sorted(where.glob("data_batch_*")) if where.is_dir() else []
    check(len(files) > 0, f"{where}: no CIFAR-10 python batches (data_batch_1..5) here")
    parts = []
    for f in files:
        try:
            with open(f, "rb") as fh:
                d = _NumpyOnlyUnpickler.load(fh)
            parts.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, OSError) as e:
            raise Mem2genError(f"{f}: not a CIFAR-10 batch ({e})") from None
    return np.concatenate(parts)


def _crop_resize(im, size: int) -> np.ndarray:
    """The paper's LSUN preprocessing: the largest centred square, resized (bicubic) to size × size, RGB."""
    from PIL import Image

    im = im.convert("RGB")
    s = min(im.size)
    left, top = (im.size[0] - s) // 2, (im.size[1] - s) // 2
    return np.asarray(im.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC))


def load_folder_resized(where: Path, size: int) -> np.ndarray:
    """Every image under ``where`` (sorted by path), centre-cropped and resized; or, when ``where`` is
    an LMDB database (LSUN ships as one: ``data.mdb``), every image it stores, in key order."""
    from PIL import Image, UnidentifiedImageError

    check(where.is_dir(), f"{where}: no such folder")
    if (where / "data.mdb").exists():
        return load_lmdb_resized(where, size)
    files = sorted(p for p in where.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    check(len(files) > 0, f"{where}: no PNG/JPEG images here (nor an LMDB data.mdb)")
    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                out[i] = _crop_resize(im, size)
        except (UnidentifiedImageError, OSError) as e:
            raise Mem2genError(f"{f}: unreadable image ({e})") from None
    return out.transpose(0, 3, 1, 2)


def load_lmdb_resized(where: Path, size: int) -> np.ndarray:
    """The images of an LMDB database (keys → encoded JPEG/WebP/PNG bytes, as LSUN's), in key order,
    centre-cropped and resized. Needs the ``lmdb`` package (``pip install 'mem2gen[lsun]'``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        import lmdb
    except ImportError:
        raise Mem2genError(f"{where} is an LMDB database; reading it needs the lmdb package: "
                           "pip install 'mem2gen[lsun]'") from None
    try:
        env = lmdb.open(str(where), readonly=True, lock=False, readahead=False, subdir=True)
    except lmdb.Error as e:
        raise Mem2genError(f"{where}: unreadable LMDB database ({e})") from None
    with env, env.begin() as txn:
        n = txn.stat()["entries"]
        check(n > 0, f"{where}: the LMDB database is empty")
        out = np.empty((n, size, size, 3), dtype=np.uint8)
        for i, (key, value) in enumerate(txn.cursor()):
            try:
                with Image.open(io.BytesIO(value)) as im:
                    out[i] = _crop_resize(im, size)
            except (UnidentifiedImageError, OSError) as e:
                raise Mem2genError(f"{where}: entry {key[:40]!r} is not a readable image ({e})") from None
    return out.transpose(0, 3, 1, 2)


SPLITS = ("numpy", "authors")


def nested_subset(data: np.ndarray, size: int, *, seed: int = 3407, split: str = "numpy") -> np.ndarray:
    """S_K: the first K items of one fixed-seed permutation, so S_2 ⊂ S_500 ⊂ … ⊂ S_N (paper App. B.1)."""
    n = len(data)
    check(size >= 2, f"training-set size {size} must be at least 2")
    check(size <= n, f"training-set size {size} exceeds the dataset ({n} items); use at most {n}")
    return np.asarray(data[subset_indices(n, size, seed=seed, split=split)])


def subset_indices(n: int, size: int, *, seed: int = 3407, split: str = "numpy") -> np.ndarray:
    """Indices of S_K in the dataset: a prefix of one permutation of range(n).

    ``split="numpy"``: numpy's PCG64 permutation (mem2gen's own, kept so finished runs reopen).
    ``split="authors"``: ``torch.randperm(n, generator=torch.Generator().manual_seed(seed))``, the
    permutation behind the authors' ``random_split``, so S_K is exactly their subset."""
    check(split in SPLITS, f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if split == "authors":
        import torch

        return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].numpy()
    return np.random.default_rng(seed).permutation(n)[:size]
