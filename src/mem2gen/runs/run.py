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
import socket
from pathlib import Path

import numpy as np

from ..core.rule import Classification
from ..errors import DamagedFile, Mem2genError, check
from ..io import layout
from ..io import sizes as sizes_mod
from ..io.config import SweepConfig
from ..io.data import nested_subset, subset_indices
from ..io.datasets import load_dataset
from ..io.files import _alive, read_json
from . import results

STAGES = ("pending", "started", "trained", "sampled", "classified")
# what each of a point's seeds is for: seed(cfg, K, purpose)
# summary.json, as a classification writes it (checked when read: one line naming the field otherwise)
SUMMARY_SHAPE = {"n_eval": int, "n_synthetic": int, "counts": {"*": int}, "fractions": {"*": (int, float)},
                 "bootstrap": {"*": dict}}
SEED_PURPOSES = {"train": 0, "eval": 1, "synthetic": 2, "bootstrap": 3, "init": 4}


def point_seed(cfg: SweepConfig, k: int, purpose: str, replicate: int = 0) -> int:
    """The seed of one purpose of point K, derived from (cfg.seed, K, purpose) and, for replicates after
    the first, the replicate's number (so replicate 0 is the point a run without replicates made)."""
    entropy = [cfg.seed, k, SEED_PURPOSES[purpose]] + ([replicate] if replicate else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def split_seed(cfg: SweepConfig, replicate: int = 0) -> int:
    """The permutation seed of S_K for one replicate: the config's, or with ``replicate_subsets`` another
    one per replicate after the first (its subsets are still nested within the replicate)."""
    if not (cfg.replicate_subsets and replicate):
        return cfg.split_seed
    return int(np.random.SeedSequence([cfg.split_seed, replicate]).generate_state(1)[0] % (2 ** 31))


def point_key(k: int, replicate: int = 0):
    """How a point is named to executors and in its folder (``K=<key>``): K, or "K.r<replicate>"."""
    return int(k) if not replicate else f"{int(k)}.r{int(replicate)}"


def parse_key(key) -> tuple[int, int]:
    """(K, replicate) of a :func:`point_key`."""
    k, _, r = str(key).partition(".r")
    return int(k), int(r or 0)


class Run:
    """A sweep's run directory, for reading: its configuration, sizes, points and results.

    Parameters
    ----------
    path : str or Path
        A sweep's folder (its ``config.json`` is read; nothing is written).

    Examples
    --------
    >>> run = mem2gen.Run("runs/quick")                     # doctest: +SKIP
    >>> run.results(), run.point_results(), run.point(128)  # doctest: +SKIP
    """

    def __init__(self, path):
        self.path = Path(path)
        f = self.path / layout.CONFIG
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
        return load_dataset(self.config.data, image_size=self.config.image_size)

    @functools.cached_property
    def sizes(self) -> list[int]:
        """The sweep's sizes K: as its manifest lists them, else resolved from the config."""
        man = self.path / layout.MANIFEST
        try:
            if man.exists():
                return [int(k) for k in read_json(man, {"sizes": list})["sizes"]]
        except (DamagedFile, KeyError, TypeError, ValueError):
            pass  # a damaged manifest: the config says the same
        spec = self.config.sizes
        if isinstance(spec, (list, tuple)):
            return sorted({int(k) for k in spec})
        return sizes_mod.resolve(spec, len(self.dataset))

    @property
    def replicates(self) -> int:
        """Models per K (each a point of its own: another seed, and with ``replicate_subsets`` another S_K)."""
        return self.config.replicates

    def point(self, k: int, replicate: int = 0) -> "Point":
        """The point of training-set size ``k`` (and replicate ``replicate``)."""
        check(int(k) in self.sizes, f"{self.path} has no point K={k}; its sizes are {self.sizes}")
        check(0 <= int(replicate) < self.replicates,
              f"{self.path} has replicates 0 to {self.replicates - 1}, not {replicate}")
        return Point(self, int(k), int(replicate))

    def point_of(self, key) -> "Point":
        """The point named ``key`` (:func:`point_key`: K, or "K.r<replicate>")."""
        return self.point(*parse_key(key))

    def points(self, replicate: int | None = None) -> list["Point"]:
        """Every point, by K and then replicate (or only those of one ``replicate``)."""
        reps = range(self.replicates) if replicate is None else [replicate]
        return [Point(self, k, r) for k in self.sizes for r in reps]

    def classified(self, sizes=None, *, what: str = "work on", replicate: int | None = None) -> list["Point"]:
        """The points of ``sizes`` (default: every classified point), of every replicate or of one; an
        error if there are none."""
        reps = range(self.replicates) if replicate is None else [replicate]
        points = ([self.point(k, r) for k in sizes for r in reps] if sizes else
                  [p for p in self.points(replicate) if p.state == "classified"])
        check(len(points) > 0, f"{self.path}: no classified point to {what}; run the sweep first")
        return points

    def lock_holder(self) -> dict | None:
        """Who holds the run folder's lock (pid, host, since, command), if anyone does: a lock left by a
        process of this host that is gone (killed, say) is nobody's (the next writer takes it over)."""
        f = self.path / ".lock"
        try:
            holder = read_json(f) if f.exists() else None
        except (ValueError, OSError):
            return {"command": "unknown"}
        if holder and holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) \
                and not _alive(holder["pid"]):
            return None
        return holder

    def status(self) -> list[tuple[int, str]]:
        """(K, stage) for every point: pending, started, trained, sampled or classified."""
        return [(p.k, p.state) for p in self.points()]

    def results(self) -> list[dict]:
        """One record per classified K (:func:`mem2gen.runs.results.rows`): with several replicates, model-level
        means, spreads and tests over them. Plain dicts: ``pandas.DataFrame(run.results())``."""
        return results.rows(self.points())

    def point_results(self) -> list[dict]:
        """One record per classified point, every replicate (:func:`mem2gen.runs.results.point_row`)."""
        return [results.point_row(p) for p in self.points() if p.state == "classified"]


class Point:
    """One training-set size K (and replicate) of a run; every part is read from the point's folder on
    first use.

    Parameters
    ----------
    run : Run
        The sweep the point belongs to.
    k : int
        Its training-set size.
    replicate : int
        Which model of that K (0 for the first).
    """

    def __init__(self, run: Run, k: int, replicate: int = 0):
        self.run, self.k, self.replicate = run, k, replicate
        self.config = run.config
        self.key = point_key(k, replicate)
        self.path = run.path / "points" / f"K={self.key}"
        self.split_seed = split_seed(self.config, replicate)

    def __repr__(self) -> str:
        return f"Point(K={self.key}, {self.state}, {self.path})"

    def seed(self, purpose: str) -> int:
        return point_seed(self.config, self.k, purpose, self.replicate)

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
        meta = self.path / layout.MODEL / layout.MODEL_RECORD
        try:
            trained = meta.exists() and read_json(meta).get("step") == self.expected_steps
        except DamagedFile:  # a damaged record: the model is made again
            trained = False
        if not trained:
            return "started" if self.path.exists() else "pending"
        if not ((self.path / layout.EVAL).exists() and (self.path / layout.SYNTHETIC).exists()):
            return "trained"
        if not (self.path / layout.SUMMARY).exists():
            return "sampled"
        return "classified"

    @property
    def progress(self) -> str:
        """How far the stage under way has gone, read from its files in progress ('' when nothing is under
        way): the last saved training step, or the samples made so far."""
        state = self.state
        if state == "started" and self.expected_steps:  # brought or exact models are not trained here
            from ..models.train import saved_step

            step = saved_step(self.path)
            return (f"training: step {step:,} of {self.expected_steps:,} saved" if step is not None
                    else "training: no checkpoint saved yet")
        if state == "trained":
            from ..models.sample import samples_made

            return "sampling: " + ", ".join(f"{name} {samples_made(self.path / f'{name}.npy'):,} of {n:,}" for name, n
                                            in (("eval", self.config.n_eval), ("synthetic", self.n_synthetic)))
        return ""

    def _need(self, stage: str) -> None:
        have = self.state
        check(STAGES.index(have) >= STAGES.index(stage),
              f"K={self.key} of {self.run.path} is {have}, not yet {stage}; run the sweep to finish it")

    @functools.cached_property
    def train_set(self) -> np.ndarray:
        """S_K: the first K items of the run's fixed-seed permutation of the dataset."""
        return nested_subset(self.run.dataset, self.k, seed=self.split_seed, split=self.config.split)

    def held_out(self, n: int, draw) -> np.ndarray:
        """Up to ``n`` dataset items outside S_K, a fixed random draw (``draw``: its seed, e.g. a list),
        in dataset order; empty at K = N."""
        data = self.run.dataset
        rest = subset_indices(len(data), len(data), seed=self.split_seed, split=self.config.split)[self.k:]
        return np.asarray(data[np.sort(np.random.default_rng(draw).permutation(rest)[:n])])

    def load_model(self, *, device=None):
        """The finished EMA model on ``device`` (default CPU)."""
        from ..models.networks import load_model

        self._need("trained")
        return load_model(self.path / layout.MODEL, device=device)

    @functools.cached_property
    def model(self):
        return self.load_model()

    @property
    def eval(self) -> np.ndarray:
        """S_eval, memory-mapped."""
        self._need("sampled")
        return np.load(self.path / layout.EVAL, mmap_mode="r")

    @property
    def synthetic(self) -> np.ndarray:
        """S', memory-mapped."""
        self._need("sampled")
        return np.load(self.path / layout.SYNTHETIC, mmap_mode="r")

    @functools.cached_property
    def labels(self):
        """The :class:`mem2gen.core.rule.Classification` of S_eval."""
        self._need("classified")
        return Classification.read(self.path)

    @property
    def summary(self) -> dict:
        self._need("classified")
        return read_json(self.path / layout.SUMMARY, SUMMARY_SHAPE)
