"""Helpers shared by the benchmarks: timing, peak anonymous memory, machine description."""
from __future__ import annotations

import os
import platform
import threading
import time
from contextlib import contextmanager


def machine() -> str:
    import torch

    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"{dev}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")


def rss_anon_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def peak_memory(result: dict, key: str = "peak_mib"):
    """Peak anonymous resident memory above the level at entry, sampled every 20 ms."""
    base = rss_anon_mib()
    peak = [base]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_anon_mib())
            time.sleep(0.02)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        result[key] = max(peak[0], rss_anon_mib()) - base


def timed(fn, *args, repeat: int = 1, **kw):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args, **kw)
        best = min(best, time.perf_counter() - t)
    return best, out
