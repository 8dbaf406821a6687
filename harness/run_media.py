"""The big files of a VM's run directory, and their removal once the test that booted it has passed.

A run directory holds two kinds of files.  The records (console logs, ``qemu-cmdline.txt``,
``config.ign``, ``kargs.txt``, ``vm.json``, timings) are small and are what a person reads.  The
media are big and can be made again from the records and the artifact cache: the customized live
ISO (a real FCOS one is about 800 MB), libvirt's combined initrd, and the disks' qcow2 files.  A
nightly matrix that kept the media of every passing cell would fill the disk; a failing test's are
what a person may want to look at, so only a passing test's go.

``shed`` removes them from one directory and writes ``media-removed.txt`` there (the names, the
sizes and why), so that a run directory without its ``live.iso`` says where it went.  The pytest
plugin calls it when a test has passed and its VMs are closed; ``--keep-media`` and ``--keep-vms``
keep them.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from .atomic import atomic_write
from .vm.spec import COMBINED_INITRD, DISK_FILE, LIVE_ISO_FILE

MEDIA_PATTERNS = (LIVE_ISO_FILE, COMBINED_INITRD, DISK_FILE.format("*"))
RECORD_FILE = "media-removed.txt"


def media_files(run_dir: Path) -> list[Path]:
    """The media in ``run_dir`` itself (not below it), sorted; symbolic links are not media."""
    found = {p for pattern in MEDIA_PATTERNS for p in Path(run_dir).glob(pattern)}
    return sorted(p for p in found if p.is_file() and not p.is_symlink())


def shed(run_dir: Path, why: str) -> int:
    """Remove the media of ``run_dir`` and name them in its ``media-removed.txt``; the bytes freed."""
    removed: list[str] = []
    freed = 0
    for path in media_files(run_dir):
        size = path.stat().st_size
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(f"{path.name} {size}")
            freed += size
    if removed:
        atomic_write(Path(run_dir) / RECORD_FILE,
                     f"# removed {why}: name, bytes\n" + "\n".join(removed) + "\n", fsync=False)
    return freed
