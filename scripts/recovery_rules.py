"""docs/tables/recovery-rules.csv: the two recovery-time rules side by side on the same items
(mem2gen.analyses.landscape.recovery_times, rule "bisection" and "released"): the exact denoiser of the first 16
training digits (S_16 of the quick preset's split) and, if a finished quick run is given, its trained
model at K = 32 on its own 32 training items. δ = ¼ of the median nearest-neighbour spacing of S_K, p = 0.9,
10 trials, DDIM-20, seed 0 for both.
Run: python scripts/recovery_rules.py docs/tables/recovery-rules.csv [RUN]"""
import sys

import numpy as np
import torch

from mem2gen.analyses import recovery as R
from mem2gen.io.data import nested_subset
from mem2gen.io.datasets import load_dataset
from mem2gen.io.files import write_csv
from mem2gen.models.diffusion import OptimalDenoiser

torch.set_num_threads(1)
settings = []
y16 = nested_subset(load_dataset("digits"), 16)  # floats in [-1, 1]
settings.append(("exact-denoiser-K16", OptimalDenoiser(y16), y16))
if len(sys.argv) > 2:
    from mem2gen.runs.run import Run

    p = Run(sys.argv[2]).point(32)
    settings.append(("quick-K32", p.load_model(), np.asarray(p.train_set)))
rows = []
for name, model, y in settings:
    delta = 0.25 * R.nn_spacing(y)
    ours = R.recovery_times(model, y, delta=delta, seed=0)
    theirs = R.recovery_times(model, y, delta=delta, seed=0, rule="released")
    for i in range(len(y)):
        rows.append({"setting": name, "item": i, "delta": f"{delta:.6g}", "bisection": int(ours.t_c[i]),
                     "released_mean": f"{theirs.t_c[i]:.6g}", "released_min": int(theirs.per_trial[i].min()),
                     "released_max": int(theirs.per_trial[i].max()),
                     "released_minus_bisection": f"{theirs.t_c[i] - ours.t_c[i]:.6g}"})
    print(name, "median bisection", np.median(ours.t_c), "median released", np.median(theirs.t_c))
write_csv(sys.argv[1], rows)
