"""The attractor study (mem2gen.attractors) against the exact denoiser, whose attractors are known: the
training items alone at small t, and symmetric mixtures exactly where the DenseAM analysis says."""
import numpy as np
import pytest
import torch

from mem2gen.analyses.attractors import (
    AttractorConfig,
    beta,
    hessian_extremes,
    mixture_stability,
    mixtures,
    study,
    summarize,
)
from mem2gen.analyses.landscape import follow
from mem2gen.errors import Mem2genError
from mem2gen.models.diffusion import OptimalDenoiser, Schedule

SCHED = Schedule()


def planted(k=8, d=16, seed=0):
    """k patterns in [-0.8, 0.8]^d, far apart compared with the noise at small t."""
    return np.random.default_rng(seed).uniform(-0.8, 0.8, (k, 1, 4, d // 4)).astype(np.float32)


@pytest.mark.slow
def test_training_items_are_the_only_attractors_at_small_t():
    y = planted()
    exact = OptimalDenoiser(y)
    rng = np.random.default_rng(1)
    groups = {"held-out": rng.uniform(-1, 1, (12, 1, 4, 4)).astype(np.float32),
              "mixture": mixtures(y, 12, (2, 3, 4))[0]}
    cfg = AttractorConfig(ts=(5, 10), per_group=12, n_synthetic=0, trials=3, steps=5, barrier_pairs=8)
    res = study(exact, y, groups, np.zeros((0, 1, 4, 4), np.float32), cfg)
    assert {r["group"] for r in res["census"]} == {"held-out", "mixture"}
    for r in res["census"]:
        assert r["to_training"] == 1.0 and r["nontraining_attractors"] == 0, r
        assert r["exact_to_training"] == 1.0 and r["exact_stable_mixtures"] == 0.0
        assert r["minimum_share"] == 1.0 and r["converged"] == 1.0  # the ends are minima of E_t: the items
    # the exact energy has a barrier between every pair of items (its basins are separate)
    pairs = [b for b in res["barriers"] if b["kind"] == "training pair"]
    assert len(pairs) == 2 * 8 and min(b["barrier"] for b in pairs) > 1.0
    assert min(b["distance"] for b in pairs) > 0  # each item against another item, not itself


def simplex(m=3, s=0.6, d=16):
    """m patterns s·e_i (a regular simplex, pairwise distance s√2): their mean is a fixed point of the exact
    update by symmetry, and the update's Jacobian there is β·Cov = β s²/m on the simplex's directions."""
    y = np.zeros((m, 1, 4, d // 4), np.float32)
    for i in range(m):
        y.reshape(m, -1)[i, i] = s
    return y


@pytest.mark.parametrize("m", [2, 3, 5])
def test_planted_mixtures_are_fixed_points_exactly_where_denseam_says_they_are_stable(m):
    s = 0.6
    y = simplex(m, s)
    threshold = m / s ** 2  # β* : ρ = β s²/m crosses 1
    ts = np.arange(1, 1000)
    betas = np.array([beta(int(t)) for t in ts])
    t_stable = int(ts[betas < threshold / 2][0])  # the smallest t with β < β*/2
    t_unstable = int(ts[betas > 2 * threshold][-1])  # the largest t with β > 2β*
    centre = y.mean(0, keepdims=True)
    for t, stable in ((t_stable, True), (t_unstable, False)):
        rho = mixture_stability(y, centre, t)[0]
        assert rho == pytest.approx(beta(t) * s ** 2 / m, rel=1e-6)  # the analytic spectral radius
        assert (rho < 1) == stable
        start = centre + 1e-3 * np.random.default_rng(t).standard_normal(centre.shape).astype(np.float32)
        end = follow(OptimalDenoiser(y), start, t=t, iters=5000, tol=1e-9).numpy()
        to_centre = float(np.linalg.norm(end - centre))
        to_item = float(np.linalg.norm(end.reshape(1, -1) - y.reshape(m, -1), axis=1).min())
        if stable:
            assert to_centre < 1e-4  # the mixture holds
        else:
            assert to_item < 0.05 < to_centre  # it splits towards one pattern


def test_hessian_extremes_are_the_exact_energys():
    """∇²E_t = I/σ² − ᾱ Cov_w(y)/σ⁴ for the exact denoiser (w: the posterior over the items)."""
    y = planted(5)
    exact = OptimalDenoiser(y)
    for t in (20, 100):
        a = float(SCHED.alphas_cumprod[t])
        s2 = 1 - a
        z = np.sqrt(a) * y[:3] + 0.3 * np.random.default_rng(t).standard_normal(y[:3].shape).astype(np.float32)
        got = hessian_extremes(exact, z, t)
        yf = torch.as_tensor(y.reshape(5, -1), dtype=torch.float64)
        for i in range(3):
            zi = torch.as_tensor(z[i].reshape(-1), dtype=torch.float64)
            w = torch.softmax(-((zi - a ** 0.5 * yf) ** 2).sum(1) / (2 * s2), 0)
            mu = w @ yf
            cov = (yf - mu).T @ (w[:, None] * (yf - mu))
            ev = torch.linalg.eigvalsh(torch.eye(16, dtype=torch.float64) / s2 - a * cov / s2 ** 2)
            assert got[i] == pytest.approx([float(ev[0]), float(ev[-1])], rel=2e-3, abs=1e-3 / s2)


def test_mixtures_are_means_of_an_item_and_its_nearest():
    y = planted(10)
    states, parents = mixtures(y, 6, (2, 3))
    flat = y.reshape(10, -1)
    for x, p in zip(states, parents):
        assert len(set(p)) == len(p) in (2, 3)
        np.testing.assert_allclose(x, flat[p].mean(0), rtol=1e-6)
        others = np.linalg.norm(flat - flat[p[0]], axis=1)
        assert set(p[1:]) == set(np.argsort(others)[1:len(p)])  # the anchor's nearest other items


@pytest.mark.slow
def test_summary_is_over_models():
    def census(k, rep, to_training):
        return {"K": k, "replicate": rep, "t": 5, "beta": 1.0, "sigma": 0.1, "group": "spurious", "n": 10,
                "to_training": to_training}

    rows = summarize([census(8, 0, 1.0), census(8, 1, 0.5), census(16, 0, 0.25)], [], [])
    by_k = {r["K"]: r for r in rows}
    assert by_k[8]["n_models"] == 2 and by_k[8]["to_training"] == 0.75
    half = 12.706204736174707 * np.std([1.0, 0.5], ddof=1) / np.sqrt(2)  # t(0.975, 1)
    assert by_k[8]["to_training_lo95"] == pytest.approx(max(0.75 - half, 0))
    assert by_k[16]["n_models"] == 1 and by_k[16]["to_training_lo95"] is None  # one model: unmeasured


def test_settings_are_checked():
    with pytest.raises(Mem2genError, match="groups"):
        AttractorConfig(groups=("spurious", "ghosts"))
    with pytest.raises(Mem2genError, match="noise levels"):
        AttractorConfig(ts=(0, 5))
    with pytest.raises(Mem2genError, match="mixture_sizes"):
        AttractorConfig(mixture_sizes=(1,))


def test_theory_window_is_where_a_pair_mixture_holds_and_the_mean_has_not_taken_over():
    """The window's edges from their closed forms (β = 4/d² of the closest pair, 1/λ_max of S_K), and the
    exact update agreeing: the closest pair's midpoint holds just above t_from and splits well below it."""
    from mem2gen.analyses.attractors import t_of_beta, theory_window

    rng = np.random.default_rng(0)
    y = rng.uniform(-0.8, 0.8, (6, 1, 4, 4)).astype(np.float32)
    y[1] = y[0] + 0.25 * rng.standard_normal((1, 4, 4)).astype(np.float32)  # one close pair
    w = theory_window(y, step=25)
    d = np.linalg.norm(y[0] - y[1])
    flat = y.reshape(6, -1).astype(np.float64)
    assert w["d_min"] == pytest.approx(d, rel=1e-5)
    assert w["beta_pair"] == pytest.approx(4 / d ** 2, rel=1e-4)
    assert w["beta_global"] == pytest.approx(1 / np.linalg.eigvalsh(np.cov(flat.T, bias=True))[-1], rel=1e-6)
    assert beta(w["t_from"]) <= w["beta_pair"] < beta(w["t_from"] - 1)  # the first t past the threshold
    assert w["t_from"] < w["t_median_pair"] <= w["t_to"] and w["t_to"] == t_of_beta(w["beta_global"])
    assert w["ts"][0] >= w["t_from"] and w["ts"][-1] <= w["t_to"] and all(t % 25 == 0 for t in w["ts"])
    mid = (0.5 * (y[0] + y[1]))[None]

    def settles(t):
        end = follow(OptimalDenoiser(y), mid + 1e-3, t=t, iters=5000, tol=1e-10).numpy()
        return float(np.linalg.norm(end - mid))

    t_in = w["t_from"] + 10
    assert settles(t_in) < 0.05 * d  # the mixture holds inside the window
    t_out = t_of_beta(4 * w["beta_pair"])  # β four times past the pair's threshold
    assert settles(t_out) > 0.4 * d  # below it, it splits towards an item


@pytest.mark.slow
def test_the_planted_control_finds_planted_states_and_the_exact_denoiser_alone_does_not():
    """The positive control (issue's done-when): starts near planted mixtures end off the training items in
    the exact denoiser of S_K ∪ P (≤ 10% on items at t ≤ 50) and on them in that of S_K alone, while real
    held-out digits end on training items (those nearest a planted state may end there)."""
    from mem2gen.analyses.attractors import planted_control
    from mem2gen.core.planted import digits

    x = digits()
    y, held = x[:48], x[100:116]
    cfg = AttractorConfig(ts=(5, 20, 50), per_group=16, n_synthetic=0, trials=2, steps=4, barrier_pairs=4,
                          n_planted=12)
    res = planted_control(y, {"held-out": held}, cfg)
    rows = {(m, r["t"], r["group"]): r for m, out in res.items() for r in out["census"]}
    for t in (5, 20, 50):
        assert rows[("planted control", t, "planted")]["to_training"] <= 0.1
        assert rows[("exact S_K", t, "planted")]["to_training"] >= 0.9
        assert rows[("planted control", t, "planted")]["nontraining_attractors"] >= 8
        assert rows[("planted control", t, "planted")]["recovery"] >= 0.9  # and the sampler keeps them there
        assert rows[("exact S_K", t, "planted")]["recovery"] <= 0.1
        assert rows[("exact S_K", t, "held-out")]["to_training"] >= 0.9
        assert rows[("planted control", t, "held-out")]["to_training"] >= 0.6  # a few are nearer a planted state
