"""Training (paper App. B.3): Adam lr 2e-4, batch 128, gradient clipping 1.0, EMA of the weights.

Every step draws its batch, times and noise from a generator seeded by (seed, step), so a run that
resumes from a checkpoint continues exactly as an uninterrupted one (bit-identical on CPU).
State (model, EMA, optimizer, step) is one safetensors file written atomically; the final EMA model
is saved with :func:`mem2gen.models.networks.save_model` (diffusers layout for U-Nets).
"""
from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.kernels import tf32
from ..errors import DamagedFile, Mem2genError, check
from ..io import layout
from ..io.config import TrainConfig, log_spaced_steps  # noqa: F401 - log_spaced_steps re-exported
from ..io.files import atomic_path, changed_keys, read_json, write_text
from . import diffusion
from .networks import load_model, model_config, save_model, shape_only

log = logging.getLogger(__name__)


def _step_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


def batch_indices(cfg: TrainConfig, n: int, step: int, g: torch.Generator) -> torch.Tensor:
    """The training items of ``step``. ``batching="sample"``: ``cfg.batch`` draws with replacement from
    ``g``. ``"epochs"`` (the authors' DataLoader: shuffle, drop_last): batches of b = min(batch, n) taken
    in order from a permutation of the n items drawn per epoch from (seed, epoch); an epoch has n // b
    batches. Both depend on (seed, step) alone, so resuming stays exact."""
    if cfg.batching == "sample":
        return torch.randint(0, n, (cfg.batch,), generator=g)
    b = min(cfg.batch, n)
    per_epoch = n // b
    epoch, i = divmod(step, per_epoch)
    epoch_seed = int(np.random.SeedSequence([cfg.seed, epoch, 0xE90C]).generate_state(1, dtype=np.uint64)[0] >> 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed))
    return perm[i * b:(i + 1) * b]


def _as_batch(raw: torch.Tensor) -> torch.Tensor:
    return raw.float() / 127.5 - 1.0 if raw.dtype == torch.uint8 else raw.float()


def _ema_update(ema, model, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1.0 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def _save_state(path: Path, model, ema, opt, step: int, losses: list, bf16: bool = False) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.state_dict().items()}
    sd = opt.state_dict()
    for i, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = torch.as_tensor(v)
    meta = {"step": str(step), "param_groups": json.dumps(sd["param_groups"]), "losses": json.dumps(losses),
            "model": json.dumps(model_config(model)), "bf16": "1" if bf16 else "0"}
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)


STATE_FILE = "state.safetensors"  # a resumable run's checkpoint, in its ``out`` folder


def saved_step(out) -> int | None:
    """The step of the training checkpoint in the run folder ``out`` (see :func:`train`), read from its header
    alone; None when there is none or it cannot be read."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(Path(out) / STATE_FILE), framework="np") as f:
            return int((f.metadata() or {})["step"])
    except (OSError, KeyError, ValueError, SafetensorError):  # absent, half-written or foreign
        return None


def _load_state(path: Path, model, ema, opt) -> tuple[int, list, bool | None]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if "model" in meta:  # checkpoints record their model; older ones are checked by loading
        saved, now = json.loads(meta["model"]), model_config(model)
        saved["config"] = shape_only(saved.get("config", {}))  # files written before it left diffusers' keys out
        if saved != now:
            diff = changed_keys(saved.get("config", {}), now.get("config",
                                                                 {})) if saved["kind"] == now["kind"] else ["kind"]
            raise Mem2genError(f"{path} was written for another model ({saved['kind']}, differing in "
                               f"{', '.join(diff)}); use another output directory")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    return int(meta["step"]), json.loads(meta["losses"]), None if "bf16" not in meta else meta["bf16"] == "1"


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (paper App. B.3), or AdamW with ``cfg.weight_decay`` > 0."""
    return (torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay) if cfg.weight_decay
            else torch.optim.Adam(params, lr=cfg.lr))


def ema_decay(cfg: TrainConfig, step: int) -> float:
    """The EMA decay at ``step``: min(decay, (1 + t)/(10 + t)) with the warm-up, else the decay."""
    return min(cfg.ema_decay, (1 + step) / (10 + step)) if cfg.ema_warmup else cfg.ema_decay


def use_bf16(cfg: TrainConfig, device: torch.device, saved: bool | None, where) -> bool:
    """Whether to train in bf16 autocast: only on a GPU that computes bf16 natively (an emulating GPU runs
    it slower than fp32), and in the precision a resumed checkpoint (``saved``, at ``where``) started in."""
    amp = cfg.bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if saved is not None and saved != amp:  # one precision per model, whatever device resumes it
        check(not saved, f"{where} was trained in bf16 on a GPU; resume it on a GPU with native bf16 "
                         "(or start again in another folder)")
        log.info("%s: resuming in fp32, the precision it was started in", where)
        amp = False
    return amp


def check_loss(loss: float, step: int, lr: float) -> None:
    """Stop a diverged run rather than save a NaN model as finished."""
    if not np.isfinite(loss):
        raise Mem2genError(f"the training loss became {loss} at step {step} (lr = {lr}); lower the learning rate")


def finished(out: Path, steps: int) -> dict | None:
    """The record of ``out``'s final model if it was trained for ``steps`` steps, else None (a damaged
    record counts as unfinished: the model is trained again, or finished from its checkpoint)."""
    rec = out / layout.MODEL / layout.MODEL_RECORD
    try:
        done = read_json(rec) if rec.exists() else {}
    except DamagedFile:
        return None
    return done if done.get("step") == steps else None


def save_finished(out: Path, ema, cfg: TrainConfig, losses: list, seconds: float, meta: dict | None) -> None:
    """A finished run's ``losses.csv`` (means of 50 steps) and its EMA model in ``out/model``."""
    write_text(out / "losses.csv", "step,loss\n" + "".join(f"{s},{v!r}\n" for s, v in losses))
    save_model(ema, out / layout.MODEL, meta={"step": cfg.steps, "losses": losses, "train_config": asdict(cfg),
                                              "seconds": round(seconds, 2), **(meta or {})})


@dataclass
class TrainResult:
    model: torch.nn.Module  # the EMA model, used for sampling
    step: int
    losses: list = field(default_factory=list)
    seconds: float = 0.0


def train(model: torch.nn.Module, data, cfg: TrainConfig = TrainConfig(), out=None, *, device=None,
          schedule: diffusion.Schedule = diffusion.Schedule(), progress: bool = True, stop_at: int | None = None,
          meta: dict | None = None) -> TrainResult:
    """Train ``model`` (an ε-model) on ``data`` (K samples, uint8 or floats in [-1, 1]).

    With ``out`` the run is resumable: ``out/state.safetensors`` every ``cfg.checkpoint_every`` steps,
    ``out/model/`` (the EMA model) at the end; a finished ``out`` is loaded, not retrained.
    ``stop_at`` ends the run early after that step (as a crash would), leaving a resumable state.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(out) if out else None
    done = finished(out, cfg.steps) if out else None
    if done is not None:
        log.info("%s: already trained (%d steps); loading it", out / "model", cfg.steps)
        return TrainResult(load_model(out / "model", device=device), cfg.steps, done.get("losses", []))
    raw = torch.as_tensor(np.ascontiguousarray(data)).to(device)
    check(len(raw) >= 1, "the training set is empty")
    model = model.to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = make_optimizer(model.parameters(), cfg)
    step, losses, saved_bf16 = 0, [], None
    state_file = out / STATE_FILE if out else None
    if state_file and state_file.exists():
        try:
            step, losses, saved_bf16 = _load_state(state_file, model, ema, opt)
        except (RuntimeError, KeyError, ValueError) as e:
            raise Mem2genError(f"{state_file} was written by a different model or is damaged "
                               f"({str(e).splitlines()[0][:120]}); use another output directory") from None
        log.info("%s: resuming at step %d of %d", state_file, step, cfg.steps)
    use_amp = use_bf16(cfg, device, saved_bf16, state_file)
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", disable=not progress, mininterval=1.0)
    window = []
    # the per-step seeding (for dropout) must not leak into the caller's global RNG
    # fp32 on CUDA with TF32 matmuls and convolutions, as the authors; the flags restored when training ends
    with tf32(device.type == "cuda" and not use_amp), \
            torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), bar:  # closed on errors too
        while step < cfg.steps:
            seed = _step_seed(cfg.seed, step)
            g = torch.Generator().manual_seed(seed)
            torch.manual_seed(seed)  # dropout
            idx = batch_indices(cfg, len(raw), step, g).to(device)
            x0 = _as_batch(raw[idx])
            if cfg.data_noise:  # augmentation: drawn from the step's generator, so resuming stays exact
                x0 = x0 + cfg.data_noise * torch.randn(x0.shape, generator=g).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = diffusion.loss(model, schedule, x0, generator=g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            _ema_update(ema, model, ema_decay(cfg, step))
            step += 1
            window.append(float(loss.detach()))
            check_loss(window[-1], step, cfg.lr)
            if len(window) == 50 or step == cfg.steps:
                losses.append([step, float(np.mean(window))])
                bar.set_postfix(loss=f"{losses[-1][1]:.4f}")
                window = []
            bar.update(1)
            if out and step in cfg.save_steps:
                save_model(ema, out / "snapshots" / f"step-{step}", meta={"step": step})
            if out and (step % cfg.checkpoint_every == 0 or step == cfg.steps or step == stop_at):
                _save_state(state_file, model, ema, opt, step, losses, use_amp)
            if stop_at is not None and step >= stop_at and step < cfg.steps:
                break
    seconds = time.perf_counter() - t0
    if out and step == cfg.steps:
        save_finished(out, ema, cfg, losses, seconds, meta)
    return TrainResult(ema, step, losses, seconds)
