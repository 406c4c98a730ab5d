import numpy as np
import pytest

from mem2gen import Mem2genError, bootstrap_fractions, classify, label
from mem2gen.core.planted import planted
from mem2gen.core.rule import GENERALIZED, MEMORIZED, SPURIOUS


@pytest.fixture(scope="module")
def example():
    return planted()


def test_planted_known_answers(example):
    ev, tr, syn, truth = example
    res = classify(ev, tr, syn)
    assert (res.labels == truth).mean() >= 0.99
    # exact copies of training items are memorized with d1 = 0
    res2 = classify(tr[:10], tr, syn)
    assert (res2.labels == MEMORIZED).all() and (res2.d_train[:, 0] == 0).all()
    np.testing.assert_array_equal(res2.i_train[:, 0], np.arange(10))


def test_label_rule_known_values():
    d1 = np.array([1.0, 1.0, 3.0, 3.0, 3.0])
    d2 = np.array([3.0, 2.0, 4.0, 4.0, 4.0])
    ds = np.array([9.0, 0.1, 1.0, 1.2, 2.0])
    labels, rm, rs = label(d1, d2, ds, delta_m=1 / 3, delta_s=0.25)
    # 1/(3+eps) <= 1/3 -> memorized; 0.1/1.1 spurious; 1/4 spurious; 1.2/4.2 = 0.2857 > 0.25 generalized
    assert labels.tolist() == [MEMORIZED, SPURIOUS, SPURIOUS, GENERALIZED, GENERALIZED]
    np.testing.assert_allclose(rs[2], 1 / (4 + 1e-6))
    # the threshold is inclusive and sits between 0.2857 and 0.2858 for the fourth sample
    labels_b, _, _ = label(d1, d2, ds, delta_m=1 / 3, delta_s=0.2857)
    assert labels_b[3] == GENERALIZED and label(d1, d2, ds, delta_s=0.2858)[0][3] == SPURIOUS


def test_absolute_compat_rule():
    labels, _, _ = label([0.01, 0.5, 0.5], [0.011, 1, 1], [5, 0.01, 0.5], delta_m=0.03, delta_s=0.02,
                         rule="absolute")
    assert labels.tolist() == [MEMORIZED, SPURIOUS, GENERALIZED]


@pytest.mark.parametrize("scale", [0.01, 7.0])
def test_scale_invariance(example, scale):
    ev, tr, syn, _ = example
    a = classify(ev, tr, syn)
    b = classify(ev * scale, tr * scale, syn * scale, distance="features")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(b.d_train, a.d_train * scale, rtol=1e-5)  # inputs rounded to float32


def test_permutation_invariance(example, rng):
    ev, tr, syn, _ = example
    a = classify(ev, tr, syn)
    pe, pt, ps = rng.permutation(len(ev)), rng.permutation(len(tr)), rng.permutation(len(syn))
    b = classify(ev[pe], tr[pt], syn[ps])
    np.testing.assert_array_equal(b.labels, a.labels[pe])
    np.testing.assert_array_equal(pt[b.i_train[:, 0]], a.i_train[pe, 0])
    np.testing.assert_allclose(b.d_syn[:, 0], a.d_syn[pe, 0])


def test_leave_one_out_uses_eval_as_synthetic(example):
    ev, tr, _, _ = example
    res = classify(ev, tr)  # S' = S_eval
    assert res.info["leave_one_out"] and (res.i_syn[:, 0] != np.arange(len(ev))).all()
    assert (res.d_syn[:, 0] > 0).all()
    # a sample duplicated in the eval set finds its twin, not itself
    ev2 = np.concatenate([ev, ev[250:251]])
    res2 = classify(ev2, tr)
    assert res2.i_syn[250, 0] == len(ev) and res2.d_syn[250, 0] == 0


def test_uint8_and_float_layouts_agree(example):
    ev, tr, syn, _ = example
    u = lambda a: np.clip(np.rint((a + 1) * 127.5), 0, 255).astype(np.uint8)  # noqa: E731
    a = classify(u(ev), u(tr), u(syn))
    flat = (u(syn).astype(np.float32) / 127.5 - 1).reshape(len(syn), -1)
    b = classify(u(ev).transpose(0, 2, 3, 1), u(tr)[:, 0], flat[:, :].reshape(len(syn), 8, 8))
    np.testing.assert_array_equal(a.labels, b.labels)


def test_bootstrap_matches_binomial_theory():
    counts = np.array([100, 300, 600])
    b = bootstrap_fractions(counts, iterations=10_000, seed=1)
    for j, name in enumerate(["memorized", "spurious", "generalized"]):
        p = counts[j] / counts.sum()
        assert abs(b[name]["mean"] - p) < 0.002
        assert abs(b[name]["std"] - np.sqrt(p * (1 - p) / 1000)) / np.sqrt(p * (1 - p) / 1000) < 0.05
        lo, hi = b[name]["ci95"]
        assert lo < p < hi
    assert bootstrap_fractions(counts, seed=1) == bootstrap_fractions(counts, seed=1)


@pytest.mark.parametrize("bad,msg", [
    (dict(delta_m=1.5), "delta_m"), (dict(delta_m=0), "delta_m"), (dict(delta_s=0.5), "delta_s"),
    (dict(k=1), "k must"), (dict(distance="cosine"), "unknown distance"),
])
def test_bad_arguments(example, bad, msg):
    ev, tr, syn, _ = example
    with pytest.raises(Mem2genError, match=msg):
        classify(ev, tr, syn, **bad)


def test_bad_sets(example):
    ev, tr, syn, _ = example
    nan = ev.copy()
    nan[3, 0, 2, 2] = np.nan
    cases = [((nan, tr, syn), "NaN"), ((ev, tr[:1], syn), "at least 2"), ((ev[:0], tr, syn), "empty"),
             ((ev, tr, syn[:, :, :4]), "differ in sample shape"), ((ev * 3, tr, syn), r"\[-1, 1\]"),
             ((ev.astype(np.int32), tr, syn), "dtype")]
    for args, msg in cases:
        with pytest.raises(Mem2genError, match=msg):
            classify(*args)


def test_to_frame_matches_the_classification():
    pd = pytest.importorskip("pandas")
    from mem2gen import classify

    rng = np.random.default_rng(0)
    tr = rng.uniform(-1, 1, (30, 4)).astype(np.float32)
    ev = np.concatenate([tr[:5] + 1e-3, rng.uniform(-1, 1, (10, 4)).astype(np.float32)])
    res = classify(ev, tr, distance="features")
    df = res.to_frame()
    assert isinstance(df, pd.DataFrame) and len(df) == 15
    assert list(df["label"]) == list(res.label_names()) and (df["label"][:5] == "memorized").all()
    assert np.array_equal(df["d_train1"].to_numpy(), res.d_train[:, 0])
    assert np.array_equal(df["syn_nn1"].to_numpy(), res.i_syn[:, 0])
