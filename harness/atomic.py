"""Atomic files: every file livelab writes goes to a temp name of its own, then is renamed.

An interrupted write leaves nothing under the final name.  The temp name says who wrote it
(``.<name>.livelab-tmp.<pid>.<random>``), so a later run can tell livelab's leftovers from anyone
else's files and remove them: only temp names whose writer process is gone are cleaned.

    with atomic_output(path) as fh:        # binary; fsync'd and renamed on success, removed on error
        fh.write(data)
    atomic_write(path, "text")            # the same, in one call
    check_output_path(path)               # one-line error for a missing directory or a directory
    clean_stale_temps(directory)          # remove dead writers' temp files
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import LivelabError

TEMP_TAG = "livelab-tmp"
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\." + TEMP_TAG + r"\.(?P<pid>\d+)\.[0-9a-f]{8}$")


def temp_name(target: Path) -> Path:
    """The temp path for ``target``: in the same directory (so the rename is atomic), named as livelab's."""
    return target.with_name(f".{target.name}.{TEMP_TAG}.{os.getpid()}.{secrets.token_hex(4)}")


def is_livelab_temp(path: Path) -> bool:
    return _TEMP_RE.match(path.name) is not None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(directory: Path | str) -> list[Path]:
    """Remove livelab temp files in ``directory`` (not below it) whose writer is no longer running.

    Only names of :func:`temp_name`'s form are touched; anything else is left alone.
    """
    removed: list[Path] = []
    d = Path(directory)
    try:
        entries = list(d.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP_RE.match(p.name)
        if not m or _pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            if p.is_file() and not p.is_symlink():
                p.unlink()
                removed.append(p)
    return removed


def check_output_path(path: Path | str, what: str = "output") -> Path:
    """``path`` as a Path, or a one-line error when it cannot be written as a file."""
    p = Path(path)
    if p.is_dir():
        raise LivelabError(f"{what} {p} is a directory: give a file name")
    parent = p.parent
    if not parent.is_dir():
        raise LivelabError(f"{what} {p}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise LivelabError(f"{what} {p}: directory {parent} is not writable")
    return p


@contextlib.contextmanager
def atomic_output(path: Path | str, *, mode: int = 0o644, fsync: bool = True) -> Iterator[IO[bytes]]:
    """A binary file handle whose content appears at ``path`` only if the block ends without error."""
    target = Path(path)
    clean_stale_temps(target.parent)
    tmp = temp_name(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as e:
        raise LivelabError(f"cannot write {target}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write(path: Path | str, data: bytes | str, *, mode: int = 0o644, fsync: bool = True) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; a write error is one line, with the path."""
    target = Path(path)
    blob = data.encode() if isinstance(data, str) else data
    try:
        with atomic_output(target, mode=mode, fsync=fsync) as fh:
            fh.write(blob)
    except OSError as e:
        raise LivelabError(f"cannot write {target}: {e.strerror or e}") from None
    return target
