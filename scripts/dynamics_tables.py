"""A run's `mem2gen dynamics` results as committed tables: OUT.csv is its dynamics.csv (one row per
(K, step)), OUT-tau.csv one row per K (τ_mem at ½ and 5% with their status, τ_gen, the first step with a
spurious excess above the null after Holm, the largest spurious fraction) and the τ_mem ∝ K^a fit.
Run: python scripts/dynamics_tables.py RUN docs/tables/quick-dynamics"""
import shutil
import sys
from pathlib import Path

from mem2gen.io.files import read_json, write_csv

run, out = Path(sys.argv[1]), sys.argv[2]
shutil.copyfile(run / "dynamics.csv", f"{out}.csv")
d = read_json(run / "dynamics.json")
fit = d["fit"]
rows = [{"K": r["K"], "tau_mem": r["tau_mem"], "tau_mem_status": r["tau_mem_status"], "tau_mem_05": r["tau_mem_05"],
         "tau_mem_05_status": r["tau_mem_05_status"], "tau_gen": r["tau_gen"], "spurious_onset": r["spurious_onset"],
         "max_spurious": r["max_spurious"], "fit_a": fit["a"], "fit_lo95": (fit["ci95"] or [None])[0],
         "fit_hi95": (fit["ci95"] or [None, None])[1], "fit_sizes": fit["n_sizes"]} for r in d["per_K"]]
write_csv(f"{out}-tau.csv", rows)  # None as an empty cell
print(f"wrote {out}.csv and {out}-tau.csv")
