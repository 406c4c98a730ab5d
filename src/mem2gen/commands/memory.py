"""``mem2gen memory``: Hopfield capacity and spurious states, the DenseAM phase diagram, and the bridge
between a sweep's learned energies and the DenseAM energy of its training sets (paper App. C)."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..core.plots import COLORS, pyplot, save
from ..core.stats import LABELS
from ..errors import check
from ..io import layout
from ..io.config import check_thresholds
from ..io.data import nested_subset, to_float
from ..io.datasets import load_dataset
from ..io.files import prepare_out_dir, run_lock, staged_dir, write_csv, write_json
from ..runs.report import num
from ..runs.run import Run
from .options import Numbers, Ratio, calls, lib_option


def hopfield_capacity(*, out, ns: tuple = (100, 200, 400, 800), trials: int = 6, probes: int = 20, seed: int = 0,
                      overwrite: bool = False) -> dict:
    """Retrieval overlap against the load α = K/N for several N, α_c(N) and its extrapolation, and a
    census of end states from random starts; retrieval.csv, census.csv, summary.json, hopfield.png."""
    from ..memory import capacity_experiment, spurious_census  # torch

    check(len(ns) > 0 and min(ns) >= 20, "give network sizes of at least 20")
    check(seed >= 0, "the seed must be a whole number >= 0")
    check(trials >= 1 and probes >= 1, "trials and probes must be at least 1")
    prepare_out_dir(out, overwrite=overwrite, names=("retrieval.csv", "census.csv", "summary.json", "hopfield.png"))
    exp = capacity_experiment(list(ns), trials=trials, probes=probes, seed=seed)
    census = spurious_census(max(ns), [0.02, 0.05, 0.1, 0.138, 0.2, 0.3], seed=seed)
    with staged_dir(out, overwrite=overwrite) as stage:
        write_csv(stage / "retrieval.csv", [{"N": r["N"], "alpha": a, "overlap": m, "success": s}
                                            for r in exp["by_n"] for a, m, s in zip(
                                                r["curve"]["alpha"], r["curve"]["overlap"], r["curve"]["success"])])
        write_csv(stage / "census.csv", census)
        write_json(stage / "summary.json", {"alpha_c_by_n": {r["N"]: r["alpha_c"] for r in exp["by_n"]},
                                            "alpha_c_infinite": exp["alpha_c_infinite"], "census": census})
        hopfield_figure(exp, census, stage / "hopfield.png")
    return {"experiment": exp, "census": census, "N": max(ns)}


def dense_memory(*, out, data: str = "digits", betas: tuple = (20.0, 60.0, 200.0),
                 sizes: tuple = (2, 8, 32, 128, 512, 1797), n_eval: int = 500, steps: int = 50, delta_s: float = 0.28,
                 seed: int = 0, overwrite: bool = False) -> dict:
    """The memory-side Figure 2: DenseAM retrievals labelled memorized / spurious / generalized per
    (β, K), plus noisy-cue retrieval and 3-mixture fixed points; results.csv, capacity.csv, dense.png."""
    from ..memory.phase import capacity_table, dense_phase  # torch

    check(len(betas) > 0 and all(0 < b < float("inf") for b in betas), "beta values must be positive and finite")
    check(len(sizes) > 0 and min(sizes) >= 2, "give sizes of at least 2")
    check_thresholds(1 / 3, delta_s, "ratio")
    check(n_eval >= 1 and steps >= 1, "n_eval and steps must be at least 1")
    check(seed >= 0, "the seed must be a whole number >= 0")
    prepare_out_dir(out, overwrite=overwrite, names=("results.csv", "capacity.csv", "dense.png"))
    flat = to_float(nested_subset(load_dataset(data), max(sizes)), np.float64)
    rows = dense_phase(flat, list(sizes), list(betas), n_eval=n_eval, steps=steps, delta_s=delta_s, seed=seed)
    caps = capacity_table(flat, list(sizes), list(betas), steps=max(steps, 50), seed=seed)
    with staged_dir(out, overwrite=overwrite) as stage:
        write_csv(stage / "results.csv", rows)
        write_csv(stage / "capacity.csv", caps)
        dense_figure(rows, stage / "dense.png")
    return {"rows": rows, "capacity": caps}


def bridge(run_dir, *, sizes: tuple | None = None, ts: tuple = (50, 100, 300), n_samples: int = 100,
           seed: int = 0, echo=print) -> list[dict]:
    """Eqs 10-13 measured on a sweep: how close is each point's learned energy to the DenseAM energy of
    its own training set? For ``n_samples`` samples x of S_eval and training items y (below), the
    trained model's E_t(x) − E_t(y) (a line integral of its ε, :func:`mem2gen.analyses.landscape.relative_energy`;
    y is x's second-nearest training item, x2 of eq 4, so that a copy of x1 still has a difference)
    against the same difference of the exact energy of S_K — eq 11, which is the DenseAM energy (eq 10)
    in its distance form at β(t) = √ᾱ_t/(1 − ᾱ_t) (:meth:`mem2gen.models.diffusion.OptimalDenoiser.energy`).
    Per K and t: :func:`mem2gen.memory.bridge.energy_agreement`. Writes ``bridge.json`` per point and
    ``bridge.csv`` in the run folder."""
    import torch

    from ..analyses.landscape import relative_energy
    from ..core.neighbors import nearest
    from ..memory import energy_agreement
    from ..models.diffusion import OptimalDenoiser

    check(len(ts) > 0 and all(0 < t < 1000 for t in ts), "t values must lie in (0, 1000)")
    check(n_samples >= 2 and seed >= 0, "n_samples must be at least 2 and the seed >= 0")
    run = Run(run_dir)
    rows = []
    with run_lock(run.path, command="mem2gen memory bridge"):
        for p in run.classified(sizes, what="compare with the DenseAM energy"):
            train = p.train_set
            pick = np.sort(np.random.default_rng([seed, p.k]).permutation(len(p.eval))[:n_samples])
            x = np.asarray(p.eval[pick], dtype=np.float32)
            y = np.asarray(train[nearest(x, train, 2).indices[:, 1]],
                           dtype=np.float32)  # x2: a copy of x1 still differs
            exact = OptimalDenoiser(train)
            res = {"K": p.k, "n": int(len(x)), "by_t": []}
            for t in ts:
                learned = relative_energy(p.model, y, x, int(t))
                xt, yt = torch.from_numpy(x).double(), torch.from_numpy(y).double()
                row = {"K": p.k, "t": int(t), **energy_agreement(
                    learned, (exact.energy(xt, int(t)) - exact.energy(yt, int(t))).numpy())}
                res["by_t"].append(row)
                rows.append(row)
                echo(f"K={p.k:<6} t={t:<4} corr {num(row['corr'], '.3f')}  median relative error "
                     f"{num(row['median_rel_error'], '.3g')}  signs agree {row['sign_agreement']:.2f}")
            write_json(p.path / layout.BRIDGE, res)
        write_csv(run.path / "bridge.csv", rows)
    return rows


def hopfield_figure(exp: dict, census: list, path) -> None:
    """Retrieval overlap vs load for each N (α_c marked), and the end-state census."""
    plt = pyplot()

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in exp["by_n"]:
        a.plot(r["curve"]["alpha"], r["curve"]["overlap"], "o-", ms=3, label=f"N={r['N']} (α_c={r['alpha_c']:.3f})")
    a.axvline(0.138, color="k", ls=":", lw=1)
    a.set_xlabel("load α = K/N")
    a.set_ylabel("final overlap with the stored pattern")
    a.legend(fontsize=7)
    al = [r["alpha"] for r in census]
    bottom = np.zeros(len(al))
    for name, c in (("pattern", "#d62728"), ("negative", "#ff9896"), ("mixture", "#2ca02c"), ("spin-glass", "#7f7f7f")):
        v = np.array([r[name] for r in census])
        b.bar(range(len(al)), v, bottom=bottom, color=c, label=name)
        bottom += v
    b.set_xticks(range(len(al)), [f"{x:.3f}" for x in al])
    b.set_xlabel("load α")
    b.set_ylabel("end states from random starts")
    b.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)


def dense_figure(rows: list, path) -> None:
    """One panel per β: fractions of memorized / spurious / generalized retrievals against K."""
    plt = pyplot()

    betas = sorted({r["beta"] for r in rows})
    fig, axes = plt.subplots(1, len(betas), figsize=(4 * len(betas), 3.4), squeeze=False, sharey=True)
    for ax, beta in zip(axes[0], betas):
        rs = [r for r in rows if r["beta"] == beta]
        k = [r["K"] for r in rs]
        for name in LABELS:
            ax.plot(k, [r[f"frac_{name}"] for r in rs], "o-", ms=3, color=COLORS[name], label=name)
            ax.fill_between(k, [r[f"lo95_{name}"] for r in rs], [r[f"hi95_{name}"] for r in rs],
                            color=COLORS[name], alpha=0.2, lw=0)
        ax.set_xscale("log")
        ax.set_title(f"DenseAM, β = {beta:g}", fontsize=9)
        ax.set_xlabel("stored patterns K")
    axes[0][0].set_ylabel("fraction of retrievals")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)


@click.group()
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
        click.echo(f"  beta={row['beta']:<6g} K={row['K']:<6} retrieved {row['retrieved']:.2f}  mixture fixed point "
                   f"{mix}")
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


COMMANDS = [memory]
