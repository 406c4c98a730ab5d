"""Model-level inference where the tables live: small rates whose spread across models is skewed
(docs/tables/coverage-skewed.csv). The normal-spread simulation (scripts/coverage.py) draws model fractions
around 0.3; the spurious fractions of the tables sit at 0.5-10% with between-model coefficients of
variation of 0.3-1.7, where a normal is the wrong shape.

Simulated settings: R models, each with a true rate drawn from a gamma with mean ``mu`` and coefficient of
variation ``cv`` (clipped at 1), n samples labelled binomially; each model has its own null of n0 real
items at rate ``null`` (= mu: no excess; = mu / 2: a planted excess). Per setting: the coverage of the
t-interval over the models for the mean rate; how often the one-sided t-test of the models' excesses
(mem2gen.core.stats.model_test) and the binomial mixed model (mem2gen.core.mixed) call the models above
their nulls at 5%, with no excess (type-I error) and with the planted one (power). Run:

    python scripts/coverage_skewed.py docs/tables/coverage-skewed.csv [SIMS]
"""
import csv
import sys

import numpy as np

from mem2gen.core.mixed import mixed_excess_test
from mem2gen.core.stats import model_interval, model_test


def simulate(R, mu, cv, *, excess: bool, n=1000, n0=1000, sims=200, seed=0) -> dict:
    rng = np.random.default_rng([seed, R, int(mu * 1e4), int(cv * 100), int(excess)])
    null_rate = mu / 2 if excess else mu
    cover = t_hits = m_hits = 0
    for _ in range(sims):
        rates = np.clip(rng.gamma(1 / cv ** 2, mu * cv ** 2, R), 0, 1)
        k = rng.binomial(n, rates)
        k0 = rng.binomial(n0, null_rate, R)
        lo, hi = model_interval(k / n)["ci95"]
        cover += lo <= mu <= hi
        t_hits += model_test(k / n - k0 / n0) < 0.05
        m_hits += mixed_excess_test(list(zip(k, [n] * R)), list(zip(k0, [n0] * R)))["p"] < 0.05
    return {"t_interval_coverage": cover / sims, "t_test_rejects": t_hits / sims, "mixed_rejects": m_hits / sims}


if __name__ == "__main__":
    sims = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rows = []
    for R in (3, 5):
        for mu in (0.02, 0.05):
            for cv in (0.5, 1.0, 2.0):
                for excess in (False, True):
                    r = simulate(R, mu, cv, excess=excess, sims=sims)
                    rows.append({"R": R, "mu": mu, "cv": cv, "null": mu / 2 if excess else mu, "n": 1000,
                                 "sims": sims, "case": "planted excess" if excess else "no excess", **r})
                    print(rows[-1], flush=True)
    with open(sys.argv[1], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
