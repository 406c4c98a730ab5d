import numpy as np
import pytest
import torch

from mem2gen.io.config import ModelSpec
from mem2gen.io.datasets import ARCHITECTURES
from mem2gen.models.diffusion import OptimalDenoiser, Schedule, sample
from mem2gen.models.networks import (
    MLP,
    build_model,
    build_unet,
    load_model,
    n_params,
    save_model,
)


def brute_denoise(x, y, ab):
    """E[x0|xt] by direct softmax over all training items (float64)."""
    x, y = x.reshape(len(x), -1).double(), y.reshape(len(y), -1).double()
    logits = -((x[:, None, :] - ab.sqrt() * y[None]) ** 2).sum(-1) / (2 * (1 - ab))
    return torch.softmax(logits, dim=1) @ y


def test_schedule_matches_diffusers():
    """ᾱ_t against diffusers' own DDPMScheduler with the paper's linear β (an independent implementation)."""
    from diffusers import DDPMScheduler

    s = Schedule()
    ref = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=2e-2, beta_schedule="linear")
    assert len(s.betas) == 1000 and float(s.betas[0]) == pytest.approx(1e-4)
    assert float(s.betas[-1]) == pytest.approx(2e-2)
    torch.testing.assert_close(s.alphas_cumprod.float(), ref.alphas_cumprod, rtol=1e-5, atol=1e-7)
    # and against the closed form ᾱ_t = Π_{s ≤ t}(1 − β_s) in float64
    import numpy as np

    beta = np.linspace(1e-4, 2e-2, 1000)
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), np.cumprod(1 - beta), rtol=1e-12)


@pytest.mark.parametrize("t", [0, 10, 300, 999])
def test_optimal_denoiser_matches_brute_force(t):
    g = torch.Generator().manual_seed(0)
    y = torch.rand(50, 1, 4, 4, generator=g) * 2 - 1
    x = torch.randn(7, 1, 4, 4, generator=g)
    den = OptimalDenoiser(y.numpy())
    den_small = OptimalDenoiser(y.numpy(), chunk=7)  # 50 items in 8 blocks: the streamed log-sum-exp
    tt = torch.full((7,), t)
    ref = brute_denoise(x, y, Schedule().alphas_cumprod[t])
    torch.testing.assert_close(den.denoise(x.double(), tt).reshape(7, -1), ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(den_small.denoise(x.double(), tt).reshape(7, -1), ref, rtol=1e-9, atol=1e-9)
    # mixed times in one batch
    tt2 = torch.tensor([0, 5, 999, 5, 0, 300, t])
    out = den_small.denoise(x.double(), tt2).reshape(7, -1)
    for i, ti in enumerate(tt2.tolist()):
        torch.testing.assert_close(out[i], brute_denoise(x[i:i + 1], y, Schedule().alphas_cumprod[ti])[0])


def test_optimal_denoiser_reproduces_training_points():
    """The ideal memorizer: every DDPM sample is (within a tiny distance of) a training item."""
    from mem2gen.core.planted import digits

    y = digits()[:20]
    x = sample(OptimalDenoiser(y), (16, 1, 8, 8), sampler="ddim", steps=100, seed=1, dtype=torch.float64)
    d = torch.cdist(x.reshape(16, -1), torch.as_tensor(y).double().reshape(20, -1)).min(dim=1).values
    assert float(d.max()) < 1e-3


@pytest.mark.parametrize("sampler,steps", [("ddpm", 20), ("ddim", 10)])
def test_sampler_shapes_and_determinism(sampler, steps):
    torch.manual_seed(0)
    m = MLP(sample_shape=(1, 4, 4), hidden=32, depth=1)
    a = sample(m, (5, 1, 4, 4), sampler=sampler, steps=steps, seed=3)
    b = sample(m, (5, 1, 4, 4), sampler=sampler, steps=steps, seed=3)
    c = sample(m, (5, 1, 4, 4), sampler=sampler, steps=steps, seed=4)
    assert a.shape == (5, 1, 4, 4) and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.abs().max()) <= 1


@pytest.mark.parametrize("name,paper", [("mnist", 24.5), ("fashion-mnist", 24.5), ("cifar10", 35.7),
                                        ("lsun-church", 61.7)])
def test_unet_architectures_match_table2(name, paper):
    """Paper Table 2's parameter counts, to the 0.1M the paper prints (built on the meta device: no memory)."""
    with torch.device("meta"):
        count = n_params(build_unet(ARCHITECTURES[name]))
    assert round(count / 1e6, 1) == paper, count


def test_model_round_trip_and_diffusers_layout(tmp_path):
    torch.manual_seed(0)
    unet = build_model(ModelSpec(kind="unet", arch="digits-small"), (1, 8, 8))
    mlp = build_model(ModelSpec(kind="mlp", hidden=16, depth=1), (1, 8, 8))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    for name, m in (("u", unet), ("m", mlp)):
        save_model(m.eval(), tmp_path / name)
        back = load_model(tmp_path / name)
        torch.testing.assert_close(back(x, t), m(x, t))
    from diffusers import DDPMPipeline, UNet2DModel

    pipe = DDPMPipeline.from_pretrained(tmp_path / "u")  # a full pipeline folder, as diffusers saves one
    assert isinstance(pipe.unet, UNet2DModel) and pipe.scheduler.config.beta_schedule == "linear"
    assert (tmp_path / "u" / "unet" / "diffusion_pytorch_model.safetensors").exists()
    torch.testing.assert_close(pipe.unet(x, t).sample, unet(x, t))


def test_foreign_diffusers_models_refused_or_loaded(tmp_path, monkeypatch):
    """A cosine-schedule or v-prediction pipeline and a class-conditional U-Net are refused (mem2gen would
    sample them wrongly); a Hub id is read from the local cache only, offline."""
    import json

    from diffusers import DDPMPipeline, DDPMScheduler

    from mem2gen import Mem2genError

    unet = build_model(ModelSpec(kind="unet", arch="digits-small"), (1, 8, 8)).unet
    for name, kw in (("cos", {"beta_schedule": "squaredcos_cap_v2"}), ("v", {"prediction_type": "v_prediction"})):
        DDPMPipeline(unet=unet, scheduler=DDPMScheduler(**kw)).save_pretrained(tmp_path / name)
        with pytest.raises(Mem2genError, match="another noise process"):
            load_model(tmp_path / name)
    unet.save_pretrained(tmp_path / "cond")
    conf = json.loads((tmp_path / "cond" / "config.json").read_text())
    (tmp_path / "cond" / "config.json").write_text(json.dumps({**conf, "num_class_embeds": 10}))
    with pytest.raises(Mem2genError, match="class-conditional"):
        load_model(tmp_path / "cond")
    # a Hub id: refused with how to get it when not cached; read from a cache laid out as huggingface_hub's
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    with pytest.raises(Mem2genError, match="huggingface-cli download someone/tiny-ddpm"):
        load_model("someone/tiny-ddpm")
    snap = cache / "models--someone--tiny-ddpm" / "snapshots" / "abc123"
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(snap)
    (cache / "models--someone--tiny-ddpm" / "refs").mkdir()
    (cache / "models--someone--tiny-ddpm" / "refs" / "main").write_text("abc123")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    torch.testing.assert_close(load_model("someone/tiny-ddpm")(x, t), unet(x, t).sample)


def test_spec_rejects_wrong_shape():
    from mem2gen import Mem2genError

    with pytest.raises(Mem2genError, match="choose a matching architecture"):
        build_model(ModelSpec(kind="unet", arch="cifar10"), (1, 28, 28))
    with pytest.raises(Mem2genError, match="unknown U-Net architecture"):
        ModelSpec(kind="unet", arch="imagenet")


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++", "dpm++sde"])
def test_every_sampler_lands_on_training_items_and_is_seeded(sampler, tmp_path):
    """Under the exact denoiser of S every sampler ends on training items; the same seed gives the same
    samples, and generate() resumes a stopped run to the same file."""
    from mem2gen.models.diffusion import OptimalDenoiser, sample
    from mem2gen.models.sample import generate

    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (6, 1, 8, 8)).astype(np.float32))
    m = OptimalDenoiser(x)
    y = sample(m, (5, 1, 8, 8), sampler=sampler, steps=40, seed=3)
    d = ((y[:, None] - x[None]) ** 2).flatten(2).sum(-1).sqrt().min(1).values
    assert (d < 1e-3).all()
    assert torch.equal(y, sample(m, (5, 1, 8, 8), sampler=sampler, steps=40, seed=3))
    full = generate(m, 10, tmp_path / "a.npy", sampler=sampler, steps=10, batch=4, seed=1, progress=False)
    generate(m, 10, tmp_path / "b.npy", sampler=sampler, steps=10, batch=4, seed=1, progress=False, stop_after=1)
    resumed = generate(m, 10, tmp_path / "b.npy", sampler=sampler, steps=10, batch=4, seed=1, progress=False)
    assert np.array_equal(np.asarray(full), np.asarray(resumed))
