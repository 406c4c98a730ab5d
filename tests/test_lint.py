"""The code passes ruff (lint and import order, configured in pyproject.toml) and no module outgrows 450 lines."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "src", "tests", "scripts", "benchmarks",
                        "examples"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


def test_modules_stay_small():
    big = {str(f.relative_to(ROOT)): n for f in (ROOT / "src").rglob("*.py")
           if (n := len(f.read_text().splitlines())) > 450}
    assert not big, big
