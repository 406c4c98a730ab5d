"""Nothing lost, nothing silently wrong: safe overwrite, records and checks on resume, locks, early
validation, no tracebacks. One test per case a careful or adversarial user tried, and a fuzz of every
numeric option of every command."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import pytest

from conftest import cli, finished_sweep
from mem2gen import Mem2genError
from mem2gen.commands.options import Numbers, Ratio
from mem2gen.io.config import SweepConfig
from mem2gen.io.files import MARKER, run_lock
from mem2gen.runs.run import Run
from mem2gen.runs.sweep import run_sweep
from mem2gen.runs.verify import verify
from test_cli import ALL

TINY = dict(sizes=[2, 8], n_eval=20, sample_steps=3, sample_batch=16, bootstrap_iterations=50,
            null_calibration=False, manifold_check=False, quality_check=False,
            train={"steps": 6, "batch": 8, "checkpoint_every": 3})
quiet = dict(progress=False, echo=lambda *a: None)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return finished_sweep(tmp_path_factory, "rel", TINY)


def copy_run(src, dst):
    shutil.copytree(src, dst)
    return dst


def sets(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in (("train", 12), ("eval", 6), ("synthetic", 24)):
        np.save(tmp_path / f"{name}.npy", rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8))
    return tmp_path


# --- data loss -------------------------------------------------------------------------------------

def test_overwrite_replaces_only_mem2gens_own_outputs(tmp_path):
    (tmp_path / "d").mkdir()
    d = sets(tmp_path / "d")
    (d / "notes.txt").write_text("mine")
    args = ["classify", "--train", d / "train.npy", "--eval", d / "eval.npy", "--synthetic", d / "synthetic.npy"]
    # the inputs' own folder: refused without --overwrite, and with it the inputs and notes stay
    assert cli(*args, "--out", d) == 2
    assert cli(*args, "--out", d, "--overwrite") == 0
    assert {"train.npy", "eval.npy", "synthetic.npy", "notes.txt", "labels.csv", "summary.json"} <= {
        p.name for p in d.iterdir()}
    assert sorted(json.loads((d / MARKER).read_text())["files"]) == ["labels.csv", "neighbors.png", "summary.json"]
    # again without the grid: the old neighbors.png (mem2gen's) goes, nothing else does
    assert cli(*args, "--out", d, "--overwrite", "--no-grid") == 0
    assert not (d / "neighbors.png").exists() and (d / "notes.txt").read_text() == "mine"


def test_overwrite_refuses_to_replace_an_input_it_wrote_earlier(tmp_path):
    assert cli("demo", "--out", tmp_path / "demo") == 0  # writes eval/train/synthetic.npy as outputs
    d = tmp_path / "demo"
    assert cli("classify", "--train", d / "train.npy", "--eval", d / "eval.npy", "--out", d, "--overwrite") == 2
    assert (d / "train.npy").exists()


@pytest.mark.slow
def test_sweep_overwrite_keeps_foreign_files_and_a_foreign_config(tmp_path, tiny_run):
    run = copy_run(tiny_run, tmp_path / "run")
    (run / "mine.txt").write_text("keep")
    (run / "points" / "notes.md").write_text("keep")
    run_sweep(SweepConfig.from_dict({**TINY, "n_eval": 21}), run, overwrite=True, **quiet)
    assert (run / "mine.txt").read_text() == "keep" and (run / "points" / "notes.md").exists()
    assert Run(run).config.n_eval == 21
    # a folder whose config.json is not a sweep's: never removed, even with --overwrite
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.json").write_text('{"my": "settings"}')
    with pytest.raises(Mem2genError, match="not a readable mem2gen sweep config"):
        run_sweep(SweepConfig.from_dict(TINY), work, overwrite=True, **quiet)
    assert json.loads((work / "config.json").read_text()) == {"my": "settings"}


# --- false success ---------------------------------------------------------------------------------

def test_sample_refuses_output_made_by_other_settings_or_model(tmp_path, tiny_run):
    model = tiny_run / "points" / "K=2" / "model"
    out = tmp_path / "s.npy"
    base = ["sample", "--model", model, "--n", "4", "--steps", "3", "--out", out, "--quiet"]
    assert cli(*base) == 0
    first = np.load(out)
    assert cli(*base) == 0 and np.array_equal(np.load(out), first)  # the same command: reused
    assert cli(*base[:-2], "--seed", "1", "--out", out, "--quiet") == 2  # another seed
    assert cli("sample", "--model", tiny_run / "points" / "K=8" / "model", *base[3:]) == 2  # another model
    np.save(tmp_path / "t.npy", np.zeros((4, 1, 8, 8), np.float32))  # a file of the right length, no record
    assert cli(*base[:-2], "--out", tmp_path / "t.npy") == 2


@pytest.mark.slow
def test_swapped_or_truncated_files_are_found_and_redone(tmp_path, tiny_run):
    run = copy_run(tiny_run, tmp_path / "run")
    p8 = run / "points" / "K=8"
    shutil.copy(run / "points" / "K=2" / "eval.npy", p8 / "eval.npy")  # another point's S_eval
    assert cli("status", run, "--verify") == 1
    problems = verify(Run(run).point(8))
    assert problems and "eval.npy" in problems[0]
    before = json.loads((p8 / "summary.json").read_text())
    run_sweep(SweepConfig.from_dict(TINY), run, **quiet)  # resume: the point is redone from sampling
    assert verify(Run(run).point(8), full=True) == [] and cli("status", run, "--verify") == 0
    assert json.loads((p8 / "summary.json").read_text())["counts"] == before["counts"]  # same seeds, same result
    # a truncated model of a finished point
    w = run / "points" / "K=2" / "model" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    assert "cannot be read" in verify(Run(run).point(2))[0]
    run_sweep(SweepConfig.from_dict(TINY), run, **quiet)
    assert verify(Run(run).point(2), full=True) == []


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["label", "fraction", "truncate", "eval-without-record", "fraction-record-gone"])
def test_verify_reads_every_file_it_vouches_for(tmp_path, tiny_run, capsys, damage):
    """An edited label, an edited fraction, a truncated labels.csv, a swapped S_eval whose record is gone:
    `status --verify` exits 1 naming the file, `report` refuses to publish, and a sweep redoes the point."""
    run = copy_run(tiny_run, tmp_path / "run")
    p8 = run / "points" / "K=8"
    if damage == "label":
        lines = (p8 / "labels.csv").read_text().splitlines()
        cells = lines[1].split(",")
        cells[1] = {"memorized": "spurious"}.get(cells[1], "memorized")
        (p8 / "labels.csv").write_text("\n".join([lines[0], ",".join(cells)] + lines[2:]) + "\n")
        named = "labels.csv"
    elif damage == "fraction":
        s = json.loads((p8 / "summary.json").read_text())
        s["fractions"]["spurious"] = 0.99
        (p8 / "summary.json").write_text(json.dumps(s))
        named = "summary.json"
    elif damage == "truncate":
        (p8 / "labels.csv").write_text((p8 / "labels.csv").read_text()[:200])
        named = "labels.csv"
    elif damage == "fraction-record-gone":  # an edit, and the record that would show it deleted
        s = json.loads((p8 / "summary.json").read_text())
        s["fractions"]["spurious"] = 0.99
        (p8 / "summary.json").write_text(json.dumps(s))
        (p8 / "digests.json").unlink()
        named = "digests.json"
    else:
        shutil.copy(run / "points" / "K=2" / "eval.npy", p8 / "eval.npy")
        (p8 / "eval.npy.json").unlink()
        named = "eval.npy"
    capsys.readouterr()
    assert cli("status", run, "--verify") == 1
    assert named in capsys.readouterr().out
    assert cli("report", run) == 2
    assert "not publishing" in capsys.readouterr().err
    run_sweep(SweepConfig.from_dict(TINY), run, **quiet)  # the sweep repairs: the point is made again
    assert cli("status", run, "--verify") == 0 and cli("report", run) == 0


@pytest.mark.slow
def test_a_model_copied_from_another_point_is_found_and_redone(tmp_path, tiny_run, capsys):
    """Before: a point's model folder replaced by another point's (or another run's) passed `--verify`."""
    run = copy_run(tiny_run, tmp_path / "run")
    p8, p2 = run / "points" / "K=8", run / "points" / "K=2"
    shutil.rmtree(p8 / "model")
    shutil.copytree(p2 / "model", p8 / "model")
    assert cli("status", run, "--verify") == 1
    assert "was trained on K = 2" in capsys.readouterr().out
    record = json.loads((p2 / "model" / "mem2gen.json").read_text())
    record["size"], record["train_config"]["seed"] = 8, record["train_config"]["seed"] + 1  # another seed's
    (p8 / "model" / "mem2gen.json").write_text(json.dumps(record))
    assert "another seed" in verify(Run(run).point(8))[0]
    run_sweep(SweepConfig.from_dict(TINY), run, **quiet)  # the sweep retrains it
    assert cli("status", run, "--verify") == 0


def test_json_of_the_wrong_shape_is_named_with_its_field(tmp_path):
    from mem2gen.errors import DamagedFile
    from mem2gen.io.files import DIGEST_SHAPE, read_json

    f = tmp_path / "x.json"
    for text, shape, field in (("[1, 2]", dict, "should be an object"), ('"a"', dict, "should be an object"),
                               ("[" * 200_000 + "]" * 200_000, dict, "nested too deeply"),
                               ('{"a.npy": {"sha256": "x", "bytes": 3}}', DIGEST_SHAPE, "a.npy.fingerprint is missing"),
                               ('{"a.npy": {"sha256": "x", "fingerprint": "y", "bytes": "3"}}', DIGEST_SHAPE,
                                "a.npy.bytes should be a whole number"),
                               ('{"sizes": [2]}', {"sizes": list, "n": int}, "n is missing")):
        f.write_text(text)
        with pytest.raises(DamagedFile, match=field):
            read_json(f, shape)
    f.write_text('{"n": true}')
    with pytest.raises(DamagedFile, match="whole number"):
        read_json(f, {"n": int})  # true is not a number


@pytest.mark.slow
@pytest.mark.parametrize("name,text", [("points/K=8/digests.json", "[]"),
                                       ("points/K=8/digests.json", '{"labels.csv": 1}'),
                                       ("points/K=8/summary.json", '{"n_eval": "40"}'),
                                       ("points/K=8/summary.json", "[" * 100_000 + "]" * 100_000),
                                       ("manifest.json", '{"sizes": "2,8"}'), ("points/K=8/attractors.json", "[]")])
def test_run_files_of_the_wrong_shape_give_one_line(tmp_path, tiny_run, capsys, name, text):
    """Before: a list, a string, a record missing a key or a 100,000-level nesting was an internal error."""
    run = copy_run(tiny_run, tmp_path / "run")
    (run / name).write_text(text)
    for args in (("status", run), ("status", run, "--verify"), ("report", run)):
        code = cli(*args)
        err = capsys.readouterr().err
        assert code in (0, 1, 2) and "internal error" not in err and "Traceback" not in err, (args, err)


@pytest.mark.slow
def test_truncated_run_files_give_one_line(tmp_path, tiny_run, capsys):
    for name in ("config.json", "manifest.json", "points/K=2/summary.json", "points/K=2/model/mem2gen.json"):
        run = copy_run(tiny_run, tmp_path / name.replace("/", "_"))
        (run / name).write_text((run / name).read_text()[:20])
        for args in (("status", run), ("report", run), ("status", run, "--verify")):
            code = cli(*args)
            err = capsys.readouterr().err
            assert code in (0, 1, 2) and "Traceback" not in err, (name, args, err)
            assert code != 1 or "internal error" not in err, (name, args, err)


# --- the lock ---------------------------------------------------------------------------------------

def test_a_second_writer_is_refused_and_a_stale_lock_taken_over(tmp_path, tiny_run):
    run = copy_run(tiny_run, tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", "import time, sys\nfrom mem2gen.io.files import run_lock\n"
                               f"with run_lock({str(run)!r}, command='test'):\n    print('held', flush=True)\n"
                               "    time.sleep(30)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Mem2genError, match=r"in use by `test` \(pid \d+"):
            run_sweep(SweepConfig.from_dict(TINY), run, **quiet)
        assert cli("report", run) == 2
    finally:
        holder.kill()
        holder.wait()
    assert (run / ".lock").exists()  # killed: its lock stays behind, stale
    run_sweep(SweepConfig.from_dict(TINY), run, **quiet)  # and is taken over
    assert not (run / ".lock").exists()
    with run_lock(run):
        with run_lock(run):  # re-entrant in one process
            pass
        assert (run / ".lock").exists()


# --- validation before work -------------------------------------------------------------------------

@pytest.mark.parametrize("bad,msg", [
    ({"train": {"steps": 0}}, "steps"), ({"synthetic_cap": 0}, "synthetic_cap"), ({"eta": -3}, "eta"),
    ({"model": {"width": 0}}, "width"), ({"train": {"steps": "ten"}}, "expected int"), ({"sizes": ["a"]}, "sizes"),
    ({"train": {"checkpoint_every": 0}}, "checkpoint_every"), ({"train": {"lr": float("nan")}}, "finite"),
    ({"sizes": {"doubling": 0}}, "doubling"), ({"distance": "l3"}, "distance"), ({"sample_steps": 5000}, "1000"),
    ({"name": "../../x"}, "plain folder"), ({"device": "gpu7"}, "device"), ({"device": "cuda:0"}, "device"),
    ({"image_size": -4}, "image_size"), ({"seed": -1}, "seed"), ({"n_eval": True}, "expected int"),
    ({"train": {"seed": 1}}, "set seed instead")])
def test_bad_settings_are_refused_before_any_work(tmp_path, bad, msg):
    if bad.get("device") == "cuda:0":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    with pytest.raises(Mem2genError, match=msg):
        run_sweep(SweepConfig.from_dict({**TINY, **bad}), tmp_path / "r", **quiet)
    assert not (tmp_path / "r").exists()  # nothing written


@pytest.mark.slow
def test_free_settings_may_change_in_a_run_others_are_named(tmp_path, tiny_run):
    run = copy_run(tiny_run, tmp_path / "run")
    run_sweep(SweepConfig.from_dict({**TINY, "sizes": [2, 8, 16], "device": "cpu",
                                     "train": {**TINY["train"], "checkpoint_every": 2}}), run, **quiet)
    assert Run(run).sizes == [2, 8, 16]
    with pytest.raises(Mem2genError, match=r"differs in sample_steps, train\.lr"):
        run_sweep(SweepConfig.from_dict({**TINY, "sample_steps": 4, "train": {**TINY["train"], "lr": 0.5}}), run,
                  **quiet)


def test_diverging_training_stops_with_a_message(tmp_path):
    assert cli("train", "--data", "digits", "--size", "8", "--steps", "30", "--lr", "1e30", "--batch", "8",
               "--out", tmp_path / "t", "--quiet") == 2
    assert not (tmp_path / "t" / "model").exists()


@pytest.mark.slow
def test_leftovers_of_a_kill_are_cleaned(tmp_path, tiny_run):
    run = copy_run(tiny_run, tmp_path / "run")
    junk = [run / "manifest.json.mem2gen-tmp-abc123",
            run / "points" / "K=2" / "model" / "model.safetensors.mem2gen-tmp-x9"]
    for j in junk:
        j.write_bytes(b"half")
    run_sweep(SweepConfig.from_dict(TINY), run, **quiet)
    assert not any(j.exists() for j in junk)


# --- what the rule can hide, and image files ----------------------------------------------------------

def test_near_duplicates_in_s_are_warned_about(tmp_path, capsys):
    from mem2gen import classify

    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (20, 1, 8, 8), dtype=np.uint8)
    train[5] = train[3]  # an exact duplicate
    copy = np.clip(train[3:4].astype(int) + rng.integers(-3, 4, (1, 1, 8, 8)), 0, 255).astype(np.uint8)  # a near-copy
    with pytest.warns(UserWarning, match="near-duplicate"):
        res = classify(copy, train, train)
    assert res.info["near_duplicates"]["exact"] == 2 and res.label_names()[0] != "memorized"  # hidden, and said
    np.save(tmp_path / "t.npy", train)
    np.save(tmp_path / "e.npy", copy)
    assert cli("classify", "--train", tmp_path / "t.npy", "--eval", tmp_path / "e.npy", "--synthetic",
               tmp_path / "t.npy", "--out", tmp_path / "o") == 0
    assert "warning:" in capsys.readouterr().err
    clean = classify(copy, np.delete(train, 5, axis=0), train)
    assert clean.info["near_duplicates"]["near"] == 0 and clean.label_names()[0] == "memorized"


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    from mem2gen.io.data import load_image_folder

    a = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "a.png")
    x = load_image_folder(tmp_path)
    assert x.dtype == np.uint8 and np.array_equal(x[0, 0], np.rint(a / 257).astype(np.uint8))


# --- no traceback, ever -------------------------------------------------------------------------------

def test_user_mistakes_give_one_line(tmp_path, capsys, tiny_run):
    f = tmp_path / "file"
    f.write_text("x")
    (tmp_path / "x.npy").mkdir()
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    cases = [("sweep", "--out", f), ("sweep", "--out", tmp_path / "dangling"), ("sweep", "--device", "cuda:9",
             "--out", tmp_path / "r"), ("sample", "--model", tiny_run / "points/K=2/model", "--n", "2",
             "--out", tmp_path / "x.npy"), ("status", f), ("report", tmp_path / "none"),
             ("train", "--data", "digits", "--size", "4", "--out", f), ("sizes", "--doubling", "2", "--n", "1"),
             ("classify", "--train", tmp_path / "dangling", "--eval", f, "--out", tmp_path / "o"),
             ("--threads", "0", "sizes", "--paper", "mnist")]
    for args in cases:
        assert cli(*args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("mem2gen: error:"), (args, err)


def test_an_internal_error_is_one_line_and_a_saved_traceback(monkeypatch, tmp_path, capsys):
    import tempfile

    import mem2gen.io.sizes

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(mem2gen.io.sizes, "doubling", lambda *a, **k: 1 / 0)
    assert cli("sizes", "--doubling", "2", "--n", "10") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error: ZeroDivisionError" in err[0]
    saved = list(tmp_path.glob("mem2gen-crash-*.txt"))
    assert len(saved) == 1 and "Traceback" in saved[0].read_text() and saved[0].name in err[0]


class Reached(Exception):
    """Raised in place of a command's real work: the settings were accepted."""


def _stop(*a, **k):
    raise Reached()


NUMERIC = (click.types.IntParamType, click.types.FloatParamType, Numbers, Ratio)
NEVER_VALID = ["abc", "nan", "inf", "-inf", "1e400", ""]
EDGES = ["-1", "0", "-0.5", "1e12", "3,-2"]


def _numeric(cmd):
    return [o for o in cmd.params if isinstance(o, click.Option) and not o.is_flag and isinstance(o.type, NUMERIC)]


@pytest.mark.slow
def test_fuzz_every_numeric_option(tmp_path, tiny_run, monkeypatch, capsys):
    """Every numeric option of every command, with values no option accepts (must be exit 2 and one line)
    and edge values (exit 2 with one line, or accepted: the command then reaches its work, stopped here)."""
    import importlib
    import pkgutil
    import tempfile

    import mem2gen

    # every module imported first, so that names bound at import time keep the real functions after the stubs go
    for m in pkgutil.walk_packages(mem2gen.__path__, "mem2gen."):
        importlib.import_module(m.name)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for mod, name in [("core.rule", "classify"), ("models.train", "train"), ("models.sample", "generate"),
                      ("runs.sweep", "update_manifest"), ("analyses.calibration", "point_calibration"),
                      ("analyses.landscape_study", "analyze"), ("analyses.dynamics", "measure_step"),
                      ("memory", "capacity_experiment"), ("memory.phase", "dense_phase"),
                      ("runs.compare", "capacity_draws"), ("analyses.landscape", "relative_energy")]:
        monkeypatch.setattr(importlib.import_module(f"mem2gen.{mod}"), name, _stop)
    d = sets(tmp_path)
    run = copy_run(tiny_run, tmp_path / "run")
    base = {"classify": ["--train", d / "train.npy", "--eval", d / "eval.npy"], "demo": [],
            "train": ["--data", "digits", "--size", "8"], "sample": ["--model", run / "points/K=2/model", "--n", "2"],
            "sweep": ["--sizes", "2,8"], "sizes": ["--doubling", "2", "--n", "64"], "toy": [],
            "memory hopfield-capacity": [], "memory dense": [], "compare": [run, run],
            "calibrate": [run], "landscape": [run], "dynamics": [run], "memory bridge": [run]}
    cases = 0
    for path, cmd in ((p, c) for p, c in ALL if " ".join(p) in base):
        key = " ".join(path)
        for opt in _numeric(cmd):
            for value in NEVER_VALID + EDGES:
                out = tmp_path / f"o{cases}"
                args = [*path, *base[key]]
                flag = opt.opts[0]
                if flag in args:  # replace the base value
                    i = args.index(flag)
                    args = args[:i] + args[i + 2:]
                if "--out" in [o for p in cmd.params for o in getattr(p, "opts", [])]:
                    args += ["--out", str(out) + (".npy" if key == "sample" else "")]
                code = cli(*args, flag, value)
                err = capsys.readouterr().err
                cases += 1
                assert "Traceback" not in err, (key, flag, value, err)
                if code == 1:  # accepted and stopped at the work: the saved traceback must be the stop
                    assert "internal error: Reached" in err, (key, flag, value, err)
                else:
                    assert code in (0, 2), (args, flag, value, code, err)
                if code == 2:
                    assert len(err.strip().splitlines()) == 1 and err.startswith("mem2gen: error:"), (args, value, err)
                if value in NEVER_VALID:
                    assert code == 2, (key, flag, value, code, err)
    assert cases > 300


# --- bring-your-own-model traps ------------------------------------------------------------------------

def test_shared_samples_in_s_eval_and_s_prime_are_left_out(recwarn):
    """S' holding S_eval (e.g. both sampled with one seed): each sample's own copy is left out, as
    leave-one-out does, instead of every sample being 'spurious' at distance 0."""
    from mem2gen import classify

    rng = np.random.default_rng(0)
    train = rng.uniform(-1, 1, (30, 1, 8, 8)).astype(np.float32)
    ev = rng.uniform(-1, 1, (20, 1, 8, 8)).astype(np.float32)
    other = rng.uniform(-1, 1, (60, 1, 8, 8)).astype(np.float32)
    syn = np.concatenate([other, ev])
    res = classify(ev, train, syn, check_duplicates=False)
    assert res.info["shared_with_synthetic"] == 20 and any("exact copy" in str(w.message) for w in recwarn)
    d = np.sqrt(((ev.reshape(20, 1, -1).astype(np.float64) - syn.reshape(1, 80, -1)) ** 2).sum(-1))
    d[np.arange(20), 60 + np.arange(20)] = np.inf  # brute force, each sample's own copy left out
    assert np.allclose(res.d_syn[:, 0], d.min(1)) and (res.d_syn[:, 0] > 0).all()


def test_sample_seeds_differ_by_output_name(tmp_path, tiny_run):
    model = tiny_run / "points" / "K=2" / "model"
    for name in ("eval.npy", "synthetic.npy"):
        assert cli("sample", "--model", model, "--n", "4", "--steps", "3", "--out", tmp_path / name, "--quiet") == 0
    assert not np.array_equal(np.load(tmp_path / "eval.npy"), np.load(tmp_path / "synthetic.npy"))


def test_zero_one_floats_are_refused_or_rescaled(tmp_path, capsys):
    from mem2gen import classify

    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (20, 1, 8, 8), dtype=np.uint8)
    copies = train[:6].astype(np.float32) / 255  # exact training copies, as a pipeline's output_type="np" gives
    with pytest.raises(Mem2genError, match=r"looks like \[0, 1\]"):
        classify(copies, train, check_duplicates=False)
    res = classify(copies, train, pixel_range="0,1", check_duplicates=False)
    assert (res.label_names() == "memorized").all()
    np.save(tmp_path / "t.npy", train)
    np.save(tmp_path / "c.npy", copies)
    assert cli("classify", "--train", tmp_path / "t.npy", "--eval", tmp_path / "c.npy", "--out", tmp_path / "o") == 2
    assert "--range 0,1" in capsys.readouterr().err
    assert cli("classify", "--train", tmp_path / "t.npy", "--eval", tmp_path / "c.npy", "--range", "0,1",
               "--out", tmp_path / "o", "--quiet") == 0


def test_status_ignores_a_lock_whose_process_is_gone(tmp_path, tiny_run, capsys):
    """A sweep ended by SIGTERM leaves its lock; status must not report the run as in use by a dead pid."""
    run = copy_run(tiny_run, tmp_path / "run")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (run / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "x",
                                           "command": "mem2gen sweep"}))
    assert cli("status", run) == 0
    assert "in use" not in capsys.readouterr().out
    (run / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": "x",
                                           "command": "mem2gen sweep"}))
    assert cli("status", run) == 0
    assert "in use by `mem2gen sweep`" in capsys.readouterr().out


@pytest.mark.slow
def test_a_file_size_limit_while_saving_weights_is_one_line_and_resumes(tmp_path):
    """`ulimit -f` hit while the checkpoint is written (safetensors' own error type): one line, exit 2,
    no partial file; the same command then finishes."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    mem2gen = str(Path(sys.executable).with_name("mem2gen"))
    cmd = [mem2gen, "--threads", "1", "train", "--data", "digits", "--size", "8", "--steps", "4", "--out",
           str(tmp_path / "t"), "--quiet"]
    r = subprocess.run(cmd, preexec_fn=limit, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "file-size limit" in r.stderr, r.stderr
    assert not [p for p in (tmp_path / "t").rglob("*") if "tmp" in p.name]
    assert subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.mark.parametrize("content,args,msg", [
    (b"\xb2\x00\xff binary", [], "not a text file"),
    (b"sizes: [2, 8\n", [], "not valid YAML"),
    (b"a: &a [1, 1]\nb: [*a, *a]\n", [], "aliases"),  # the start of an alias bomb: refused before expansion
    (b"seed: 99999999999999999999999\n", [], "2^63"),
    (b'name: "a\\x00b"\n', [], "plain folder name"),
    (b"sizes: {doubling: [1, 2]}\n", [], "whole number"),
    (b"", ["--grid", "seed=[1"], "grid value"),
])
def test_config_oddities_are_one_line_before_any_work(tmp_path, capsys, content, args, msg):
    (tmp_path / "c.yaml").write_bytes(content)
    assert cli("sweep", "--config", tmp_path / "c.yaml", "--sizes", "2", "--steps", "2", *args,
               "--out", tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and "internal error" not in err
    assert not (tmp_path / "r").exists()


def test_a_users_temporary_and_lock_named_files_are_never_removed(tmp_path, tiny_run, capsys):
    """Only mem2gen's own temporaries (``.mem2gen-tmp-``) are cleaned on resume; a foreign file where the
    lock goes is refused, not removed."""
    run = copy_run(tiny_run, tmp_path / "run")
    mine = [run / "notes.tmp-1", run / "points" / "K=2" / "draft.tmp-x"]
    for m in mine:
        m.write_text("the user's")
    run_sweep(SweepConfig.from_dict(TINY), run, **quiet)
    assert all(m.read_text() == "the user's" for m in mine)
    lock = run / ".lock"
    lock.write_text("the user's own lock file")
    os.utime(lock, (0, 0))  # not one being written this instant
    assert cli("sweep", "--sizes", "2,8", "--out", run) == 2
    assert "not a mem2gen lock" in capsys.readouterr().err and lock.read_text() == "the user's own lock file"


def test_train_and_sample_never_replace_a_users_files(tmp_path, capsys):
    """train into a folder holding someone else's files, sample next to a foreign record: refused with one
    line, every file byte-identical afterwards."""
    out = tmp_path / "t"
    (out / "model").mkdir(parents=True)
    (out / "losses.csv").write_text("mine")
    (out / "model" / "model.safetensors").write_bytes(b"mine")
    assert cli("train", "--data", "digits", "--size", "4", "--steps", "2", "--out", out, "--quiet") == 2
    assert "did not write" in capsys.readouterr().err
    assert (out / "losses.csv").read_text() == "mine" and (out / "model" / "model.safetensors").read_bytes() == b"mine"
    (tmp_path / "s.npy.json").write_text("my notes")
    assert cli("train", "--data", "digits", "--size", "4", "--steps", "2", "--out", tmp_path / "m", "--quiet") == 0
    assert cli("sample", "--model", tmp_path / "m" / "model", "--n", "2", "--steps", "2", "--sampler", "ddim",
               "--out", tmp_path / "s.npy", "--quiet") == 2
    assert (tmp_path / "s.npy.json").read_text() == "my notes" and not (tmp_path / "s.npy").exists()


def test_weights_get_the_users_usual_permissions(tmp_path):
    """Saved models are readable by others as every other output (umask 022 → 0644), not 0600."""
    old = os.umask(0o022)
    try:
        assert cli("train", "--data", "digits", "--size", "4", "--steps", "2", "--out", tmp_path / "t", "--quiet") == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "t").rglob("*") if p.is_file()]
    assert files and all(p.stat().st_mode & 0o777 == 0o644 for p in files), \
        {p.name: oct(p.stat().st_mode & 0o777) for p in files}


def test_image_folders_refuse_bombs_and_name_mixed_channels(tmp_path):
    """A PNG whose header claims 900 megapixels is refused before decoding; mixed grey and colour images
    are named as such, not as differing in size."""
    import struct
    import zlib

    from PIL import Image

    from mem2gen.io.data import load_array

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    for side, msg in ((30000, "decompression bomb"), (9000, "9000 x 9000 pixels")):  # PIL's limit, then ours
        bomb = tmp_path / f"bomb{side}"
        bomb.mkdir()
        header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
        (bomb / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                                     + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
        with pytest.raises(Mem2genError, match=msg):
            load_array(bomb)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("L", (8, 8)).save(mixed / "a.png")
    Image.new("RGB", (8, 8)).save(mixed / "b.png")
    with pytest.raises(Mem2genError, match="channels"):
        load_array(mixed)


OUTPUT_NAMES = ["labels.csv", "summary.json", "neighbors.png", "eval.npy", "train.npy", "synthetic.npy", "toy.csv",
                "toy.json", "toy.png", "retrieval.csv", "census.csv", "hopfield.png", "results.csv", "capacity.csv",
                "dense.png", "compare.csv", "compare.json", "compare.png", "compare_fractions.csv"]


def seed_user_files(folder):
    """A folder holding a user's file under every output name of every command (and one folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(OUTPUT_NAMES):
        (folder / name).write_bytes(f"user file {i}".encode())
    (folder / "summary.json").unlink()
    (folder / "summary.json").mkdir()  # a user's folder named like an output
    (folder / "summary.json" / "inside.txt").write_text("keep")
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_no_command_replaces_or_removes_what_it_did_not_write(tmp_path, tiny_run, capsys):
    """Every command that writes an --out folder, run into one seeded with user files of every output
    name, with and without --overwrite: refused with one line, every seeded file byte-identical."""
    (tmp_path / "in").mkdir()
    d = sets(tmp_path / "in")
    other = copy_run(tiny_run, tmp_path / "other")
    commands = [
        ["classify", "--train", d / "train.npy", "--eval", d / "eval.npy", "--synthetic", d / "synthetic.npy"],
        ["demo"],
        ["toy", "--sizes", "2", "--steps", "2", "--quiet"],
        ["memory", "hopfield-capacity", "--n", "60,120", "--trials", "2", "--probes", "6"],
        ["memory", "dense", "--sizes", "2", "--beta", "20", "--n-eval", "4", "--steps", "2"],
        ["compare", tiny_run, other],
    ]
    for i, cmd in enumerate(commands):
        assert cli(*cmd, "--out", tmp_path / f"fresh{i}") == 0, cmd  # the command itself works
        for extra in ([], ["--overwrite"]):
            out = tmp_path / f"out{i}{len(extra)}"
            before = seed_user_files(out)
            capsys.readouterr()
            assert cli(*cmd, "--out", out, *extra) == 2, (cmd, extra)
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "internal error" not in err, err
            after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
            assert after == before, (cmd, extra)


def test_sizes_that_cannot_fit_are_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """A network too large for memory (counted on the meta device, never allocated), samples that cannot
    fit on disk, a bootstrap of 10^12: one line each, no run folder."""
    import shutil as sh
    from collections import namedtuple

    for config, msg in (("model: {hidden: 65536, depth: 64}\n", "parameters"),
                        ("bootstrap_iterations: 1000000000000\n", "10^7")):
        (tmp_path / "c.yaml").write_text(config)
        assert cli("sweep", "--config", tmp_path / "c.yaml", "--sizes", "2", "--out", tmp_path / "r") == 2
        assert msg in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert cli("train", "--data", "digits", "--size", "4", "--width", "64", "--out", tmp_path / "t") == 2
    assert "parameters" in capsys.readouterr().err and not (tmp_path / "t").exists()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(sh, "disk_usage", lambda p: usage(10 ** 9, 0, 10 ** 4))
    assert cli("sweep", "--sizes", "2,8", "--steps", "2", "--out", tmp_path / "r") == 2
    assert "GiB free" in capsys.readouterr().err


def test_models_that_would_run_code_or_leave_the_cache_are_refused(tmp_path, monkeypatch):
    """A diffusers folder whose weights are only a pickled .bin; a Hub cache entry pointing outside the cache."""
    from mem2gen.io.datasets import ARCHITECTURES
    from mem2gen.models.networks import build_unet, hub_folder, load_model

    unet = build_unet(ARCHITECTURES["digits-small"]).unet
    unet.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    assert not list((tmp_path / "pickled").glob("*.safetensors"))
    with pytest.raises(Mem2genError, match="pickled .bin"):
        load_model(tmp_path / "pickled")
    cache, outside = tmp_path / "cache", tmp_path / "elsewhere"
    snap = cache / "models--me--m" / "snapshots"
    snap.mkdir(parents=True)
    outside.mkdir()
    (snap / "abc").symlink_to(outside)
    (cache / "models--me--m" / "refs").mkdir()
    (cache / "models--me--m" / "refs" / "main").write_text("abc")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    with pytest.raises(Mem2genError, match="outside the cache"):
        hub_folder("me/m")


def test_a_kill_between_record_and_rename_finishes_and_a_kill_before_train_json_resumes(tmp_path):
    """The sample record is written just before the finished file is renamed: killed in between, the next
    run finishes the rename (the samples are not refused as foreign); a training folder killed before
    train.json holds only mem2gen's stale lock, and training there resumes."""
    import socket

    assert cli("train", "--data", "digits", "--size", "4", "--steps", "2", "--out", tmp_path / "m", "--quiet") == 0
    args = ["sample", "--model", tmp_path / "m" / "model", "--n", "3", "--steps", "2", "--sampler", "ddim", "--quiet"]
    assert cli(*args, "--out", tmp_path / "s.npy") == 0
    made = np.load(tmp_path / "s.npy")
    os.replace(tmp_path / "s.npy", tmp_path / "s.npy.partial.npy")  # as if killed before the rename
    assert cli(*args, "--out", tmp_path / "s.npy") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), made)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / ".lock").write_text(json.dumps({"pid": 999999, "host": socket.gethostname(), "since": "x",
                                                      "command": "mem2gen train"}))
    assert cli("train", "--data", "digits", "--size", "4", "--steps", "2", "--out", tmp_path / "t", "--quiet") == 0


def _alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


ORPHAN = '''
import os, sys, time
from mem2gen.runs.executors import Devices

class Sleep:
    def __call__(self, k, device=None):
        open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()
        time.sleep(120)
        return {"K": k}

if __name__ == "__main__":
    list(Devices(["cpu"], echo=lambda *a: None).map(Sleep(), [1]))
'''


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_workers_end_with_a_killed_sweep(tmp_path):
    """A sweep killed outright (SIGKILL: no clean-up runs) leaves no worker training on for nobody."""
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    deadline = time.time() + 120
    while not [p for p in tmp_path.iterdir() if p.name.isdigit()] and time.time() < deadline:
        time.sleep(0.1)
    pid = int(next(p.name for p in tmp_path.iterdir() if p.name.isdigit()))
    assert _alive(pid)
    proc.kill()
    proc.wait()
    deadline = time.time() + 15
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not _alive(pid)


def test_write_csv_keeps_every_rows_columns(tmp_path):
    """Rows that differ in their keys (a summary whose first row lacks some measures) keep every column."""
    from mem2gen.io.files import write_csv

    write_csv(tmp_path / "t.csv", [{"a": 1}, {"a": 2, "b": 3}, {"c": 4}])
    assert (tmp_path / "t.csv").read_text() == "a,b,c\n1,,\n2,3,\n,,4\n"


def test_slurm_options_become_sbatch_lines_and_bad_ones_are_refused(tmp_path, capsys):
    """Every Slurm option is submitit's own and reaches the batch script; timed-out jobs are requeued (the job
    can checkpoint); bad values are refused before any work."""
    pytest.importorskip("submitit")
    from mem2gen.runs.executors import Requeued, Submitit

    ex = Submitit(tmp_path, partition="gpu", account="lab", qos="high", constraint="h100", gpus_per_node=1,
                  cpus_per_task=8, mem_gb=64, timeout_min=1440, requeues=5,
                  extra=("--exclude=node7", "#SBATCH mail-type=END", "exclusive"))
    script = ex.script()
    for line in ("partition=gpu", "account=lab", "qos=high", "constraint=h100", "gpus-per-node=1",
                 "cpus-per-task=8", "mem=64GB", "time=1440", "exclude=node7", "mail-type=END", "exclusive"):
        assert f"#SBATCH --{line}\n" in script, line
    assert ex.executor("slurm")._executor.max_num_timeout == 5
    job = Requeued(lambda k, device=None: {"K": k})
    assert job(8) == {"K": 8} and job.checkpoint(8).args == (8,)  # submitit requeues it with its key
    assert cli("sweep", "--executor", "slurm", "--mem-gb", "0", "--out", tmp_path / "r") == 2
    assert "--mem-gb" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert cli("sweep", "--executor", "slurm", "--sbatch", "bad key", "--out", tmp_path / "r") == 2
    assert "--sbatch" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_a_cpu_allocation_failure_anywhere_is_the_one_line_out_of_memory(tmp_path, monkeypatch, capsys):
    """torch's CPU allocator raises a RuntimeError (not MemoryError) when a batch cannot be allocated
    (train --batch 10^9): one line naming the size, exit 2, never an internal error."""
    import torch

    def fail(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 8000000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(torch.optim.Adam, "step", fail)
    assert cli("train", "--data", "digits", "--size", "4", "--steps", "2", "--out", tmp_path / "t", "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of memory (8 GB asked at once)" in err[0] and "internal" not in err[0]


def test_names_too_long_for_the_file_system_are_refused_before_any_work(tmp_path, capsys):
    long = tmp_path / ("x" * 240)
    for args in (["train", "--data", "digits", "--size", "4", "--steps", "1", "--out", long],
                 ["sample", "--model", tmp_path / "m", "--n", "2", "--out", f"{long}.npy"],
                 ["sweep", "--sizes", "2", f"--out={long}"],
                 ["classify", "--train", tmp_path / "a.npy", "--eval", tmp_path / "b.npy", "--out", long / "x"]):
        assert cli(*args) == 2, args
        assert "bytes" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_preset_that_is_not_one_name_is_refused(tmp_path, capsys):
    for text in ("preset: [quick]\n", "preset: {a: 1}\n", "preset: 3\n"):
        (tmp_path / "c.yaml").write_text(text)
        assert cli("sweep", "--config", tmp_path / "c.yaml", "--plan") == 2
        assert "unknown sweep preset" in capsys.readouterr().err
