import json

import numpy as np
import pytest
import torch

from conftest import cli
from mem2gen.core.planted import digits
from mem2gen.models.networks import build_model, load_model
from mem2gen.models.sample import generate
from mem2gen.models.train import TrainConfig, log_spaced_steps, train


def tiny():
    from mem2gen.io.config import ModelSpec

    return build_model(ModelSpec(kind="mlp", hidden=64, depth=2), (1, 8, 8), seed=0)


@pytest.mark.slow
def test_loss_falls():
    before = torch.get_rng_state()
    res = train(tiny(), digits()[:64], TrainConfig(steps=300, batch=64, lr=1e-3), progress=False)
    assert torch.equal(torch.get_rng_state(), before)  # training leaves the caller's RNG alone
    first, last = res.losses[0][1], res.losses[-1][1]
    assert last < 0.8 * first


@pytest.mark.slow
def test_resume_equals_uninterrupted(tmp_path):
    data = digits()[:32]
    cfg = TrainConfig(steps=40, batch=16, checkpoint_every=7)
    full = train(tiny(), data, cfg, tmp_path / "a", progress=False)
    part = train(tiny(), data, cfg, tmp_path / "b", progress=False, stop_at=23)
    assert part.step == 23 and not (tmp_path / "b" / "model").exists()
    resumed = train(tiny(), data, cfg, tmp_path / "b", progress=False)
    assert resumed.step == 40
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    # a finished run is loaded, not retrained
    again = train(tiny(), data, cfg, tmp_path / "b", progress=False)
    assert torch.equal(next(again.model.parameters()).cpu(), next(full.model.parameters()))


def test_log_spaced_steps():
    s = log_spaced_steps(10_000, 9)
    assert s[0] == 1 and s[-1] == 10_000 and list(s) == sorted(set(s))


def test_generate_resumes_shard_by_shard(tmp_path):
    m = tiny().eval()
    ref = generate(m, 10, tmp_path / "ref.npy", steps=5, batch=3, seed=1, progress=False)
    part = tmp_path / "s.npy"
    generate(m, 10, part, steps=5, batch=3, seed=1, progress=False, stop_after=2)
    assert not part.exists() and (tmp_path / "s.npy.partial.npy").exists()
    out = generate(m, 10, part, steps=5, batch=3, seed=1, progress=False)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))
    assert not (tmp_path / "s.npy.progress.json").exists()
    from mem2gen import Mem2genError

    generate(m, 10, tmp_path / "t.npy", steps=5, batch=3, seed=1, progress=False, stop_after=1)
    with pytest.raises(Mem2genError, match="other settings"):
        generate(m, 10, tmp_path / "t.npy", steps=6, batch=3, seed=1, progress=False)


@pytest.mark.slow
def test_cli_train_sample_classify(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli("train", "--data", "digits", "--size", "8", "--steps", "30", "--batch", "16", "--out", str(out),
               "--quiet") == 0
    assert (out / "model" / "model.safetensors").exists()
    meta = json.loads((out / "model" / "mem2gen.json").read_text())
    assert meta["size"] == 8 and meta["step"] == 30
    assert cli("sample", "--model", str(out / "model"), "--n", "6", "--steps", "4", "--sampler", "ddim",
               "--out", str(tmp_path / "s.npy"), "--quiet") == 0
    assert np.load(tmp_path / "s.npy").shape == (6, 1, 8, 8)
    # a different size in the same directory is refused
    assert cli("train", "--data", "digits", "--size", "9", "--steps", "30", "--out", str(out), "--quiet") == 2
    assert "other settings" in capsys.readouterr().err
    assert cli("train", "--data", "digits", "--size", "5000", "--steps", "3", "--out", str(tmp_path / "x")) == 2
    assert cli("train", "--data", "nope", "--size", "5", "--steps", "3", "--out", str(tmp_path / "y")) == 2
    assert cli("sample", "--model", str(tmp_path / "missing"), "--n", "2", "--out", str(tmp_path / "z.npy")) == 2
    assert load_model(out / "model").sample_shape == (1, 8, 8)
    # the run records S_K: its indices in the dataset give back the training set the sweep would use
    from mem2gen.io.data import nested_subset
    from mem2gen.io.datasets import load_dataset

    idx = np.load(out / "train_indices.npy")
    np.testing.assert_array_equal(load_dataset("digits")[idx], nested_subset(load_dataset("digits"), 8))


@pytest.mark.slow
def test_train_and_sample_take_a_presets_settings(tmp_path):
    """--preset fills every option not given from the preset; an option given still wins."""
    out = tmp_path / "q"
    assert cli("train", "--preset", "spurious-mnist14", "--size", "4", "--steps", "2", "--out", out, "--quiet") == 0
    t = json.loads((out / "train.json").read_text())
    assert t["data"] == "mnist5k" and t["train"]["lr"] == 1e-3 and t["train"]["steps"] == 2
    assert load_model(out / "model").sample_shape == (1, 14, 14)  # the preset's image_size
    assert cli("train", "--preset", "quick", "--data", "digits", "--lr", "5e-4", "--size", "4", "--steps", "2",
               "--out", tmp_path / "q2", "--quiet") == 0
    assert json.loads((tmp_path / "q2" / "train.json").read_text())["train"]["lr"] == 5e-4
    assert cli("sample", "--preset", "quick", "--model", out / "model", "--n", "2", "--batch", "2",
               "--out", tmp_path / "s.npy", "--quiet") == 0
    assert json.loads((tmp_path / "s.npy.json").read_text())["steps"] == 250  # quick samples DDPM-250
    assert cli("train", "--size", "4", "--out", tmp_path / "q3") == 2  # neither --data nor --preset


@pytest.mark.slow
def test_sample_defaults_to_a_fast_equivalent_sampler_and_the_bar_moves_per_step(tmp_path, capsys):
    """A user's first `mem2gen sample` finishes in seconds (DPM-Solver++ SDE, 50 steps: the sampler study's
    cheapest equivalent of DDPM-1000) and its bar counts denoising steps (so it moves, with an ETA, before the
    first image is done); `--sampler ddpm` alone is the paper's DDPM-1000."""
    out = tmp_path / "m"
    assert cli("train", "--data", "digits", "--size", "4", "--steps", "2", "--batch", "4", "--out", out,
               "--quiet") == 0
    capsys.readouterr()
    assert cli("sample", "--model", out / "model", "--n", "3", "--batch", "2", "--out", tmp_path / "a.npy") == 0
    made = json.loads((tmp_path / "a.npy.json").read_text())
    assert (made["sampler"], made["steps"]) == ("dpm++sde", 50)
    cap = capsys.readouterr()
    assert "(dpm++sde-50)" in cap.err and "100/100" in cap.err and "step" in cap.err  # 2 shards x 50 steps
    assert "dpm++sde, 50 steps" in cap.out
    assert cli("sample", "--model", out / "model", "--n", "1", "--sampler", "ddpm", "--out", tmp_path / "b.npy",
               "--quiet") == 0
    assert json.loads((tmp_path / "b.npy.json").read_text())["steps"] == 1000
    assert "the paper's sampler" in capsys.readouterr().out


def test_resume_with_another_model_is_refused(tmp_path):
    from mem2gen import Mem2genError
    from mem2gen.io.config import ModelSpec

    cfg = TrainConfig(steps=10, batch=8, checkpoint_every=2)
    train(tiny(), digits()[:16], cfg, tmp_path, progress=False, stop_at=4)
    other = build_model(ModelSpec(kind="mlp", hidden=32, depth=1), (1, 8, 8))
    with pytest.raises(Mem2genError, match="another model .mlp, differing in config|hidden"):
        train(other, digits()[:16], cfg, tmp_path, progress=False)


def test_loads_plain_diffusers_unet_and_pipeline_dirs(tmp_path):
    """A UNet2DModel saved by diffusers itself (no mem2gen.json), alone or inside a pipeline folder."""
    from diffusers import UNet2DModel

    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(32, 64),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=8)
    unet.save_pretrained(tmp_path / "unet_only")
    unet.save_pretrained(tmp_path / "pipe" / "unet")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([5, 500])
    for d in ("unet_only", "pipe"):
        m = load_model(tmp_path / d)
        assert m.sample_shape == (1, 8, 8)
        torch.testing.assert_close(m(x, t), unet(x, t).sample)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    from mem2gen import Mem2genError

    with pytest.raises(Mem2genError, match="cannot load"):
        load_model(tmp_path / "junk")


def test_snapshots_at_chosen_steps(tmp_path):
    cfg = TrainConfig(steps=12, batch=8, save_steps=log_spaced_steps(12, 4))
    train(tiny(), digits()[:16], cfg, tmp_path, progress=False)
    lines = (tmp_path / "losses.csv").read_text().splitlines()  # the loss log, one row per 50 steps (and the last)
    assert lines[0] == "step,loss" and lines[-1].startswith("12,")
    saved = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "snapshots").iterdir())
    assert saved == list(cfg.save_steps) and saved[0] == 1 and saved[-1] == 12
    last = load_model(tmp_path / "snapshots" / "step-12")
    final = load_model(tmp_path / "model")
    for a, b in zip(last.parameters(), final.parameters()):
        assert torch.equal(a, b)


def test_checkpoint_carries_its_model(tmp_path):
    """A training checkpoint alone rebuilds its EMA model: load_model needs no other file."""
    cfg = TrainConfig(steps=10, batch=8, checkpoint_every=3)
    part = train(tiny(), digits()[:16], cfg, tmp_path, progress=False, stop_at=6)
    back = load_model(tmp_path / "state.safetensors")
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([1, 50, 900])
    torch.testing.assert_close(back(x, t), part.model(x, t))
    done = train(tiny(), digits()[:16], cfg, tmp_path, progress=False)
    torch.testing.assert_close(load_model(tmp_path)(x, t), done.model(x, t))  # the training folder itself


def test_optimal_denoiser_saves_and_loads(tmp_path):
    from mem2gen.models.diffusion import OptimalDenoiser
    from mem2gen.models.networks import save_model

    y = digits()[:9]
    den = OptimalDenoiser(y)
    save_model(den, tmp_path / "opt", meta={"step": 0})
    back = load_model(tmp_path / "opt")
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(back(x, t), den(x, t))


def test_epoch_batching_is_the_authors_loader():
    """batching="epochs": every epoch is a permutation of S cut into n // b batches of b = min(batch, n),
    the partial last batch dropped; it depends on (seed, step) only, so a resumed run continues exactly."""
    import torch

    from mem2gen.models.train import batch_indices

    cfg = TrainConfig(steps=10, batch=4, batching="epochs", seed=3)
    n = 10  # b = 4: two batches per epoch, two items of each epoch unused
    steps = [batch_indices(cfg, n, s, torch.Generator()) for s in range(6)]
    for e in range(3):
        a, b = steps[2 * e], steps[2 * e + 1]
        assert len(a) == len(b) == 4 and len(set(a.tolist()) | set(b.tolist())) == 8  # no repeat inside an epoch
    assert not torch.equal(steps[0], steps[2])  # reshuffled per epoch
    assert torch.equal(batch_indices(cfg, n, 5, torch.Generator()), steps[5])  # no state: resumable
    small = TrainConfig(steps=10, batch=128, batching="epochs")
    assert sorted(batch_indices(small, 2, 0, torch.Generator()).tolist()) == [0, 1]  # K = 2: batch of 2
    # the paper presets train as the authors do: their loader, fp32 (TF32) on CUDA
    from mem2gen.io.config import SWEEP_PRESETS

    for name in ("paper-mnist", "paper-cifar10"):
        t = SWEEP_PRESETS[name].train
        assert (t.batching, t.bf16) == ("epochs", False)
    # and training with it runs, resumes exactly
    from mem2gen.io.config import ModelSpec
    from mem2gen.models.networks import build_model

    x = (np.random.default_rng(0).random((6, 1, 8, 8)) * 255).astype(np.uint8)
    cfg = TrainConfig(steps=8, batch=4, batching="epochs", checkpoint_every=3)

    def model():
        return build_model(ModelSpec(kind="mlp", hidden=16, depth=1), (1, 8, 8), seed=0)

    full = train(model(), x, cfg, progress=False).model
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        train(model(), x, cfg, d, progress=False, stop_at=5)
        resumed = train(model(), x, cfg, d, progress=False).model
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


@pytest.mark.slow
def test_unet_resumes_whatever_diffusers_bookkeeping_it_recorded(tmp_path):
    """A U-Net checkpoint whose recorded config carries diffusers' own keys ("_use_default_values",
    which depends on how the model object was made) resumes: only the shape is compared."""
    import json

    from safetensors.torch import load_file, save_file

    from mem2gen.io.config import ModelSpec

    spec, data = ModelSpec(kind="unet", arch="digits-small"), digits()[:16]
    cfg = TrainConfig(steps=4, batch=4, checkpoint_every=2)
    train(build_model(spec, (1, 8, 8), seed=0), data, cfg, tmp_path / "a", progress=False, stop_at=2)
    state = tmp_path / "a" / "state.safetensors"
    from safetensors import safe_open

    with safe_open(str(state), "pt") as f:
        meta = f.metadata()
    model = json.loads(meta["model"])
    model["config"]["_use_default_values"] = ["act_fn", "mid_block_type"]
    save_file(load_file(str(state)), str(state), metadata={**meta, "model": json.dumps(model)})
    resumed = train(build_model(spec, (1, 8, 8), seed=0), data, cfg, tmp_path / "a", progress=False)
    whole = train(build_model(spec, (1, 8, 8), seed=0), data, cfg, tmp_path / "b", progress=False)
    for p, q in zip(resumed.model.parameters(), whole.model.parameters()):
        assert torch.equal(p, q)


def test_ddpm_initialisation_is_variance_scaling():
    """model.init ddpm: weights uniform with variance scale/fan_avg (JAX's variance scaling, as the authors'
    layers.default_init), biases zero, the blocks' last maps about zero; the default keeps PyTorch's."""
    from mem2gen import Mem2genError
    from mem2gen.io.config import ModelSpec

    spec = ModelSpec(kind="unet", arch="mnist-small", init="ddpm")
    net = build_model(spec, (1, 28, 28), seed=0).unet
    default = build_model(ModelSpec(kind="unet", arch="mnist-small"), (1, 28, 28), seed=0).unet
    conv = net.down_blocks[0].resnets[0].conv1  # 3x3, 32 -> 32: fan_avg = 32 * 9
    bound = np.sqrt(3 / (32 * 9))
    w = conv.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound
    amax = lambda t: float(t.detach().abs().max())  # noqa: E731
    assert amax(conv.bias) == 0.0 and amax(default.down_blocks[0].resnets[0].conv1.bias) > 0
    assert amax(net.conv_out.weight) < 1e-4 and amax(net.down_blocks[0].resnets[0].conv2.weight) < 1e-4
    lin = net.time_embedding.linear_1  # (out, in) = (128, 32): fan_avg = 80
    assert amax(lin.weight) <= np.sqrt(3 / 80) and amax(lin.bias) == 0.0
    with pytest.raises(Mem2genError, match="U-Net's initialisation"):
        ModelSpec(kind="mlp", init="ddpm")
    with pytest.raises(Mem2genError, match="model.init"):
        ModelSpec(kind="unet", init="xavier")
