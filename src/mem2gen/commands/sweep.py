"""``mem2gen sweep``, ``status``, ``report`` and ``sizes``: one model per training-set size, its
progress, its report, and the size schedules."""
from __future__ import annotations

import time
from pathlib import Path

import click

from ..core.stats import pooled_models_excess
from ..errors import check
from ..io import datasets
from ..io.config import SWEEP_PRESETS
from ..io.files import sha256_of, write_csv
from ..io.sizes import schedule
from ..runs.compare import replicate_groups
from ..runs.executors import EXECUTORS, Submitit
from ..runs.report import num
from ..runs.results import pool as pool_rows
from ..runs.results import read_rows, replicate_points
from ..runs.run import Run
from ..runs.sweep import rebuild_report
from ..runs.sweep import sweep as run_sweep
from ..runs.verify import verify
from .options import Numbers, calls, lib_option


@click.command()
@calls(run_sweep, Submitit.__init__)
@lib_option(run_sweep, "preset", "--preset", type=click.Choice(list(SWEEP_PRESETS)), help="A sweep preset.")
@lib_option(run_sweep, "config_file", "--config", help="YAML/JSON file overriding the preset's keys.")
@click.option("--data", default=None, help="Dataset spec, e.g. mnist:/data/mnist (paper presets need one).")
@click.option("--sizes", default=None, type=Numbers(int), help="Comma-separated training-set sizes.")
@click.option("--steps", type=int, default=None, help="Training steps per model.")
@click.option("--checkpoints", default=None, type=click.Path(path_type=str),
              help="Take each K's model from this folder (K.pt, K=<K>/ or <K>/) instead of training one.")
@click.option("--samples", default=None, type=click.Path(path_type=str),
              help="With --checkpoints: each K's samples from this folder (K.npz, K.npy or K/) instead of sampling; "
                   "S_eval is their first n_eval, S' the next factor x K.")
@click.option("--device", default=None, help="Where points run. [default: cuda when present]")
@lib_option(run_sweep, "out", "--out", type=click.Path(path_type=Path), help="Run folder. [default: runs/PRESET]")
@lib_option(run_sweep, "executor", "--executor", type=click.Choice(EXECUTORS))
@lib_option(Submitit.__init__, "partition", "--partition", help="Slurm partition.")
@lib_option(Submitit.__init__, "account", "--account", help="Slurm account charged.")
@lib_option(Submitit.__init__, "qos", "--qos", help="Slurm quality of service.")
@lib_option(Submitit.__init__, "gpus_per_node", "--gpus", type=int, help="GPUs per Slurm job.")
@lib_option(Submitit.__init__, "cpus_per_task", "--cpus-per-task", type=int, help="CPUs per Slurm job.")
@lib_option(Submitit.__init__, "mem_gb", "--mem-gb", type=int, help="Memory per Slurm job, GB.")
@lib_option(Submitit.__init__, "constraint", "--constraint", help="Slurm node constraint (e.g. h100).")
@lib_option(Submitit.__init__, "timeout_min", "--timeout-min", type=int,
            help="Slurm time limit per job; a job stopped by it is submitted again (see --requeues) and resumes.")
@lib_option(Submitit.__init__, "requeues", "--requeues", type=int,
            help="Times a job stopped at its time limit is submitted again.")
@click.option("--sbatch", "sbatch", multiple=True, metavar="KEY=VALUE",
              help="Any other #SBATCH option, e.g. --sbatch exclude=node7 --sbatch mail-type=END (repeatable).")
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
@lib_option(run_sweep, "plan", "--plan", is_flag=True,
            help="Run nothing: print each point's estimated time (a few steps timed on the device), disk and "
                 "memory, and the totals; refuse a run that would not fit on its disk.")
@lib_option(run_sweep, "plan_gpu", "--plan-gpu", metavar="GPU",
            help="Run nothing: the plan for a named GPU (H100, H200, A100, L40S, ...), counted from the network's "
                 "FLOPs and the GPU's published peak, in seconds on any machine (no GPU or data files needed).")
@click.option("--quiet", is_flag=True)
def sweep(data, sizes, steps, checkpoints, samples, device, partition, account, qos, gpus_per_node, cpus_per_task,
          mem_gb, constraint, timeout_min, requeues, sbatch, devices, executor, quiet, **kw):
    """Train, sample and classify one model per training-set size; phase diagram and report.
    Re-running the same command resumes."""
    t = time.perf_counter()
    overrides = {"data": data, "sizes": list(sizes) if sizes else None, "device": device, "train.steps": steps,
                 "checkpoints": checkpoints, "samples": samples}
    slurm = {"partition": partition, "account": account, "qos": qos, "gpus_per_node": gpus_per_node,
             "cpus_per_task": cpus_per_task, "mem_gb": mem_gb, "constraint": constraint, "timeout_min": timeout_min,
             "requeues": requeues, "extra": tuple(sbatch)}
    res = run_sweep(**kw, overrides=overrides, executor=executor, progress=not quiet, echo=click.echo,
                    slurm=slurm if executor == "slurm" else None, devices=devices.split(",") if devices else None)
    if "plan" not in res:  # with --plan or --plan-gpu: printed
        click.echo(f"finished in {time.perf_counter() - t:.0f} s; see {res['report']}")


@click.command()
@click.option("--preset", default=None, type=click.Choice(list(SWEEP_PRESETS)), help="A sweep preset.")
@click.option("--paper", default=None, type=click.Choice(list(datasets.PAPER_DATASETS)),
              help="The paper's 38-size schedule of a dataset (Table 1).")
@click.option("--doubling", "doubling_from", default=None, type=int, help="Doubling from this start up to --n.")
@click.option("--n", default=None, type=int, help="Dataset size for --doubling.")
def sizes(**kw):
    """Print a training-set size schedule (paper App. B.1, Table 1)."""
    ks = schedule(**kw)
    click.echo(f"{len(ks)} sizes: " + ",".join(map(str, ks)))


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def report(run_dir):
    """Rebuild results.csv, the phase diagram and report.html from a sweep folder."""
    rebuild_report(run_dir, echo=click.echo)


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--verify", "full", is_flag=True, help="Also check every point's files against their records (full "
              "checksums); exit 1 if any is inconsistent. The next sweep redoes what is.")
def status(run_dir, full):
    """Show each point's progress: pending, started, trained, sampled, classified; for a point under way,
    the last saved training step or the samples made so far."""
    run = Run(run_dir)
    lock = run.lock_holder()
    if lock:
        click.echo(f"in use by `{lock.get('command')}` (pid {lock.get('pid')} on {lock.get('host')} since "
                   f"{lock.get('since')})")
    bad = 0
    for p in run.points():
        problems = verify(p, full=True) if full else []
        bad += bool(problems)
        click.echo(f"K={str(p.key):<8} {p.state:<11} {p.progress}".rstrip()
                   + "".join(f"\n           {x}" for x in problems))
    states = [p.state for p in run.points()]
    click.echo(f"{states.count('classified')}/{len(states)} points classified"
               + (f"; {bad} inconsistent (the next sweep redoes them)" if bad else "; all consistent" if full else ""))
    return 1 if bad else 0


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The model-level table (.csv).")
def pool(runs, out):
    """Model-level table from replicate runs (run folders, or their results.csv) that differ only in seed;
    a folder's own replicates count as models too, and so do those of a points.csv (its `replicate` column)."""
    folders = [r for r in runs if r.is_dir()]
    if folders:
        groups = replicate_groups([Run(r).config.to_dict() for r in folders])
        check(len(groups) == 1, "these run folders differ in more than their seed; pool replicates of one setting")
    check(out.suffix == ".csv", f"--out {out} must end in .csv")
    check(not out.exists(), f"{out} exists; choose another --out")
    seen = {}
    for r in runs:  # the same folder or file twice, or a byte copy of a file: one model's evidence counted twice
        mark = ("dir", r.resolve()) if r.is_dir() else ("file", sha256_of(r)) if r.is_file() else ("none", r)
        check(mark not in seen, f"{r} is {seen.get(mark)} again (the same folder, or a file with the same bytes): "
                                "pool each model once")
        seen[mark] = r
    tables = []
    for r in runs:  # one table per model: a run folder with replicates (or its points.csv) gives one per replicate
        pts = read_rows(r) if not r.is_dir() else Run(r).point_results()
        if not r.is_dir() and not any(x.get("replicate") for x in pts):
            tables.append(pts)
            continue
        tables += [[x for x in pts if x["replicate"] == rep] for rep in sorted({x["replicate"] for x in pts})]
    points = replicate_points(tables)
    rows = pool_rows(points)
    write_csv(out, rows)
    for name, title in (("spurious", "spurious"), ("spurious_nonmem", "spurious | not memorized")):
        click.echo(f"{title}:")
        click.echo(f"{'K':>6} {'R':>3} {'model':>9} {'sd':>7} {'null':>7} {'excess [95%]':>24} {'p':>9}  "
                   "above the null")
        for r in rows:
            frac = r.get(f"frac_{name}")
            if r.get(f"null_{name}") is None or r.get(f"excess_{name}") is None:
                click.echo(f"{r['K']:>6} {r['n_replicates']:>3} {num(frac, '9.4f')}    (no null)")
                continue
            click.echo(f"{r['K']:>6} {r['n_replicates']:>3} {num(frac, '9.4f')} {num(r.get('std_' + name), '7.4f')} "
                       f"{r[f'null_{name}']:>7.4f} {r[f'excess_{name}']:>+8.4f} "
                       f"[{num(r[f'excess_lo95_{name}'], '+.4f')}, "
                       f"{num(r[f'excess_hi95_{name}'], '+.4f')}] {num(r[f'p_{name}'], '9.2g')}  "
                       + ("yes" if r[f"significant_{name}"] else "no"))
    ks = [r["K"] for r in rows]
    w = pooled_models_excess(points, min(ks) - 1, max(ks) + 1)
    if w:
        click.echo(f"pooled over K = {w['sizes']} per model: excess {w['excess']:+.4f} [{w['ci95'][0]:+.4f}, "
                   f"{w['ci95'][1]:+.4f}] over {w['replicates']} models, one-sided t-test p = {w['p']:.2g}")
    click.echo("model-level: fractions are means over the runs' models, intervals t-intervals over them; above the "
               f"null: one-sided t-test of the models' excesses, Holm over the K; wrote {out}")
    if not folders:
        click.echo("note: results.csv files do not say how they were made; make sure they differ only in seed")


COMMANDS = [sweep, status, report, sizes, pool]
