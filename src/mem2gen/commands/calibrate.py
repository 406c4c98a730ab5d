"""``mem2gen calibrate``: the rule against its null at every classified point of a sweep."""
from __future__ import annotations

from pathlib import Path

import click

from ..analyses.calibration import calibrate
from .options import Numbers, calls, lib_option


@click.command("calibrate")
@calls(calibrate)
@click.argument("run_dir", type=click.Path(path_type=Path))
@lib_option(calibrate, "sizes", "--sizes", type=Numbers(int), help="Sizes K. [default: every classified point]")
@lib_option(calibrate, "overwrite", "--overwrite", is_flag=True, help="Recompute points already calibrated.")
def calibrate_cmd(**kw):
    """The rule against its null: spurious fraction vs |S'| and vs delta_s, the model's and real data's."""
    results = calibrate(**kw, echo=click.echo)
    head = ("point", "|S'|", "model spurious, smallest -> full |S'|", "null, smallest -> largest")
    click.echo(f"{head[0]:>6} {head[1]:>9} {head[2]:>38} {head[3]:>26}")
    for r in results:
        m, n = r["model_curve"], r["null_curve"]
        null = f"{n[0]['spurious']:>17.3f} -> {n[-1]['spurious']:.3f}" if n else f"{'no held-out data':>26}"
        click.echo(f"{r['point']:>6} {r['n_synthetic']:>9} {m[0]['spurious']:>29.3f} -> {m[-1]['spurious']:.3f} {null}")
    click.echo(f"wrote calibration.json per point, {kw['run_dir']}/calibration.png and the report's Calibration "
               "section")


COMMANDS = [calibrate_cmd]
