"""Crash-safe file writing: every file is written to a temporary name and renamed into place."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import Mem2genError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path) -> Any:
    return json.loads(Path(path).read_text())


def save_npy(path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def prepare_out_dir(out, *, overwrite: bool) -> Path:
    """Check that ``out`` may receive results; raise before any work is done if not."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise Mem2genError(f"--out {out} is a file; give a directory path")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise Mem2genError(f"--out {out} already holds files; choose another directory or pass --overwrite")
    parent = out.resolve().parent
    parent_existing = parent
    while not parent_existing.exists():
        parent_existing = parent_existing.parent
    if not os.access(parent_existing, os.W_OK):
        raise Mem2genError(f"cannot write under {parent_existing}; choose a writable --out")
    return out


@contextlib.contextmanager
def staged_dir(out, *, overwrite: bool) -> Iterator[Path]:
    """Yield an empty staging directory; on success it replaces ``out`` whole (nothing half-written)."""
    out = prepare_out_dir(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    try:
        yield stage
        os.chmod(stage, 0o777 & ~_umask())
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage)


def changed_keys(old: dict, new: dict) -> list[str]:
    """The top-level keys whose values differ between two settings dicts (for 'refuse to mix' errors)."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def sha256_of(path) -> str:
    """Checksum of a file, or of a folder's sorted file names and contents."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
