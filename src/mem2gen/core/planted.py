"""A built-in planted example: sets whose right labels are known by construction.

From scikit-learn's digits (8×8, no download): S is a fixed-seed subset; evaluation samples are
(a) copies of training digits with faint noise — memorized; (b) blends of two training digits that
the "model" also produced many times in S' — spurious; (c) held-out real digits — generalized.
"""
from __future__ import annotations

import numpy as np

from ..io.datasets import load_dataset


def digits(seed: int = 3407) -> np.ndarray:
    """scikit-learn's 1,797 digits as float32 (N, 1, 8, 8) in [-1, 1], in a fixed-seed order."""
    x = load_dataset("digits")
    return x[np.random.default_rng(seed).permutation(len(x))]


def planted(n_train: int = 300, n_each: int = 100, seed: int = 0):
    """(eval, train, synthetic, truth): truth holds 0 memorized, 1 spurious, 2 generalized."""
    rng = np.random.default_rng(seed)
    x = digits()
    train, held = x[:n_train], x[n_train:]
    noise = lambda a, s: np.clip(a + s * rng.standard_normal(a.shape).astype(np.float32), -1, 1)  # noqa: E731
    # Blends: 50/50 mixtures of two training digits, each made several times by the "model".
    n_blend = n_each
    pairs = rng.choice(n_train, size=(n_blend, 2))
    blends = 0.5 * (train[pairs[:, 0]] + train[pairs[:, 1]])
    mem = noise(train[rng.choice(n_train, n_each, replace=False)], 0.01)
    spu = noise(blends, 0.02)
    gen = held[:n_each]
    eval_set = np.concatenate([mem, spu, gen])
    truth = np.repeat(np.array([0, 1, 2], dtype=np.int8), n_each)
    synthetic = np.concatenate([noise(train[rng.choice(n_train, 2 * n_train)], 0.01),
                                noise(np.repeat(blends, 3, axis=0), 0.02),
                                held[n_each:n_each + n_train]])
    return eval_set, train, synthetic.astype(np.float32), truth
