"""Training throughput.

1. Our loop (mem2gen.train) vs a plain reference loop written as diffusers' unconditional training
   example does it (DDPMScheduler.add_noise, UNet2DModel(...).sample, MSE, clip, Adam, EMAModel),
   on the same UNet2DModel config, at two model sizes: images/s.
2. 3, 8 and 16 of the spurious preset's MLPs trained at once (mem2gen.ensemble, train.ensemble) vs one
   after another (mem2gen.train), at one and two threads; whether diffusers' U-Net runs under torch.func.vmap.
"""
from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import machine

from mem2gen.io.datasets import ARCHITECTURES, load_dataset
from mem2gen.models.ensemble import train_ensemble
from mem2gen.models.networks import MLP, build_unet, n_params
from mem2gen.models.train import TrainConfig, train


def reference_loop(unet, data, steps, batch):
    from diffusers import DDPMScheduler
    from diffusers.training_utils import EMAModel

    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    opt = torch.optim.Adam(unet.parameters(), lr=2e-4)
    ema = EMAModel(unet.parameters(), decay=0.9999, use_ema_warmup=True)
    x = torch.as_tensor(data).float()
    if data.dtype == np.uint8:
        x = x / 127.5 - 1
    t0 = time.perf_counter()
    for _ in range(steps):
        clean = x[torch.randint(0, len(x), (batch,))]
        noise = torch.randn_like(clean)
        t = torch.randint(0, 1000, (batch,))
        loss = F.mse_loss(unet(sched.add_noise(clean, noise, t), t).sample, noise)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.step(unet.parameters())
    return steps * batch / (time.perf_counter() - t0)


def ours(model, data, steps, batch):
    t0 = time.perf_counter()
    train(model, data, TrainConfig(steps=steps, batch=batch), progress=False, device="cpu")
    return steps * batch / (time.perf_counter() - t0)


def ensemble_vs_sequential(m: int, steps: int, *, threads: int, batch: int = 128) -> tuple[float, float]:
    """m of the spurious preset's MLPs (2.0M, 8×8 digits) trained by mem2gen.train one after another vs by
    mem2gen.models.ensemble.train_ensemble at once: member-steps per second, both with ``threads`` threads."""
    torch.set_num_threads(threads)
    data = load_dataset("digits")[:64]
    models = [MLP(sample_shape=(1, 8, 8), hidden=512, depth=3) for _ in range(m)]
    cfgs = [TrainConfig(steps=steps, batch=batch, lr=1e-3, seed=i) for i in range(m)]
    train_ensemble([copy.deepcopy(x) for x in models[:2]], [data] * 2, cfgs[:2], progress=False,
                   device="cpu")  # warm-up
    t0 = time.perf_counter()
    for mod, c in zip(models, cfgs):
        train(copy.deepcopy(mod), data, c, progress=False, device="cpu")
    seq = m * steps / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    train_ensemble([copy.deepcopy(x) for x in models], [data] * m, cfgs, progress=False, device="cpu")
    ens = m * steps / (time.perf_counter() - t0)
    return seq, ens


def unet_under_vmap() -> str:
    """Whether diffusers' U-Net runs under torch.func.vmap (the route to stacking U-Nets): '' or the error."""
    from torch.func import functional_call, stack_module_state, vmap

    nets = [build_unet(ARCHITECTURES["digits-small"]) for _ in range(2)]
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")
    try:
        vmap(lambda p, b, x, t: functional_call(base, (p, b), (x, t)))(params, buffers, torch.randn(2, 4, 1, 8, 8),
                                                                     torch.randint(0, 1000, (2, 4)))
        return ""
    except RuntimeError as e:
        return str(e).splitlines()[0][:160]


def main():
    torch.manual_seed(0)
    res = {"machine": machine()}
    print(res["machine"], flush=True)
    digits = load_dataset("digits")
    mnist = load_dataset("mnist5k")
    for name, data, steps, batch in (("digits-small", digits, 60, 128), ("mnist-small", mnist, 12, 64)):
        unet = build_unet(ARCHITECTURES[name])
        ref = reference_loop(copy.deepcopy(unet.unet).train(), data, steps, batch)
        our = ours(copy.deepcopy(unet), data, steps, batch)
        res[name] = {"params_M": n_params(unet) / 1e6, "reference_img_s": ref, "ours_img_s": our, "ratio": our / ref}
        print(f"{name} ({n_params(unet) / 1e6:.2f}M): reference {ref:.0f} img/s, ours {our:.0f} img/s, "
              f"ratio {our / ref:.2f}", flush=True)
    res["ensemble"] = []
    for threads in (1, 2):
        for m in (3, 8, 16):
            seq, ens = ensemble_vs_sequential(m, 60, threads=threads)
            res["ensemble"].append({"members": m, "threads": threads, "sequential_steps_s": seq,
                                    "ensemble_steps_s": ens, "ratio": ens / seq})
            print(f"{m} MLPs, {threads} thread(s): one after another {seq:.1f} model-steps/s, ensemble {ens:.1f}, "
                  f"ratio {ens / seq:.2f}", flush=True)
    res["unet_vmap_error"] = err = unet_under_vmap()
    print("U-Net under torch.func.vmap: " + (err or "runs"))
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
