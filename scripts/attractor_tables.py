"""docs/tables/attractors.csv and attractors-models.csv: the attractor study (`mem2gen landscape RUN
--attractors`) of several runs side by side, one setting per run.

attractors.csv: per setting, K, t and group, the mean over the replicate models with its t-interval
(the run's attractors.csv); attractors-models.csv: the same per model (the run's attractors-census.csv,
with each model's median curvature and barrier).
Run: python scripts/attractor_tables.py OUT_DIR SETTING=RUN [SETTING=RUN ...]"""
import sys
from pathlib import Path

import pandas as pd

from mem2gen.attractors import summarize
from mem2gen.files import write_csv

out = Path(sys.argv[1])
summary, models = [], []
for arg in sys.argv[2:]:
    setting, _, run = arg.partition("=")
    run = Path(run)
    census = pd.read_csv(run / "attractors-census.csv").to_dict("records")
    points = pd.read_csv(run / "attractors-points.csv").to_dict("records")
    barriers = pd.read_csv(run / "attractors-barriers.csv").to_dict("records")
    summary += [{"setting": setting, **r} for r in summarize(census, points, barriers)]
    per_model = pd.DataFrame(points).groupby(["K", "replicate", "t", "group"]).agg(
        lambda_min=("lambda_min", "median"), lambda_max=("lambda_max", "median")).reset_index()
    bars = pd.DataFrame(barriers)
    bars = bars.assign(group=bars["group"].where(bars["kind"] != "training pair", "training pair"))
    bars = bars.groupby(["K", "replicate", "t", "group"]).agg(barrier=("barrier", "median")).reset_index()
    table = pd.DataFrame(census).merge(per_model, how="left").merge(bars, how="outer")
    models += [{"setting": setting, **r} for r in table.to_dict("records")]
    print(f"{setting}: {len(census)} census rows from {run}")


def tidy(rows):
    fields = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: ("" if pd.isna(r.get(k)) else r.get(k)) for k in fields} for r in rows], fields


for name, rows in (("attractors.csv", summary), ("attractors-models.csv", models)):
    rows, fields = tidy(rows)
    write_csv(out / name, rows, fields=fields)
    print(f"wrote {out / name} ({len(rows)} rows)")
