"""Replicate models per K and model-level inference: the tests judge the models, not one model's samples."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mem2gen.core.stats import (
    bootstrap_fractions,
    exceeds,
    holm,
    model_interval,
    model_test,
    still_falling,
)
from mem2gen.io.config import SweepConfig
from mem2gen.runs.results import model_row
from mem2gen.runs.run import Run
from mem2gen.runs.sweep import run_sweep

TINY = dict(sizes=[2, 8], n_eval=30, sample_steps=3, sample_batch=32, bootstrap_iterations=50,
            quality_check=False, train={"steps": 8, "batch": 8, "checkpoint_every": 4})
quiet = dict(progress=False, echo=lambda *a: None)


def point(k, r, spurious, null_spurious, n=500):
    """A point's row as results.point_row makes it, from a spurious count and its null's count."""
    mem = n // 2
    counts = {"memorized": mem, "spurious": spurious, "generalized": n - mem - spurious}
    row = {"K": k, "replicate": r, "n_eval": n, "n_synthetic": 4 * k, "synthetic_per_K": 4.0,
           "null_n": n, "model_n_at_null": n, "null_n_synthetic": 4 * k}
    for name, c in counts.items():
        row |= {f"count_{name}": c, f"frac_{name}": c / n}
    nulls = {"memorized": 0, "spurious": null_spurious}
    for name in ("memorized", "spurious"):
        row |= {f"null_{name}": nulls[name] / n, f"null_count_{name}": nulls[name],
                f"model_count_{name}_at_null": counts[name], f"frac_{name}_at_null": counts[name] / n}
    return row


def test_overdispersed_models_are_not_a_model_level_excess():
    """(a) One model of three makes many spurious samples, two make none: each sample-level test of the
    pooled counts, and of the first model, says 'significant'; the test over the models does not."""
    reps = [point(64, 0, 50, 5), point(64, 1, 0, 5), point(64, 2, 0, 5)]
    assert exceeds(50, 500, 5, 500) < 1e-6  # the first model alone
    assert exceeds(50, 1500, 15, 1500) < 1e-4  # the pooled samples
    row = model_row(reps)
    assert row["inference"] == "models" and row["n_replicates"] == 3
    assert row["p_spurious"] > 0.2 and row["excess_lo95_spurious"] < 0 < row["excess_hi95_spurious"]
    assert row["std_spurious"] == pytest.approx(np.std([0.1, 0, 0], ddof=1))


def test_consistent_models_are_a_model_level_excess():
    """(b) Three models each above their own null by about the same amount: significant over the models,
    also after Holm over five sizes."""
    rows = [model_row([point(k, r, 30 + 3 * r, 5) for r in range(3)]) for k in (16, 32, 64, 128, 256)]
    assert all(r["p_spurious"] < 0.01 for r in rows)
    assert holm([r["p_spurious"] for r in rows]).all()
    assert model_test([0.02, 0.02, 0.02]) == pytest.approx(0.125) and model_test([0.0, 0.0]) == 1.0
    assert model_test([0.05]) is None and model_interval([0.3])["sd"] is None


def test_model_interval_covers_a_known_between_model_variance():
    """(c) Simulated sweeps with a known mean fraction μ, between-model sd τ and binomial sampling: the
    t-interval over R models covers μ in 95% ± 3 points of 600 sweeps, for R = 3 and 5. A bootstrap of
    the pooled samples, which ignores the models, covers it far less often."""
    rng = np.random.default_rng(0)
    mu, tau, n = 0.3, 0.05, 500
    for R in (3, 5):
        hit, naive = 0, 0
        for _ in range(600):
            counts = rng.binomial(n, np.clip(rng.normal(mu, tau, R), 0, 1))
            lo, hi = model_interval(counts / n)["ci95"]
            hit += lo <= mu <= hi
            total = counts.sum()
            b = bootstrap_fractions([total, R * n - total], iterations=200, seed=1)["memorized"]["ci95"]
            naive += b[0] <= mu <= b[1]
        assert 0.92 <= hit / 600 <= 0.98, (R, hit / 600)
        assert naive / 600 < 0.6, (R, naive / 600)


def test_still_falling():
    steps = np.arange(50, 3001, 50)
    flat = np.column_stack([steps, 0.05 + 1e-4 * np.random.default_rng(0).standard_normal(len(steps))])
    falling = np.column_stack([steps, 1.0 / np.sqrt(steps)])
    assert still_falling(flat) is False and still_falling(falling) is True
    assert still_falling(falling[:4]) is None


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    run = tmp_path_factory.mktemp("rep") / "run"
    res = run_sweep(SweepConfig.from_dict({**TINY, "replicates": 3}), run, **quiet)
    return run, res


@pytest.mark.slow
def test_replicates_are_points_of_their_own(replicated):
    run, res = replicated
    handle = Run(run)
    assert [p.key for p in handle.points()] == [2, "2.r1", "2.r2", 8, "8.r1", "8.r2"]
    assert all(p.state == "classified" for p in handle.points())
    p0, p1 = handle.point(8), handle.point(8, replicate=1)
    assert np.array_equal(p0.train_set, p1.train_set)  # the same S_K
    assert not np.array_equal(np.asarray(p0.eval), np.asarray(p1.eval))  # another model
    assert p0.seed("train") != p1.seed("train") and p0.seed("bootstrap") != p1.seed("bootstrap")
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert [int(r["K"]) for r in rows] == [2, 8] and {r["n_replicates"] for r in rows} == {"3"}
    assert {r["inference"] for r in rows} == {"models"}
    pts = list(csv.DictReader(open(run / "points.csv")))
    assert len(pts) == 6 and [r["replicate"] for r in pts] == ["0", "1", "2"] * 2
    for r in rows:  # the K's fraction is the mean over its models, the sd their spread
        fr = [float(p["frac_spurious"]) for p in pts if p["K"] == r["K"]]
        assert float(r["frac_spurious"]) == pytest.approx(np.mean(fr))
        assert float(r["std_spurious"]) == pytest.approx(np.std(fr, ddof=1))
    caps = json.loads((run / "capacities.json").read_text())
    assert caps["inference"] == "models"
    for key in ("MC", "SC", "GC"):  # one schema, defined or not
        b = caps["bootstrap"][key]
        assert set(b) == {"median", "ci95", "defined", "distribution"}
        assert sum(b["distribution"].values()) == pytest.approx(b["defined"], abs=1e-3)


def test_replicate_subsets_draw_another_training_set(tmp_path):
    cfg = SweepConfig.from_dict({**TINY, "replicates": 2, "replicate_subsets": True, "sizes": [2, 8]})
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text(json.dumps(cfg.to_dict()))
    run = Run(tmp_path / "r")
    a, b = run.point(8), run.point(8, replicate=1)
    assert not np.array_equal(a.train_set, b.train_set)
    assert np.array_equal(run.point(2, replicate=1).train_set, b.train_set[:2])  # nested within the replicate


@pytest.mark.slow
def test_a_run_made_before_replicates_opens_as_one_and_takes_more(replicated, tmp_path):
    """(d) A run folder whose config has no replicates key (made before they existed) is one replicate;
    asking for three adds two models per K and leaves the first ones' files as they were."""
    import shutil

    run = tmp_path / "old"
    shutil.copytree(replicated[0], run)
    for d in run.glob("points/K=*.r*"):
        shutil.rmtree(d)
    cfg = json.loads((run / "config.json").read_text())
    del cfg["replicates"], cfg["replicate_subsets"]
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "manifest.json").unlink()
    old = Run(run)
    assert old.replicates == 1 and [p.key for p in old.points()] == [2, 8]
    assert {r["inference"] for r in old.results()} == {"one model"}
    labels = (run / "points" / "K=8" / "labels.csv").read_bytes()
    run_sweep(SweepConfig.from_dict({**TINY, "replicates": 3}), run, **quiet)
    assert (run / "points" / "K=8" / "labels.csv").read_bytes() == labels
    assert (run / "results.csv").read_bytes() == (replicated[0] / "results.csv").read_bytes()


@pytest.mark.slow
def test_kill_9_during_a_replicated_sweep_then_resume(replicated, tmp_path):
    """(e) A replicated sweep killed with SIGKILL while a replicate trains, then run again: the same
    results.csv and points.csv as the uninterrupted run, byte for byte."""
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({**TINY, "replicates": 3, "train": {"steps": 400, "batch": 8, "checkpoint_every": 4}}))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "mem2gen.cli", "--threads", "1", "sweep", "--config", str(cfg), "--out", str(out),
           "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while not (out / "points" / "K=2.r1" / "state.safetensors").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "results.csv").exists()
    full = tmp_path / "full"
    run_sweep(SweepConfig.from_dict(json.loads(cfg.read_text())), full, **quiet)
    run_sweep(SweepConfig.from_dict(json.loads(cfg.read_text())), out, **quiet)
    for name in ("results.csv", "points.csv"):
        assert (out / name).read_bytes() == (full / name).read_bytes(), name


@pytest.mark.slow
def test_under_training_is_said_beside_the_capacities(replicated, capsys):
    """Eight training steps: nothing memorized at the smallest K. The table, capacities.json and the report
    say so beside the capacities and excesses they give."""
    from mem2gen.runs.report import aggregate

    run, _ = replicated
    aggregate(run)
    out = capsys.readouterr().out
    assert "WARNING (under-training): the smallest K (2) is memorized at" in out
    caps = json.loads((run / "capacities.json").read_text())
    assert caps["warnings"] and "smallest K" in caps["warnings"][0]
    page = (run / "report.html").read_text()
    assert "Under-training warning" in page
    assert "None" not in page.split("<h2>Configuration</h2>")[0]  # undetermined capacities say so, not Python's None
    assert "training time (s)" in page and "train s" not in page


@pytest.mark.slow
def test_pool_of_replicate_tables_is_the_replicated_runs_table(replicated, tmp_path, capsys):
    """`mem2gen pool` over one results table per model gives the model-level table a replicated run
    writes (round trip through points.csv split by replicate); a folder pair of other settings is refused."""
    from conftest import cli
    from mem2gen.runs.results import read_rows

    run, _ = replicated
    pts = read_rows(run / "points.csv")
    files = []
    for r in range(3):
        f = tmp_path / f"r{r}.csv"
        mine = [p for p in pts if p["replicate"] == r]
        with open(f, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(mine[0]))
            w.writeheader()
            w.writerows({k: ("" if v is None else v) for k, v in p.items()} for p in mine)
        files.append(f)
    assert cli("pool", *files, "--out", tmp_path / "pooled.csv") == 0
    assert "model-level" in capsys.readouterr().out
    got, want = read_rows(tmp_path / "pooled.csv"), read_rows(run / "results.csv")
    for g, w in zip(got, want):
        for key in ("K", "n_replicates", "frac_spurious", "sd_between_spurious", "excess_spurious", "p_spurious",
                    "lo95_memorized", "hi95_generalized"):
            assert g[key] == pytest.approx(w[key], rel=1e-9, abs=1e-12), key
    assert cli("pool", run, "--out", tmp_path / "folder.csv") == 0  # a folder's replicates are its models
    for g, w in zip(read_rows(tmp_path / "folder.csv"), want):
        assert g["p_spurious"] == pytest.approx(w["p_spurious"])
        assert g["frac_memorized"] == pytest.approx(w["frac_memorized"])
    assert cli("pool", files[0], "--out", tmp_path / "one.csv") == 2  # one table: nothing to pool
    assert cli("pool", *files, "--out", tmp_path / "pooled.csv") == 2  # never replaced
    # one model's evidence counted once: the same table twice, a byte copy, a folder with its own table
    shutil.copyfile(files[0], tmp_path / "copy.csv")
    capsys.readouterr()
    for twice in ((files[0], files[0], files[1]), (files[0], tmp_path / "copy.csv", files[1]),
                  (run, run / "points.csv"), (run, run)):
        assert cli("pool", *twice, "--out", tmp_path / "twice.csv") == 2
        assert "pool each model once" in capsys.readouterr().err and not (tmp_path / "twice.csv").exists()
    edited = [dict(r, count_spurious=r["count_spurious"]) for r in read_rows(files[0])]  # the same model, re-saved
    with open(tmp_path / "resaved.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(edited[0]) + ["note"])
        w.writeheader()
        w.writerows({**{k: ("" if v is None else v) for k, v in r.items()}, "note": "mine"} for r in edited)
    assert cli("pool", files[0], tmp_path / "resaved.csv", "--out", tmp_path / "twice.csv") == 2
    assert "the same model's results" in capsys.readouterr().err
    other = tmp_path / "other.csv"  # another setting's |S_eval|
    rows = [dict(r, n_eval=r["n_eval"] * 2) for r in read_rows(files[2])]
    with open(other, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    assert cli("pool", files[0], files[1], other, "--out", tmp_path / "mixed.csv") == 2
    assert "differ in n_eval" in capsys.readouterr().err
    no_k = tmp_path / "nok.csv"
    no_k.write_text("a,b\n1,2\n")
    assert cli("pool", files[0], no_k, "--out", tmp_path / "nok-out.csv") == 2
    assert "no K column" in capsys.readouterr().err


def test_a_model_without_generalized_samples_does_not_break_the_report_table():
    """The off-manifold share of the generalized samples is undefined for a model that made none: the K's
    model-level row takes the mean over the models that made some (None if none did), and the report's cells
    are built from it (this raised a KeyError before)."""
    from mem2gen.runs.report import display

    a, b = point(8, 0, 5, 2), point(8, 1, 5, 2)
    a |= {"off_manifold": 0.1, "off_manifold_lo95": 0.05, "off_manifold_hi95": 0.15, "generalized_off_manifold": None}
    b |= {"off_manifold": 0.2, "off_manifold_lo95": 0.1, "off_manifold_hi95": 0.3, "generalized_off_manifold": 0.4}
    row = model_row([a, b])
    assert row["generalized_off_manifold"] == pytest.approx(0.4)
    a2 = dict(a, replicate=1)
    assert model_row([a, a2])["generalized_off_manifold"] is None
    heads, cells = display([row], {"inference": "models"}, full=True)
    assert "of the generalized" in heads and cells[0][heads.index("of the generalized")] == "0.400"
