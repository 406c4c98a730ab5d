"""Training dynamics over (K, step), the τ_mem power law, interventions and `mem2gen compare`."""
import json
import shutil

import numpy as np
import pytest

from conftest import cli, finished_sweep
from mem2gen import Mem2genError
from mem2gen.analyses.dynamics import DynamicsConfig, DynamicsJob, dynamics, snapshot_steps
from mem2gen.core.stats import capacity_shift
from mem2gen.core.timescales import crossing, fit_power_law, fit_tau_mem
from mem2gen.io.config import SweepConfig, dynamics_steps, parse_grid
from mem2gen.runs.compare import compare
from mem2gen.runs.run import Run
from mem2gen.runs.sweep import run_sweep, sweep

TINY = dict(sizes=[2, 8, 40], n_eval=30, sample_steps=4, sample_batch=16, bootstrap_iterations=100,
            train={"steps": 12, "batch": 16, "checkpoint_every": 5, "save_steps": [3, 6]})
SMALL = DynamicsConfig(n_eval=20, synthetic_cap=24, loss_items=16, loss_draws=1, bootstrap_iterations=50,
                       fit_iterations=50)
quiet = dict(progress=False, echo=lambda *a: None)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return finished_sweep(tmp_path_factory, "dyn", TINY)


def test_crossing_interpolates_in_log_step():
    assert crossing([10, 100, 1000], [0.0, 0.25, 0.75], 0.5) == (pytest.approx(np.sqrt(100 * 1000)), "ok")
    assert crossing([10, 100], [0.6, 0.9], 0.5) == (10.0, "before")
    assert crossing([10, 100], [0.1, 0.2], 0.5) == (None, "never")


def test_fit_recovers_a_known_exponent():
    """τ = 7·K^1.3 exactly → a = 1.3; and from (K, step) rows whose memorized fraction is a logistic in
    log step centred on that τ, the fit recovers it within its bootstrap interval."""
    ks = np.array([8, 16, 32, 64, 128])
    a, c = fit_power_law(ks, 7 * ks ** 1.3)
    assert a == pytest.approx(1.3) and np.exp(c) == pytest.approx(7)
    steps = np.geomspace(10, 1e5, 25).round().astype(int)
    rows = []
    for k in ks:
        tau = 7 * k ** 1.3
        for s in steps:
            f = 1 / (1 + (tau / s) ** 3)
            rows.append({"K": int(k), "step": int(s), "n_eval": 2000, "frac_memorized": round(f * 2000) / 2000})
    fit = fit_tau_mem(rows, iterations=200)
    assert fit["a"] == pytest.approx(1.3, abs=0.03)
    assert fit["ci95"][0] <= 1.3 <= fit["ci95"][1] and fit["ci95"][1] - fit["ci95"][0] < 0.2
    assert fit["K"] == ks.tolist()


def test_fit_says_why_it_is_not_made():
    rows = [{"K": 8, "step": s, "n_eval": 10, "frac_memorized": f} for s, f in ((10, 0.0), (100, 1.0))]
    fit = fit_tau_mem(rows)
    assert fit["a"] is None and "two or more" in fit["reason"]


@pytest.mark.slow
def test_dynamics_rows_and_resume_after_a_kill(tiny_run, tmp_path):
    res = dynamics(tiny_run, settings=SMALL, **{"echo": lambda *a: None})
    rows = res["rows"]
    assert sorted({(r["K"], r["step"]) for r in rows}) == [(k, s) for k in (2, 8, 40) for s in (3, 6, 12)]
    for r in rows:
        assert r["count_memorized"] + r["count_spurious"] + r["count_generalized"] == 20
        assert r["n_synthetic"] == min(4 * r["K"], 24)
        assert r["train_loss"] > 0 and (r["heldout_loss"] is None) == (r["K"] == 1797)
        assert 0 <= r["null_spurious"] <= 1 and r["significant_spurious"] in (0, 1)  # the null at that K
        assert r["excess_spurious"] == pytest.approx(r["frac_spurious"] - r["null_spurious"])
        assert 0 <= r["off_manifold"] <= 1
    run = Run(tiny_run)
    # the last step's record uses the finished model: its train loss differs from the first snapshot's
    k2 = [r for r in rows if r["K"] == 8]
    assert k2[0]["train_loss"] != k2[-1]["train_loss"]
    first = (tiny_run / "dynamics.csv").read_bytes()
    # a kill: records of one point lost, one half-written temporary left behind; then resume
    killed = tmp_path / "killed"
    shutil.copytree(tiny_run, killed)
    shutil.rmtree(killed / "points" / "K=8" / "dynamics")
    (killed / "points" / "K=40" / "dynamics" / "step-12.json").unlink()
    (killed / "dynamics.csv").unlink()
    dynamics(killed, settings=SMALL, echo=lambda *a: None)
    assert (killed / "dynamics.csv").read_bytes() == first
    # the measurement is per (K, step): another K's record stays as it was (no rerun)
    assert json.loads((killed / "points" / "K=2" / "dynamics" / "step-3.json").read_text()) == \
        json.loads((tiny_run / "points" / "K=2" / "dynamics" / "step-3.json").read_text())
    assert snapshot_steps(run.point(2)) == [3, 6, 12]
    assert "Dynamics" in (tiny_run / "report.html").read_text() and (tiny_run / "dynamics.png").exists()


@pytest.mark.slow
def test_dynamics_refuses_other_settings_and_runs_without_snapshots(tiny_run, tmp_path):
    dynamics(tiny_run, settings=SMALL, echo=lambda *a: None)  # measured (or resumed: nothing to do)
    with pytest.raises(Mem2genError, match="other settings"):
        dynamics(tiny_run, settings=DynamicsConfig(n_eval=21, synthetic_cap=24, loss_items=16, loss_draws=1),
                 echo=lambda *a: None)
    plain = tmp_path / "plain"
    run_sweep(SweepConfig.from_dict({**TINY, "sizes": [2], "train": {**TINY["train"], "save_steps": []}}), plain,
              **quiet)
    with pytest.raises(Mem2genError, match="no EMA snapshots"):
        dynamics(plain, settings=SMALL, echo=lambda *a: None)
    assert cli("dynamics", plain) == 2
    assert cli("dynamics", tiny_run, "--n-eval", "0") == 2


@pytest.mark.slow
def test_dynamics_job_survives_pickling_and_fills_in_a_missing_record(tiny_run, tmp_path):
    """What an executor does with the job: pickle it (echo dropped), call it in another place; the
    unpickled job remakes exactly the record that is missing."""
    import pickle

    dynamics(tiny_run, settings=SMALL, echo=lambda *a: None)
    run = shutil.copytree(tiny_run, tmp_path / "copy")
    f = run / "points" / "K=2" / "dynamics" / "step-6.json"
    before = json.loads(f.read_text())
    f.unlink()
    job = pickle.loads(pickle.dumps(DynamicsJob(run, SMALL, echo=print)))
    assert job.echo is None and job(2)["K"] == 2
    after = json.loads(f.read_text())
    assert {k: v for k, v in after.items() if k != "seconds"} == {k: v for k, v in before.items() if k != "seconds"}


def test_presets_keep_snapshots_for_the_map():
    from mem2gen.io.config import SWEEP_PRESETS

    steps = SWEEP_PRESETS["quick"].train.save_steps
    assert steps == dynamics_steps(3000) and len(steps) == 5 and steps[0] >= 3000 // 32 and steps[-1] < 3000
    assert all(b / a == pytest.approx(2, rel=0.02) for a, b in zip(steps, steps[1:]))


# --- interventions ---------------------------------------------------------------------------------

def test_training_knobs_change_training_and_are_validated():
    import torch

    from mem2gen.io.config import ModelSpec, TrainConfig
    from mem2gen.models.networks import build_model
    from mem2gen.models.train import train

    x = (np.random.default_rng(0).random((16, 1, 8, 8)) * 255).astype(np.uint8)

    def final(**kw):
        m = build_model(ModelSpec(kind="mlp", hidden=16, depth=1), (1, 8, 8), seed=0)
        train(m, x, TrainConfig(steps=10, batch=8, **kw), progress=False)
        return torch.cat([p.flatten() for p in m.parameters()])

    base = final()
    assert torch.equal(base, final(weight_decay=0.0, data_noise=0.0))  # 0 is exactly the paper's training
    wd = final(weight_decay=0.5)
    assert not torch.equal(base, wd) and wd.norm() < base.norm()  # decoupled decay shrinks the weights
    assert not torch.equal(base, final(data_noise=0.2))
    for bad in ({"weight_decay": -1}, {"data_noise": float("inf")}, {"save_steps": (0,)}, {"save_steps": (99,)}):
        with pytest.raises(Mem2genError):
            TrainConfig(steps=10, **bad)


def test_parse_grid():
    assert parse_grid("model.dropout=0,0.1") == ("model.dropout", [0, 0.1])
    assert parse_grid({"train.weight_decay": [0.0, 0.01]}) == ("train.weight_decay", [0.0, 0.01])
    for bad in ("model.dropout", "x=1,1", {"a": [1], "b": [2]}, "sizes=2,3"):
        with pytest.raises(Mem2genError):
            parse_grid(bad)


@pytest.mark.slow
def test_grid_sweep_then_compare(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({k: v for k, v in TINY.items()} | {"sizes": [2, 8]}))
    res = sweep(config_file=cfg, grid="model.dropout=0,0.5", out=tmp_path / "g", **quiet)
    assert {p.name for p in (tmp_path / "g").iterdir()} == {"model.dropout=0", "model.dropout=0.5", "compare"}
    assert Run(tmp_path / "g" / "model.dropout=0.5").config.model.dropout == 0.5
    table = res["runs"]
    assert table[0]["label"].endswith("(reference)") and "model.dropout=0.5" in table[1]["label"]
    # against itself nothing moves
    assert all(table[0][f"{c}_shift_significant"] == 0 for c in ("MC", "SC", "GC"))
    assert (tmp_path / "g" / "compare" / "compare.png").exists()
    # a rerun resumes every member (nothing retrained) and refuses a changed member config up front
    sweep(config_file=cfg, grid="model.dropout=0,0.5", out=tmp_path / "g", **quiet)
    with pytest.raises(Mem2genError, match="another config"):
        sweep(config_file=cfg, grid="model.dropout=0,0.5", out=tmp_path / "g", overrides={"n_eval": 31}, **quiet)


@pytest.mark.slow
def test_grid_over_a_knob_that_changes_nothing_is_refused(tmp_path):
    """A grid whose sweeps would all be the same is refused before any folder exists: MLP knobs on a
    U-Net, the U-Net architecture on an MLP, η without DDIM, training knobs with brought models, and
    train.seed (a sweep sets it per point); seed itself varies the models and their samples."""
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(TINY | {"sizes": [2]}))
    for grid, overrides, msg in (
            ("model.arch=mnist,cifar10", {}, "names a U-Net; this model is kind mlp"),
            ("eta=0,1", {}, "only DDIM reads it"), ("train.seed=0,1", {}, "set seed instead"),
            ("model.hidden=8,16", {"model": {"kind": "unet", "arch": "digits-small"}},
             "shapes MLPs; this model is kind unet"),
            ("train.steps=2,4", {"checkpoints": str(tmp_path)}, "the models come from checkpoints")):
        with pytest.raises(Mem2genError, match=msg):
            sweep(config_file=cfg, grid=grid, overrides=overrides, out=tmp_path / "g", **quiet)
        assert not (tmp_path / "g").exists()
    sweep(config_file=cfg, grid="seed=0,1", out=tmp_path / "s", **quiet)
    a, b = (np.load(tmp_path / "s" / f"seed={v}" / "points" / "K=2" / "eval.npy") for v in (0, 1))
    assert a.shape == b.shape and not np.array_equal(a, b)


@pytest.mark.slow
def test_compare_refuses_runs_on_different_datasets(tiny_run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    d = json.loads((tiny_run / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**d, "data": "mnist5k"}))
    with pytest.raises(Mem2genError, match="differ in data"):
        compare([tiny_run, other], out=tmp_path / "c", echo=lambda *a: None)
    assert cli("compare", tiny_run, other, "--out", tmp_path / "c2") == 2
    assert not (tmp_path / "c2").exists()
    assert cli("compare", tiny_run, "--out", tmp_path / "c3") == 2


def test_replicates_are_judged_over_models_not_samples():
    """Runs differing only in seed (and name, device, sizes) are replicates of one setting; a change
    between settings with replicates is judged by a pooled t-test over the models' fractions
    (reference: the textbook formula), which a seed-to-seed spread can make insignificant where the
    bootstrap of one model each calls it moved."""
    from scipy.stats import t as student

    from mem2gen.runs.compare import fraction_shifts, replicate_groups

    base = {"data": "digits", "seed": 0, "name": "a", "model": {"hidden": 512}}
    cfgs = [base, base | {"seed": 1, "name": "b", "sizes": [2]}, base | {"model": {"hidden": 128}},
            base | {"model": {"hidden": 128}, "seed": 5}, base | {"seed": 2}]
    assert replicate_groups(cfgs) == [[0, 1, 4], [2, 3]]

    def run(mem):
        rows = [{"K": 8, "count_memorized": mem, "count_spurious": 0, "count_generalized": 100 - mem},
                {"K": 32, "count_memorized": 0, "count_spurious": 0, "count_generalized": 100}]
        return [r | {f"frac_{n}": r[f"count_{n}"] / 100 for n in ("memorized", "spurious", "generalized")}
                for r in rows]

    curves = [(f"r{i}", run(m)) for i, m in enumerate((90, 80, 70, 50, 60))]
    groups = [[0, 1, 2], [3, 4]]
    k8, k32 = fraction_shifts(curves, groups=groups, names=["ref", "", "", "narrow", ""], iterations=300)
    assert (k8["label"], k8["test"], k8["models"]) == ("narrow", "t over models", "2 vs 3")
    sp2 = (2 * np.var([0.9, 0.8, 0.7], ddof=1) + np.var([0.5, 0.6], ddof=1)) / 3
    half = student.ppf(0.975, 3) * np.sqrt(sp2 * (1 / 2 + 1 / 3))
    assert k8["memorized_change"] == pytest.approx(-0.25)
    assert (k8["memorized_lo95"], k8["memorized_hi95"]) == (pytest.approx(-0.25 - half, abs=1e-4),
                                                            pytest.approx(-0.25 + half, abs=1e-4))
    assert k8["memorized_significant"] == 0 and k32["memorized_significant"] == 0 and k32["memorized_change"] == 0
    alone = fraction_shifts([curves[0], curves[3]], iterations=300)[0]  # one model each: the bootstrap
    assert alone["test"] == "bootstrap" and alone["memorized_significant"] == 1


def test_capacity_shift_known_answers():
    a = np.full(100, 32.0)
    assert capacity_shift(a, np.full(100, 128.0)) == {"log2_ratio": 2.0, "ci95": [2.0, 2.0], "significant": True,
                                                      "defined": 1.0}
    same = capacity_shift(a, np.where(np.arange(100) % 2, 32.0, 64.0))
    assert not same["significant"] and same["ci95"] == [0.0, 1.0]
    assert capacity_shift(a, np.full(100, np.nan))["log2_ratio"] is None


def test_fraction_shifts_known_answers():
    from mem2gen.runs.compare import fraction_shifts

    def rows(counts):
        return [{"K": k, **{f"count_{n}": c for n, c in zip(("memorized", "spurious", "generalized"), cs)}}
                for k, cs in counts.items()]

    ref = ("ref", rows({8: (90, 5, 5), 32: (50, 0, 50)}))
    other = ("other", rows({8: (50, 5, 45), 32: (50, 0, 50), 64: (0, 0, 100)}))
    out = fraction_shifts([ref, other], iterations=500)
    assert [r["K"] for r in out] == [8, 32]  # only the sizes both have
    k8, k32 = out
    assert k8["memorized_change"] == pytest.approx(-0.4) and k8["memorized_significant"] == 1
    assert k8["spurious_change"] == 0 and k8["spurious_significant"] == 0
    assert all(k32[f"{n}_significant"] == 0 for n in ("memorized", "spurious", "generalized"))


def _crossings(a, ks, *, c=20.0, reps=3, noise=0.15, seed=0, steps=(93, 187, 375, 750, 1500, 3000)):
    """(K, replicate, step) rows whose memorized fraction jumps from 0 to 1 at τ = c·K^a·exp(noise·N(0, 1))."""
    import math

    rng = np.random.default_rng(seed)
    rows = []
    for k in ks:
        for r in range(reps):
            tau = c * k ** a * math.exp(noise * rng.standard_normal())
            rows += [{"K": k, "replicate": r, "step": s, "frac_memorized": float(s >= tau)} for s in steps]
    return rows


@pytest.mark.parametrize("a", [1.0, 0.5])
def test_censored_fit_finds_a_known_exponent(a):
    """Crossings with a known exponent, some sizes crossing before the first snapshot or after the last:
    every model is used (none dropped), and the profile interval holds the true exponent."""
    from mem2gen.core.timescales import censored_units, fit_censored

    units = censored_units(_crossings(a, [2, 8, 32, 128, 512] if a == 1 else [2, 32, 512, 8192, 131072]))
    assert len(units) == 15 and {u["status"] for u in units} >= {"interval"}
    assert any(u["status"] != "interval" for u in units)  # censored sizes are in the fit
    fit = fit_censored(units)
    assert fit["n_units"] == 15
    assert fit["ci95"][0] <= a <= fit["ci95"][1] and abs(fit["a"] - a) < 0.2


@pytest.mark.slow
def test_censored_sizes_narrow_the_exponent():
    """τ(2) < 93 and τ(128) > 3,000 beside two bracketed sizes: dropping the censored sizes leaves a wide
    interval; keeping them excludes slopes that would put τ(128) before 3,000 or τ(2) after 93."""
    from mem2gen.core.timescales import fit_censored

    inner = [{"K": 8, "lo": 187.0, "hi": 375.0, "status": "interval"},
             {"K": 32, "lo": 750.0, "hi": 1500.0, "status": "interval"}]
    both = inner + [{"K": 2, "lo": None, "hi": 93.0, "status": "left"},
                    {"K": 128, "lo": 3000.0, "hi": None, "status": "right"}]
    wide, narrow = fit_censored(inner), fit_censored(both)
    assert narrow["n_left"] == 1 and narrow["n_right"] == 1
    assert narrow["ci95"][0] > wide["ci95"][0] or wide["ci95"][0] is None
    assert 0.5 <= narrow["ci95"][0] <= 1.0 <= narrow["ci95"][1]


@pytest.mark.slow
def test_dynamics_over_replicates_is_model_level(tmp_path_factory):
    """With --replicates every model of each K is measured at each snapshot against its own null; the
    model-level table has one row per (K, step) over both models, with both forms of the excess, and
    the censored τ_mem fit counts every model."""
    import csv

    run = finished_sweep(tmp_path_factory, "dynrep", {**TINY, "sizes": [8, 40], "replicates": 2})
    res = dynamics(run, settings=SMALL, replicates=True, **{k: v for k, v in quiet.items() if k == "echo"})
    rows = res["rows"]
    assert {(r["K"], r["replicate"]) for r in rows} == {(8, 0), (8, 1), (40, 0), (40, 1)}
    a = [r for r in rows if r["K"] == 8 and r["step"] == 6]
    assert a[0]["train_loss"] != a[1]["train_loss"]  # two models
    models = list(csv.DictReader(open(run / "dynamics-models.csv")))
    assert len(models) == 2 * 3 and {m["n_models"] for m in models} == {"2"}
    for m in models:
        pair = [r for r in rows if r["K"] == int(m["K"]) and r["step"] == int(m["step"])]
        assert float(m["frac_memorized"]) == pytest.approx(np.mean([r["frac_memorized"] for r in pair]))
        assert float(m["excess_spurious"]) == pytest.approx(np.mean([r["excess_spurious"] for r in pair]))
        assert "excess_spurious_nonmem" in m
    assert res["fit_censored"]["n_units"] == 4
