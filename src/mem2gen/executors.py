"""Running sweep points as independent jobs through submitit: a Slurm job array (one GPU per point)
or submitit's local executor. The run directory must be on storage the jobs share."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .errors import Mem2genError


def _job(run_dir: str, k: int) -> dict:
    from .sweep import run_point

    return run_point(run_dir, k, progress=False)


def run_submitit(run: Path, ks: list[int], *, cluster: str = "slurm", partition: str | None = None,
                 gpus_per_node: int = 1, cpus_per_task: int = 8, mem_gb: int = 32, timeout_min: int = 60 * 24 * 3,
                 array_parallelism: int = 64, retries: int = 2, echo=print) -> Iterator[dict]:
    """Submit one job per size K as an array; resubmit failed points up to ``retries`` times."""
    try:
        import submitit
    except ImportError:
        raise Mem2genError("the slurm executor needs submitit: pip install 'mem2gen[slurm]'") from None
    if not ks:
        return
    ex = submitit.AutoExecutor(folder=str(run / "jobs" / "%j"), cluster=None if cluster == "slurm" else cluster)
    if cluster == "slurm" and ex.cluster != "slurm":
        raise Mem2genError("no Slurm cluster found (sbatch is not on PATH); use --executor local")
    params = dict(timeout_min=timeout_min, cpus_per_task=cpus_per_task, mem_gb=mem_gb, name="mem2gen")
    if ex.cluster == "slurm":
        params |= dict(gpus_per_node=gpus_per_node, slurm_array_parallelism=array_parallelism)
        if partition:
            params["slurm_partition"] = partition
    ex.update_parameters(**params)
    pending = list(ks)
    for attempt in range(retries + 1):
        jobs = ex.map_array(_job, [str(run)] * len(pending), pending)
        echo(f"submitted {len(jobs)} job(s) for K = {pending} ({ex.cluster}, attempt {attempt + 1})")
        failed = []
        for k, job in zip(pending, jobs):
            try:
                yield job.result()
            except Exception as e:  # noqa: BLE001 - a failed job is reported and resubmitted
                echo(f"K={k}: job {job.job_id} failed ({type(e).__name__}: {str(e).splitlines()[-1][:200]})")
                failed.append(k)
        if not failed:
            return
        pending = failed
    raise Mem2genError(f"points K = {pending} failed {retries + 1} times; see {run / 'jobs'} for their logs")
