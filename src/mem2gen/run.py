"""Open a sweep's run directory from Python: ``mem2gen.Run(path).point(K)``.

    run = mem2gen.Run("runs/quick")
    p = run.point(128)
    p.train_set        # S_K exactly as the sweep trained on it (the nested subset)
    p.model            # the EMA model (p.load_model(device="cuda") for another device)
    p.eval, p.synthetic  # S_eval and S', memory-mapped
    p.labels           # the Classification (labels, distances, neighbours, ratios)
    p.labels.fractions, p.summary
    pandas.DataFrame(run.results())   # one row per classified K

Every part loads lazily and is read from the point's files, exactly as the sweep made them; the
dataset is loaded once per ``Run``. The sweep itself opens its points through these handles.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from . import sizes as sizes_mod
from .config import SweepConfig
from .errors import DamagedFile, Mem2genError, check
from .files import read_json
from .stats import ALPHA, LABELS, exceeds, mark_significant

STAGES = ("pending", "started", "trained", "sampled", "classified")
# what each of a point's seeds is for: seed(cfg, K, purpose)
SEED_PURPOSES = {"train": 0, "eval": 1, "synthetic": 2, "bootstrap": 3, "init": 4}


def point_seed(cfg: SweepConfig, k: int, purpose: str) -> int:
    """The seed of one purpose of point K, derived from (cfg.seed, K, purpose)."""
    return int(np.random.SeedSequence([cfg.seed, k, SEED_PURPOSES[purpose]]).generate_state(1)[0])


class Run:
    """A sweep's run directory, for reading: its configuration, sizes, points and results."""

    def __init__(self, path):
        self.path = Path(path)
        f = self.path / "config.json"
        check(f.is_file(), f"{self.path}: not a sweep run directory (no config.json)")
        try:
            raw = read_json(f)
        except ValueError as e:
            raise Mem2genError(f"{f} is not valid JSON ({e}); restore it or start the run again") from None
        try:
            self.config = SweepConfig.from_dict(raw)
        except Mem2genError as e:
            raise Mem2genError(f"{f} was written by another version of mem2gen and cannot be read ({e}); "
                               "start the run again with `mem2gen sweep --out NEW` and the same settings") from None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}: {self.config.name}, {self.config.data}, sizes {self.sizes})"

    @functools.cached_property
    def dataset(self) -> np.ndarray:
        """The whole dataset (loaded once per handle)."""
        from .datasets import load_dataset

        return load_dataset(self.config.data, image_size=self.config.image_size)

    @functools.cached_property
    def sizes(self) -> list[int]:
        """The sweep's sizes K: as its manifest lists them, else resolved from the config."""
        man = self.path / "manifest.json"
        try:
            if man.exists():
                return [int(k) for k in read_json(man)["sizes"]]
        except (DamagedFile, KeyError, TypeError, ValueError):
            pass  # a damaged manifest: the config says the same
        spec = self.config.sizes
        if isinstance(spec, (list, tuple)):
            return sorted({int(k) for k in spec})
        return sizes_mod.resolve(spec, len(self.dataset))

    def point(self, k: int) -> "Point":
        """The point of training-set size ``k``."""
        check(int(k) in self.sizes, f"{self.path} has no point K={k}; its sizes are {self.sizes}")
        return Point(self, int(k))

    def points(self) -> list["Point"]:
        return [Point(self, k) for k in self.sizes]

    def classified(self, sizes=None, *, what: str = "work on") -> list["Point"]:
        """The points of ``sizes`` (default: every classified point); an error if there are none."""
        points = [self.point(k) for k in sizes] if sizes else [p for p in self.points() if p.state == "classified"]
        check(len(points) > 0, f"{self.path}: no classified point to {what}; run the sweep first")
        return points

    def lock_holder(self) -> dict | None:
        """Who holds the run folder's lock (pid, host, since, command), if anyone does."""
        f = self.path / ".lock"
        try:
            return read_json(f) if f.exists() else None
        except (ValueError, OSError):
            return {"command": "unknown"}

    def status(self) -> list[tuple[int, str]]:
        """(K, stage) for every point: pending, started, trained, sampled or classified."""
        return [(p.k, p.state) for p in self.points()]

    def results(self) -> list[dict]:
        """One record per classified point (K, sizes, counts, fractions, bootstrap mean/std/95%):
        plain dicts, so ``pandas.DataFrame(run.results())`` takes them as they are."""
        rows = [p.result() for p in self.points() if p.state == "classified"]
        for name in ("memorized", "spurious"):  # significant over the run's sizes: Holm, family-wise α
            if rows and all(f"p_{name}" in r for r in rows):
                mark_significant(rows, name)
        return rows


class Point:
    """One training-set size K of a run; every part is read from the point's folder on first use."""

    def __init__(self, run: Run, k: int):
        self.run, self.k = run, k
        self.config = run.config
        self.path = run.path / "points" / f"K={k}"

    def __repr__(self) -> str:
        return f"Point(K={self.k}, {self.state}, {self.path})"

    def seed(self, purpose: str) -> int:
        return point_seed(self.config, self.k, purpose)

    @property
    def expected_steps(self) -> int:
        """Training steps of a finished model (the optimal denoiser and models taken from ``checkpoints``
        are not trained here)."""
        return 0 if self.config.model.kind == "optimal" or self.config.checkpoints else self.config.train.steps

    @property
    def n_synthetic(self) -> int:
        return self.config.n_synthetic(self.k)

    @property
    def state(self) -> str:
        """The last finished stage, read from the point's files (not from the manifest)."""
        meta = self.path / "model" / "mem2gen.json"
        try:
            trained = meta.exists() and read_json(meta).get("step") == self.expected_steps
        except DamagedFile:  # a damaged record: the model is made again
            trained = False
        if not trained:
            return "started" if self.path.exists() else "pending"
        if not ((self.path / "eval.npy").exists() and (self.path / "synthetic.npy").exists()):
            return "trained"
        if not (self.path / "summary.json").exists():
            return "sampled"
        return "classified"

    @property
    def progress(self) -> str:
        """How far the stage under way has gone, read from its files in progress ('' when nothing is under
        way): the last saved training step, or the samples made so far."""
        state = self.state
        if state == "started" and self.expected_steps:  # brought or exact models are not trained here
            from .train import saved_step

            step = saved_step(self.path)
            return (f"training: step {step:,} of {self.expected_steps:,} saved" if step is not None
                    else "training: no checkpoint saved yet")
        if state == "trained":
            from .sample import samples_made

            return "sampling: " + ", ".join(f"{name} {samples_made(self.path / f'{name}.npy'):,} of {n:,}" for name, n
                                            in (("eval", self.config.n_eval), ("synthetic", self.n_synthetic)))
        return ""

    # what each stage of a point wrote (all that verify(repair=True) may delete, stage by stage)
    CLASSIFIED_FILES = ("labels.csv", "summary.json", "neighbors.png", "null.json", "manifold.json", "quality.json",
                        "calibration.json", "landscape.json", "landscape.png")

    def verify(self, *, full: bool = False, repair: bool = False) -> list[str]:
        """Check that this point's files belong together: the model loads and matches the digest saved
        with it; S_eval and S' were made by that model with the run's settings, have the expected sizes
        and match their checksums (a sampled checksum, or the whole sha256 with ``full``); the labels were
        made from those files. Returns the problems found; with ``repair`` the inconsistent files (and
        those made from them) are deleted, so that the sweep makes them again."""
        from .files import fingerprint, sha256_of

        problems: list[str] = []
        stage = self.state
        if stage in ("pending", "started"):
            return problems
        drop_from = None
        digest = None
        try:
            from .models import weights_digest

            digest = weights_digest(self.load_model())
            saved = read_json(self.path / "model" / "mem2gen.json").get("weights_sha256")
            if saved is not None and saved != digest:
                problems.append("the model's weights do not match the digest saved with them")
                drop_from = "model"
        except (Mem2genError, ValueError, OSError) as e:
            problems.append(f"the model cannot be read ({str(e)[:150]})")
            drop_from = "model"
        made = {}
        if drop_from is None and stage in ("sampled", "classified"):
            from .sample import record_path

            for name, n in (("eval", self.config.n_eval), ("synthetic", self.n_synthetic)):
                f = self.path / f"{name}.npy"
                rec = record_path(f)
                if not rec.exists():
                    continue  # made by a version that kept no record: nothing to check against
                try:
                    r = read_json(rec)
                    ok = f.stat().st_size == r["bytes"] and (
                        sha256_of(f) == r["sha256"] if full else fingerprint(f) == r["fingerprint"])
                except (ValueError, OSError, KeyError):
                    r, ok = {}, False
                if not ok:
                    problems.append(f"{name}.npy does not match its record (damaged or replaced)")
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
                src = read_json(self.path / "summary.json").get("made_from")
            except (ValueError, OSError):
                src = {}
                problems.append("summary.json cannot be read")
                drop_from = "labels"
            if src and (src.get("model") != digest or any(src.get(k) != v for k, v in made.items())):
                problems.append("its labels were made from other files than the ones now in the folder")
                drop_from = "labels"
        if repair and drop_from:
            self._drop(drop_from)
            problems[-1] += f"; removed the {drop_from} and what was made from them, to make them again"
        return problems

    def _drop(self, stage: str) -> None:
        from .files import _remove
        from .sample import record_path

        names = list(self.CLASSIFIED_FILES)
        if stage in ("samples", "model"):
            for n in ("eval.npy", "synthetic.npy"):
                names += [n, record_path(n).name]
        if stage == "model":
            names.append("model")
        for n in names:
            _remove(self.path / n)

    def _need(self, stage: str) -> None:
        have = self.state
        check(STAGES.index(have) >= STAGES.index(stage),
              f"K={self.k} of {self.run.path} is {have}, not yet {stage}; run the sweep to finish it")

    @functools.cached_property
    def train_set(self) -> np.ndarray:
        """S_K: the first K items of the run's fixed-seed permutation of the dataset."""
        from .data import nested_subset

        return nested_subset(self.run.dataset, self.k, seed=self.config.split_seed, split=self.config.split)

    def held_out(self, n: int, draw) -> np.ndarray:
        """Up to ``n`` dataset items outside S_K, a fixed random draw (``draw``: its seed, e.g. a list),
        in dataset order; empty at K = N."""
        from .data import subset_indices

        data = self.run.dataset
        rest = subset_indices(len(data), len(data), seed=self.config.split_seed, split=self.config.split)[self.k:]
        return np.asarray(data[np.sort(np.random.default_rng(draw).permutation(rest)[:n])])

    def load_model(self, *, device=None):
        """The finished EMA model on ``device`` (default CPU)."""
        from .models import load_model

        self._need("trained")
        return load_model(self.path / "model", device=device)

    @functools.cached_property
    def model(self):
        return self.load_model()

    @property
    def eval(self) -> np.ndarray:
        """S_eval, memory-mapped."""
        self._need("sampled")
        return np.load(self.path / "eval.npy", mmap_mode="r")

    @property
    def synthetic(self) -> np.ndarray:
        """S', memory-mapped."""
        self._need("sampled")
        return np.load(self.path / "synthetic.npy", mmap_mode="r")

    @functools.cached_property
    def labels(self):
        """The :class:`mem2gen.classify.Classification` of S_eval."""
        from .classify import Classification

        self._need("classified")
        return Classification.read(self.path)

    @property
    def summary(self) -> dict:
        self._need("classified")
        return read_json(self.path / "summary.json")

    def result(self) -> dict:
        """This point's record of :meth:`Run.results`; its ``significant_*`` judge this point alone
        (p < α), where :meth:`Run.results` corrects them for the run's number of sizes."""
        s = self.summary
        row = {"K": self.k, "n_eval": s["n_eval"], "n_synthetic": s["n_synthetic"]}
        for name in LABELS:
            b = s["bootstrap"][name]
            row |= {f"count_{name}": s["counts"][name], f"frac_{name}": s["fractions"][name],
                    f"mean_{name}": b["mean"], f"std_{name}": b["std"], f"lo95_{name}": b["ci95"][0],
                    f"hi95_{name}": b["ci95"][1]}
        if (self.path / "null.json").exists():  # the rule on held-out real data (mem2gen.calibrate)
            n = read_json(self.path / "null.json")
            if n["fractions"] is None:  # no held-out data at this K (K = N): nothing to compare with
                n = {"fractions": {}, "bootstrap": {}, "excess": {}, "n_synthetic": 0}
            for name in ("memorized", "spurious"):
                e = n["excess"].get(name, {"excess": None, "ci95": [None, None]})
                ci = n["bootstrap"].get(name, {"ci95": [None, None]})["ci95"]
                p = None
                if n.get("counts") and n.get("model_counts"):  # the exact test, from the counts (any version's file)
                    mc, nc = n["model_counts"], n["counts"]
                    p = exceeds(mc[name], sum(mc.values()), nc[name], sum(nc.values()))
                row |= {f"null_{name}": n["fractions"].get(name), f"null_lo95_{name}": ci[0],
                        f"null_hi95_{name}": ci[1], f"excess_{name}": e["excess"],
                        f"excess_lo95_{name}": e["ci95"][0], f"excess_hi95_{name}": e["ci95"][1],
                        f"p_{name}": p, f"significant_{name}": int(p is not None and p < ALPHA),
                        # the counts the test compared (the model's at the null's |S'|), for pooled tests
                        f"null_count_{name}": n["counts"].get(name) if n.get("counts") else None,
                        f"model_count_{name}_at_null": n["model_counts"].get(name) if n.get("model_counts") else None}
            row["null_n"] = sum(n["counts"].values()) if n.get("counts") else None
            row["model_n_at_null"] = sum(n["model_counts"].values()) if n.get("model_counts") else None
            row["null_n_synthetic"] = n["n_synthetic"]
        if (self.path / "manifold.json").exists():  # samples unlike any real data (mem2gen.calibrate)
            m = read_json(self.path / "manifold.json")
            row |= {"off_manifold": m["all"]["fraction"], "off_manifold_lo95": m["all"]["ci95"][0],
                    "off_manifold_hi95": m["all"]["ci95"][1], "generalized_off_manifold": m["generalized"]["fraction"]}
        if (self.path / "quality.json").exists():  # FD / KID against real data (mem2gen.quality)
            q = read_json(self.path / "quality.json")
            row |= {"quality_fd": q["fd"], "quality_kid": q["kid"], "quality_real_fd": q["real_fd"]}
        return row
