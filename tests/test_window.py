"""The window's collapse (mem2gen.analyses.window): planted dependences on steps/K^a, on K alone, on steps
alone, and none, each recovered (the positive and negative controls of docs/window.md's answer)."""
import numpy as np
import pytest

from mem2gen.analyses.window import collapse, verdict
from mem2gen.errors import Mem2genError

THETAS = np.linspace(0, 90, 46)


def _rows(f, seed=0, noise=0.02):
    rng = np.random.default_rng(seed)
    out = []
    for k in (16, 32, 64, 128, 256, 512):
        for r in range(5):
            model = rng.normal(0, noise)  # a model's own offset: between-model variance
            for s in (750, 1500, 3000, 6000, 12000):
                out.append({"K": k, "replicate": r, "step": s,
                            "y": f(np.log(s), np.log(k)) + model + rng.normal(0, noise)})
    return out


def _bump(x):
    return 0.1 * np.exp(-0.5 * (x / 0.7) ** 2)


@pytest.mark.parametrize("a", [1.0, 0.5])
def test_a_planted_dependence_on_steps_over_k_to_the_a_is_recovered(a):
    c = collapse(_rows(lambda ls, lk: _bump(ls - a * lk - np.log(300 / 16 ** a * 2))), "y", thetas=THETAS,
                 iterations=100)
    assert c["a_lo95"] <= a <= c["a_hi95"] and c["a_hi95"] - c["a_lo95"] < 0.6
    assert c["k_only_over_best"] > 1.5 and c["steps_only_over_best"] > 1.5
    assert "steps/K^a" in verdict(c)


def test_k_alone_and_steps_alone_are_told_apart():
    k_only = collapse(_rows(lambda ls, lk: _bump(lk - np.log(100))), "y", thetas=THETAS, iterations=100)
    assert k_only["theta_hi95"] == 90 and k_only["theta_lo95"] > 70 and "K alone" in verdict(k_only)
    steps = collapse(_rows(lambda ls, lk: _bump(ls - np.log(3000))), "y", thetas=THETAS, iterations=100)
    assert steps["theta_lo95"] == 0 and steps["theta_hi95"] < 20 and "training time alone" in verdict(steps)


def test_no_dependence_is_not_read_as_one():
    c = collapse(_rows(lambda ls, lk: 0 * ls, seed=1), "y", thetas=THETAS, iterations=100)
    assert "not identified" in verdict(c) and c["constant_over_best"] < 1.2


def test_too_few_models_or_missing_values_are_refused_or_left_out():
    rows = _rows(lambda ls, lk: _bump(lk - np.log(100)))
    with pytest.raises(Mem2genError, match="several models"):
        collapse([r for r in rows if r["replicate"] == 0 and r["K"] < 64], "y")
    with_none = [dict(r, y=None) if r["step"] == 750 else r for r in rows]
    assert collapse(with_none, "y", thetas=THETAS, iterations=0)["n_rows"] == len(rows) * 4 // 5
