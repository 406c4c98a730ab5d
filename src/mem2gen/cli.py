"""The ``mem2gen`` command: the group, its global options and the error handling. Each command lives in
one module of :mod:`mem2gen.commands` (its click command, the work it calls and its printing); this
module only registers them. User mistakes print one line and exit 2.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import traceback

import click

from .commands import calibrate, classify, dynamics, landscape, memory, model, sweep
from .errors import Mem2genError, check
from .io import threads as cpu_threads


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mem2gen")
@click.option("--threads", type=click.IntRange(min=1), default=None, envvar="MEM2GEN_THREADS", show_envvar=True,
              help="CPU threads for torch. [default: the cores not already busy (affinity less the load "
                   "average), shared among a command's workers; torch's one-per-core slows down on a busy machine]")
@click.option("--deterministic", is_flag=True, envvar="MEM2GEN_DETERMINISTIC", show_envvar=True,
              help="Deterministic GPU kernels: a CUDA run repeats bit for bit (slower). CPU runs are without it.")
@click.option("-v", "--verbose", count=True,
              help="Diagnostics on stderr: -v what each stage chose and how long it took (INFO), -vv more (DEBUG).")
def cli(threads, deterministic, verbose):
    """mem2gen: memorization -> spurious states -> generalization in diffusion models."""
    set_verbosity(verbose)
    most = 4 * cpu_threads.usable_cores()  # past a few threads per core nothing runs faster, and torch may crash
    check(threads is None or threads <= most, f"--threads (or MEM2GEN_THREADS) = {threads}: this machine has "
                                              f"{most // 4} usable cores; give at most {most}")
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    check(not omp or (omp.isascii() and omp.isdigit() and int(omp) >= 1),
          f"OMP_NUM_THREADS = {omp!r} is not a whole number of threads >= 1; unset it or give one")
    user = threads or (min(int(omp), most) if omp else None)  # OpenMP's variable, bounded by the machine
    cpu_threads.given = user or None
    if threads:
        set_threads(threads)
    elif not user:
        busy = cpu_threads.load()
        n = cpu_threads.default_threads(busy=busy)
        cpu_threads.apply(n)
        logging.getLogger("mem2gen").info("threads: %d (%d usable cores, %.1f busy; --threads overrides)", n,
                                          cpu_threads.usable_cores(), busy)
    if deterministic:  # also for the worker processes a sweep starts (they read the variable)
        from .core.kernels import deterministic as set_deterministic  # torch

        os.environ["MEM2GEN_DETERMINISTIC"] = "1"
        set_deterministic()


def set_verbosity(n: int) -> None:
    """Route the "mem2gen" logger to stderr at INFO (1) or DEBUG (≥ 2); 0 leaves it silent. Only
    mem2gen's logger is touched (not the root logger); at DEBUG diffusers' own notices show too."""
    log = logging.getLogger("mem2gen")
    for h in [h for h in log.handlers if getattr(h, "_mem2gen_cli", False)]:
        log.removeHandler(h)
    if n <= 0:
        log.setLevel(logging.NOTSET)
        return
    class Stderr(logging.StreamHandler):  # the stderr of the moment (not the one at set-up)
        def emit(self, record):
            self.stream = sys.stderr
            super().emit(record)

    h = Stderr()
    h.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    h._mem2gen_cli = True
    log.addHandler(h)
    log.setLevel(logging.INFO if n == 1 else logging.DEBUG)


def set_threads(n: int) -> None:
    """Torch's intra-op threads, and OpenMP's for the worker processes it starts."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)


for _module in (classify, model, sweep, calibrate, landscape, dynamics, memory):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def _check_outs(argv) -> None:
    """Every ``--out`` a command is given, within the file system's name and path limits, before any work."""
    from .io.layout import check_path_length

    args = list(sys.argv[1:] if argv is None else argv)
    for i, a in enumerate(map(str, args)):
        if a == "--out" and i + 1 < len(args):
            check_path_length(str(args[i + 1]))
        elif a.startswith("--out="):
            check_path_length(a[len("--out="):])


def main(argv=None) -> None:
    """Entry point: one line and exit code 2 for a user mistake, no traceback."""
    try:
        _check_outs(argv)
        rv = cli.main(args=argv, prog_name="mem2gen", standalone_mode=False)
    except Mem2genError as e:
        click.echo(f"mem2gen: error: {e}", err=True)
        sys.exit(2)
    except click.ClickException as e:  # a bad option or value: one line too, not click's usage block
        click.echo(f"mem2gen: error: {e.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except MemoryError:
        click.echo("mem2gen: error: out of memory; use smaller sets or a machine with more memory", err=True)
        sys.exit(2)
    except RuntimeError as e:
        if "can't allocate memory" in str(e) or "Cannot allocate memory" in str(e):  # torch's CPU allocator
            asked = re.search(r"allocate (\d+) bytes", str(e))
            size = f" ({int(asked.group(1)) / 1e9:,.3g} GB asked at once)" if asked else ""
            click.echo(f"mem2gen: error: out of memory{size}; lower --batch (train, sample), sample_batch (sweep "
                       "config), --n or the sets' sizes", err=True)
            sys.exit(2)
        if type(e).__name__ != "OutOfMemoryError":  # torch's (CUDA) out-of-memory is a RuntimeError
            _internal_error(e)
        click.echo(f"mem2gen: error: out of device memory ({str(e).splitlines()[0][:120]}); lower sample_batch "
                   "(sweep config), --batch (train, sample) or --n-samples (landscape), or use --device cpu", err=True)
        sys.exit(2)
    except OSError as e:
        # ENOSPC, EACCES, EROFS, ENOTDIR, EISDIR, ENOENT, ELOOP, EFBIG (a file-size limit), EDQUOT
        if e.errno in (28, 13, 30, 20, 21, 2, 40, 27, 122, 36):  # 36: ENAMETOOLONG
            click.echo(f"mem2gen: error: {e.strerror}" + (f": {e.filename}" if e.filename else "")
                       + ("; free space (or raise the limit) or choose a writable --out; the command resumes"
                          if e.errno in (28, 13, 30, 27, 122) else ""), err=True)
            sys.exit(2)
        _internal_error(e)
    except Exception as e:
        full = str(e)
        disk_full = ("os error 28", "os error 27", "os error 122", "code: 28", "code: 27", "StorageFull",
                     "FileTooLarge")
        if type(e).__name__ == "SafetensorError" and any(w in full for w in disk_full):
            click.echo("mem2gen: error: the disk is full (or a file-size limit was reached) while saving weights; "
                       "free space or raise the limit, then run the command again: it resumes", err=True)
            sys.exit(2)
        _internal_error(e)
    sys.exit(rv if isinstance(rv, int) else 0)


def _internal_error(e: BaseException) -> None:
    fd, path = tempfile.mkstemp(prefix="mem2gen-crash-", suffix=".txt")
    with open(fd, "w") as f:
        f.write(f"mem2gen {' '.join(sys.argv[1:])}\n\n")
        traceback.print_exception(e, file=f)
    first = str(e).splitlines()[0][:200] if str(e) else ""
    click.echo(f"mem2gen: internal error: {type(e).__name__}: {first} (full traceback: {path}; please report it)",
               err=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
