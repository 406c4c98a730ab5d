"""mem2gen: memorization -> spurious states -> generalization in diffusion models (Pham et al. 2025).

    import mem2gen
    res = mem2gen.classify(eval_set, train, synthetic, dataset="mnist")   # eqs 4-6
    p = mem2gen.Run("runs/quick").point(128)                              # a finished sweep point

Names are imported on first use, so ``import mem2gen`` (and the CLI's --help) does not load torch.
Diagnostics go to the standard ``logging`` logger ``"mem2gen"`` (silent unless configured;
``mem2gen -v`` shows INFO, ``-vv`` DEBUG).
"""
import logging as _logging

from .core.rule import Classification, Rule, classify, label
from .errors import Mem2genError

_EXPORTS = {
    "Neighbors": "core.neighbors", "nearest": "core.neighbors",
    "bootstrap_fractions": "core.stats", "capacities": "core.stats",
    "Run": "runs.run", "Point": "runs.run",
    "SweepConfig": "io.config", "ModelSpec": "io.config", "TrainConfig": "io.config", "load_config": "io.config",
    "run_sweep": "runs.sweep",
    "OptimalDenoiser": "models.diffusion", "Schedule": "models.diffusion",
    "load_model": "models.networks",
    "evaluate": "core.evaluate", "Evaluation": "core.evaluate",
}
__all__ = ["Classification", "Mem2genError", "Rule", "classify", "label", *_EXPORTS]
__version__ = "0.1.0"
_logging.getLogger(__name__).addHandler(_logging.NullHandler())


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mem2gen' has no attribute {name!r}")
