"""docs/tables/pooled.csv: per setting with replicate models, the spurious excess pooled over the table's
sizes per model (mem2gen.core.stats.pooled_models_excess) and how many model × K excesses are positive.
Run: python scripts/pooled.py docs/tables/pooled.csv"""
import sys
from pathlib import Path

from mem2gen.core.stats import pooled_models_excess
from mem2gen.io.files import write_csv
from mem2gen.runs.results import read_rows, replicate_points

T = Path(__file__).resolve().parents[1] / "docs" / "tables"
SETTINGS = {  # setting: one table per model, or one points table with a replicate column
    "quick": ["quick-transition.csv", "quick-seed1.csv", "quick-seed2.csv"],
    "spurious-mnist14": ["spurious-mnist14.csv", "spurious-mnist14-seed1.csv", "spurious-mnist14-seed2.csv"],
    "spurious": ["spurious-r3-points.csv"],
}


def points(files):
    return read_rows(T / files[0]) if len(files) == 1 else replicate_points([read_rows(T / f) for f in files])


rows = []
for name, files in SETTINGS.items():
    pts = [r for r in points(files) if r.get("null_count_spurious") is not None]
    ks = sorted({r["K"] for r in pts})
    w = pooled_models_excess(pts, min(ks) - 1, max(ks) + 1)
    exc = [r["model_count_spurious_at_null"] / r["model_n_at_null"] - r["null_spurious"] for r in pts]
    rows.append({"setting": name, "K_from": min(ks), "K_to": max(ks), "models": w["replicates"],
                 "excess": w["excess"], "lo95": w["ci95"][0], "hi95": w["ci95"][1], "p": w["p"],
                 "cells": len(exc), "positive_cells": sum(e > 0 for e in exc)})
write_csv(sys.argv[1], rows)
print(rows)
