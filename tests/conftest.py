import numpy as np
import pytest

from mem2gen.cli import main


def cli(*args) -> int:
    """Run the `mem2gen` command in-process; return its exit code."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    return e.value.code


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def brute_knn(q, r, k, exclude_self=False):
    """Reference: all pairwise float64 distances, stable argsort."""
    q = np.asarray(q, dtype=np.float64).reshape(len(q), -1)
    r = np.asarray(r, dtype=np.float64).reshape(len(r), -1)
    d = np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1))
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    i = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, i, 1), i


def finished_sweep(tmp_path_factory, name: str, settings: dict):
    """A sweep run to the end in a fresh folder (for module-scoped fixtures): its path."""
    from mem2gen.io.config import SweepConfig
    from mem2gen.runs.sweep import run_sweep

    d = tmp_path_factory.mktemp(name) / "run"
    run_sweep(SweepConfig.from_dict(settings), d, progress=False, echo=lambda *a: None)
    return d
