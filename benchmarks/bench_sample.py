"""Sampling throughput, DDPM-1000 (the paper's) vs DDIM-n, and how far the memorized / spurious /
generalized fractions move between the two samplers on a finished sweep's models.

    python benchmarks/bench_sample.py RUN_DIR [K ...]     (e.g. runs/quick 8 32 128)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine

from mem2gen import Run, classify
from mem2gen.models.diffusion import sample


def main():
    run = Run(sys.argv[1] if len(sys.argv) > 1 else "runs/quick")
    ks = [int(k) for k in sys.argv[2:]] or [8, 32, 128]
    cfg = run.config
    res = {"machine": machine(), "run": str(run.path), "points": {}}
    print(res["machine"], flush=True)
    for k in ks:
        p = run.point(k)  # the point's own model, training subset, seeds and sizes
        row = {}
        for sampler, steps in (("ddim", 50), ("ddpm", 1000)):
            t = time.perf_counter()
            shape = p.model.sample_shape
            ev = sample(p.model, (cfg.n_eval, *shape), sampler=sampler, steps=steps, seed=p.seed("eval")).numpy()
            syn = sample(p.model, (p.n_synthetic, *shape), sampler=sampler, steps=steps,
                         seed=p.seed("synthetic")).numpy()
            secs = time.perf_counter() - t
            c = classify(ev, p.train_set, syn, distance=cfg.distance, delta_m=cfg.delta_m, delta_s=cfg.delta_s)
            row[f"{sampler}{steps}"] = {"samples_per_s": (len(ev) + len(syn)) / secs, **c.fractions}
        res["points"][k] = row
        a, b = row["ddim50"], row["ddpm1000"]
        print(f"K={k}: DDIM-50 {a['samples_per_s']:.0f}/s, DDPM-1000 {b['samples_per_s']:.1f}/s; fractions "
              f"mem {a['memorized']:.3f} vs {b['memorized']:.3f}, spu {a['spurious']:.3f} vs {b['spurious']:.3f}, "
              f"gen {a['generalized']:.3f} vs {b['generalized']:.3f}", flush=True)
    out = run.path / "bench_sample.json"
    out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
