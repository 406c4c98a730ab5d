"""Remake the golden outputs that tests/test_golden.py compares against: a tiny sweep (two replicates per K,
the null and the off-manifold check on) and a classify with a held-out set, run on one thread.

    python tests/data/golden/make.py tests/data/golden      # writes results.csv, points.csv, summary.json

Run with the version whose outputs are the reference (they were made before the layers became folders)."""
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

SWEEP = dict(sizes=[4, 16], replicates=2, n_eval=40, sample_steps=20, sample_batch=32, bootstrap_iterations=100,
             quality_check=False, model={"kind": "mlp", "hidden": 128, "depth": 2},
             train={"steps": 400, "batch": 8, "lr": 2e-3, "checkpoint_every": 200})


def classify_sets(folder: Path) -> dict:
    """Eval, train, synthetic and held-out arrays from the built-in digits (uint8 in 0..255)."""
    from mem2gen.io.datasets import load_dataset

    x = np.asarray(load_dataset("digits"))
    x = np.round((x + 1) * 127.5).astype(np.uint8)
    rng = np.random.default_rng(7)
    order = rng.permutation(len(x))
    parts = {"train": order[:60], "held_out": order[60:260]}
    noisy = np.clip(x[order[:60]].astype(int)[rng.integers(0, 60, 130)] + rng.integers(-40, 41, (130, *x.shape[1:])),
                    0, 255).astype(np.uint8)
    paths = {}
    for name, idx in parts.items():
        np.save(folder / f"{name}.npy", x[idx])
        paths[name] = folder / f"{name}.npy"
    np.save(folder / "eval.npy", noisy[:50])
    np.save(folder / "synthetic.npy", noisy[50:])
    return {"eval": folder / "eval.npy", "synthetic": folder / "synthetic.npy", **paths}


def make(out: Path) -> None:
    torch.set_num_threads(1)
    from mem2gen.commands.classify import classify_files
    from mem2gen.io.config import SweepConfig
    from mem2gen.runs.sweep import run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_sweep(SweepConfig.from_dict(SWEEP), tmp / "run", progress=False, echo=lambda *a: None)
        for name in ("results.csv", "points.csv"):
            shutil.copy(tmp / "run" / name, out / name)
        p = classify_sets(tmp)
        classify_files(p["eval"], p["train"], p["synthetic"], held_out=p["held_out"], out=tmp / "c", dataset="mnist",
                       grid=False, iterations=200, progress=False)
        s = json.loads((tmp / "c" / "summary.json").read_text())
        for key in ("seconds", "inputs"):  # wall time; the inputs' paths (their digests are the same)
            s.pop(key, None)
        (out / "summary.json").write_text(json.dumps(s, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    make(Path(sys.argv[1]))
