"""Calibration of the rule: its null on real held-out data, the excess over it, |S'| and δs curves."""
import numpy as np
import pytest

from mem2gen import Mem2genError, classify
from mem2gen.analyses.calibration import delta_s_grid, synthetic_curve
from mem2gen.core.null import excess, null_rates
from mem2gen.core.stats import capacities
from mem2gen.io.datasets import load_dataset

DIGITS = load_dataset("digits")


def test_null_of_digits_at_k32_is_the_documented_rate():
    """docs/spurious-study.md reports the null of the 8x8 digits at K = 32 (500 eval samples):
    spurious 1.2% with |S'| = 4K and 3.6% with 16K, memorized 0.4% (two near-duplicate digits)."""
    r4 = null_rates(DIGITS, 32, n_eval=500, n_synthetic=128, iterations=500)
    r16 = null_rates(DIGITS, 32, n_eval=500, n_synthetic=512, iterations=500)
    assert r4["counts"] == {"memorized": 2, "spurious": 6, "generalized": 492}
    assert r16["counts"] == {"memorized": 2, "spurious": 18, "generalized": 480}


def test_null_draws_disjoint_held_out_sets():
    from mem2gen.core.null import null_sets
    from mem2gen.io.data import subset_indices

    ids = np.arange(1000, dtype=np.float32).reshape(-1, 1, 1, 1)  # every item is its own index
    for split in ("numpy", "authors"):
        ev, tr, syn = null_sets(ids, 50, n_eval=300, n_synthetic=400, split=split)
        ev, tr, syn = (set(a.ravel().astype(int).tolist()) for a in (ev, tr, syn))
        assert tr == set(subset_indices(1000, 50, split=split).tolist())  # S is the sweep's S_K
        assert len(ev) == 300 and len(syn) == 400 and not (ev & tr or syn & tr or ev & syn)
    r = null_rates(DIGITS, 100, n_eval=300, n_synthetic=5000, iterations=100)
    assert r["n_synthetic"] == len(DIGITS) - 100 - 300  # S' gets what is left
    # the same eval draw, S' growing by prefix: the spurious fraction cannot fall as S' grows
    fr = [null_rates(DIGITS, 32, n_eval=400, n_synthetic=m, iterations=50)["fractions"]["spurious"]
          for m in (32, 128, 512, 1300)]
    assert fr == sorted(fr) and fr[-1] > fr[0]
    with pytest.raises(Mem2genError, match="2 <= K < N"):
        null_rates(DIGITS, 1797, n_eval=10, n_synthetic=10)


def test_excess_known_answers():
    same = excess([100, 20, 380], [100, 20, 380], iterations=2000)
    assert same["excess"] == 0 and same["ci95"][0] < 0 < same["ci95"][1] and not same["significant"]
    big = excess([100, 50, 350], [0, 2, 498], iterations=2000)
    assert big["excess"] == pytest.approx(0.096) and big["significant"]
    assert not excess([0, 1, 499], [0, 0, 500], iterations=2000)["significant"]  # one sample is no evidence


def test_exact_test_and_holm_known_answers():
    """exceeds is Fisher's one-sided exact test (checked against the hypergeometric sum by hand); 5 of
    500 against 0 of 500 is p = C(500,5)/C(1000,5) ≈ 0.031 — 'significant' alone at 5%, though a
    bootstrap interval would call 1 of 500 against 0 of 500 the same; Holm over 40 sizes needs far more."""
    from math import comb

    from mem2gen.core.stats import exceeds, holm

    p = exceeds(5, 500, 0, 500)
    assert p == pytest.approx(comb(500, 5) / comb(1000, 5), rel=1e-9)
    by_hand = sum(comb(15, x) * comb(185, 100 - x) for x in range(10, 16)) / comb(200, 100)  # 10 of 100 vs 5 of 100
    assert exceeds(10, 100, 5, 100) == pytest.approx(by_hand, rel=1e-9)
    assert exceeds(0, 500, 0, 500) == 1.0 and exceeds(1, 500, 0, 500) == pytest.approx(0.5)
    assert holm([0.01, 0.04, 0.03, None]).tolist() == [True, False, False, False]  # 0.01 < 0.05/3, then 0.03 > 0.05/2
    assert holm([0.001, 0.02, 0.04]).tolist() == [True, True, True]  # 0.001 < .05/3, 0.02 < .05/2, 0.04 < .05
    assert not holm([p] + [1.0] * 39).any()  # one 'significant' size among 40 is not evidence


def test_spurious_capacity_undetermined_without_significant_excess():
    K = [2, 10, 100]
    caps = capacities(K, [1, 0.5, 0], [0, 0.002, 0.001], [0, 0.498, 0.999], spurious_significant=[0, 0, 0])
    assert caps["SC"] is None and "exceed the rule's null" in caps["reasons"]["SC"]
    caps = capacities(K, [1, 0.5, 0], [0, 0.3, 0.2], [0, 0.2, 0.8], spurious_significant=[0, 0, 1])
    assert caps["SC"] == 100  # the maximum among the significant sizes only
    assert capacities(K, [0.9] * 3, [0] * 3, [0.1] * 3)["reasons"]["MC"].startswith("P(memorized) < 1 − ε")


def test_delta_s_grid_is_monotone_and_matches_the_rule():
    from mem2gen.core.planted import planted

    ev, tr, syn, _ = planted()
    res = classify(ev, tr, syn)
    grid = delta_s_grid(res, np.linspace(0.01, 0.49, 25))
    spu = [g["spurious"] for g in grid]
    assert spu == sorted(spu)
    for g in grid[::6]:
        assert g["spurious"] == classify(ev, tr, syn, delta_s=g["delta_s"]).fractions["spurious"]


def test_synthetic_curve_uses_prefixes_of_s_prime():
    from mem2gen.core.planted import planted

    ev, tr, syn, _ = planted()
    curve = synthetic_curve(ev, tr, syn, [50, 300, len(syn)])
    assert [c["m"] for c in curve] == [50, 300, len(syn)]
    assert curve[-1]["spurious"] == classify(ev, tr, syn).fractions["spurious"]
    assert [c["spurious"] for c in curve] == sorted(c["spurious"] for c in curve)


def test_off_manifold_noise_and_real_data():
    from mem2gen.core.checks import off_manifold

    perm = np.random.default_rng(0).permutation(len(DIGITS))
    train, held, test = DIGITS[perm[:300]], DIGITS[perm[300:1300]], DIGITS[perm[1300:]]
    noise = np.random.default_rng(1).uniform(-1, 1, (300, 1, 8, 8)).astype(np.float32)
    assert off_manifold(noise, train, held)["off"].mean() >= 0.99
    real = off_manifold(test, train, held)
    assert 0.0 <= real["off"].mean() <= 0.03  # ≈ 1 − quantile by construction
    assert real["off"].mean() == pytest.approx(np.mean(real["distance"] > real["threshold"]))
    copies = off_manifold(train[:50], train, held)  # training items themselves: distance 0, on-manifold
    assert not copies["off"].any() and copies["distance"].max() == 0
    loo = off_manifold(noise, train, None)  # no held-out data: S plays both roles
    assert loo["reference"] == "S, leave-one-out" and loo["off"].mean() >= 0.99


def test_off_manifold_threshold_from_a_subsample():
    """n_real draws the items that set the threshold, each still compared with all real data
    (leave-one-out): their distances are exactly those of the full computation at the drawn rows."""
    from mem2gen.core.checks import off_manifold

    train = DIGITS[:400]
    full = off_manifold(DIGITS[400:500], train, None)
    sub = off_manifold(DIGITS[400:500], train, None, n_real=150, seed=3)
    ids = np.sort(np.random.default_rng(3).choice(400, 150, replace=False))
    np.testing.assert_array_equal(sub["real_distance"], full["real_distance"][ids])
    assert sub["threshold"] == pytest.approx(np.quantile(full["real_distance"][ids], 0.99))
    np.testing.assert_array_equal(sub["distance"], full["distance"])
    # eq 4's d(x̂, x1) from the classification is the same distance: passing it skips a search
    d1 = classify(DIGITS[400:500], train, DIGITS[500:900]).d_train[:, 0]
    np.testing.assert_array_equal(off_manifold(DIGITS[400:500], train, None, sample_distance=d1)["off"], full["off"])
    np.testing.assert_allclose(d1, full["distance"], rtol=0, atol=0)


def test_pooled_excess_sums_the_window():
    """pooled_excess adds the counts the per-K tests compared over lo < K < hi only, and tests the sums."""
    from mem2gen.core.stats import exceeds, pooled_excess

    rows = [{"K": k, "null_count_spurious": b, "model_count_spurious_at_null": a, "null_n": 500, "model_n_at_null": 500}
            for k, a, b in ((8, 9, 9), (32, 5, 1), (64, 6, 2), (128, 4, 1), (512, 0, 3))]
    w = pooled_excess(rows, 8, 512)
    assert w["sizes"] == [32, 64, 128] and (w["model"], w["null"], w["model_n"], w["null_n"]) == (15, 4, 1500, 1500)
    assert w["p"] == exceeds(15, 1500, 4, 1500) < 0.05 and all(exceeds(a, 500, b, 500) > 0.05 / 3
                                                              for a, b in ((5, 1), (6, 2), (4, 1)))
    assert pooled_excess(rows, 600, 700) is None
    # near K = N the null has fewer held-out items than the model has samples: each side keeps its own n
    rows[2] |= {"null_n": 300, "null_count_spurious": 1}
    w = pooled_excess(rows, 8, 512)
    assert (w["model_n"], w["null_n"], w["null"]) == (1500, 1300, 3) and w["null_fraction"] == 3 / 1300
    assert w["p"] == exceeds(15, 1500, 3, 1300)
