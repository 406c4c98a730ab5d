"""DenseAM retrieval: 10,000 queries against 10,000 stored 784-dimensional patterns, 20 iterations,
as a ratio to the plain matrix products of the same shapes (two per iteration: x·Yᵀ and w·Y).

    python benchmarks/bench_memory.py [--n 10000 --k 10000 --d 784 --iters 20 --dtype float32]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine

from mem2gen.memory import DenseAM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=784)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    dt = getattr(torch, a.dtype)
    rng = np.random.default_rng(0)
    y = rng.standard_normal((a.k, a.d))
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    x = rng.standard_normal((a.n, a.d)) / np.sqrt(a.d)
    am = DenseAM(y, beta=10.0, dtype=dt)
    t = time.perf_counter()
    am.retrieve(x, steps=a.iters)
    ours = time.perf_counter() - t

    X, Y = torch.as_tensor(x, dtype=dt), torch.as_tensor(y, dtype=dt)
    S = torch.empty(4096, a.k, dtype=dt)
    t = time.perf_counter()
    for _ in range(a.iters):
        for s in range(0, a.n, 4096):
            q = X[s:s + 4096]
            sc = S[: len(q)]
            torch.mm(q, Y.T, out=sc)
            sc @ Y
    gemm = time.perf_counter() - t
    flops = 4 * a.n * a.k * a.d * a.iters
    res = {"machine": machine(), "shape": f"{a.n} queries x {a.k} patterns x {a.d}, {a.iters} iterations, {a.dtype}",
           "ours_s": ours, "gemm_s": gemm, "ratio_to_gemm": gemm / ours, "gemm_gflops": flops / gemm / 1e9}
    print(json.dumps(res, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
