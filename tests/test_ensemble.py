"""train.ensemble: replicates trained at once as one stacked MLP (mem2gen.ensemble)."""
import copy

import numpy as np
import pytest
import torch

from mem2gen.errors import Mem2genError
from mem2gen.io.config import SweepConfig, TrainConfig
from mem2gen.io.datasets import load_dataset
from mem2gen.models.ensemble import StackedMLP, train_ensemble
from mem2gen.models.networks import MLP
from mem2gen.models.train import STATE_FILE, train
from mem2gen.runs.run import Run
from mem2gen.runs.sweep import run_sweep

quiet = dict(progress=False, echo=lambda *a: None)


def members(n=3, hidden=32, depth=2, **kw):
    torch.manual_seed(0)
    ms = [MLP(sample_shape=(1, 8, 8), hidden=hidden, depth=depth, **kw) for _ in range(n)]
    for m in ms:  # the zero-initialised output layer would hide the hidden layers from the checks
        torch.nn.init.normal_(m.out[1].weight, std=0.1)
    return ms


def gap(a, b) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a.parameters(), b.parameters()))


def test_stacked_forward_is_each_members_forward():
    ms = members(4, dropout=0.0)
    s = StackedMLP(ms)
    x, t = torch.randn(4, 7, 1, 8, 8), torch.randint(0, 1000, (4, 7))
    with torch.no_grad():
        y = s(x, t)
        for r, m in enumerate(ms):
            torch.testing.assert_close(y[r], m(x[r], t[r]), rtol=1e-6, atol=1e-6)
            assert gap(s.member(r), m) == 0.0  # member() gives back exactly the weights stacked


@pytest.mark.slow
def test_each_member_is_trained_as_train_trains_it_alone():
    """Same batches, times, noise, clipping, Adam and EMA per member as mem2gen.models.train.train: the weights
    agree to the last bits of the batched products (other seeds' draws would differ at ~1e-2)."""
    data = load_dataset("digits")[:24]
    cfgs = [TrainConfig(steps=40, batch=16, lr=1e-3, seed=s, grad_clip=0.05) for s in (5, 6, 7)]  # clipping active
    ms = members()
    alone = [train(copy.deepcopy(m), data, c, progress=False, device="cpu").model for m, c in zip(ms, cfgs)]
    together = train_ensemble([copy.deepcopy(m) for m in ms], [data] * 3, cfgs, progress=False, device="cpu")
    for a, b in zip(alone, together):
        assert gap(a, b.model) < 1e-5
    assert gap(alone[0], alone[1]) > 1e-3  # the members differ: the check above is not vacuous


@pytest.mark.slow
def test_killed_and_resumed_is_bit_identical(tmp_path):
    data = load_dataset("digits")[:24]
    cfgs = [TrainConfig(steps=30, batch=8, lr=1e-3, seed=s, checkpoint_every=10) for s in (1, 2)]
    ms = members(2)
    whole = train_ensemble([copy.deepcopy(m) for m in ms], [data] * 2, cfgs, [tmp_path / "a0", tmp_path / "a1"],
                           progress=False, device="cpu")
    outs = [tmp_path / "b0", tmp_path / "b1"]
    train_ensemble([copy.deepcopy(m) for m in ms], [data] * 2, cfgs, outs, progress=False, device="cpu", stop_at=17)
    assert all((o / STATE_FILE).exists() and not (o / "model").exists() for o in outs)
    resumed = train_ensemble([copy.deepcopy(m) for m in ms], [data] * 2, cfgs, outs, progress=False, device="cpu")
    for w, r in zip(whole, resumed):
        assert all(torch.equal(p, q) for p, q in zip(w.model.parameters(), r.model.parameters()))
    # each member's folder is train()'s: a half-trained member finishes alone, a finished one is loaded
    outs = [tmp_path / "c0", tmp_path / "c1"]
    train_ensemble([copy.deepcopy(m) for m in ms], [data] * 2, cfgs, outs, progress=False, device="cpu", stop_at=10)
    solo = train(copy.deepcopy(ms[0]), data, cfgs[0], outs[0], progress=False, device="cpu")
    assert gap(solo.model, whole[0].model) < 1e-5
    again = train_ensemble([copy.deepcopy(m) for m in ms], [data] * 2, cfgs, outs, progress=False, device="cpu")
    assert torch.equal(next(again[0].model.parameters()), next(solo.model.parameters()))


def test_members_must_share_their_settings():
    data = load_dataset("digits")[:24]
    with pytest.raises(Mem2genError, match="share every training setting"):
        train_ensemble(members(2), [data] * 2, [TrainConfig(lr=1e-3), TrainConfig(lr=2e-3)], progress=False)
    with pytest.raises(Mem2genError, match="stacks MLPs"):
        SweepConfig.from_dict({"model": {"kind": "unet"}, "train": {"ensemble": True}})
    with pytest.raises(Mem2genError, match="one configuration"):
        StackedMLP([MLP(sample_shape=(1, 8, 8), hidden=8), MLP(sample_shape=(1, 8, 8), hidden=16)])


SETTING = dict(sizes=[2, 16], replicates=3, n_eval=60, sample_steps=50, sample_batch=64, bootstrap_iterations=50,
               quality_check=False, null_calibration=False, manifold_check=False,
               model={"kind": "mlp", "hidden": 128, "depth": 2})


def fractions(run) -> dict:
    out: dict = {}
    for r in Run(run).point_results():
        for name in ("memorized", "spurious", "generalized"):
            out.setdefault((r["K"], name), []).append(r[f"frac_{name}"])
    return out


@pytest.mark.slow
def test_ensemble_sweep_gives_the_fractions_of_separate_models(tmp_path):
    """A sweep with train.ensemble against the same sweep trained model by model: per K and label, the
    replicates' fractions do not differ (Welch's t-test over the models, p > 0.01), and the setting is one
    where they move with K (memorization at K = 2, less at K = 16)."""
    from scipy.stats import ttest_ind

    train_cfg = {"steps": 600, "batch": 32, "lr": 1e-3, "checkpoint_every": 200}
    sep = run_sweep(SweepConfig.from_dict({**SETTING, "train": train_cfg}), tmp_path / "sep", **quiet)
    ens = run_sweep(SweepConfig.from_dict({**SETTING, "train": {**train_cfg, "ensemble": True}}), tmp_path / "ens",
                    **quiet)
    a, b = fractions(tmp_path / "sep"), fractions(tmp_path / "ens")
    assert np.mean(a[(2, "memorized")]) > np.mean(a[(16, "memorized")]) + 0.2
    for key in a:
        assert len(a[key]) == len(b[key]) == 3
        if np.ptp(a[key]) == 0 and np.ptp(b[key]) == 0:
            assert a[key] == b[key]
        else:
            assert ttest_ind(a[key], b[key], equal_var=False).pvalue > 0.01, key
    import json
    meta = json.loads((tmp_path / "ens" / "points" / "K=16.r2" / "model" / "mem2gen.json").read_text())
    assert meta["ensemble"] == 3 and meta["size"] == 16
    assert len(sep["rows"]) == len(ens["rows"]) == 2
    # a K's job finishes the replicate whose labels were lost; the finished replicates' labels are not rewritten
    run = tmp_path / "ens" / "points"
    (run / "K=16.r1" / "summary.json").unlink()
    kept = {r: (run / f"K=16{r}" / "labels.csv").stat().st_mtime_ns for r in ("", ".r2")}
    run_sweep(SweepConfig.from_dict({**SETTING, "train": {**train_cfg, "ensemble": True}}), tmp_path / "ens", **quiet)
    assert (run / "K=16.r1" / "summary.json").exists()
    assert kept == {r: (run / f"K=16{r}" / "labels.csv").stat().st_mtime_ns for r in ("", ".r2")}
