"""Torch threads on a busy machine: `mem2gen train --data digits --size 8 --steps 400` (the quick preset's
MLP) with mem2gen's default thread count (the free cores, mem2gen.threads), with torch's old default
(one thread per core, forced by --threads), and with one thread; first on an idle machine, then with
one, then two other processes spinning (as a second job or a test run does). Each configuration runs in
its own process, start-up included; ratios are against one thread in the same run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine

MEM2GEN = str(Path(sys.executable).with_name("mem2gen"))


def train_seconds(threads: int | None) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MEM2GEN_THREADS")}
    with tempfile.TemporaryDirectory() as d:
        cmd = [MEM2GEN] + (["--threads", str(threads)] if threads else []) + [
            "train", "--data", "digits", "--size", "8", "--steps", "400", "--out", d, "--quiet"]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        return time.perf_counter() - t


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    out = {"machine": machine(), "cores": cores}
    for others in (0, 1, 2):
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(others)]
        try:
            time.sleep(1.0 if others else 0.0)
            ours, percore, one = train_seconds(None), train_seconds(cores), train_seconds(1)
        finally:
            for p in spinners:
                p.kill()
        out[f"{others} busy"] = {"mem2gen_default_s": round(ours, 2), f"threads_{cores}_s": round(percore, 2),
                                 "one_thread_s": round(one, 2), "default_over_one": round(ours / one, 2),
                                 "per_core_over_one": round(percore / one, 2)}
        print(f"{others} other processes: mem2gen's default {ours:.1f} s, {cores} threads {percore:.1f} s, "
              f"one thread {one:.1f} s")
    (Path(__file__).parent / "last_threads.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
