"""Landscape tools against the naive way, same run:
- recovery times of 1,000 samples of a quick-preset point: bisection over t (mem2gen) vs the released
  code's linear scan of t with stride 25 (extrapolated from a subset);
- Hessian extreme eigenvalues at d = 784: Lanczos on Jacobian-vector products vs the full Jacobian
  (d JVPs via torch.func.jacfwd) and a dense eigendecomposition.

    python benchmarks/bench_landscape.py RUN_DIR [K]      (e.g. runs/quick 128)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine

from mem2gen import Run
from mem2gen.analyses import landscape as L
from mem2gen.analyses import recovery as R
from mem2gen.io.config import ModelSpec
from mem2gen.models.networks import build_model


def main():
    run = Run(sys.argv[1] if len(sys.argv) > 1 else "runs/quick")
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    p = run.point(k)
    res = {"machine": machine(), "run": str(run.path), "K": k}
    print(res["machine"], flush=True)
    x = np.concatenate([p.eval, p.synthetic])[:1000]  # S_eval (500 in the quick preset), then S'

    delta = 0.25 * R.nn_spacing(p.train_set)
    t = time.perf_counter()
    rec = R.recovery_times(p.model, x, delta=delta, trials=10, steps=20)
    res["bisection_s"] = time.perf_counter() - t
    res["bisection_evaluations"] = rec.evaluations
    sub = 100
    t = time.perf_counter()
    lin = R.recovery_times_linear(p.model, x[:sub], delta=delta, trials=10, steps=20, stride=25)
    res["linear_s_extrapolated"] = (time.perf_counter() - t) * len(x) / sub
    same = R.recovery_times(p.model, x[:sub], delta=delta, trials=10, steps=20).t_c  # the scan's noises
    res["agree_within_stride"] = float(np.mean((lin <= same) & (same < lin + 25)))
    print(f"recovery times, {len(x)} samples x 10 trials, DDIM-20: bisection {res['bisection_s']:.1f} s; "
          f"linear scan (stride 25) {res['linear_s_extrapolated']:.0f} s extrapolated from {sub}; "
          f"speed-up {res['linear_s_extrapolated'] / res['bisection_s']:.1f}x; bisection t_c inside the scan's "
          f"cell for {res['agree_within_stride']:.0%} of {sub}", flush=True)

    # Hessian at d = 784: a small U-Net of the mnist5k preset's shape (random weights: timing only)
    torch.manual_seed(0)
    model = build_model(ModelSpec(kind="unet", arch="mnist-small"), (1, 28, 28)).eval()
    x1 = torch.randn(1, 1, 28, 28)
    t = time.perf_counter()
    e = L.hessian_eigs(model, x1, 100, k=3, which="smallest")
    res["lanczos_s"], res["lanczos_products"] = time.perf_counter() - t, e.matvecs
    tt = torch.full((1,), 100)
    t = time.perf_counter()
    with torch.no_grad(), torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        J = torch.func.jacfwd(lambda z: model(z.reshape(1, 1, 28, 28), tt).reshape(-1))(x1.reshape(-1))
    H = 0.5 * (J + J.T) / float((1 - L.Schedule().alphas_cumprod[100]).sqrt())
    ref = np.linalg.eigvalsh(H.double().numpy())[:3]
    res["full_s"] = time.perf_counter() - t
    res["max_rel_err"] = float(np.max(np.abs(e.values - ref) / np.abs(ref)))
    print(f"Hessian, 3 smallest eigenvalues at d = 784: Lanczos {res['lanczos_s']:.1f} s ({e.matvecs} products, "
          f"{e.matvecs / 3:.0f} per eigenvalue); full Jacobian + eigh {res['full_s']:.1f} s; "
          f"speed-up {res['full_s'] / res['lanczos_s']:.1f}x; largest relative difference {res['max_rel_err']:.1e}",
          flush=True)
    (run.path / "bench_landscape.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
