"""Checkpoints in the authors' K.pt format: read as data (no code runs), loaded only when their weights
are laid out as diffusers' UNet2DModel, refused with the reason otherwise."""
import argparse
import dataclasses
import os
import sys
import types

import pytest
import torch

from conftest import cli
from mem2gen import Mem2genError
from mem2gen.checkpoints import Record, authors_arch, read
from mem2gen.datasets import UNetArch
from mem2gen.models import build_unet, load_model

ARCH = UNetArch(sample_size=8, channels=1, base=32, multipliers=(1, 2), layers_per_block=1, attention_resolutions=(4,))


def their_options():
    """Their option classes (parse_utils.ModelOptions, ...) as a module that exists only while pickling."""
    mod = types.ModuleType("parse_utils")

    @dataclasses.dataclass
    class ModelOptions:
        image_size: int = 8
        in_channels: int = 1
        dim: int = 32
        dim_mults: tuple = (1, 2)
        attn_resolutions: tuple = (4,)
        num_res_blocks: int = 1
        dropout: float = 0.0
        conditional: bool = True

    @dataclasses.dataclass
    class TrainOptions:
        train_size: int = 16
        global_seed: int = 3407
        lr: float = 1e-4

    for cls in (ModelOptions, TrainOptions):
        cls.__module__ = "parse_utils"
        cls.__qualname__ = cls.__name__
        setattr(mod, cls.__name__, cls)
    return mod


def save_theirs(path, state, extra=None):
    mod = their_options()
    sys.modules["parse_utils"] = mod
    try:
        args = argparse.Namespace(model=mod.ModelOptions(), train=mod.TrainOptions(), data=argparse.Namespace(data_name="x"))
        torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "ema": state, "opt": {}, "args": args,
                    "iterations": 500, **(extra or {})}, path)
    finally:
        del sys.modules["parse_utils"]  # loading cannot import it: the records are read as data


def test_reads_their_format_as_data_and_loads_the_weights(tmp_path):
    torch.manual_seed(0)
    ref = build_unet(ARCH).eval()
    save_theirs(tmp_path / "16.pt", ref.unet.state_dict())
    ck = read(tmp_path / "16.pt")
    assert isinstance(ck["args"], Record) and ck["args"].train.train_size == 16 and ck["iterations"] == 500
    assert ck["args"].model.origin == "parse_utils.ModelOptions" and authors_arch(ck["args"]) == ARCH
    model = load_model(tmp_path / "16.pt")
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 500, 999])
    with torch.no_grad():
        assert torch.equal(model(x, t), ref(x, t))  # the same network, bit for bit


def test_another_layout_is_refused_with_the_reason(tmp_path):
    state = build_unet(ARCH).unet.state_dict()
    save_theirs(tmp_path / "2.pt", {f"all_modules.{i}.weight": v for i, v in enumerate(state.values())})
    with pytest.raises(Mem2genError, match="not laid out as diffusers' UNet2DModel.*all_modules"):
        load_model(tmp_path / "2.pt")


class Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return exec, (f"open({self.target!r}, 'w').write('ran')",)


def test_a_planted_payload_is_refused_and_never_runs(tmp_path, capsys):
    target = tmp_path / "pwned"
    save_theirs(tmp_path / "8.pt", build_unet(ARCH).unet.state_dict(), extra={"x": Payload(str(target))})
    with pytest.raises(Mem2genError, match="refused: the file asks to load builtins.exec"):
        read(tmp_path / "8.pt")
    assert cli("sample", "--model", tmp_path / "8.pt", "--n", 2, "--out", tmp_path / "s.npy") == 2
    assert "builtins.exec" in capsys.readouterr().err
    assert not target.exists() and not (tmp_path / "s.npy").exists()
    # the same through os.system
    torch.save({"ema": {}, "args": None, "z": _System()}, tmp_path / "9.pt")
    with pytest.raises(Mem2genError, match=f"refused: the file asks to load {os.system.__module__}.system"):
        read(tmp_path / "9.pt")


class _System:
    def __reduce__(self):
        return os.system, ("true",)
