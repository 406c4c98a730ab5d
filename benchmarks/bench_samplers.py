"""Sampling cost at unchanged fractions: for finished sweep points (default: the quick preset's run),
sample S_eval and S' with cheaper samplers and count a sampler as equivalent at a K when its
memorized, spurious and generalized fractions all lie inside DDPM-1000's 95% bootstrap intervals
(the paper's sampler). Same S_eval/S' sizes and seeds for every sampler; one run, one machine.

    python benchmarks/bench_samplers.py runs/quick --sizes 8,32,128"""
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

from mem2gen import classify
from mem2gen.core.stats import LABELS
from mem2gen.models.diffusion import sample
from mem2gen.runs.run import Run

SAMPLERS = [("ddpm", 1000, 0.0), ("ddpm", 250, 0.0), ("ddpm", 100, 0.0), ("ddim", 100, 1.0), ("ddim", 50, 0.0),
            ("dpm++sde", 50, 0.0), ("dpm++sde", 20, 0.0), ("dpm++", 50, 0.0), ("dpm++", 20, 0.0)]


def draw(model, n, *, sampler, steps, eta, seed, batch=512):
    out = [sample(model, (min(batch, n - lo), *model.sample_shape), sampler=sampler, steps=steps, eta=eta,
                  seed=seed * 1000 + i).numpy() for i, lo in enumerate(range(0, n, batch))]
    return np.concatenate(out)


def main(run_dir: str, sizes: list[int], n_eval: int = 500) -> dict:
    run = Run(run_dir)
    res = {"machine": machine(), "threads": torch.get_num_threads(), "run": run_dir, "n_eval": n_eval, "points": []}
    for k in sizes:
        p = run.point(k)
        model, train = p.model, p.train_set
        n_syn = p.n_synthetic
        rows, ref = [], None
        for sampler, steps, eta in SAMPLERS:
            t = time.perf_counter()
            ev = draw(model, n_eval, sampler=sampler, steps=steps, eta=eta, seed=1)
            syn = draw(model, n_syn, sampler=sampler, steps=steps, eta=eta, seed=2)
            secs = time.perf_counter() - t
            c = classify(ev, train, syn, check_duplicates=False, pixel_range="-1,1")
            boot = c.bootstrap(iterations=2000)
            row = {"sampler": sampler, "steps": steps, "eta": eta, "samples_per_s": round((n_eval + n_syn) / secs, 1),
                   **{n: c.fractions[n] for n in LABELS}, "ci95": {n: boot[n]["ci95"] for n in LABELS}}
            ref = ref or row
            row["equivalent"] = all(ref["ci95"][n][0] <= row[n] <= ref["ci95"][n][1] for n in LABELS)
            row["speedup"] = round(row["samples_per_s"] / ref["samples_per_s"], 1)
            rows.append(row)
            print(f"K={k:<5} {sampler:>9}-{steps:<5} eta={eta:<3} {row['samples_per_s']:>8.1f} samples/s "
                  f"({row['speedup']:>5.1f}x)  mem {row['memorized']:.3f} spu {row['spurious']:.3f} "
                  f"gen {row['generalized']:.3f}  {'equivalent' if row['equivalent'] else 'DIFFERS'}", flush=True)
        res["points"].append({"K": k, "n_synthetic": n_syn, "rows": rows})
    (Path(__file__).parent / "last_samplers.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    a = argparse.ArgumentParser(description=__doc__)
    a.add_argument("run", nargs="?", default="runs/quick")
    a.add_argument("--sizes", default="8,32,128")
    args = a.parse_args()
    main(args.run, [int(s) for s in args.sizes.split(",")])
