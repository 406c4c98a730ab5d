"""Score networks: the DDPM U-Net from diffusers (paper Table 2) and a small MLP for flat or tiny data.

Every model here is an ε-model: ``model(x, t) -> ε̂`` with x of shape (B, C, H, W) and t integer steps.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from .errors import Mem2genError, check


@dataclass(frozen=True)
class UNetPreset:
    """The DDPM U-Net (Ho et al.): 2 residual blocks per resolution, attention at 16×16."""

    sample_size: int
    channels: int
    base: int
    multipliers: tuple
    layers_per_block: int = 2
    attention_resolutions: tuple = (16,)
    dropout: float = 0.0
    norm_groups: int = 32

    def scaled(self, width: float) -> "UNetPreset":
        """The same architecture with base channels × width (kept a multiple of the norm groups)."""
        base = max(self.norm_groups, int(round(self.base * width / self.norm_groups)) * self.norm_groups)
        return replace(self, base=base)


# Paper Table 2 (parameter counts there: 24.5M, 24.5M, 35.7M, 61.7M), plus small CPU presets.
UNET_PRESETS = {
    "mnist": UNetPreset(28, 1, 128, (1, 2, 2)),
    "fashion-mnist": UNetPreset(28, 1, 128, (1, 2, 2)),
    "cifar10": UNetPreset(32, 3, 128, (1, 2, 2, 2), dropout=0.1),
    "lsun-church": UNetPreset(64, 3, 96, (1, 1, 2, 2, 4, 4)),
    "mnist-small": UNetPreset(28, 1, 32, (1, 2, 2), layers_per_block=1, attention_resolutions=(), norm_groups=8),
    "digits-small": UNetPreset(8, 1, 32, (1, 2), layers_per_block=1, attention_resolutions=(), norm_groups=8),
}


class UNet(nn.Module):
    """diffusers ``UNet2DModel`` as an ε-model; saved and loaded in diffusers' own layout."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        cfg = unet.config
        self.sample_shape = (cfg.in_channels, cfg.sample_size, cfg.sample_size) if isinstance(
            cfg.sample_size, int) else (cfg.in_channels, *cfg.sample_size)

    def forward(self, x, t):
        return self.unet(x, t).sample


def build_unet(preset: UNetPreset, *, dropout: float | None = None) -> UNet:
    from diffusers import UNet2DModel

    chans = tuple(preset.base * m for m in preset.multipliers)
    res = [preset.sample_size // 2 ** i for i in range(len(chans))]
    down = tuple("AttnDownBlock2D" if r in preset.attention_resolutions else "DownBlock2D" for r in res)
    up = tuple("AttnUpBlock2D" if r in preset.attention_resolutions else "UpBlock2D" for r in reversed(res))
    unet = UNet2DModel(sample_size=preset.sample_size, in_channels=preset.channels, out_channels=preset.channels,
                       layers_per_block=preset.layers_per_block, block_out_channels=chans,
                       down_block_types=down, up_block_types=up, norm_num_groups=preset.norm_groups,
                       dropout=preset.dropout if dropout is None else dropout, downsample_padding=0,
                       flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6, attention_head_dim=None)
    return UNet(unet)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer steps (Transformer / DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class MLP(nn.Module):
    """A small residual MLP ε-model for flat or tiny images (e.g. 8×8 digits) on a CPU."""

    def __init__(self, *, sample_shape: tuple, hidden: int = 512, depth: int = 3, time_dim: int = 128,
                 dropout: float = 0.0):
        super().__init__()
        self.sample_shape = tuple(sample_shape)
        self.config = dict(sample_shape=list(sample_shape), hidden=hidden, depth=depth, time_dim=time_dim,
                           dropout=dropout)
        d = math.prod(sample_shape)
        self.time_dim = time_dim
        self.inp = nn.Linear(d, hidden)
        self.time = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(),
                                                  nn.Dropout(dropout), nn.Linear(hidden, hidden))
                                    for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, d))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x, t):
        h = self.inp(x.reshape(len(x), -1)) + self.time(timestep_embedding(t, self.time_dim))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h).reshape(x.shape)


@dataclass(frozen=True)
class ModelSpec:
    """What to build: ``kind`` 'mlp' or 'unet', a U-Net preset name or the MLP's size, a width knob."""

    kind: str = "mlp"
    preset: str = "digits-small"
    width: float = 1.0
    hidden: int = 512
    depth: int = 3
    dropout: float | None = None

    def build(self, sample_shape: tuple, *, seed: int = 0) -> nn.Module:
        """The network, its initial weights drawn from ``seed`` (the global RNG is left untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._build(sample_shape)

    def _build(self, sample_shape: tuple) -> nn.Module:
        if self.kind == "mlp":
            return MLP(sample_shape=sample_shape, hidden=int(self.hidden * self.width), depth=self.depth,
                       dropout=self.dropout or 0.0)
        check(self.kind == "unet", f"unknown model kind {self.kind!r}; use mlp or unet")
        check(self.preset in UNET_PRESETS, f"unknown U-Net preset {self.preset!r}; use one of {sorted(UNET_PRESETS)}")
        p = UNET_PRESETS[self.preset].scaled(self.width)
        check((p.channels, p.sample_size, p.sample_size) == tuple(sample_shape),
              f"U-Net preset {self.preset} is for {p.channels}x{p.sample_size}x{p.sample_size} images, "
              f"the data are {'x'.join(map(str, sample_shape))}; choose a matching preset")
        return build_unet(p, dropout=self.dropout)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_model(model: nn.Module, path, *, meta: dict | None = None) -> None:
    """Weights as safetensors; a U-Net in diffusers' ``save_pretrained`` layout (loadable by diffusers)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if isinstance(model, UNet):
        model.unet.save_pretrained(path, safe_serialization=True)
        kind, cfg = "unet", {}
    else:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(path / "model.safetensors"))
        kind, cfg = "mlp", model.config
    (path / "mem2gen.json").write_text(json.dumps({**(meta or {}), "kind": kind, "config": cfg}, indent=2))


def load_model(path, *, device=None) -> nn.Module:
    """A model saved by :func:`save_model`, or any diffusers ``UNet2DModel`` directory (also a
    ``DDPMPipeline`` directory with a ``unet/`` subfolder). Never unpickles code."""
    path = Path(path)
    check(path.is_dir(), f"{path}: no such model directory")
    meta = path / "mem2gen.json"
    try:
        if meta.exists() and json.loads(meta.read_text())["kind"] == "mlp":
            from safetensors.torch import load_file

            model = MLP(**json.loads(meta.read_text())["config"])
            model.load_state_dict(load_file(str(path / "model.safetensors")))
        else:
            from diffusers import UNet2DModel

            sub = "unet" if (path / "unet" / "config.json").exists() else None
            check((path / (sub or "") / "config.json").exists(),
                  f"{path}: neither a mem2gen model nor a diffusers UNet2DModel directory")
            model = UNet(UNet2DModel.from_pretrained(path, subfolder=sub, use_safetensors=None))
    except Mem2genError:
        raise
    except Exception as e:  # noqa: BLE001 - corrupt or foreign files are a user error
        raise Mem2genError(f"{path}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    return model.to(device or "cpu").eval()
