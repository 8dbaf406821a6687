"""A test's per-VM files as data on its pytest report: how the results of a remote worker come home.

A pytest-xdist worker on another host (``pytest --tx ssh=…``, ``livelab matrix --hosts``) boots its
VMs with everything local to that host, so their run directories are on that host's disk.  At the
end of each test (its teardown report, after the VMs are closed) the worker attaches the test's
small files (``run_files``: console logs, ``qemu-cmdline.txt``, ``config.ign``, ``vm.json``,
``timings.json``, ``checks.log``; never disk images, ISOs or sockets) and the host's name to the
report (``pack``).  xdist carries the report home like any other; the livelab plugin on the
controller writes the files into its own run directory (``unpack``) and points the report's
``livelab_run_dir`` properties there.  Nothing is read from the host's disk afterwards.

The payload is plain data (str, int, list, dict) so that execnet, JSON (``--report-log``) and
pytest's own report serialization carry it: each file's bytes are zlib-compressed and base64
encoded.  A path in it is relative and may not leave the controller's run directory.

``run_files`` and ``inside`` are also what ``livelab matrix merge`` uses to pick and place the files
of a shard's run directories.
"""
from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from .atomic import atomic_write
from .errors import LivelabError

SCHEMA = "livelab.attachments/1"
REPORT_ATTR = "livelab_attachments"      # the attribute of a teardown report that carries them
# what a report links to and a person reads; disk images, firmware variables and sockets stay behind
RUN_FILE_SUFFIXES = (".log", ".txt", ".json", ".ign", ".xml")
RUN_FILE_LIMIT = 64 * 1024 * 1024        # bytes: a larger file is left out (and named as left out)
LEFT_OUT_FILE = "attachments-left-out.txt"


def run_files(directory: Path, limit: int = RUN_FILE_LIMIT) -> Iterator[tuple[Path, bool]]:
    """``(path, fits)`` of each small text file in ``directory`` and below (sorted; symbolic links,
    sockets and other suffixes are skipped); ``fits`` is False for a file over ``limit`` bytes."""
    for path in sorted(Path(directory).rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix not in RUN_FILE_SUFFIXES:
            continue
        yield path, path.stat().st_size <= limit


def inside(base: Path, rel: object) -> Path | None:
    """``base/rel`` when ``rel`` is a relative path that stays inside ``base``; else None."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or PurePosixPath(rel).is_absolute():
        return None
    path = (Path(base) / rel).resolve()
    return path if path.is_relative_to(Path(base).resolve()) else None


def pack(run_root: Path, run_dirs: Sequence[Path | str], host: str, limit: int = RUN_FILE_LIMIT) -> dict:
    """The attachments of one test: its VMs' run directories (each below ``run_root``) and their
    files, from the test's directory (``run_root/<test>``) down, with the name of this host."""
    root = Path(run_root).resolve()
    dirs: list[str] = []
    tops: list[Path] = []
    for d in run_dirs:
        rel = Path(d).resolve().relative_to(root)       # a VM's directory is always below the run root
        dirs.append(rel.as_posix())
        top = root / rel.parts[0]
        if top not in tops:
            tops.append(top)
    files, left_out = [], []
    for top in tops:
        for path, fits in run_files(top, limit):
            rel_path = path.relative_to(root).as_posix()
            if not fits:
                left_out.append({"path": rel_path, "size": path.stat().st_size})
                continue
            data = path.read_bytes()
            files.append({"path": rel_path, "size": len(data),
                          "data": base64.b64encode(zlib.compress(data, 6)).decode("ascii")})
    return {"schema": SCHEMA, "host": host, "run_root": str(root),
            "dirs": {str(Path(d)): rel for d, rel in zip(run_dirs, dirs)},
            "files": files, "left_out": left_out}


def _checked(payload: object) -> dict:
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        raise LivelabError(f"report attachments: not a {SCHEMA} payload")
    for key, kind in (("dirs", dict), ("files", list), ("left_out", list)):
        if not isinstance(payload.get(key), kind):
            raise LivelabError(f"report attachments: {key}: expected a {kind.__name__}")
    return payload


def unpack(payload: object, run_root: Path) -> dict[str, Path]:
    """Write the attached files under ``run_root`` (the controller's); return each worker run
    directory (as the worker named it) -> its directory here.  A path that would leave
    ``run_root``, or bytes that are not what the payload says, are refused (LivelabError)."""
    got = _checked(payload)
    run_root = Path(run_root)
    for f in got["files"]:
        target = inside(run_root, f.get("path") if isinstance(f, dict) else None)
        if target is None:
            raise LivelabError(f"report attachments: file path {f.get('path') if isinstance(f, dict) else f!r} "
                               "is not a relative path inside the run directory")
        try:
            data = zlib.decompress(base64.b64decode(f["data"], validate=True))
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise LivelabError(f"report attachments: {f['path']}: unreadable data ({exc})") from None
        if len(data) != f.get("size"):
            raise LivelabError(f"report attachments: {f['path']}: {len(data)} bytes, the worker sent {f.get('size')}")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data, fsync=False)
    dirs: dict[str, Path] = {}
    for worker_dir, rel in got["dirs"].items():
        here = inside(run_root, rel)
        if here is None:
            raise LivelabError(f"report attachments: run directory {rel!r} is not inside the run directory")
        here.mkdir(parents=True, exist_ok=True)
        dirs[str(worker_dir)] = here
    if got["left_out"]:
        first = inside(run_root, next(iter(got["dirs"].values()), None)) or run_root
        lines = [f"{e.get('path')}\t{e.get('size')} bytes (over {RUN_FILE_LIMIT} bytes: not sent)\n"
                 for e in got["left_out"] if isinstance(e, dict)]
        atomic_write(first / LEFT_OUT_FILE, "".join(lines), fsync=False)
    return dirs
