"""Comparing sweeps that differ in one knob (an intervention: dropout, weight decay, width, training
steps, data noise, EMA decay, learning rate): their phase curves overlaid, MC, SC, GC with bootstrap
intervals and whether each moved, and per K the change of each fraction with its interval.

A shift is the median of log2(capacity / reference capacity) over paired bootstrap draws of the two
runs (each run's labels resampled on their own, :func:`mem2gen.core.stats.capacity_draws`); it is
significant when its 95% interval excludes 0. On a coarse size grid a capacity can only move by a
grid step, so a true shift smaller than that shows as none.

Runs that differ only in ``seed`` are replicates (``--grid seed=0,1,2``). A bootstrap interval
resamples one model's samples and knows nothing of its training seed, and seeds alone can move a
fraction several times further (docs/spurious-study.md). So where the reference or a setting has
replicates, the change of each fraction at K is the difference of the replicates' means, judged by a
two-sample t-test over models (pooled variance: the seed spread taken as the same in both settings,
so that one model against several replicates is still judged); with one model on each side it is
the bootstrap of their labels, and the output says that seeds were not replicated.
"""
from __future__ import annotations

import json

import numpy as np

from ..core.null import excess
from ..core.plots import k_axis, pyplot, save
from ..core.stats import LABELS, capacities, capacity_draws, capacity_shift
from ..errors import check
from ..io.files import changed_keys, dotted, prepare_out_dir, staged_dir, write_csv, write_json
from .results import label_counts
from .run import Run

CAPS = ("MC", "SC", "GC")
# keys that must agree for two runs' fractions to mean the same thing
SAME_MEANING = ("data", "image_size", "split", "split_seed", "distance", "delta_m", "delta_s", "capacity_tol")
# keys in which replicates of one setting may differ
REPLICATE_FREE = ("name", "device", "seed", "sizes", "replicates")


def replicate_groups(configs: list[dict]) -> list[list[int]]:
    """Indices of runs grouped as replicates of one setting (configs equal but for
    :data:`REPLICATE_FREE`), in the order the settings first appear."""
    keys = [json.dumps({k: v for k, v in dotted(c).items() if k not in REPLICATE_FREE}, sort_keys=True, default=str)
            for c in configs]
    return [[i for i, k in enumerate(keys) if k == key] for key in dict.fromkeys(keys)]


def run_labels(runs: list[Run], *, ignore=("name", "device")) -> list[str]:
    """A label per run: the settings where it differs from the first (its name when none do)."""
    ref = dotted(runs[0].config.to_dict())
    labels = []
    for r in runs:
        d = dotted(r.config.to_dict())
        diff = [k for k in changed_keys(ref, d) if k not in ignore]
        labels.append(", ".join(f"{k}={d.get(k)}" for k in diff) or r.config.name)
    if runs:
        labels[0] = f"{labels[0]} (reference)"
    return labels


def compare(run_dirs, *, out, iterations: int = 2000, overwrite: bool = False, echo=print) -> dict:
    """The ``mem2gen compare`` command: the first run is the reference. Writes compare.csv,
    compare.json and compare.png into ``out``; refuses runs whose fractions mean different things."""
    check(len(run_dirs) >= 2, "compare needs at least two run folders")
    check(iterations >= 1, "iterations must be at least 1")
    runs = [Run(d) for d in run_dirs]
    ref = runs[0].config.to_dict()
    for r in runs[1:]:
        d = r.config.to_dict()
        diff = [k for k in SAME_MEANING if d.get(k) != ref.get(k)]
        check(not diff,
              f"{r.path} and {runs[0].path} differ in {', '.join(f'{k} ({d.get(k)} vs {ref.get(k)})' for k in diff)}"
                        ": their fractions do not compare; compare runs on one dataset with one rule")
    names = ("compare_fractions.csv", "compare.csv", "compare.json", "compare.png")
    out = prepare_out_dir(out, overwrite=overwrite, names=names)
    labels = run_labels(runs)
    groups = replicate_groups([r.config.to_dict() for r in runs])
    setting_of = {i: n for n, g in enumerate(groups) for i in g}
    table, curves, draws = [], [], []
    for label, run in zip(labels, runs):
        rows = run.results()
        check(rows, f"{run.path}: no point is classified yet; run the sweep first")
        k = [r["K"] for r in rows]
        counts = label_counts(rows, run.point_results())  # hierarchical over a run's replicates
        sig = [r["significant_spurious"] for r in rows] if all("significant_spurious" in r for r in rows) else None
        caps = capacities(k, *(np.array([r[f"frac_{n}"] for r in rows]) for n in LABELS),
                          tol=run.config.capacity_tol, spurious_significant=sig)
        dr = capacity_draws(k, counts, tol=run.config.capacity_tol, iterations=iterations, seed=run.config.seed,
                            spurious_significant=sig)
        draws.append(dr)
        curves.append((label, rows))
        row = {"run": str(run.path), "label": label, "sizes": len(k), "setting": setting_of[len(table)]}
        for key in CAPS:
            v = dr[key][~np.isnan(dr[key])]
            row |= {key: caps[key], f"{key}_lo95": float(np.percentile(v, 2.5)) if len(v) else None,
                    f"{key}_hi95": float(np.percentile(v, 97.5)) if len(v) else None}
        table.append(row)

    for row, dr in zip(table, draws):
        for key in CAPS:
            s = capacity_shift(draws[0][key], dr[key])
            row |= {f"{key}_shift_log2": s["log2_ratio"], f"{key}_shift_lo95": s["ci95"][0] if s["ci95"] else None,
                    f"{key}_shift_hi95": s["ci95"][1] if s["ci95"] else None,
                    f"{key}_shift_significant": int(s["significant"])}
    settings = run_labels(runs, ignore=REPLICATE_FREE)  # a replicate group's label: its first run's
    by_k = fraction_shifts(curves, groups=groups, names=settings, iterations=iterations)
    with staged_dir(out, overwrite=overwrite) as stage:  # only mem2gen's own outputs are ever replaced
        if by_k:
            write_csv(stage / "compare_fractions.csv", by_k)
        write_csv(stage / "compare.csv", table)
        write_json(stage / "compare.json", {"reference": str(runs[0].path), "iterations": iterations, "runs": table,
                                            "replicates": [[labels[i] for i in g] for g in groups], "fractions": by_k})
        compare_figure(curves, stage / "compare.png", settings=[setting_of[i] for i in range(len(runs))])
    echo(format_compare(table, by_k))
    return {"runs": table, "fractions": by_k, "out": out}


def fraction_shifts(curves: list, *, groups: list | None = None, names: list | None = None,
                    iterations: int = 2000) -> list[dict]:
    """Per setting and per K it shares with the reference: the change of each fraction (setting −
    reference) with its 95% interval. ``groups`` (:func:`replicate_groups`; default: every run its own)
    names the replicates: with one model on each side the interval is the bootstrap of both sides'
    labels (:func:`mem2gen.core.null.excess`); with more, a pooled two-sample t-test over the models'
    fractions (``test`` says which; ``models`` how many on each side). ``names``: a label per run
    (default: the curves'), the first of a group's labelling its rows."""
    from scipy.stats import ttest_ind

    groups = groups or [[i] for i in range(len(curves))]
    names = names or [label for label, _ in curves]
    by_k = [{r["K"]: r for r in rows} for _, rows in curves]
    ref = groups[0]
    out = []
    for g in groups[1:]:
        common = sorted(set.intersection(*(set(by_k[i]) for i in ref + g)))
        for k in common:
            one_each = len(g) == 1 and len(ref) == 1
            row = {"label": names[g[0]], "K": k, "models": f"{len(g)} vs {len(ref)}",
                   "test": "bootstrap" if one_each else "t over models"}
            for name in LABELS:
                if one_each:
                    a, b = ([by_k[i][k][f"count_{n}"] for n in LABELS] for i in (g[0], ref[0]))
                    e = excess(a, b, name=name, iterations=iterations, seed=k)
                    change, (lo, hi) = e["excess"], e["ci95"]
                else:
                    fa, fb = ([by_k[i][k][f"frac_{name}"] for i in grp] for grp in (g, ref))
                    change = float(np.mean(fa) - np.mean(fb))
                    lo, hi = ((change, change) if np.ptp(fa) == np.ptp(fb) == 0 else  # no spread: exact
                              map(float, ttest_ind(fa, fb, equal_var=True).confidence_interval(0.95)))
                row |= {f"{name}_change": round(change, 4), f"{name}_lo95": round(lo, 4), f"{name}_hi95": round(hi, 4),
                        f"{name}_significant": int(lo > 0 or hi < 0)}
            out.append(row)
    return out


def format_compare(table: list[dict], by_k: list[dict] = ()) -> str:
    def cap(r, key):
        if r[key] is None:
            return "undetermined"
        ci = "" if r[f"{key}_lo95"] is None else f" [{r[f'{key}_lo95']:.0f}, {r[f'{key}_hi95']:.0f}]"
        star = " *" if r[f"{key}_shift_significant"] else ""
        return f"{r[key]}{ci}{star}"

    width = max(len(r["label"]) for r in table)
    lines = [f"{'run':<{width}}  " + "  ".join(f"{k + ' [95%]':>20}" for k in CAPS)]
    lines += [f"{r['label']:<{width}}  " + "  ".join(f"{cap(r, k):>20}" for k in CAPS) for r in table]
    lines.append("* moved against the reference: the 95% interval of log2(capacity ratio) excludes 0")
    if len({r.get("setting") for r in table}) < len(table):
        lines.append("  (an interval resamples one model's samples: a * between replicates of one setting is the "
                     "training seed's doing)")
    for label in dict.fromkeys(r["label"] for r in by_k):
        rows = [r for r in by_k if r["label"] == label]
        cells = []
        for name in ("memorized", "spurious"):
            sig = [f"K={r['K']} {r[f'{name}_change']:+.3f}" for r in rows if r[f"{name}_significant"]]
            cells.append(f"{name} {', '.join(sig) if sig else 'unchanged'}")
        how = ("bootstrap of one model each: training seeds not replicated, so seeds alone may move more "
               "(replicate: --grid seed=0,1,2)") if rows[0]["test"] == "bootstrap" else \
            f"t-test over {rows[0]['models']} models"
        lines.append(f"{label}: fractions that moved (95%, {how}): " + "; ".join(cells))
    return "\n".join(lines)


def compare_figure(runs: list, path, *, settings: list | None = None) -> None:
    """Phase curves of several runs overlaid (one panel per class; line style per run, 95% bands);
    ``settings`` (an index per run) gives replicates of one setting one colour."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharex=True)
    styles = ["o-", "s--", "^-.", "v:", "D-", "P--", "X-."]
    for i, (label, rows) in enumerate(runs):
        k = [r["K"] for r in rows]
        for ax, name in zip(axes, LABELS):
            color = f"C{settings[i] if settings else i}"
            ax.plot(k, [r[f"frac_{name}"] for r in rows], styles[i % len(styles)], ms=4, lw=1.2,
                    color=color, label=label)
            ax.fill_between(k, [r[f"lo95_{name}"] for r in rows], [r[f"hi95_{name}"] for r in rows],
                            color=color, alpha=0.12, lw=0)
    for ax, name in zip(axes, LABELS):
        k_axis(ax, [r["K"] for _, rows in runs for r in rows])
        ax.set(xlabel="training-set size K", title=name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of samples")
    legend_rows = (len(runs) + 1) // 2  # the legend below the panels, two runs a row: labels can be long
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=min(2, len(runs)), fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, min(0.4, 0.02 + 0.05 * legend_rows), 1, 1))
    save(fig, path)
