"""The spurious window over K × training time (docs/window.md) from committed tables.

With RUN (a sweep with replicates and `mem2gen dynamics RUN --replicates` done), first copies its
per-model table (dynamics.csv → OUT-models.csv) and its model-level table (dynamics-models.csv → OUT.csv, with
the models' mean off-manifold shares beside it).
Then, from the tables alone: OUT-collapse.csv, per measure (memorized fraction; the spurious excess over the
null in both forms) and bandwidth, the direction along which it stays constant (steps/K^a,
:func:`mem2gen.analyses.window.collapse`), and docs/window-k-steps.png (the heatmap and the collapse).
Run: python scripts/window_tables.py docs/tables/window-k-steps [RUN]"""
import shutil
import sys
from pathlib import Path

import pandas as pd

from mem2gen.analyses.window import collapse, heat_and_collapse, verdict
from mem2gen.core.timescales import censored_units, fit_censored
from mem2gen.io.files import write_csv

MEASURES = ("frac_memorized", "excess_spurious", "excess_spurious_nonmem")
KEEP = ("K", "step", "n_models", "n_eval", "n_synthetic")  # then every fraction and excess with its interval

out = sys.argv[1]
if len(sys.argv) > 2:
    run = Path(sys.argv[2])
    shutil.copyfile(run / "dynamics.csv", f"{out}-models.csv")
    table = pd.read_csv(run / "dynamics-models.csv")
    table = table[[c for c in table.columns if c in KEEP or not c.startswith("sd_")]]
    per_model = pd.read_csv(run / "dynamics.csv")  # beside them, how much of S_eval is unlike any real data
    off = per_model.groupby(["K", "step"])[["off_manifold", "generalized_off_manifold"]].mean().reset_index()
    table.merge(off, on=["K", "step"], how="left").to_csv(f"{out}.csv", index=False)
rows = pd.read_csv(f"{out}-models.csv").to_dict("records")
model_rows = pd.read_csv(f"{out}.csv").to_dict("records")
results, table = {}, []
for measure in MEASURES:
    for bandwidth in (0.15, 0.25, 0.4):  # the answer's sensitivity to the smoother
        c = collapse(rows, measure, bandwidth=bandwidth, iterations=400)
        if bandwidth == 0.25:
            results[measure] = c
        text = {f"{k}_text": "∞" if c[k] is None else f"{c[k]:.2f}" for k in ("a", "a_lo95", "a_hi95")}
        table.append({k: v for k, v in c.items() if k not in ("scores", "thetas")} | text | {"verdict": verdict(c)})
        print(f"{measure} (bandwidth {bandwidth}): {verdict(c)}")
# beside them, the memorization time τ_mem ∝ K^a from every model (interval-censored fit, mem2gen.core.timescales)
for level in (0.5, 0.05):
    units = censored_units(rows, level=level)
    fit = fit_censored(units)
    ci = fit["ci95"] or [None, None]
    table.append({"measure": f"tau_mem_{level:g}", "n_models": len(units), "n_rows": len(rows), "a": fit["a"],
                  "a_lo95": ci[0], "a_hi95": ci[1],
                  "verdict": f"τ_mem (memorized ≥ {level:g}) ∝ K^a: censored fit over {len(units)} models "
                             f"({fit.get('n_interval', 0)} bracketed, {fit.get('n_left', 0)} before the first "
                             f"snapshot, {fit.get('n_right', 0)} never reached)"})
    print(table[-1]["verdict"], fit["a"], ci)
write_csv(f"{out}-collapse.csv", table)
heat_and_collapse(model_rows, rows, results, Path(__file__).resolve().parents[1] / "docs" / "window-k-steps.png",
                  title="14×14 MNIST (spurious-mnist14): model-level mean over 5 models per K; "
                        "each excess against its own null at equal |S_eval| and |S'|")
print(f"wrote {out}-collapse.csv and docs/window-k-steps.png")
