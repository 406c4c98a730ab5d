"""The sweep settings as documentation: every key of a sweep config with its default and meaning
(:func:`describe`, read from the comments on the dataclass fields) and every preset's settings that change
results with the paper settings it departs from (:func:`presets_table`). docs/config.md holds both; a
test keeps it equal to what these functions give."""
from __future__ import annotations

import dataclasses
import inspect
import json
import re

from . import datasets
from .config import SWEEP_PRESETS, ModelSpec, SweepConfig, TrainConfig


def effective_ema(t: TrainConfig) -> float:
    """The EMA decay in force at the last step: min(decay, (1 + t) / (10 + t)) with the warm-up."""
    return min(t.ema_decay, (1 + t.steps) / (10 + t.steps)) if t.ema_warmup else t.ema_decay


# The paper's settings a preset can depart from (App. B.1-B.3, Tables 1-3): what every paper preset uses.
PAPER = dict(lr=2e-4, batch=128, batching="epochs", ema=0.9999, sampler="ddpm", sample_steps=1000, n_eval=10_000,
             cap=None, split="authors", sizes="Table 1")


def _departures(c: SweepConfig) -> str:
    """The paper's settings (``PAPER``, the dataset's Table 2 network and iterations) that ``c`` changes."""
    ds = datasets.get(c.data.split(":")[0])
    have = dict(lr=c.train.lr, batch=c.train.batch, batching=c.train.batching, ema=round(effective_ema(c.train), 4),
                sampler=c.sampler, sample_steps=c.sample_steps, n_eval=c.n_eval, cap=c.synthetic_cap, split=c.split,
                sizes="Table 1" if isinstance(c.sizes, dict) and "paper" in c.sizes else "own")
    want = dict(PAPER, batch=ds.batch if ds.train_steps else PAPER["batch"])
    names = dict(lr="lr", batch="batch", batching="batching", ema="EMA", sampler="sampler",
                 sample_steps="sampler steps",
                 n_eval="S_eval", cap="\\|S'\\| cap", split="split", sizes="sizes")
    out = [names[k] for k in PAPER if have[k] != want[k]]
    if c.model.kind != "unet" or c.model.arch != ds.arch or not ds.train_steps:
        out.append("network")
    if not ds.train_steps or c.train.steps != ds.train_steps:
        out.append("steps")
    return ", ".join(out) or "none"


def presets_table() -> str:
    """Every sweep preset's settings that change results, and which of the paper's it departs from, as
    Markdown (read from :data:`SWEEP_PRESETS`; docs/config.md holds it, kept current by a test)."""
    out = ["| preset | data | model | steps | lr | batch (batching) | EMA at the end | sampler | S_eval "
           r"| \|S'\| | split | departs from the paper in |", "|" + "---|" * 12]
    for name, c in SWEEP_PRESETS.items():
        m = c.model
        a = datasets.ARCHITECTURES.get(m.arch) if m.kind == "unet" else None
        model = f"MLP {m.hidden}×{m.depth}" if m.kind == "mlp" else \
            f"U-Net {a.base}·{tuple(a.multipliers)}" if a else m.kind
        dropout = m.dropout if m.dropout is not None else (a.dropout if a else 0.0)
        model += f", dropout {dropout:g}" if dropout else ""
        cap = f" ≤ {c.synthetic_cap:,}" if c.synthetic_cap else ""
        out.append(f"| {name} | `{c.data}`{f' at {c.image_size}²' if c.image_size else ''} | {model} "
                   f"| {c.train.steps:,} | {c.train.lr:g} | {c.train.batch} ({c.train.batching}) "
                   f"| {effective_ema(c.train):.4g} | {c.sampler.upper()}-{c.sample_steps} | {c.n_eval:,} "
                   f"| {c.synthetic_factor}·K{cap} | {c.split} | {_departures(c)} |")
    return "\n".join(out) + "\n"


def describe() -> str:
    """Every key of a sweep config (YAML/JSON or ``--config``) as Markdown: its default (the ``quick``
    preset's where it differs) and its meaning, read from the comments on the dataclass fields. The
    README's config reference is this text (a test keeps them equal)."""
    quick = SWEEP_PRESETS["quick"].to_dict()
    out = ["| key | default | quick preset | meaning |", "|---|---|---|---|"]
    for cls, prefix in ((SweepConfig, ""), (ModelSpec, "model."), (TrainConfig, "train.")):
        comments = {}
        for line in inspect.getsource(cls).splitlines():
            m = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.*)$", line)
            if m:
                comments[m.group(1)] = m.group(2).strip()
        base = cls()
        for f in dataclasses.fields(cls):
            if f.name in ("model", "train") and prefix == "":
                continue
            default = getattr(base, f.name)
            q = quick[f.name] if not prefix else quick[prefix[:-1]][f.name]
            show = lambda v: json.dumps(list(v) if isinstance(v, tuple) else v)  # noqa: E731
            out.append(f"| `{prefix}{f.name}` | `{show(default)}` | "
                       f"{'' if show(q) == show(default) else f'`{show(q)}`'} "
                       f"| {comments.get(f.name, '').replace('|', chr(92) + '|')} |")
    return "\n".join(out) + "\n"
