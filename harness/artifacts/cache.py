"""The artifact cache: verified files only, one download per file across processes.

Layout: ``<root>/<cache key>`` where the key is the upstream URL path (``fcos/prod/streams/
<stream>/builds/<v>/<arch>/<file>``, ``flatcar/<channel>/<board>/<v>/<file>``), so a mirror and
upstream share entries.  Beside each file:

* ``<file>.part``          the download in progress (resumed with HTTP Range),
* ``<file>.lock``          a filelock; parallel workers wait on it and then find the file,
* ``<file>.sig``           the detached signature that was checked,
* ``<file>.livelab.json``  the verified-file record: size, mtime_ns, digests, signer fingerprints.

A file appears under its final name only after its digests and signature were checked.  A warm
run trusts the record when size and mtime_ns still match (no re-hash, no HTTP).
"""
from __future__ import annotations

import errno
import json
import logging
import os
import queue
import re
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Literal, overload

import filelock
import platformdirs

from .. import poll
from ..errors import LivelabError
from . import mirror as _mirror
from . import verify as _verify
from .mirror import NetError, cache_key, map_url
from .model import Artifact, LocalArtifact

log = logging.getLogger(__name__)

RECORD_SUFFIX = ".livelab.json"
PROGRESS_MIN_BYTES = 16 << 20
LOCK_TIMEOUT = 6 * 3600
DEFAULT_RETRIES = 2
BACKOFF_S = 1.0


def cache_root(cache_dir=None) -> Path:
    if cache_dir:
        root = Path(cache_dir)
    elif os.environ.get("LIVELAB_CACHE_DIR"):
        root = Path(os.environ["LIVELAB_CACHE_DIR"])
    else:
        root = Path(platformdirs.user_cache_dir("livelab")) / "artifacts"
    root = root.expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LivelabError(f"cannot create cache directory {root}: {exc.strerror or exc}") from None
    return root


def default_timeout(timeout=None) -> float:
    if timeout:
        return float(timeout)
    env = os.environ.get("LIVELAB_HTTP_TIMEOUT")
    try:
        return float(env) if env else _mirror.DEFAULT_TIMEOUT
    except ValueError:
        raise LivelabError(f"LIVELAB_HTTP_TIMEOUT={env!r} is not a number of seconds") from None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}.{uuid.uuid4().hex}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _with_retries(fn, retries: int, backoff: float):
    """``fn()``, tried again up to ``retries`` times on a retryable NetError, ``backoff`` s apart
    at first and twice as long each time."""
    failures = 0

    def attempt():
        nonlocal failures
        try:
            return fn()
        except NetError as exc:
            failures += 1
            if not exc.retryable or failures > retries:
                raise
            raise poll.Retry(str(exc)) from None

    return poll.poll(attempt, None, what="download", interval=backoff, backoff=2.0)


# ------------------------------------------------------------------ metadata

@overload
def get_metadata(upstream_url: str, mirror: str | None = None, *, cache_dir=None, offline: bool = False,
                 timeout=None, immutable: bool = False, optional: Literal[False] = False,
                 retries: int | None = None, backoff: float | None = None) -> bytes: ...


@overload
def get_metadata(upstream_url: str, mirror: str | None = None, *, cache_dir=None, offline: bool = False,
                 timeout=None, immutable: bool = False, optional: bool = False,
                 retries: int | None = None, backoff: float | None = None) -> bytes | None: ...


def get_metadata(upstream_url: str, mirror: str | None = None, *, cache_dir=None, offline: bool = False,
                 timeout=None, immutable: bool = False, optional: bool = False,
                 retries: int | None = None, backoff: float | None = None) -> bytes | None:
    """Fetch a small metadata file (stream JSON, releases.json, version.txt, DIGESTS) via the mirror.

    A copy is kept in the cache under the same key; offline runs use only that copy.  Mutable
    files (stream JSON, ``current/version.txt``) are re-fetched online; ``immutable`` ones are
    served from the cache when present.  ``optional``: a 404 returns None.
    """
    key = cache_key(upstream_url)
    path = cache_root(cache_dir) / key
    log.debug("metadata %s%s", upstream_url, " (offline)" if offline else "")
    if offline or (immutable and path.exists()):
        if path.exists():
            return path.read_bytes()
        if optional:
            return None
        raise LivelabError(f"offline: {key} is not in the cache {cache_root(cache_dir)}")
    url = map_url(upstream_url, mirror)
    retries = DEFAULT_RETRIES if retries is None else retries
    backoff = BACKOFF_S if backoff is None else backoff
    try:
        data = _with_retries(lambda: _mirror.read_url(url, default_timeout(timeout)), retries, backoff)
    except NetError as exc:
        if optional and exc.status == 404:
            return None
        raise
    _atomic_write(path, data)
    return data


def read_source(source: str, mirror: str | None = None, timeout=None) -> bytes:
    """Read an explicit ``--metadata`` file path or URL (upstream URLs go through the mirror)."""
    if re.match(r"^[a-z]+://", source):
        try:
            url = map_url(source, mirror)
        except LivelabError:
            url = source            # an explicit non-upstream URL is used as given
        return _mirror.read_url(url, default_timeout(timeout))
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise LivelabError(f"cannot read metadata file {source}: {exc.strerror or exc}") from None


# ------------------------------------------------------------------ records

def record_path(final: Path) -> Path:
    return final.with_name(final.name + RECORD_SUFFIX)


def load_record(final: Path) -> dict | None:
    try:
        return json.loads(record_path(final).read_text())
    except (OSError, ValueError):
        return None


def _write_record(final: Path, art: Artifact, digests: dict[str, str], signers: list[str],
                  keyring, insecure: bool, meta: dict) -> dict:
    st = final.stat()
    rec = {
        "url": art.url, "upstream_url": art.upstream_url, "kind": art.kind,
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "digests": digests,
        "verified_with": signers, "keyring": keyring.source if keyring else None,
        "insecure": bool(insecure and not signers), "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **meta,
    }
    _atomic_write(record_path(final), json.dumps(rec, indent=1, sort_keys=True).encode())
    return rec


def _record_ok(rec: dict | None, final: Path, art: Artifact, keyring, insecure: bool) -> str:
    """'' when the record can be trusted as is, else why not ('stat', 'digest', 'signature')."""
    if not rec:
        return "stat"
    try:
        st = final.stat()
    except OSError:
        return "stat"
    if rec.get("size") != st.st_size or rec.get("mtime_ns") != st.st_mtime_ns:
        return "stat"
    have = rec.get("digests") or {}
    for algo, want in art.digests.items():
        if have.get(algo, "").lower() != want.lower():
            return "digest"
    if not insecure and (rec.get("insecure") or not set(rec.get("verified_with") or ()) & set(keyring.fingerprints)):
        return "signature"
    return ""


def _local(art: Artifact, final: Path, rec: dict, downloaded: bool) -> LocalArtifact:
    log.debug("%s %s: %s (%s)", art.kind, "downloaded and verified" if downloaded else "cache hit, verified",
              final, ", ".join(f"{a}:{d[:12]}" for a, d in sorted(rec.get("digests", {}).items())))
    return LocalArtifact(kind=art.kind, path=str(final), digests=dict(rec["digests"]),
                         verified_with=list(rec.get("verified_with") or []), insecure=bool(rec.get("insecure")),
                         url=art.url, upstream_url=art.upstream_url, downloaded=downloaded)


# ------------------------------------------------------------------ download

class _Progress:
    def __init__(self, name: str, total: int | None, enabled: bool | None):
        self.bar = None
        if enabled is None:
            enabled = sys.stderr.isatty() and (total or 0) >= PROGRESS_MIN_BYTES
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), TimeRemainingColumn(),
                                console=Console(file=sys.stderr), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(name, total=total)

    def set(self, done: int, total: int | None) -> None:
        if self.bar:
            self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()


class _HashPipe:
    """Hash downloaded chunks in one thread per algorithm (hashlib releases the GIL), so reading
    from the network, writing the file and hashing overlap: still one pass over the bytes."""

    def __init__(self, hashers):
        self._queues = []
        self._threads = []
        for h in hashers.values():
            q: queue.Queue = queue.Queue(maxsize=16)
            t = threading.Thread(target=self._run, args=(h, q), daemon=True)
            t.start()
            self._queues.append(q)
            self._threads.append(t)

    @staticmethod
    def _run(hasher, q) -> None:
        while True:
            chunk = q.get()
            if chunk is None:
                return
            hasher.update(chunk)

    def feed(self, chunk: bytes) -> None:
        for q in self._queues:
            q.put(chunk)

    def finish(self) -> None:
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join()


def _stream_to_part(url: str, part: Path, algos, timeout: float, progress, name: str):
    """One attempt: resume ``part`` from its size, hashing prefix + new bytes (one pass)."""
    offset = part.stat().st_size if part.exists() else 0
    hashers = _verify.new_hashers(algos)
    resp = _mirror.open_url(url, offset=offset, timeout=timeout)
    with resp:
        if resp.status == 416:          # nothing left: the .part is (claimed) complete
            _verify.hash_file(part, hashers=hashers)
            return hashers, offset
        if resp.status == 200 and offset:
            offset = 0                  # server ignored Range: start over
        mode = "ab" if offset else "wb"
        if offset:
            _verify.hash_file(part, hashers=hashers, limit=offset)
        total = resp.total if resp.total is not None else (offset + resp.length if resp.length is not None else None)
        bar = _Progress(name, total, progress)
        got = offset
        try:
            with open(part, mode) as out:
                if offset:
                    out.truncate(offset)
                pipe = _HashPipe(hashers)
                try:
                    while True:
                        chunk = resp.read(_verify.CHUNK)
                        if not chunk:
                            break
                        try:
                            out.write(chunk)
                        except OSError as exc:
                            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                                raise LivelabError(f"No space left on device: the cache at {part.parent} is full while "
                                                   f"downloading {name} ({got} bytes written)") from None
                            raise
                        pipe.feed(chunk)
                        got += len(chunk)
                        bar.set(got, total)
                finally:
                    pipe.finish()
        finally:
            bar.close()
        if total is not None and got != total:
            raise NetError(f"{url}: connection closed after {got} of {total} bytes", retryable=True)
    return hashers, offset


def _fetch_signature(art: Artifact, sig_path: Path, timeout: float, retries: int, backoff: float) -> None:
    if not art.signature_url:
        raise _verify.SignatureError(f"refusing {art.filename}: no signature URL known for it")
    try:
        data = _with_retries(lambda: _mirror.read_url(art.signature_url, timeout, limit=1 << 20), retries, backoff)
    except NetError as exc:
        why = f"HTTP {exc.status}" if exc.status else str(exc)
        raise _verify.SignatureError(
            f"refusing {art.filename}: signature missing at {art.signature_url} ({why.split(': ', 1)[-1]})") from None
    _atomic_write(sig_path, data)


def fetch_artifact(art: Artifact, *, root: Path, keyring=None, insecure: bool = False, offline: bool = False,
                   timeout=None, retries: int | None = None, backoff: float | None = None, progress=None,
                   meta: dict | None = None) -> LocalArtifact:
    """Return the verified local copy of ``art``, downloading it if needed."""
    meta = meta or {}
    retries = DEFAULT_RETRIES if retries is None else retries
    backoff = BACKOFF_S if backoff is None else backoff
    timeout = default_timeout(timeout)
    final = root / cache_key(art.upstream_url)
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    sig = final.with_name(final.name + ".sig")
    algos = sorted(set(art.digests) | {"sha256"})
    lock = filelock.FileLock(str(final) + ".lock", timeout=LOCK_TIMEOUT)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LivelabError(f"timed out waiting for another process downloading {final}") from None
    try:
        if final.exists():
            rec = load_record(final)
            why = _record_ok(rec, final, art, keyring, insecure)
            if not why and rec is not None:
                return _local(art, final, rec, downloaded=False)
            if why == "signature" and rec is not None:
                digests = dict(rec["digests"])
            else:   # re-hash: the file changed on disk or the record is missing/old
                digests = {a: h.hexdigest() for a, h in _verify.hash_file(final, algos).items()}
            try:
                _verify.check_digests(art.filename, art.digests, digests, art.digests_source or "")
            except LivelabError:
                if offline:
                    raise LivelabError(f"offline: cached {final} does not match its expected digest; "
                                       f"re-fetch it online") from None
                final.unlink()
                record_path(final).unlink(missing_ok=True)
            else:
                signers = []
                if not insecure:
                    if not sig.exists():
                        if offline:
                            raise LivelabError(f"offline: signature of {art.filename} is not in the cache ({sig})")
                        _fetch_signature(art, sig, timeout, retries, backoff)
                    try:
                        signers = _verify.gpgv_verify(final, sig, keyring, art.filename)
                    except LivelabError:
                        if offline:
                            raise
                        # the cached signature may be stale (same bytes re-signed, e.g. a key
                        # rotation): fetch the current one and check again
                        _fetch_signature(art, sig, timeout, retries, backoff)
                        signers = _verify.gpgv_verify(final, sig, keyring, art.filename)
                rec = _write_record(final, art, digests, signers, keyring, insecure, meta)
                return _local(art, final, rec, downloaded=False)
        if offline:
            raise LivelabError(f"offline: {art.kind} {cache_key(art.upstream_url)} is not in the cache {root}")
        if not insecure:
            _fetch_signature(art, sig, timeout, retries, backoff)
        name = art.filename or final.name
        for fresh in (False, True):
            if fresh:
                part.unlink(missing_ok=True)
            resumed = part.exists() and part.stat().st_size > 0
            hashers, _ = _with_retries(lambda: _stream_to_part(art.url, part, algos, timeout, progress, name),
                                       retries, backoff)
            digests = {a: h.hexdigest() for a, h in hashers.items()}
            try:
                _verify.check_digests(name, art.digests, digests, art.digests_source or "")
                break
            except LivelabError:
                if fresh or not resumed:
                    part.unlink(missing_ok=True)
                    raise
                # a stale .part from an older/corrupt attempt: download once more from zero
        signers = []
        if not insecure:
            try:
                signers = _verify.gpgv_verify(part, sig, keyring, name)
            except LivelabError:
                part.unlink(missing_ok=True)
                sig.unlink(missing_ok=True)
                raise
        os.replace(part, final)
        rec = _write_record(final, art, digests, signers, keyring, insecure, meta)
        return _local(art, final, rec, downloaded=True)
    finally:
        lock.release()


# ------------------------------------------------------------------ ls / prune

_VERSION_DIR = (
    re.compile(r"^fcos/prod/streams/(?P<stream>[^/]+)/builds/(?P<version>[^/]+)$"),
    re.compile(r"^flatcar/(?P<stream>[^/]+)/[^/]+/(?P<version>[^/]+)$"),
)


def _version_key(v: str):
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+-]", v))


def scan(cache_dir=None) -> list[dict]:
    """Version groups in the cache: os, stream, version, dir, files (verified), size, newest mtime."""
    root = cache_root(cache_dir)
    groups: dict[str, dict] = {}
    for dirpath, _dirs, files in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        parts = rel.parts
        for i in range(len(parts), 0, -1):
            sub = "/".join(parts[:i])
            m = next((r.match(sub) for r in _VERSION_DIR if r.match(sub)), None)
            if m:
                break
        else:
            continue
        if m.group("version") == "current":
            continue
        g = groups.setdefault(sub, {"os": sub.split("/")[0], "stream": m.group("stream"),
                                    "version": m.group("version"), "dir": str(root / sub), "files": [],
                                    "partial": [], "size": 0, "mtime": 0.0, "insecure": False})
        for f in files:
            p = Path(dirpath) / f
            try:
                st = p.stat()
            except OSError:
                continue
            g["size"] += st.st_size
            g["mtime"] = max(g["mtime"], st.st_mtime)
            if f.endswith(".part"):
                g["partial"].append(str(p))
            elif (Path(dirpath) / (f + RECORD_SUFFIX)).exists():
                rec = load_record(p) or {}
                g["files"].append({"path": str(p), "kind": rec.get("kind"), "size": st.st_size,
                                   "insecure": bool(rec.get("insecure")),
                                   "verified_with": rec.get("verified_with") or []})
                g["insecure"] |= bool(rec.get("insecure"))
    return sorted(groups.values(), key=lambda g: (g["os"], g["stream"], _version_key(g["version"])))


def prune(cache_dir=None, keep: int | None = None, older_than_days: float | None = None) -> list[str]:
    """Remove all but the newest ``keep`` versions per os/stream and/or versions whose newest file
    is older than ``older_than_days``; always remove stale ``.part``/``.lock`` files (ones no
    process holds).  Returns the removed paths."""
    if keep is not None and keep < 0:
        raise LivelabError("--keep must be 0 or more")
    root = cache_root(cache_dir)
    removed: list[str] = []
    groups = scan(root)
    doomed: set[str] = set()
    if keep is not None:
        by_stream: dict[tuple, list] = {}
        for g in groups:
            by_stream.setdefault((g["os"], g["stream"]), []).append(g)
        for gs in by_stream.values():
            gs.sort(key=lambda g: _version_key(g["version"]), reverse=True)
            doomed.update(g["dir"] for g in gs[keep:])
    if older_than_days is not None:
        cutoff = time.time() - older_than_days * 86400
        doomed.update(g["dir"] for g in groups if g["mtime"] < cutoff)
    for d in sorted(doomed):
        held = [p for p in Path(d).rglob("*.lock") if not _lock_free(p)]
        if held:
            continue        # somebody is downloading into this version right now
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    for p in list(root.rglob("*.part")) + list(root.rglob("*.lock")):
        if not p.exists():
            continue
        if p.suffix == ".part":
            lock = p.with_name(p.name[:-len(".part")] + ".lock")
            if _lock_free(lock, also=p):
                removed.append(str(p))
        elif _lock_free(p):
            removed.append(str(p))
    return removed


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
