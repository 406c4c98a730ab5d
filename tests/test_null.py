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
