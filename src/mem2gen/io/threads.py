"""What this machine has free: how many CPU threads torch should use when the user does not say (the
cores this process may run on that are not already busy, shared among the workers of one command), and
how much memory a command may count on before it allocates.

torch's default is one thread per core. With another CPU-bound process running, its threads then
compete for the same cores and every parallel region waits for the slowest: on a 2-core machine a
training run took 2.1× as long as with one thread (BENCHMARKS.md, threads). So mem2gen counts the
cores it may use (the process's CPU affinity) less the busy ones (how busy those cores were over the
0.1 s before, from /proc/stat; elsewhere the 1-minute load average, which lags) and gives each worker
an equal share, at least one. ``mem2gen --threads N``
(or ``MEM2GEN_THREADS``, or ``OMP_NUM_THREADS``) overrides it.
"""
from __future__ import annotations

import os

given: int | None = None  # the count the user chose (--threads, MEM2GEN_THREADS or OMP_NUM_THREADS), if any


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _cpu_times(cpus: set) -> tuple[int, int]:
    """(busy, total) jiffies summed over ``cpus`` from /proc/stat."""
    busy = total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                v = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
                total += sum(v)
                busy += sum(v) - v[3] - v[4]
    return busy, total


def load(interval: float = 0.1) -> float:
    """Cores busy with other work now: the busy share of this process's cores over ``interval`` seconds
    (this process sleeps meanwhile, so it counts only the others) times their number; where /proc/stat is
    missing, the 1-minute load average; 0 where the OS says neither."""
    import time

    try:
        cpus = os.sched_getaffinity(0)
        b0, t0 = _cpu_times(cpus)
        time.sleep(interval)
        b1, t1 = _cpu_times(cpus)
        return len(cpus) * (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
    except (AttributeError, OSError, ValueError):
        pass
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def default_threads(*, workers: int = 1, cores: int | None = None, busy: float | None = None) -> int:
    """Threads per worker: the free cores (``cores`` less ``busy`` rounded, at least one) split evenly
    among ``workers``, at least one each. ``cores``/``busy`` default to this machine's now.

    Parameters
    ----------
    workers : int
        Worker processes sharing the machine.
    cores, busy : int and float, optional
        The machine's cores and their busy share (default: read now).

    Returns
    -------
    int
        Threads per worker, at least 1.
    """
    cores = usable_cores() if cores is None else cores
    busy = load() if busy is None else busy
    free = max(1, cores - min(cores, int(busy + 0.5)))
    return max(1, free // max(1, workers))


def per_worker(workers: int) -> int:
    """Threads for each of ``workers`` processes sharing this machine: the user's count where given,
    else the free cores split among them."""
    return given if given else default_threads(workers=workers)


def apply(n: int) -> None:
    """Use ``n`` threads: torch's intra-op threads if torch is loaded, else OpenMP's variable, which torch
    reads when it loads (so commands that never load torch do not pay for it); worker processes
    inherit the variable."""
    import sys

    os.environ["OMP_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def available_memory() -> int | None:
    """Bytes this process can still allocate: the smaller of the system's available memory
    (/proc/meminfo's MemAvailable) and what its cgroup allows beyond what it uses; None where neither is
    known."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        used = int(open("/sys/fs/cgroup/memory.current").read().strip())
        if limit != "max":
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None
