import numpy as np
import pytest
import torch

from conftest import cli
from mem2gen import Mem2genError
from mem2gen.memory import (
    DenseAM,
    Hopfield,
    bridge_beta,
    capacity_experiment,
    critical_load,
    dense_energy_at,
    diffusion_energy,
    mixture,
    mixture_is_fixed_point,
    normalize,
    retrieval_curve,
    softmax_average,
)
from mem2gen.memory.hopfield import end_state_kind, random_patterns
from mem2gen.models.diffusion import OptimalDenoiser, Schedule


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_memory_cli(tmp_path, capsys):
    out = tmp_path / "hop"
    assert cli("memory", "hopfield-capacity", "--n", "60,120", "--trials", "2", "--probes", "6", "--out", str(out)) == 0
    import json

    s = json.loads((out / "summary.json").read_text())
    assert set(s["alpha_c_by_n"]) == {"60", "120"} and 0.05 < s["alpha_c_infinite"] < 0.4
    assert (out / "hopfield.png").exists() and (out / "census.csv").read_text().startswith("alpha,pattern")
    out2 = tmp_path / "dense"
    assert cli("memory", "dense", "--beta", "5,200", "--sizes", "2,16", "--n-eval", "40", "--steps", "20",
               "--out", str(out2)) == 0
    rows = (out2 / "results.csv").read_text().splitlines()
    assert len(rows) == 5 and (out2 / "dense.png").exists() and (out2 / "capacity.csv").exists()
    text = capsys.readouterr().out
    assert "alpha_c" in text and "memorized" in text
    # β = 200 keeps two stored digits apart: every retrieval is a memorized pattern
    r = dict(zip(rows[0].split(","), rows[3].split(",")))
    assert float(r["beta"]) == 200 and int(r["K"]) == 2 and float(r["frac_memorized"]) == 1.0
    assert cli("memory", "dense", "--beta", "-1", "--out", str(tmp_path / "x")) == 2
    assert cli("memory", "hopfield-capacity", "--n", "5", "--out", str(tmp_path / "y")) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_capacity_table_known_limits():
    from mem2gen.core.planted import digits
    from mem2gen.memory.phase import capacity_table

    flat = digits().reshape(-1, 64)[:64].astype(np.float64)
    rows = {(r["beta"], r["K"]): r for r in capacity_table(flat, [3, 64], [1.0, 500.0], trials=20, noise=0.2)}
    assert rows[(500.0, 3)]["retrieved"] == 1.0 and rows[(500.0, 3)]["mixture_fixed"] == 0.0  # sharp: no mixtures
    assert rows[(1.0, 64)]["retrieved"] == 0.0  # flat softmax: everything falls to one average state
    assert rows[(1.0, 3)]["mixture_fixed"] == 1.0  # low β: the mixture of the three stored patterns is stable


def test_bridge_distance_form_for_patterns_of_any_norm():
    """The optimal denoiser is a DenseAM step with a per-pattern bias −(β√ᾱ/2)‖y‖², β = √ᾱ/(1−ᾱ);
    the plain update Σ softmax(β xᵀy) y equals it only when all patterns share one norm."""
    from mem2gen.core.planted import digits

    y = digits()[:50].reshape(50, -1).astype(np.float64)  # raw digits: norms differ
    t = 300
    ab = float(Schedule().alphas_cumprod[t])
    beta = np.sqrt(ab) / (1 - ab)
    x = np.sqrt(ab) * y[:5] + np.sqrt(1 - ab) * np.random.default_rng(0).standard_normal((5, 64))
    ref = OptimalDenoiser(y.reshape(50, 1, 8, 8)).denoise(torch.as_tensor(x).reshape(5, 1, 8, 8),
                                                         torch.full((5,), t)).reshape(5, -1).numpy()
    logits = beta * x @ y.T - beta * np.sqrt(ab) / 2 * (y ** 2).sum(1)
    w = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose((w / w.sum(1, keepdims=True)) @ y, ref, atol=1e-12)
    plain = DenseAM(y, beta=beta).update(x)
    assert np.abs(plain - ref).max() > 0.05  # the equal-norm special case does not hold here
    yn = normalize(y)  # equal norms: the bias is one constant and the two coincide
    ref_n = OptimalDenoiser(yn.reshape(50, 1, 8, 8)).denoise(torch.as_tensor(x).reshape(5, 1, 8, 8),
                                                            torch.full((5,), t)).reshape(5, -1).numpy()
    np.testing.assert_allclose(DenseAM(yn, beta=beta).update(x), ref_n, atol=1e-12)


@pytest.mark.slow
def test_bridge_command_on_the_exact_denoiser(tmp_path_factory, capsys):
    """A sweep whose model is the exact denoiser of S_K: its learned energy is the DenseAM energy of S_K,
    so the bridge must find them equal (up to the quadrature of the line integral)."""
    from conftest import cli, finished_sweep

    run = finished_sweep(tmp_path_factory, "bridge", dict(
        sizes=[4, 16], n_eval=20, sample_steps=20, sample_batch=32, bootstrap_iterations=50, model={"kind": "optimal"},
        null_calibration=False, manifold_check=False, quality_check=False))
    assert cli("memory", "bridge", run, "--n-samples", "12", "--t", "100,300") == 0
    import csv

    rows = list(csv.DictReader(open(run / "bridge.csv")))
    assert len(rows) == 4
    for r in rows:
        assert float(r["corr"]) > 0.999 and float(r["median_rel_error"]) < 1e-2 and float(r["sign_agreement"]) == 1.0
    assert cli("memory", "bridge", run, "--t", "0") == 2
