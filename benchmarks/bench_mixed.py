"""What the model-level tests cost a report: the binomial mixed model (mem2gen.core.mixed) against the t-test over
models (mem2gen.core.stats.model_test) on the same counts, per K and class, for 3 and 5 models of 1,000 samples.

    python benchmarks/bench_mixed.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine

from mem2gen.core.mixed import mixed_excess_test
from mem2gen.core.stats import model_test


def timed(fn, reps):
    fn()  # warm: imports
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main():
    print(machine())
    rng = np.random.default_rng(0)
    for r in (3, 5):
        k = rng.binomial(1000, np.clip(rng.gamma(1, 0.05, r), 0, 1))
        k0 = rng.binomial(1000, 0.02, r)
        model, null = list(zip(k, [1000] * r)), list(zip(k0, [1000] * r))
        mixed = timed(lambda model=model, null=null: mixed_excess_test(model, null), 20)
        t = timed(lambda k=k, k0=k0: model_test(k / 1000 - k0 / 1000), 200)
        print(f"{r} models: mixed model {mixed * 1e3:.0f} ms, t-test {t * 1e3:.2f} ms, ratio {mixed / t:.0f}x; "
              f"a report of 9 K x 3 classes adds {27 * mixed:.1f} s")


if __name__ == "__main__":
    main()
