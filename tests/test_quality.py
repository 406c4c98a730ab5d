"""The sample-quality score (FD, KID in features trained on the dataset) and the per-sample
off-manifold flags."""
import csv
import json

import numpy as np
import pytest
import torch

from conftest import cli
from mem2gen.core.quality import frechet_distance, kid, quality, train_features
from mem2gen.io.config import ModelSpec, SweepConfig, TrainConfig
from mem2gen.io.datasets import load_dataset
from mem2gen.models import diffusion
from mem2gen.models.networks import build_model
from mem2gen.models.train import train
from mem2gen.runs.results import point_row
from mem2gen.runs.run import Run
from mem2gen.runs.sweep import run_sweep


def test_frechet_distance_against_scipy():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 0.5
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(c1 + c2 - 2 * np.real(sqrtm(c1 @ c2)))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-8)


@pytest.mark.slow
def test_kid_against_the_formula():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 4)) + 1.0

    def k(p, q):
        return (p @ q.T / 4 + 1) ** 3

    m = 30
    ref = ((k(x, x).sum() - np.trace(k(x, x))) / (m * (m - 1)) + (k(y, y).sum() - np.trace(k(y, y))) / (m * (m - 1))
           - 2 * k(x, y).mean())
    assert kid(x, y)[0] == pytest.approx(ref)
    same = kid(rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4)), subset_size=1000)[0]
    assert abs(same) < 0.01 < kid(x, y)[0]


@pytest.mark.slow
def test_quality_ranks_noise_poor_good_real():
    """On digits: uniform noise scores worst, then a model trained 60 steps, then one trained 600 steps,
    then real held-out digits (FD and KID both)."""
    torch.set_num_threads(1)
    x = load_dataset("digits")
    perm = np.random.default_rng(0).permutation(len(x))
    real, held = x[perm[:900]], x[perm[900:1200]]
    net = train_features(x, steps=200)

    def samples(steps):
        m = build_model(ModelSpec(kind="mlp", hidden=256, depth=2), (1, 8, 8), seed=0)
        m = train(m, x, TrainConfig(steps=steps, batch=128, lr=2e-3), progress=False).model
        return diffusion.sample(m, (300, 1, 8, 8), sampler="ddim", steps=25, seed=1).numpy()

    sets = [np.random.default_rng(2).uniform(-1, 1, (300, 1, 8, 8)).astype(np.float32), samples(60), samples(600), held]
    scores = [quality(s, real, net) for s in sets]
    fd = [q["fd"] for q in scores]
    kd = [q["kid"] for q in scores]
    assert fd == sorted(fd, reverse=True) and kd == sorted(kd, reverse=True), (fd, kd)
    assert scores[3]["fd"] == pytest.approx(scores[3]["real_fd"], rel=0.5)  # real data scores like its own floor


@pytest.mark.slow
def test_sweep_points_carry_quality_and_per_sample_flags(tmp_path):
    cfg = SweepConfig.from_dict(dict(sizes=[2, 64], n_eval=40, sample_steps=4, sample_batch=32, bootstrap_iterations=50,
                                     train={"steps": 10, "batch": 16, "checkpoint_every": 5}))
    run_sweep(cfg, tmp_path / "r", progress=False, echo=lambda *a: None)
    run = Run(tmp_path / "r")
    for p in run.points():
        q = point_row(p)
        assert q["quality_fd"] > 0 and q["quality_real_fd"] > 0
        with open(p.path / "labels.csv") as f:
            rows = list(csv.DictReader(f))
        flags = np.array([int(r["off_manifold"]) for r in rows])
        m = __import__("json").loads((p.path / "manifold.json").read_text())
        assert flags.sum() == m["all"]["off"] and len(flags) == 40
        assert p.labels.labels.shape == (40,)  # the extra columns leave the classification readable
    assert "FD (real" in (tmp_path / "r" / "report.html").read_text()
    assert (tmp_path / "r" / "samples.png").exists()
    assert "the first 12 of S_eval" in (tmp_path / "r" / "report.html").read_text()


@pytest.mark.slow
def test_classify_states_quality_beside_the_fractions(tmp_path, capsys):
    """classify scores quality by default when there are enough real items (S and --held-out), refuses
    --quality with too few, says when it was not scored, and names poor or off-data "generalized" samples."""
    from mem2gen.core.evaluate import QUALITY_MIN_REAL
    from mem2gen.io.datasets import load_dataset

    assert cli("demo", "--out", tmp_path / "d") == 0
    d = tmp_path / "d"
    train = np.load(d / "train.npy")
    data = load_dataset("digits")
    seen = {a.tobytes() for a in np.asarray(train, np.float32)}
    held = np.stack([a for a in data if np.asarray(a, np.float32).tobytes() not in seen])
    assert len(train) < QUALITY_MIN_REAL <= len(train) + len(held)
    np.save(tmp_path / "held.npy", held)
    args = ["classify", "--train", d / "train.npy", "--eval", d / "eval.npy", "--synthetic", d / "synthetic.npy",
            "--quiet"]
    capsys.readouterr()
    assert cli(*args, "--out", tmp_path / "plain") == 0  # too few real items: not scored, and said so
    cap = capsys.readouterr()
    assert "off-manifold" in cap.out and "FD" not in cap.out and "quality not scored" in cap.err
    s = json.loads((tmp_path / "plain" / "summary.json").read_text())
    assert "skipped" in s["quality"] and any("not scored" in c for c in s["caveats"])
    assert cli(*args, "--quality", "--out", tmp_path / "refused") == 2  # asked for, with too few: one line
    assert f"at least {QUALITY_MIN_REAL} real items" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    assert cli(*args, "--held-out", tmp_path / "held.npy", "--out", tmp_path / "o") == 0  # enough: scored
    cap = capsys.readouterr()
    assert "FD" in cap.out and "items of S and held-out" in cap.out
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["off_manifold"]["fraction"] == 0.0 and s["quality"]["fd"] > 0 and s["caveats"] == []
    noise = np.random.default_rng(0).integers(0, 256, (50, 1, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "noise.npy", noise)
    assert cli("classify", "--train", d / "train.npy", "--eval", tmp_path / "noise.npy", "--synthetic",
               tmp_path / "noise.npy", "--held-out", tmp_path / "held.npy", "--out", tmp_path / "o2", "--quiet") == 0
    s2 = json.loads((tmp_path / "o2" / "summary.json").read_text())
    assert s2["off_manifold"]["fraction"] >= 0.99 and s2["quality"]["fd"] > 10 * s["quality"]["fd"]
    assert any(c.startswith("poor samples") for c in s2["caveats"])
    assert any(c.startswith("generalized but off the data") for c in s2["caveats"])


def test_caveats_name_what_the_fractions_hide():
    from mem2gen.core.evaluate import caveats

    good = {"off_manifold": {"generalized": 0.01}, "quality": {"fd": 3.0, "real_fd": 2.0, "n_samples": 9,
                                                                "reference": "x"}}
    assert caveats(good) == []
    off = caveats({**good, "off_manifold": {"generalized": 0.4}})
    assert len(off) == 1 and "40%" in off[0]
    poor = caveats({**good, "quality": {**good["quality"], "fd": 5.0}})
    assert len(poor) == 1 and "2.5x" in poor[0]
    assert any("not asked for" in c for c in caveats({"off_manifold": {"generalized": None}}))
