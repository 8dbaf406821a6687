"""Artifacts: resolve FCOS / Flatcar live images, download them into a verified cache.

    from harness.artifacts import resolve, fetch
    rel = resolve("fcos", "stable", arch="x86_64")
    files = fetch(rel)                    # {kind: LocalArtifact}
"""
from __future__ import annotations

from collections.abc import Iterable

from ..errors import LivelabError
from ..vocab import check_os, check_stream
from . import cache as _cache
from . import fcos as _fcos
from . import flatcar as _flatcar
from . import verify as _verify
from .mirror import normalize_mirror
from .model import Artifact, LocalArtifact, Release

__all__ = ["Artifact", "LocalArtifact", "Release", "fetch", "resolve"]


def resolve(os_id: str, stream: str, arch: str = "x86_64", version: str | None = None,
            mirror: str | None = None, metadata: str | None = None, *, cache_dir=None,
            offline: bool = False, timeout: float | None = None) -> Release:
    """Resolve a release (latest of ``stream`` unless ``version``) to its artifacts.

    ``metadata``: path or URL of a stream JSON (fcos) / version.txt (flatcar) to use instead of
    downloading it.  ``offline``: use only metadata already in the cache.
    """
    check_os(os_id)
    check_stream(os_id, stream)
    mirror = normalize_mirror(mirror)
    mod = _fcos if os_id == "fcos" else _flatcar
    return mod.resolve(stream, arch=arch, version=version, mirror=mirror, metadata=metadata,
                       cache_dir=cache_dir, offline=offline, timeout=timeout)


def fetch(rel: Release, kinds: Iterable[str] | None = None, keyring=None, insecure: bool = False,
          offline: bool = False, cache_dir=None, progress: bool | None = None, *,
          timeout: float | None = None, retries: int | None = None,
          backoff: float | None = None) -> dict[str, LocalArtifact]:
    """Download (or find in the cache) and verify artifacts of ``rel``; {kind: LocalArtifact}.

    Each file is checked against the digests of the metadata and its detached signature
    (gpgv against ``keyring`` if given, else the bundled keyring of the OS).  ``insecure``
    skips the signature (digests are still checked) and marks the result ``insecure``.
    """
    wanted = list(kinds) if kinds else list(rel.artifacts)
    unknown = [k for k in wanted if k not in rel.artifacts]
    if unknown:
        raise LivelabError(f"{rel.os} has no artifact kind {', '.join(unknown)}: "
                           f"expected {', '.join(rel.artifacts)}")
    root = _cache.cache_root(cache_dir)
    if offline:
        missing = [f"{k} ({_cache.cache_key(rel.artifacts[k].upstream_url)})" for k in wanted
                   if not (root / _cache.cache_key(rel.artifacts[k].upstream_url)).exists()]
        if missing:
            raise LivelabError(f"offline: not in the cache {root}: {', '.join(missing)}")
    ring = None if insecure else _verify.keyring_for(rel.os, keyring, root)
    meta = {"os": rel.os, "stream": rel.stream, "version": rel.version, "arch": rel.arch}
    out = {}
    for k in wanted:
        out[k] = _cache.fetch_artifact(rel.artifacts[k], root=root, keyring=ring, insecure=insecure,
                                       offline=offline, timeout=timeout, retries=retries, backoff=backoff,
                                       progress=progress, meta=meta)
    return out
