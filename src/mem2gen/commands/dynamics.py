"""``mem2gen dynamics`` and ``mem2gen compare``: phases over training time from a sweep's snapshots, and
sweeps that differ in one knob overlaid."""
from __future__ import annotations

from pathlib import Path

import click

from ..analyses.dynamics import DynamicsConfig, dynamics
from ..core.timescales import censored_text
from ..runs.compare import compare
from ..runs.executors import EXECUTORS
from ..runs.report import tau_text
from .options import Numbers, calls, lib_option


@click.command("dynamics")
@calls(dynamics, DynamicsConfig)
@click.argument("run_dir", type=click.Path(path_type=Path))
@lib_option(dynamics, "sizes", "--sizes", type=Numbers(int), help="Sizes K. [default: every trained point]")
@lib_option(DynamicsConfig, "n_eval", "--n-eval", type=int, help="|S_eval| per (K, step).")
@lib_option(DynamicsConfig, "synthetic_cap", "--synthetic-cap", type=int,
            help="|S'| = min(the run's factor x K, this).")
@lib_option(DynamicsConfig, "loss_items", "--loss-items", type=int, help="Training and held-out items for the losses.")
@lib_option(DynamicsConfig, "level", "--level", type=float, help="tau_mem: first step where memorized reaches this.")
@lib_option(dynamics, "replicates", "--replicates", is_flag=True,
            help="Every model of each K (each against its own null), and dynamics-models.csv over the models.")
@lib_option(dynamics, "executor", "--executor", type=click.Choice(EXECUTORS))
@lib_option(dynamics, "devices", "--devices", type=click.STRING,
            help="Comma-separated devices, one worker each (e.g. cpu,cpu).")
@lib_option(dynamics, "device", "--device", help="[default: the run's, else cuda when present]")
@lib_option(dynamics, "overwrite", "--overwrite", is_flag=True, help="Measure again with new settings.")
def dynamics_cmd(run_dir, sizes, replicates, executor, devices, device, overwrite, **kw):
    """Phases over (K, training step) from a sweep's EMA snapshots; tau_mem(K) and its power law."""
    res = dynamics(run_dir, settings=DynamicsConfig(**kw), sizes=sizes, replicates=replicates, executor=executor,
                   devices=devices.split(",") if devices else None, device=device, overwrite=overwrite,
                   echo=click.echo)
    click.echo(f"{'K':>6} {'tau_mem (1/2)':>14} {'mem 5%':>9} {'tau_gen':>8} {'spurious onset':>15} "
               f"{'max spurious':>13}")
    for d in res["per_K"]:
        click.echo(f"{d['K']:>6} {tau_text(d['tau_mem'], d['tau_mem_status']):>14} "
                   f"{tau_text(d['tau_mem_05'], d['tau_mem_05_status']):>9} {str(d['tau_gen'] or '-'):>8} "
                   f"{str(d['spurious_onset'] or '-'):>15} {d['max_spurious']:>13.3f}")
    fit = res["fit"]
    if fit["a"] is None:
        click.echo(f"tau_mem ~ K^a: not fitted ({fit['reason']})")
    else:
        ci = f" [{fit['ci95'][0]:.2f}, {fit['ci95'][1]:.2f}]" if fit.get("ci95") else ""
        why = f" ({fit['reason']})" if fit.get("reason") else ""
        click.echo(f"tau_mem ~ K^a (bracketed sizes only): a = {fit['a']:.2f}{ci} over K = {fit['K']}{why}")
    if res.get("fit_censored"):
        click.echo(censored_text(res["fit_censored"]))
    click.echo(f"wrote {run_dir}/dynamics.csv, dynamics.json, dynamics.png and the report's Dynamics section")


@click.command("compare")
@calls(compare)
@click.argument("run_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for compare.csv/.json/.png.")
@lib_option(compare, "iterations", "--iterations", type=int, help="Bootstrap draws per run.")
@lib_option(compare, "overwrite", "--overwrite", is_flag=True)
def compare_cmd(run_dirs, **kw):
    """Overlay sweeps that differ in one knob (the first is the reference); MC/SC/GC shifts with intervals."""
    compare(list(run_dirs), **kw, echo=click.echo)
    click.echo(f"wrote {kw['out']}/ (compare.csv, compare.json, compare.png)")


COMMANDS = [dynamics_cmd, compare_cmd]
