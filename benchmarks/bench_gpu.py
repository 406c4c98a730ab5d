"""What only an accelerator can show, in one run on one device (paper presets' networks, Table 2):

1. training throughput (img/s) of the paper's U-Nets: fp32, fp32 with TF32 matmuls/convolutions (the
   authors' setting), bf16 autocast, each also with channels_last, and torch.compile on the best;
2. sampling throughput: one ε-network evaluation at the sampling batch, as DDPM-1000 samples/s;
3. the exact neighbour search at BENCHMARKS.md's shape (10,000 × (60,000 + 240,000), 784-d) on the device;
4. does bf16 training change the fractions? The same small sweep trained with ``train.bf16`` on and off
   (both on the device, same seeds): per K, each fraction and whether it lies in the other's 95% interval;
5. replicates for less: 3, 8 and 16 of the spurious preset's MLPs trained at once (train.ensemble) against
   one after another.

    python benchmarks/bench_gpu.py [OUT.json] [--device cuda] [--quick]

``--quick`` shrinks every part (a smoke run; it also runs on a CPU with ``--device cpu``). Ratios are
against fp32 in the same run. Nothing here is asserted: the figures go to BENCHMARKS.md with the device.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import machine

from mem2gen.core.kernels import tf32 as tf32_flags
from mem2gen.io.datasets import ARCHITECTURES
from mem2gen.models.networks import build_unet, n_params


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_rate(arch: str, device, *, batch: int, steps: int, bf16: bool, tf32: bool, channels_last: bool,
               compile: bool) -> float:
    """Images/s of forward + backward + Adam on random data at ``arch``'s resolution (after warm-up), with
    the TF32 flags set for this variant only (restored after, so later figures are what they say)."""
    with tf32_flags(tf32):
        return _train_rate(arch, device, batch=batch, steps=steps, bf16=bf16, channels_last=channels_last,
                           compile=compile)


def _train_rate(arch, device, *, batch, steps, bf16, channels_last, compile) -> float:
    a = ARCHITECTURES[arch]
    model = build_unet(a).to(device).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    step_model = torch.compile(model) if compile else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch, a.channels, a.sample_size, a.sample_size, device=device).to(memory_format=fmt)
    t = torch.randint(0, 1000, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.mse_loss(step_model(x, t).float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3 if not compile else 5):  # warm-up (and compilation)
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * batch / (time.perf_counter() - t0)


@torch.no_grad()
def sample_rate(arch: str, device, *, batch: int, evals: int, bf16: bool) -> float:
    """DDPM-1000 samples/s implied by the time of one network evaluation at ``batch``."""
    a = ARCHITECTURES[arch]
    model = build_unet(a).to(device).eval()
    x = torch.randn(batch, a.channels, a.sample_size, a.sample_size, device=device)
    t = torch.full((batch,), 500, device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        model(x, t)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(evals):
            model(x, t)
        sync(device)
    per_eval = (time.perf_counter() - t0) / evals
    return batch / (1000 * per_eval)


def search_time(device, *, n: int, refs: tuple[int, int]) -> float:
    """Seconds for the two exact searches of one classification (train and synthetic), float data."""
    from mem2gen.core.neighbors import nearest

    rng = np.random.default_rng(0)
    q = rng.uniform(-1, 1, (n, 784)).astype(np.float32)
    t0 = time.perf_counter()
    for m in refs:
        nearest(q, rng.uniform(-1, 1, (m, 784)).astype(np.float32), 2, device=device)
    sync(device)
    return time.perf_counter() - t0


def bf16_fractions(device, *, quick: bool) -> dict:
    """The quick preset's sweep (digits, U-Net digits-small for a convolutional network) trained with bf16
    autocast and in fp32 on ``device``: per K, each fraction and its 95% interval, and agreement."""
    from mem2gen.runs.sweep import sweep

    over = {"model.kind": "unet", "model.arch": "digits-small", "device": str(device), "quality_check": False}
    if quick:
        over |= {"sizes": [2, 64], "train.steps": 60, "n_eval": 40, "sample_steps": 20}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for bf16 in (False, True):
            res = sweep(preset="quick", overrides=over | {"train.bf16": bf16}, out=Path(tmp) / f"bf16={bf16}",
                        progress=False, echo=lambda *a: None)
            out[f"bf16={bf16}"] = {int(r["K"]): {c: (r[f"frac_{c}"], r[f"lo95_{c}"], r[f"hi95_{c}"])
                                                 for c in ("memorized", "spurious", "generalized")}
                                   for r in res["rows"]}
    a, b = out["bf16=False"], out["bf16=True"]
    out["agree"] = {k: all(a[k][c][1] <= b[k][c][0] <= a[k][c][2] for c in a[k]) for k in a}
    return out


def ensemble_rates(device, *, members: int, steps: int) -> dict:
    """The spurious preset's MLP (2.0M, 8×8 digits, batch 128): ``members`` models trained one after
    another (mem2gen.train) vs at once (mem2gen.ensemble, train.ensemble): member-steps per second."""
    import copy

    from mem2gen.io.datasets import load_dataset
    from mem2gen.models.ensemble import train_ensemble
    from mem2gen.models.networks import MLP
    from mem2gen.models.train import TrainConfig, train

    data = load_dataset("digits")[:64]
    models = [MLP(sample_shape=(1, 8, 8), hidden=512, depth=3) for _ in range(members)]
    cfgs = [TrainConfig(steps=steps, batch=128, lr=1e-3, seed=i) for i in range(members)]
    train(copy.deepcopy(models[0]), data, TrainConfig(steps=3, batch=128), progress=False, device=device)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for m, c in zip(models, cfgs):
        train(copy.deepcopy(m), data, c, progress=False, device=device)
    sync(device)
    seq = members * steps / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    train_ensemble([copy.deepcopy(m) for m in models], [data] * members, cfgs, progress=False, device=device)
    sync(device)
    ens = members * steps / (time.perf_counter() - t0)
    return {"sequential_steps_s": seq, "ensemble_steps_s": ens, "ratio": ens / seq}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=None, help="write the results here as JSON")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run (works on a CPU)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_gpu: no CUDA device here (use --device cpu --quick for a smoke run)")
    res = {"machine": machine(), "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    print(res["machine"], flush=True)
    archs = ["digits-small"] if args.quick else ["mnist", "cifar10"]
    steps, batch = (2, 8) if args.quick else (30, 128)
    variants = [("fp32", dict(bf16=False, tf32=False, channels_last=False, compile=False)),
                ("tf32", dict(bf16=False, tf32=True, channels_last=False, compile=False)),
                ("tf32+channels_last", dict(bf16=False, tf32=True, channels_last=True, compile=False)),
                ("bf16", dict(bf16=True, tf32=True, channels_last=False, compile=False)),
                ("bf16+channels_last", dict(bf16=True, tf32=True, channels_last=True, compile=False))]
    if device.type == "cuda":
        variants.append(("bf16+compile", dict(bf16=True, tf32=True, channels_last=False, compile=True)))
    def save():  # after every figure: a later failure or a kill keeps what was measured
        if args.out:
            Path(args.out).write_text(json.dumps(res, indent=1, default=str))

    def measure(what, fn):
        """One figure, isolated: an error (a failed torch.compile, out of memory) is recorded, not fatal."""
        try:
            return fn()
        except Exception as e:
            print(f"{what}: failed ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})", flush=True)
            return {"error": f"{type(e).__name__}: {str(e)[:300]}"}

    # the device's start-up (context, cuDNN autotuning, allocator) before any timed variant
    measure("warm-up", lambda: train_rate(archs[0], device, batch=batch, steps=2, bf16=False, tf32=False,
                                          channels_last=False, compile=False))
    res["train"] = {}
    for arch in archs:
        row = res["train"][arch] = {"params_M": n_params(build_unet(ARCHITECTURES[arch])) / 1e6}
        for name, kw in variants:
            row[name] = measure(f"train {arch} {name}",
                                lambda arch=arch, kw=kw: train_rate(arch, device, batch=batch, steps=steps, **kw))
            if isinstance(row[name], float) and isinstance(row.get("fp32"), float):
                print(f"train {arch}: {name} {row[name]:.0f} img/s ({row[name] / row['fp32']:.2f}x fp32)", flush=True)
            save()
    res["sample"] = {}
    for arch in archs:
        row = res["sample"][arch] = {}
        for name, bf16 in (("fp32", False), ("bf16", True)):
            row[name] = measure(f"sample {arch} {name}", lambda arch=arch, bf16=bf16: sample_rate(
                arch, device, batch=64 if args.quick else 1024, evals=2 if args.quick else 20, bf16=bf16))
            save()
        show = {k: f"{v:.1f}" if isinstance(v, float) else v for k, v in row.items()}
        print(f"sample {arch}: DDPM-1000 {show['fp32']} samples/s fp32, {show['bf16']} bf16", flush=True)
    res["ensemble"] = {}
    for m in (3, 8, 16):
        r = res["ensemble"][m] = measure(f"ensemble {m}", lambda m=m: ensemble_rates(device, members=m,
                                                                                 steps=3 if args.quick else 200))
        save()
        if "ratio" in r:
            print(f"ensemble of {m} MLPs: {r['ensemble_steps_s']:.0f} vs {r['sequential_steps_s']:.0f} model-steps/s "
                  f"one after another ({r['ratio']:.2f}x)", flush=True)
    n, refs = (200, (1000, 4000)) if args.quick else (10_000, (60_000, 240_000))
    res["search_s"] = measure("search", lambda: search_time(device, n=n, refs=refs))
    save()
    shown = f"{res['search_s']:.2f}" if isinstance(res["search_s"], float) else res["search_s"]
    print(f"search {n} x ({refs[0]} + {refs[1]}), 784-d (full fp32): {shown} s", flush=True)
    res["bf16_fractions"] = measure("bf16 fractions", lambda: bf16_fractions(device, quick=args.quick))
    save()
    print("bf16 vs fp32 fractions inside each other's 95% interval, per K:", res["bf16_fractions"].get("agree"))


if __name__ == "__main__":
    main()
