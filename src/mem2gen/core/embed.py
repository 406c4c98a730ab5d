"""Distance spaces (paper §2.1: l2 and LPIPS). Each distance the rule uses is d(a, b) = scale · ‖φ(a) − φ(b)‖^power
for an embedding φ, so exact nearest neighbours are a matrix-product search over embeddings.

- ``l2``: φ = flattened pixels in [-1, 1], power 1 (Euclidean norm, not squared).
- ``lpips``: φ concatenates, over layers l, the channel-normalised backbone features scaled by
  √(w_lc / (H_l·W_l)); then ‖φ(x) − φ(y)‖² *is* the LPIPS score (power 2). This holds because all
  published LPIPS linear weights are non-negative (checked on load).
- ``features``: user-supplied vectors, ``l2`` (power 1) or ``cosine`` (1 − cos = ½‖â − b̂‖²).
"""
from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import Mem2genError, check
from ..io.data import to_float


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class PixelSpace:
    """Euclidean distance on pixels in [-1, 1] (MNIST, FashionMNIST in the paper)."""

    name: str = "l2"
    power: int = 1
    scale: float = 1.0
    pixels: bool = True

    def embed(self, block: np.ndarray, *, exact: bool = False) -> torch.Tensor:
        return torch.from_numpy(to_float(block, np.float64 if exact else np.float32))


@dataclass(frozen=True)
class FeatureSpace:
    """User-supplied embeddings (e.g. SSCD, DINO) compared by ``l2`` or ``cosine`` distance."""

    metric: str = "l2"
    pixels: bool = False

    def __post_init__(self):
        check(self.metric in ("l2", "cosine"), f"unknown feature metric {self.metric!r}; use l2 or cosine")

    @property
    def name(self) -> str:
        return f"features-{self.metric}"

    @property
    def power(self) -> int:
        return 1 if self.metric == "l2" else 2

    @property
    def scale(self) -> float:
        return 1.0 if self.metric == "l2" else 0.5

    def embed(self, block: np.ndarray, *, exact: bool = False) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(block).reshape(len(block), -1).astype(np.float64 if exact else np.float32))
        if self.metric == "cosine":
            norms = x.norm(dim=1, keepdim=True)
            check(bool((norms > 0).all()), "cosine distance needs non-zero feature vectors; drop all-zero rows")
            x = x / norms
        return x


# --- LPIPS as an embedding -------------------------------------------------------------------

# torchvision's module layout (so its state-dict keys load as they are) and the ReLU outputs
# that LPIPS taps (Zhang et al. 2018; the lpips package's slices).
_ARCH = {
    "alex": dict(
        layers=[("C", 3, 64, 11, 4, 2), "R", ("M",), ("C", 64, 192, 5, 1, 2), "R", ("M",),
                ("C", 192, 384, 3, 1, 1), "R", ("C", 384, 256, 3, 1, 1), "R", ("C", 256, 256, 3, 1, 1), "R"],
        taps=(1, 4, 7, 9, 11), channels=(64, 192, 384, 256, 256),
        hub_file="alexnet-owt-7be5be79.pth"),
    "vgg": dict(
        layers=[("C", 3, 64, 3, 1, 1), "R", ("C", 64, 64, 3, 1, 1), "R", ("M",),
                ("C", 64, 128, 3, 1, 1), "R", ("C", 128, 128, 3, 1, 1), "R", ("M",),
                ("C", 128, 256, 3, 1, 1), "R", ("C", 256, 256, 3, 1, 1), "R", ("C", 256, 256, 3, 1, 1), "R", ("M",),
                ("C", 256, 512, 3, 1, 1), "R", ("C", 512, 512, 3, 1, 1), "R", ("C", 512, 512, 3, 1, 1), "R", ("M",),
                ("C", 512, 512, 3, 1, 1), "R", ("C", 512, 512, 3, 1, 1), "R", ("C", 512, 512, 3, 1, 1), "R"],
        taps=(3, 8, 15, 22, 29), channels=(64, 128, 256, 512, 512),
        hub_file="vgg16-397923af.pth"),
}
# LPIPS v0.1 input scaling: x in [-1, 1] -> (x - shift) / scale.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def backbone_features(net: str) -> nn.Sequential:
    """The convolutional trunk of AlexNet or VGG16 with torchvision's indices."""
    check(net in _ARCH, f"unknown LPIPS backbone {net!r}; use one of {sorted(_ARCH)}")
    mods: list[nn.Module] = []
    for spec in _ARCH[net]["layers"]:
        if spec == "R":
            mods.append(nn.ReLU())
        elif spec[0] == "M":
            mods.append(nn.MaxPool2d(kernel_size=3 if net == "alex" else 2, stride=2))
        else:
            _, cin, cout, k, s, p = spec
            mods.append(nn.Conv2d(cin, cout, k, stride=s, padding=p))
    return nn.Sequential(*mods)


def _load_state(path) -> dict:
    path = Path(path)
    check(path.is_file(), f"LPIPS weights file {path} not found; pass an existing file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise Mem2genError(f"{path}: cannot read weights ({type(e).__name__}: {e})") from None


def shipped_lin_weights(net: str) -> Path:
    """The linear-layer weights shipped inside the ``lpips`` package (found without importing it)."""
    spec = importlib.util.find_spec("lpips")
    check(spec is not None and spec.submodule_search_locations,
          "LPIPS linear weights not found: `pip install --no-deps lpips` or pass --lpips-lin PATH")
    return Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1" / f"{net}.pth"


def default_backbone_file(net: str) -> Path:
    """Where torchvision caches the ImageNet weights ($TORCH_HOME/hub/checkpoints)."""
    home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    return home / "hub" / "checkpoints" / _ARCH[net]["hub_file"]


class LPIPSEmbedding(nn.Module):
    """φ(x) with LPIPS(x, y) = ‖φ(x) − φ(y)‖² exactly (LPIPS is a squared distance of normalised, weighted features)."""

    def __init__(self, *, net: str = "alex", backbone_state: dict | None = None, lin_state: dict | None = None):
        super().__init__()
        arch = _ARCH.get(net)
        check(arch is not None, f"unknown LPIPS backbone {net!r}; use one of {sorted(_ARCH)}")
        self.net, self.taps = net, arch["taps"]
        self.features = backbone_features(net)
        if backbone_state is not None:
            state = {k.removeprefix("features."): v for k, v in backbone_state.items()
                     if not k.startswith("classifier.")}
            try:
                self.features.load_state_dict(state)
            except RuntimeError as e:
                raise Mem2genError(f"backbone weights do not fit {net}: {str(e).splitlines()[0]}") from None
        weights = []
        if lin_state is None:
            lin_state = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(arch["channels"])}
        for i, c in enumerate(arch["channels"]):
            w = [v for k, v in lin_state.items() if re.fullmatch(rf"lin{i}\.model\.\d\.weight", k)]
            check(len(w) == 1 and w[0].numel() == c, f"LPIPS linear weights lack layer lin{i} with {c} channels")
            w = w[0].reshape(c).float()
            check(bool((w >= 0).all()), "LPIPS linear weights must be non-negative for the embedding to be exact")
            weights.append(w)
        for i, w in enumerate(weights):
            self.register_buffer(f"w{i}", w)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def layer_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone ReLU outputs at LPIPS's taps for images x in [-1, 1] (grey is repeated to RGB)."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h = (x - self.shift) / self.scale
        outs = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                outs.append(h)
            if i == self.taps[-1]:
                break
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for i, f in enumerate(self.layer_features(x)):
            f = f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            w = getattr(self, f"w{i}").view(1, -1, 1, 1)
            parts.append((f * (w / (f.shape[2] * f.shape[3])).sqrt()).flatten(1))
        return torch.cat(parts, dim=1)


@dataclass
class LPIPSSpace:
    """LPIPS (AlexNet by default, as the paper) as an embedding distance, power 2. ``resize``: images whose
    smaller side is below it are first resized so that side is ``resize`` (nearest-exact, the aspect kept),
    as the authors' released code does for 28×28 images (to 32×32)."""

    net: str = "alex"
    backbone: str | None = None
    lin: str | None = None
    device: str | None = None
    batch: int = 256
    module: LPIPSEmbedding | None = field(default=None, repr=False)
    power: int = 2
    scale: float = 1.0
    pixels: bool = True
    resize: int | None = None

    def __post_init__(self):
        check(self.resize is None or self.resize >= 1, f"LPIPS resize {self.resize} must be a positive size")
        check(self.net in _ARCH, f"unknown LPIPS backbone {self.net!r}; use one of {sorted(_ARCH)}")
        if self.module is None:
            backbone = Path(self.backbone) if self.backbone else default_backbone_file(self.net)
            check(backbone.is_file(),
                  f"LPIPS backbone weights not found at {backbone}; pass --lpips-backbone PATH to a torchvision "
                  f"{self.net} state dict ({_ARCH[self.net]['hub_file']})")
            lin = Path(self.lin) if self.lin else shipped_lin_weights(self.net)
            self.module = LPIPSEmbedding(net=self.net, backbone_state=_load_state(backbone),
                                         lin_state=_load_state(lin))
        self.module.to(self.torch_device)

    @property
    def name(self) -> str:
        return f"lpips-{self.net}" + (f"@{self.resize}" if self.resize else "")

    def _resized(self, hw: tuple) -> tuple:
        h, w = hw
        if not self.resize or min(h, w) >= self.resize:
            return h, w
        return (self.resize, int(self.resize * w / h)) if h <= w else (int(self.resize * h / w), self.resize)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device) if self.device else default_device()

    def check_shape(self, shape: tuple) -> None:
        check(len(shape) == 4 and shape[1] in (1, 3), f"LPIPS needs images (N, C, H, W) with C = 1 or 3; got {shape}")
        try:
            with torch.no_grad():
                self.module(torch.zeros((1, 3) + self._resized(tuple(shape[2:])), device=self.torch_device))
        except RuntimeError:
            raise Mem2genError(f"images of {shape[2]}x{shape[3]} are too small for LPIPS-{self.net}; "
                               "resize them (e.g. to 32x32 or 64x64)") from None

    @torch.no_grad()
    def embed(self, block: np.ndarray, *, exact: bool = False) -> torch.Tensor:
        block = np.asarray(block)
        out = []
        for s in range(0, len(block), self.batch):
            x = torch.from_numpy(to_float(block[s:s + self.batch]).reshape(block[s:s + self.batch].shape))
            hw = self._resized(tuple(x.shape[2:]))
            if hw != tuple(x.shape[2:]):  # torchvision's resize(x, size, NEAREST_EXACT) on a tensor is this
                x = torch.nn.functional.interpolate(x, size=hw, mode="nearest-exact")
            out.append(self.module(x.to(self.torch_device)).cpu())
        emb = torch.cat(out)
        return emb.double() if exact else emb


def make_space(distance: str = "l2", *, metric: str = "l2", net: str = "alex", backbone=None, lin=None,
               device=None, resize: int | None = None):
    """The space for a distance name: ``l2``, ``lpips`` (images below ``resize`` resized up to it) or
    ``features``."""
    if distance == "l2":
        return PixelSpace()
    if distance == "lpips":
        return LPIPSSpace(net=net, backbone=backbone, lin=lin, device=device, resize=resize)
    if distance == "features":
        return FeatureSpace(metric=metric)
    raise Mem2genError(f"unknown distance {distance!r}; use l2, lpips or features")
