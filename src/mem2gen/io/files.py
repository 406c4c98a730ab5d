"""Crash-safe file writing: every file is written to a temporary name and renamed into place."""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import DamagedFile, Mem2genError, check
from .layout import DIGESTS, check_path_length
from .shapes import misfit

TMP_TAG = ".mem2gen-tmp-"  # in the name of every temporary file mem2gen writes, and of nothing else


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + TMP_TAG, dir=path.parent)
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


DIGEST_SHAPE = {"*": {"sha256": str, "fingerprint": str, "bytes": int}}  # digests.json: per file name


def read_json(path, shape: Any = dict) -> Any:
    """A JSON file mem2gen wrote, checked against ``shape`` before use; a damaged one (not JSON, nested past
    Python's limit, or of another shape) raises :class:`DamagedFile` naming it and the field (a user-facing
    error). ``shape``: a type or tuple of types; ``{key: shape}``, an object with those keys (more are
    allowed); ``{"*": shape}``, an object whose every value has that shape; None, anything."""
    try:
        value = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else f"not valid JSON: {str(e)[:80]}"
        raise DamagedFile(f"{path} is damaged ({why}); restore it, or delete it and run the command again") from None
    wrong = misfit(value, shape)
    if wrong:
        raise DamagedFile(f"{path} is damaged ({wrong}); restore it, or delete it and run the command again")
    return value


def check_folder(path) -> Path:
    """A path that is, or can become, a folder: not a file and not a dangling symbolic link."""
    path = Path(path)
    check_path_length(path)
    if path.is_symlink() and not path.exists():
        raise Mem2genError(f"{path} is a dangling symbolic link; remove it or give another folder")
    if path.exists() and not path.is_dir():
        raise Mem2genError(f"{path} is a file; give a folder")
    return path


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


MARKER = ".mem2gen-outputs"  # in an --out folder: the names mem2gen wrote there (all --overwrite may remove)


def own_outputs(out) -> list[str]:
    """The names in ``out`` that a mem2gen command wrote and that are still as it wrote them: its marker
    file records each output's digest (a file or folder changed since, e.g. replaced by the user, is no
    longer mem2gen's). Markers of earlier versions list names only, without digests: nothing they name is
    vouched for (a user's file put in place of one would be replaced). None without one."""
    out = Path(out)
    f = out / MARKER
    try:
        rec = json.loads(f.read_text()) if f.is_file() else []
    except (ValueError, OSError, RecursionError):
        return []
    if isinstance(rec, dict) and isinstance(rec.get("files"), dict):
        names = [n for n, d in rec["files"].items() if isinstance(n, str) and (out / n).exists()
                 and not (out / n).is_symlink() and sha256_of(out / n) == d]
    else:  # a name-list marker of an earlier version cannot tell a file it wrote from one put in its place
        return []
    return [n for n in names if isinstance(n, str) and "/" not in n and n not in ("", ".", "..")]


def foreign_outputs(out, names) -> list[str]:
    """Which of ``names`` exist in ``out`` without being mem2gen's own outputs (:func:`own_outputs`)."""
    out = Path(out)
    if not out.is_dir():
        return []
    mine = set(own_outputs(out))
    taken = [n for n in names if ((out / n).exists() or (out / n).is_symlink()) and n not in mine]
    if (out / MARKER).exists() and not _is_marker(out / MARKER):
        taken.append(MARKER)  # a file of that name that is not mem2gen's record
    return sorted(taken)


def _is_marker(f: Path) -> bool:
    try:
        rec = json.loads(f.read_text())
    except (ValueError, OSError, RecursionError):
        return False
    return isinstance(rec, list) or (isinstance(rec, dict) and rec.get("written_by") == "mem2gen")


def prepare_out_dir(out, *, overwrite: bool, inputs=(), names=()) -> Path:
    """Check that ``out`` may receive results; raise before any work is done if not. With ``overwrite``
    only mem2gen's own earlier outputs there will be replaced, and never one of the command's ``inputs``;
    a path named like one of the command's outputs (``names``) that mem2gen did not write is refused."""
    out = Path(out)
    check_path_length(out)
    if out.is_symlink() and not out.exists():
        raise Mem2genError(f"--out {out} is a dangling symbolic link; remove it or give another directory")
    if out.exists() and not out.is_dir():
        raise Mem2genError(f"--out {out} is a file; give a directory path")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise Mem2genError(f"--out {out} already holds files; choose another directory or pass --overwrite "
                           "(which replaces only mem2gen's own outputs there)")
    taken = foreign_outputs(out, names)
    check(not taken, f"--out {out} holds {', '.join(taken)}, which mem2gen did not write (or which changed since); "
                     "it replaces only its own outputs: move them away or choose another --out")
    mine = set(own_outputs(out)) if out.exists() else set()
    for spec in inputs:  # file paths (an .npz:KEY spec without its key)
        p = Path(spec)
        if p.exists() and p.resolve().parent == out.resolve() and p.name in mine:
            raise Mem2genError(f"--out {out} holds this command's input {p.name}, an earlier output that --overwrite "
                               "would replace; choose another --out")
    parent = out.resolve().parent
    parent_existing = parent
    while not parent_existing.exists():
        parent_existing = parent_existing.parent
    if not parent_existing.is_dir():
        raise Mem2genError(f"--out {out}: {parent_existing} is a file, not a folder")
    if not os.access(parent_existing, os.W_OK):
        raise Mem2genError(f"cannot write under {parent_existing}; choose a writable --out")
    return out


@contextlib.contextmanager
def staged_dir(out, *, overwrite: bool, inputs=()) -> Iterator[Path]:
    """Yield an empty staging directory; on success its files move into ``out`` (a new ``out`` is renamed
    into place whole). In an existing ``out`` only mem2gen's earlier outputs (its marker) and the names
    written now are replaced; other files stay. Nothing is half-written: on failure ``out`` is untouched."""
    out = prepare_out_dir(out, overwrite=overwrite, inputs=inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=out.name + TMP_TAG, dir=out.parent))
    try:
        yield stage
        names = sorted(p.name for p in stage.iterdir())
        taken = foreign_outputs(out, names)
        check(not taken, f"--out {out} holds {', '.join(taken)}, which mem2gen did not write (or which changed since); "
                         "nothing was replaced: move them away or choose another --out")
        record = {"written_by": "mem2gen", "files": {n: sha256_of(stage / n) for n in names}}
        (stage / MARKER).write_text(json.dumps(record, indent=1) + "\n")
        os.chmod(stage, 0o777 & ~_umask())
        if not out.exists():
            os.replace(stage, out)
        else:
            for name in set(own_outputs(out)) - set(names):
                _remove(out / name)
            for name in [*names, MARKER]:
                if (out / name).is_dir() and not (out / name).is_symlink():
                    shutil.rmtree(out / name)
                os.replace(stage / name, out / name)
    finally:
        if stage.exists():
            shutil.rmtree(stage)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def clean_leftovers(folder) -> list[Path]:
    """Remove the temporary files that a killed mem2gen left in ``folder`` and below: only names of the
    form ``<name>.mem2gen-tmp-<random>``, which mem2gen alone writes (a user's ``*.tmp-*`` stays)."""
    gone = []
    for p in sorted(Path(folder).rglob(f"*{TMP_TAG}*")):
        _remove(p)
        gone.append(p)
    return gone


# --- a run folder's lock --------------------------------------------------------------------------

_held: dict = {}


def mem2gen_leftover(p: Path) -> bool:
    """Whether ``p`` is what a killed mem2gen command leaves behind: one of its temporaries, or a lock
    file it wrote."""
    if TMP_TAG in p.name:
        return True
    try:
        return p.is_file() and p.stat().st_size < 4096 and _is_lock(json.loads(p.read_text()))
    except (ValueError, OSError):
        return False


def _is_lock(held) -> bool:
    """Whether a lock file's content is one :func:`run_lock` wrote (its pid, host, start and command)."""
    return isinstance(held, dict) and isinstance(held.get("pid"), int) and isinstance(held.get("host"), str) \
        and isinstance(held.get("since"), str) and "command" in held


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def run_lock(folder, *, command: str = "mem2gen", name: str = ".lock") -> Iterator[None]:
    """Hold ``folder/.lock`` (pid, host, start, command) for the block, so that a second writer is refused
    with who holds it. Re-entrant within a process; a lock whose process is gone (same host) is stale and
    taken over."""
    folder = check_folder(folder)
    f = folder / name
    key = str(f.resolve())
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
          "command": command}
    for _ in range(3):
        try:
            fd = os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(f.read_text())
            except (ValueError, OSError):  # being written this instant: look again shortly
                held = None
            if not _is_lock(held):
                if time.time() - f.stat().st_mtime < 10:
                    time.sleep(0.2)
                    continue
                raise Mem2genError(f"{f} exists and is not a mem2gen lock; mem2gen does not remove files it did not "
                                   "write: move it away, or choose another --out") from None
            if held.get("host") == me["host"] and isinstance(held.get("pid"), int) and not _alive(held["pid"]):
                f.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise Mem2genError(f"{folder} is in use by `{held.get('command')}` (pid {held.get('pid')} on "
                               f"{held.get('host')} since {held.get('since')}); wait for it to finish, or delete "
                               f"{f} if that process is gone") from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:
        raise Mem2genError(f"{folder}: cannot take its lock {f}; delete it if no mem2gen process uses the folder")
    _held[key] = 1
    try:
        yield
    finally:
        _held.pop(key, None)
        try:
            if json.loads(f.read_text()).get("pid") == me["pid"]:
                f.unlink()
            if created and not any(folder.iterdir()):  # a command that failed leaves no empty folder behind
                folder.rmdir()
        except (ValueError, OSError):
            pass


def write_csv(path, rows: list[dict], *, fields=None) -> None:
    """Rows of dicts as a CSV file with a header (atomically; ``fields``: the columns, default every key of
    every row in the order they first appear; missing values are empty)."""
    buf = io.StringIO()
    fields = list(fields or dict.fromkeys(k for r in rows for k in r))
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def add_csv_columns(path, columns: dict) -> None:
    """Add (or replace) columns of a CSV file with a header row, atomically; one value per data row."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    for name, values in columns.items():
        values = list(values)
        if len(values) != len(body):
            raise Mem2genError(f"{path}: {len(values)} values for {len(body)} rows in column {name!r}")
        if name in head:
            j = head.index(name)
            for r, v in zip(body, values):
                r[j] = str(v)
        else:
            head.append(name)
            for r, v in zip(body, values):
                r.append(str(v))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        w.writerows(body)


def changed_keys(old: dict, new: dict, *, nested: bool = False) -> list[str]:
    """The keys whose values differ between two settings dicts (for 'refuse to mix' errors); with
    ``nested``, mappings inside are compared key by key and named with dots (``train.steps``)."""
    if nested:
        old, new = dotted(old), dotted(new)
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def dotted(d: dict, prefix: str = "") -> dict:
    """A sweep config dict with its nested ``model`` and ``train`` settings as dotted keys."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and all(isinstance(x, str) for x in v) and k in ("model", "train"):
            out |= dotted(v, f"{prefix}{k}.")
        else:
            out[prefix + k] = v
    return out


def fingerprint(path, *, block: int = 1 << 16, blocks: int = 16) -> str:
    """A cheap checksum of a file: its size and ``blocks`` evenly spaced blocks (the whole file when it is
    small). Catches truncation and swapped files at any size in milliseconds; :func:`sha256_of` is exact."""
    path = Path(path)
    size = path.stat().st_size
    if size <= block * blocks:
        return "full:" + sha256_of(path)
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for i in range(blocks):
            f.seek((size - block) * i // (blocks - 1))
            h.update(f.read(block))
    return "sampled:" + h.hexdigest()


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


def record_digests(folder, names) -> None:
    """Record each of ``names`` that exists in ``folder`` (its sha256, fingerprint and size) in the folder's
    ``digests.json``, so that a later edit, truncation or swap of the file is found (:func:`check_digests`)."""

    folder = Path(folder)
    f = folder / DIGESTS
    known = read_json(f, DIGEST_SHAPE) if f.exists() else {}
    for name in names:
        p = folder / name
        if p.is_file():
            known[name] = {"sha256": sha256_of(p), "fingerprint": fingerprint(p), "bytes": p.stat().st_size}
    write_json(f, known)


def check_digests(folder, names, *, full: bool = False) -> list[str]:
    """What does not match ``digests.json`` among ``names`` in ``folder``: a file changed since it was
    recorded (size, sampled checksum, or with ``full`` the whole sha256), a recorded file that is gone, a
    file present with no record. A folder without ``digests.json`` (made by an earlier version) gives
    nothing to check against and an empty list."""

    folder = Path(folder)
    f = folder / DIGESTS
    if not f.exists():
        return []
    try:
        known = read_json(f, DIGEST_SHAPE)
    except (DamagedFile, OSError) as e:
        return [f"{DIGESTS} cannot be read ({str(e).split('(', 1)[-1].split(')')[0]})"]
    problems = []
    for name in names:
        p, rec = folder / name, known.get(name)
        if rec is None:
            if p.exists():
                problems.append(f"{name} has no recorded digest (not written by mem2gen, or written after the record)")
            continue
        if not p.is_file():
            problems.append(f"{name} is recorded but missing")
        elif p.stat().st_size != rec["bytes"] or (sha256_of(p) != rec["sha256"] if full else
                                                  fingerprint(p) != rec["fingerprint"]):
            problems.append(f"{name} differs from what mem2gen wrote (edited, truncated or replaced)")
    return problems
