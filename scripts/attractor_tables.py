"""docs/tables/attractors.csv and attractors-models.csv: the attractor study (`mem2gen landscape RUN
--attractors`) of several runs side by side, one setting per run.

attractors.csv: per setting, K, t and group, the mean over the replicate models with its t-interval
(the run's attractors.csv); attractors-models.csv: the same per model (the run's attractors-census.csv,
with each model's median curvature and barrier).
docs/attractors.png: per setting, at the K given with it (SETTING=RUN@K), the recovery probability and
the share of end points on training items against t, per group.
Run: python scripts/attractor_tables.py OUT_DIR SETTING=RUN[@K] [SETTING=RUN[@K] ...]"""
import sys
from pathlib import Path

import pandas as pd

from mem2gen.analyses.attractors import per_model
from mem2gen.io.files import write_csv

out = Path(sys.argv[1])
summary, models = [], []
for arg in sys.argv[2:]:
    setting, _, run = arg.partition("=")
    run = Path(run.partition("@")[0])
    census = pd.read_csv(run / "attractors-census.csv").to_dict("records")
    points = pd.read_csv(run / "attractors-points.csv").to_dict("records")
    barriers = pd.read_csv(run / "attractors-barriers.csv").to_dict("records")
    summary += [{"setting": setting, **r} for r in pd.read_csv(run / "attractors.csv").to_dict("records")]
    models += [{"setting": setting, **r} for r in per_model(census, points, barriers).to_dict("records")]
    print(f"{setting}: {len(census)} census rows from {run}")


for name, rows in (("attractors.csv", summary), ("attractors-models.csv", models)):
    rows = [{k: ("" if pd.isna(v) else v) for k, v in r.items()} for r in rows]  # pandas' NaN: an empty cell
    write_csv(out / name, rows)
    print(f"wrote {out / name} ({len(rows)} rows)")

# the figure: per setting (at the K named with it, SETTING=RUN@K), recovery and drain into training items
# against t, per group, with the t-interval over models
from mem2gen.core.plots import COLORS, pyplot, save  # noqa: E402

picks = [(a.partition("=")[0], int(a.partition("@")[2])) for a in sys.argv[2:] if "@" in a]
if picks:
    plt = pyplot()
    colors = {**COLORS, "held-out": "#7f7f7f", "mixture": "#9467bd"}
    fig, axes = plt.subplots(2, len(picks), figsize=(3.6 * len(picks), 5.2), squeeze=False, sharex=True)
    s = pd.DataFrame(summary)
    for c, (setting, k) in enumerate(picks):
        rows = s[(s["setting"] == setting) & (s["K"] == k)]
        for r, (col, title) in enumerate((("recovery", "returns within δ under DDIM-20"),
                                          ("to_training", "end point on a training item"))):
            ax = axes[r][c]
            for g in ("memorized", "spurious", "generalized", "held-out", "mixture"):
                d = rows[rows["group"] == g].sort_values("t")
                if not len(d):
                    continue
                lo, hi = d[f"{col}_lo95"].astype(float), d[f"{col}_hi95"].astype(float)
                ax.plot(d["t"], d[col], "o-", ms=3, color=colors[g], label=g)
                ax.fill_between(d["t"], lo, hi, color=colors[g], alpha=0.15, lw=0)
            ax.set_xscale("log")
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(f"{setting}, K = {k}: {title}" if r == 0 else title, fontsize=8)
            if r == 1:
                ax.set_xlabel("noise level t")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Attractor study: mean over replicate models, 95% t-interval over models; "
                 "every group 32 starts per model", fontsize=8)
    fig.tight_layout()
    save(fig, out.parent / "attractors.png", dpi=120)
    print(f"wrote {out.parent / 'attractors.png'}")
