"""``mem2gen sweep --plan-gpu NAME``: what a sweep would cost on a named GPU, on any machine, in seconds,
without touching CUDA. Nothing is timed: the network's work is counted and the GPU's published peak is
divided into it.

1. Forward FLOPs per image: one forward pass of the sweep's network at batch 1, counted by
   :class:`torch.utils.flop_counter.FlopCounterMode` on the CPU (convolutions, matmuls, attention; the
   elementwise work it leaves out is small beside them), and the number of kernels that pass launches.
2. A training step: 3 × forward FLOPs × batch (backward ≈ 2 × forward), at the GPU's bf16 tensor peak
   when the run trains in bf16 autocast (``train.bf16``), else TF32; sampling: forward FLOPs per image and
   sampler step at the TF32 peak (PyTorch's convolutions use TF32 by default).
3. Time = FLOPs / (peak × utilization), for utilization in :data:`UTILIZATION` (an assumption, printed:
   small diffusion networks at 28×28-32×32 reach a small share of a large GPU's peak), but never less than
   the kernel launches take (:data:`LAUNCH_S` per kernel; a step of a small network is launch-bound).
"""
from __future__ import annotations

GPUS = {  # published dense peaks (no sparsity), TFLOP/s: FP32, TF32 tensor, BF16 tensor; the product's name
    "H100": (67.0, 494.7, 989.4, "NVIDIA H100 SXM5"),
    "H100-PCIE": (51.2, 378.0, 756.0, "NVIDIA H100 PCIe"),
    "H200": (67.0, 494.7, 989.4, "NVIDIA H200 SXM"),
    "A100": (19.5, 156.0, 312.0, "NVIDIA A100 (SXM4 and PCIe)"),
    "L40S": (91.6, 183.0, 362.1, "NVIDIA L40S"),
    "A10": (31.2, 62.5, 125.0, "NVIDIA A10"),
    "V100": (15.7, 15.7, 15.7, "NVIDIA V100 SXM2 (no TF32 or bf16: FP32)"),
    "RTX4090": (82.6, 82.6, 165.2, "NVIDIA GeForce RTX 4090"),
}
UTILIZATION = (0.10, 0.40)  # the share of the peak assumed reached: pessimistic, optimistic (unmeasured here)
LAUNCH_S = 5e-6  # seconds per kernel launch, the floor of a step's time


def gpu_spec(name: str) -> tuple:
    from ..errors import check

    key = str(name).upper().replace(" ", "").replace("_", "-")
    check(key in GPUS, f"--plan-gpu {name!r}: one of {', '.join(GPUS)}")
    return key, GPUS[key]


def count(cfg, shape: tuple) -> dict:
    """Forward FLOPs per image and kernels per forward pass of ``cfg``'s network (built on PyTorch's meta
    device: shapes without data)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    from ..models.networks import build_model, n_params

    class Kernels(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Kernels.n += 1
            return func(*args, **(kwargs or {}))

    fake = torch.zeros((2, *shape))
    if cfg.model.kind == "optimal":
        model, dev = build_model(cfg.model, shape, seed=0, train=fake.numpy()).eval(), "cpu"
    else:  # shapes only: no weights drawn, nothing computed (seconds saved at the paper's 24M parameters)
        with torch.device("meta"):
            model, dev = build_model(cfg.model, shape, seed=0).eval(), "meta"
    x, t = torch.zeros((1, *shape), device=dev), torch.full((1,), 500, dtype=torch.long, device=dev)
    with torch.no_grad(), FlopCounterMode(display=False) as fc, Kernels():
        model(x, t)
    return {"params": n_params(model), "forward_flops": int(fc.get_total_flops()), "kernels": Kernels.n}


def gpu_plan(cfg, ks: list, shape: tuple, name: str) -> dict:
    """Per size K and in total: the seconds of one GPU named ``name`` (optimistic and pessimistic)."""
    key, (fp32, tf32, bf16, product) = gpu_spec(name)
    c = count(cfg, shape)
    trains = cfg.model.kind != "optimal" and not cfg.checkpoints
    train_peak = (bf16 if cfg.train.bf16 else tf32) * 1e12
    rows = []
    for k in ks:
        evals = (cfg.n_eval + cfg.n_synthetic(k)) * (0 if cfg.samples else cfg.sample_steps)
        t_flops = 3 * c["forward_flops"] * cfg.train.batch * cfg.train.steps if trains else 0
        t_floor = 3 * c["kernels"] * LAUNCH_S * cfg.train.steps if trains else 0.0
        s_flops = c["forward_flops"] * evals
        s_floor = c["kernels"] * LAUNCH_S * evals / max(1, min(cfg.sample_batch, evals or 1))
        row = {"K": k, "replicates": cfg.replicates, "train_flops": t_flops, "sample_flops": s_flops}
        for tag, u in zip(("slow", "fast"), UTILIZATION):
            tr, sa = max(t_flops / (train_peak * u), t_floor), max(s_flops / (tf32 * 1e12 * u), s_floor)
            row |= {f"train_s_{tag}": tr, f"sample_s_{tag}": sa, f"seconds_{tag}": (tr + sa) * cfg.replicates}
        rows.append(row)
    return {"gpu": key, "product": product, "peaks_tflops": {"fp32": fp32, "tf32": tf32, "bf16": bf16},
            "train_precision": "bf16" if cfg.train.bf16 else "tf32", "utilization": list(UTILIZATION),
            "launch_s": LAUNCH_S, "counted": c, "points": rows,
            "total": {tag: sum(r[f"seconds_{tag}"] for r in rows) for tag in ("slow", "fast")}}


def print_gpu_plan(g: dict, hms, echo=print) -> None:
    c, u = g["counted"], g["utilization"]
    echo(f"plan for one {g['product']} (not timed: {c['forward_flops'] / 1e9:.3g} GFLOPs per image per forward pass "
         f"and {c['kernels']} kernels counted on the {c['params'] / 1e6:.2f}M-parameter network; training at the "
         f"{g['train_precision']} peak {g['peaks_tflops'][g['train_precision']]:g} TFLOP/s, sampling at TF32 "
         f"{g['peaks_tflops']['tf32']:g}; assumed {u[0]:.0%}-{u[1]:.0%} of peak, never faster than "
         f"{g['launch_s'] * 1e6:g} us per kernel launch)")
    echo(f"{'K':>7} {'models':>6} {'train':>19} {'sample':>19}   (each: optimistic - pessimistic)")
    for r in g["points"]:
        echo(f"{r['K']:>7} {r['replicates']:>6} {hms(r['train_s_fast']):>9} - {hms(r['train_s_slow']):<7} "
             f"{hms(r['sample_s_fast']):>9} - {hms(r['sample_s_slow']):<7}")
    t = g["total"]
    echo(f"total on one {g['gpu']}: {hms(t['fast'])} to {hms(t['slow'])} (uncertain by the utilization assumed, "
         f"about 4x; data loading, the neighbour searches and the bootstrap left out)")
