import gzip
import pickle

import numpy as np
import pytest
from PIL import Image

from mem2gen import Mem2genError
from mem2gen.io.data import nested_subset, read_idx, subset_indices
from mem2gen.io.datasets import DATASETS, load_dataset


def write_idx(path, arr, gz=False):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def test_nested_subsets_are_nested_and_stable():
    x = np.arange(1000)[:, None, None, None]
    s2, s500, sall = (nested_subset(x, k) for k in (2, 500, 1000))
    assert (s500[:2] == s2).all() and (sall[:500] == s500).all()
    assert sorted(sall.ravel().tolist()) == list(range(1000))
    assert not np.array_equal(subset_indices(1000, 10, seed=1), subset_indices(1000, 10))
    # S_K must never change between versions, or finished runs could not be reopened: values recorded
    # when the subsets were defined (numpy PCG64 permutation, seed 3407)
    assert subset_indices(10, 10).tolist() == [5, 8, 2, 7, 3, 9, 0, 4, 1, 6]
    assert subset_indices(1797, 8).tolist() == [1381, 980, 1674, 1227, 17, 390, 593, 215]


def test_nested_subset_bad_sizes():
    x = np.zeros((10, 1, 2, 2))
    with pytest.raises(Mem2genError, match="at least 2"):
        nested_subset(x, 1)
    with pytest.raises(Mem2genError, match="exceeds the dataset"):
        nested_subset(x, 11)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_loader(tmp_path, gz):
    imgs = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    write_idx(tmp_path / name, imgs, gz)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", imgs[:2])
    arr = load_dataset(f"mnist:{tmp_path}")
    assert arr.shape == (7, 1, 28, 28) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr[:, 0], imgs)


def test_idx_truncated(tmp_path):
    imgs = np.zeros((3, 4, 4), dtype=np.uint8)
    write_idx(tmp_path / "x", imgs)
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-5])
    with pytest.raises(Mem2genError, match="truncated"):
        read_idx(tmp_path / "x")


def test_cifar_loader_and_refuses_code(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": data, b"labels": [1, 2, 3, 4]}, f, protocol=2)
    arr = load_dataset(f"cifar10:{tmp_path}")
    assert arr.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(arr.reshape(4, -1), data)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "bad"
    bad.mkdir()
    with open(bad / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(Mem2genError, match="refusing"):
        load_dataset(f"cifar10:{bad}")


def test_folder_center_crop_resize(tmp_path):
    im = np.zeros((40, 60, 3), dtype=np.uint8)
    im[:, 10:50] = 255  # the centre 40x40 square is white
    Image.fromarray(im).save(tmp_path / "a.png")
    arr = load_dataset(f"lsun-church:{tmp_path}", image_size=16)
    assert arr.shape == (1, 3, 16, 16) and arr.min() >= 250


@pytest.mark.slow
def test_builtin_and_bad_names(tmp_path):
    d = load_dataset("digits")
    assert d.shape == (1797, 1, 8, 8) and d.min() >= -1 and d.max() <= 1
    m = load_dataset("mnist5k")
    assert m.shape == (5000, 1, 28, 28) and m.dtype == np.uint8
    with pytest.raises(Mem2genError, match="unknown dataset"):
        load_dataset("imagenet:/x")
    with pytest.raises(Mem2genError, match="needs a local path"):
        load_dataset("cifar10")
    with pytest.raises(Mem2genError, match="no CIFAR-10"):
        load_dataset(f"cifar10:{tmp_path}")
    np.save(tmp_path / "a.npy", np.zeros((5, 8, 8), dtype=np.uint8))
    assert load_dataset(str(tmp_path / "a.npy")).shape == (5, 1, 8, 8)


@pytest.mark.slow
def test_registry_entries_agree_with_their_data(tmp_path):
    """Every dataset's registered shape is what its loader returns; paper entries have Table 1 and 2."""
    from mem2gen.io.datasets import ARCHITECTURES, PAPER_DATASETS

    for name in ("digits", "mnist5k"):
        assert load_dataset(name).shape[1:] == DATASETS[name].shape
    assert set(PAPER_DATASETS) == {"mnist", "fashion-mnist", "cifar10", "lsun-church"}
    for name in PAPER_DATASETS:
        d = DATASETS[name]
        start, a, b, n = d.schedule
        assert start == 2 and a == 2000 and b in (16_000, 32_000)
        arch = ARCHITECTURES[d.arch]
        assert (arch.channels, arch.sample_size, arch.sample_size) == d.shape
        assert d.synthetic_factor == (16 if d.shape[0] == 3 else 4)
        assert d.distance == ("lpips" if d.shape[0] == 3 else "l2")


@pytest.mark.parametrize("n", [60_000, 50_000])
def test_authors_split_is_their_random_split(n):
    """split="authors": S_K are exactly the indices torch's random_split gives the authors' code
    (seed 3407), for MNIST- and CIFAR-sized datasets, and they are nested."""
    import torch
    from torch.utils.data import random_split

    for k in (2, 2000, 16_000):
        theirs = random_split(range(n), [k, n - k], generator=torch.Generator().manual_seed(3407))[0].indices
        np.testing.assert_array_equal(subset_indices(n, k, split="authors"), theirs)
    big = subset_indices(n, 16_000, split="authors")
    assert (subset_indices(n, 2000, split="authors") == big[:2000]).all()
    # and not mem2gen's own permutation: chance-level overlap between the two subsets
    overlap = len(set(subset_indices(n, 2000).tolist()) & set(big[:2000].tolist()))
    assert overlap < 2000 * 2000 / n * 2 + 20
    with pytest.raises(Mem2genError, match="unknown split"):
        subset_indices(n, 5, split="sklearn")


def test_paper_presets_use_the_authors_split():
    from mem2gen.io.config import SWEEP_PRESETS

    assert all(SWEEP_PRESETS[f"paper-{d}"].split == "authors" for d in ("mnist", "cifar10", "lsun-church"))
    assert SWEEP_PRESETS["quick"].split == "numpy"  # finished quick runs keep their subsets


def test_lsun_lmdb_is_read_centre_cropped_and_resized(tmp_path):
    """LSUN ships as LMDB (keys → encoded images): read in key order, largest centred square, 64×64."""
    import io

    lmdb = pytest.importorskip("lmdb")
    from PIL import Image

    from mem2gen.io.datasets import load_dataset

    imgs = []
    env = lmdb.open(str(tmp_path / "church"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(3):
            a = np.zeros((48, 80, 3), np.uint8)
            a[:, 16:64] = 40 * (i + 1)  # the centred 48 × 48 square: one colour; the sides: black
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, format="PNG")
            txn.put(f"{i:04d}".encode(), buf.getvalue())
            imgs.append(a)
    env.close()
    x = load_dataset(f"lsun-church:{tmp_path / 'church'}")
    assert x.shape == (3, 3, 64, 64) and x.dtype == np.uint8
    assert [int(v) for v in x[:, 0, 32, 32]] == [40, 80, 120]
    assert all(int(x[i].min()) == 40 * (i + 1) for i in range(3))  # nothing of the black sides survives the crop
    assert load_dataset(f"lsun-church:{tmp_path / 'church'}", image_size=32).shape == (3, 3, 32, 32)


def test_builtin_digits_are_the_uci_set():
    """The shipped digits are the UCI set byte for byte (its recorded sha256, assets/README.md), in
    scikit-learn's order when scikit-learn is installed, and map 0..16 onto [-1, 1] as x/8 − 1."""
    import hashlib

    from mem2gen.io.datasets import DIGITS_FILE, load_dataset

    with np.load(DIGITS_FILE) as f:
        images, target = f["images"], f["target"]
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 16
    digest = "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"
    assert hashlib.sha256(images.tobytes()).hexdigest() == digest
    assert np.bincount(target).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    x = load_dataset("digits")
    assert x.shape == (1797, 1, 8, 8) and x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal(x[:, 0], images / np.float32(8) - 1)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return
    np.testing.assert_array_equal(load_digits().images, images)


@pytest.mark.slow
def test_image_size_shrinks_by_block_means():
    """mnist5k at 14x14: each pixel the rounded mean of a 2x2 block of the 28x28 images; a size that
    does not divide the side is refused."""
    from mem2gen.io.datasets import block_mean

    full, small = load_dataset("mnist5k"), load_dataset("mnist5k", image_size=14)
    assert small.shape == (5000, 1, 14, 14) and small.dtype == np.uint8
    blocks = full[:, :, :2, :2].astype(np.float64).mean(axis=(2, 3))
    np.testing.assert_array_equal(small[:, :, 0, 0], np.floor(blocks + 0.5))
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(block_mean(x, 2)[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    with pytest.raises(Mem2genError, match="whole factor"):
        load_dataset("mnist5k", image_size=10)
