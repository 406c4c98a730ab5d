"""The landscape tools against exact answers: the optimal denoiser's energy is a log-sum-exp of
Gaussians, so its energy differences, Hessian, attractors and basins are known."""
import numpy as np
import pytest
import torch

from mem2gen.analyses import landscape as L
from mem2gen.analyses import recovery as R
from mem2gen.core.planted import digits
from mem2gen.models.diffusion import OptimalDenoiser, Schedule

Y = digits()[:20].astype(np.float64)
DEN = OptimalDenoiser(Y)


@pytest.mark.parametrize("t", [50, 100, 300, 600])
def test_relative_energy_is_exact_within_1_percent(t):
    rng = np.random.default_rng(t)
    x = torch.as_tensor(Y[:5] + 0.3 * rng.standard_normal(Y[:5].shape))
    y = torch.as_tensor(Y[5:10] + 0.3 * rng.standard_normal(Y[:5].shape))
    exact = (DEN.energy(y, t) - DEN.energy(x, t)).numpy()
    got = L.relative_energy(DEN, x, y, t)
    np.testing.assert_allclose(got, exact, rtol=1e-2)
    s, prof = L.energy_profile(DEN, x, y, t, points=9)
    np.testing.assert_allclose(prof[:, -1], exact, rtol=1e-2)
    mid = x + 0.5 * (y - x)
    np.testing.assert_allclose(prof[:, 4], (DEN.energy(mid, t) - DEN.energy(x, t)).numpy(), rtol=1e-2, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("t", [300, 600])
def test_hessian_extreme_eigenvalues_exact_small_d(t):
    x = torch.as_tensor(Y[[0, 1, 2]].mean(0, keepdims=True))  # a 3-mixture: a curved, non-trivial spot
    H = torch.autograd.functional.hessian(lambda v: DEN.energy(v.reshape(1, 1, 8, 8), t)[0], x.reshape(-1))
    ref = np.linalg.eigvalsh(H.numpy())
    for which, want in (("smallest", ref[:3]), ("largest", ref[-3:])):
        got = L.hessian_eigs(DEN, x, t, k=3, which=which, symmetrize=False)
        np.testing.assert_allclose(got.values, want, rtol=1e-2)


def test_hessian_at_d_3072_without_forming_it():
    """d = 3,072: the exact extreme eigenvalues come from a K × K problem. ∇²E_t =
    (I − (ᾱ/(1−ᾱ)) Cov_w(y)) / (1−ᾱ) with Cov_w the posterior covariance of the training items."""
    rng = np.random.default_rng(0)
    y = rng.uniform(-1, 1, (6, 3, 32, 32))
    den = OptimalDenoiser(y)
    t = 600
    x = torch.as_tensor(y[:3].mean(0, keepdims=True))
    ab = float(Schedule().alphas_cumprod[t])
    flat = y.reshape(6, -1)
    logits = np.sqrt(ab) * flat @ x.numpy().ravel() / (1 - ab) - ab * (flat ** 2).sum(1) / (2 * (1 - ab))
    w = np.exp(logits - logits.max())
    w /= w.sum()
    cw = np.diag(w) - np.outer(w, w)  # Cov_w = Yᵀ cw Y; nonzero spectrum = that of cw^½ Y Yᵀ cw^½
    ev, vec = np.linalg.eigh(cw)
    root = vec @ np.diag(np.sqrt(np.clip(ev, 0, None))) @ vec.T
    cov = np.linalg.eigvalsh(root @ flat @ flat.T @ root)
    exact_small = (1 - ab / (1 - ab) * cov.max()) / (1 - ab)
    got = L.hessian_eigs(den, x, t, k=1, which="smallest", symmetrize=False)
    assert got.values[0] == pytest.approx(exact_small, rel=1e-2)
    top = L.hessian_eigs(den, x, t, k=1, which="largest", symmetrize=False)
    assert top.values[0] == pytest.approx(1 / (1 - ab), rel=1e-2)  # directions off the data span
    assert got.matvecs <= 50 and top.matvecs <= 50


def test_hessian_budget_at_d_784():
    y = np.random.default_rng(1).uniform(-1, 1, (8, 1, 28, 28))
    den = OptimalDenoiser(y)
    x = torch.as_tensor(y[:2].mean(0, keepdims=True))
    got = L.hessian_eigs(den, x, 500, k=3, which="smallest")
    assert got.matvecs / 3 <= 50  # Jacobian-vector products per eigenvalue (JVP + VJP both counted)
    assert np.all(got.residuals < 1e-3 * np.abs(got.values).max())


@pytest.mark.slow
def test_recovery_times_of_two_items_agree_within_trial_noise():
    y = Y[:2]
    den = OptimalDenoiser(y)
    delta = 0.25 * R.nn_spacing(y)
    tc = np.array([R.recovery_times(den, y, delta=delta, trials=40, seed=s).t_c for s in range(4)])
    m, se = tc.mean(0), tc.std(0, ddof=1) / np.sqrt(len(tc))
    assert np.all(tc > 0)
    assert abs(m[0] - m[1]) <= 3 * np.hypot(*se) + 25, tc


@pytest.mark.slow
def test_bisection_agrees_with_the_linear_scan():
    den = OptimalDenoiser(Y[:4])
    delta = 0.25 * R.nn_spacing(Y[:4])
    fast = R.recovery_times(den, Y[:4], delta=delta, trials=10, seed=3)
    slow = R.recovery_times_linear(den, Y[:4], delta=delta, trials=10, stride=25, seed=3)
    # same noises: the bisection's t_c lies in the scan's last recovered cell (recovery is monotone here)
    assert np.all((slow <= fast.t_c) & (fast.t_c < slow + 25)), (fast.t_c, slow)
    assert fast.evaluations < 10 * 4 * 20 * 40 / 3  # ~10 rounds against the scan's 40 steps of t


def test_every_training_item_is_its_own_attractor():
    delta = 0.25 * R.nn_spacing(Y)
    ends = L.follow(DEN, torch.as_tensor(Y))
    c = L.census(ends, delta=delta, train=Y)
    assert c.n_attractors == 20 and c.n_training == 20
    assert sorted(c.training_item.tolist()) == list(range(20))
    # samples of the ideal memorizer all end on training items
    from mem2gen.models.diffusion import sample

    s = sample(DEN, (60, 1, 8, 8), sampler="ddpm", steps=50, seed=0)
    c = L.census(L.follow(DEN, s), delta=delta, train=Y)
    assert c.n_training == c.n_attractors and c.occupancy.sum() == 60


def test_census_merges_within_delta():
    pts = np.array([[0.0, 0], [0.05, 0], [0.1, 0], [1, 1], [1.02, 1], [3, 3]])
    c = L.census(pts, delta=0.06)
    assert c.occupancy.tolist() == [3, 2, 1] and c.component.tolist() == [0, 0, 0, 1, 1, 2]


def test_mixture_fit_recovers_planted_mixtures():
    x = 0.7 * Y[:4] + 0.3 * Y[4:8]
    fit = L.mixture_fit(x, Y, m=len(Y))  # every item a candidate parent: the planted pair is among them
    assert np.all(fit.relative < 1e-6)
    for i in range(4):
        w = dict(zip(fit.parents[i].tolist(), fit.weights[i].tolist()))
        assert w[i] == pytest.approx(0.7, abs=1e-4) and w[i + 4] == pytest.approx(0.3, abs=1e-4)
    noise = np.random.default_rng(0).uniform(-1, 1, (10, 1, 8, 8))
    assert np.all(L.mixture_fit(noise, Y, m=3).relative > 0.5)


def test_toy_counting_rule_on_the_exact_model():
    """In 2-D the census counts the ideal memorizer's attractors right: exactly the K training points
    (evenly spaced, 0.41 apart: farther than the noise at the iteration's step, √(1 − ᾱ_20) = 0.06)."""
    from mem2gen.models.diffusion import sample

    a = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    y = (0.8 * np.stack([np.cos(a), np.sin(a)], 1)).astype(np.float32)
    den = OptimalDenoiser(y)
    s = sample(den, (400, 2), sampler="ddpm", steps=100, seed=0)
    c = L.census(L.follow(den, s, t=20), delta=0.25 * R.nn_spacing(y), train=y)
    assert c.n_attractors == c.n_training == 12


@pytest.mark.slow
def test_toy_command(tmp_path):
    import csv

    from conftest import cli

    out = tmp_path / "toy"
    assert cli("toy", "--sizes", "2,5", "--steps", "150", "--out", out, "--quiet") == 0
    rows = list(csv.DictReader(open(out / "toy.csv")))
    assert [int(r["K"]) for r in rows] == [2, 5] and (out / "toy.png").exists()
    assert all(int(r["attractors"]) == int(r["on_training_items"]) + int(r["off_training"]) for r in rows)
    assert cli("toy", "--data", "ring", "--out", tmp_path / "x") == 2


def test_released_recovery_rule_known_answers():
    """The released rule (scan t = 1, 26, …, fresh noise per t, per trial the last t before its first
    failure): a one-item ideal memorizer recovers its item from every t, so each trial reads the scan's
    last step; a point it never returns to reads t = 1 for every trial and the scan stops at once."""
    one = OptimalDenoiser(Y[:1])
    r = R.recovery_times(one, Y[:1], delta=1e-3, trials=3, rule="released", stride=25)
    assert r.rule == "released" and r.per_trial.shape == (1, 3)
    assert (r.per_trial == max(range(1, 1000, 25))).all() and r.t_c[0] == 976
    far = -Y[:1]  # the item's negative: the denoiser always returns the item, never this point
    r = R.recovery_times(one, far, delta=1e-3, trials=3, rule="released", stride=25)
    assert (r.per_trial == 1).all() and r.evaluations == 3 * 1  # one scan step (t = 1: one DDIM step)


def test_released_and_bisection_rules_differ_on_the_same_items():
    """Both rules on the exact denoiser of 16 digits: the released per-trial times lie on its scan grid
    and below the scan's end, and the two rules do not give the same numbers (they are different rules)."""
    den = OptimalDenoiser(Y[:16])
    delta = 0.25 * R.nn_spacing(Y[:16])
    ours = R.recovery_times(den, Y[:4], delta=delta, trials=8, seed=0)
    theirs = R.recovery_times(den, Y[:4], delta=delta, trials=8, seed=0, rule="released")
    assert set(np.unique(theirs.per_trial)) <= set(range(1, 1000, 25))
    assert np.all(theirs.t_c > 1) and np.all(ours.t_c > 0)
    assert not np.allclose(theirs.t_c, ours.t_c)
    with pytest.raises(Exception, match="recovery rule"):
        R.recovery_times(den, Y[:1], delta=delta, rule="scan")
