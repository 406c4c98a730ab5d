"""How good are the samples? A Fréchet distance and KID against real data, offline.

Eq 6 calls anything that is neither memorized nor spurious "generalized", noise included; the
off-manifold check (:func:`mem2gen.core.checks.off_manifold`) says whether samples are data-like one by
one, this module scores a whole set. The features come from a small convolutional autoencoder trained
on the dataset itself at run time (seeded; seconds on digits and MNIST), so nothing is downloaded and
any image dataset works. The numbers rank sets of one dataset (noise < a poorly trained model < a
well-trained one < real data, tested on digits); they are **not** comparable with Inception-based FID
or KID, nor across datasets.

- :func:`frechet_distance`: ‖μ₁ − μ₂‖² + tr(C₁ + C₂ − 2(C₁^½ C₂ C₁^½)^½), square roots of symmetric
  PSD matrices by eigendecomposition (no complex round-off).
- :func:`kid`: the unbiased MMD² with the cubic polynomial kernel (x·y/d + 1)³, averaged over subsets
  (Bińkowski et al. 2018), with its standard deviation over the subsets.
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from ..errors import check
from ..io import layout
from ..io.data import as_samples, to_float
from ..io.datasets import load_dataset
from ..io.files import read_json, record_digests, write_json


class FeatureNet(nn.Module):
    """A small convolutional encoder (features: 256 numbers) with a linear decoder, trained to
    reconstruct the dataset's images."""

    def __init__(self, shape: tuple):
        super().__init__()
        c = shape[0]
        self.shape = tuple(shape)
        self.encoder = nn.Sequential(nn.Conv2d(c, 32, 3, 1, 1), nn.SiLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.SiLU(),
                                     nn.Conv2d(64, 64, 3, 2, 1), nn.SiLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.decoder = nn.Linear(256, int(np.prod(shape)))

    def forward(self, x):
        return self.decoder(self.encoder(x)).view(len(x), *self.shape)


@contextlib.contextmanager
def _one_thread():
    """One thread for torch and the BLAS, and no oneDNN, while a score is computed: the features are then
    the same bit for bit in any process; FD's eigendecompositions still follow the LAPACK build's own
    order, so FD agrees across processes to about 1e-8 relative, not bit for bit."""
    before, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    # oneDNN caches convolution primitives made for the thread count of their first call: not used here
    torch.backends.mkldnn.enabled = False
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)
        torch.backends.mkldnn.enabled = onednn


def _images(x) -> torch.Tensor:
    x = as_samples(np.asarray(x), name="samples")
    check(x.ndim == 4 and min(x.shape[2:]) >= 4, f"quality needs images of at least 4x4; got {x.shape[1:]}")
    return torch.from_numpy(to_float(x)).view(*x.shape)


def train_features(data, *, steps: int = 400, batch: int = 128, seed: int = 0) -> FeatureNet:
    """The feature network for ``data`` (images, uint8 or [-1, 1]): Adam 1e-3, MSE, seeded."""
    x = _images(data)
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the CPU's generator only: no CUDA call on any visible GPU
        torch.manual_seed(seed)
        net = FeatureNet(tuple(x.shape[1:]))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    with _one_thread():
        for _ in range(steps):
            xb = x[torch.randint(0, len(x), (min(batch, len(x)),), generator=g)]
            loss = torch.nn.functional.mse_loss(net(xb), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


@functools.lru_cache(maxsize=4)
def dataset_features(spec: str, image_size: int | None = None) -> FeatureNet:
    """The feature network of a registered dataset, trained once per process on all of it."""
    return train_features(load_dataset(spec, image_size=image_size))


def features(net: FeatureNet, x, *, batch: int = 1024) -> np.ndarray:
    """(n, 256) float64 features of images ``x``."""
    x = _images(x)
    with torch.no_grad():
        return np.concatenate([net.encoder(x[i:i + batch]).double().numpy() for i in range(0, len(x), batch)])


def _sqrt_psd(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(f1, f2) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets (rows are samples)."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    check(len(f1) >= 2 and len(f2) >= 2, "the Fréchet distance needs at least two samples per set")
    m1, m2 = f1.mean(0), f2.mean(0)
    c1, c2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    s1 = _sqrt_psd(c1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(s1 @ c2 @ s1), 0, None)).sum()
    return float(((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * cross)


def kid(f1, f2, *, subsets: int = 20, subset_size: int = 500, seed: int = 0) -> tuple[float, float]:
    """KID: unbiased MMD² with the kernel (x·y/d + 1)³ over ``subsets`` random subsets of both sets
    (at most ``subset_size`` each); returns its mean and standard deviation over the subsets."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    m = min(subset_size, len(f1), len(f2))
    check(m >= 2, "KID needs at least two samples per set")
    d = f1.shape[1]
    if m == len(f1) and m == len(f2):  # nothing to subsample: one estimate
        subsets = 1
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(subsets):
        a, b = f1[rng.choice(len(f1), m, replace=False)], f2[rng.choice(len(f2), m, replace=False)]
        kaa, kbb, kab = (a @ a.T / d + 1) ** 3, (b @ b.T / d + 1) ** 3, (a @ b.T / d + 1) ** 3
        vals.append((kaa.sum() - np.trace(kaa)) / (m * (m - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
                    - 2 * kab.mean())
    return float(np.mean(vals)), float(np.std(vals))


def quality(samples, real, net: FeatureNet, *, seed: int = 0) -> dict:
    """FD and KID of ``samples`` against real data in ``net``'s features, beside the same scores of real
    data itself. ``real`` is split in two random halves A and B; the samples (at most |B| of them) are
    scored against A, and B (as many items as samples) against A: one size on both sides, so the two
    compare (FD is biased upward at small sizes; KID is not)."""
    with _one_thread():
        return _quality(samples, real, net, seed=seed)


def _quality(samples, real, net: FeatureNet, *, seed: int) -> dict:
    fs, fr = features(net, samples), features(net, real)
    check(len(fr) >= 4, "quality needs at least 4 real items")
    perm = np.random.default_rng(seed).permutation(len(fr))
    a, b = fr[perm[: len(fr) // 2]], fr[perm[len(fr) // 2:]]
    m = min(len(fs), len(b))
    fs = fs[np.random.default_rng(seed + 1).permutation(len(fs))[:m]]
    b = b[:m]
    k, k_std = kid(fs, a, seed=seed)
    kr, _ = kid(b, a, seed=seed)
    return {"fd": frechet_distance(fs, a), "kid": k, "kid_std": k_std, "n_samples": int(m), "n_reference": int(len(a)),
            "real_fd": frechet_distance(b, a), "real_kid": kr,
            "features": "autoencoder trained on the dataset (mem2gen.quality); not Inception FID"}


def point_quality(point, *, n_real: int = 1000) -> dict:
    """The quality of one sweep point's S_eval (``quality.json``, computed once) against a fixed random
    draw of up to ``n_real`` items of the whole dataset (the same for every K, so points compare)."""
    f = point.path / layout.QUALITY
    if f.exists():
        return read_json(f)
    cfg = point.config
    data = point.run.dataset
    pick = np.sort(np.random.default_rng([cfg.split_seed, 7]).permutation(len(data))[:n_real])
    res = {"K": point.k, **quality(np.asarray(point.eval), np.asarray(data[pick]),
                                   dataset_features(cfg.data, cfg.image_size), seed=point.seed("bootstrap") % 2**32)}
    write_json(f, res)
    record_digests(point.path, [layout.QUALITY])
    return res
