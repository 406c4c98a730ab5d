"""Where a sweep's points run. One small interface: ``executor.map(job, ks)`` runs ``job(k)`` for
every point (``k``: its key, the size K or "K.r<replicate>") and yields each finished point's record
(``{"K": k, ...times}``) as it arrives.

- :class:`Sequential`: one point after another in this process;
- :class:`Devices`: one worker process per device (``cuda:0``, ``cuda:1``, ...), each taking the next
  point; a worker that dies fails its point with a message naming it, never a hang;
- :class:`Submitit`: a submitit job array on Slurm (one GPU per point) or submitit's local backend;
  failed points are resubmitted. The run directory must be on storage the jobs share.

``job`` is any picklable callable ``job(k, device=None) -> dict``; the sweep passes
:class:`mem2gen.runs.sweep.PointJob`. This module knows nothing of sweeps.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Callable, Iterator

from ..errors import Mem2genError, check
from ..io.threads import apply, per_worker

EXECUTORS = ("local", "slurm", "submitit-local")


class Sequential:
    """Every point in this process, one after another (on ``device`` when one is given)."""

    def __init__(self, *, echo=print, device: str | None = None):
        self.echo, self.device = echo, device

    def map(self, job: Callable, ks: list[int]) -> Iterator[dict]:
        start = time.perf_counter()
        for i, k in enumerate(ks):
            t = time.perf_counter()
            self.echo(f"[{i + 1}/{len(ks)}] K={k}")
            yield job(k) if self.device is None else job(k, device=self.device)
            left = len(ks) - i - 1
            pace = (time.perf_counter() - start) / (i + 1)
            eta = f"; about {pace * left / 60:.0f} min left at this pace" if left else ""
            self.echo(f"    K={k} done in {time.perf_counter() - t:.0f} s{eta}")


def _exit_with(parent: int) -> None:
    """End this worker as soon as the process that started it is gone (killed, say): a point is never
    left training for nobody, holding cores and a point folder that a new sweep would then share."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(3)


def _worker(job, device: str, wid: int, jobs, results, threads: int | None = None, parent: int | None = None) -> None:
    # SimpleQueues write synchronously: a message sent is in the pipe even if the process is killed next
    if parent:
        import threading

        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    if threads:  # CPU workers share the cores: each its part (mem2gen.threads)

        apply(threads)
    if os.environ.get("MEM2GEN_DETERMINISTIC") == "1":  # `mem2gen --deterministic` holds in the workers too
        from ..core.kernels import deterministic

        deterministic()
    while True:
        k = jobs.get()
        if k is None:
            return
        results.put({"type": "start", "worker": wid, "K": k})
        try:
            results.put({"type": "done", "worker": wid, "K": k, "record": job(k, device=device)})
        except Exception as e:  # noqa: BLE001 - reported to the parent, which raises at the end
            results.put({"type": "error", "worker": wid, "K": k, "error": f"{type(e).__name__}: {e}"})


class Devices:
    """One worker process per device, each taking the next point from a shared queue."""

    def __init__(self, devices: list[str], *, echo=print, poll_s: float = 0.5, grace_s: float = 2.0):
        self.devices, self.echo, self.poll_s, self.grace_s = list(devices), echo, poll_s, grace_s

    def map(self, job: Callable, ks: list[int]) -> Iterator[dict]:
        ctx = mp.get_context("spawn")
        jobs, results = ctx.SimpleQueue(), ctx.SimpleQueue()
        for k in [*ks, *[None] * len(self.devices)]:  # one stop sign per worker
            jobs.put(k)

        n_cpu = sum(str(d).startswith("cpu") for d in self.devices)
        threads = per_worker(n_cpu) if n_cpu else None
        procs = [ctx.Process(target=_worker, args=(job, dev, i, jobs, results,
                                                   threads if str(dev).startswith("cpu") else None, os.getpid()),
                             daemon=True)
                 for i, dev in enumerate(self.devices)]
        for p in procs:
            p.start()
        self.echo(f"running {len(ks)} jobs on {len(procs)} devices: {', '.join(self.devices)}")
        running: dict[int, int] = {}  # worker -> the point it is on
        dead_since: dict[int, float] = {}  # a dead worker's last messages may still be in flight
        finished, errors = set(), []
        try:
            while len(finished) < len(ks):
                if results.empty():
                    time.sleep(self.poll_s)
                    now = time.monotonic()
                    for i, p in enumerate(procs):
                        if i in running and not p.is_alive():
                            if now - dead_since.setdefault(i, now) < self.grace_s:
                                continue
                            k = running.pop(i)
                            finished.add(k)
                            errors.append(f"K={k}: the worker on {self.devices[i]} died (exit code {p.exitcode})")
                            self.echo(f"    {errors[-1]}")
                    if not running and not any(p.is_alive() for p in procs) and results.empty():
                        errors.append(f"K={sorted(set(ks) - finished, key=str)}: not run (no worker left)")
                        break
                    continue
                yield from self._handle(results.get(), running, finished, errors)
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
                p.join(timeout=5)
        if errors:
            raise Mem2genError("some points failed (run the command again to retry them): " + "; ".join(errors))

    def _handle(self, msg, running, finished, errors):
        k, wid = msg["K"], msg["worker"]
        if msg["type"] == "start":
            running[wid] = k
            return
        running.pop(wid, None)
        finished.add(k)
        if msg["type"] == "error":
            errors.append(f"K={k}: {msg['error']}")
            self.echo(f"    K={k} failed: {msg['error']}")
        else:
            self.echo(f"    K={k} done on {self.devices[wid]}")
            yield msg["record"]


class Requeued:
    """A job that Slurm may stop at its time limit: submitit signals it shortly before, and ``checkpoint``
    submits it again with the same key (a point resumes from its run folder, so nothing is lost but the
    minutes since its last checkpoint)."""

    def __init__(self, job: Callable):
        self.job = job

    def __call__(self, *args, **kwargs):
        return self.job(*args, **kwargs)

    def checkpoint(self, *args, **kwargs):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


class Submitit:
    """A submitit job array: Slurm (``cluster="slurm"``) or submitit's local backend. Every setting is
    submitit's own (:meth:`submitit.AutoExecutor.update_parameters`), written by it as ``#SBATCH`` lines."""

    def __init__(self, folder, *, cluster: str = "slurm", partition: str | None = None, gpus_per_node: int = 1,
                 cpus_per_task: int = 8, mem_gb: int = 32, timeout_min: int = 60 * 24,
                 account: str | None = None, qos: str | None = None, constraint: str | None = None,
                 extra: tuple = (), requeues: int = 3, array_parallelism: int = 64, retries: int = 2, echo=print):
        self.folder, self.cluster, self.retries, self.echo = folder, cluster, retries, echo
        check(all(isinstance(v, int) and not isinstance(v, bool) and v >= lo for v, lo in
                  ((gpus_per_node, 0), (cpus_per_task, 1), (mem_gb, 1), (timeout_min, 1), (requeues, 0))),
              "Slurm: --gpus >= 0, --cpus-per-task, --mem-gb and --timeout-min >= 1, whole numbers")
        self.params = dict(timeout_min=timeout_min, cpus_per_task=cpus_per_task, mem_gb=mem_gb, name="mem2gen")
        self.requeues = requeues
        self.slurm = dict(gpus_per_node=gpus_per_node, slurm_array_parallelism=array_parallelism)
        for key, value in (("partition", partition), ("account", account), ("qos", qos),
                           ("constraint", constraint)):
            if value:
                self.slurm[f"slurm_{key}"] = value
        more = {}
        for line in extra or ():  # "--key=value", "key=value" or "--flag": one #SBATCH line each
            key, eq, value = str(line).strip().removeprefix("#SBATCH").strip().lstrip("-").partition("=")
            check(key and key.replace("-", "").replace("_", "").isalnum(),
                  f"--sbatch {line!r}: give an #SBATCH option as key=value (e.g. --sbatch exclude=node7)")
            more[key.replace("-", "_")] = value if eq else True
        if more:
            self.slurm["slurm_additional_parameters"] = more

    def map(self, job: Callable, ks: list[int]) -> Iterator[dict]:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise Mem2genError("the slurm executor needs submitit: pip install 'mem2gen[slurm]'") from None
        if not ks:
            return
        ex = self.executor()
        if self.cluster == "slurm" and ex.cluster != "slurm":
            raise Mem2genError("no Slurm cluster found (sbatch is not on PATH); use --executor local")
        pending = list(ks)
        for attempt in range(self.retries + 1):
            try:
                jobs = self._submit(ex, Requeued(job) if ex.cluster == "slurm" else job, pending)
            except Exception as e:  # noqa: BLE001 - sbatch's refusal (partition, time limit, account): one line
                msg = str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__
                raise Mem2genError(f"Slurm did not accept the job array ({msg}); check --partition, --account, "
                                   f"--qos, --gpus, --mem-gb and --timeout-min (now {self.params['timeout_min']} "
                                   "min) against the partition's limits") from None
            self.echo(f"submitted {len(jobs)} job(s) for K = {pending} ({ex.cluster}, attempt {attempt + 1})")
            failed = []
            for k, j in zip(pending, jobs):
                try:
                    yield j.result()
                except Exception as e:  # noqa: BLE001 - a failed job is reported and resubmitted
                    self.echo(f"K={k}: job {j.job_id} failed ({type(e).__name__}: {str(e).splitlines()[-1][:200]})")
                    failed.append(k)
            if not failed:
                return
            pending = failed
        raise Mem2genError(f"points K = {pending} failed {self.retries + 1} times; see {self.folder} for their logs")


    def executor(self, cluster: str | None = None):
        """submitit's executor with every setting (``cluster``: force one, e.g. "slurm" to see its script)."""
        import submitit

        cluster = cluster or (None if self.cluster == "slurm" else self.cluster)
        ex = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=cluster,
                                   **({"slurm_max_num_timeout": self.requeues} if cluster in (None, "slurm") else {}))
        ex.update_parameters(**self.params, **(self.slurm if ex.cluster == "slurm" else {}))
        return ex

    def script(self) -> str:
        """The batch script submitit would submit for a job (its ``#SBATCH`` lines): what reaches Slurm."""
        return self.executor("slurm")._executor._make_submission_file_text("python -m submitit", "JOB")

    @staticmethod
    def _submit(ex, job, keys) -> list:
        """A job array; on submitit's local backend with GPUs, one job per point, each on its own GPU in
        turn (its local array would give every job the first GPU)."""
        if ex.cluster != "local":
            return ex.map_array(job, keys)
        import torch

        n_gpu = torch.cuda.device_count()
        if n_gpu == 0:
            return ex.map_array(job, keys)
        jobs = []
        for i, k in enumerate(keys):
            ex.update_parameters(gpus_per_node=1, visible_gpus=[i % n_gpu])
            jobs.append(ex.submit(job, k))
        return jobs


def make_executor(name: str = "local", *, folder=None, devices: list[str] | None = None, slurm: dict | None = None,
                  device: str | None = None, echo=print):
    """The executor called ``name``: local, slurm, or submitit-local. Where local points run obeys the
    user: several ``devices`` → one worker process each; one device (in ``devices``, or the configured
    ``device``) → one after another on it; neither → one worker per visible GPU when there are several,
    else one after another on the default device."""
    if name == "local":
        if devices is not None and len(devices) > 1:
            return Devices(devices, echo=echo)
        if devices:
            return Sequential(echo=echo, device=devices[0])
        if device is not None:
            return Sequential(echo=echo, device=device)
        import torch

        n_gpu = torch.cuda.device_count()
        return Devices([f"cuda:{i}" for i in range(n_gpu)], echo=echo) if n_gpu > 1 else Sequential(echo=echo)
    if name in ("slurm", "submitit-local"):
        return Submitit(folder, cluster="slurm" if name == "slurm" else "local", echo=echo, **(slurm or {}))
    raise Mem2genError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")
