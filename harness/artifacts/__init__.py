"""Artifacts: resolve FCOS / Flatcar live images, download them into a verified cache.

    from harness.artifacts import resolve, fetch
    rel = resolve("fcos", "stable", arch="x86_64")
    files = fetch(rel)                    # {kind: LocalArtifact}

The pipeline, one module a step: resolve (``fcos.py``, ``flatcar.py``) → map to the mirror
(``mirror.py``) → transport (``transport.py``) → verify (``verify.py``) → store (``store.py``);
``pipeline.py`` runs it for one file, top to bottom.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from ..errors import LivelabError
from ..vocab import check_os, check_stream
from . import fcos as _fcos
from . import flatcar as _flatcar
from . import verify as _verify
from .mirror import cache_key, normalize_mirror
from .model import Artifact, LocalArtifact, Release
from .pipeline import Fetcher
from .store import Store
from .transport import DEFAULT_DEADLINE, DEFAULT_STALL_TIMEOUT, NetError, Policy, open_url

__all__ = ["Artifact", "LocalArtifact", "Release", "fetch", "missing", "releases", "resolve"]

_warned_insecure: set[tuple[str, str, str]] = set()


def network_policy(timeout: float | None = None, deadline: float | None = None,
                   mirror: str | None = None) -> Policy:
    """The transport rules: ``timeout`` is the stall time-out (default ``$LIVELAB_HTTP_TIMEOUT`` or 30 s),
    ``deadline`` the most one file may take (default ``$LIVELAB_HTTP_DEADLINE`` or 1 h)."""
    return Policy(stall_timeout=_seconds(timeout, "LIVELAB_HTTP_TIMEOUT", DEFAULT_STALL_TIMEOUT, "--timeout"),
                  deadline=_seconds(deadline, "LIVELAB_HTTP_DEADLINE", DEFAULT_DEADLINE, "--deadline"),
                  mirror=mirror)


def _seconds(value: float | None, env: str, default: float, option: str) -> float:
    if value is None:
        raw = os.environ.get(env)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise LivelabError(f"{env}={raw!r} is not a number of seconds") from None
        option = env
    if not (value > 0 and value != float("inf")):
        raise LivelabError(f"{option} must be a positive number of seconds, not {value:g}")
    return float(value)


def resolve(os_id: str, stream: str, arch: str = "x86_64", version: str | None = None,
            mirror: str | None = None, metadata: str | None = None, *, cache_dir: str | Path | None = None,
            offline: bool = False, timeout: float | None = None, deadline: float | None = None) -> Release:
    """Resolve a release (latest of ``stream`` unless ``version``) to its artifacts.

    ``metadata``: path or URL of a stream JSON (fcos) / version.txt (flatcar) to use instead of
    downloading it.  ``offline``: use only metadata already in the cache.
    """
    fetcher = _metadata_fetcher(os_id, stream, mirror, cache_dir, offline, timeout, deadline)
    if os_id == "fcos":
        return _fcos.resolve(stream, fetcher, arch=arch, version=version, metadata=metadata)
    return _flatcar.resolve(stream, fetcher, arch=arch, version=version, metadata=metadata)


def releases(os_id: str, stream: str, arch: str = "x86_64", mirror: str | None = None, *,
             cache_dir: str | Path | None = None, offline: bool = False, timeout: float | None = None,
             deadline: float | None = None) -> list[str]:
    """Every release of ``stream``, oldest first: the FCOS stream's release index
    (``prod/streams/<stream>/releases.json``), the Flatcar channel's board directory page."""
    fetcher = _metadata_fetcher(os_id, stream, mirror, cache_dir, offline, timeout, deadline)
    if os_id == "fcos":
        return _fcos.list_releases(stream, fetcher)
    return _flatcar.list_releases(stream, fetcher, arch=arch)


def _metadata_fetcher(os_id: str, stream: str, mirror: str | None, cache_dir: str | Path | None, offline: bool,
                      timeout: float | None, deadline: float | None) -> Fetcher:
    check_os(os_id)
    check_stream(os_id, stream)
    mirror = normalize_mirror(mirror)
    return Fetcher(store=Store.for_writing(cache_dir), mirror=mirror,
                   policy=network_policy(timeout, deadline, mirror), offline=offline)


def missing(rel: Release, kinds: Iterable[str], *, cache_dir: str | Path | None = None, offline: bool = False,
            timeout: float | None = None, deadline: float | None = None) -> list[str]:
    """The artifacts of ``kinds`` that ``rel`` does not publish: a kind its metadata lacks, or a file
    its server answers with 404 (opened and closed again: nothing is downloaded).  Offline, a file not
    in the cache counts as missing.  Other failures (a refused connection, a stall) raise."""
    out = []
    store = Store.for_writing(cache_dir) if offline else None
    policy = network_policy(timeout, deadline, rel.mirror)
    for kind in kinds:
        art = rel.artifacts.get(kind)
        if art is None:
            out.append(f"{kind} (not in {rel.metadata_source or 'the metadata'})")
            continue
        if store is not None:
            if not store.path_for(art.upstream_url).exists():
                out.append(f"{kind} (not in the cache {store.root})")
            continue
        try:
            open_url(art.url, policy=policy).close()
        except NetError as exc:
            if exc.status not in (404, 410):
                raise
            out.append(f"{kind} ({exc.one_line()})")
    return out


def fetch(rel: Release, kinds: Iterable[str] | None = None, keyring: str | Path | None = None,
          insecure: bool = False, offline: bool = False, cache_dir: str | Path | None = None,
          progress: bool | None = None, *, timeout: float | None = None, retries: int | None = None,
          backoff: float | None = None, deadline: float | None = None) -> dict[str, LocalArtifact]:
    """Download (or find in the cache) and verify artifacts of ``rel``; {kind: LocalArtifact}.

    Each file is checked against the digests of the metadata and its detached signature
    (gpgv against ``keyring`` if given, else the bundled keyring of the OS).  ``insecure``
    skips the signature (digests are still checked), says so once on stderr, and keeps the files
    apart from verified ones, so a later secure run fetches its own.
    """
    wanted = list(kinds) if kinds else list(rel.artifacts)
    unknown = [k for k in wanted if k not in rel.artifacts]
    if unknown:
        raise LivelabError(f"{rel.os} has no artifact kind {', '.join(unknown)}: "
                           f"expected {', '.join(rel.artifacts)}")
    store = Store.for_writing(cache_dir)
    if offline:
        missing = [f"{k} ({cache_key(rel.artifacts[k].upstream_url)})" for k in wanted
                   if not any(store.path_for(rel.artifacts[k].upstream_url, insecure=i).exists()
                              for i in ((False, True) if insecure else (False,)))]
        if missing:
            raise LivelabError(f"offline: not in the cache {store.root}: {', '.join(missing)}")
    fetcher = Fetcher(store=store, mirror=rel.mirror, policy=network_policy(timeout, deadline, rel.mirror),
                      keyring=None if insecure else _verify.keyring_for(rel.os, keyring, store.root),
                      insecure=insecure, offline=offline, progress=progress,
                      meta={"os": rel.os, "stream": rel.stream, "version": rel.version, "arch": rel.arch})
    if retries is not None:
        fetcher.retries = retries
    if backoff is not None:
        fetcher.backoff = backoff
    out = {k: fetcher.fetch(rel.artifacts[k]) for k in wanted}
    if insecure:
        _warn_insecure(rel, out, store)
    return out


def _warn_insecure(rel: Release, files: dict[str, LocalArtifact], store: Store) -> None:
    """Say once per process and release, loudly, what ``--insecure`` left unchecked."""
    unsigned = sorted(k for k, f in files.items() if f.insecure)
    key = (rel.os, rel.version, ",".join(unsigned))
    if not unsigned or key in _warned_insecure:
        return
    _warned_insecure.add(key)
    bare = sorted(k for k in unsigned if not rel.artifacts[k].digests)
    text = (f"livelab: WARNING: --insecure: the signatures of {rel.os} {rel.stream} {rel.version} "
            f"{', '.join(unsigned)} were NOT checked")
    if bare:
        text += f"; {', '.join(bare)} had no published digest either, so their bytes are NOT verified at all"
    print(f"{text}. They are kept apart, in {store.area(True)}, and a secure run fetches its own.", file=sys.stderr)
