"""The null in its two forms (eq 5 unconditionally, and among non-memorized samples): known answers, the
cases where the forms disagree, and undefined shares."""
import numpy as np
import pytest

from mem2gen.core.null import TESTED, counts_of, excess, held_out_sets, share
from mem2gen.core.stats import exceeds


def test_counts_and_shares_of_each_form():
    c = {"memorized": 80, "spurious": 10, "generalized": 10}
    assert counts_of(c, "spurious") == (10, 100)
    assert counts_of(c, "spurious_nonmem") == (10, 20)
    assert counts_of([80, 10, 10], "memorized") == (80, 100)
    assert share(c, "spurious_nonmem") == 0.5
    assert share([5, 0, 0], "spurious_nonmem") is None  # every sample memorized: no share to speak of
    assert TESTED == ("memorized", "spurious", "spurious_nonmem")


def test_the_forms_disagree_where_memorization_is_high():
    """A model memorizing 90% with 5% spurious, against a null with 8% spurious and nothing memorized:
    unconditionally below the null, among non-memorized samples far above it."""
    model, null = [900, 50, 50], [0, 80, 920]
    u = excess(model, null, name="spurious", iterations=2000, seed=1)
    c = excess(model, null, name="spurious_nonmem", iterations=2000, seed=1)
    assert u["excess"] == pytest.approx(0.05 - 0.08)
    assert c["excess"] == pytest.approx(0.5 - 0.08)
    assert u["p"] > 0.9 and not u["significant"]
    assert c["p"] == pytest.approx(exceeds(50, 100, 80, 1000)) and c["p"] < 1e-10 and c["significant"]
    assert c["ci95"][0] < c["excess"] < c["ci95"][1] and c["ci95"][0] > 0.3


def test_the_forms_agree_without_memorization():
    model, null = [0, 120, 880], [0, 30, 970]
    u = excess(model, null, name="spurious", iterations=10, seed=0)
    c = excess(model, null, name="spurious_nonmem", iterations=10, seed=0)
    assert u["excess"] == pytest.approx(c["excess"]) and u["p"] == pytest.approx(c["p"])


def test_conditional_interval_covers_the_binomial_spread():
    """The conditional bootstrap resamples the spurious count given the non-memorized count: its interval is
    that of a difference of two binomial proportions (normal approximation as the reference)."""
    model, null = [500, 100, 400], [0, 50, 950]
    c = excess(model, null, name="spurious_nonmem", iterations=20000, seed=3)
    p1, n1, p2, n2 = 0.2, 500, 0.05, 1000
    se = np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    assert c["ci95"][0] == pytest.approx(0.15 - 1.96 * se, abs=0.006)
    assert c["ci95"][1] == pytest.approx(0.15 + 1.96 * se, abs=0.006)


def test_undefined_share_is_said_not_invented():
    e = excess([100, 0, 0], [0, 5, 95], name="spurious_nonmem", iterations=10)
    assert e["excess"] is None and e["p"] is None and "no non-memorized sample" in e["undefined"]


def test_held_out_sets_split_without_overlap():
    h = np.arange(100)[:, None].astype(np.float32)
    ev, syn = held_out_sets(h, n_eval=30, n_synthetic=50, seed=0)
    assert len(ev) == 30 and len(syn) == 50 and not set(ev[:, 0]) & set(syn[:, 0])
    ev, syn = held_out_sets(h, n_eval=80, n_synthetic=80, seed=0)  # too few: half for S_eval, the rest for S'
    assert len(ev) == 50 and len(syn) == 50
    ev, syn = held_out_sets(h, n_eval=30, n_synthetic=None, seed=0)
    assert syn is None and len(ev) == 30


def test_capacities_are_bracketed_by_the_grid():
    """P(mem) = 0.958 at K = 8 and 0.822 at K = 32: MC lies in [8, 32), not at 8; GC in (128, 512]; the peak's
    cell is open at an end of the grid."""
    from mem2gen.core.stats import capacities

    c = capacities([2, 8, 32, 128, 512, 1797], [1, 0.958, 0.822, 0.3, 0.01, 0], [0, 0.02, 0.1, 0.2, 0.03, 0],
                   [0, 0.02, 0.08, 0.5, 0.96, 1])
    assert (c["MC"], c["SC"], c["GC"]) == (8, 128, 512)
    assert c["mc_bracket"] == {"lo": 8, "hi": 32, "text": "MC in [8, 32)"}
    assert c["gc_bracket"] == {"lo": 128, "hi": 512, "text": "GC in (128, 512]"}
    assert c["sc_bracket"]["text"] == "SC in (32, 512)"
    c = capacities([2, 8], [1, 1], [0, 0.1], [0, 0])  # memorizing to the last size; nothing generalizes
    assert c["mc_bracket"]["text"] == "MC ≥ 8" and c["gc_bracket"] is None and c["sc_bracket"]["text"] == "SC > 2"
    c = capacities([2, 8], [0, 0], [0, 0], [1, 1])  # generalizing from the first size
    assert c["gc_bracket"]["text"] == "GC ≤ 2" and c["mc_bracket"] is None


def test_mixed_model_likelihood_is_the_integral():
    """The Gauss-Hermite marginal likelihood equals direct numerical integration over the random intercept."""
    import math

    from scipy.integrate import quad
    from scipy.special import expit
    from scipy.stats import norm

    from mem2gen.core.mixed import _loglik

    k, n, k0, n0 = np.array([30.0, 5.0]), np.array([200.0, 150.0]), np.array([3.0, 4.0]), np.array([200.0, 180.0])
    a, b, s = -3.5, 1.2, 0.8
    ref = 0.0
    for kr, nr in zip(k, n):
        def f(u, kr=kr, nr=nr):
            return math.exp(kr * math.log(expit(a + b + u)) + (nr - kr) * math.log(expit(-(a + b + u))))

        ref += math.log(quad(lambda u, f=f: f(u) * norm.pdf(u, scale=s), -12, 12, limit=400, epsabs=0,
                             epsrel=1e-10)[0])
    ref += float((k0 * np.log(expit(a)) + (n0 - k0) * np.log(expit(-a))).sum())
    assert _loglik([a, b, math.log(s)], k, n, k0, n0) == pytest.approx(ref, rel=1e-6)


def test_mixed_model_without_spread_fits_the_pooled_excess():
    """Identical models: the fit puts σ at its floor and b at the pooled log odds ratio; its test is more
    cautious than the pooled samples' likelihood ratio (under b = 0 a between-model spread may explain part of
    the excess, which three models cannot rule out), yet still clear."""
    import math

    from scipy.stats import norm

    from mem2gen.core.mixed import mixed_excess_test

    r = mixed_excess_test([(40, 1000)] * 3, [(20, 1000)] * 3)
    k1, n1, k0, n0 = 120, 3000, 60, 3000
    p = (k1 + k0) / (n1 + n0)
    g2 = 2 * sum(o * math.log(o / e) for o, e in ((k1, n1 * p), (n1 - k1, n1 * (1 - p)), (k0, n0 * p),
                                                  (n0 - k0, n0 * (1 - p))))
    assert r["sigma"] < 0.05 and r["b"] == pytest.approx(math.log((40 / 960) / (20 / 980)), abs=1e-3)
    assert norm.sf(math.sqrt(g2)) < r["p"] < 1e-3


def test_mixed_model_weighs_models_not_pooled_samples():
    """One model of three far above the null, two at zero: the pooled samples' exact test is overwhelming; the
    mixed model, which lets the models differ, is orders of magnitude less sure (and the t-test over models is
    not significant at all). With three models its likelihood ratio is still liberal here: the coverage
    simulation (scripts/coverage.py) measures by how much."""
    from mem2gen.core.mixed import mixed_excess_test
    from mem2gen.core.stats import model_test

    pooled = exceeds(100, 3000, 15, 3000)
    mixed = mixed_excess_test([(100, 1000), (0, 1000), (0, 1000)], [(5, 1000)] * 3)
    assert pooled < 1e-12 and mixed["p"] > 1e4 * pooled and mixed["sigma"] > 1
    assert model_test([0.095, -0.005, -0.005]) > 0.2
    assert mixed_excess_test([(50, 1000), (60, 1000), (40, 1000)], [(10, 1000), (12, 1000), (9, 1000)])["p"] < 1e-3
    assert mixed_excess_test([(10, 1000), (12, 1000), (9, 1000)], [(10, 1000), (12, 1000), (9, 1000)])["p"] >= 0.4


def test_tables_of_earlier_versions_get_the_conditional_form_from_their_counts(tmp_path):
    """A points.csv written before the conditional form existed: `pool` (with one table per replicate)
    fills frac/null/excess_spurious_nonmem from the counts, and leaves every unconditional number as it was."""
    import csv

    from mem2gen.cli import main
    from mem2gen.runs.results import conditional_from_counts, read_rows

    old = {"K": 16, "n_eval": 100, "count_memorized": 60, "count_spurious": 10, "count_generalized": 30,
           "null_n": 200, "null_count_memorized": 2, "null_count_spurious": 6, "model_n_at_null": 100,
           "model_count_memorized_at_null": 64, "model_count_spurious_at_null": 9}
    r = conditional_from_counts(old)
    assert r["frac_spurious_nonmem"] == 10 / 40 and r["null_spurious_nonmem"] == 6 / 198
    assert r["frac_spurious_nonmem_at_null"] == 9 / 36 and r["model_n_spurious_nonmem_at_null"] == 36
    assert conditional_from_counts({**old, "null_count_memorized": None}) == {**old, "null_count_memorized": None}
    every = dict(old, null_count_memorized=200, model_count_memorized_at_null=100)  # nothing left to share
    assert conditional_from_counts(every)["null_spurious_nonmem"] is None
    # a points.csv of three replicates pools to three models
    rows = []
    for rep, (sp, msp) in enumerate(((10, 9), (14, 12), (6, 7))):
        rows.append({**old, "replicate": rep, "count_spurious": sp, "count_generalized": 40 - sp,
                     "model_count_spurious_at_null": msp, "synthetic_per_K": 4, "n_synthetic": 64,
                     "frac_memorized": 0.6, "frac_spurious": sp / 100, "frac_generalized": (40 - sp) / 100,
                     "null_memorized": 0.01, "null_spurious": 0.03, "frac_memorized_at_null": 0.64,
                     "frac_spurious_at_null": msp / 100, "null_count_generalized": 192,
                     "model_count_generalized_at_null": 36 - msp, "null_n_synthetic": 64})
    src = tmp_path / "points.csv"
    with open(src, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(SystemExit) as done:
        main(["pool", str(src), "--out", str(tmp_path / "m.csv")])
    assert done.value.code in (0, None)
    (m,) = read_rows(tmp_path / "m.csv")
    assert m["n_replicates"] == 3
    want = np.mean([msp / 36 - 6 / 198 for msp in (9, 12, 7)])
    assert m["excess_spurious_nonmem"] == pytest.approx(want)
    assert m["excess_spurious"] == pytest.approx(np.mean([msp / 100 - 0.03 for msp in (9, 12, 7)]))


def test_a_held_out_set_that_holds_training_items_is_refused():
    """Silent before: a "held-out" set that is, or half is, the training set gave a null of training items."""
    from mem2gen.core.null import check_outside, held_out_null
    from mem2gen.core.planted import digits
    from mem2gen.errors import Mem2genError

    x = digits()
    train, held = x[:300], x[600:1000]
    assert check_outside(held, train)["exact"] == 0  # real held-out digits pass
    for bad in (train, np.concatenate([held[:200], train[:200]]), np.concatenate([held, train[:10]])):
        with pytest.raises(Mem2genError, match="copies of training items"):
            check_outside(bad, train)
    with pytest.raises(Mem2genError, match="copies of training items"):
        held_out_null(held[:50], train, None, train, model_counts=[10, 10, 30], iterations=10)
    with pytest.raises(Mem2genError, match="shape"):
        check_outside(held[:, :, :4], train)
