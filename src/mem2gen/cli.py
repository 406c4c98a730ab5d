"""The ``mem2gen`` command: thin shells over the library; user mistakes print one line and exit 2."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

from .errors import Mem2genError

OPT = dict(show_default=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mem2gen")
def cli():
    """mem2gen: memorization -> spurious states -> generalization in diffusion models."""


def _print_table(res, boot) -> None:
    click.echo(f"{'class':<12} {'count':>7} {'fraction':>9} {'boot mean':>10} {'boot std':>9}  95% interval")
    for name, c in zip(boot, res.counts):
        b = boot[name]
        click.echo(f"{name:<12} {c:>7d} {res.fractions[name]:>9.4f} {b['mean']:>10.4f} {b['std']:>9.4f}"
                   f"  [{b['ci95'][0]:.4f}, {b['ci95'][1]:.4f}]")


@cli.command()
@click.option("--train", "train_path", required=True, help="Training set S: .npy, .npz[:KEY] or an image folder.")
@click.option("--synthetic", "syn_path", default=None,
              help="Synthetic set S' (|S'| >> |S|). Omit to use the eval set as S' with leave-one-out.")
@click.option("--eval", "eval_path", required=True, help="Evaluation set S_eval (samples to label).")
@click.option("--preset", type=click.Choice(["mnist", "fashion-mnist", "cifar10", "lsun-church"]), default=None,
              help="The paper's distance and delta_s for a dataset.")
@click.option("--distance", type=click.Choice(["l2", "lpips", "features"]), default=None,
              help="l2 on pixels, LPIPS, or user-supplied feature vectors. [default: l2, or the preset's]")
@click.option("--delta-m", default="1/3", **OPT, help="Memorization threshold (eq 4).")
@click.option("--delta-s", default=None, help="Spurious threshold (eq 5). [default: 0.28, or the preset's]")
@click.option("--rule", type=click.Choice(["ratio", "absolute"]), default="ratio", **OPT,
              help="ratio: the paper's eqs 4-5. absolute: compatibility with the authors' released code "
                   "(raw d1 <= delta_m, d'1 <= delta_s; defaults 0.03 / 0.02).")
@click.option("--features-metric", type=click.Choice(["l2", "cosine"]), default="l2", **OPT)
@click.option("--lpips-net", type=click.Choice(["alex", "vgg"]), default="alex", **OPT)
@click.option("--lpips-backbone", default=None, help="torchvision state dict of the backbone (.pth/.safetensors).")
@click.option("--lpips-lin", default=None, help="LPIPS linear weights. [default: those shipped with `lpips`]")
@click.option("--k", default=5, **OPT, help="Neighbours kept per set (>= 2).")
@click.option("--iterations", default=10_000, **OPT, help="Bootstrap iterations.")
@click.option("--seed", default=0, **OPT, help="Bootstrap seed.")
@click.option("--device", default=None, help="cpu or cuda. [default: cuda when present]")
@click.option("--grid/--no-grid", default=True, **OPT, help="Draw neighbors.png.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--overwrite", is_flag=True, help="Replace an --out directory that holds files.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def classify(train_path, syn_path, eval_path, preset, distance, delta_m, delta_s, rule, features_metric, lpips_net,
             lpips_backbone, lpips_lin, k, iterations, seed, device, grid, out, overwrite, quiet):
    """Label each evaluation sample memorized / spurious / generalized (paper eqs 4-6)."""
    from .classify import ABSOLUTE_DEFAULTS, PRESETS, check_thresholds, classify as run, parse_fraction, write_outputs
    from .data import as_samples, load_array, parse_path_key
    from .files import prepare_out_dir, sha256_of, staged_dir

    p = PRESETS.get(preset, {})
    distance = distance or p.get("distance", "l2")
    if rule == "absolute":
        dm = parse_fraction(delta_m) if delta_m != "1/3" else ABSOLUTE_DEFAULTS["delta_m"]
        ds = parse_fraction(delta_s) if delta_s else ABSOLUTE_DEFAULTS["delta_s"]
    else:
        dm, ds = parse_fraction(delta_m), parse_fraction(delta_s) if delta_s else p.get("delta_s", 0.28)
    check_thresholds(dm, ds, rule)
    prepare_out_dir(out, overwrite=overwrite)
    paths = {"eval": eval_path, "train": train_path} | ({"synthetic": syn_path} if syn_path else {})
    arrays = {name: load_array(spec) for name, spec in paths.items()}
    t0 = time.perf_counter()
    res = run(arrays["eval"], arrays["train"], arrays.get("synthetic"), distance=distance, delta_m=dm, delta_s=ds,
              rule=rule, k=k, features_metric=features_metric, lpips_net=lpips_net, lpips_backbone=lpips_backbone,
              lpips_lin=lpips_lin, device=device, progress=not quiet)
    seconds = time.perf_counter() - t0
    boot = res.bootstrap(iterations=iterations, seed=seed)
    extra = {"inputs": {n: {"path": str(s), "sha256": sha256_of(parse_path_key(s)[0])} for n, s in paths.items()},
             "bootstrap_iterations": iterations, "bootstrap_seed": seed, "seconds": round(seconds, 3)}
    ev = as_samples(arrays["eval"], name="eval")
    syn = as_samples(arrays["synthetic"], name="synthetic") if syn_path else ev
    with staged_dir(out, overwrite=overwrite) as stage:  # feature vectors are not pictures: no grid
        written = write_outputs(stage, res, ev, as_samples(arrays["train"], name="train"), syn,
                                boot=boot, extra=extra, grid=grid and distance != "features")
    click.echo(f"{len(res.labels)} samples vs {res.info['n_train']} training and {res.info['n_synthetic']} "
               f"synthetic ({res.distance}, rule {rule}, delta_m={dm:.4g}, delta_s={ds:.4g}) in {seconds:.1f} s")
    _print_table(res, boot)
    click.echo(f"wrote {out}/: " + ", ".join(written))


@cli.command()
@click.option("--out", default="runs/demo", type=click.Path(path_type=Path), **OPT)
@click.option("--overwrite", is_flag=True)
def demo(out, overwrite):
    """Classify a built-in planted example (digits) whose right labels are known."""
    from .classify import classify as run, write_outputs
    from .examples import planted
    from .files import save_npy, staged_dir

    ev, tr, syn, truth = planted()
    res = run(ev, tr, syn)
    boot = res.bootstrap()
    with staged_dir(out, overwrite=overwrite) as stage:
        for name, a in (("eval", ev), ("train", tr), ("synthetic", syn)):
            save_npy(stage / f"{name}.npy", a)
        write_outputs(stage, res, ev, tr, syn, boot=boot, grid=True,
                             extra={"planted_truth_agreement": float((res.labels == truth).mean())})
    click.echo(f"planted example: {len(ev)} eval, {len(tr)} train, {len(syn)} synthetic digits (8x8)")
    _print_table(res, boot)
    click.echo(f"agreement with the planted truth: {(res.labels == truth).mean():.1%}")
    click.echo(f"wrote {out}/ (labels.csv, summary.json, neighbors.png); try: mem2gen classify "
               f"--train {out}/train.npy --synthetic {out}/synthetic.npy --eval {out}/eval.npy --out {out}/again")


@cli.command()
@click.option("--data", "data_spec", required=True,
              help="digits | mnist5k | mnist:DIR | fashion-mnist:DIR | cifar10:DIR | lsun-church:DIR | folder:DIR | FILE.npy")
@click.option("--size", type=int, required=True, help="Training-set size K (nested subsets of one permutation).")
@click.option("--model", "kind", type=click.Choice(["mlp", "unet"]), default="mlp", **OPT)
@click.option("--preset", default="digits-small", **OPT, help="U-Net preset (paper Table 2 or a small one).")
@click.option("--width", default=1.0, **OPT, help="Width multiplier of the network.")
@click.option("--steps", default=2000, **OPT)
@click.option("--batch", default=128, **OPT)
@click.option("--lr", default=2e-4, **OPT)
@click.option("--ema-decay", default=0.9999, **OPT)
@click.option("--dropout", default=None, type=float, help="Dropout. [default: the preset's]")
@click.option("--seed", default=0, **OPT, help="Training seed.")
@click.option("--split-seed", default=3407, **OPT, help="Seed of the permutation that defines S_K.")
@click.option("--image-size", default=None, type=int, help="Resize folder/LSUN images to this size.")
@click.option("--checkpoints", default=0, **OPT, help="Keep this many log-spaced EMA snapshots.")
@click.option("--device", default=None)
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--quiet", is_flag=True)
def train(data_spec, size, kind, preset, width, steps, batch, lr, ema_decay, dropout, seed, split_seed, image_size,
          checkpoints, device, out, quiet):
    """Train one DDPM on S_K; resumes from OUT if interrupted."""
    from .data import load_dataset, nested_subset
    from .models import ModelSpec, n_params
    from .train import TrainConfig, log_spaced_steps, train as run

    spec = ModelSpec(kind=kind, preset=preset, width=width, dropout=dropout)
    cfg = TrainConfig(steps=steps, batch=batch, lr=lr, ema_decay=ema_decay, seed=seed,
                      save_steps=log_spaced_steps(steps, checkpoints) if checkpoints else ())
    data = nested_subset(load_dataset(data_spec, image_size=image_size), size, seed=split_seed)
    model = spec.build(data.shape[1:], seed=seed)
    _check_run_dir(out, {"data": data_spec, "size": size, "model": spec.__dict__, "train": cfg.__dict__,
                         "split_seed": split_seed})
    res = run(model, data, cfg, out, device=device, progress=not quiet,
              meta={"data": data_spec, "size": size, "split_seed": split_seed, "spec": spec.__dict__})
    click.echo(f"trained {n_params(model) / 1e6:.2f}M-parameter {kind} on K={size} for {res.step} steps "
               f"(final loss {res.losses[-1][1]:.4f}); model in {out}/model")


def _check_run_dir(out: Path, settings: dict) -> None:
    """Refuse to resume a directory that was started with other settings."""
    import json

    from .files import changed_keys, read_json, write_json

    f = out / "train.json"
    settings = json.loads(json.dumps(settings, default=list))
    if f.exists():
        diff = changed_keys(read_json(f), settings)
        if diff:
            raise Mem2genError(f"{out} holds a run with other settings ({', '.join(diff)}); use another --out")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json(f, settings)


@cli.command()
@click.option("--model", "model_dir", required=True, help="A trained model directory (or a diffusers UNet2DModel).")
@click.option("--n", type=int, required=True, help="Number of samples.")
@click.option("--sampler", type=click.Choice(["ddpm", "ddim"]), default="ddpm", **OPT)
@click.option("--steps", default=1000, **OPT, help="Sampling steps (the paper: DDPM, 1000).")
@click.option("--eta", default=0.0, **OPT, help="DDIM eta.")
@click.option("--batch", default=256, **OPT)
@click.option("--seed", default=0, **OPT)
@click.option("--device", default=None)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output .npy (resumable).")
@click.option("--quiet", is_flag=True)
def sample(model_dir, n, sampler, steps, eta, batch, seed, device, out, quiet):
    """Generate N samples into one memory-mappable .npy, shard by shard (resumable)."""
    from .models import load_model
    from .sample import generate

    if out.suffix != ".npy":
        raise Mem2genError(f"--out {out} must end in .npy")
    arr = generate(load_model(model_dir, device=device), n, out, sampler=sampler, steps=steps, eta=eta,
                   batch=batch, seed=seed, device=device, progress=not quiet)
    click.echo(f"{len(arr)} samples of shape {arr.shape[1:]} in {out}")


def _sizes_option(text):
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise Mem2genError(f"--sizes {text!r}: give comma-separated integers, e.g. 2,8,32") from None


@cli.command()
@click.option("--preset", default="quick", **OPT,
              help="quick | mnist5k | paper-mnist | paper-fashion-mnist | paper-cifar10 | paper-lsun-church")
@click.option("--config", "config_file", default=None, help="YAML/JSON file overriding the preset's keys.")
@click.option("--data", default=None, help="Dataset spec, e.g. mnist:/data/mnist (paper presets need one).")
@click.option("--sizes", default=None, help="Comma-separated training-set sizes.")
@click.option("--steps", type=int, default=None, help="Training steps per model.")
@click.option("--device", default=None)
@click.option("--out", default=None, type=click.Path(path_type=Path), help="Run directory. [default: runs/PRESET]")
@click.option("--executor", type=click.Choice(["local", "slurm", "submitit-local"]), default="local", **OPT)
@click.option("--partition", default=None, help="Slurm partition.")
@click.option("--gpus", default=1, **OPT, help="GPUs per Slurm job.")
@click.option("--timeout-min", default=4320, **OPT, help="Slurm time limit per job.")
@click.option("--devices", default=None,
              help="Local executor: run points in parallel, one process per device, e.g. cuda:0,cuda:1. "
                   "[default: every GPU when there are several]")
@click.option("--overwrite", is_flag=True, help="Start again in a directory made by another config.")
@click.option("--quiet", is_flag=True)
def sweep(preset, config_file, data, sizes, steps, device, out, executor, partition, gpus, timeout_min, devices,
          overwrite, quiet):
    """Train, sample and classify one model per training-set size; phase diagram and report.
    Re-running the same command resumes."""
    import dataclasses

    from .sweep import load_config, run_sweep

    cfg = load_config(preset, config_file, {"data": data, "sizes": _sizes_option(sizes), "device": device})
    if steps:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps))
    out = out or Path("runs") / cfg.name
    t = time.perf_counter()
    run_sweep(cfg, out, executor=executor, overwrite=overwrite, progress=not quiet, echo=click.echo,
              slurm={"partition": partition, "gpus_per_node": gpus, "timeout_min": timeout_min}
              if executor == "slurm" else None, devices=devices.split(",") if devices else None)
    click.echo(f"finished in {time.perf_counter() - t:.0f} s; open {out / 'report.html'}")


@cli.command()
@click.option("--preset", default=None, help="A sweep preset (e.g. paper-mnist).")
@click.option("--paper", default=None, type=click.Choice(["mnist", "fashion-mnist", "cifar10", "lsun-church"]))
@click.option("--doubling", default=None, type=int, help="Doubling from this start up to --n.")
@click.option("--n", default=None, type=int, help="Dataset size for --doubling.")
def sizes(preset, paper, doubling, n):
    """Print a training-set size schedule (paper App. B.1, Table 1)."""
    from .sizes import PAPER_POINTS, doubling as dbl, paper as pap
    from .sweep import load_config

    if doubling:
        if not n:
            raise Mem2genError("--doubling needs --n (the dataset size)")
        ks = dbl(n, start=doubling)
    else:
        if preset:
            spec = load_config(preset).sizes
            if isinstance(spec, dict) and "paper" in spec:
                paper = spec["paper"]
            else:
                click.echo(",".join(map(str, spec)))
                return
        if not paper:
            raise Mem2genError("give --preset, --paper or --doubling")
        start, a, b, nn = PAPER_POINTS[paper]
        ks = pap(a, b, nn, start=start)
    click.echo(f"{len(ks)} sizes: " + ",".join(map(str, ks)))


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def report(run_dir):
    """Rebuild results.csv, the phase diagram and report.html from a sweep directory."""
    from .sweep import aggregate, status as st

    st(run_dir)
    aggregate(run_dir, echo=click.echo)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def status(run_dir):
    """Show each point's progress: pending, started, trained, sampled, classified."""
    from .sweep import status as st

    rows = st(run_dir)
    for k, state in rows:
        click.echo(f"K={k:<8} {state}")
    done = sum(s == "classified" for _, s in rows)
    click.echo(f"{done}/{len(rows)} points classified")


@cli.group()
def memory():
    """Associative memories: Hopfield capacity and spurious states, DenseAM phase diagram."""


def _ints(text, name):
    try:
        return [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise Mem2genError(f"--{name} {text!r}: give comma-separated integers") from None


def _floats(text, name):
    try:
        vals = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise Mem2genError(f"--{name} {text!r}: give comma-separated numbers") from None
    return vals


@memory.command("hopfield-capacity")
@click.option("--n", "ns", default="100,200,400,800", **OPT, help="Network sizes N.")
@click.option("--trials", default=6, **OPT)
@click.option("--probes", default=20, **OPT)
@click.option("--seed", default=0, **OPT)
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--overwrite", is_flag=True)
def hopfield_capacity(ns, trials, probes, seed, out, overwrite):
    """Retrieval overlap against load α = K/N; α_c(N) and its extrapolation; end-state census."""
    from .files import staged_dir, write_json, write_text
    from .memory import capacity_experiment, spurious_census
    from .plots import hopfield_figure

    ns = _ints(ns, "n")
    if not ns or min(ns) < 20:
        raise Mem2genError("--n: give network sizes of at least 20")
    exp = capacity_experiment(ns, trials=trials, probes=probes, seed=seed)
    census = spurious_census(max(ns), [0.02, 0.05, 0.1, 0.138, 0.2, 0.3], seed=seed)
    with staged_dir(out, overwrite=overwrite) as stage:
        lines = ["N,alpha,overlap,success"] + [f"{r['N']},{a},{m},{s}" for r in exp["by_n"]
                                              for a, m, s in zip(r["curve"]["alpha"], r["curve"]["overlap"],
                                                                 r["curve"]["success"])]
        write_text(stage / "retrieval.csv", "\n".join(lines) + "\n")
        write_text(stage / "census.csv", "alpha,pattern,negative,mixture,spin-glass\n" + "".join(
            f"{r['alpha']},{r['pattern']},{r['negative']},{r['mixture']},{r['spin-glass']}\n" for r in census))
        write_json(stage / "summary.json", {"alpha_c_by_n": {r["N"]: r["alpha_c"] for r in exp["by_n"]},
                                            "alpha_c_infinite": exp["alpha_c_infinite"], "census": census})
        hopfield_figure(exp, census, stage / "hopfield.png")
    for r in exp["by_n"]:
        click.echo(f"N={r['N']:<5} alpha_c = {r['alpha_c']:.3f}")
    click.echo(f"extrapolated (N -> inf, fit in 1/sqrt(N)): alpha_c = {exp['alpha_c_infinite']:.3f} "
               "(theory: 0.138)")
    click.echo("end states from random starts (N=%d):" % max(ns))
    for r in census:
        click.echo(f"  alpha={r['alpha']:.3f}  pattern {r['pattern']:.2f}  negative {r['negative']:.2f}  "
                   f"mixture {r['mixture']:.2f}  spin-glass {r['spin-glass']:.2f}")
    click.echo(f"wrote {out}/ (retrieval.csv, census.csv, summary.json, hopfield.png)")


@memory.command("dense")
@click.option("--data", "data_spec", default="digits", **OPT)
@click.option("--beta", "betas", default="20,60,200", **OPT, help="Inverse temperatures.")
@click.option("--sizes", default="2,8,32,128,512,1797", **OPT)
@click.option("--n-eval", default=500, **OPT)
@click.option("--steps", default=50, **OPT, help="Update iterations per retrieval.")
@click.option("--delta-s", default=0.28, **OPT)
@click.option("--seed", default=0, **OPT)
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--overwrite", is_flag=True)
def dense(data_spec, betas, sizes, n_eval, steps, delta_s, seed, out, overwrite):
    """The memory-side Figure 2: DenseAM retrievals labelled memorized / spurious / generalized."""
    from .data import load_dataset, nested_subset, to_float
    from .files import staged_dir, write_text
    from .memory.phase import capacity_table, dense_phase
    from .plots import dense_figure

    betas, ks = _floats(betas, "beta"), _ints(sizes, "sizes")
    if any(b <= 0 for b in betas):
        raise Mem2genError("--beta values must be positive")
    data = load_dataset(data_spec)
    flat = to_float(nested_subset(data, max(ks)), np.float64)
    rows = dense_phase(flat, ks, betas, n_eval=n_eval, steps=steps, delta_s=delta_s, seed=seed)
    caps = capacity_table(flat, ks, betas, steps=max(steps, 50), seed=seed)

    def csv_text(table):
        keys = list(table[0])
        return ",".join(keys) + "\n" + "".join(",".join(str(r[k]) for k in keys) + "\n" for r in table)

    with staged_dir(out, overwrite=overwrite) as stage:
        write_text(stage / "results.csv", csv_text(rows))
        write_text(stage / "capacity.csv", csv_text(caps))
        dense_figure(rows, stage / "dense.png")
    click.echo(f"{'beta':>6} {'K':>6} {'memorized':>10} {'spurious':>10} {'generalized':>12}")
    for r in rows:
        click.echo(f"{r['beta']:>6g} {r['K']:>6} {r['frac_memorized']:>10.3f} {r['frac_spurious']:>10.3f} "
                   f"{r['frac_generalized']:>12.3f}")
    click.echo("noisy-cue retrieval and 3-mixture fixed points (fractions of 50 trials):")
    for r in caps:
        mix = "-" if r["mixture_fixed"] is None else f"{r['mixture_fixed']:.2f}"
        click.echo(f"  beta={r['beta']:<6g} K={r['K']:<6} retrieved {r['retrieved']:.2f}  mixture fixed point {mix}")
    click.echo(f"wrote {out}/ (results.csv, capacity.csv, dense.png)")


def main(argv=None) -> None:
    """Entry point: one line and exit code 2 for a user mistake, no traceback."""
    try:
        rv = cli.main(args=argv, prog_name="mem2gen", standalone_mode=False)
    except Mem2genError as e:
        click.echo(f"mem2gen: error: {e}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except MemoryError:
        click.echo("mem2gen: error: out of memory; use smaller sets or a machine with more memory", err=True)
        sys.exit(2)
    except OSError as e:
        if e.errno in (28, 13, 30):  # ENOSPC, EACCES, EROFS
            click.echo(f"mem2gen: error: {e.strerror}: {e.filename or ''}; free space or choose a writable --out",
                       err=True)
            sys.exit(2)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
