"""Comparing sweeps that differ in one knob (an intervention: dropout, weight decay, width, training
steps, data noise, EMA decay, learning rate): their phase curves overlaid, MC, SC, GC with bootstrap
intervals and whether each moved, and per K the change of each fraction with its interval.

A shift is the median of log2(capacity / reference capacity) over paired bootstrap draws of the two
runs (each run's labels resampled on their own, :func:`mem2gen.stats.capacity_draws`); it is
significant when its 95% interval excludes 0. On a coarse size grid a capacity can only move by a
grid step, so a true shift smaller than that shows as none.
"""
from __future__ import annotations

import numpy as np

from .errors import check
from .files import changed_keys, dotted, write_csv, write_json
from .run import Run
from .stats import LABELS, capacities, capacity_draws

CAPS = ("MC", "SC", "GC")
# keys that must agree for two runs' fractions to mean the same thing
SAME_MEANING = ("data", "image_size", "split", "split_seed", "distance", "delta_m", "delta_s", "capacity_tol")


def run_labels(runs: list[Run]) -> list[str]:
    """A label per run: the settings where it differs from the first (its name when none do)."""
    ref = dotted(runs[0].config.to_dict())
    labels = []
    for r in runs:
        d = dotted(r.config.to_dict())
        diff = [k for k in changed_keys(ref, d) if k not in ("name", "device")]
        labels.append(", ".join(f"{k}={d.get(k)}" for k in diff) or r.config.name)
    if runs:
        labels[0] = f"{labels[0]} (reference)"
    return labels


def compare(run_dirs, *, out, iterations: int = 2000, overwrite: bool = False, echo=print) -> dict:
    """The ``mem2gen compare`` command: the first run is the reference. Writes compare.csv,
    compare.json and compare.png into ``out``; refuses runs whose fractions mean different things."""
    from .files import prepare_out_dir
    from .plots import compare_figure

    check(len(run_dirs) >= 2, "compare needs at least two run folders")
    check(iterations >= 1, "iterations must be at least 1")
    runs = [Run(d) for d in run_dirs]
    ref = runs[0].config.to_dict()
    for r in runs[1:]:
        d = r.config.to_dict()
        diff = [k for k in SAME_MEANING if d.get(k) != ref.get(k)]
        check(not diff, f"{r.path} and {runs[0].path} differ in {', '.join(f'{k} ({d.get(k)} vs {ref.get(k)})' for k in diff)}"
                        ": their fractions do not compare; compare runs on one dataset with one rule")
    out = prepare_out_dir(out, overwrite=overwrite)
    labels = run_labels(runs)
    table, curves, draws = [], [], []
    for label, run in zip(labels, runs):
        rows = run.results()
        check(rows, f"{run.path}: no point is classified yet; run the sweep first")
        k = [r["K"] for r in rows]
        counts = np.array([[r[f"count_{n}"] for n in LABELS] for r in rows])
        sig = [r["significant_spurious"] for r in rows] if all("significant_spurious" in r for r in rows) else None
        caps = capacities(k, *(np.array([r[f"frac_{n}"] for r in rows]) for n in LABELS),
                          tol=run.config.capacity_tol, spurious_significant=sig)
        dr = capacity_draws(k, counts, tol=run.config.capacity_tol, iterations=iterations, seed=run.config.seed,
                            spurious_significant=sig)
        draws.append(dr)
        curves.append((label, rows))
        row = {"run": str(run.path), "label": label, "sizes": len(k)}
        for key in CAPS:
            v = dr[key][~np.isnan(dr[key])]
            row |= {key: caps[key], f"{key}_lo95": float(np.percentile(v, 2.5)) if len(v) else None,
                    f"{key}_hi95": float(np.percentile(v, 97.5)) if len(v) else None}
        table.append(row)
    from .stats import capacity_shift

    for row, dr in zip(table, draws):
        for key in CAPS:
            s = capacity_shift(draws[0][key], dr[key])
            row |= {f"{key}_shift_log2": s["log2_ratio"], f"{key}_shift_lo95": s["ci95"][0] if s["ci95"] else None,
                    f"{key}_shift_hi95": s["ci95"][1] if s["ci95"] else None, f"{key}_shift_significant": int(s["significant"])}
    by_k = fraction_shifts(curves, iterations=iterations)
    out.mkdir(parents=True, exist_ok=True)
    if by_k:
        write_csv(out / "compare_fractions.csv", by_k)
    write_csv(out / "compare.csv", table)
    write_json(out / "compare.json", {"reference": str(runs[0].path), "iterations": iterations, "runs": table,
                                      "fractions": by_k})
    compare_figure(curves, out / "compare.png")
    echo(format_compare(table, by_k))
    return {"runs": table, "fractions": by_k, "out": out}


def fraction_shifts(curves: list, *, iterations: int = 2000) -> list[dict]:
    """Per run and per K it shares with the reference: the change of each fraction (run − reference)
    with a 95% bootstrap interval (both sides' labels resampled, :func:`mem2gen.calibrate.excess`)."""
    from .calibrate import excess

    ref = {r["K"]: r for r in curves[0][1]}
    out = []
    for label, rows in curves[1:]:
        for r in rows:
            if r["K"] not in ref:
                continue
            a = [r[f"count_{n}"] for n in LABELS]
            b = [ref[r["K"]][f"count_{n}"] for n in LABELS]
            row = {"label": label, "K": r["K"]}
            for name in LABELS:
                e = excess(a, b, name=name, iterations=iterations, seed=r["K"])
                row |= {f"{name}_change": round(e["excess"], 4), f"{name}_lo95": round(e["ci95"][0], 4),
                        f"{name}_hi95": round(e["ci95"][1], 4),
                        f"{name}_significant": int(e["ci95"][0] > 0 or e["ci95"][1] < 0)}
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
    for label in dict.fromkeys(r["label"] for r in by_k):
        rows = [r for r in by_k if r["label"] == label]
        cells = []
        for name in ("memorized", "spurious"):
            sig = [f"K={r['K']} {r[f'{name}_change']:+.3f}" for r in rows if r[f"{name}_significant"]]
            cells.append(f"{name} {', '.join(sig) if sig else 'unchanged'}")
        lines.append(f"{label}: fractions that moved (95%): " + "; ".join(cells))
    return "\n".join(lines)
