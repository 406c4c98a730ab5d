"""Checkpoints in the authors' K.pt format: read as data (no code runs); their U-Net's weights renamed onto
diffusers' UNet2DModel and checked against their network's own ε (tests/data/authors); refused with the
reason otherwise. Their sample sets (K.npz) read without unpickling."""
import argparse
import dataclasses
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import cli
from mem2gen import Mem2genError
from mem2gen.io.datasets import UNetArch
from mem2gen.models.checkpoints import Record, authors_arch, read
from mem2gen.models.networks import build_unet, load_model

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
        args = argparse.Namespace(model=mod.ModelOptions(), train=mod.TrainOptions(),
                                  data=argparse.Namespace(data_name="x"))
        torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "ema": state, "opt": {}, "args": args,
                    "iterations": 500, **(extra or {})}, path)
    finally:
        del sys.modules["parse_utils"]  # loading cannot import it: the records are read as data


@pytest.mark.slow
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
    with pytest.raises(Mem2genError, match="all_modules.3.weight"):  # a plain layer where theirs has a resnet
        load_model(tmp_path / "2.pt")
    save_theirs(tmp_path / "3.pt", {f"blocks.{i}.weight": v for i, v in enumerate(state.values())})
    with pytest.raises(Mem2genError, match="neither the authors' U-Net nor diffusers' UNet2DModel"):
        load_model(tmp_path / "3.pt")


AUTHORS = Path(__file__).parent / "data" / "authors"


def test_their_own_classes_checkpoint_gives_their_epsilon():
    """16.pt was written by the authors' DDPM class (tests/data/authors/README.md): loaded into
    UNet2DModel, it computes their network's ε on the recorded inputs."""
    model = load_model(AUTHORS / "16.pt").eval()
    ref = np.load(AUTHORS / "16-eps.npz")
    with torch.no_grad():
        eps = model(torch.as_tensor(ref["x"]), torch.as_tensor(ref["t"])).numpy()
    assert np.abs(eps).max() > 0.1  # every weight is nonzero: a wrong mapping cannot agree by accident
    np.testing.assert_allclose(eps, ref["eps"], atol=1e-5, rtol=0)
    assert "EMA" in model.source and "step 10" in model.source
    assert "parse_utils" not in sys.modules and "simple_parsing" not in sys.modules  # none of their code ran


def test_a_wrong_mapping_is_caught_by_the_epsilon_check():
    """The fixture tells mappings apart: swapping two of their attention projections (q and k) changes ε."""
    from mem2gen.models.checkpoints import authors_to_diffusers

    ck = read(AUTHORS / "16.pt")
    arch = authors_arch(ck["args"])
    model = build_unet(arch).eval()
    state = dict(ck["ema"])
    attn = next(k.rsplit(".", 2)[0] for k in state if ".NIN_0.W" in k and "NIN_3" not in k
                and f"{k.rsplit('.', 2)[0]}.NIN_3.W" in state)
    state[f"{attn}.NIN_0.W"], state[f"{attn}.NIN_1.W"] = state[f"{attn}.NIN_1.W"], state[f"{attn}.NIN_0.W"]
    model.unet.load_state_dict(authors_to_diffusers(state, arch, model.unet.state_dict()))
    ref = np.load(AUTHORS / "16-eps.npz")
    with torch.no_grad():
        eps = model(torch.as_tensor(ref["x"]), torch.as_tensor(ref["t"])).numpy()
    assert np.abs(eps - ref["eps"]).max() > 1e-3


def test_sample_takes_their_checkpoint(tmp_path):
    assert cli("sample", "--model", AUTHORS / "16.pt", "--n", 3, "--steps", 4, "--sampler", "ddim",
               "--out", tmp_path / "s.npy", "--quiet") == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (3, 1, 8, 8) and np.isfinite(s).all()


class _Touch:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return exec, (f"open({self.target!r}, 'w').write('ran')",)


def their_samples(path, n, seed, payload):
    """A K.npz as their run_generate.py writes it (``samples``), with a pickled ``args`` beside it that
    would run code if anything unpickled it."""
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 1, 8, 8)).astype(np.float32)
    np.savez_compressed(path, samples=x, args=np.array([_Touch(payload)], dtype=object))
    return x


def test_their_sample_sets_are_read_without_unpickling(tmp_path):
    from mem2gen.io.data import load_array

    x = their_samples(tmp_path / "16.npz", 5, 0, str(tmp_path / "pwned"))
    np.testing.assert_array_equal(load_array(tmp_path / "16.npz"), x)
    (tmp_path / "batches").mkdir()  # their generator writes one .npz per batch into a folder
    parts = [their_samples(tmp_path / "batches" / f"{c}.npz", 3, i, str(tmp_path / "pwned")) for i,
             c in enumerate("ab")]
    np.testing.assert_array_equal(load_array(tmp_path / "batches"), np.concatenate(parts))
    with pytest.raises(Mem2genError, match="'args'"):
        load_array(f"{tmp_path / '16.npz'}:args")  # naming the pickled member is refused, not run
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_sweep_over_their_checkpoints_and_sample_sets(tmp_path, capsys):
    """A folder of K.pt files (copies of the fixture), then the same with their K.npz sets: each gives a
    phase diagram without training; the brought samples are S_eval and S' as they are."""
    ck, sets = tmp_path / "ck", tmp_path / "sets"
    ck.mkdir()
    sets.mkdir()
    made = {}
    for k in (16, 32):
        (ck / f"{k}.pt").write_bytes((AUTHORS / "16.pt").read_bytes())
        made[k] = their_samples(sets / f"{k}.npz", 8 + 2 * k, k, str(tmp_path / "pwned"))
    base = ["sweep", "--data", "digits", "--sizes", "16,32", "--checkpoints", ck, "--quiet"]
    (tmp_path / "c.yaml").write_text("n_eval: 8\nsynthetic_factor: 2\nsample_steps: 4\nsampler: ddim\n"
                                     "bootstrap_iterations: 50\nquality_check: false\n")
    assert cli(*base, "--config", tmp_path / "c.yaml", "--out", tmp_path / "sampled") == 0
    assert cli(*base, "--samples", sets, "--config", tmp_path / "c.yaml", "--out", tmp_path / "brought") == 0
    for run in ("sampled", "brought"):
        assert (tmp_path / run / "phase.png").exists()
        assert len((tmp_path / run / "results.csv").read_text().splitlines()) == 3
    for k in (16, 32):
        p = tmp_path / "brought" / "points" / f"K={k}"
        np.testing.assert_array_equal(np.load(p / "eval.npy"), made[k][:8])
        np.testing.assert_array_equal(np.load(p / "synthetic.npy"), made[k][8:8 + 2 * k])
    assert cli("status", tmp_path / "brought", "--verify") == 0
    assert not (tmp_path / "pwned").exists()
    # a brought set replaced after its point imported it: refused on resume, naming K (it was ignored before)
    keep = (sets / "32.npz").read_bytes()
    their_samples(sets / "32.npz", 8 + 2 * 32, 99, str(tmp_path / "pwned"))
    assert cli(*base, "--samples", sets, "--config", tmp_path / "c.yaml", "--out", tmp_path / "brought") == 2
    assert "K=32" in capsys.readouterr().err
    (sets / "32.npz").write_bytes(keep)
    assert cli(*base, "--samples", sets, "--config", tmp_path / "c.yaml", "--out", tmp_path / "brought") == 0
    # sets that contradict the data are refused before any work: another image shape, [0, 1] floats, too few
    for bad, why in ((np.zeros((80, 1, 6, 6), np.float32), "shape"),
                     (np.random.default_rng(0).uniform(0, 1, (80, 1, 8, 8)).astype(np.float32), "[0, 1]"),
                     (np.zeros((10, 1, 8, 8), np.float32), "needs")):
        np.savez(sets / "32.npz", samples=bad)
        assert cli(*base, "--samples", sets, "--config", tmp_path / "c.yaml", "--out", tmp_path / "x") == 2
        assert why in capsys.readouterr().err and not (tmp_path / "x").exists()
    (sets / "32.npz").unlink()  # a size without its samples is refused before any work
    assert cli(*base, "--samples", sets, "--config", tmp_path / "c.yaml", "--out", tmp_path / "x") == 2
    assert not (tmp_path / "x").exists()


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
