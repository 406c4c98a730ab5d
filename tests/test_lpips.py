"""LPIPS as an embedding: ‖φ(x) − φ(y)‖² equals the LPIPS score computed by the `lpips` package."""
import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

from mem2gen import Mem2genError, classify
from mem2gen.core.embed import (
    LPIPSEmbedding,
    LPIPSSpace,
    _load_state,
    backbone_features,
    shipped_lin_weights,
)
from mem2gen.core.neighbors import nearest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("lpips") is None,
                                reason="needs `pip install --no-deps lpips` (its shipped weights and reference code)")


def reference_lpips(net, features):
    """The `lpips` package's own LPIPS module, its trunk given our (random) backbone weights.

    `lpips` imports torchvision only to build the trunk; a stand-in module hands it ours.
    """
    fake_tv = types.ModuleType("torchvision")
    fake_tv.models = types.SimpleNamespace(
        alexnet=lambda **kw: types.SimpleNamespace(features=features),
        vgg16=lambda **kw: types.SimpleNamespace(features=features))
    saved = {k: sys.modules.get(k) for k in ("torchvision", "torchvision.models")}
    sys.modules["torchvision"], sys.modules["torchvision.models"] = fake_tv, fake_tv.models
    try:
        for mod in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
            del sys.modules[mod]
        import lpips

        return lpips.LPIPS(net=net, pnet_rand=True, verbose=False).eval()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@pytest.mark.parametrize("net,size", [("alex", 32), ("alex", 64), ("vgg", 32)])
def test_embedding_equals_lpips_package(net, size):
    torch.manual_seed(0)
    features = backbone_features(net)
    for m in features:
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=(2.0 / (m.in_channels * m.kernel_size[0] ** 2)) ** 0.5)
    ref = reference_lpips(net, features)
    emb = LPIPSEmbedding(net=net, backbone_state={f"features.{k}": v for k, v in features.state_dict().items()},
                         lin_state=_load_state(shipped_lin_weights(net)))
    x = torch.rand(6, 3, size, size) * 2 - 1
    y = torch.rand(6, 3, size, size) * 2 - 1
    y[0] = x[0] + 0.01 * torch.randn(3, size, size)  # a near pair too
    with torch.no_grad():
        direct = ref(x, y).flatten().double()
        via = (emb(x).double() - emb(y).double()).pow(2).sum(1)
    torch.testing.assert_close(via, direct, rtol=1e-5, atol=1e-9)


def test_shipped_linear_weights_load_and_are_nonnegative():
    state = _load_state(shipped_lin_weights("alex"))
    emb = LPIPSEmbedding(net="alex", lin_state=state)
    assert [getattr(emb, f"w{i}").numel() for i in range(5)] == [64, 192, 384, 256, 256]
    assert all(bool((getattr(emb, f"w{i}") >= 0).all()) for i in range(5))
    assert float(emb.w0.sum()) == pytest.approx(float(state["lin0.model.1.weight"].sum()))


@pytest.fixture
def backbone_file(tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "alexnet.pth"
    torch.save({f"features.{k}": v for k, v in backbone_features("alex").state_dict().items()}, path)
    return path


def test_lpips_search_matches_pairwise_and_classifies(backbone_file, rng):
    space = LPIPSSpace(backbone=str(backbone_file), device="cpu")
    train = rng.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8)
    ev = np.concatenate([train[:5], rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)])
    nb = nearest(ev, train, 3, space=space)
    e_ev, e_tr = space.embed(ev, exact=True), space.embed(train, exact=True)
    pair = ((e_ev[:, None] - e_tr[None]) ** 2).sum(-1).numpy()
    np.testing.assert_array_equal(nb.indices[:, 0], pair.argmin(1))
    np.testing.assert_allclose(nb.distances[:, 0] ** 2, pair.min(1), rtol=1e-9, atol=1e-12)
    res = classify(ev, train, train[::-1].copy(), distance="lpips", space=space, delta_s=0.175)
    assert (res.labels[:5] == 0).all() and (res.d_train[:5, 0] == 0).all()


def test_greyscale_is_repeated(backbone_file, rng):
    space = LPIPSSpace(backbone=str(backbone_file), device="cpu")
    g = rng.integers(0, 256, (3, 1, 32, 32), dtype=np.uint8)
    torch.testing.assert_close(space.embed(g), space.embed(np.repeat(g, 3, axis=1)))


def test_lpips_bad_inputs(backbone_file, tmp_path, rng):
    with pytest.raises(Mem2genError, match="not found"):
        LPIPSSpace(backbone=str(tmp_path / "missing.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(Mem2genError, match="cannot read"):
        LPIPSSpace(backbone=str(bad))
    space = LPIPSSpace(backbone=str(backbone_file), device="cpu")
    small = rng.integers(0, 256, (4, 1, 28, 28), dtype=np.uint8)
    with pytest.raises(Mem2genError, match="too small"):
        classify(small, small, small, space=space)
    with pytest.raises(Mem2genError, match="non-negative"):
        LPIPSEmbedding(net="alex", lin_state={f"lin{i}.model.1.weight": -torch.ones(1, c, 1, 1)
                                              for i, c in enumerate([64, 192, 384, 256, 256])})


def test_released_protocol_upsamples_28x28_nearest_exact_before_lpips(backbone_file, rng, tmp_path):
    """`--protocol released` on 28×28 greyscale images: LPIPS (their README's distance) on the images
    resized to 32×32 nearest-exact, as their ModifiedLPIPS does; checked against an independent numpy
    resize (source pixel floor((i + ½)·28/32)) and the plain 32×32 LPIPS space."""
    from mem2gen.commands.classify import classify_files

    train = rng.integers(0, 256, (30, 1, 28, 28), dtype=np.uint8)
    ev = np.concatenate([train[:4], rng.integers(0, 256, (8, 1, 28, 28), dtype=np.uint8)])
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "eval.npy", ev)
    res = classify_files(tmp_path / "eval.npy", tmp_path / "train.npy", out=tmp_path / "out", protocol="released",
                         lpips_backbone=str(backbone_file), device="cpu", grid=False, iterations=10, progress=False)
    src = np.floor((np.arange(32) + 0.5) * 28 / 32).astype(int)
    up = lambda a: a[:, :, src][:, :, :, src]  # noqa: E731
    plain = LPIPSSpace(backbone=str(backbone_file), device="cpu")
    e_ev, e_tr = plain.embed(up(ev), exact=True), plain.embed(up(train), exact=True)
    d = ((e_ev[:, None] - e_tr[None]) ** 2).sum(-1).numpy()  # LPIPS is the squared embedding distance
    np.testing.assert_allclose(res.result.d_train[:, 0], np.sort(d, 1)[:, 0], rtol=1e-6, atol=1e-9)
    assert res.result.distance == "lpips-alex@32" and (res.result.labels[:4] == 0).all()
