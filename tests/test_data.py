import gzip
import pickle

import numpy as np
import pytest
from PIL import Image

from mem2gen import Mem2genError
from mem2gen.data import load_dataset, nested_subset, read_idx, subset_indices


def write_idx(path, arr, gz=False):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def test_nested_subsets_are_nested_and_stable():
    x = np.arange(1000)[:, None, None, None]
    s2, s500, sall = (nested_subset(x, k) for k in (2, 500, 1000))
    assert (s500[:2] == s2).all() and (sall[:500] == s500).all()
    assert sorted(sall.ravel().tolist()) == list(range(1000))
    np.testing.assert_array_equal(subset_indices(1000, 10), subset_indices(1000, 10))
    assert not np.array_equal(subset_indices(1000, 10, seed=1), subset_indices(1000, 10))
    # the permutation is fixed across versions and machines: pinned values for seed 3407
    assert subset_indices(10, 10).tolist() == np.random.default_rng(3407).permutation(10).tolist()


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
