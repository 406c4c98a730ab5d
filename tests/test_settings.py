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
