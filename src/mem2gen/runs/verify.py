"""Whether a sweep point's files belong together, and dropping those that do not so that the sweep
makes them again (``mem2gen status --verify``, and every sweep before it resumes)."""
from __future__ import annotations

from ..errors import Mem2genError
from ..io import layout
from ..io.files import _remove, check_digests, fingerprint, read_json, sha256_of
from .run import Point


def verify(point: Point, *, full: bool = False, repair: bool = False) -> list[str]:
    """Check that ``point``'s files belong together: the model loads and matches the digest saved with
    it; S_eval and S' were made by that model with the run's settings, have the expected sizes and match
    their checksums (a sampled checksum, or the whole sha256 with ``full``); the labels were made from
    those files. Returns the problems found; with ``repair`` the inconsistent files (and those made
    from them) are deleted, so that the sweep makes them again."""
    from ..models.networks import weights_digest  # torch

    problems: list[str] = []
    stage = point.state
    if stage in ("pending", "started"):
        return problems
    drop_from = None
    digest = None
    try:
        digest = weights_digest(point.load_model())
        record = read_json(point.path / layout.MODEL / layout.MODEL_RECORD)
        saved = record.get("weights_sha256")
        if saved is not None and saved != digest:
            problems.append("the model's weights do not match the digest saved with them")
            drop_from = "model"
        elif not point.config.checkpoints and (mismatch := made_elsewhere(point, record)):
            problems.append(f"its model {mismatch}")
            drop_from = "model"
    except (Mem2genError, ValueError, OSError) as e:
        problems.append(f"the model cannot be read ({str(e)[:150]})")
        drop_from = "model"
    made = {}
    if drop_from is None and stage in ("sampled", "classified"):
        for name, n in (("eval", point.config.n_eval), ("synthetic", point.n_synthetic)):
            r, problem = sample_record(point, f"{name}.npy", full=full)
            if r is None and problem is None:
                continue  # made by a version that kept no record: nothing to check against
            if problem:
                problems.append(problem)
            elif r.get("model") != digest:
                problems.append(f"{name}.npy was made by another model than this point's")
            elif r.get("n") != n:
                problems.append(f"{name}.npy holds {r.get('n')} samples, not the {n} this run asks for")
            else:
                made[name] = r["sha256"]
                continue
            drop_from = "samples"
    if drop_from is None and stage == "classified":
        try:
            src = read_json(point.path / layout.SUMMARY).get("made_from")
        except (ValueError, OSError):
            src = {}
            problems.append(f"{layout.SUMMARY} cannot be read")
            drop_from = "labels"
        if src and (src.get("model") != digest or any(src.get(k) != v for k, v in made.items())):
            problems.append("its labels were made from other files than the ones now in the folder")
            drop_from = "labels"
    if drop_from is None and stage == "classified":
        found = check_digests(point.path, layout.VOUCHED, full=full)
        if not (point.path / layout.DIGESTS).exists() and (point.path / (layout.EVAL + ".json")).exists():
            found.append(f"{layout.DIGESTS} is missing from a point whose version records it: its outputs cannot "
                         "be checked")  # deleting the record must not pass an edited file
        if found:
            problems += found
            drop_from = "labels"
    if repair and drop_from:
        drop(point, drop_from)
        problems[-1] += f"; removed the {drop_from} and what was made from them, to make them again"
    return problems


def made_elsewhere(point: Point, record: dict) -> str | None:
    """How a trained point's model record contradicts the point (a model copied from another replicate, size
    or run): its training seed, steps or size; None when it agrees or records none of them."""
    tc = record.get("train_config") if isinstance(record.get("train_config"), dict) else {}
    if "size" in record and record["size"] != point.k:
        return f"was trained on K = {record['size']}, not {point.k}"
    if "steps" in tc and tc["steps"] != point.config.train.steps:
        return f"was trained for {tc['steps']} steps, not the run's {point.config.train.steps}"
    if "seed" in tc and tc["seed"] != point.seed("train"):
        return "was trained with another seed than this point's (another replicate's or another run's model)"
    return None


def published_problems(point: Point) -> list[str]:
    """What a report would publish wrongly from a classified ``point``, found without loading its model:
    an output that differs from the digest recorded when it was written, or a sample file that does not
    match its record or has lost it (only for points made by a version that records digests)."""
    problems = check_digests(point.path, layout.VOUCHED)
    if not (point.path / layout.DIGESTS).exists() and (point.path / (layout.EVAL + ".json")).exists():
        problems.append(f"{layout.DIGESTS} is missing from a point whose version records it")
    for name in (layout.EVAL, layout.SYNTHETIC):
        problems += [p for p in [sample_record(point, name)[1]] if p]
    return problems


def sample_record(point: Point, name: str, *, full: bool = False) -> tuple[dict | None, str | None]:
    """A sample file's record and what is wrong with the file against it (None if nothing): its size and
    sampled checksum (the whole sha256 with ``full``). A missing record is a problem only in a point made
    by a version that records its outputs (``digests.json``); else (None, None): nothing to check."""
    f = point.path / name
    rec = f.with_name(f.name + ".json")  # mem2gen.models.sample.record_path (that module loads torch)
    if not rec.exists():
        missing = (point.path / layout.DIGESTS).exists()
        return None, f"{name} has no record of what made it ({rec.name} is missing)" if missing else None
    try:
        r = read_json(rec)
        same = sha256_of(f) == r["sha256"] if full else fingerprint(f) == r["fingerprint"]
        ok = f.stat().st_size == r["bytes"] and same
    except (ValueError, OSError, KeyError, TypeError):
        r, ok = {}, False
    return r, None if ok else f"{name} does not match its record (damaged or replaced)"


def drop(point: Point, stage: str) -> None:
    """Delete what ``point`` made from ``stage`` on: "labels", "samples" or "model"."""
    from ..models.sample import record_path  # torch

    names = list(layout.CLASSIFIED_FILES)
    if stage in ("samples", "model"):
        for n in (layout.EVAL, layout.SYNTHETIC):
            names += [n, record_path(n).name]
    if stage == "model":
        names.append(layout.MODEL)
    for n in names:
        _remove(point.path / n)
