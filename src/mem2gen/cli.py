"""The ``mem2gen`` command. Each command parses its options, makes one library call and prints.

Defaults are never written here: every option that a library function also takes reads its default
from that function's signature (:func:`lib_option`), and ``tests/test_cli.py`` checks it for every
command. User mistakes print one line and exit 2.
"""
from __future__ import annotations

import inspect
import sys
import time
from pathlib import Path

import click

from . import datasets
from .classify import duplicate_warning, parse_fraction
from .data import SPLITS
from .config import RULES, SAMPLERS, SWEEP_PRESETS
from .errors import Mem2genError


def calls(*fns):
    """Mark a command's function with the library function(s) whose defaults its options take (a test checks)."""
    def mark(cmd):
        cmd.library = fns
        return cmd
    return mark


def lib_option(fn, param: str, *decls, **kw):
    """A click option whose default is ``fn``'s default for ``param`` (shown in --help)."""
    default = inspect.signature(fn).parameters[param].default
    check_default = default is not inspect.Parameter.empty
    return click.option(*decls, param, default=default if check_default else None,
                        show_default=check_default and default is not None, **kw)


class Numbers(click.ParamType):
    """Comma-separated numbers ('2,8,32'); a tuple default passes through."""

    def __init__(self, kind=int):
        self.kind, self.name = kind, f"{kind.__name__}s"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, tuple):
            return value
        try:
            out = tuple(self.kind(x) for x in str(value).split(",") if x.strip())
        except ValueError:
            self.fail(f"{value!r}: give comma-separated {self.kind.__name__}s, e.g. 2,8,32", param, ctx)
        if not out:
            self.fail("give at least one value", param, ctx)
        return out


class Ratio(click.ParamType):
    """A number written as 0.28 or 1/3."""

    name = "number"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, float):
            return value
        try:
            return parse_fraction(value)
        except Mem2genError as e:
            self.fail(str(e), param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mem2gen")
@click.option("--threads", type=click.IntRange(min=1), default=None, envvar="MEM2GEN_THREADS", show_envvar=True,
              help="CPU threads for torch. [default: torch's (one per core)]. With another process busy on "
                   "the machine, 1 can be 10x faster (BENCHMARKS.md).")
@click.option("-v", "--verbose", count=True,
              help="Diagnostics on stderr: -v what each stage chose and how long it took (INFO), -vv more (DEBUG).")
def cli(threads, verbose):
    """mem2gen: memorization -> spurious states -> generalization in diffusion models."""
    if threads:
        set_threads(threads)
    set_verbosity(verbose)


def set_verbosity(n: int) -> None:
    """Route the "mem2gen" logger to stderr at INFO (1) or DEBUG (≥ 2); 0 leaves it silent. Only
    mem2gen's logger is touched (not the root logger); at DEBUG diffusers' own notices show too."""
    import logging

    log = logging.getLogger("mem2gen")
    for h in [h for h in log.handlers if getattr(h, "_mem2gen_cli", False)]:
        log.removeHandler(h)
    if n <= 0:
        log.setLevel(logging.NOTSET)
        return
    class Stderr(logging.StreamHandler):  # the stderr of the moment (not the one at set-up)
        def emit(self, record):
            self.stream = sys.stderr
            super().emit(record)

    h = Stderr()
    h.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    h._mem2gen_cli = True
    log.addHandler(h)
    log.setLevel(logging.INFO if n == 1 else logging.DEBUG)


def set_threads(n: int) -> None:
    """Torch's intra-op threads, and OpenMP's for the worker processes it starts."""
    import os

    import torch

    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)


def _print_table(res, boot) -> None:
    click.echo(f"{'class':<12} {'count':>7} {'fraction':>9} {'boot mean':>10} {'boot std':>9}  95% interval")
    for name, c in zip(boot, res.counts):
        b = boot[name]
        click.echo(f"{name:<12} {c:>7d} {res.fractions[name]:>9.4f} {b['mean']:>10.4f} {b['std']:>9.4f}"
                   f"  [{b['ci95'][0]:.4f}, {b['ci95'][1]:.4f}]")


from .compare import compare as run_compare  # noqa: E402
from .dynamics import DynamicsConfig, dynamics as run_dynamics  # noqa: E402
from .report import tau_text  # noqa: E402
from .executors import EXECUTORS, Submitit  # noqa: E402
from .run import Run  # noqa: E402
from .sizes import schedule  # noqa: E402
from .sweep import report as build_report, sweep as run_sweep  # noqa: E402
from .toy import run_toy  # noqa: E402
from .tasks import (bridge, calibrate, classify_files, dense_memory, hopfield_capacity, landscape,  # noqa: E402
                    planted_demo, sample_model, train_model)


@cli.command()
@calls(classify_files)
@click.option("--train", "train_path", required=True, help="Training set S: .npy, .npz[:KEY] or an image folder.")
@click.option("--synthetic", "synthetic_path", default=None,
              help="Synthetic set S' (|S'| >> |S|). Omit to use the eval set as S' with leave-one-out.")
@click.option("--eval", "eval_path", required=True, help="Evaluation set S_eval (samples to label).")
@lib_option(classify_files, "dataset", "--dataset", type=click.Choice(list(datasets.DATASETS)),
            help="Take the paper's distance and delta_s for this dataset.")
@lib_option(classify_files, "distance", "--distance", type=click.Choice(["l2", "lpips", "features"]),
            help="l2 on pixels, LPIPS, or user-supplied feature vectors. [default: the dataset's, else l2]")
@lib_option(classify_files, "delta_m", "--delta-m", type=Ratio(),
            help="Memorization threshold (eq 4). [default: 1/3; 0.03 with --rule absolute]")
@lib_option(classify_files, "delta_s", "--delta-s", type=Ratio(),
            help="Spurious threshold (eq 5). [default: the dataset's, else 0.28; 0.02 with --rule absolute]")
@lib_option(classify_files, "rule", "--rule", type=click.Choice(RULES),
            help="ratio: the paper's eqs 4-5. absolute: raw d(x,x1) <= delta_m and d(x,x'1) <= delta_s, "
                 "the comparison of the authors' released code (README: what it does and does not reproduce).")
@lib_option(classify_files, "protocol", "--protocol", type=click.Choice(["paper", "released"]),
            help="released: the authors' released evaluation in full (rule absolute, the eval set as S' with "
                 "self-matches dropped; no --synthetic). See README.")
@lib_option(classify_files, "pixel_range", "--range", type=click.Choice(["auto", "-1,1", "0,1"]),
            help="Range of float pixels: auto reads [-1, 1] and refuses sets that look like [0, 1]; 0,1 rescales.")
@lib_option(classify_files, "features_metric", "--features-metric", type=click.Choice(["l2", "cosine"]))
@lib_option(classify_files, "lpips_net", "--lpips-net", type=click.Choice(["alex", "vgg"]))
@lib_option(classify_files, "lpips_backbone", "--lpips-backbone",
            help="torchvision state dict of the backbone (.pth/.safetensors).")
@lib_option(classify_files, "lpips_lin", "--lpips-lin", help="LPIPS linear weights. [default: those shipped with lpips]")
@lib_option(classify_files, "k", "--k", type=int, help="Neighbours kept per set (>= 2).")
@lib_option(classify_files, "iterations", "--iterations", type=int, help="Bootstrap iterations.")
@lib_option(classify_files, "seed", "--seed", type=int, help="Bootstrap seed.")
@lib_option(classify_files, "device", "--device", help="cpu or cuda. [default: cuda when present]")
@lib_option(classify_files, "grid", "--grid/--no-grid", help="Draw neighbors.png.")
@lib_option(classify_files, "checks", "--checks/--no-checks",
            help="Images: also flag samples farther from S than 99% of S's items are from each other (off-manifold).")
@lib_option(classify_files, "quality", "--quality/--no-quality",
            help="Images: also score FD/KID against S in features of a network trained on S now (~1 min at "
                 "MNIST's size on one core).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@lib_option(classify_files, "overwrite", "--overwrite", is_flag=True, help="Write into an --out folder that holds files, replacing mem2gen's own earlier outputs there "
                 "(nothing else).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def classify(quiet, **kw):
    """Label each evaluation sample memorized / spurious / generalized (paper eqs 4-6)."""
    import warnings

    with warnings.catch_warnings():  # said below in one line
        warnings.simplefilter("ignore")
        r = classify_files(**kw, progress=not quiet)
    res = r.result
    if res.info.get("shared_with_synthetic"):
        click.echo(f"note: {res.info['shared_with_synthetic']} evaluation samples have an exact copy in S' (the same "
                   "samples in both sets, e.g. the same seed); each one's own copy was left out", err=True)
    dup = res.info.get("near_duplicates")
    if dup and dup["near"]:
        click.echo(f"warning: {duplicate_warning(dup)}", err=True)
    click.echo(f"{len(res.labels)} samples vs {res.info['n_train']} training and {res.info['n_synthetic']} "
               f"synthetic ({res.distance}, rule {res.rule}, delta_m={res.delta_m:.4g}, delta_s={res.delta_s:.4g}) "
               f"in {r.seconds:.1f} s")
    _print_table(res, r.bootstrap)
    if r.checks and "off_manifold" in r.checks:
        o = r.checks["off_manifold"]
        gen = "-" if o["generalized"] is None else f"{o['generalized']:.1%}"
        click.echo(f"off-manifold (farther from S than 99% of S's items are from each other): {o['fraction']:.1%} "
                   f"of all, {gen} of the generalized")
    if r.checks and "quality" in r.checks:
        q = r.checks["quality"]
        click.echo(f"quality against S (features trained on S; lower is better; not Inception FID): FD {q['fd']:.3g} "
                   f"(S against itself: {q['real_fd']:.3g}), KID {q['kid']:.3g} ± {q['kid_std']:.2g}")
    click.echo(f"wrote {kw['out']}/: " + ", ".join(r.files))


@cli.command()
@calls(planted_demo)
@lib_option(planted_demo, "out", "--out", type=click.Path(path_type=Path))
@lib_option(planted_demo, "overwrite", "--overwrite", is_flag=True)
def demo(out, overwrite):
    """Classify a built-in planted example (digits) whose right labels are known."""
    r = planted_demo(out=out, overwrite=overwrite)
    click.echo(f"planted example: {len(r.result.labels)} eval samples of 8x8 digits")
    _print_table(r.result, r.bootstrap)
    click.echo(f"agreement with the planted truth: {r.agreement:.1%}")
    click.echo(f"wrote {out}/ ({', '.join(r.files)}); try: mem2gen classify --train {out}/train.npy "
               f"--synthetic {out}/synthetic.npy --eval {out}/eval.npy --out {out}/again")


@cli.command()
@calls(train_model)
@click.option("--data", required=True,
              help="digits | mnist5k | mnist:DIR | fashion-mnist:DIR | cifar10:DIR | lsun-church:DIR | folder:DIR | FILE.npy")
@click.option("--size", type=int, required=True, help="Training-set size K (nested subsets of one permutation).")
@lib_option(train_model, "kind", "--kind", type=click.Choice(["mlp", "unet", "optimal"]),
            help="mlp, unet, or optimal (the exact denoiser of S_K: nothing to train).")
@lib_option(train_model, "arch", "--arch", type=click.Choice(list(datasets.ARCHITECTURES)), help="U-Net architecture.")
@lib_option(train_model, "width", "--width", type=float, help="Width multiplier of the network.")
@lib_option(train_model, "dropout", "--dropout", type=float, help="Dropout. [default: the architecture's]")
@lib_option(train_model, "steps", "--steps", type=int)
@lib_option(train_model, "batch", "--batch", type=int)
@lib_option(train_model, "lr", "--lr", type=float)
@lib_option(train_model, "ema_decay", "--ema-decay", type=float)
@lib_option(train_model, "weight_decay", "--weight-decay", type=float, help="AdamW weight decay (0: Adam, the paper's).")
@lib_option(train_model, "data_noise", "--data-noise", type=float,
            help="Std of Gaussian noise added to training images in [-1, 1] (augmentation).")
@lib_option(train_model, "seed", "--seed", type=int, help="Training seed.")
@lib_option(train_model, "split_seed", "--split-seed", type=int, help="Seed of the permutation that defines S_K.")
@lib_option(train_model, "split", "--split", type=click.Choice(SPLITS),
            help="numpy's permutation, or the authors' (torch.randperm, their random_split).")
@lib_option(train_model, "image_size", "--image-size", type=int, help="Resize folder/LSUN images to this size.")
@lib_option(train_model, "snapshots", "--snapshots", type=int, help="Keep this many log-spaced EMA snapshots.")
@lib_option(train_model, "device", "--device")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--quiet", is_flag=True)
def train(quiet, **kw):
    """Train one DDPM on S_K; resumes from OUT if interrupted."""
    r = train_model(**kw, progress=not quiet)
    loss = "" if r["loss"] is None else f" (final loss {r['loss']:.4f})"
    click.echo(f"trained {r['params'] / 1e6:.2f}M-parameter {r['kind']} on K={r['size']} for {r['step']} steps"
               f"{loss}; model in {r['model']}")


@cli.command()
@calls(sample_model)
@click.option("--model", required=True, help="A model folder (mem2gen or diffusers UNet2DModel/DDPMPipeline), "
                                             "a training checkpoint state.safetensors, a Hub id in the local cache, "
                                             "or an authors' K.pt (read without running code).")
@click.option("--n", type=int, required=True, help="Number of samples.")
@lib_option(sample_model, "sampler", "--sampler", type=click.Choice(SAMPLERS))
@lib_option(sample_model, "steps", "--steps", type=int, help="Sampling steps (the paper: DDPM, 1000).")
@lib_option(sample_model, "eta", "--eta", type=float, help="DDIM eta.")
@lib_option(sample_model, "batch", "--batch", type=int)
@lib_option(sample_model, "seed", "--seed", type=int, help="[default: derived from the --out file name]")
@lib_option(sample_model, "device", "--device")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output .npy (resumable).")
@click.option("--quiet", is_flag=True)
def sample(quiet, **kw):
    """Generate N samples into one memory-mappable .npy, shard by shard (resumable)."""
    arr = sample_model(**kw, progress=not quiet)
    click.echo(f"{len(arr)} samples of shape {arr.shape[1:]} in {kw['out']}")


@cli.command()
@calls(run_sweep, Submitit.__init__)
@lib_option(run_sweep, "preset", "--preset", type=click.Choice(list(SWEEP_PRESETS)), help="A sweep preset.")
@lib_option(run_sweep, "config_file", "--config", help="YAML/JSON file overriding the preset's keys.")
@click.option("--data", default=None, help="Dataset spec, e.g. mnist:/data/mnist (paper presets need one).")
@click.option("--sizes", default=None, type=Numbers(int), help="Comma-separated training-set sizes.")
@click.option("--steps", type=int, default=None, help="Training steps per model.")
@click.option("--checkpoints", default=None, type=click.Path(path_type=str),
              help="Take each K's model from this folder (K.pt, K=<K>/ or <K>/) instead of training one.")
@click.option("--device", default=None, help="Where points run. [default: cuda when present]")
@lib_option(run_sweep, "out", "--out", type=click.Path(path_type=Path), help="Run folder. [default: runs/PRESET]")
@lib_option(run_sweep, "executor", "--executor", type=click.Choice(EXECUTORS))
@lib_option(Submitit.__init__, "partition", "--partition", help="Slurm partition.")
@lib_option(Submitit.__init__, "gpus_per_node", "--gpus", type=int, help="GPUs per Slurm job.")
@lib_option(Submitit.__init__, "timeout_min", "--timeout-min", type=int, help="Slurm time limit per job.")
@lib_option(run_sweep, "devices", "--devices", type=click.STRING,
            help="Local executor: run points in parallel, one process per device, e.g. cuda:0,cuda:1. "
                 "[default: every GPU when there are several]")
@lib_option(run_sweep, "grid", "--grid", help="One sweep per value of one setting, then compared, e.g. "
            "model.dropout=0,0.1,0.3 (runs in OUT/KEY=VALUE; OUT defaults to runs/NAME-KEY).")
@lib_option(run_sweep, "find_transition", "--find-transition", is_flag=True,
            help="Run the sizes given (e.g. a doubling), find the transition A..B, then add the paper's 5+30+5 "
                 "sizes around it (App. B.1) in the same folder.")
@lib_option(run_sweep, "overwrite", "--overwrite", is_flag=True,
            help="Start again in a folder made by another config: removes the run's own files (points/, config.json, "
                 "tables, figures), never other files.")
@click.option("--quiet", is_flag=True)
def sweep(data, sizes, steps, checkpoints, device, partition, gpus_per_node, timeout_min, devices, executor, quiet, **kw):
    """Train, sample and classify one model per training-set size; phase diagram and report.
    Re-running the same command resumes."""
    t = time.perf_counter()
    overrides = {"data": data, "sizes": list(sizes) if sizes else None, "device": device, "train.steps": steps,
                 "checkpoints": checkpoints}
    slurm = {"partition": partition, "gpus_per_node": gpus_per_node, "timeout_min": timeout_min}
    res = run_sweep(**kw, overrides=overrides, executor=executor, progress=not quiet, echo=click.echo,
                    slurm=slurm if executor == "slurm" else None, devices=devices.split(",") if devices else None)
    click.echo(f"finished in {time.perf_counter() - t:.0f} s; see {res['report']}")


@cli.command()
@click.option("--preset", default=None, type=click.Choice(list(SWEEP_PRESETS)), help="A sweep preset.")
@click.option("--paper", default=None, type=click.Choice(list(datasets.PAPER_DATASETS)),
              help="The paper's 38-size schedule of a dataset (Table 1).")
@click.option("--doubling", "doubling_from", default=None, type=int, help="Doubling from this start up to --n.")
@click.option("--n", default=None, type=int, help="Dataset size for --doubling.")
def sizes(**kw):
    """Print a training-set size schedule (paper App. B.1, Table 1)."""
    ks = schedule(**kw)
    click.echo(f"{len(ks)} sizes: " + ",".join(map(str, ks)))


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def report(run_dir):
    """Rebuild results.csv, the phase diagram and report.html from a sweep folder."""
    build_report(run_dir, echo=click.echo)


@cli.command("dynamics")
@calls(run_dynamics, DynamicsConfig)
@click.argument("run_dir", type=click.Path(path_type=Path))
@lib_option(run_dynamics, "sizes", "--sizes", type=Numbers(int), help="Sizes K. [default: every trained point]")
@lib_option(DynamicsConfig, "n_eval", "--n-eval", type=int, help="|S_eval| per (K, step).")
@lib_option(DynamicsConfig, "synthetic_cap", "--synthetic-cap", type=int, help="|S'| = min(the run's factor x K, this).")
@lib_option(DynamicsConfig, "loss_items", "--loss-items", type=int, help="Training and held-out items for the losses.")
@lib_option(DynamicsConfig, "level", "--level", type=float, help="tau_mem: first step where memorized reaches this.")
@lib_option(run_dynamics, "executor", "--executor", type=click.Choice(EXECUTORS))
@lib_option(run_dynamics, "device", "--device", help="[default: the run's, else cuda when present]")
@lib_option(run_dynamics, "overwrite", "--overwrite", is_flag=True, help="Measure again with new settings.")
def dynamics_cmd(run_dir, sizes, executor, device, overwrite, **kw):
    """Phases over (K, training step) from a sweep's EMA snapshots; tau_mem(K) and its power law."""
    res = run_dynamics(run_dir, settings=DynamicsConfig(**kw), sizes=sizes, executor=executor, device=device,
                       overwrite=overwrite, echo=click.echo)
    click.echo(f"{'K':>6} {'tau_mem (1/2)':>14} {'mem 5%':>9} {'tau_gen':>8} {'spurious onset':>15} {'max spurious':>13}")
    for d in res["per_K"]:
        click.echo(f"{d['K']:>6} {tau_text(d['tau_mem'], d['tau_mem_status']):>14} "
                   f"{tau_text(d['tau_mem_05'], d['tau_mem_05_status']):>9} {str(d['tau_gen'] or '-'):>8} "
                   f"{str(d['spurious_onset'] or '-'):>15} {d['max_spurious']:>13.3f}")
    fit = res["fit"]
    if fit["a"] is None:
        click.echo(f"tau_mem ~ K^a: not fitted ({fit['reason']})")
    else:
        ci = f" [{fit['ci95'][0]:.2f}, {fit['ci95'][1]:.2f}]" if fit.get("ci95") else ""
        click.echo(f"tau_mem ~ K^a: a = {fit['a']:.2f}{ci} over K = {fit['K']}" + (f" ({fit['reason']})" if fit.get("reason") else ""))
    click.echo(f"wrote {run_dir}/dynamics.csv, dynamics.json, dynamics.png and the report's Dynamics section")


@cli.command("compare")
@calls(run_compare)
@click.argument("run_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for compare.csv/.json/.png.")
@lib_option(run_compare, "iterations", "--iterations", type=int, help="Bootstrap draws per run.")
@lib_option(run_compare, "overwrite", "--overwrite", is_flag=True)
def compare_cmd(run_dirs, **kw):
    """Overlay sweeps that differ in one knob (the first is the reference); MC/SC/GC shifts with intervals."""
    run_compare(list(run_dirs), **kw, echo=click.echo)
    click.echo(f"wrote {kw['out']}/ (compare.csv, compare.json, compare.png)")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--verify", is_flag=True, help="Also check every point's files against their records (full "
              "checksums); exit 1 if any is inconsistent. The next sweep redoes what is.")
def status(run_dir, verify):
    """Show each point's progress: pending, started, trained, sampled, classified; for a point under way,
    the last saved training step or the samples made so far."""
    run = Run(run_dir)
    lock = run.lock_holder()
    if lock:
        click.echo(f"in use by `{lock.get('command')}` (pid {lock.get('pid')} on {lock.get('host')} since {lock.get('since')})")
    bad = 0
    for p in run.points():
        problems = p.verify(full=True) if verify else []
        bad += bool(problems)
        click.echo(f"K={p.k:<8} {p.state:<11} {p.progress}".rstrip() + "".join(f"\n           {x}" for x in problems))
    states = [p.state for p in run.points()]
    click.echo(f"{states.count('classified')}/{len(states)} points classified"
               + (f"; {bad} inconsistent (the next sweep redoes them)" if bad else "; all consistent" if verify else ""))
    return 1 if bad else 0


@cli.command("toy")
@calls(run_toy)
@lib_option(run_toy, "data", "--data", type=click.Choice(["circle", "gmm"]),
            help="K points on a circle or from a 4-Gaussian mixture.")
@lib_option(run_toy, "sizes", "--sizes", type=Numbers(int))
@lib_option(run_toy, "steps", "--steps", type=int, help="Training steps per K.")
@lib_option(run_toy, "t_energy", "--t-energy", type=int, help="Step at which energies are drawn.")
@lib_option(run_toy, "t_follow", "--t-follow", type=int, help="Noise level of the fixed-point iteration.")
@lib_option(run_toy, "seed", "--seed", type=int)
@lib_option(run_toy, "out", "--out", type=click.Path(path_type=Path))
@lib_option(run_toy, "overwrite", "--overwrite", is_flag=True)
@click.option("--quiet", is_flag=True)
def toy(quiet, **kw):
    """A 2-D toy with an exact energy: learned vs exact landscape, basins and an attractor census per K."""
    rows = run_toy(**kw, progress=not quiet, echo=click.echo)
    click.echo(f"wrote {kw['out']}/ (toy.csv, toy.json, toy.png) for K = {[r['K'] for r in rows]}")


@cli.command("calibrate")
@calls(calibrate)
@click.argument("run_dir", type=click.Path(path_type=Path))
@lib_option(calibrate, "sizes", "--sizes", type=Numbers(int), help="Sizes K. [default: every classified point]")
@lib_option(calibrate, "overwrite", "--overwrite", is_flag=True, help="Recompute points already calibrated.")
def calibrate_cmd(**kw):
    """The rule against its null: spurious fraction vs |S'| and vs delta_s, the model's and real data's."""
    results = calibrate(**kw, echo=click.echo)
    head = ("K", "|S'|", "model spurious, smallest -> full |S'|", "null, smallest -> largest")
    click.echo(f"{head[0]:>6} {head[1]:>9} {head[2]:>38} {head[3]:>26}")
    for r in results:
        m, n = r["model_curve"], r["null_curve"]
        null = f"{n[0]['spurious']:>17.3f} -> {n[-1]['spurious']:.3f}" if n else f"{'no held-out data':>26}"
        click.echo(f"{r['K']:>6} {r['n_synthetic']:>9} {m[0]['spurious']:>29.3f} -> {m[-1]['spurious']:.3f} {null}")
    click.echo(f"wrote calibration.json per point, {kw['run_dir']}/calibration.png and the report's Calibration section")


@cli.command("landscape")
@calls(landscape)
@click.argument("run_dir", type=click.Path(path_type=Path))
@lib_option(landscape, "sizes", "--sizes", type=Numbers(int), help="Sizes K to analyse. [default: every classified point]")
@lib_option(landscape, "n_samples", "--n-samples", type=int, help="Samples (and training items) per point for recovery times.")
@lib_option(landscape, "trials", "--trials", type=int, help="Forward noises per sample and step.")
@lib_option(landscape, "steps", "--steps", type=int, help="DDIM steps of each reverse run.")
@lib_option(landscape, "t_energy", "--t-energy", type=int, help="Step of the energy profiles and curvature.")
@lib_option(landscape, "t_follow", "--t-follow", type=int, help="Noise level of the fixed-point iteration (census).")
@lib_option(landscape, "seed", "--seed", type=int)
@lib_option(landscape, "device", "--device")
@lib_option(landscape, "overwrite", "--overwrite", is_flag=True, help="Recompute points already analysed.")
@click.option("--quiet", is_flag=True)
def landscape_cmd(quiet, **kw):
    """The attractor landscape of a sweep's points: recovery times, energy, curvature, attractor census, mixtures."""
    results = landscape(**kw, progress=not quiet, echo=click.echo)
    click.echo(f"{'K':>6} {'t_c train':>9} {'t_c gen':>8} {'attractors':>10} {'on items':>8} {'mixture spu/gen':>16}")
    for r in results:
        tc = {g: r["recovery"].get(g, {}).get("median_t_c") for g in ("training item", "generalized")}
        mix = [r["mixture"].get(n, {}).get("by_m", {}).get("3", {}).get("explained") for n in ("spurious", "generalized")]
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        click.echo(f"{r['K']:>6} {fmt(tc['training item'], '9.0f')} {fmt(tc['generalized'], '8.0f')} "
                   f"{r['census']['n_attractors']:>10} {r['census']['n_training']:>8} "
                   f"{fmt(mix[0], '.2f'):>7} / {fmt(mix[1], '.2f')}")
    click.echo(f"wrote landscape.json per point, {kw['run_dir']}/landscape.png and the report's Landscape section")


@cli.group()
def memory():
    """Associative memories: Hopfield capacity and spurious states, DenseAM phase diagram."""


@memory.command("hopfield-capacity")
@calls(hopfield_capacity)
@lib_option(hopfield_capacity, "ns", "--n", type=Numbers(int), help="Network sizes N.")
@lib_option(hopfield_capacity, "trials", "--trials", type=int)
@lib_option(hopfield_capacity, "probes", "--probes", type=int)
@lib_option(hopfield_capacity, "seed", "--seed", type=int)
@click.option("--out", required=True, type=click.Path(path_type=Path))
@lib_option(hopfield_capacity, "overwrite", "--overwrite", is_flag=True)
def hopfield_capacity_cmd(**kw):
    """Retrieval overlap against load α = K/N; α_c(N) and its extrapolation; end-state census."""
    r = hopfield_capacity(**kw)
    exp = r["experiment"]
    for row in exp["by_n"]:
        click.echo(f"N={row['N']:<5} alpha_c = {row['alpha_c']:.3f}")
    click.echo(f"extrapolated (N -> inf, fit in 1/sqrt(N)): alpha_c = {exp['alpha_c_infinite']:.3f} (theory: 0.138)")
    click.echo(f"end states from random starts (N={r['N']}):")
    for c in r["census"]:
        click.echo(f"  alpha={c['alpha']:.3f}  pattern {c['pattern']:.2f}  negative {c['negative']:.2f}  "
                   f"mixture {c['mixture']:.2f}  spin-glass {c['spin-glass']:.2f}")
    click.echo(f"wrote {kw['out']}/ (retrieval.csv, census.csv, summary.json, hopfield.png)")


@memory.command("dense")
@calls(dense_memory)
@lib_option(dense_memory, "data", "--data")
@lib_option(dense_memory, "betas", "--beta", type=Numbers(float), help="Inverse temperatures.")
@lib_option(dense_memory, "sizes", "--sizes", type=Numbers(int))
@lib_option(dense_memory, "n_eval", "--n-eval", type=int)
@lib_option(dense_memory, "steps", "--steps", type=int, help="Update iterations per retrieval.")
@lib_option(dense_memory, "delta_s", "--delta-s", type=Ratio())
@lib_option(dense_memory, "seed", "--seed", type=int)
@click.option("--out", required=True, type=click.Path(path_type=Path))
@lib_option(dense_memory, "overwrite", "--overwrite", is_flag=True)
def dense(**kw):
    """The memory-side Figure 2: DenseAM retrievals labelled memorized / spurious / generalized."""
    r = dense_memory(**kw)
    click.echo(f"{'beta':>6} {'K':>6} {'memorized':>10} {'spurious':>10} {'generalized':>12}")
    for row in r["rows"]:
        click.echo(f"{row['beta']:>6g} {row['K']:>6} {row['frac_memorized']:>10.3f} {row['frac_spurious']:>10.3f} "
                   f"{row['frac_generalized']:>12.3f}")
    click.echo("noisy-cue retrieval and 3-mixture fixed points (fractions of 50 trials):")
    for row in r["capacity"]:
        mix = "-" if row["mixture_fixed"] is None else f"{row['mixture_fixed']:.2f}"
        click.echo(f"  beta={row['beta']:<6g} K={row['K']:<6} retrieved {row['retrieved']:.2f}  mixture fixed point {mix}")
    click.echo(f"wrote {kw['out']}/ (results.csv, capacity.csv, dense.png)")


@memory.command("bridge")
@calls(bridge)
@click.argument("run_dir", type=click.Path(path_type=Path))
@lib_option(bridge, "sizes", "--sizes", type=Numbers(int), help="Sizes K. [default: every classified point]")
@lib_option(bridge, "ts", "--t", type=Numbers(int), help="Diffusion steps t at which energies are compared.")
@lib_option(bridge, "n_samples", "--n-samples", type=int, help="Samples of S_eval per point.")
@lib_option(bridge, "seed", "--seed", type=int)
def bridge_cmd(**kw):
    """Eqs 10-13 on a sweep: the learned energy against the DenseAM (exact) energy of each point's S_K."""
    bridge(**kw, echo=click.echo)
    click.echo(f"wrote bridge.json per point and {kw['run_dir']}/bridge.csv")


def main(argv=None) -> None:
    """Entry point: one line and exit code 2 for a user mistake, no traceback."""
    try:
        rv = cli.main(args=argv, prog_name="mem2gen", standalone_mode=False)
    except Mem2genError as e:
        click.echo(f"mem2gen: error: {e}", err=True)
        sys.exit(2)
    except click.ClickException as e:  # a bad option or value: one line too, not click's usage block
        click.echo(f"mem2gen: error: {e.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except MemoryError:
        click.echo("mem2gen: error: out of memory; use smaller sets or a machine with more memory", err=True)
        sys.exit(2)
    except OSError as e:
        if e.errno in (28, 13, 30, 20, 21, 2, 40):  # ENOSPC, EACCES, EROFS, ENOTDIR, EISDIR, ENOENT, ELOOP
            click.echo(f"mem2gen: error: {e.strerror}: {e.filename or ''}"
                       + ("; free space or choose a writable --out" if e.errno in (28, 13, 30) else ""), err=True)
            sys.exit(2)
        _internal_error(e)
    except Exception as e:  # noqa: BLE001 - a bug: one line for the user, the traceback kept in a file
        _internal_error(e)
    sys.exit(rv if isinstance(rv, int) else 0)


def _internal_error(e: BaseException) -> None:
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="mem2gen-crash-", suffix=".txt")
    with open(fd, "w") as f:
        f.write(f"mem2gen {' '.join(sys.argv[1:])}\n\n")
        traceback.print_exception(e, file=f)
    first = str(e).splitlines()[0][:200] if str(e) else ""
    click.echo(f"mem2gen: internal error: {type(e).__name__}: {first} (full traceback: {path}; please report it)",
               err=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
