"""Helpers shared by the end-to-end tests (imported by name: pytest puts this folder on sys.path)."""
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "images" / "out"
# the livelab CLI's flags for the stand-in, served as fcos/flatcar from its local mirror (the CLI reads no ini)
STANDIN = ["--mirror", str(OUT / "mirror"), "--keyring", str(OUT / "keyring.gpg"),
           "--ignition-spec-table", str(OUT / "ignition-specs.json"),
           "--ignition-validate", str(OUT / "bin" / "ignition-validate")]


def qemus_of(run_dir: Path) -> list:
    """The `pgrep -af` lines of QEMU processes whose command line names ``run_dir``."""
    out = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(run_dir) in line]
