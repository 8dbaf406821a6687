"""Run a function in a forked child under a memory limit and a wall-clock timeout.

For tests that must show that hostile input (a decompression bomb, a YAML billion-laughs
document, ...) is refused within bounded memory and time, rather than only that it is
refused eventually:

    outcome = run_limited(decompress, bomb, memory=512 * MiB, timeout=5)
    assert outcome.kind == "livelab_error" and "more than" in outcome.message

The child gets ``RLIMIT_AS`` = its address space at the fork (the test process's) plus
``memory``, so the limit is "this much more than the caller already uses".  Going over it
makes allocations fail in the child (usually a ``MemoryError``), never in the test process.

``run_command_limited`` / ``run_python_limited`` do the same for a whole command (a CLI verb
or ``python -c``), with the cap set in the child before it starts:

    proc = run_python_limited("from harness import safeload; ...", memory=GiB, timeout=30)

``zeros_xz`` / ``zeros_gzip`` make decompression bombs quickly (zeros compressed in chunks,
cached per size); concatenate copies for a bigger one.
"""
from __future__ import annotations

import functools
import lzma
import os
import pickle
import resource
import select
import signal
import subprocess
import sys
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MiB = 1024 * 1024

RESULT = "result"              # the function returned; ``value`` is what it returned
LIVELAB_ERROR = "livelab_error"  # it raised LivelabError; ``message`` is the error's text
EXCEPTION = "exception"        # it raised anything else (MemoryError included); ``message`` is "Type: text"
KILLED = "killed"              # the child died of a signal; ``message`` names it
TIMEOUT = "timeout"            # it ran past ``timeout`` and was killed


@dataclass(frozen=True)
class Outcome:
    kind: str
    value: Any = None
    message: str = ""
    seconds: float = 0.0
    detail: str = ""   # the child's traceback for EXCEPTION

    def __str__(self) -> str:
        text = f"{self.kind} after {self.seconds:.2f}s"
        if self.kind == RESULT:
            return f"{text}: {self.value!r}"
        return f"{text}: {self.message}" + (f"\n{self.detail}" if self.detail else "")


def address_space() -> int:
    """This process's virtual memory size in bytes (``VmSize``, what ``RLIMIT_AS`` limits)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _child(func: Callable[..., Any], args: tuple, kwargs: dict, memory: int, write_fd: int) -> None:
    from harness.errors import LivelabError

    try:
        limit = address_space() + memory
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            report: tuple = (RESULT, func(*args, **kwargs), "", "")
        except LivelabError as exc:
            report = (LIVELAB_ERROR, None, str(exc), "")
        except BaseException as exc:
            report = (EXCEPTION, None, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        try:
            payload = pickle.dumps(report)
        except Exception:
            payload = pickle.dumps((report[0], repr(report[1]), report[2], report[3]))
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(payload)
    finally:
        os._exit(0)   # never run the test process's cleanup (pytest, atexit) in the child


def run_limited(func: Callable[..., Any], *args: Any, memory: int = 512 * MiB, timeout: float = 10.0,
                **kwargs: Any) -> Outcome:
    """Call ``func(*args, **kwargs)`` in a forked child with ``memory`` bytes of address space
    above the current one and ``timeout`` seconds of wall-clock time; say how it ended."""
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(func, args, kwargs, memory, write_fd)
    os.close(write_fd)
    chunks = []
    timed_out = False
    with os.fdopen(read_fd, "rb") as pipe:
        deadline = started + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                timed_out = True
                break
            chunk = os.read(pipe.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - started
    if timed_out:
        return Outcome(TIMEOUT, message=f"still running after {timeout}s", seconds=seconds)
    if os.WIFSIGNALED(status):
        return Outcome(KILLED, message=signal.Signals(os.WTERMSIG(status)).name, seconds=seconds)
    if not chunks:
        return Outcome(KILLED, message=f"child exited with status {os.WEXITSTATUS(status)} and no report",
                       seconds=seconds)
    kind, value, message, detail = pickle.loads(b"".join(chunks))
    return Outcome(kind, value, message, seconds, detail)


@functools.cache
def zeros_xz(size: int) -> bytes:
    """One xz stream (CRC32, like initrds) of ``size`` zero bytes: 64 MiB is about 10 KB, made in ~0.2 s."""
    compressor = lzma.LZMACompressor(format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=0)
    return _compress_zeros(compressor, size)


@functools.cache
def zeros_gzip(size: int) -> bytes:
    """One gzip member of ``size`` zero bytes (gzip expands at most ~1000x: 16 MiB is about 16 KB)."""
    return _compress_zeros(zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS), size)


def _compress_zeros(compressor: Any, size: int) -> bytes:
    chunk = bytes(MiB)
    pieces = [compressor.compress(chunk) for _ in range(size // MiB)]
    pieces.append(compressor.compress(bytes(size % MiB)))
    pieces.append(compressor.flush())
    return b"".join(pieces)


# ------------------------------------------------------------ whole commands

GiB = 1 << 30
REPO = Path(__file__).resolve().parents[2]


def run_command_limited(argv: list[str], *, memory: int = GiB, timeout: float = 30, input: bytes | str | None = None,
                cwd: str | Path | None = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    """``argv`` run with at most ``memory`` bytes of address space and ``timeout`` seconds.

    Runs in this checkout (``cwd`` and ``PYTHONPATH``), so ``python -m harness...`` imports the
    code under test."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    if env is None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
    data = input.encode() if isinstance(input, str) else input
    try:
        proc = subprocess.run(argv, input=data, capture_output=True, timeout=timeout, cwd=cwd, env=env,
                              preexec_fn=cap)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{argv[:4]} ran past its {timeout}s limit (killed)") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))


def run_python_limited(code: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -c code`` under :func:`run_command_limited`."""
    return run_command_limited([sys.executable, "-c", code], **kwargs)
