"""Helpers shared by the end-to-end tests (imported by name: pytest puts this folder on sys.path)."""
import subprocess
from pathlib import Path


def qemus_of(run_dir: Path) -> list:
    """The `pgrep -af` lines of QEMU processes whose command line names ``run_dir``."""
    out = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(run_dir) in line]
