"""Store: the artifact cache on disk, and the only code that deletes anything in it.

Layout: ``<root>/<cache key>`` where the key is the upstream URL path (``fcos/prod/streams/
<stream>/builds/<v>/<arch>/<file>``, ``flatcar/<channel>/<board>/<v>/<file>``), so a mirror and
upstream share entries.  Beside each file:

* ``<file>.livelab-part``  the download in progress (resumed with HTTP Range),
* ``<file>.livelab-lock``  a filelock; parallel workers wait on it and then find the file,
* ``<file>.sig``           the detached signature that was checked,
* ``<file>.livelab.json``  the verified-file record: size, mtime_ns, digests, signer fingerprints,
                           the URL really read.

Files fetched with ``--insecure`` live apart, under ``<root>/insecure/``: a later secure run never
sees them and fetches its own.  The root holds a ``CACHEDIR.TAG`` written by livelab; livelab
deletes only inside a root it marked, and only names of its own (the files above, in a release
directory, and its temp names).  Everything else is left alone, and ``prune`` says so.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock
import platformdirs

from ..atomic import atomic_write, clean_stale_temps, is_livelab_temp
from ..errors import LivelabError
from .mirror import cache_key

log = logging.getLogger(__name__)

MARKER = "CACHEDIR.TAG"
MARKER_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
               "# This directory is a livelab artifact cache (https://bford.info/cachedir/).\n"
               "# livelab deletes only its own files in it; remove this file and livelab will not touch it.\n")
RECORD_SUFFIX = ".livelab.json"
PART_SUFFIX = ".livelab-part"
LOCK_SUFFIX = ".livelab-lock"
SIG_SUFFIX = ".sig"
INSECURE_DIR = "insecure"
LOCK_TIMEOUT = 6 * 3600
# what a cache made by an older livelab holds at its top (adopted: marked on first use)
_LIVELAB_TOP = {"fcos", "flatcar", "keyrings", INSECURE_DIR, MARKER}
_VERSION_DIR = (
    re.compile(r"^fcos/prod/streams/(?P<stream>[^/]+)/builds/(?P<version>[^/]+)$"),
    re.compile(r"^flatcar/(?P<stream>[^/]+)/[^/]+/(?P<version>[^/]+)$"),
)


def default_root() -> Path:
    env = os.environ.get("LIVELAB_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("livelab")) / "artifacts"


def _given_root(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir or default_root()).expanduser().absolute()


def record_path(final: Path) -> Path:
    return final.with_name(final.name + RECORD_SUFFIX)


def part_path(final: Path) -> Path:
    return final.with_name(final.name + PART_SUFFIX)


def lock_path(final: Path) -> Path:
    return final.with_name(final.name + LOCK_SUFFIX)


def sig_path(final: Path) -> Path:
    return final.with_name(final.name + SIG_SUFFIX)


def load_record(final: Path) -> dict[str, Any] | None:
    """The record of ``final``, or None when it is missing or not a record (then the file is re-checked)."""
    path = record_path(final)
    try:
        rec = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if not (isinstance(rec, dict) and _strings_to_strings(rec.get("digests"))
            and _list_of_strings(rec.get("verified_with", []))):
        # (the callers take digests as {algo: hex} and verified_with as fingerprints, e.g. into a set)
        log.debug("%s is not a livelab record: ignored", path)
        return None
    return rec


def _strings_to_strings(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _list_of_strings(value: object) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))


@dataclass
class Store:
    """One cache root (marked as livelab's)."""

    root: Path

    # -------------------------------------------------------------- opening

    @classmethod
    def for_writing(cls, cache_dir: str | Path | None = None) -> Store:
        """The cache at ``cache_dir`` (default: ``$LIVELAB_CACHE_DIR`` or the user cache), created and
        marked if new; a directory that holds other things is refused."""
        root = _given_root(cache_dir)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LivelabError(f"cannot create cache directory {root}: {exc.strerror or exc}") from None
        if not root.is_dir():
            raise LivelabError(f"cache directory {root} is not a directory")
        store = cls(root)
        if not store.marked():
            foreign = store._foreign_entries()
            if foreign:
                raise LivelabError(f"refusing to use {root} as the artifact cache: it holds things livelab did not "
                                   f"write ({', '.join(foreign[:3])}) and no livelab {MARKER}; give an empty or "
                                   "new directory")
            atomic_write(root / MARKER, MARKER_TEXT)
        clean_stale_temps(root)
        return store

    @classmethod
    def existing(cls, cache_dir: str | Path | None = None) -> Store | None:
        """The cache at ``cache_dir`` if there is one (nothing is created); None when the directory is missing."""
        root = _given_root(cache_dir)
        if not root.exists():
            return None
        if not root.is_dir():
            raise LivelabError(f"cache directory {root} is not a directory")
        return cls(root)

    def marked(self) -> bool:
        try:
            return (self.root / MARKER).read_text(errors="replace").startswith(MARKER_TEXT.splitlines()[0])
        except OSError:
            return False

    def _foreign_entries(self) -> list[str]:
        try:
            return sorted(e.name for e in self.root.iterdir() if e.name not in _LIVELAB_TOP and not is_livelab_temp(e))
        except OSError as exc:
            raise LivelabError(f"cannot read cache directory {self.root}: {exc.strerror or exc}") from None

    def require_marked(self, verb: str) -> None:
        if not self.marked():
            raise LivelabError(f"{self.root} is not a livelab cache (no {MARKER} written by livelab): {verb} refused, "
                               "nothing removed")

    # -------------------------------------------------------------- places

    def area(self, insecure: bool) -> Path:
        return self.root / INSECURE_DIR if insecure else self.root

    def path_for(self, upstream_url: str, insecure: bool = False) -> Path:
        return self.area(insecure) / cache_key(upstream_url)

    @contextlib.contextmanager
    def locked(self, final: Path) -> Iterator[None]:
        """Hold ``<final>.livelab-lock``: one download of a file at a time, across processes."""
        final.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(final.parent)
        lock = filelock.FileLock(str(lock_path(final)), timeout=LOCK_TIMEOUT)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise LivelabError(f"timed out waiting for another process downloading {final}") from None
        try:
            yield
        finally:
            lock.release()

    # -------------------------------------------------------------- metadata copies

    def read_metadata(self, upstream_url: str) -> tuple[bytes, str] | None:
        path = self.path_for(upstream_url)
        try:
            return path.read_bytes(), str(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LivelabError(f"cannot read cached {path}: {exc.strerror or exc}") from None

    def keep_metadata(self, upstream_url: str, data: bytes) -> None:
        path = self.path_for(upstream_url)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)

    # -------------------------------------------------------------- records

    @staticmethod
    def write_record(final: Path, fields: dict[str, Any]) -> dict[str, Any]:
        st = final.stat()
        rec = {**fields, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
               "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write(record_path(final), json.dumps(rec, indent=1, sort_keys=True))
        return rec

    @staticmethod
    def forget(final: Path) -> None:
        """Remove a cached file and its record (it failed its checks)."""
        final.unlink(missing_ok=True)
        record_path(final).unlink(missing_ok=True)

    # -------------------------------------------------------------- ls / prune

    def scan(self) -> list[dict[str, Any]]:
        """Version groups: os, stream, version, dir, files (verified), partial, size, newest mtime, insecure."""
        groups: dict[str, dict[str, Any]] = {}
        for top, insecure in ((self.root, False), (self.root / INSECURE_DIR, True)):
            if not top.is_dir():
                continue
            for dirpath, dirs, files in os.walk(top):
                if not insecure and Path(dirpath) == top and INSECURE_DIR in dirs:
                    dirs.remove(INSECURE_DIR)
                rel = Path(dirpath).relative_to(top).as_posix()
                g = self._group(groups, top, rel, insecure)
                if g is None:
                    continue
                for f in files:
                    self._add_file(g, Path(dirpath) / f)
        return sorted(groups.values(), key=lambda g: (g["os"], g["stream"], _version_key(g["version"]),
                                                       g["insecure"]))

    @staticmethod
    def _group(groups: dict[str, dict[str, Any]], top: Path, rel: str, insecure: bool) -> dict[str, Any] | None:
        parts = rel.split("/")
        for i in range(len(parts), 0, -1):
            sub = "/".join(parts[:i])
            m = next((r.match(sub) for r in _VERSION_DIR if r.match(sub)), None)
            if m:
                break
        else:
            return None
        if m.group("version") == "current":
            return None
        key = f"{'insecure/' if insecure else ''}{sub}"
        return groups.setdefault(key, {"os": sub.split("/")[0], "stream": m.group("stream"),
                                       "version": m.group("version"), "dir": str(top / sub), "files": [],
                                       "partial": [], "other": [], "size": 0, "mtime": 0.0,
                                       "insecure": insecure})

    @staticmethod
    def _add_file(g: dict[str, Any], p: Path) -> None:
        try:
            st = p.lstat()
        except OSError:
            return
        g["size"] += st.st_size
        g["mtime"] = max(g["mtime"], st.st_mtime)
        name = p.name
        if name.endswith(PART_SUFFIX):
            g["partial"].append(str(p))
        elif record_path(p).exists():
            rec = load_record(p) or {}
            g["files"].append({"path": str(p), "kind": rec.get("kind"), "size": st.st_size,
                               "insecure": g["insecure"], "verified_with": rec.get("verified_with") or []})
        elif not _own_name(p):
            g["other"].append(str(p))

    def prune(self, keep: int | None = None, older_than_days: float | None = None) -> PruneResult:
        """Remove all but the newest ``keep`` versions per os/stream and/or versions whose newest file is
        older than ``older_than_days``, and stale part/lock files no process holds.

        Only livelab's own names in release directories of a marked cache are removed; anything else
        is kept and listed in the result.
        """
        check_prune_args(keep, older_than_days)
        self.require_marked("prune")
        result = PruneResult()
        groups = self.scan()
        doomed: set[str] = set()
        if keep is not None:
            by_stream: dict[tuple, list] = {}
            for g in groups:
                by_stream.setdefault((g["os"], g["stream"], g["insecure"]), []).append(g)
            for gs in by_stream.values():
                gs.sort(key=lambda g: _version_key(g["version"]), reverse=True)
                doomed.update(g["dir"] for g in gs[keep:])
        if older_than_days is not None:
            cutoff = time.time() - older_than_days * 86400
            doomed.update(g["dir"] for g in groups if g["mtime"] < cutoff)
        for g in groups:
            d = Path(g["dir"])
            if g["dir"] in doomed:
                self._remove_release(d, result)
            else:
                self._remove_stale(d, result)
        clean_stale_temps(self.root)
        return result

    @staticmethod
    def _remove_release(d: Path, result: PruneResult) -> None:
        files, subdirs = [], []
        for dirpath, dirs, names in os.walk(d):        # symlinks are never followed
            files += [Path(dirpath) / n for n in names]
            subdirs += [Path(dirpath) / n for n in dirs]
        if any(p.name.endswith(LOCK_SUFFIX) and not _lock_free(p) for p in files):
            result.busy.append(str(d))
            return                          # somebody is downloading into this version right now
        own = {p for p in files if _own_name(p)}       # judged before anything goes (records prove files)
        for p in files:
            if p not in own:
                result.kept.append(str(p))
            elif not p.name.endswith(LOCK_SUFFIX):
                p.unlink(missing_ok=True)
                result.removed.append(str(p))
        for p in files:                     # the locks last: nobody holds them (checked above)
            if p.name.endswith(LOCK_SUFFIX) and p.exists():
                p.unlink(missing_ok=True)
        for sub in [*sorted(subdirs, key=lambda p: -len(p.parts)), d]:
            with contextlib.suppress(OSError):
                sub.rmdir()                 # only empty directories go

    @staticmethod
    def _remove_stale(d: Path, result: PruneResult) -> None:
        for p in list(d.rglob("*" + PART_SUFFIX)) + list(d.rglob("*" + LOCK_SUFFIX)):
            if not p.exists():
                continue
            if p.name.endswith(PART_SUFFIX):
                lock = p.with_name(p.name[:-len(PART_SUFFIX)] + LOCK_SUFFIX)
                if _lock_free(lock, also=p):
                    result.removed.append(str(p))
            elif _lock_free(p):
                result.removed.append(str(p))


@dataclass
class PruneResult:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)     # files in a pruned release livelab did not write
    busy: list[str] = field(default_factory=list)     # releases being downloaded into: left for now


def check_prune_args(keep: int | None, older_than_days: float | None) -> None:
    if keep is not None and keep < 0:
        raise LivelabError(f"--keep must be 0 or more, not {keep}")
    if older_than_days is not None and not (math.isfinite(older_than_days) and older_than_days >= 0):
        raise LivelabError(f"--older-than must be a number of days, 0 or more, not {older_than_days!r}")


def _own_name(p: Path) -> bool:
    """A name livelab writes in a release directory: a recorded file, its companions, or a temp."""
    name = p.name
    if is_livelab_temp(p) or name.endswith((PART_SUFFIX, LOCK_SUFFIX, RECORD_SUFFIX)):
        return True
    if name.endswith(SIG_SUFFIX):          # a signature is livelab's beside a file livelab fetched
        base = p.with_name(name[:-len(SIG_SUFFIX)])
        return any(q.exists() for q in (record_path(base), part_path(base), lock_path(base)))
    return record_path(p).exists()


def _version_key(v: str) -> tuple:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+-]", v))


def _lock_free(lock_path: Path, also: Path | None = None) -> bool:
    """True (and the lock file, plus ``also``, removed) when no process holds ``lock_path``."""
    lock = filelock.FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return False
    try:
        if also is not None:
            also.unlink(missing_ok=True)
    finally:
        lock.release()
    lock_path.unlink(missing_ok=True)
    return True
