"""Training throughput.

1. Our loop (mem2gen.train) vs a plain reference loop written as diffusers' unconditional training
   example does it (DDPMScheduler.add_noise, UNet2DModel(...).sample, MSE, clip, Adam, EMAModel),
   on the same UNet2DModel config, at two model sizes: images/s.
2. Several small MLPs trained at once as one vectorised ensemble (torch.func) vs one after another,
   and whether the ensemble's forward pass and gradients equal separate models' bit for bit.
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
from common import machine  # noqa: E402

from mem2gen.datasets import ARCHITECTURES, load_dataset  # noqa: E402
from mem2gen.models import MLP, build_unet, n_params  # noqa: E402
from mem2gen.train import TrainConfig, train  # noqa: E402


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


def ensemble_vs_sequential(m: int, steps: int, batch: int = 128):
    """m MLPs (the quick sweep's) trained one after another vs as one torch.func ensemble."""
    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    data = torch.as_tensor(load_dataset("digits"))
    models = [MLP(sample_shape=(1, 8, 8), hidden=512, depth=3) for _ in range(m)]
    t0 = time.perf_counter()
    for mod in models:
        train(copy.deepcopy(mod), data.numpy(), TrainConfig(steps=steps, batch=batch), progress=False, device="cpu")
    seq = m * steps * batch / (time.perf_counter() - t0)

    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    ab = torch.cumprod(1 - torch.linspace(1e-4, 2e-2, 1000), 0)

    def loss_fn(p, b, x0, t, noise):
        a = ab[t].view(-1, 1, 1, 1)
        pred = functional_call(base, (p, b), (a.sqrt() * x0 + (1 - a).sqrt() * noise, t))
        return F.mse_loss(pred, noise)

    step_fn = vmap(grad_and_value(loss_fn), in_dims=(0, 0, 0, 0, 0))
    opt = torch.optim.Adam(list(params.values()), lr=2e-4)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(data), (m, batch))
        x0 = data[idx]
        t = torch.randint(0, 1000, (m, batch))
        g, _ = step_fn(params, buffers, x0, t, torch.randn_like(x0))
        for k, v in params.items():
            v.grad = g[k]
        opt.step()
    ens = m * steps * batch / (time.perf_counter() - t0)
    return seq, ens


def ensemble_identity(m: int = 6, batch: int = 128) -> dict:
    """The same m MLPs, inputs and loss: forward outputs and parameter gradients of the vmapped
    ensemble against each model on its own (fraction of elements equal bit for bit, largest gap)."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    torch.manual_seed(0)
    models = [MLP(sample_shape=(1, 8, 8), hidden=512, depth=3) for _ in range(m)]
    x, noise = torch.randn(m, batch, 1, 8, 8), torch.randn(m, batch, 1, 8, 8)
    t = torch.randint(0, 1000, (m, batch))
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def loss_fn(p, b, x, t, n):
        return F.mse_loss(functional_call(base, (p, b), (x, t)), n)

    with torch.no_grad():
        out = vmap(lambda p, b, x, t: functional_call(base, (p, b), (x, t)))(params, buffers, x, t)
    grads = vmap(grad(loss_fn))(params, buffers, x, t, noise)
    same_f = same_g = total_g = 0
    gap_f = gap_g = 0.0
    for i, mod in enumerate(models):
        y = mod(x[i], t[i])
        same_f += int((y == out[i]).sum())
        gap_f = max(gap_f, float((y - out[i]).abs().max().detach()))
        mod.zero_grad()
        F.mse_loss(y, noise[i]).backward()
        for name, q in mod.named_parameters():
            same_g += int((q.grad == grads[name][i]).sum())
            total_g += q.numel()
            gap_g = max(gap_g, float((q.grad - grads[name][i]).abs().max().detach()))
    return {"forward_identical": same_f / out.numel(), "forward_max_gap": gap_f,
            "grad_identical": same_g / total_g, "grad_max_gap": gap_g}


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
    seq, ens = ensemble_vs_sequential(6, 150)
    res["ensemble"] = {"models": 6, "sequential_img_s": seq, "ensemble_img_s": ens, "ratio": ens / seq}
    print(f"6 MLPs: sequential {seq:.0f} img/s, torch.func ensemble {ens:.0f} img/s, ratio {ens / seq:.2f}")
    res["ensemble_identity"] = same = ensemble_identity()
    print(f"ensemble vs separate: forward {same['forward_identical']:.4f} of outputs bit-identical (max gap "
          f"{same['forward_max_gap']:.2g}), gradients {same['grad_identical']:.4f} (max gap {same['grad_max_gap']:.2g})")
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
