"""Run something that may blow up (a parser bomb) in a child process with a memory cap and a
wall-clock limit, so a regression fails the test instead of eating the host.

    proc = run_limited([sys.executable, "-c", code], memory=GiB, timeout=30)
    proc = run_python_limited("from harness import safeload; ...")

The child gets ``RLIMIT_AS`` (address space) set to ``memory`` before it starts; running past
``timeout`` seconds kills it and fails the test.  stdout and stderr come back as text.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

GiB = 1 << 30
REPO = Path(__file__).resolve().parents[2]


def run_limited(argv: list[str], *, memory: int = GiB, timeout: float = 30, input: bytes | str | None = None,
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
    """``python -c code`` under :func:`run_limited`."""
    return run_limited([sys.executable, "-c", code], **kwargs)
