import numpy as np
import pytest
import torch

from mem2gen import Mem2genError
from mem2gen.diffusion import OptimalDenoiser, Schedule
from mem2gen.memory import (DenseAM, Hopfield, bridge_beta, capacity_experiment, critical_load, dense_energy_at,
                            diffusion_energy, mixture, mixture_is_fixed_point, normalize, retrieval_curve,
                            softmax_average)
from mem2gen.memory.hopfield import end_state_kind, random_patterns


def test_hebbian_storage_and_retrieval_low_load():
    xi = random_patterns(5, 200, seed=1)
    net = Hopfield(xi)
    noisy = xi.copy()
    rng = np.random.default_rng(0)
    noisy[rng.random(noisy.shape) < 0.1] *= -1
    for mode in ("async", "sync"):
        end, ok = net.run(noisy, mode=mode)
        assert ok.all() and (end == xi).all()
    # energy does not rise under asynchronous dynamics, and stored patterns are minima
    assert (net.energy(end) <= net.energy(noisy)).all()
    np.testing.assert_allclose(net.W, net.W.T)
    assert np.diag(net.W).max() == 0


def test_planted_three_mixture_is_fixed_point():
    xi = random_patterns(3, 1001, seed=2)
    net = Hopfield(xi)
    mix = mixture(xi)
    m = net.overlaps(mix)[0]
    np.testing.assert_allclose(m, 0.5, atol=0.06)  # overlaps ≈ 1/2 with each of the three
    end, ok = net.run(mix, mode="sync")
    assert ok.all() and (end == mix).all()
    assert end_state_kind(net.overlaps(end))[0] == "mixture"


def test_critical_load_from_experiment():
    """α_c comes out of the retrieval experiment (extrapolated in 1/√N), not typed in."""
    exp = capacity_experiment(ns=(100, 200, 400), trials=4, probes=12, seed=0)
    assert abs(exp["alpha_c_infinite"] - 0.138) < 0.035
    assert all(0.09 < r["alpha_c"] < 0.25 for r in exp["by_n"])
    with pytest.raises(Mem2genError, match="bracket"):
        critical_load(retrieval_curve(100, [0.02, 0.04], trials=2, probes=5))


def test_hopfield_bad_inputs():
    with pytest.raises(Mem2genError, match="binary"):
        Hopfield(np.random.default_rng(0).standard_normal((3, 10)))
    net = Hopfield(random_patterns(2, 10))
    with pytest.raises(Mem2genError, match="neurons"):
        net.run(np.ones((1, 11)))


def test_dense_update_decreases_energy_and_gradient_is_exact(rng):
    y = normalize(rng.standard_normal((30, 16)))
    am = DenseAM(y, beta=4.0)
    x = rng.standard_normal((10, 16)) * 0.5
    e0, e1 = am.energy(x), am.energy(am.update(x))
    assert (e1 <= e0 + 1e-12).all()
    # gradient against finite differences
    g = am.gradient(x[:1])[0]
    fd = np.array([(am.energy(x[:1] + h)[0] - am.energy(x[:1] - h)[0]) / 2e-6 for h in np.eye(16) * 1e-6])
    np.testing.assert_allclose(g, fd, atol=1e-6)
    # high beta retrieves the stored pattern from a noisy cue
    big = DenseAM(y, beta=200.0)
    cue = y[:5] + 0.05 * rng.standard_normal((5, 16))
    np.testing.assert_allclose(big.retrieve(cue, steps=30), y[:5], atol=1e-6)


def test_softmax_average_streams_exactly(rng):
    x = torch.as_tensor(rng.standard_normal((7, 5)))
    y = torch.as_tensor(rng.standard_normal((100, 5)))
    b = torch.as_tensor(rng.standard_normal(100))
    out, lse = softmax_average(x, y, scale=30.0, bias=b, chunk=13)  # large scale: needs the online max
    logits = 30.0 * x @ y.T + b
    torch.testing.assert_close(out, torch.softmax(logits, 1) @ y)
    torch.testing.assert_close(lse, torch.logsumexp(logits, 1))


def test_mixtures_appear_as_beta_falls(rng):
    y = normalize(rng.standard_normal((3, 50)))
    assert not mixture_is_fixed_point(y, beta=60.0)
    assert mixture_is_fixed_point(y, beta=0.5)


def test_energy_bridge_identity(rng):
    """τ·E_DM(x, t) and E_DAM(x; β = 1/(τσ²)) differ by a constant (eqs 11-13), in float64."""
    y = normalize(rng.standard_normal((40, 12)))
    x = rng.standard_normal((25, 12))
    for tau, sigma in ((0.05, 1.0), (0.7, 0.3), (3.0, 2.0)):
        diff = tau * diffusion_energy(x, y, tau=tau, sigma=sigma) - dense_energy_at(x, y, tau=tau, sigma=sigma)
        assert np.ptp(diff) < 1e-9 * max(1.0, np.abs(diff).max())
    assert bridge_beta(2.0, 0.5) == pytest.approx(2.0)


def test_optimal_denoiser_is_the_dense_update(rng):
    """One implementation: the optimal denoiser at step t equals the DenseAM update with β = √ᾱ/(1−ᾱ)
    on the patterns √ᾱ·y (up to the bias), checked for normalised patterns where the bias is constant."""
    y = normalize(rng.standard_normal((20, 9)))
    t = 150
    ab = float(Schedule().alphas_cumprod[t])
    den = OptimalDenoiser(y.reshape(20, 1, 3, 3))
    x = rng.standard_normal((6, 9))
    a = den.denoise(torch.as_tensor(x).reshape(6, 1, 3, 3), torch.full((6,), t)).reshape(6, 9).numpy()
    b = DenseAM(y, beta=np.sqrt(ab) / (1 - ab)).update(x)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_dense_bad_inputs(rng):
    with pytest.raises(Mem2genError, match="positive"):
        DenseAM(rng.standard_normal((3, 4)), beta=0)
    with pytest.raises(Mem2genError, match="dimension"):
        DenseAM(rng.standard_normal((3, 4))).energy(np.zeros((2, 5)))
    with pytest.raises(Mem2genError, match="non-zero"):
        normalize(np.zeros((2, 3)))
