import numpy as np
import pytest

from conftest import brute_knn
from mem2gen.core.embed import FeatureSpace, PixelSpace
from mem2gen.core.neighbors import nearest


@pytest.mark.parametrize("chunk,batch", [(97, 31), (10_000, 4096)])
def test_matches_brute_force(rng, chunk, batch):
    r = rng.standard_normal((1000, 40)).astype(np.float32)
    q = rng.standard_normal((150, 40)).astype(np.float32)
    nb = nearest(q, r, 7, chunk=chunk, batch=batch)
    d, i = brute_knn(q, r, 7)
    np.testing.assert_array_equal(nb.indices, i)
    np.testing.assert_allclose(nb.distances, d, rtol=1e-12, atol=1e-12)


def test_near_duplicates_exact_at_zero(rng):
    """d1 ≈ 0 is where GEMM distances fail; the re-rank must give the true tiny distances."""
    r = (rng.standard_normal((2000, 784)) * 30).astype(np.float64)  # large norms: GEMM cancellation is worst
    q = r[:50] + 1e-7 * rng.standard_normal((50, 784))
    nb = nearest(q, r, 2)
    true = np.linalg.norm(q - r[:50], axis=1)
    np.testing.assert_array_equal(nb.indices[:, 0], np.arange(50))
    np.testing.assert_allclose(nb.distances[:, 0], true, rtol=1e-6)
    # what plain float32 GEMM would give is far off at this scale
    gemm = (q ** 2).sum(1).astype(np.float32) + (r[:50] ** 2).sum(1).astype(np.float32) \
        - 2 * (q.astype(np.float32) * r[:50].astype(np.float32)).sum(1)
    assert np.abs(np.sqrt(np.abs(gemm)) - true).max() > 1e-3


def test_exact_duplicates_give_zero(rng):
    r = rng.integers(0, 256, (300, 1, 8, 8), dtype=np.uint8)
    nb = nearest(r[:20], r, 2)
    assert (nb.distances[:, 0] == 0).all()
    np.testing.assert_array_equal(nb.indices[:, 0], np.arange(20))


def test_leave_one_out(rng):
    x = rng.standard_normal((200, 16)).astype(np.float32)
    nb = nearest(x, x, 3, exclude_self=True, chunk=37, batch=19)
    d, i = brute_knn(x, x, 3, exclude_self=True)
    np.testing.assert_array_equal(nb.indices, i)
    assert (nb.indices != np.arange(200)[:, None]).all()


def test_many_ties_are_refined_in_float64(rng):
    """More near-ties than k + margin cannot be certified in float32; the float64 pass makes them exact."""
    base = rng.standard_normal((20, 64))
    r = np.repeat(base, 40, axis=0) + 1e-9 * rng.standard_normal((800, 64))
    q = base + 1e-3
    nb = nearest(q, r, 5, margin=3)
    d, i = brute_knn(q, r, 5)
    assert nb.refined > 0
    np.testing.assert_allclose(nb.distances, d, rtol=1e-9)


def test_memmap_streaming_and_permutation(tmp_path, rng):
    r = rng.standard_normal((500, 12)).astype(np.float32)
    np.save(tmp_path / "r.npy", r)
    mm = np.load(tmp_path / "r.npy", mmap_mode="r")
    q = rng.standard_normal((30, 12)).astype(np.float32)
    nb = nearest(q, mm, 4, chunk=64)
    perm = rng.permutation(500)
    nb2 = nearest(q, r[perm], 4)
    np.testing.assert_array_equal(perm[nb2.indices], nb.indices)
    np.testing.assert_allclose(nb2.distances, nb.distances)


def test_cosine_features(rng):
    a, b = rng.standard_normal((20, 8)), rng.standard_normal((50, 8))
    nb = nearest(a, b, 3, space=FeatureSpace(metric="cosine"))
    cos = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    i = np.argsort(-cos, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(nb.indices, i)
    np.testing.assert_allclose(0.5 * nb.distances ** 2, 1 - np.take_along_axis(cos, i, 1), atol=1e-12)
    # cosine ignores the vectors' lengths
    scaled = nearest(a * 3.0, b * np.linspace(0.1, 5, 50)[:, None], 3, space=FeatureSpace(metric="cosine"))
    np.testing.assert_array_equal(scaled.indices, nb.indices)


@pytest.mark.parametrize("exclude", [False, True])
def test_uint8_integer_path_is_exact_with_ties_and_duplicates(exclude):
    """uint8 pixels take the integer path: the same neighbours as a float64 brute force on the raw
    values (ties by the lower index), and exactly its squared distances (in [-1, 1] units: /127.5)."""
    from mem2gen.core.neighbors import integer_ok

    rng = np.random.default_rng(3)
    ref = rng.integers(0, 256, (700, 1, 7, 7), dtype=np.uint8)
    ref[100:130] = ref[5]  # 31 exact duplicates: ties far beyond k + margin
    ref[200] = ref[7]
    q = ref[:60].copy() if exclude else np.concatenate([ref[:20], rng.integers(0, 256, (40, 1, 7, 7), dtype=np.uint8)])
    assert integer_ok(PixelSpace(), q, ref, "cpu")
    got = nearest(q, ref, 5, exclude_self=exclude, chunk=128, batch=32)
    d = ((q.reshape(len(q), 1, -1).astype(np.int64) - ref.reshape(1, len(ref), -1)) ** 2).sum(-1)
    if exclude:
        d[np.arange(len(q)), np.arange(len(q))] = np.iinfo(np.int64).max
    order = np.argsort(d, axis=1, kind="stable")[:, :5]
    assert np.array_equal(got.indices, order)
    assert np.array_equal(got.distances, np.sqrt(np.take_along_axis(d, order, 1).astype(np.float64)) / 127.5)
    assert got.refined >= 1  # the query with 31 duplicate neighbours was redone in full
