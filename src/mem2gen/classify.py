"""The memorized / spurious / generalized rule (paper §2.1, eqs 4-6).

For each evaluation sample x̂ with x1, x2 its two nearest neighbours in the training set S and
x'1 its nearest in the synthetic set S' (ε = 1e-6):

- memorized (eq 4):   d(x̂,x1) / (d(x̂,x2) + ε) ≤ δm
- spurious (eq 5):    d(x̂,x'1) / (d(x̂,x1) + d(x̂,x'1) + ε) ≤ δs, and not memorized
- generalized (eq 6): neither.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .data import as_samples, check_values
from .embed import make_space
from .errors import Mem2genError, check
from .neighbors import nearest
from .stats import LABELS, bootstrap_fractions

EPS = 1e-6
MEMORIZED, SPURIOUS, GENERALIZED = 0, 1, 2

# Per-dataset settings of the paper (SPEC §2): distance and δs; δm = 1/3 everywhere.
PRESETS = {
    "mnist": dict(distance="l2", delta_s=0.28),
    "fashion-mnist": dict(distance="l2", delta_s=0.30),
    "cifar10": dict(distance="lpips", delta_s=0.175),
    "lsun-church": dict(distance="lpips", delta_s=0.25),
}
# The released code's rule: raw top-1 distances against absolute thresholds (its README's values).
ABSOLUTE_DEFAULTS = dict(delta_m=0.03, delta_s=0.02)


def parse_fraction(text) -> float:
    """'1/3' or '0.28' to a float."""
    try:
        return float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise Mem2genError(f"{text!r} is not a number; write e.g. 0.28 or 1/3") from None


def check_thresholds(delta_m: float, delta_s: float, rule: str) -> None:
    check(rule in ("ratio", "absolute"), f"unknown rule {rule!r}; use ratio (the paper's) or absolute")
    if rule == "ratio":
        check(0 < delta_m < 1, f"delta_m = {delta_m} must lie in (0, 1) (paper eq 4); the paper uses 1/3")
        check(0 < delta_s < 0.5, f"delta_s = {delta_s} must lie in (0, 1/2) (paper eq 5)")
    else:
        check(delta_m > 0 and delta_s > 0, "absolute thresholds must be positive distances")


@dataclass
class Classification:
    """Per-sample labels, neighbour distances and indices, and the fractions."""

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

    def write_csv(self, path) -> None:
        """One row per evaluation sample: label, the three distances, both ratios, neighbour indices."""
        k_t, k_s = self.i_train.shape[1], self.i_syn.shape[1]
        head = (["index", "label", "d_train1", "d_train2", "d_syn1", "ratio_m", "ratio_s"]
                + [f"train_nn{j + 1}" for j in range(k_t)] + [f"syn_nn{j + 1}" for j in range(k_s)])
        from .files import atomic_path

        names = self.label_names()
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(head)
            for i in range(len(self.labels)):
                w.writerow([i, names[i], repr(float(self.d_train[i, 0])), repr(float(self.d_train[i, 1])),
                            repr(float(self.d_syn[i, 0])), repr(float(self.ratio_m[i])), repr(float(self.ratio_s[i]))]
                           + self.i_train[i].tolist() + self.i_syn[i].tolist())

    def summary(self) -> dict:
        return {"n_eval": int(len(self.labels)), "counts": dict(zip(LABELS, self.counts.tolist())),
                "fractions": self.fractions, "rule": self.rule, "distance": self.distance,
                "delta_m": self.delta_m, "delta_s": self.delta_s, "epsilon": EPS, **self.info}


def label(d1, d2, ds1, *, delta_m: float = 1 / 3, delta_s: float = 0.28, rule: str = "ratio"):
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


def classify(eval_set, train, synthetic=None, *, distance: str = "l2", delta_m: float = 1 / 3,
             delta_s: float = 0.28, rule: str = "ratio", k: int = 5, space=None, features_metric: str = "l2",
             lpips_net: str = "alex", lpips_backbone=None, lpips_lin=None, device=None, chunk: int = 8192,
             batch: int = 4096, progress: bool = False) -> Classification:
    """Label every sample of ``eval_set`` against ``train`` (S) and ``synthetic`` (S').

    Sets are arrays (or memmaps) of images (N,H,W), (N,C,H,W), (N,H,W,C) or vectors (N,D); uint8
    pixels or floats in [-1, 1] (any floats for ``distance="features"``). With ``synthetic=None``
    the evaluation set also serves as S', leaving each sample out of its own neighbours.
    """
    check_thresholds(delta_m, delta_s, rule)
    check(k >= 2, "k must be at least 2 (the rule needs the second nearest training item)")
    space = space or make_space(distance, metric=features_metric, net=lpips_net, backbone=lpips_backbone,
                                lin=lpips_lin, device=device)
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
    for name, a in sets.items():
        check_values(a, name=name, pixels=images)
    if hasattr(space, "check_shape"):
        space.check_shape(sets["eval"].shape)
    ev, tr = sets["eval"], sets["train"]
    syn = ev if loo else sets["synthetic"]

    common = dict(space=space, chunk=chunk, batch=batch, device=device, progress=progress)
    nt = nearest(ev, tr, k, desc="train", **common)
    ns = nearest(ev, syn, k, exclude_self=loo, desc="synthetic", **common)
    d_t = space.scale * nt.distances ** space.power
    d_s = space.scale * ns.distances ** space.power
    labels, ratio_m, ratio_s = label(d_t[:, 0], d_t[:, 1], d_s[:, 0], delta_m=delta_m, delta_s=delta_s, rule=rule)
    info = {"n_train": len(tr), "n_synthetic": len(syn), "leave_one_out": loo, "k": int(d_t.shape[1]),
            "sample_shape": list(ev.shape[1:]), "refined_queries": nt.refined + ns.refined}
    return Classification(labels, d_t, nt.indices, d_s, ns.indices, ratio_m, ratio_s, delta_m, delta_s,
                          space.name, rule, info)


def write_outputs(out, res, eval_set, train, synthetic, *, boot, extra: dict, grid: bool) -> list[str]:
    """labels.csv, neighbors.png and, last, summary.json (with the bootstrap and ``extra``) into ``out``.
    Each file is written atomically, so an existing summary.json means the rest is complete."""
    from .files import write_json
    from .plots import neighbor_grid

    out = Path(out)
    res.write_csv(out / "labels.csv")
    files = ["labels.csv", "summary.json"]
    if grid and neighbor_grid(res, eval_set, train, synthetic, out / "neighbors.png"):
        files.append("neighbors.png")
    write_json(out / "summary.json", {**res.summary(), "bootstrap": boot, **extra})
    return files
