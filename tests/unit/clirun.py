"""The ``livelab`` command run as a user runs it, and what a clean refusal looks like.

    proc = run_livelab("iso", "show", path)            # this checkout's harness, in a new process
    line = refusal_line(proc)                          # exit 2, one stderr line, no traceback

Shared by the unit tests that drive the CLI on bad input.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_livelab(*args: object, cwd: str | Path = REPO, env: dict[str, str] | None = None,
                input: str | None = None, timeout: float = 120, **popen: Any) -> subprocess.CompletedProcess:
    """``livelab ARGS`` in a process of its own, importing this checkout's harness (``PYTHONPATH``);
    ``popen``: more ``subprocess.run`` keywords (e.g. ``preexec_fn``)."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], cwd=cwd, input=input,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          capture_output=True, text=True, timeout=timeout, **popen)


def refusal_line(proc: subprocess.CompletedProcess) -> str:
    """The command refused cleanly: exit status 2, no traceback, exactly one stderr line
    ``livelab: error: ...``; that line."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("livelab: error: "), proc.stderr
    return lines[0]
