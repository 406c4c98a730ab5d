"""Several MLPs trained in one process as one network with stacked weights (``train.ensemble``).

Member r is trained as :func:`mem2gen.models.train.train` trains it alone: its batches, times and noise are
drawn from its own generator seeded by (seed_r, step), its loss is its own mean squared error, its
gradient is clipped by its own norm, and Adam and the EMA act on it element by element. What differs
is the arithmetic of the batched matrix products (the last bits of the gradients), so an
ensemble-trained model is not bit-identical to the same member trained alone; it is reproducible
against itself (same members and settings: the same bits, also when killed and resumed), and its
fractions are statistically those of separately trained models (BENCHMARKS.md, tests/test_ensemble.py).

Each member keeps its own training folder in :func:`mem2gen.models.train.train`'s format (``state.safetensors``,
``model/``, ``snapshots/``, ``losses.csv``), so either loop can finish what the other started.

Written by hand rather than with ``torch.func.vmap``: vmap over the MLP ran 0.78x the speed of
separate models on this CPU, and diffusers' U-Net does not run under vmap (GroupNorm).
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import Mem2genError, check
from ..io import layout
from ..io.config import TrainConfig
from . import diffusion
from .networks import MLP, load_model, save_model, timestep_embedding
from .train import (
    STATE_FILE,
    TrainResult,
    _as_batch,
    _load_state,
    _save_state,
    _step_seed,
    batch_indices,
    check_loss,
    ema_decay,
    finished,
    make_optimizer,
    save_finished,
    use_bf16,
)

log = logging.getLogger(__name__)


class StackedMLP(torch.nn.Module):
    """R :class:`mem2gen.models.networks.MLP` of one configuration as one module: each parameter is the members'
    parameters stacked on a new first axis; ``forward(x, t)`` takes x of shape (R, B, ...) and t (R, B)."""

    def __init__(self, members: list[MLP]):
        super().__init__()
        check(len(members) >= 1 and all(isinstance(m, MLP) for m in members), "an ensemble stacks MLPs")
        check(all(m.config == members[0].config for m in members), "the members of an ensemble share one configuration")
        self.config, self.size = dict(members[0].config), len(members)
        self.names = [n for n, _ in members[0].named_parameters()]
        self.weights = torch.nn.ParameterList(
            torch.nn.Parameter(torch.stack([dict(m.named_parameters())[n].detach() for m in members]))
            for n in self.names)
        self._index = {n: i for i, n in enumerate(self.names)}

    def _p(self, name: str) -> torch.Tensor:
        return self.weights[self._index[name]]

    def _linear(self, x, name):  # x (R, B, in) @ W (R, out, in)^T + b (R, out)
        return torch.baddbmm(self._p(f"{name}.bias").unsqueeze(1), x, self._p(f"{name}.weight").transpose(1, 2))

    def _norm(self, x, name):  # LayerNorm with each member's affine parameters
        return torch.addcmul(self._p(f"{name}.bias").unsqueeze(1), F.layer_norm(x, x.shape[-1:]),
                             self._p(f"{name}.weight").unsqueeze(1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r, b = x.shape[:2]
        cfg = self.config
        emb = timestep_embedding(t.reshape(-1), cfg["time_dim"]).reshape(r, b, -1)
        h = self._linear(x.reshape(r, b, -1), "inp") + self._linear(F.silu(self._linear(emb, "time.0")), "time.2")
        for i in range(cfg["depth"]):
            z = F.silu(self._linear(self._norm(h, f"blocks.{i}.0"), f"blocks.{i}.1"))
            z = F.dropout(z, cfg["dropout"], self.training)
            h = h + self._linear(z, f"blocks.{i}.4")
        return self._linear(self._norm(h, "out.0"), "out.1").reshape(x.shape)

    def member(self, r: int, weights=None) -> MLP:
        """Member ``r`` as a plain MLP (from ``weights``, a list like ``self.weights``, if given)."""
        m = MLP(**{k: (tuple(v) if k == "sample_shape" else v) for k, v in self.config.items()})
        src = list(weights if weights is not None else self.weights)
        m.load_state_dict({n: w[r].detach().clone() for n, w in zip(self.names, src)})
        return m


def _save_members(outs, stacked, ema, opt, cfg, step, losses, use_amp) -> None:
    """Each member's ``state.safetensors`` in train()'s format: its weights, EMA and its part of the
    stacked optimizer's state."""
    sd = opt.state_dict()
    for r, out in enumerate(outs):
        m, e = stacked.member(r), stacked.member(r, ema)
        one = make_optimizer(m.parameters(), cfg)
        one.load_state_dict({"state": {i: {k: (v if v.dim() == 0 else v[r]) for k, v in st.items()}
                                       for i, st in sd["state"].items()},
                             "param_groups": one.state_dict()["param_groups"]})
        _save_state(Path(out) / STATE_FILE, m, e, one, step, losses[r], use_amp)


def _load_members(outs, stacked, ema, opt, cfg, template: MLP) -> tuple[int, list, bool | None]:
    """Every member's ``state.safetensors`` into the stacked model, EMA and optimizer (all at one step)."""
    found = []
    for out in outs:
        m, e = copy.deepcopy(template), copy.deepcopy(template)
        o = make_optimizer(m.parameters(), cfg)
        step, losses, bf16 = _load_state(Path(out) / STATE_FILE, m, e, o)
        found.append((step, losses, bf16, m, e, o))
    steps = {f[0] for f in found}
    check(len(steps) == 1, f"the members' checkpoints are at different steps ({sorted(steps)}); "
                           "finish them one by one (train.ensemble: false)")
    with torch.no_grad():
        for i, name in enumerate(stacked.names):
            stacked.weights[i].copy_(torch.stack([dict(f[3].named_parameters())[name] for f in found]))
            ema[i].copy_(torch.stack([dict(f[4].named_parameters())[name] for f in found]))
    state = {}
    for i in range(len(stacked.names)):
        per = [f[5].state_dict()["state"][i] for f in found]
        state[i] = {k: (per[0][k] if per[0][k].dim() == 0 else torch.stack([p[k] for p in per])) for k in per[0]}
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
    return found[0][0], [f[1] for f in found], found[0][2]


def train_ensemble(models: list[MLP], datas: list, cfgs: list[TrainConfig], outs: list | None = None, *,
                   device=None, schedule: diffusion.Schedule = diffusion.Schedule(), progress: bool = True,
                   stop_at: int | None = None, metas: list | None = None) -> list[TrainResult]:
    """Train the MLPs ``models`` at once, member r on ``datas[r]`` with ``cfgs[r]`` (settings equal but for
    the seed; every batch of one size) into ``outs[r]``; resumable like :func:`mem2gen.models.train.train`. A member
    already trained is loaded, not trained again; the others are trained together."""
    r_all = len(models)
    check(r_all >= 1 and len(datas) == len(cfgs) == r_all and (outs is None or len(outs) == r_all),
          "give one data set, config and folder per member")
    check(all(asdict(c) | {"seed": 0} == asdict(cfgs[0]) | {"seed": 0} for c in cfgs),
          "the members of an ensemble share every training setting but the seed")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    outs = [Path(o) for o in outs] if outs else None
    metas = metas or [None] * r_all
    results: list[TrainResult | None] = [None] * r_all
    cfg = cfgs[0]
    for r, out in enumerate(outs or []):  # finished members are loaded
        done = finished(out, cfg.steps)
        if done is not None:
            results[r] = TrainResult(load_model(out / layout.MODEL, device=device), cfg.steps, done.get("losses", []))
    todo = [r for r in range(r_all) if results[r] is None]
    if not todo:
        return results
    raws = [torch.as_tensor(np.ascontiguousarray(datas[r])).to(device) for r in todo]
    check(all(len(x) >= 1 for x in raws), "a member's training set is empty")
    probe = torch.Generator()
    sizes = {len(batch_indices(cfg, len(x), 0, probe)) for x in raws}
    check(len(sizes) == 1, "the members draw batches of different sizes (batching epochs on sets smaller "
                           "than the batch); train them one by one")
    stacked = StackedMLP([models[r] for r in todo]).to(device).train()
    ema = [w.detach().clone() for w in stacked.weights]
    params = list(stacked.weights)
    opt = make_optimizer(params, cfg)
    my_outs = [outs[r] for r in todo] if outs else None
    step, losses, saved_bf16 = 0, [[] for _ in todo], None
    if my_outs and any((o / STATE_FILE).exists() for o in my_outs):
        check(all((o / STATE_FILE).exists() for o in my_outs),
              "some members have a training checkpoint and some do not; finish them one by one (train.ensemble: false)")
        try:
            step, losses, saved_bf16 = _load_members(my_outs, stacked, ema, opt, cfg, models[todo[0]])
        except (RuntimeError, KeyError, ValueError) as e:
            raise Mem2genError(f"the members' checkpoints do not fit this ensemble ({str(e).splitlines()[0][:120]}); "
                               "use another output directory") from None
        log.info("ensemble of %d: resuming at step %d of %d", len(todo), step, cfg.steps)
    use_amp = use_bf16(cfg, device, saved_bf16, my_outs[0] / STATE_FILE if my_outs else "the ensemble")
    t0 = time.perf_counter()
    windows = [[] for _ in todo]
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train x{len(todo)}", unit="step", disable=not progress,
               mininterval=1.0)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), bar:
        while step < cfg.steps:
            x0s, ts, noises = [], [], []
            for j, r in enumerate(todo):  # 1. member r's draws, in train()'s order (diffusion.loss)
                g = torch.Generator().manual_seed(_step_seed(cfgs[r].seed, step))
                x0 = _as_batch(raws[j][batch_indices(cfgs[r], len(raws[j]), step, g).to(device)])
                if cfg.data_noise:
                    x0 = x0 + cfg.data_noise * torch.randn(x0.shape, generator=g).to(device)
                ts.append(torch.randint(0, schedule.T, (x0.shape[0],), generator=g))
                noises.append(torch.randn(x0.shape, generator=g, dtype=x0.dtype))
                x0s.append(x0)
            torch.manual_seed(_step_seed(cfgs[todo[0]].seed, step))  # dropout (members share one stream)
            x0, t, noise = torch.stack(x0s), torch.stack(ts).to(device), torch.stack(noises).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                pred = stacked(diffusion.noisy(schedule, x0.flatten(0, 1), t.flatten(), noise.flatten(0, 1))
                               .view_as(x0), t)
            # 2. each member's own mean squared error; their sum's gradient is each member's own
            member_loss = (pred.float() - noise).pow(2).flatten(1).mean(1)
            opt.zero_grad(set_to_none=True)
            member_loss.sum().backward()
            if cfg.grad_clip:  # 3. clip_grad_norm_ per member: coef = min(1, c / (‖g_r‖ + 1e-6))
                norms = torch.stack([w.grad.flatten(1).pow(2).sum(1) for w in params]).sum(0).sqrt()
                coef = (cfg.grad_clip / (norms + 1e-6)).clamp(max=1.0)
                for w in params:
                    w.grad.mul_(coef.view(-1, *[1] * (w.dim() - 1)))
            opt.step()  # 4. Adam acts element by element: each member's own
            with torch.no_grad():
                torch._foreach_lerp_(ema, [w.detach() for w in params], 1.0 - ema_decay(cfg, step))
            step += 1
            values = member_loss.detach().cpu().tolist()
            for j, v in enumerate(values):
                check_loss(v, step, cfg.lr)
                windows[j].append(v)
            if len(windows[0]) == 50 or step == cfg.steps:
                for j in range(len(todo)):
                    losses[j].append([step, float(np.mean(windows[j]))])
                    windows[j] = []
                bar.set_postfix(loss=f"{np.mean([lo[-1][1] for lo in losses]):.4f}")
            bar.update(1)
            if my_outs and step in cfg.save_steps:
                for j, out in enumerate(my_outs):
                    save_model(stacked.member(j, ema), out / "snapshots" / f"step-{step}", meta={"step": step})
            if my_outs and (step % cfg.checkpoint_every == 0 or step == cfg.steps or step == stop_at):
                _save_members(my_outs, stacked, ema, opt, cfg, step, losses, use_amp)
            if stop_at is not None and step >= stop_at and step < cfg.steps:
                break
    seconds = time.perf_counter() - t0
    for j, r in enumerate(todo):
        member = stacked.member(j, ema).to(device).eval().requires_grad_(False)
        if my_outs and step == cfg.steps:
            save_finished(my_outs[j], member, cfgs[r], losses[j], seconds / len(todo),
                          {"ensemble": len(todo), **(metas[r] or {})})
        results[r] = TrainResult(member, step, losses[j], seconds / len(todo))
    return results
