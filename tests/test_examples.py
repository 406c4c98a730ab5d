"""The examples run end to end (small settings: the mechanics, not the science)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_own_model_example(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "own_model.py"), "--out", str(tmp_path), "--steps",
                        "30",
                        "--n-eval", "40", "--cap", "64"], capture_output=True, text=True, timeout=600,
                       env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "phase.png").exists() and (tmp_path / "K=64" / "pipeline" / "model_index.json").exists()
    lines = [x for x in r.stdout.splitlines() if x.startswith("K=")]
    assert len(lines) == 3 and "memorized" in lines[0] and "MC =" in r.stdout
