"""Coverage of three 95% intervals for a setting's mean fraction when models vary (docs/tables/coverage.csv).

Simulated sweeps: R models, each with a true fraction drawn from N(mu, tau) (between-model variance) and
n samples labelled binomially. Intervals: the t-interval over the models' fractions (what mem2gen reports
with replicates, mem2gen.core.stats.model_interval), a hierarchical percentile bootstrap (models, then samples
within each), and a bootstrap of the pooled samples that ignores the models. Run:

    python scripts/coverage.py docs/tables/coverage.csv
"""
import csv
import sys

import numpy as np

from mem2gen.core.stats import model_interval


def coverage(R, tau, *, mu=0.3, n=500, sims=1000, draws=500, seed=0):
    rng = np.random.default_rng([seed, R, int(tau * 1000)])
    hit = {"t-interval over models": 0, "hierarchical bootstrap": 0, "pooled-sample bootstrap": 0}
    for _ in range(sims):
        f = rng.binomial(n, np.clip(rng.normal(mu, tau, R), 0, 1)) / n
        lo, hi = model_interval(f)["ci95"]
        hit["t-interval over models"] += lo <= mu <= hi
        picks = f[rng.integers(R, size=(draws, R))]  # models with replacement, then samples within each
        boot = (rng.binomial(n, picks) / n).mean(axis=1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        hit["hierarchical bootstrap"] += lo <= mu <= hi
        pooled = rng.binomial(R * n, f.mean(), size=draws) / (R * n)
        lo, hi = np.percentile(pooled, [2.5, 97.5])
        hit["pooled-sample bootstrap"] += lo <= mu <= hi
    return {k: v / sims for k, v in hit.items()}


if __name__ == "__main__":
    rows = []
    for R in (2, 3, 5, 10):
        for tau in (0.0, 0.02, 0.05):
            c = coverage(R, tau)
            rows += [{"R": R, "tau": tau, "mu": 0.3, "n": 500, "sims": 1000, "interval": k, "coverage": v}
                     for k, v in c.items()]
            print(R, tau, c)
    with open(sys.argv[1], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
