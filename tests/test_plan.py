"""`mem2gen sweep --plan`: the cost of a sweep before it runs (mem2gen.plan)."""
import numpy as np
import pytest

from conftest import cli
from mem2gen import Mem2genError
from mem2gen.io.config import load_config
from mem2gen.runs.plan import plan


def test_plan_counts_what_the_sweep_will_do(tmp_path):
    cfg = load_config("quick", overrides={"sizes": [2, 8], "train.steps": 40})
    p = plan(cfg, tmp_path / "run", steps=1)
    m = p["measured"]
    assert p["sizes"] == [2, 8] and m["train_step_s"] > 0 and m["eval_image_s"] > 0
    snaps = len(cfg.train.save_steps)
    for r in p["points"]:
        n = cfg.n_eval + cfg.n_synthetic(r["K"])
        assert r["sample_evals"] == n * cfg.sample_steps
        assert r["train_s"] == pytest.approx(40 * m["train_step_s"])
        assert r["disk_bytes"] == 4 * 64 * n + 4 * m["params"] * (4 + 1 + snaps)  # 8x8 float32 samples, weights
    assert p["total"]["seconds"] == pytest.approx(sum(r["train_s"] + r["sample_s"] for r in p["points"]))
    assert not (tmp_path / "run").exists()  # nothing is made


@pytest.mark.slow
def test_plan_of_a_paper_preset_without_its_files(tmp_path):
    """No data files: sizes from Table 1 (38) and the item shape from the registry; Slurm's array and limit."""
    cfg = load_config("paper-mnist", overrides={"data": f"mnist:{tmp_path / 'absent'}", "model.width": 0.25,
                                                 "train.batch": 4})
    p = plan(cfg, tmp_path / "run", executor="slurm", slurm={"timeout_min": 60}, steps=1)
    assert len(p["sizes"]) == 38 and "registry" in p["data"] and p["slurm"]["array"] == 38
    assert p["slurm"]["fits"] == (p["slurm"]["longest_job_s"] * 1.2 <= 3600)
    assert p["points"][-1]["sample_evals"] == (10_000 + 4 * p["sizes"][-1]) * 1000


def test_plan_refuses_a_run_that_does_not_fit_on_disk(tmp_path, monkeypatch, capsys):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 ** 6, 0, 10 ** 5))
    with pytest.raises(Mem2genError, match="GiB on disk"):
        plan(load_config("quick", overrides={"sizes": [2], "train.steps": 5}), tmp_path / "run", steps=1)
    assert cli("sweep", "--sizes", "2", "--steps", "5", "--plan", "--out", tmp_path / "r") == 2
    assert "GiB on disk" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_plan_command_prints_and_makes_nothing(tmp_path, capsys):
    assert cli("sweep", "--sizes", "2,8", "--steps", "20", "--plan", "--out", tmp_path / "r") == 0
    out = capsys.readouterr().out
    assert "per training step" in out and "total:" in out and not (tmp_path / "r").exists()
    assert np.all([f"{k:>7}" in out for k in (2, 8)])
