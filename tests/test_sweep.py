import csv
import json
import shutil

import numpy as np
import pytest
import torch

from mem2gen import Mem2genError
from conftest import cli
from mem2gen.sizes import PAPER_POINTS, doubling, paper, resolve
from mem2gen.stats import capacities
from mem2gen.sweep import PRESETS, SweepConfig, load_config, point_state, run_point, run_sweep, status

TINY = dict(sizes=(2, 8, 40), n_eval=40, sample_steps=4, sample_batch=16, bootstrap_iterations=200,
            train={"steps": 12, "batch": 16, "checkpoint_every": 5})


def tiny_cfg(**kw):
    return SweepConfig.from_dict({**TINY, **kw})


@pytest.mark.parametrize("name", sorted(PAPER_POINTS))
def test_paper_schedules(name):
    start, a, b, n = PAPER_POINTS[name]
    ks = paper(a, b, n, start=start)
    assert len(ks) == 38 and ks[0] == 2 and ks[-1] == n and a in ks and b in ks
    assert ks == sorted(set(ks))
    assert ks[:5] == [2, 502, 1001, 1500, 2000]
    step = (b - a) / 29
    assert ks[5] == round(a + step)
    assert resolve({"paper": name}, n) == ks
    assert load_config(f"paper-{name}").sizes == {"paper": name}


def test_doubling_and_bad_sizes():
    assert doubling(5000) == [500, 1000, 2000, 4000, 5000]
    with pytest.raises(Mem2genError, match="exceeds the dataset"):
        resolve([2, 5000], 1797)
    with pytest.raises(Mem2genError, match="at least 2"):
        resolve([1, 5], 100)


def test_capacities_known_curve():
    K = [2, 10, 100, 1000]
    caps = capacities(K, [1.0, 0.97, 0.2, 0.0], [0.0, 0.02, 0.5, 0.01], [0.0, 0.01, 0.3, 0.99], tol=0.05)
    assert caps == {"MC": 10, "SC": 100, "GC": 1000, "tol": 0.05}
    assert capacities(K, [0.5] * 4, [0.1] * 4, [0.4] * 4)["MC"] is None


def test_config_file_and_bad_configs(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: quick\nn_eval: 77\ntrain: {steps: 5}\nsizes: [2, 4]\n")
    cfg = load_config(None, f)
    assert cfg.n_eval == 77 and cfg.train.steps == 5 and cfg.train.lr == PRESETS["quick"].train.lr
    f.write_text("n_evals: 3\n")
    with pytest.raises(Mem2genError, match="unknown config key"):
        load_config(None, f)
    f.write_text("train: {stepz: 3}\n")
    with pytest.raises(Mem2genError, match="unknown train key"):
        load_config(None, f)
    f.write_text("delta_s: 0.7\n")
    with pytest.raises(Mem2genError, match="delta_s"):
        load_config(None, f)
    f.write_text(": : :\n  - [")
    with pytest.raises(Mem2genError, match="not valid YAML"):
        load_config(None, f)
    assert SweepConfig.from_dict(PRESETS["mnist5k"].to_dict()) == PRESETS["mnist5k"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("sweep") / "full"
    res = run_sweep(tiny_cfg(), run, progress=False, echo=lambda *a: None)
    return run, res


def test_end_to_end_artifacts(uninterrupted):
    run, res = uninterrupted
    for f in ("config.json", "manifest.json", "results.csv", "capacities.json", "phase.png", "phase.pdf",
              "report.html"):
        assert (run / f).exists(), f
    for k in (2, 8, 40):
        d = run / "points" / f"K={k}"
        for f in ("model/mem2gen.json", "model/model.safetensors", "eval.npy", "synthetic.npy", "labels.csv",
                  "summary.json", "neighbors.png"):
            assert (d / f).exists(), (k, f)
        assert np.load(d / "synthetic.npy").shape[0] == 4 * k
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert [int(r["K"]) for r in rows] == [2, 8, 40]
    for r in rows:
        assert abs(sum(float(r[f"frac_{n}"]) for n in ("memorized", "spurious", "generalized")) - 1) < 1e-9
    html = (run / "report.html").read_text()
    assert "data:image/png;base64" in html and "http" not in html.split("<body>")[1].split("Versions")[0]
    assert all(s == "classified" for _, s in status(run))


def test_kill_and_resume_gives_same_results(uninterrupted, tmp_path):
    """Crash inside training (K=8), inside sampling (K=40) and during classification (K=2); the
    resumed sweep reproduces the uninterrupted results.csv byte for byte."""
    import dataclasses

    from mem2gen.data import load_dataset, nested_subset
    from mem2gen.sample import generate
    from mem2gen.sweep import _seed, point_dir, prepare, update_manifest
    from mem2gen.train import train as train_fn

    full, _ = uninterrupted
    run, cfg = tmp_path / "resumed", tiny_cfg()
    update_manifest(run, cfg, prepare(cfg, run))
    data = load_dataset("digits")

    def start(k, **kw):
        torch.manual_seed(123)  # the global RNG state must not matter
        return train_fn(cfg.model.build((1, 8, 8), seed=_seed(cfg, k, 4)), nested_subset(data, k),
                        dataclasses.replace(cfg.train, seed=_seed(cfg, k, 0)), point_dir(run, k), progress=False, **kw)

    start(8, stop_at=7)
    assert point_state(run, 8, cfg) == "started"
    model = start(40).model
    generate(model, cfg.n_eval, point_dir(run, 40) / "eval.npy", sampler=cfg.sampler, steps=cfg.sample_steps,
             batch=cfg.sample_batch, seed=_seed(cfg, 40, 1), progress=False, stop_after=1)
    assert point_state(run, 40, cfg) == "trained" and (point_dir(run, 40) / "eval.npy.partial.npy").exists()
    run_point(run, 2, progress=False)
    (point_dir(run, 2) / "summary.json").unlink()  # as if killed while writing the classification,
    (point_dir(run, 2) / "labels.csv.tmp-x").write_text("half a fi")  # with a temporary file left behind
    assert point_state(run, 2, cfg) == "sampled"
    assert cli("status", run) == 0
    run_sweep(cfg, run, progress=False, echo=lambda *a: None)
    assert (run / "results.csv").read_text() == (full / "results.csv").read_text()
    for k in cfg.sizes:  # not only the fractions: the same weights and samples
        a, b = point_dir(full, k), point_dir(run, k)
        assert (a / "model" / "model.safetensors").read_bytes() == (b / "model" / "model.safetensors").read_bytes()
        np.testing.assert_array_equal(np.load(a / "synthetic.npy"), np.load(b / "synthetic.npy"))


def test_refuses_to_mix_configs(uninterrupted, tmp_path, capsys):
    run, _ = uninterrupted
    other = tmp_path / "o"
    shutil.copytree(run, other)
    with pytest.raises(Mem2genError, match="another config"):
        run_sweep(tiny_cfg(n_eval=41), other, progress=False, echo=lambda *a: None)
    assert cli("sweep", "--sizes", "2,99999", "--out", tmp_path / "x") == 2
    assert "exceeds the dataset" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_sizes(capsys):
    assert cli("sizes", "--preset", "paper-mnist") == 0
    out = capsys.readouterr().out
    assert out.startswith("38 sizes: 2,502,1001,1500,2000,") and out.strip().endswith(",60000")


def test_submitit_local_executor(tmp_path):
    pytest.importorskip("submitit")
    run = tmp_path / "sub"
    res = run_sweep(tiny_cfg(sizes=(2, 8)), run, executor="submitit-local", progress=False, echo=lambda *a: None)
    assert [r["K"] for r in res["rows"]] == [2, 8]
    man = json.loads((run / "manifest.json").read_text())
    assert all(p["state"] == "classified" and "train_s" in p for p in man["points"].values())


def _slurm_up() -> bool:
    import shutil as sh
    import subprocess

    if not sh.which("sbatch") or not sh.which("sinfo"):
        return False
    p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return p.returncode == 0 and "idle" in p.stdout


@pytest.mark.skipif(not _slurm_up(), reason="no running Slurm cluster (scripts/slurm-local.sh start makes one)")
def test_slurm_executor_on_a_real_cluster(tmp_path, uninterrupted):
    pytest.importorskip("submitit")
    full, _ = uninterrupted
    run = tmp_path / "slurm"
    res = run_sweep(tiny_cfg(), run, executor="slurm", progress=False, echo=lambda *a: None,
                    slurm={"gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 2, "timeout_min": 20})
    assert [r["K"] for r in res["rows"]] == [2, 8, 40]
    assert list((run / "jobs").iterdir()), "submitit job folders"
    # same numbers as the local run: the points do not depend on where they ran
    assert (run / "results.csv").read_text() == (full / "results.csv").read_text()


def test_local_parallel_devices(uninterrupted, tmp_path):
    """Several devices: one worker process each (two CPU 'devices' here), same results as sequential."""
    full, _ = uninterrupted
    run = tmp_path / "par"
    res = run_sweep(tiny_cfg(), run, progress=False, echo=lambda *a: None, devices=["cpu", "cpu"])
    assert [r["K"] for r in res["rows"]] == [2, 8, 40]
    assert (run / "results.csv").read_text() == (full / "results.csv").read_text()
