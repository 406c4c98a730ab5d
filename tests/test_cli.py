"""Checks shared by every CLI command."""
import inspect
import subprocess
import sys

import click
import pytest

from conftest import cli
from mem2gen.cli import cli as group


def commands(g=group, prefix=()):
    for name, cmd in g.commands.items():
        if isinstance(cmd, click.Group):
            yield from commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


ALL = list(commands())
# options a command has for itself, not for its library call
CLI_ONLY = {"out", "quiet", "help", "data", "sizes", "steps", "device", "n", "size", "model", "train_path",
            "eval_path", "synthetic_path", "paper", "doubling_from", "run_dir", "run_dirs", "verify", "threads", "runs"}


def test_every_command_is_listed():
    names = {" ".join(p) for p, _ in ALL}
    assert names == {"classify", "demo", "train", "sample", "sweep", "sizes", "report", "status", "landscape",
                     "attractors", "basins",
                     "calibrate", "toy",
                     "dynamics", "compare", "memory hopfield-capacity", "memory dense", "memory bridge", "pool"}


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) for p, _ in ALL])
def test_defaults_are_the_librarys(path, cmd):
    """Every option's default is its library function's default: one place for each default."""
    fns = getattr(cmd.callback, "library", ())
    params = {}
    for fn in fns:
        params |= {n: p.default for n, p in inspect.signature(fn).parameters.items()}
    for opt in cmd.params:
        default = None if opt.required or "UNSET" in repr(opt.default) else opt.default
        if opt.name in params:
            lib = params[opt.name]
            lib = None if lib is inspect.Parameter.empty else lib
            assert default == lib, (path, opt.name, default, lib)
        else:
            # an option with a default that no library signature declares would be a second source
            assert opt.name in CLI_ONLY or default in (None, False), (path, opt.name, default)


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) for p, _ in ALL])
def test_help_and_bad_option(path, cmd, capsys):
    assert cli(*path, "--help") == 0
    assert cmd.help.split()[0] in capsys.readouterr().out
    assert cli(*path, "--no-such-option") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mem2gen: error:") and "no-such-option" in err[0]


def test_help_does_not_load_torch():
    code = "import sys; from mem2gen.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n" \
           "assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_library_rule_defaults_agree_with_cli(tmp_path):
    """`classify(..., rule="absolute")` from Python uses the absolute rule's thresholds, as the CLI does."""
    import numpy as np

    from mem2gen import classify
    from mem2gen.core.rule import rule_settings

    assert rule_settings(rule="absolute") == ("l2", 0.03, 0.02)
    assert rule_settings() == ("l2", 1 / 3, 0.28)
    assert rule_settings(dataset="cifar10") == ("lpips", 1 / 3, 0.175)
    x = np.random.default_rng(0).uniform(-1, 1, (30, 4)).astype(np.float32)
    res = classify(x[:10], x[10:], distance="features", rule="absolute")
    assert (res.delta_m, res.delta_s) == (0.03, 0.02)


def test_config_reference_is_current():
    """docs/config.md documents every sweep config key: it is describe()'s output, regenerated."""
    from pathlib import Path

    from mem2gen.io.config_doc import describe, presets_table

    text = (Path(__file__).parents[1] / "docs" / "config.md").read_text()
    assert text.endswith(describe()), "regenerate docs/config.md from mem2gen.io.config_doc.describe()"
    assert presets_table() in text, "regenerate docs/config.md's presets from mem2gen.io.config_doc.presets_table()"
    assert all(f"`{k}`" in text for k in ("sizes", "train.batching", "model.dropout", "quality_check"))
