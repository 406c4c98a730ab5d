"""Torch threads on a busy machine: 100 training steps of the quick preset's MLP with torch's default
thread count and with one thread, first on an idle machine, then with another process spinning on
one core (as a second job or a test run does). Each configuration runs in its own process
(`mem2gen --threads N train ...`); the ratio is default / one thread in the same run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

MEM2GEN = str(Path(sys.executable).with_name("mem2gen"))


def train_seconds(threads: int | None) -> float:
    with tempfile.TemporaryDirectory() as d:
        cmd = [MEM2GEN] + (["--threads", str(threads)] if threads else []) + [
            "train", "--data", "digits", "--size", "128", "--steps", "100", "--out", d, "--quiet"]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t


def main() -> None:
    out = {"machine": machine(), "cores": os.cpu_count()}
    for busy in (False, True):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            default, one = train_seconds(None), train_seconds(1)
        finally:
            if spinner:
                spinner.kill()
        key = "busy" if busy else "idle"
        out[key] = {"default_s": round(default, 2), "one_thread_s": round(one, 2), "ratio": round(default / one, 2)}
        print(f"{key}: default threads {default:.1f} s, one thread {one:.1f} s: default/one = {default / one:.2f}")
    (Path(__file__).parent / "last_threads.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
