"""The memorized / spurious / generalized rule (paper §2.1, eqs 4-6).

For each evaluation sample x̂ with x1, x2 its two nearest neighbours in the training set S and
x'1 its nearest in the synthetic set S' (ε = 1e-6):

- memorized (eq 4):   d(x̂,x1) / (d(x̂,x2) + ε) ≤ δm
- spurious (eq 5):    d(x̂,x'1) / (d(x̂,x1) + d(x̂,x'1) + ε) ≤ δs, and not memorized
- generalized (eq 6): neither.
"""
from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import Mem2genError, check
from ..io import datasets, layout
from ..io.config import check_thresholds
from ..io.data import as_samples, check_values
from ..io.files import atomic_path, read_json
from .stats import LABELS, bootstrap_fractions

EPS = 1e-6
MEMORIZED, SPURIOUS, GENERALIZED = 0, 1, 2

# The released code's rule: raw top-1 distances against absolute thresholds (its README's values).
ABSOLUTE_DEFAULTS = dict(delta_m=0.03, delta_s=0.02)
DELTA_M = 1 / 3  # eq 4, every dataset
DELTA_S = 0.28  # eq 5 for MNIST; other datasets: their registry entry


def rule_settings(*, dataset: str | None = None, distance: str | None = None, delta_m: float | None = None,
                  delta_s: float | None = None, rule: str = "ratio") -> tuple[str, float, float]:
    """The (distance, δm, δs) a classification uses: what is given, else the dataset's (paper §2.1, Table 3),
    else the defaults of the rule (ratio: l2, 1/3, 0.28; absolute: l2, 0.03, 0.02). Validated here."""
    entry = datasets.get(dataset) if dataset else None
    distance = distance or (entry.distance if entry else "l2")
    if rule == "absolute":
        delta_m = ABSOLUTE_DEFAULTS["delta_m"] if delta_m is None else delta_m
        delta_s = ABSOLUTE_DEFAULTS["delta_s"] if delta_s is None else delta_s
    else:
        delta_m = DELTA_M if delta_m is None else delta_m
        delta_s = (entry.delta_s if entry else DELTA_S) if delta_s is None else delta_s
    check_thresholds(delta_m, delta_s, rule)
    return distance, float(delta_m), float(delta_s)


@dataclass(frozen=True)
class Rule:
    """Eqs 4-6 as one value: the distance, δm (eq 4), δs (eq 5) and the comparison (``kind``: the paper's
    ratios, or the released code's ``"absolute"`` distances). Every classification, null and check in
    mem2gen takes its rule from here.

    Parameters
    ----------
    distance : str
        ``"l2"`` (pixels), ``"lpips"`` or ``"features"`` (the user's own embeddings).
    delta_m, delta_s : float
        The memorization and spurious thresholds.
    kind : str
        ``"ratio"`` (paper eqs 4-5) or ``"absolute"`` (the released code's compatibility rule).
    """

    distance: str = "l2"
    delta_m: float = DELTA_M
    delta_s: float = DELTA_S
    kind: str = "ratio"

    def __post_init__(self):
        check(self.kind in ("ratio", "absolute"), f"unknown rule {self.kind!r}: use ratio or absolute")
        check_thresholds(self.delta_m, self.delta_s, self.kind)

    @classmethod
    def of(cls, *, dataset: str | None = None, distance: str | None = None, delta_m: float | None = None,
           delta_s: float | None = None, kind: str = "ratio") -> Rule:
        """The rule for ``dataset`` (its distance and δs, paper §2.1 and Table 3) with any setting given
        explicitly taking precedence (:func:`rule_settings`)."""
        d, m, s = rule_settings(dataset=dataset, distance=distance, delta_m=delta_m, delta_s=delta_s, rule=kind)
        return cls(d, m, s, kind)

    @classmethod
    def of_config(cls, cfg) -> Rule:
        """The rule of a sweep's settings (:class:`mem2gen.io.config.SweepConfig`)."""
        return cls(cfg.distance, cfg.delta_m, cfg.delta_s)

    def settings(self) -> dict:
        """The keyword arguments :func:`classify` takes for this rule."""
        return {"distance": self.distance, "delta_m": self.delta_m, "delta_s": self.delta_s, "rule": self.kind}


def parse_fraction(text) -> float:
    """'1/3' or '0.28' to a float."""
    try:
        value = float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError, OverflowError):
        value = float("nan")
    if not np.isfinite(value):
        raise Mem2genError(f"{text!r} is not a finite number; write e.g. 0.28 or 1/3")
    return value


@dataclass
class Classification:
    """Per-sample labels, neighbour distances and indices, and the fractions.

    Attributes
    ----------
    labels : ndarray of int8
        0 memorized, 1 spurious, 2 generalized, per sample of S_eval.
    d_train, train_nn, d_syn, syn_nn : ndarray
        Distances to and indices of the nearest items of S and of S'.
    ratio_m, ratio_s : ndarray
        The ratios of eqs 4 and 5.
    delta_m, delta_s, distance, rule
        The rule that made the labels.
    info : dict
        Sizes, leave-one-out, refined queries and the duplicate check.
    """

    labels: np.ndarray  # (n,) int8: 0 memorized, 1 spurious, 2 generalized
    d_train: np.ndarray  # (n, k) distances to the k nearest training items, ascending
    i_train: np.ndarray  # (n, k) their indices in S
    d_syn: np.ndarray  # (n, k) distances to the k nearest synthetic items
    i_syn: np.ndarray  # (n, k) their indices in S'
    ratio_m: np.ndarray  # (n,) d1 / (d2 + ε)
    ratio_s: np.ndarray  # (n,) d'1 / (d1 + d'1 + ε)
    delta_m: float
    delta_s: float
    distance: str
    rule: str = "ratio"
    info: dict = field(default_factory=dict)

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=3)

    @property
    def fractions(self) -> dict:
        c = self.counts
        return {name: float(c[j] / c.sum()) for j, name in enumerate(LABELS)}

    def bootstrap(self, iterations: int = 10_000, seed: int = 0) -> dict:
        """Mean, std and 95% interval of each fraction (App. B.1; multinomial resampling)."""
        return bootstrap_fractions(self.counts, iterations=iterations, seed=seed)

    def label_names(self) -> np.ndarray:
        return np.asarray(LABELS)[self.labels]

    def to_frame(self):
        """One row per evaluation sample as a pandas DataFrame (pandas must be installed): the label, the
        rule's distances and ratios, and the nearest neighbours' indices in S and S'."""
        try:
            import pandas as pd
        except ImportError:
            raise Mem2genError("to_frame needs pandas: pip install pandas") from None
        cols = {"label": self.label_names(), "ratio_m": self.ratio_m, "ratio_s": self.ratio_s}
        cols |= {f"d_train{j + 1}": self.d_train[:, j] for j in range(self.d_train.shape[1])}
        cols |= {f"d_syn{j + 1}": self.d_syn[:, j] for j in range(self.d_syn.shape[1])}
        cols |= {f"train_nn{j + 1}": self.i_train[:, j] for j in range(self.i_train.shape[1])}
        cols |= {f"syn_nn{j + 1}": self.i_syn[:, j] for j in range(self.i_syn.shape[1])}
        return pd.DataFrame(cols)

    def write_csv(self, path) -> None:
        """One row per evaluation sample: label, the distances the rule uses, both ratios, then all k
        distances and neighbour indices in S and S' (floats written exactly: they read back bit for bit)."""
        k_t, k_s = self.i_train.shape[1], self.i_syn.shape[1]
        head = (["index", "label", "d_train1", "d_train2", "d_syn1", "ratio_m", "ratio_s"]
                + [f"d_train{j + 1}" for j in range(2, k_t)] + [f"d_syn{j + 1}" for j in range(1, k_s)]
                + [f"train_nn{j + 1}" for j in range(k_t)] + [f"syn_nn{j + 1}" for j in range(k_s)])
        names = self.label_names()
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(head)
            for i in range(len(self.labels)):
                w.writerow([i, names[i]] + [repr(float(v)) for v in (
                    self.d_train[i, 0], self.d_train[i, 1], self.d_syn[i, 0], self.ratio_m[i], self.ratio_s[i],
                    *self.d_train[i, 2:], *self.d_syn[i, 1:])] + self.i_train[i].tolist() + self.i_syn[i].tolist())

    @classmethod
    def read(cls, folder) -> "Classification":
        """The classification written into ``folder`` (labels.csv + summary.json). Files written before
        labels.csv kept all k distances read back with NaN for the distances they lack."""
        folder = Path(folder)
        check((folder / layout.LABELS_CSV).exists() and (folder / layout.SUMMARY).exists(),
              f"{folder}: no labels.csv and summary.json here (not classified yet?)")
        s = read_json(folder / layout.SUMMARY)
        with open(folder / layout.LABELS_CSV, newline="") as f:
            rows = list(csv.reader(f))
        head, body = rows[0], rows[1:]
        col = {name: j for j, name in enumerate(head)}

        def block(prefix, dtype, fill=None):
            ks = sorted(int(c[len(prefix):]) for c in col if c.startswith(prefix) and c[len(prefix):].isdigit())
            width = max(ks) if ks else 0
            width = max(width, int(s.get("k", width)))
            out = np.full((len(body), width), fill if fill is not None else 0, dtype=dtype)
            for j in ks:
                out[:, j - 1] = [r[col[f"{prefix}{j}"]] for r in body]
            return out

        index = {name: j for j, name in enumerate(LABELS)}
        labels = np.array([index[r[col["label"]]] for r in body], dtype=np.int8)
        vec = lambda name: np.array([float(r[col[name]]) for r in body])  # noqa: E731
        info = {key: s[key] for key in ("n_train", "n_synthetic", "leave_one_out", "k", "sample_shape",
                                        "refined_queries", "shared_with_synthetic") if key in s}
        return cls(labels, block("d_train", np.float64, np.nan), block("train_nn", np.int64),
                   block("d_syn", np.float64, np.nan), block("syn_nn", np.int64), vec("ratio_m"), vec("ratio_s"),
                   float(s["delta_m"]), float(s["delta_s"]), s["distance"], s.get("rule", "ratio"), info)

    def summary(self) -> dict:
        return {"n_eval": int(len(self.labels)), "counts": dict(zip(LABELS, self.counts.tolist())),
                "fractions": self.fractions, "rule": self.rule, "distance": self.distance,
                "delta_m": self.delta_m, "delta_s": self.delta_s, "epsilon": EPS, **self.info}


def label(d1, d2, ds1, *, delta_m: float = DELTA_M, delta_s: float = DELTA_S, rule: str = "ratio"):
    """Labels from the three distances d(x̂,x1), d(x̂,x2), d(x̂,x'1) (eqs 4-6); returns (labels, ratio_m, ratio_s).

    ``rule="absolute"`` is the released code's compatibility rule: memorized if d(x̂,x1) ≤ δm,
    spurious if d(x̂,x'1) ≤ δs and not memorized. It is not the paper's definition.
    """
    d1, d2, ds1 = (np.asarray(a, dtype=np.float64) for a in (d1, d2, ds1))
    ratio_m = d1 / (d2 + EPS)
    ratio_s = ds1 / (d1 + ds1 + EPS)
    if rule == "ratio":
        mem, spu = ratio_m <= delta_m, ratio_s <= delta_s
    else:
        mem, spu = d1 <= delta_m, ds1 <= delta_s
    labels = np.full(d1.shape, GENERALIZED, dtype=np.int8)
    labels[spu & ~mem] = SPURIOUS
    labels[mem] = MEMORIZED
    return labels, ratio_m, ratio_s


PIXEL_RANGES = ("auto", "-1,1", "0,1")


def self_distances(train, *, space, n: int = 2000, seed: int = 0, **search) -> dict:
    """Each of up to ``n`` items of S (a seeded draw; all of S when it holds fewer) against the rest of S:
    its nearest other item and the distance in the rule's units. One search serves the near-duplicate
    check and the off-manifold threshold (:func:`mem2gen.core.checks.off_manifold`)."""
    from .neighbors import nearest

    m = len(train)
    ids = np.sort(np.random.default_rng(seed).choice(m, n, replace=False)) if n < m else np.arange(m)
    nn = nearest(np.asarray(train[ids]) if n < m else train, train, 1, space=space, self_ids=ids,
                 desc="S against S", **search)
    return {"ids": ids, "nearest": nn.indices[:, 0], "distance": space.scale * nn.distances[:, 0] ** space.power}


def near_duplicates(train, *, space, factor: float = 0.1, max_checked: int = 2000, within: dict | None = None,
                    **search) -> dict:
    """Items of S with another item of S nearer than ``factor`` × the median nearest-neighbour distance
    in S. Eq 4 compares d(x, x1) with d(x, x2): a sample that copies such an item has x2 nearly as close
    as x1, so it is called memorized only within δm × that small distance (only an exact copy is).
    Checks up to ``max_checked`` items (a fixed random subset) against all of S, or the items of
    ``within`` (:func:`self_distances`, already searched). (The absolute rule has no such blind spot.)"""
    within = within or self_distances(train, space=space, n=max_checked, **search)
    ids, d = within["ids"], within["distance"]
    nn_ids = within["nearest"]
    limit = factor * float(np.median(d))
    near = d <= limit
    return {"checked": int(len(ids)), "near": int(near.sum()), "exact": int((d == 0).sum()),
            "fraction": float(near.mean()), "limit": float(limit),
            "examples": [[int(ids[i]), int(nn_ids[i])] for i in np.flatnonzero(near)[:5]]}


def duplicate_warning(dup: dict) -> str:
    """The one-line warning for :func:`near_duplicates`' result."""
    return (f"{dup['near']} of {dup['checked']} training items checked ({dup['fraction']:.1%}; {dup['exact']} exact) "
            f"have a near-duplicate in S (e.g. items {dup['examples'][0]}): a sample copying one is not called "
            "memorized by eq 4; deduplicate S for a faithful memorized fraction")


def classify(eval_set, train, synthetic=None, *, dataset: str | None = None, distance: str | None = None,
             delta_m: float | None = None, delta_s: float | None = None, rule: str = "ratio", k: int = 5,
             space=None, features_metric: str = "l2",
             lpips_net: str = "alex", lpips_backbone=None, lpips_lin=None, lpips_resize: int | None = None,
             device=None, chunk: int = 8192,
             batch: int = 4096, check_duplicates: bool = True, pixel_range: str = "auto",
             self_check: int = 2000, seed: int = 0, progress: bool = False) -> Classification:
    """Label every sample of ``eval_set`` against ``train`` (S) and ``synthetic`` (S').

    Sets are arrays (or memmaps) of images (N,H,W), (N,C,H,W), (N,H,W,C) or vectors (N,D); uint8
    pixels or floats in [-1, 1] (any floats for ``distance="features"``). With ``synthetic=None``
    the evaluation set also serves as S', leaving each sample out of its own neighbours.

    ``dataset`` (a name of :data:`mem2gen.io.datasets.DATASETS`) sets the paper's distance and δs for
    it; explicit ``distance``, ``delta_m``, ``delta_s`` win. Unset thresholds are the rule's defaults
    (:func:`rule_settings`): 1/3 and 0.28 for the paper's ratios, 0.03 and 0.02 for ``rule="absolute"``.
    ``pixel_range``: float pixels are read as [-1, 1]; "auto" refuses float sets that lie within [0, 1]
    (most likely [0, 1] images), "0,1" rescales them, "-1,1" takes them as they are.
    ``lpips_resize``: LPIPS on images smaller than this resizes them up to it first (nearest-exact; the
    released code's 32 for 28×28 images). ``check_duplicates`` looks for near-duplicate items inside S
    (:func:`near_duplicates`), which hide
    memorization under eq 4, and warns when there are any.

    Parameters
    ----------
    eval_set, train, synthetic : array
        S_eval, S and S' (``synthetic=None``: S_eval leave-one-out).
    dataset : str, optional
        Take the paper's distance and δs for this dataset.
    distance : str, optional
        ``"l2"``, ``"lpips"`` or ``"features"``.
    delta_m, delta_s : float, optional
        The thresholds of eqs 4 and 5.
    rule : str
        ``"ratio"`` (the paper's) or ``"absolute"`` (the released code's).
    k : int
        Neighbours kept per set (at least 2).
    space : object, optional
        A distance space already built (:func:`mem2gen.core.embed.make_space`), reused across calls.
    features_metric, lpips_net, lpips_backbone, lpips_lin, lpips_resize
        Settings of the feature and LPIPS spaces.
    device, chunk, batch
        Where and in which blocks the exact search runs.
    check_duplicates : bool
        Look for near-duplicates inside S, which hide memorization under eq 4.
    pixel_range : str
        ``"auto"``, ``"-1,1"`` or ``"0,1"`` (how float pixels are read).
    self_check, seed : int
        Items of S checked against S for duplicates, and the seed of their draw.
    progress : bool
        Show the search's progress.

    Returns
    -------
    Classification
        Per-sample labels, the distances and neighbours behind them, and the settings.
    """
    from .embed import make_space
    from .neighbors import nearest

    distance, delta_m, delta_s = rule_settings(dataset=dataset, distance=distance, delta_m=delta_m,
                                               delta_s=delta_s, rule=rule)
    check(k >= 2, "k must be at least 2 (the rule needs the second nearest training item)")
    space = space or make_space(distance, metric=features_metric, net=lpips_net, backbone=lpips_backbone,
                                lin=lpips_lin, device=device, resize=lpips_resize)
    images = getattr(space, "pixels", True)
    loo = synthetic is None
    sets = {"eval": eval_set, "train": train} | ({} if loo else {"synthetic": synthetic})
    sets = {name: as_samples(a, name=name) for name, a in sets.items()}
    shapes = {name: a.shape[1:] for name, a in sets.items()}
    check(len(set(shapes.values())) == 1,
          "the sets differ in sample shape: " + ", ".join(f"{n} {s}" for n, s in shapes.items())
          + "; give all three the same image size and channels")
    check(len(sets["train"]) >= 2, f"the training set has {len(sets['train'])} item(s); the rule needs at least 2")
    check(not loo or len(sets["eval"]) >= 2, "leave-one-out needs at least 2 evaluation samples")
    check(pixel_range in PIXEL_RANGES, f"pixel_range {pixel_range!r}: use one of {', '.join(PIXEL_RANGES)}")
    for name, a in list(sets.items()):
        span = check_values(a, name=name, pixels=images)
        if not images or span is None:
            continue
        if pixel_range == "auto":
            check(not (span[0] >= 0 and span[1] <= 1),
                  f"{name}: float pixels lie in [{span[0]:.3g}, {span[1]:.3g}], which looks like [0, 1] (what "
                  f"diffusers "
                  "pipelines and most image code give); mem2gen reads float pixels as [-1, 1]. Say which: "
                  "--range 0,1 (pixel_range='0,1') rescales them, --range -1,1 takes them as they are")
        elif pixel_range == "0,1":
            check(span[0] >= -1e-6 and span[1] <= 1 + 1e-6, f"{name}: float pixels span [{span[0]:.3g}, "
                                                             f"{span[1]:.3g}], not [0, 1]")
            sets[name] = np.asarray(a, dtype=np.float32) * 2 - 1
    if hasattr(space, "check_shape"):
        space.check_shape(sets["eval"].shape)
    ev, tr = sets["eval"], sets["train"]
    syn = ev if loo else sets["synthetic"]

    common = dict(space=space, chunk=chunk, batch=batch, device=device, progress=progress)
    nt = nearest(ev, tr, k, desc="train", **common)
    ns = nearest(ev, syn, k, exclude_self=loo, desc="synthetic", **common)
    shared = 0
    d_t = space.scale * nt.distances ** space.power
    same = np.zeros(len(d_t), bool)
    if not loo:  # eq 4 alone (it does not involve S'): which samples are memorized whatever S' holds
        memorized = label(d_t[:, 0], d_t[:, 1], np.ones(len(d_t)), delta_m=delta_m, delta_s=delta_s,
                          rule=rule)[0] == MEMORIZED
        same = (ns.distances[:, 0] == 0) & ~memorized
    if same.any():
        # an exact copy of a sample in S' is that sample itself (the same seed, or S' holding S_eval): it must
        # not count as its neighbour, so leave it out, as leave-one-out does. (Memorized samples are left
        # alone: two copies of one training item are memorized whatever S' holds.)
        shared = int(same.sum())
        self_ids = np.where(same, ns.indices[:, 0], -1)
        ns = nearest(ev, syn, k, self_ids=self_ids, desc="synthetic", **common)

        warnings.warn(f"{shared} of the {len(ev)} evaluation samples have an exact copy in S' (the same samples in "
                      "both sets, e.g. sampled with the same seed); each one's own copy was left out (leave-one-out). "
                      "Sample S_eval and S' with different seeds", stacklevel=2)
    d_s = space.scale * ns.distances ** space.power
    labels, ratio_m, ratio_s = label(d_t[:, 0], d_t[:, 1], d_s[:, 0], delta_m=delta_m, delta_s=delta_s, rule=rule)
    info = {"n_train": len(tr), "n_synthetic": len(syn), "leave_one_out": loo, "k": int(d_t.shape[1]),
            "sample_shape": list(ev.shape[1:]), "refined_queries": nt.refined + ns.refined,
            "shared_with_synthetic": shared}
    train_self = None
    if check_duplicates and rule == "ratio":
        train_self = self_distances(tr, n=self_check, seed=seed, **common)
        info["near_duplicates"] = near_duplicates(tr, within=train_self, **common)
        dup = info["near_duplicates"]
        if dup["near"]:
            warnings.warn(duplicate_warning(dup), stacklevel=2)
    res = Classification(labels, d_t, nt.indices, d_s, ns.indices, ratio_m, ratio_s, delta_m, delta_s,
                         space.name, rule, info)
    res.train_self = train_self  # not saved: the search behind the duplicate check, for the caller's reuse
    return res
