"""docs/tables/attractors-steps.csv: the attractor study over training time (`mem2gen attractors RUN --window
--snapshots`) on the window study's models, from each point's attractors.json (so a study still under way
gives the table of the points it finished): per K, EMA step, noise level t and group, the mean over the
models with its t-interval (:func:`mem2gen.analyses.attractors.summarize`), the trained models only.
Run: python scripts/attractor_steps.py RUN OUT_DIR [K ...]"""
import sys
from pathlib import Path

from mem2gen.analyses.attractors import summarize
from mem2gen.io.files import read_json, write_csv

run, out = Path(sys.argv[1]), Path(sys.argv[2])
ks = {int(k) for k in sys.argv[3:]}
parts = {"census": [], "points": [], "barriers": []}
found = []
for f in sorted((run / "points").glob("K=*/attractors.json")):
    r = read_json(f)
    if ks and r["K"] not in ks:
        continue
    found.append((r["K"], r["replicate"]))
    for part in parts:
        parts[part] += [{"K": r["K"], "replicate": r["replicate"], **row} for row in r[part]
                        if row["model"] == "trained"]
rows = [{k: ("" if v is None else v) for k, v in r.items()} for r in summarize(*parts.values())]
write_csv(out / "attractors-steps.csv", rows)
print(f"wrote {out / 'attractors-steps.csv'} ({len(rows)} rows) from {len(found)} models: {sorted(found)}")
