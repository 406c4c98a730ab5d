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


def test_the_gpu_plan_counts_flops_and_never_touches_cuda(tmp_path, monkeypatch, capsys):
    """--plan-gpu: the MLP's forward FLOPs are 2 x its weights' multiply-adds (an independent count), the times
    are that arithmetic over the published peak, no CUDA function is called and no data file is read."""
    import torch

    from mem2gen.models.networks import build_model
    from mem2gen.runs.plan_gpu import GPUS, LAUNCH_S, UTILIZATION, count, gpu_plan

    def no_cuda(*a, **k):
        raise AssertionError("a CUDA call while planning")

    for name in ("is_available", "device_count", "current_device", "synchronize", "init"):
        monkeypatch.setattr(torch.cuda, name, no_cuda)
    cfg = load_config("quick", overrides={"sizes": [2, 8], "train.steps": 40})
    c = count(cfg, (1, 8, 8))
    net = build_model(cfg.model, (1, 8, 8), seed=0)
    linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert c["forward_flops"] == sum(2 * m.in_features * m.out_features for m in linear)
    g = gpu_plan(cfg, [2, 8], (1, 8, 8), "h100")
    peak = GPUS["H100"][2 if cfg.train.bf16 else 1] * 1e12
    r = g["points"][1]
    assert r["train_flops"] == 3 * c["forward_flops"] * cfg.train.batch * 40
    assert r["train_s_fast"] == pytest.approx(max(r["train_flops"] / (peak * UTILIZATION[1]),
                                                  3 * c["kernels"] * LAUNCH_S * 40))
    assert r["seconds_slow"] >= r["seconds_fast"] > 0
    assert cli("sweep", "--preset", "paper-mnist", "--data", f"mnist:{tmp_path / 'absent'}", "--plan-gpu", "H100",
               "--out", tmp_path / "r") == 0
    out = capsys.readouterr().out
    assert "NVIDIA H100" in out and "not timed" in out and "registry" in out and not (tmp_path / "r").exists()
    assert cli("sweep", "--sizes", "2", "--plan-gpu", "TPU9") == 2 and "H100" in capsys.readouterr().err
