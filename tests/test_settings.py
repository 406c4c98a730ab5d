"""Settings are refused by meaning before any work: a value that would silently change what training does
(a negative clipping norm turns each step into gradient ascent) is one line and exit 2."""
import pytest

from conftest import cli
from mem2gen import Mem2genError
from mem2gen.io.config import SweepConfig, TrainConfig


@pytest.mark.parametrize("key,value", [("grad_clip", -1.0), ("grad_clip", float("inf")), ("lr", -1e-3),
                                       ("ema_decay", -0.1), ("ema_decay", 1.0), ("weight_decay", -0.01),
                                       ("data_noise", -0.5)])
def test_training_settings_out_of_their_meaning_are_refused(key, value):
    with pytest.raises(Mem2genError, match=key.replace("_", ".?") if key != "lr" else "learning rate"):
        TrainConfig(**{key: value})


def test_a_negative_clip_in_a_config_file_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sizes: [2]\ntrain: {grad_clip: -1, steps: 5}\n")
    assert cli("sweep", "--config", cfg, "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "grad_clip" in err[0] and not (tmp_path / "o").exists()
    assert SweepConfig.from_dict({"train": {"grad_clip": 0}}).train.grad_clip == 0  # 0: no clipping, allowed


@pytest.mark.parametrize("env,value,message", [
    ("OMP_NUM_THREADS", "²", "not a whole number"), ("OMP_NUM_THREADS", "0", "not a whole number"),
    ("OMP_NUM_THREADS", "two", "not a whole number"), ("MEM2GEN_THREADS", "100000", "usable cores"),
])
def test_thread_variables_are_parsed_strictly_and_bounded(env, value, message, monkeypatch, capsys):
    """Before: OMP_NUM_THREADS=² was an internal error (a digit to str.isdigit, not to int), and
    MEM2GEN_THREADS=100000 crashed torch."""
    from mem2gen.cli import main

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv(env, value)
    with pytest.raises(SystemExit) as e:
        main(["sizes", "--preset", "quick"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_devices_are_capped_by_the_machine(tmp_path, capsys):
    """Before: --devices with hundreds of entries started a worker per entry (a hang)."""
    from mem2gen.cli import main
    from mem2gen.io.threads import usable_cores

    many = ",".join(["cpu"] * (usable_cores() + 1))
    for cmd in (["sweep", "--preset", "quick", "--out", str(tmp_path / "r"), "--devices", many],
                ["sweep", "--preset", "quick", "--out", str(tmp_path / "r"), "--devices", "cpu,,cpu"]):
        with pytest.raises(SystemExit) as e:
            main(cmd)
        assert e.value.code == 2 and "--devices" in capsys.readouterr().err
        assert not (tmp_path / "r").exists()  # refused before any work


def test_overwrite_removes_a_linked_points_folder_as_a_link(tmp_path):
    """Before: `sweep --overwrite` on a run whose points/ is a symlink emptied the folder it points to."""
    import json

    from mem2gen.runs.sweep import remove_run_files

    run, elsewhere = tmp_path / "run", tmp_path / "mine"
    (elsewhere / "K=8").mkdir(parents=True)
    (elsewhere / "K=8" / "notes.txt").write_text("the user's")
    (elsewhere / "other.txt").write_text("the user's too")
    run.mkdir()
    (run / "config.json").write_text(json.dumps({}))
    (run / "points").symlink_to(elsewhere, target_is_directory=True)
    remove_run_files(run)
    assert not (run / "points").exists() and not (run / "points").is_symlink()
    assert (elsewhere / "K=8" / "notes.txt").read_text() == "the user's" and (elsewhere / "other.txt").exists()


def test_samples_without_checkpoints_are_refused():
    """Before: a sweep trained its own models and recorded the user's samples as theirs."""
    with pytest.raises(Mem2genError, match="without checkpoints"):
        SweepConfig.from_dict({"samples": "/somewhere/samples"})
    assert cli("sweep", "--preset", "quick", "--samples", "/somewhere", "--out", "/tmp/never-made") == 2


def test_a_name_list_marker_vouches_for_nothing(tmp_path):
    """Before: a marker of an earlier version (a list of names, no digests) let --overwrite replace a file
    the user had put in place of one of them."""
    import json

    from mem2gen.io.files import MARKER, foreign_outputs, own_outputs

    (tmp_path / MARKER).write_text(json.dumps(["labels.csv", "summary.json"]))
    (tmp_path / "labels.csv").write_text("the user's own labels")
    assert own_outputs(tmp_path) == [] and foreign_outputs(tmp_path, ["labels.csv"]) == ["labels.csv"]
