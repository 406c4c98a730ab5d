"""``mem2gen landscape``, ``mem2gen attractors`` and ``mem2gen toy``: the attractor landscape of a sweep's points
(recovery times, energy, curvature, attractor census, mixtures), the attractor study (Hypothesis 2.1), and a 2-D
toy whose energy is exact."""
from __future__ import annotations

from pathlib import Path

import click

from ..analyses.basins import TABLES as BASIN_TABLES
from ..analyses.basins import basin_study
from ..analyses.studies import attractor_study, landscape
from ..analyses.toy import run_toy
from ..io import layout
from ..io.config import ATTRACTOR_GROUPS
from ..runs.report import num
from .options import Numbers, Words, calls, lib_option


@click.command("landscape")
@calls(landscape, attractor_study)
@click.argument("run_dir", type=click.Path(path_type=Path))
@lib_option(landscape, "sizes", "--sizes", type=Numbers(int),
            help="Sizes K to analyse. [default: every classified point]")
@lib_option(landscape, "n_samples", "--n-samples", type=int,
            help="Samples (and training items) per point for recovery times.")
@lib_option(landscape, "trials", "--trials", type=int, help="Forward noises per sample and step.")
@lib_option(landscape, "steps", "--steps", type=int, help="DDIM steps of each reverse run.")
@lib_option(landscape, "t_energy", "--t-energy", type=int, help="Step of the energy profiles and curvature.")
@lib_option(landscape, "t_follow", "--t-follow", type=int, help="Noise level of the fixed-point iteration (census).")
@lib_option(landscape, "seed", "--seed", type=int)
@lib_option(landscape, "device", "--device")
@lib_option(landscape, "overwrite", "--overwrite", is_flag=True, help="Recompute points already analysed.")
@click.option("--attractors", is_flag=True, help="Run the attractor study instead (the same as `mem2gen attractors`: "
                                                 "Hypothesis 2.1, groups followed to fixed points at several t).")
@lib_option(attractor_study, "ts", "--ts", type=Numbers(int), help="With --attractors: the noise levels t.")
@lib_option(attractor_study, "groups", "--groups", type=Words(ATTRACTOR_GROUPS),
            help="With --attractors: the starting points.")
@lib_option(attractor_study, "per_group", "--per-group", type=int,
            help="With --attractors: starts per group and model.")
@lib_option(attractor_study, "n_synthetic", "--n-synthetic", type=int,
            help="With --attractors: samples of S' followed for the basin mass.")
@lib_option(attractor_study, "window", "--window", is_flag=True,
            help="With --attractors: also every 25 steps through the t range where DenseAM theory puts "
                 "mixture states (per K).")
@lib_option(attractor_study, "control", "--control", type=click.Choice(["planted"]),
            help="With --attractors: the positive control beside each model: the exact denoiser of S_K with "
                 "planted mixtures, and without.")
@lib_option(attractor_study, "n_planted", "--n-planted", type=int,
            help="With --attractors: planted mixtures in the control.")
@lib_option(attractor_study, "snapshots", "--snapshots", is_flag=True,
            help="With --attractors: also at every EMA snapshot (the census over training time).")
@click.option("--quiet", is_flag=True)
def landscape_cmd(quiet, attractors, ts, groups, per_group, n_synthetic, window, control, n_planted, snapshots, **kw):
    """The attractor landscape of a sweep's points: recovery times, energy, curvature, attractor census, mixtures."""
    if attractors:
        keep = {k: kw[k] for k in ("run_dir", "sizes", "trials", "steps", "seed", "device", "overwrite")}
        attractor_study(**keep, ts=ts, groups=groups, per_group=per_group, n_synthetic=n_synthetic, window=window,
                        control=control, n_planted=n_planted, snapshots=snapshots, progress=not quiet,
                        echo=click.echo)
        click.echo(f"wrote attractors.json per point and {kw['run_dir']}/" + ", ".join(layout.ATTRACTOR_TABLES))
        return
    results = landscape(**kw, progress=not quiet, echo=click.echo)
    click.echo(f"{'K':>6} {'t_c train':>9} {'t_c gen':>8} {'attractors':>10} {'on items':>8} {'mixture spu/gen':>16}")
    for r in results:
        tc = {g: r["recovery"].get(g, {}).get("median_t_c") for g in ("training item", "generalized")}
        mix = [r["mixture"].get(n, {}).get("by_m", {}).get("3", {}).get("explained")
               for n in ("spurious", "generalized")]
        click.echo(f"{r['K']:>6} {num(tc['training item'], '9.0f')} {num(tc['generalized'], '8.0f')} "
                   f"{r['census']['n_attractors']:>10} {r['census']['n_training']:>8} "
                   f"{num(mix[0], '.2f'):>7} / {num(mix[1], '.2f')}")
    click.echo(f"wrote landscape.json per point, {kw['run_dir']}/landscape.png and the report's Landscape section")


@click.command("attractors")
@calls(attractor_study)
@click.argument("run_dir", type=click.Path(path_type=Path))
@lib_option(attractor_study, "sizes", "--sizes", type=Numbers(int),
            help="Sizes K to study (every replicate of each). [default: every classified point]")
@lib_option(attractor_study, "ts", "--ts", type=Numbers(int), help="The noise levels t at which starts are followed.")
@lib_option(attractor_study, "groups", "--groups", type=Words(ATTRACTOR_GROUPS),
            help="The starting points: labels of S_eval, real held-out items, hand-made mixtures.")
@lib_option(attractor_study, "per_group", "--per-group", type=int, help="Starts per group and model.")
@lib_option(attractor_study, "n_synthetic", "--n-synthetic", type=int,
            help="Samples of S' followed for the basin mass of each attractor.")
@lib_option(attractor_study, "trials", "--trials", type=int,
            help="Forward noises per start for the recovery probability.")
@lib_option(attractor_study, "steps", "--steps", type=int, help="DDIM steps of each reverse run.")
@lib_option(attractor_study, "window", "--window", is_flag=True,
            help="Also every 25 steps through the t range where DenseAM theory puts mixture states (per K).")
@lib_option(attractor_study, "control", "--control", type=click.Choice(["planted"]),
            help="The positive control beside each model: the exact denoiser of S_K with planted mixtures, "
                 "and without.")
@lib_option(attractor_study, "n_planted", "--n-planted", type=int, help="Planted mixtures in the control.")
@lib_option(attractor_study, "snapshots", "--snapshots", is_flag=True,
            help="Also at every EMA snapshot of each point (the census over training time; its groups from samples "
                 "drawn and classified there).")
@lib_option(attractor_study, "snapshot_samples", "--snapshot-samples", type=int,
            help="With --snapshots: samples drawn and classified at each snapshot for its groups.")
@lib_option(attractor_study, "seed", "--seed", type=int)
@lib_option(attractor_study, "device", "--device", help="[default: cuda when present]")
@lib_option(attractor_study, "overwrite", "--overwrite", is_flag=True, help="Study points already studied again.")
@click.option("--quiet", is_flag=True)
def attractors(quiet, **kw):
    """Are spurious states attractors (Hypothesis 2.1)? Groups followed to fixed points at several t, with
    curvature, barriers and the DenseAM prediction, per model; tables over the models."""
    attractor_study(**kw, progress=not quiet, echo=click.echo)
    click.echo(f"wrote attractors.json per point and {kw['run_dir']}/" + ", ".join(layout.ATTRACTOR_TABLES))


@click.command("basins")
@calls(basin_study)
@click.argument("run_dir", type=click.Path(path_type=Path))
@lib_option(basin_study, "sizes", "--sizes", type=Numbers(int),
            help="Sizes K to study (every replicate of each). [default: every classified point]")
@lib_option(basin_study, "n", "--n", type=int, help="Samples drawn and perturbed per model (and snapshot).")
@lib_option(basin_study, "radii", "--radii", type=Numbers(float),
            help="How far each start moves: x_T' = sqrt(1 - r^2) x_T + r xi (r = 1: an independent start).")
@lib_option(basin_study, "trials", "--trials", type=int, help="Moves per sample and radius.")
@lib_option(basin_study, "snapshots", "--snapshots", is_flag=True,
            help="Also at every EMA snapshot of each point (the basins over training time).")
@lib_option(basin_study, "sampler", "--sampler", type=click.Choice(["ddim", "run"]),
            help="ddim: deterministic, x_T is a sample's whole noise (S' drawn with it too); run: the run's sampler.")
@lib_option(basin_study, "steps", "--steps", type=int, help="DDIM steps.")
@lib_option(basin_study, "seed", "--seed", type=int)
@lib_option(basin_study, "device", "--device", help="[default: cuda when present]")
@lib_option(basin_study, "overwrite", "--overwrite", is_flag=True, help="Study points already studied again.")
def basins(**kw):
    """Basins in the sampler's sense (paper Fig. 4): how far a sample's initial noise can move before the
    sampler stops returning it, per group (memorized, spurious, generalized), with duplication in S'."""
    basin_study(**kw, echo=click.echo)
    click.echo(f"wrote basins.json per point and {kw['run_dir']}/" + ", ".join(BASIN_TABLES))


@click.command("toy")
@calls(run_toy)
@lib_option(run_toy, "data", "--data", type=click.Choice(["circle", "gmm"]),
            help="K points on a circle or from a 4-Gaussian mixture.")
@lib_option(run_toy, "sizes", "--sizes", type=Numbers(int))
@lib_option(run_toy, "steps", "--steps", type=int, help="Training steps per K.")
@lib_option(run_toy, "t_energy", "--t-energy", type=int, help="Step at which energies are drawn.")
@lib_option(run_toy, "t_follow", "--t-follow", type=int, help="Noise level of the fixed-point iteration.")
@lib_option(run_toy, "seed", "--seed", type=int)
@lib_option(run_toy, "device", "--device", help="[default: cuda when present]")
@lib_option(run_toy, "out", "--out", type=click.Path(path_type=Path))
@lib_option(run_toy, "overwrite", "--overwrite", is_flag=True)
@click.option("--quiet", is_flag=True)
def toy(quiet, **kw):
    """A 2-D toy with an exact energy: learned vs exact landscape, basins and an attractor census per K."""
    rows = run_toy(**kw, progress=not quiet, echo=click.echo)
    click.echo(f"wrote {kw['out']}/ (toy.csv, toy.json, toy.png) for K = {[r['K'] for r in rows]}")


COMMANDS = [landscape_cmd, attractors, basins, toy]
