import csv
import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
import torch

from conftest import cli
from mem2gen import Mem2genError, Run, classify
from mem2gen.core.stats import LABELS, capacities, capacity_bootstrap
from mem2gen.io.config import SWEEP_PRESETS, SweepConfig, load_config
from mem2gen.io.datasets import DATASETS
from mem2gen.io.sizes import PAPER_POINTS, doubling, paper, resolve
from mem2gen.models.networks import build_model
from mem2gen.runs.executors import Devices
from mem2gen.runs.point import run_point
from mem2gen.runs.results import point_row
from mem2gen.runs.sweep import prepare, run_sweep, update_manifest

TINY = dict(sizes=(2, 8, 40), n_eval=40, sample_steps=4, sample_batch=16, bootstrap_iterations=200,
            train={"steps": 12, "batch": 16, "checkpoint_every": 5})
quiet = dict(progress=False, echo=lambda *a: None)


def tiny_cfg(**kw):
    return SweepConfig.from_dict({**TINY, **kw})


def same_results(a, b) -> None:
    """Two runs' results.csv agree: every column bit for bit, except the quality scores (FD/KID), whose
    last float64 digits follow the BLAS's summation order in the process that made them (to 1e-6)."""
    ra, rb = (list(csv.DictReader(open(p / "results.csv"))) for p in (a, b))
    assert len(ra) == len(rb) and ra[0].keys() == rb[0].keys()
    for x, y in zip(ra, rb):
        for key in x:
            if key == "model_digest":  # the weights' identity: their last bits follow the threads that trained them
                continue
            if key.startswith("quality_"):
                assert float(x[key]) == pytest.approx(float(y[key]), rel=1e-6), key
            else:
                assert x[key] == y[key], key


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
    with pytest.raises(Mem2genError, match=">= 2"):
        resolve([1, 5], 100)


def test_capacities_known_curve():
    K = [2, 10, 100, 1000]
    caps = capacities(K, [1.0, 0.97, 0.2, 0.0], [0.0, 0.02, 0.5, 0.01], [0.0, 0.01, 0.3, 0.99], tol=0.05)
    assert {k: caps[k] for k in ("MC", "SC", "GC", "tol", "reasons")} == {"MC": 10, "SC": 100, "GC": 1000, "tol": 0.05,
                                                                           "reasons": {}}
    assert caps["mc_bracket"]["text"] == "MC in [10, 100)" and caps["gc_bracket"]["text"] == "GC in (100, 1000]"
    assert capacities(K, [0.5] * 4, [0.1] * 4, [0.4] * 4)["MC"] is None


def test_noise_is_not_named_the_generalization_capacity():
    """A K whose 'generalized' samples are mostly off the data (eq 6 calls noise generalized) is never GC: the
    next on-data K is, and with none the reason says why."""
    K = [2, 10, 100, 1000]
    mem, spu, gen = [1.0, 0.3, 0.0, 0.0], [0.0, 0.2, 0.02, 0.01], [0.0, 0.5, 0.98, 0.99]
    assert capacities(K, mem, spu, gen)["GC"] == 100
    assert capacities(K, mem, spu, gen, off_data=[False, False, True, False])["GC"] == 1000
    caps = capacities(K, mem, spu, gen, off_data=[False, False, True, True])
    assert caps["GC"] is None and "off the data" in caps["reasons"]["GC"]


def test_the_phase_figure_keeps_legends_and_warnings_off_the_curves():
    """The legends sit right of both panels and the warnings under them, inside the figure, overlapping
    nothing (the report's figure, measured on the drawn artists rather than by eye)."""
    from mem2gen.core.plots import phase_figure, pyplot

    rows = []
    for k, (m, s, g) in zip([2, 8, 32, 128], [(1, 0, 0), (0.6, 0.3, 0.1), (0.1, 0.3, 0.6), (0, 0.02, 0.98)]):
        r = {"K": k, "replicate": 0, "n_replicates": 1, "null_spurious": 0.02, "null_lo95_spurious": 0.01,
             "null_hi95_spurious": 0.03, "frac_spurious_at_null": s, "significant_spurious": s > 0.1,
             "frac_spurious_nonmem_at_null": s, "null_spurious_nonmem": 0.02, "generalized_off_manifold": 0.9}
        for name, v in zip(("memorized", "spurious", "generalized"), (m, s, g)):
            r |= {f"frac_{name}": v, f"lo95_{name}": max(0, v - 0.05), f"hi95_{name}": min(1, v + 0.05)}
        rows.append(r)
    fig = phase_figure(rows, {"MC": 2, "SC": 8, "GC": None, "warnings": ["x"]})
    fig.canvas.draw()
    rend = fig.canvas.get_renderer()
    axes = [a.get_window_extent(rend) for a in fig.axes]
    legends = [a.get_legend().get_window_extent(rend) for a in fig.axes]
    notes = [t.get_window_extent(rend) for t in fig.texts]
    box = fig.bbox
    assert len(notes) == 2  # off-manifold and under-training
    for b in legends + notes:
        assert box.x0 <= b.x0 and b.x1 <= box.x1 and box.y0 <= b.y0 and b.y1 <= box.y1  # not clipped
        assert not any(b.overlaps(a) for a in axes)
    assert not any(a.overlaps(b) for i, a in enumerate(legends + notes) for b in (legends + notes)[i + 1:])
    pyplot().close(fig)


def test_capacity_bootstrap_known_answers():
    """Counts far from every threshold give the same capacities in every draw; a borderline point
    moves MC in about half of them; a capacity never reached is undefined."""
    K = [2, 10, 100, 1000]
    clear = np.array([[1000, 0, 0], [990, 5, 5], [100, 800, 100], [0, 0, 1000]])
    b = capacity_bootstrap(K, clear, tol=0.05, iterations=300)
    assert b["MC"] == {"median": 10.0, "ci95": [10.0, 10.0], "defined": 1.0, "distribution": {"10": 1.0}}
    assert b["SC"]["median"] == 100 and b["GC"]["median"] == 1000 and b["GC"]["defined"] == 1.0
    border = clear.copy()
    border[1] = [950, 25, 25]  # P(mem) exactly 1 − tol: MC is 10 or 2 with roughly equal odds
    b = capacity_bootstrap(K, border, tol=0.05, iterations=1000, seed=1)
    assert b["MC"]["ci95"] == [2.0, 10.0] and b["MC"]["defined"] == 1.0
    d = b["MC"]["distribution"]
    assert set(d) == {"2", "10"} and sum(d.values()) == pytest.approx(1) and 0.3 < d["10"] < 0.7
    none = np.array([[500, 0, 500]] * 4)
    assert capacity_bootstrap(K, none, iterations=50)["MC"] == {"median": None, "ci95": None, "defined": 0.0,
                                                                  "distribution": {}}


def test_capacity_bootstrap_over_models_known_answer():
    """With three models per K the draws resample models: at K = 10 two models memorize everything and
    one nothing, so the mean over three drawn models reaches 1 − tol only when all three are memorizers,
    (2/3)^3 = 8/27 of the draws; the labels of one pooled model would put MC at 2 in every draw."""
    K = [2, 10, 100, 1000]
    one = np.array([[1000, 0, 0], [990, 5, 5], [100, 800, 100], [0, 0, 1000]])
    three = np.repeat(one[:, None, :], 3, axis=1)
    three[1] = [[1000, 0, 0], [1000, 0, 0], [0, 0, 1000]]
    d = capacity_bootstrap(K, three, tol=0.05, iterations=4000, seed=3)["MC"]["distribution"]
    assert set(d) == {"2", "10"} and d["10"] == pytest.approx(8 / 27, abs=0.025)
    pooled = three.sum(axis=1)  # 2000 memorized of 3000: 67%, never 95%
    assert capacity_bootstrap(K, pooled, tol=0.05, iterations=200)["MC"]["distribution"] == {"2": 1.0}


def test_config_file_and_bad_configs(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: quick\nn_eval: 77\ntrain: {steps: 5}\nsizes: [2, 4]\n")
    cfg = load_config(None, f)
    assert cfg.n_eval == 77 and cfg.train.steps == 5 and cfg.train.lr == SWEEP_PRESETS["quick"].train.lr
    assert load_config("quick", overrides={"train.steps": 9, "n_eval": None}).train.steps == 9
    for text, msg in [("n_evals: 3\n", "unknown config key"), ("train: {stepz: 3}\n", "unknown train key"),
                      ("delta_s: 0.7\n", "delta_s"), (": : :\n  - [", "not valid YAML"),
                      ("model: {kind: unet, arch: nope}\n", "unknown U-Net architecture"),
                      ("train: {lr: .inf}\n", "train.lr = inf"), ("name: ../../x\n", "plain folder name")]:
        f.write_text(text)
        with pytest.raises(Mem2genError, match=msg):
            load_config(None, f)
    assert SweepConfig.from_dict(SWEEP_PRESETS["mnist5k"].to_dict()) == SWEEP_PRESETS["mnist5k"]


def test_presets_derive_from_the_registry():
    for name, d in DATASETS.items():
        if not d.schedule:
            continue
        p = SWEEP_PRESETS[f"paper-{name}"]
        assert (p.distance, p.delta_s, p.synthetic_factor, p.train.steps, p.train.batch, p.model.arch) == (
            d.distance, d.delta_s, d.synthetic_factor, d.train_steps, d.batch, d.arch)
        assert p.sample_steps == 1000 and p.n_eval == 10_000
    assert SWEEP_PRESETS["quick"].delta_s == DATASETS["digits"].delta_s
    sp = SWEEP_PRESETS["spurious"]  # the quick preset's model on a finer grid with a larger |S'|
    quick_train = SWEEP_PRESETS["quick"].train
    assert (sp.model, sp.train, sp.sample_steps) == (SWEEP_PRESETS["quick"].model,
                                                     dataclasses.replace(quick_train, save_steps=()), 250)
    assert len(sp.sizes) == 13 and sp.n_synthetic(64) == 1024 and sp.n_synthetic(512) == 2048 and sp.n_eval == 1000


def test_config_of_an_earlier_version_reads_the_same():
    old = SWEEP_PRESETS["mnist5k"].to_dict()
    old["model"] = {"kind": "unet", "preset": "mnist-small", "width": 1.0, "hidden": 512, "depth": 3, "dropout": None}
    assert SweepConfig.from_dict(old) == SWEEP_PRESETS["mnist5k"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("sweep") / "full"
    res = run_sweep(tiny_cfg(), run, **quiet)
    return run, res


@pytest.mark.slow
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
    html = (run / "report.html").read_text()
    assert "data:image/png;base64" in html and "http" not in html.split("<body>")[1].split("Versions")[0]
    assert "<title>mem2gen sweep full (config " in html  # the run's folder names the page
    grids = [h.split(":")[0] for h in html.split("<h3>")[1:]]
    assert len(grids) == len(set(grids)), grids  # one neighbour grid per K, even when two roles fall on it
    assert all(f"<em>{w}</em>" in html for w in ("memorized", "spurious", "generalized", "null", "excess"))
    assert all(s == "classified" for _, s in Run(run).status())
    # 12 training steps: the samples are noise, which eq 6 calls "generalized"; the off-manifold check says so
    for r in res["rows"]:
        assert r["frac_generalized"] == 1.0 and r["off_manifold"] >= 0.9 and r["generalized_off_manifold"] >= 0.9
    assert "WARNING" in html and (run / "points" / "K=8" / "manifold.json").exists()


@pytest.mark.slow
def test_run_handle_reopens_every_point_exactly(uninterrupted):
    """Each point's labels are what classifying its saved S_eval against its S_K and S' gives now,
    results.csv holds those counts, and the handle's parts are the sweep's own."""
    path, res = uninterrupted
    run = Run(path)
    rows = list(csv.DictReader(open(path / "results.csv")))
    assert [int(r["K"]) for r in rows] == run.sizes == [2, 8, 40]
    data = run.dataset
    perm = np.random.default_rng(3407).permutation(len(data))
    for row, p in zip(rows, run.points()):
        np.testing.assert_array_equal(p.train_set, data[perm[:p.k]])
        assert p.eval.shape == (40, 1, 8, 8) and p.synthetic.shape == (4 * p.k, 1, 8, 8)
        again = classify(p.eval, p.train_set, p.synthetic, distance="l2", delta_m=1 / 3, delta_s=0.28)
        lab = p.labels
        np.testing.assert_array_equal(lab.labels, again.labels)
        np.testing.assert_array_equal(lab.d_train, again.d_train)  # every k distance, bit for bit
        np.testing.assert_array_equal(lab.i_syn, again.i_syn)
        np.testing.assert_array_equal(lab.ratio_s, again.ratio_s)
        assert [int(row[f"count_{n}"]) for n in LABELS] == np.bincount(again.labels, minlength=3).tolist()
        want = {k: v for k, v in point_row(p).items() if k != "replicate"}
        want |= {"n_replicates": 1, "inference": "one model"}
        assert want == {key: type(want[key])(v) for key, v in row.items()}
        x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 800])
        assert p.model(x, t).shape == (2, 1, 8, 8)
    assert run.results() == res["rows"]
    with pytest.raises(Mem2genError, match="no point K=5"):
        run.point(5)


@pytest.mark.slow
def test_run_of_an_earlier_version_opens(uninterrupted, tmp_path):
    """config.json with `model.preset` and labels.csv with only d_train1, d_train2, d_syn1 (as written
    before the handles existed): the handle opens it; distances not on file read as NaN."""
    full, _ = uninterrupted
    old = tmp_path / "old"
    shutil.copytree(full, old)
    cfg = json.loads((old / "config.json").read_text())
    cfg["model"]["preset"] = cfg["model"].pop("arch")
    (old / "config.json").write_text(json.dumps(cfg))
    f = old / "points" / "K=8" / "labels.csv"
    rows = list(csv.reader(open(f)))
    keep = [j for j, h in enumerate(rows[0]) if not (h.startswith("d_train") and h not in ("d_train1", "d_train2"))
            and not (h.startswith("d_syn") and h != "d_syn1")]
    f.write_text("\n".join(",".join(r[j] for j in keep) for r in rows) + "\n")
    p, new = Run(old).point(8), Run(full).point(8)
    np.testing.assert_array_equal(p.labels.labels, new.labels.labels)
    np.testing.assert_array_equal(p.labels.d_train[:, :2], new.labels.d_train[:, :2])
    assert np.isnan(p.labels.d_train[:, 2:]).all() and p.labels.fractions == new.labels.fractions
    (old / "config.json").write_text(json.dumps({**cfg, "colour": "blue"}))
    with pytest.raises(Mem2genError, match="another version of mem2gen.*start the run again"):
        Run(old)


def test_status_claims_no_training_for_models_not_trained_here(tmp_path):
    """A point of the exact denoiser (nothing to train) is started before its model is written: its
    progress says nothing of training."""
    cfg = tiny_cfg(model={"kind": "optimal"})
    update_manifest(tmp_path, prepare(cfg, tmp_path))
    p = Run(tmp_path).point(8)
    p.path.mkdir(parents=True)
    assert p.state == "started" and p.progress == ""


@pytest.mark.slow
def test_kill_and_resume_gives_same_results(uninterrupted, tmp_path, capsys):
    """Crash inside training (K=8), inside sampling (K=40) and during classification (K=2); the
    resumed sweep reproduces the uninterrupted results.csv byte for byte."""
    import dataclasses

    from mem2gen.models.sample import generate
    from mem2gen.models.train import train as train_fn

    full, _ = uninterrupted
    path, cfg = tmp_path / "resumed", tiny_cfg()
    update_manifest(path, prepare(cfg, path))
    run = Run(path)

    def start(k, **kw):
        torch.manual_seed(123)  # the global RNG state must not matter
        p = run.point(k)
        return train_fn(build_model(cfg.model, (1, 8, 8), seed=p.seed("init")), p.train_set,
                        dataclasses.replace(cfg.train, seed=p.seed("train")), p.path, progress=False, **kw)

    start(8, stop_at=7)
    assert run.point(8).state == "started"
    model = start(40).model
    p40 = run.point(40)
    generate(model, cfg.n_eval, p40.path / "eval.npy", sampler=cfg.sampler, steps=cfg.sample_steps,
             batch=cfg.sample_batch, seed=p40.seed("eval"), progress=False, stop_after=1)
    assert p40.state == "trained" and (p40.path / "eval.npy.partial.npy").exists()
    run_point(run.point(2), progress=False)
    (run.point(2).path / "summary.json").unlink()  # as if killed while writing the classification,
    (run.point(2).path / "labels.csv.mem2gen-tmp-x").write_text("half a fi")  # with a temporary file left behind
    assert run.point(2).state == "sampled"
    capsys.readouterr()
    assert cli("status", path) == 0  # how far each interrupted stage got, from its files
    out = capsys.readouterr().out
    assert "K=8        started     training: step 7 of 12 saved" in out
    assert "K=40       trained     sampling: eval 16 of 40, synthetic 0 of 160" in out
    state = run.point(8).path / "state.safetensors"
    saved = state.read_bytes()
    state.write_bytes(b"half a checkpoint")  # unreadable: no step claimed
    assert run.point(8).progress == "training: no checkpoint saved yet"
    state.write_bytes(saved)  # the resume below starts from the real checkpoint
    run_sweep(cfg, path, **quiet)
    assert (path / "results.csv").read_text() == (full / "results.csv").read_text()
    for k in cfg.sizes:  # not only the fractions: the same weights and samples
        a, b = Run(full).point(k).path, Run(path).point(k).path
        assert (a / "model" / "model.safetensors").read_bytes() == (b / "model" / "model.safetensors").read_bytes()
        np.testing.assert_array_equal(np.load(a / "synthetic.npy"), np.load(b / "synthetic.npy"))


@pytest.mark.slow
def test_refuses_to_mix_configs(uninterrupted, tmp_path, capsys):
    run, _ = uninterrupted
    other = tmp_path / "o"
    shutil.copytree(run, other)
    with pytest.raises(Mem2genError, match="another config .differs in n_eval"):
        run_sweep(tiny_cfg(n_eval=41), other, **quiet)
    assert cli("sweep", "--sizes", "2,99999", "--out", tmp_path / "x") == 2
    assert "exceeds the dataset" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_optimal_denoiser_sweep_memorizes(tmp_path):
    """The whole pipeline with the exact ε-model of S_K (nothing trained): the ideal memorizer's
    samples are training items, so at least 99% of S_eval is labelled memorized at every K."""
    cfg = tiny_cfg(model={"kind": "optimal"}, sizes=(2, 16), n_eval=100, sample_steps=100, sample_batch=50)
    res = run_sweep(cfg, tmp_path / "opt", **quiet)
    assert [r["K"] for r in res["rows"]] == [2, 16]
    for r in res["rows"]:
        assert r["frac_memorized"] >= 0.99, r
        assert r["excess_memorized"] > 0.9 and r["significant_memorized"] == 1  # far above the real data's rate
    assert Run(tmp_path / "opt").point(16).model.__class__.__name__ == "OptimalDenoiser"
    caps = res["capacities"]
    assert caps["SC"] is None and "null" in caps["reasons"]["SC"]  # no spurious samples: no spurious capacity


def test_cli_sizes(capsys):
    assert cli("sizes", "--preset", "paper-mnist") == 0
    out = capsys.readouterr().out
    assert out.startswith("38 sizes: 2,502,1001,1500,2000,") and out.strip().endswith(",60000")
    assert cli("sizes", "--doubling", "500", "--n", "5000") == 0
    assert capsys.readouterr().out.strip() == "5 sizes: 500,1000,2000,4000,5000"
    assert cli("sizes", "--preset", "quick") == 0
    assert capsys.readouterr().out.strip() == "6 sizes: 2,8,32,128,512,1797"
    assert cli("sizes") == 2


@pytest.mark.slow
def test_submitit_local_executor(tmp_path):
    pytest.importorskip("submitit")
    run = tmp_path / "sub"
    res = run_sweep(tiny_cfg(sizes=(2, 8)), run, executor="submitit-local", **quiet)
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


@pytest.mark.slow
@pytest.mark.skipif(not _slurm_up(), reason="no running Slurm cluster (scripts/slurm-local.sh start makes one)")
def test_slurm_executor_on_a_real_cluster(tmp_path, uninterrupted):
    pytest.importorskip("submitit")
    full, _ = uninterrupted
    run = tmp_path / "slurm"
    res = run_sweep(tiny_cfg(), run, executor="slurm", **quiet,
                    slurm={"gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 2, "timeout_min": 20,
                           "account": "ci", "qos": "normal", "extra": ("comment=mem2gen-ci",)})
    assert [r["K"] for r in res["rows"]] == [2, 8, 40]
    assert list((run / "jobs").iterdir()), "submitit job folders"
    # the options reached the jobs: Slurm's own record of one of them
    import subprocess

    job = next(p.name for p in (run / "jobs").iterdir() if p.name.split("_")[0].isdigit()).split("_")[0]
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    script = next((run / "jobs").glob("*/*_submission.sh")).read_text()
    for line in ("--account=ci", "--qos=normal", "--comment=mem2gen-ci", "--cpus-per-task=1", "--mem=2GB",
                 "--time=20", "--signal=USR2@90"):
        assert f"#SBATCH {line}" in script, line
    if shown:  # while Slurm still remembers the job
        assert "Account=ci" in shown and "TimeLimit=00:20:00" in shown and "Comment=mem2gen-ci" in shown
    # same numbers as the local run: the points do not depend on where they ran
    same_results(run, full)


@pytest.mark.slow
def test_local_parallel_devices(uninterrupted, tmp_path):
    """Several devices: one worker process each (two CPU 'devices' here), same results as sequential."""
    full, _ = uninterrupted
    run = tmp_path / "par"
    said = []
    res = run_sweep(tiny_cfg(), run, devices=["cpu", "cpu"], progress=False, echo=said.append)
    assert [r["K"] for r in res["rows"]] == [2, 8, 40]
    same_results(run, full)
    assert f"each point's progress: mem2gen status {run}" in said  # no progress bars from the workers


class DieAt:
    """A job whose process dies (as if killed) at one K."""

    def __init__(self, k):
        self.k = k

    def __call__(self, k, device=None):
        if k == self.k:
            os._exit(9)
        return {"K": k, "device": device}


@pytest.mark.slow
def test_dead_worker_fails_its_point_without_hanging():
    ex = Devices(["cpu", "cpu"], echo=lambda *a: None, poll_s=0.1, grace_s=0.5)
    got = []
    with pytest.raises(Mem2genError, match=r"K=8: the worker on cpu died \(exit code 9\)"):
        for r in ex.map(DieAt(8), [2, 8, 32, 64]):
            got.append(r["K"])
    assert sorted(got) == [2, 32, 64]  # the other worker finished the rest
    with pytest.raises(Mem2genError, match=r"K=2: the worker on cpu died.*K=\[3\]: not run"):
        list(Devices(["cpu"], echo=lambda *a: None, poll_s=0.1, grace_s=0.5).map(DieAt(2), [2, 3]))


@pytest.mark.slow
def test_landscape_command_on_a_sweep(uninterrupted, tmp_path, capsys):
    full, _ = uninterrupted
    run = tmp_path / "land"
    shutil.copytree(full, run)
    args = ("landscape", run, "--n-samples", "6", "--trials", "2", "--steps", "3", "--quiet")
    assert cli(*args) == 0
    for k in (2, 8, 40):
        r = json.loads((run / "points" / f"K={k}" / "landscape.json").read_text())
        assert r["K"] == k and len(r["recovery"]["training item"]["t_c"]) == min(6, k)
        assert r["census"]["curve"][-1]["m"] == 4 * k and r["census"]["n_attractors"] >= 1
        assert (run / "points" / f"K={k}" / "landscape.png").exists()
    assert "<h2>Landscape</h2>" in (run / "report.html").read_text() and (run / "landscape.png").exists()
    capsys.readouterr()
    assert cli(*args) == 0 and capsys.readouterr().out.count("up to date") == 3  # finished points are reused
    assert cli("landscape", run, "--sizes", "5") == 2
    assert "no point K=5" in capsys.readouterr().err


@pytest.mark.slow
def test_attractor_study_command_on_a_sweep(uninterrupted, tmp_path, capsys):
    full, _ = uninterrupted
    run = tmp_path / "att"
    shutil.copytree(full, run)
    args = ("landscape", run, "--attractors", "--sizes", "8,40", "--ts", "5,50", "--per-group", "3",
            "--n-synthetic", "16", "--trials", "2", "--steps", "3")
    assert cli(*args) == 0
    census = list(csv.DictReader(open(run / "attractors-census.csv")))
    assert {(r["K"], r["t"]) for r in census} == {(k, t) for k in ("8", "40") for t in ("5", "50")}
    assert {r["group"] for r in census} <= {"memorized", "spurious", "generalized", "held-out", "mixture", "S'"}
    assert all(0 <= float(r["to_training"]) <= 1 for r in census)
    summary = list(csv.DictReader(open(run / "attractors.csv")))
    assert {r["n_models"] for r in summary} == {"1"} and all(r["to_training_lo95"] == "" for r in summary)
    assert {"recovery", "lambda_min", "exact_to_training", "barrier"} <= set(summary[0])  # S' rows lack them
    points = list(csv.DictReader(open(run / "attractors-points.csv")))
    assert all(float(p["lambda_min"]) <= float(p["lambda_max"]) for p in points)
    assert (run / "points" / "K=8" / "attractors.json").exists()
    assert not (run / "points" / "K=2" / "attractors.json").exists()
    capsys.readouterr()
    before = (run / "points" / "K=40" / "attractors.json").stat().st_mtime_ns
    assert cli(*args) == 0 and "attractors in" not in capsys.readouterr().out  # finished points are reused
    assert (run / "points" / "K=40" / "attractors.json").stat().st_mtime_ns == before
    assert cli("landscape", run, "--attractors", "--groups", "spurious,ghosts") == 2
    assert "ghosts" in capsys.readouterr().err
    # the positive control and the theory window (issue's done-when), on the same tiny run
    assert cli("attractors", run, "--sizes", "40", "--ts", "5,50", "--per-group", "4", "--n-synthetic", "0",
               "--trials", "2", "--steps", "3", "--control", "planted", "--n-planted", "6", "--window") == 0
    summary = list(csv.DictReader(open(run / "attractors.csv")))
    cell = {(r["model"], int(r["t"]), r["group"]): r for r in summary}
    for t in (5, 50):
        assert float(cell[("planted control", t, "planted")]["to_training"]) <= 0.1
        assert float(cell[("exact S_K", t, "planted")]["to_training"]) >= 0.9
        assert float(cell[("exact S_K", t, "held-out")]["to_training"]) >= 0.9
    window = json.loads((run / "points" / "K=40" / "attractors.json").read_text())["window"]
    inside = {int(r["t"]) for r in summary if r["in_window"] == "True" and r["model"] == "trained"}
    assert window["ts"] and set(window["ts"]) <= inside and min(inside) >= window["t_from"]


@pytest.mark.slow
def test_attractor_census_over_training_time(tmp_path):
    """`mem2gen attractors --snapshots`: a census per (model, step), each step's groups from its own samples;
    the model-level table keeps the steps apart; the controls carry the final step."""
    run = tmp_path / "att"
    run_sweep(tiny_cfg(sizes=(8,), replicates=2, train={"steps": 12, "batch": 16, "checkpoint_every": 5,
                                                          "save_steps": [6]}), run, **quiet)
    assert cli("attractors", run, "--ts", "5", "--per-group", "3", "--n-synthetic", "8", "--trials", "1",
               "--steps", "2", "--snapshots", "--snapshot-samples", "12", "--control", "planted",
               "--n-planted", "2", "--quiet") == 0
    census = list(csv.DictReader(open(run / "attractors-census.csv")))
    trained = {(r["replicate"], r["step"]) for r in census if r["model"] == "trained"}
    assert trained == {(a, b) for a in ("0", "1") for b in ("6", "12")}
    assert {r["step"] for r in census if r["model"] != "trained"} == {"12"}
    early = [r for r in census if r["model"] == "trained" and r["step"] == "6" and r["group"] in
             ("memorized", "spurious", "generalized")]
    assert early and sum(int(r["n"]) for r in early if r["replicate"] == "0") <= 9  # ≤ per_group per label
    summary = list(csv.DictReader(open(run / "attractors.csv")))
    assert {(r["model"], r["step"]) for r in summary} >= {("trained", "6"), ("trained", "12")}
    assert {r["n_models"] for r in summary if r["model"] == "trained" and r["group"] == "held-out"} == {"2"}


@pytest.mark.slow
def test_basins_command_on_a_sweep_with_snapshots(tmp_path, capsys):
    """`mem2gen basins --snapshots`: per model, step, group and radius; model-level rows; reused on rerun."""
    run = tmp_path / "bas"
    run_sweep(tiny_cfg(sizes=(8,), replicates=2, train={"steps": 12, "batch": 16, "checkpoint_every": 5,
                                                          "save_steps": [6]}), run, **quiet)
    args = ("basins", run, "--n", "6", "--radii", "0.1,1", "--trials", "1", "--snapshots")
    assert cli(*args) == 0
    radii = list(csv.DictReader(open(run / "basins.csv")))
    assert {(r["replicate"], r["step"]) for r in radii} == {(a, b) for a in ("0", "1") for b in ("6", "12")}
    assert {r["radius"] for r in radii} == {"0.1", "1.0"} and all(0 <= float(r["p_return"]) <= 1 for r in radii)
    models = list(csv.DictReader(open(run / "basins-models.csv")))
    alls = [r for r in models if r["group"] == "all"]
    assert len(alls) == 2 and {r["n_models"] for r in alls} == {"2"} and alls[0]["basin_radius_lo95"] != ""
    capsys.readouterr()
    assert cli(*args) == 0 and capsys.readouterr().out.count("up to date") == 2
    shutil.copyfile(run / "points" / "K=8" / "basins.json", run / "points" / "K=8.r1" / "basins.json")  # another's
    assert cli(*args) == 0 and capsys.readouterr().out.count("up to date") == 1  # not taken as K=8.r1's
    assert cli("basins", run, "--radii", "0.5,0.2") == 2 and "increasing" in capsys.readouterr().err


@pytest.mark.slow
def test_calibrate_command_on_a_sweep(uninterrupted, tmp_path):
    full, _ = uninterrupted
    run = tmp_path / "cal"
    shutil.copytree(full, run)
    assert cli("calibrate", run) == 0
    r = json.loads((run / "points" / "K=8" / "calibration.json").read_text())
    assert [c["m"] for c in r["model_curve"]] == [8, 16, 32]
    assert r["model_curve"][-1]["spurious"] == Run(run).point(8).labels.fractions["spurious"]
    assert [c["m"] for c in r["null_curve"]][:3] == [8, 16, 32] and len(r["model_grid"]) == len(r["null_grid"])
    assert "<h2>Calibration</h2>" in (run / "report.html").read_text() and (run / "calibration.png").exists()
    for k in (2, 8, 40):  # every point has its null beside it
        assert json.loads((run / "points" / f"K={k}" / "null.json").read_text())["n_eval"] == 40


def test_transition_points_and_refined_schedule():
    from mem2gen.runs.sweep import refine_sizes, transition_points

    ks = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1797]
    p = [1.0, 0.99, 0.97, 0.8, 0.5, 0.2, 0.06, 0.01, 0.0, 0.0, 0.0]
    assert transition_points(ks, p) == (8, 256)
    fine = refine_sizes(8, 256, 1797)
    assert len(fine) == 38 and fine[0] == 2 and 8 in fine and 256 in fine and fine[-1] == 1797
    assert refine_sizes(2, 64, 1797)[0] == 2 and 64 in refine_sizes(2, 64, 1797)  # A at the start: no first part
    with pytest.raises(Mem2genError, match="does not fall"):
        transition_points(ks, [1.0] * len(ks))


def test_find_transition_refines_in_the_same_folder(tmp_path, monkeypatch):
    """The coarse sweep runs first, then the refined sizes in the same run folder (sizes may change there);
    the memorized fractions are stubbed so that the transition sits at K = 8 .. 32."""
    import mem2gen.runs.sweep as sw

    calls = []

    def fake(cfg, run, **kw):
        ks = list(cfg.sizes)
        calls.append(ks)
        rows = [{"K": k, "frac_memorized": 1.0 if k <= 8 else 0.5 if k < 32 else 0.0} for k in ks]
        return {"rows": rows, "capacities": {}}

    monkeypatch.setattr(sw, "run_sweep", fake)
    cfgf = tmp_path / "c.yaml"
    cfgf.write_text("sizes: [2, 4, 8, 16, 32, 64]\n")
    sw.sweep(config_file=cfgf, find_transition=True, out=tmp_path / "r", progress=False, echo=lambda *a: None)
    assert calls[0] == [2, 4, 8, 16, 32, 64]
    t = json.loads((tmp_path / "r" / "transition.json").read_text())
    assert (t["A"], t["B"]) == (8, 32) and calls[1] == t["sizes"] and set(calls[0]) < set(calls[1])
    assert cli("sweep", "--grid", "model.dropout=0,0.1", "--find-transition", "--out", tmp_path / "x") == 2


@pytest.mark.slow
def test_sweep_over_brought_models(tmp_path):
    """checkpoints: each K's model taken from a folder (K=<k>/ or <k>/) instead of trained; with the
    models of a finished sweep and the same seeds, the samples and labels are that sweep's exactly. A
    size without a model is refused before anything is written."""
    cfg = tiny_cfg(sizes=(2, 8))
    run_sweep(cfg, tmp_path / "a", **quiet)
    brought = tmp_path / "models"
    shutil.copytree(tmp_path / "a" / "points" / "K=2" / "model", brought / "K=2")
    shutil.copytree(tmp_path / "a" / "points" / "K=8" / "model", brought / "8")
    res = run_sweep(dataclasses.replace(cfg, checkpoints=str(brought)), tmp_path / "b", **quiet)
    assert [r["frac_memorized"] for r in res["rows"]] == [r["frac_memorized"] for r in Run(tmp_path / "a").results()]
    for k in (2, 8):
        assert np.array_equal(np.load(tmp_path / "a" / "points" / f"K={k}" / "eval.npy"),
                              np.load(tmp_path / "b" / "points" / f"K={k}" / "eval.npy"))
        assert np.array_equal(Run(tmp_path / "a").point(k).labels.labels, Run(tmp_path / "b").point(k).labels.labels)
    record = json.loads((tmp_path / "b" / "points" / "K=8" / "model" / "mem2gen.json").read_text())
    assert record["source"].endswith("8")
    with pytest.raises(Mem2genError, match="has no model for K = 40"):
        run_sweep(dataclasses.replace(cfg, sizes=(2, 40), checkpoints=str(brought)), tmp_path / "c", **quiet)
    assert not (tmp_path / "c").exists()
    assert cli("sweep", "--preset", "quick", "--checkpoints", tmp_path / "nowhere", "--out", tmp_path / "d") == 2
