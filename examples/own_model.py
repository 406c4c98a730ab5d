"""Classify your own diffusion model's samples, from a diffusers pipeline to a phase diagram.

Stands in for "a model you already have": for three training-set sizes K it trains a small diffusers
``UNet2DModel`` with a plain diffusers training loop (your code, not mem2gen's) on the first K of
scikit-learn's 8×8 digits, and saves each as a ``DDPMPipeline`` folder. Then mem2gen takes over:
load the pipeline, sample S_eval and S' with different seeds, label every sample (paper eqs 4-6),
check the samples are data-like, and draw the phase diagram.

    python examples/own_model.py --out runs/own-model      # a few minutes on 2 CPU cores

With a real model, start at step 2 with its folder (or a Hub id in your local cache).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def train_pipeline(images: np.ndarray, folder: Path, *, steps: int, seed: int = 0) -> None:
    """1. Your model: any unconditional DDPMPipeline with the paper's linear-β ε schedule."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(32, 64),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       layers_per_block=1, norm_num_groups=8)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    opt = torch.optim.Adam(unet.parameters(), lr=1e-3)
    x = torch.from_numpy(images).float()
    for _ in range(steps):
        x0 = x[torch.randint(0, len(x), (64,))]
        t = torch.randint(0, 1000, (len(x0),))
        noise = torch.randn_like(x0)
        loss = torch.nn.functional.mse_loss(unet(sched.add_noise(x0, noise, t), t).sample, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
    DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(folder)


def main(out: Path, *, sizes=(4, 64, 1024), steps: int = 400, n_eval: int = 200, cap: int = 1024) -> list[dict]:
    import mem2gen
    from mem2gen.core.plots import phase_diagram
    from mem2gen.core.quality import quality, train_features
    from mem2gen.core.stats import LABELS, capacities
    from mem2gen.io.datasets import load_dataset
    from mem2gen.models.sample import generate

    digits = load_dataset("digits")  # float32 in [-1, 1], (1797, 1, 8, 8)
    order = np.random.default_rng(0).permutation(len(digits))
    features = train_features(digits)
    rows = []
    for k in sizes:
        train = digits[order[:k]]
        folder = out / f"K={k}" / "pipeline"
        if not (folder / "model_index.json").exists():
            train_pipeline(train, folder, steps=steps)
        # 2. mem2gen: the pipeline as it is (its scheduler config is checked), S_eval and S' from two seeds
        model = mem2gen.load_model(folder)
        kw = dict(sampler="ddim", steps=50, batch=256, progress=False)
        ev = generate(model, n_eval, out / f"K={k}" / "eval.npy", seed=1, **kw)
        syn = generate(model, min(4 * k, cap), out / f"K={k}" / "synthetic.npy", seed=2, **kw)  # |S'| = 4·K
        # 3. the rule, with its error bars, and whether "generalized" means data-like
        res = mem2gen.classify(ev, train, syn, check_duplicates=False)
        boot = res.bootstrap(iterations=2000)
        q = quality(ev, digits, features)
        row = {"K": k, **{f"count_{n}": int(c) for n, c in zip(LABELS, res.counts)}, "fd": q["fd"]}
        for n in LABELS:
            row |= {f"frac_{n}": res.fractions[n], f"mean_{n}": boot[n]["mean"], f"std_{n}": boot[n]["std"],
                    f"lo95_{n}": boot[n]["ci95"][0], f"hi95_{n}": boot[n]["ci95"][1]}
        rows.append(row)
        print(f"K={k:>5}: memorized {res.fractions['memorized']:.3f}, spurious {res.fractions['spurious']:.3f}, "
              f"generalized {res.fractions['generalized']:.3f}; FD {q['fd']:.2f} (real data: {q['real_fd']:.2f})")
    # 4. the phase diagram (capacities with the paper's tolerance)
    caps = capacities([r["K"] for r in rows], *([r[f"frac_{n}"] for r in rows] for n in LABELS))
    phase_diagram(rows, caps, out / "phase.png", title="your model, DDIM-50")
    print(f"MC = {caps['MC']}, GC = {caps['GC']}; wrote {out / 'phase.png'}")
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/own-model"))
    p.add_argument("--steps", type=int, default=400, help="training steps of each stand-in model")
    p.add_argument("--n-eval", type=int, default=200, help="|S_eval|")
    p.add_argument("--cap", type=int, default=1024, help="|S'| = min(4 K, cap)")
    a = p.parse_args()
    main(a.out, steps=a.steps, n_eval=a.n_eval, cap=a.cap)
