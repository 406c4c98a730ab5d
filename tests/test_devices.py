"""Devices routed where the user says, precision scoped to the code that needs it, out of memory as one
line. CUDA is simulated: a CPU torch patched to report two GPUs, where any real CUDA call fails
("Torch not compiled with CUDA enabled"), so a command that touches CUDA cannot pass."""
import numpy as np
import pytest
import torch

from conftest import cli
from mem2gen.runs.executors import Devices, Sequential, make_executor

TINY = dict(sizes=[2, 8], n_eval=20, sample_steps=3, sample_batch=16, bootstrap_iterations=50, quality_check=False,
            train={"steps": 6, "batch": 8, "checkpoint_every": 3, "save_steps": [3, 6]})


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_the_executor_obeys_the_user(two_gpus):
    cases = [  # (devices, configured device) -> (executor, its device or devices)
        (None, None, Devices, ["cuda:0", "cuda:1"]),  # nothing said: every visible GPU
        (None, "cpu", Sequential, "cpu"),  # one configured device: everything on it
        (None, "cuda:1", Sequential, "cuda:1"),
        (["cuda:1"], None, Sequential, "cuda:1"),  # one device given: one after another there
        (["cpu"], "cuda:0", Sequential, "cpu"),  # --devices wins over the config's device
        (["cpu", "cpu"], None, Devices, ["cpu", "cpu"]),
    ]
    for devices, device, kind, where in cases:
        ex = make_executor("local", devices=devices, device=device, echo=lambda *a: None)
        assert type(ex) is kind, (devices, device)
        assert (ex.devices if kind is Devices else ex.device) == where, (devices, device)


def test_one_gpu_or_none_runs_in_this_process(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    ex = make_executor("local", echo=lambda *a: None)
    assert type(ex) is Sequential and ex.device is None


@pytest.mark.slow
def test_cpu_commands_never_touch_cuda(two_gpus, tmp_path, capsys):
    """Under a torch that reports two GPUs, `--device cpu` (and `--devices cpu`) keeps every stage, check
    and command on the CPU: sweep (training, sampling, the null and off-manifold searches), landscape,
    dynamics, toy."""
    import json

    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(TINY))
    run = tmp_path / "run"
    assert cli("sweep", "--config", cfg, "--device", "cpu", "--out", run, "--quiet") == 0, capsys.readouterr().err
    assert cli("sweep", "--config", cfg, "--devices", "cpu", "--out", tmp_path / "run2", "--quiet") == 0
    assert (tmp_path / "run2" / "results.csv").read_bytes() == (run / "results.csv").read_bytes()
    assert cli("landscape", run, "--device", "cpu", "--n-samples", "4", "--trials", "2", "--steps", "2",
               "--quiet") == 0, capsys.readouterr().err
    assert cli("dynamics", run, "--device", "cpu", "--n-eval", "8", "--synthetic-cap", "8", "--loss-items", "4") == 0, \
        capsys.readouterr().err
    assert cli("toy", "--device", "cpu", "--sizes", "2", "--steps", "5", "--out", tmp_path / "toy", "--quiet") == 0, \
        capsys.readouterr().err


def test_precision_flags_are_scoped_and_restored(monkeypatch):
    """The exact search runs its float32 pass in full fp32 whatever the caller set, and leaves the
    caller's TF32 flags as they were; so does training."""
    import mem2gen.core.neighbors as nb
    from mem2gen.core.kernels import tf32
    from mem2gen.io.config import TrainConfig
    from mem2gen.models.networks import MLP
    from mem2gen.models.train import train

    seen = []
    real = nb._rerank

    def spy(*a, **kw):
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return real(*a, **kw)

    monkeypatch.setattr(nb, "_rerank", spy)
    x = np.random.default_rng(0).uniform(-1, 1, (50, 6)).astype(np.float32)
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        for flag in (True, False):
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = flag
            nb.nearest(x, x, 3)
            assert seen[-1] == (False, False)  # inside: full fp32
            assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (flag, flag)
            train(MLP(sample_shape=(6,), hidden=16, depth=1), x, TrainConfig(steps=3, batch=8), progress=False)
            assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (flag, flag)
        with pytest.raises(ZeroDivisionError):  # restored on the way out of an error too
            with tf32(True):
                raise ZeroDivisionError
        assert torch.backends.cuda.matmul.allow_tf32 is False
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def test_out_of_device_memory_is_one_line(monkeypatch, tmp_path, capsys):
    """torch's OutOfMemoryError (a RuntimeError) raised inside sampling: one line naming what to lower,
    exit 2, not an internal error."""
    import mem2gen.models.sample
    from mem2gen.io.config import ModelSpec
    from mem2gen.models.networks import build_model, save_model

    save_model(build_model(ModelSpec(kind="mlp", hidden=8, depth=1), (1, 4, 4)), tmp_path / "m", meta={"step": 0})

    def oom(*a, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 40.00 GiB")

    monkeypatch.setattr(mem2gen.models.sample.diffusion, "sample", oom)
    assert cli("sample", "--model", tmp_path / "m", "--n", "4", "--steps", "2", "--out", tmp_path / "s.npy",
               "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of device memory" in err[0] and "--batch" in err[0]


def test_bad_devices_and_a_refused_job_array_are_one_line(tmp_path, capsys, monkeypatch):
    """A --devices entry that does not exist is refused before any folder is made; a job array that
    Slurm refuses (here submitit raising at submission) is one line naming the limits to check."""
    assert cli("sweep", "--sizes", "2", "--devices", "cpu,cuda:7", "--out", tmp_path / "r") == 2
    assert "cuda:7" in capsys.readouterr().err and not (tmp_path / "r").exists()
    submitit = pytest.importorskip("submitit")
    from mem2gen.runs.executors import Submitit

    class Refusing:
        cluster = "local"

        def __init__(self, **kw):
            pass

        def update_parameters(self, **kw):
            pass

        def map_array(self, *a):
            raise RuntimeError("sbatch: error: Batch job submission failed:\nRequested time limit is invalid")

    monkeypatch.setattr(submitit, "AutoExecutor", Refusing)
    from mem2gen import Mem2genError

    with pytest.raises(Mem2genError, match="Slurm did not accept.*time limit is invalid.*--timeout-min"):
        list(Submitit(tmp_path / "jobs", cluster="local", echo=lambda *a: None).map(lambda k: k, [2]))


def test_out_of_memory_in_the_network_backs_off_with_the_same_samples():
    """A network that runs out of memory on more than 8 rows: sampling splits only its calls (2, then 4
    parts) and makes the same samples as a network that never runs out; an error that is not out of
    memory, or a batch that cannot be split further, is raised as it is."""
    from mem2gen.models.diffusion import sample

    class Net(torch.nn.Module):
        def __init__(self, limit=None, error=torch.OutOfMemoryError):
            super().__init__()
            self.limit, self.error, self.calls = limit, error, []

        def forward(self, x, t):
            self.calls.append(len(x))
            if self.limit is not None and len(x) > self.limit:
                raise self.error("CUDA out of memory")
            return torch.tanh(x) * (t.view(-1, 1) / 1000.0)  # row-wise: any split gives the same numbers

    ref = sample(Net(), (32, 6), sampler="ddpm", steps=5, seed=3)
    small = Net(limit=8)
    assert torch.equal(sample(small, (32, 6), sampler="ddpm", steps=5, seed=3), ref)
    assert small.calls[:2] == [32, 16] and set(small.calls[2:]) == {8}  # 2 parts fail, 4 fit and are kept
    with pytest.raises(RuntimeError, match="out of memory"):
        sample(Net(limit=0), (4, 6), steps=2)  # one row that does not fit: nothing left to split
    with pytest.raises(ValueError):
        sample(Net(limit=8, error=ValueError), (32, 6), steps=2)


def test_deterministic_switch(monkeypatch):
    """`mem2gen --deterministic` turns on torch's deterministic algorithms (and cuBLAS's fixed workspace,
    cuDNN without autotuning) in this process and, through the variable, in a sweep's workers."""
    import os

    for var in ("MEM2GEN_DETERMINISTIC", "CUBLAS_WORKSPACE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    flags = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)
    try:
        assert cli("sizes", "--doubling", "2", "--n", "8") == 0 and not torch.are_deterministic_algorithms_enabled()
        assert cli("--deterministic", "sizes", "--doubling", "2", "--n", "8") == 0
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert os.environ["MEM2GEN_DETERMINISTIC"] == "1" and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(flags[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[1], flags[2]


def test_submitit_local_spreads_points_over_the_gpus(two_gpus, tmp_path, monkeypatch):
    """submitit's local backend gives every job of an array the first GPU; with GPUs, each point is its
    own job on the next GPU in turn."""
    submitit = pytest.importorskip("submitit")
    from mem2gen.runs.executors import Submitit

    class Done:
        job_id = "0"

        def __init__(self, value):
            self.value = value

        def result(self):
            return self.value

    class Local:
        cluster = "local"

        def __init__(self, **kw):
            self.params, self.seen = {}, []

        def update_parameters(self, **kw):
            self.params.update(kw)

        def submit(self, fn, k):
            self.seen.append((k, tuple(self.params["visible_gpus"])))
            return Done(fn(k))

        def map_array(self, *a):
            raise AssertionError("one array would put every point on GPU 0")

    made = []
    monkeypatch.setattr(submitit, "AutoExecutor", lambda **kw: made.append(Local()) or made[-1])
    out = list(Submitit(tmp_path / "jobs", cluster="local", echo=lambda *a: None).map(lambda k: {"K": k}, [2, 8, 32]))
    assert out == [{"K": 2}, {"K": 8}, {"K": 32}]
    assert made[0].seen == [(2, (0,)), (8, (1,)), (32, (0,))]


def test_a_model_keeps_its_precision_across_a_resume(tmp_path):
    """The checkpoint records the precision its model was trained in; a bf16 run is not resumed in
    another precision (here: on the CPU), an fp32 one resumes as it was."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from mem2gen import Mem2genError
    from mem2gen.io.config import TrainConfig
    from mem2gen.models.networks import MLP
    from mem2gen.models.train import STATE_FILE, train

    x = np.random.default_rng(0).uniform(-1, 1, (16, 6)).astype(np.float32)
    cfg = TrainConfig(steps=6, batch=8, checkpoint_every=3)
    train(MLP(sample_shape=(6,), hidden=16, depth=1), x, cfg, tmp_path, progress=False, stop_at=3)
    f = tmp_path / STATE_FILE
    with safe_open(str(f), framework="pt") as h:
        meta, tensors = h.metadata(), {k: h.get_tensor(k) for k in h.keys()}
    assert meta["bf16"] == "0"
    save_file(tensors, str(f), metadata={**meta, "bf16": "1"})
    with pytest.raises(Mem2genError, match="trained in bf16"):
        train(MLP(sample_shape=(6,), hidden=16, depth=1), x, cfg, tmp_path, progress=False)
    save_file(tensors, str(f), metadata=meta)
    assert train(MLP(sample_shape=(6,), hidden=16, depth=1), x, cfg, tmp_path, progress=False).step == 6


def test_the_exact_search_stays_exact_when_tf32_is_on(monkeypatch):
    """TF32 emulated on the CPU (matmul operands rounded to 10 mantissa bits while the flag is on), the
    flag left on by the caller: near-copy queries among clusters of near-identical references get the
    float64 reference's neighbours; the same search without its full-fp32 scope gets many wrong."""
    import mem2gen.core.neighbors as nb

    real_mm = torch.mm

    def tf32_mm(a, b, out=None):
        if torch.backends.cuda.matmul.allow_tf32 and a.dtype == torch.float32:
            a, b = (((x.contiguous().view(torch.int32) + 0x1000) & ~0x1FFF).view(torch.float32) for x in (a, b))
        return real_mm(a, b) if out is None else real_mm(a, b, out=out)

    monkeypatch.setattr(torch, "mm", tf32_mm)
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        _near_copies_stay_exact(nb)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def _near_copies_stay_exact(nb):
    rng = np.random.default_rng(0)
    base = rng.uniform(-1, 1, (50, 784)).astype(np.float32)
    refs = np.clip(np.concatenate([base + 0.001 * rng.standard_normal((50, 784)) for _ in range(40)]), -1, 1)
    refs = refs.astype(np.float32)
    q = np.clip(refs[:500] + 0.0005 * rng.standard_normal((500, 784)), -1, 1).astype(np.float32)
    truth = nb.nearest(q, refs, 5, double=True)
    got = nb.nearest(q, refs, 5)
    assert np.array_equal(got.indices, truth.indices) and np.allclose(got.distances, truth.distances, rtol=1e-6)
    unscoped = nb.nearest.__wrapped__(q, refs, 5)  # the emulation bites: the scope is what keeps it exact
    assert (unscoped.indices != truth.indices).any(axis=1).sum() > 10


def test_thread_count_follows_the_free_cores():
    """The default thread count: usable cores less the busy ones (load rounded), at least one, split among
    workers; the user's count wins (mem2gen.threads)."""
    from mem2gen.io import threads

    assert threads.default_threads(cores=2, busy=0.0) == 2
    assert threads.default_threads(cores=2, busy=0.4) == 2
    assert threads.default_threads(cores=2, busy=1.0) == 1  # one other process: one thread
    assert threads.default_threads(cores=2, busy=7.0) == 1  # never fewer than one
    assert threads.default_threads(cores=16, busy=3.6) == 12
    assert threads.default_threads(cores=16, busy=0.0, workers=3) == 5
    assert threads.default_threads(cores=2, busy=0.0, workers=4) == 1
    try:
        threads.given = 3
        assert threads.per_worker(8) == 3
    finally:
        threads.given = None


def test_cli_sets_the_default_threads_unless_told(monkeypatch):
    """Without --threads the CLI applies the free-core count; with it, the user's count; an OMP_NUM_THREADS
    the user set is kept."""
    import torch

    from mem2gen.cli import cli
    from mem2gen.io import threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "load", lambda: 0.0)
        monkeypatch.setattr(threads, "usable_cores", lambda: 1)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        cli.main(args=["sizes", "--preset", "quick"], standalone_mode=False)
        assert torch.get_num_threads() == 1 and threads.given is None
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        cli.main(args=["--threads", "2", "sizes", "--preset", "quick"], standalone_mode=False)
        assert torch.get_num_threads() == 2 and threads.given == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        cli.main(args=["sizes", "--preset", "quick"], standalone_mode=False)
        assert threads.given == 1
    finally:
        torch.set_num_threads(before)
        threads.given = None
