"""Score networks: the DDPM U-Net from diffusers (paper Table 2) and a small MLP for flat or tiny data.

Every model here is an ε-model: ``model(x, t) -> ε̂`` with x of shape (B, C, H, W) and t integer steps.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from pathlib import Path

import torch
from torch import nn

from ..errors import Mem2genError, check
from ..io import layout
from ..io.datasets import ARCHITECTURES, UNetArch
from ..io.files import _umask, write_json
from ..io.threads import available_memory
from .checkpoints import authors_arch, authors_to_diffusers, read, strip_prefix
from .diffusion import OptimalDenoiser, Schedule

log = logging.getLogger(__name__)


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


def build_unet(preset: UNetArch, *, dropout: float | None = None) -> UNet:
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


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(spec, sample_shape: tuple, *, seed: int = 0, train=None) -> nn.Module:
    """The ε-network a :class:`mem2gen.io.config.ModelSpec` describes, its initial weights drawn from
    ``seed`` (the global RNG is left untouched). Kind 'optimal' is built from the training set."""
    if spec.kind == "optimal":
        check(train is not None, "the optimal denoiser is built from the training set; pass train=")
        return OptimalDenoiser(train)
    check_size(spec, sample_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if spec.kind == "mlp":
            return MLP(sample_shape=sample_shape, hidden=int(spec.hidden * spec.width), depth=spec.depth,
                       dropout=spec.dropout or 0.0)
        arch = ARCHITECTURES[spec.arch].scaled(spec.width)
        check((arch.channels, arch.sample_size, arch.sample_size) == tuple(sample_shape),
              f"U-Net architecture {spec.arch} is for {arch.channels}x{arch.sample_size}x{arch.sample_size} "
              f"images, the data are {'x'.join(map(str, sample_shape))}; choose a matching architecture")
        unet = build_unet(arch, dropout=spec.dropout)
        if getattr(spec, "init", "default") == "ddpm":
            ddpm_init(unet.unet)
        return unet


def check_size(spec, sample_shape: tuple) -> None:
    """Refuse, before allocating it, a network whose training would not fit in memory: it is built on
    torch's meta device (no memory) to count its parameters, and training holds about five copies
    (weights, gradients, EMA, Adam's two moments) of 4 bytes each."""

    with torch.device("meta"):
        if spec.kind == "mlp":
            net = MLP(sample_shape=sample_shape, hidden=int(spec.hidden * spec.width), depth=spec.depth)
        else:
            net = build_unet(ARCHITECTURES[spec.arch].scaled(spec.width))
    n = sum(p.numel() for p in net.parameters())
    free = available_memory()
    check(free is None or 20 * n <= free,
          f"the {spec.kind} asked for has {n / 1e6:,.0f}M parameters: training it needs "
                                          f"about {20 * n / 2**30:,.1f} GiB, and {free / 2**30:,.1f} GiB is free; "
                                          "lower model.width, hidden or depth")


def ddpm_init(unet) -> None:
    """The initialisation of Ho et al.'s DDPM U-Net, as the authors' released network draws it (their
    ``layers.default_init``): every conv and linear weight uniform with variance scale / fan_avg, where
    fan_avg = (fan_in + fan_out)/2 counts the kernel's taps (JAX's variance scaling), biases 0; scale 1,
    except the resnets' second conv, the attention output and the last conv (scale 1e-10: about zero,
    so each block starts as the identity) and the 1×1 maps of attention and shortcuts (0.1). GroupNorm
    keeps weight 1, bias 0. Draws from torch's global generator (:func:`build_model` seeds it)."""
    for name, mod in unet.named_modules():
        if not isinstance(mod, (nn.Conv2d, nn.Linear)):
            continue
        last = name.split(".")[-1]
        scale = 1e-10 if (last == "conv2" and ".resnets." in name) or name.endswith("to_out.0") or name == "conv_out" \
            else 0.1 if last in ("to_q", "to_k", "to_v", "conv_shortcut") else 1.0
        w = mod.weight
        taps = w[0, 0].numel() if w.dim() > 2 else 1
        fan_avg = (w.shape[0] + w.shape[1]) * taps / 2  # (fan_out + fan_in) / 2
        with torch.no_grad():
            w.uniform_(-1, 1).mul_(math.sqrt(3 * scale / fan_avg))
            if mod.bias is not None:
                mod.bias.zero_()


def check_devices(devices) -> None:
    """``--devices``: every entry names a device this machine has, and there are no more workers than usable
    cores (each worker is a process that needs one); checked before any work."""
    from ..io.threads import usable_cores

    ds = list(devices or [])
    check(all(isinstance(d, str) and d.strip() for d in ds),
          "--devices: give device names, e.g. cpu,cpu or cuda:0,cuda:1")
    cores = usable_cores()
    check(len(ds) <= cores, f"--devices names {len(ds)} workers; this machine has {cores} usable cores, so at most "
                            f"{cores} workers")
    for d in ds:
        check_device(d)


def check_device(device) -> None:
    """A device string that names a device this machine has (None: the default); checked before any work."""
    if device is None:
        return
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as e:
        why = str(e).splitlines()[0]
        raise Mem2genError(f"device {device!r} is not a device ({why}); use cpu, cuda or cuda:N") from None
    if d.type == "cuda":
        check(torch.cuda.is_available(), f"device {device!r}: this torch build or machine has no CUDA GPU; use cpu")
        check(d.index is None or d.index < torch.cuda.device_count(),
              f"device {device!r}: there are {torch.cuda.device_count()} GPU(s) (cuda:0 ... )")
    elif d.type == "mps":
        check(torch.backends.mps.is_available(), f"device {device!r}: MPS is not available here; use cpu")
    else:
        check(d.type == "cpu", f"device {device!r}: mem2gen runs on cpu, cuda or mps")


def weights_digest(model: nn.Module) -> str:
    """sha256 of a model's weights (names, dtypes, shapes and bytes of its state dict, in order): what
    identifies the model that made a set of samples, whatever files it came from."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def shape_only(conf: dict) -> dict:
    """A model config without diffusers' bookkeeping keys ("_use_default_values", "_class_name", ...),
    which depend on how the model object was made, not on its shape."""
    return {k: v for k, v in conf.items() if not str(k).startswith("_")}


def model_config(model: nn.Module) -> dict:
    """What rebuilds ``model`` without its weights: ``{"kind": ..., "config": {...}}`` (JSON-able).
    Stored with every saved model and in every training checkpoint."""
    if isinstance(model, UNet):
        return {"kind": "unet", "config": json.loads(json.dumps(shape_only(dict(model.unet.config)), default=list))}
    if isinstance(model, MLP):
        return {"kind": "mlp", "config": model.config}

    if isinstance(model, OptimalDenoiser):
        return {"kind": "optimal", "config": {"sample_shape": list(model.sample_shape), "n": int(len(model.y))}}
    raise Mem2genError(f"cannot save a {type(model).__name__}: mem2gen saves its MLP, U-Net and optimal denoiser")


def model_from_config(cfg: dict) -> nn.Module:
    """An untrained model of the shape :func:`model_config` describes."""
    kind, conf = cfg.get("kind"), cfg.get("config", {})
    if kind == "mlp":
        return MLP(**conf)
    if kind == "unet":
        from diffusers import UNet2DModel

        return UNet(UNet2DModel.from_config({k: v for k, v in conf.items() if not k.startswith("_")}))
    if kind == "optimal":
        return OptimalDenoiser(torch.zeros((conf["n"], *conf["sample_shape"])))
    raise Mem2genError(f"unknown model kind {kind!r} in a saved model")


def save_model(model: nn.Module, path, *, meta: dict | None = None) -> None:
    """Weights as safetensors plus ``mem2gen.json`` (the model's configuration and ``meta``); a U-Net as
    a diffusers ``DDPMPipeline`` folder (``unet/``, ``scheduler/``, ``model_index.json``) that
    ``DDPMPipeline.from_pretrained`` opens as is."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = model_config(model)
    if isinstance(model, UNet):  # a full DDPMPipeline folder: diffusers opens it as is
        from diffusers import DDPMPipeline

        DDPMPipeline(unet=model.unet, scheduler=Schedule().scheduler("ddpm")).save_pretrained(
            path, safe_serialization=True)
    else:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(path / "model.safetensors"))
    mode = 0o666 & ~_umask()  # safetensors writes its files 0600: give them the user's usual permissions
    for f in path.rglob("*.safetensors"):
        os.chmod(f, mode)
    write_json(path / layout.MODEL_RECORD, {**(meta or {}), **cfg, "weights_sha256": weights_digest(model)})


def model_for_size(folder, k: int) -> Path:
    """The model for training size ``k`` in a folder of one model per K: ``<k>.pt`` (the authors'
    checkpoints), ``K=<k>/`` or ``<k>/`` (any folder :func:`load_model` reads)."""
    folder = Path(folder)
    check(folder.is_dir(), f"checkpoints: {folder} is not a folder")
    found = [p for p in (folder / f"{k}.pt", folder / f"K={k}", folder / str(k)) if p.exists()]
    check(len(found) > 0, f"checkpoints: {folder} has no model for K = {k} (looked for {k}.pt, K={k}/, {k}/)")
    check(len(found) == 1, f"checkpoints: {folder} has {len(found)} models for K = {k}: "
                           f"{', '.join(p.name for p in found)}; keep one")
    return found[0]


def samples_for_size(folder, k: int) -> Path:
    """The samples a brought model of size ``k`` made, in a folder of one set per K: ``<k>.npz`` (the
    authors' files: their ``samples`` array), ``<k>.npy`` or ``<k>/`` (images, or the authors' batches)."""
    folder = Path(folder)
    check(folder.is_dir(), f"samples: {folder} is not a folder")
    found = [p for p in (folder / f"{k}.npz", folder / f"{k}.npy", folder / str(k)) if p.exists()]
    check(len(found) == 1, f"samples: {folder} has {len(found)} sample sets for K = {k} (looked for {k}.npz, "
                           f"{k}.npy, {k}/); keep exactly one")
    return found[0]


def load_model(path, *, device=None) -> nn.Module:
    """A model from ``path``, needing nothing else: a folder written by :func:`save_model`, a training
    folder (its ``model/``), a training checkpoint ``state.safetensors`` (its EMA weights, rebuilt from
    the configuration it stores), any diffusers ``UNet2DModel`` folder (also a ``DDPMPipeline``
    folder with ``unet/``), or an authors' ``K.pt`` (their U-Net's weights, renamed onto UNet2DModel's, or
    weights already named as UNet2DModel's: :func:`_load_authors`).
    Never runs code from a file.

    Parameters
    ----------
    path : str or Path
        Any of the forms above, or a Hub id whose snapshot is in the local cache.
    device : str, optional
        Where the model is put (default: CPU).

    Returns
    -------
    torch.nn.Module
        An ε-model ``model(x_t, t)`` in eval mode, with ``sample_shape``.
    """
    path = Path(path)
    if not path.exists() and _HUB_ID.fullmatch(str(path)):
        path = hub_folder(str(path))
    check(path.exists(), f"{path}: no such model folder or checkpoint")
    inner = path / layout.MODEL / layout.MODEL_RECORD
    if path.is_dir() and not (path / layout.MODEL_RECORD).exists() and inner.exists():
        path = path / layout.MODEL
    try:
        if path.is_file() and path.suffix in (".pt", ".pth"):
            model = _load_authors(path)
        elif path.is_file():
            model = _load_checkpoint(path)
        elif (path / layout.MODEL_RECORD).exists() and \
                json.loads((path / layout.MODEL_RECORD).read_text())["kind"] != "unet":
            from safetensors.torch import load_file

            model = model_from_config(json.loads((path / layout.MODEL_RECORD).read_text()))
            model.load_state_dict(load_file(str(path / "model.safetensors")))
        else:
            from diffusers import UNet2DModel

            sub = "unet" if (path / "unet" / "config.json").exists() else None
            check((path / (sub or "") / "config.json").exists(),
                  f"{path}: neither a mem2gen model nor a diffusers UNet2DModel folder")
            check_diffusers_model(path, sub)
            from diffusers.utils import logging as dlog

            level = dlog.get_verbosity()
            if not log.isEnabledFor(logging.DEBUG):  # diffusers' notices are shown with mem2gen -vv
                dlog.set_verbosity_error()  # no notices about optional packages on every load
            try:
                model = UNet(UNet2DModel.from_pretrained(path, subfolder=sub, use_safetensors=None))
            finally:
                dlog.set_verbosity(level)
    except Mem2genError:
        raise
    except Exception as e:
        raise Mem2genError(f"{path}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    log.info("loaded %s (%s, %.2fM parameters) onto %s", path, type(model).__name__,
             sum(p.numel() for p in model.parameters()) / 1e6, device or "cpu")
    return model.to(device or "cpu").eval()


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# the process mem2gen samples with (mem2gen.models.diffusion.Schedule); diffusers' defaults where a config is silent
_PAPER_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear",
                    "prediction_type": "epsilon"}


def hub_folder(repo_id: str) -> Path:
    """The local folder of a Hugging Face Hub model from the local cache (``HF_HUB_CACHE`` or the default
    one); nothing is downloaded: mem2gen runs offline."""
    from huggingface_hub import constants, snapshot_download

    cache = Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE).resolve()
    try:
        found = Path(snapshot_download(repo_id, local_files_only=True, cache_dir=os.environ.get("HF_HUB_CACHE")))
    except Exception as e:
        raise Mem2genError(
            f"{repo_id} is not a folder here, and as a Hub id it is not in the local Hugging Face cache "
            f"({type(e).__name__}). mem2gen does not download: on a machine with internet run "
            f"`huggingface-cli download {repo_id}` and copy the cache (~/.cache/huggingface/hub, or set "
            "HF_HUB_CACHE), or pass the model's folder") from None
    check(found.resolve().is_relative_to(cache), f"{repo_id}: its cache entry points outside the cache ({cache}) "
                                                 f"to {found.resolve()}; mem2gen follows cache entries only within it")
    return found


def check_diffusers_model(path: Path, sub: str | None) -> None:
    """Refuse, before loading, a diffusers model mem2gen would sample wrongly: not an unconditional
    ``UNet2DModel``, or trained with another noise process than the paper's (its scheduler config, where
    the folder has one: linear β from 1e-4 to 0.02, T = 1000, ε-prediction)."""
    folder = path / (sub or "")
    check(any(folder.glob("*.safetensors")) or not any(folder.glob("*.bin")),
          f"{folder} holds its weights only as a pickled .bin, which could run code when read; mem2gen reads "
          "safetensors only: convert it (diffusers' save_pretrained(..., safe_serialization=True)) where you trust it")
    conf = json.loads((path / (sub or "") / "config.json").read_text())
    cls = conf.get("_class_name", "UNet2DModel")
    check(cls == "UNet2DModel", f"{path} holds a {cls}; mem2gen samples unconditional DDPMs (a UNet2DModel)")
    check(conf.get("num_class_embeds") is None and conf.get("class_embed_type") is None,
          f"{path} is a class-conditional UNet2DModel; mem2gen samples unconditional models only")
    for f in (path / "scheduler" / "scheduler_config.json", path / "scheduler_config.json"):
        if f.exists():
            sched = json.loads(f.read_text())
            diff = [f"{k}={sched[k]!r}" for k, v in _PAPER_SCHEDULER.items()
                    if k in sched and (sched[k] != v if isinstance(v, str) else not math.isclose(sched[k], v))]
            check(not diff, f"{path} was trained with another noise process ({', '.join(diff)}); mem2gen samples with "
                            "the paper's (linear beta 1e-4..0.02, T = 1000, epsilon), so its samples would be wrong")
            break


def _load_authors(path: Path) -> nn.Module:
    """A ``K.pt`` of the paper's authors (:mod:`mem2gen.models.checkpoints`: read without running code): the network
    its ``args.model`` describes, built as diffusers' ``UNet2DModel``, with the checkpoint's EMA weights
    (their raw ``model`` weights only when no ``ema`` is stored; ``model.source`` says which). Weights of
    their own class (``all_modules.<i>…``) are renamed by :func:`mem2gen.models.checkpoints.authors_to_diffusers`;
    weights already named as ``UNet2DModel``'s load as they are. Every name and shape is checked first."""
    ck = read(path)
    check(isinstance(ck, dict) and "args" in ck and ("ema" in ck or "model" in ck),
          f"{path}: not a checkpoint in the authors' format (a dict with 'ema' or 'model' weights and 'args')")
    which = "ema" if "ema" in ck else "model"
    check(isinstance(ck[which], dict) and ck[which], f"{path}: its {which!r} entry holds no weights")
    arch = authors_arch(ck["args"])
    check(arch.base % arch.norm_groups == 0, f"{path}: base width {arch.base} is not a multiple of the "
                                             f"{arch.norm_groups} GroupNorm groups of the authors' U-Net")
    model = build_unet(arch)
    state, ours = strip_prefix(dict(ck[which])), model.unet.state_dict()
    if any(k.startswith("all_modules.") for k in state):
        state = authors_to_diffusers(state, arch, ours)
    odd = (sorted(set(state) - set(ours)) + sorted(set(ours) - set(state))
           + sorted(k for k in set(ours) & set(state) if tuple(ours[k].shape) != tuple(state[k].shape)))
    check(not odd, f"{path}: its {len(state)} weights are neither the authors' U-Net nor diffusers' UNet2DModel "
                   f"for {arch} ({len(ours)} tensors; first mismatch {odd[0] if odd else ''!r})")
    model.unet.load_state_dict(state)
    model.source = f"{path.name}: the authors' {'EMA' if which == 'ema' else 'raw (no EMA stored)'} weights, " \
                   f"step {ck.get('iterations', '?')}"
    return model


def _load_checkpoint(path: Path) -> nn.Module:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        check("model" in meta, f"{path}: this checkpoint does not record its model (written by an older "
                               "mem2gen); load the finished model folder instead")
        model = model_from_config(json.loads(meta["model"]))
        model.load_state_dict({k[4:]: f.get_tensor(k) for k in f.keys() if k.startswith("ema.")})
    return model
