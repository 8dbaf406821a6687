"""The fetch pipeline: resolve → map to the mirror → transport → verify → store.

Resolution (``fcos.py``, ``flatcar.py``) gives each file its upstream URL and published digests;
``mirror.py`` maps the URL; here one file is fetched, reading top to bottom:

1. the store: with the file's lock held, a cached copy whose record still matches is the answer;
2. its detached signature is fetched (small, first: a download is checked while it arrives);
3. the transport streams the bytes into ``<file>.livelab-part`` (resumed with Range), each chunk
   also going to the verifier (digest threads and ``gpgv <sig> -``);
4. the digests, then the signature, are judged; only then
5. the part is renamed to its final name and its record written.

Metadata (stream JSON, release index, version.txt, DIGESTS) goes through ``get_metadata``: it is
parsed and checked by the caller's ``parse`` before it replaces the cached copy, so a bad reply
leaves the good copy in place, and errors name the URL or file really read.
"""
from __future__ import annotations

import errno
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from .. import poll
from ..atomic import atomic_write
from ..errors import LivelabError
from ..safeload import Limits, read_file
from . import transport
from . import verify as _verify
from .mirror import cache_key, map_url
from .model import Artifact, LocalArtifact
from .store import Store, load_record, part_path, sig_path
from .transport import NetError, Policy

log = logging.getLogger(__name__)

T = TypeVar("T")
PROGRESS_MIN_BYTES = 16 << 20
DEFAULT_RETRIES = 2
BACKOFF_S = 1.0
METADATA_LIMIT = 16 << 20       # stream JSON is ~100 KiB; anything near this is not metadata
SIGNATURE_LIMIT = 1 << 20


@dataclass
class Fetcher:
    """What one ``fetch``/``resolve`` call needs: where to read, where to keep, what to trust."""

    store: Store
    mirror: str | None = None
    policy: Policy = field(default_factory=Policy)
    keyring: _verify.Keyring | None = None
    insecure: bool = False
    offline: bool = False
    retries: int = DEFAULT_RETRIES
    backoff: float = BACKOFF_S
    progress: bool | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- metadata

    def metadata(self, upstream_url: str, parse: Callable[[bytes, str], T], *, immutable: bool = False) -> T:
        """``parse(bytes, source)`` of a metadata file that must be there (see ``get_metadata``)."""
        got = self.get_metadata(upstream_url, parse, immutable=immutable)
        if got is None:                 # pragma: no cover -- only an optional file comes back as None
            raise LivelabError(f"{upstream_url}: not found")
        return got

    def get_metadata(self, upstream_url: str, parse: Callable[[bytes, str], T], *, immutable: bool = False,
                     optional: bool = False) -> T | None:
        """``parse(bytes, source)`` of a small metadata file, fetched through the mirror.

        The copy in the store is used offline, and for ``immutable`` files when present; otherwise
        the file is fetched, parsed, and only then kept.  ``optional``: a 404 gives None.
        """
        log.debug("metadata %s%s", upstream_url, " (offline)" if self.offline else "")
        cached = self.store.read_metadata(upstream_url)
        if self.offline or (immutable and cached is not None):
            if cached is not None:
                return parse(*cached)
            if optional:
                return None
            raise LivelabError(f"offline: {cache_key(upstream_url)} is not in the cache {self.store.root}")
        url = map_url(upstream_url, self.mirror)
        try:
            data, _final = self._with_retries(lambda: transport.read_url(url, self.policy, METADATA_LIMIT))
        except NetError as exc:
            if optional and exc.status == 404:
                return None
            raise
        result = parse(data, url)                 # a bad reply raises here: the cached copy stays
        self.store.keep_metadata(upstream_url, data)
        return result

    def read_source(self, source: str, parse: Callable[[bytes, str], T]) -> T:
        """``parse`` of an explicit ``--metadata`` file or URL (upstream URLs go through the mirror)."""
        if "://" in source:
            try:
                url = map_url(source, self.mirror)
            except LivelabError:
                url = source            # an explicit non-upstream URL is used as given
            data, _final = transport.read_url(url, self.policy, METADATA_LIMIT)
            return parse(data, url)
        return parse(read_file(source, f"metadata file {source}", limits=Limits(max_bytes=METADATA_LIMIT)), source)

    # ---------------------------------------------------------------- one artifact

    def fetch(self, art: Artifact) -> LocalArtifact:
        """The verified local copy of ``art``, downloaded if needed."""
        name = art.filename or Path(cache_key(art.upstream_url)).name
        final = self.store.path_for(art.upstream_url, insecure=self.insecure)
        if self.insecure:                   # a copy a secure run verified serves an insecure one too
            secure = self.store.path_for(art.upstream_url)
            rec = load_record(secure)
            if rec is not None and _record_matches(rec, secure, art):
                return _local(art, secure, rec, downloaded=False)
        with self.store.locked(final):
            cached = self._cached(art, final, name)
            if cached is not None:
                return cached
            if self.offline:
                raise LivelabError(f"offline: {art.kind} {cache_key(art.upstream_url)} is not in the cache "
                                   f"{self.store.root}")
            sig = None if self.insecure else self._fetch_signature(art, final, name)
            digests, signers, final_url = self._download(art, final, sig, name)
            os.replace(part_path(final), final)
            rec = self.store.write_record(final, self._record_fields(art, digests, signers, final_url))
            return _local(art, final, rec, downloaded=True)

    def _cached(self, art: Artifact, final: Path, name: str) -> LocalArtifact | None:
        """The cached copy if it (still) passes the checks; a failing one is removed (online)."""
        if not final.exists():
            return None
        rec = load_record(final)
        if rec is not None and _record_matches(rec, final, art) and self._trusted(rec):
            return _local(art, final, rec, downloaded=False)
        # the file changed on disk, its record is missing or old, or another keyring is trusted now
        log.debug("%s: re-checking the cached copy", final)
        digests = _verify.file_digests(final, _algos(art))
        try:
            _verify.check_digests(name, art.digests, digests, art.digests_source or "")
            signers = [] if self.insecure else self._verify_cached_signature(art, final, name)
        except LivelabError as exc:
            if isinstance(exc, _verify.SignatureError) and exc.untrusted:
                raise                       # right bytes for another keyring: kept, not fetched again
            if self.offline:
                raise LivelabError(f"offline: the cached copy fails its checks: {exc.one_line()}") from None
            log.debug("%s: %s; fetching it again", final, exc.one_line())
            self.store.forget(final)
            return None
        rec = self.store.write_record(final, self._record_fields(art, digests, signers,
                                                                 (rec or {}).get("final_url") or art.url))
        return _local(art, final, rec, downloaded=False)

    def _verify_cached_signature(self, art: Artifact, final: Path, name: str) -> list[str]:
        keyring = self._ring()
        sig = sig_path(final)
        if not sig.exists():
            if self.offline:
                raise LivelabError(f"offline: signature of {name} is not in the cache ({sig})")
            self._fetch_signature(art, final, name)
        try:
            return _verify.gpgv_verify(final, sig, keyring, name)
        except LivelabError:
            if self.offline:
                raise
            # the cached signature may be stale (same bytes re-signed, e.g. a key rotation)
            self._fetch_signature(art, final, name)
            return _verify.gpgv_verify(final, sig, keyring, name)

    def _trusted(self, rec: dict[str, Any]) -> bool:
        if self.insecure:
            return True
        return bool(set(rec.get("verified_with") or ()) & set(self._ring().fingerprints))

    def _ring(self) -> _verify.Keyring:
        if self.keyring is None:
            raise LivelabError("internal: a secure fetch without a keyring")
        return self.keyring

    def _fetch_signature(self, art: Artifact, final: Path, name: str) -> Path:
        if not art.signature_url:
            raise _verify.SignatureError(f"refusing {name}: no signature URL known for it")
        signature_url = art.signature_url
        try:
            data, _final = self._with_retries(lambda: transport.read_url(signature_url, self.policy, SIGNATURE_LIMIT))
        except NetError as exc:
            why = f"HTTP {exc.status}" if exc.status else str(exc).split(": ", 1)[-1]
            raise _verify.SignatureError(f"refusing {name}: signature missing at {art.signature_url} ({why})") from None
        path = sig_path(final)
        atomic_write(path, data)
        return path

    # ---------------------------------------------------------------- download + verify

    def _download(self, art: Artifact, final: Path, sig: Path | None, name: str) -> tuple[dict, list, str]:
        """Stream ``art`` into its part file, verified on the way: (digests, signers, final URL).

        Retryable failures resume from the part; a part that fails its checks after a resume
        (left by an older or corrupt attempt) is dropped and the file downloaded once more from zero.
        """
        part = part_path(final)
        started = time.monotonic()
        for fresh in (False, True):
            if fresh:
                part.unlink(missing_ok=True)
            resumed = part.exists() and part.stat().st_size > 0
            verifier, final_url = self._with_retries(lambda: self._stream(art, part, sig, name, started))
            digests = verifier.finish()
            try:
                _verify.check_digests(name, art.digests, digests, art.digests_source or "")
                signers = verifier.signers()
            except LivelabError:
                if resumed and not fresh:
                    continue
                part.unlink(missing_ok=True)
                if sig is not None:
                    sig.unlink(missing_ok=True)
                raise
            return digests, signers, final_url
        raise LivelabError(f"internal: {name} neither verified nor refused")     # pragma: no cover

    def _stream(self, art: Artifact, part: Path, sig: Path | None, name: str,
                started: float) -> tuple[_verify.StreamVerifier, str]:
        """One attempt: resume ``part`` from its size; every byte, old and new, goes through the verifier."""
        offset = part.stat().st_size if part.exists() else 0
        keyring = None if self.insecure else self._ring()
        with transport.open_url(art.url, offset=offset, policy=self.policy, started=started) as resp:
            if resp.status == 416:              # nothing left: the part is (claimed) complete
                verifier = _verify.StreamVerifier(part, _algos(art), name, sig, keyring)
                verifier.written(offset)
                return verifier, resp.final_url
            if resp.status == 200:
                offset = 0                      # whole body (the server ignored Range): start over
            total = resp.total if resp.total is not None else (
                offset + resp.length if resp.length is not None else None)
            with open(part, "r+b" if offset else "wb") as out:
                out.truncate(offset)
                out.seek(offset)
                verifier = _verify.StreamVerifier(part, _algos(art), name, sig, keyring)
                try:
                    verifier.written(offset)
                    self._copy(resp, out, offset, total, verifier, name)
                except BaseException:
                    verifier.abort()
                    raise
            return verifier, resp.final_url

    def _copy(self, resp: transport.Response, out: BinaryIO, offset: int, total: int | None,
              verifier: _verify.StreamVerifier, name: str) -> None:
        """The body into ``out`` (unbuffered writes, so the verifier can read each byte once written)."""
        bar = _Progress(name, total, self.progress)
        got = offset
        try:
            while True:
                chunk = resp.read()
                if not chunk:
                    break
                try:
                    out.write(chunk)
                    out.flush()
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise LivelabError(f"No space left on device: the cache at {Path(out.name).parent} is full "
                                           f"while downloading {name} ({got} bytes written to {out.name})") from None
                    raise
                got += len(chunk)
                verifier.written(got)
                bar.set(got, total)
        finally:
            bar.close()

    # ---------------------------------------------------------------- helpers

    def _with_retries(self, fn: Callable[[], T]) -> T:
        """``fn()``, tried again up to ``retries`` times on a retryable NetError, ``backoff`` s apart at
        first and twice as long each time."""
        failures = 0

        def attempt() -> T:
            nonlocal failures
            try:
                return fn()
            except NetError as exc:
                failures += 1
                if not exc.retryable or failures > self.retries:
                    raise
                raise poll.Retry(str(exc)) from None

        return poll.poll(attempt, None, what="download", interval=self.backoff, backoff=2.0)

    def _record_fields(self, art: Artifact, digests: dict[str, str], signers: list[str],
                       final_url: str) -> dict[str, Any]:
        return {"url": art.url, "final_url": final_url, "upstream_url": art.upstream_url, "kind": art.kind,
                "digests": digests, "verified_with": signers,
                "keyring": None if self.insecure or self.keyring is None else self.keyring.source,
                "insecure": self.insecure, **self.meta}


def _algos(art: Artifact) -> list[str]:
    return sorted(set(art.digests) | {"sha256"})


def _record_matches(rec: dict[str, Any], final: Path, art: Artifact) -> bool:
    """The record describes the file as it is now and agrees with the published digests."""
    try:
        st = final.stat()
    except OSError:
        return False
    if rec.get("size") != st.st_size or rec.get("mtime_ns") != st.st_mtime_ns:
        return False
    have = rec.get("digests") or {}
    return all(str(have.get(algo, "")).lower() == want.lower() for algo, want in art.digests.items())


def _local(art: Artifact, final: Path, rec: dict[str, Any], downloaded: bool) -> LocalArtifact:
    log.debug("%s %s: %s (%s)", art.kind, "downloaded and verified" if downloaded else "cache hit, verified",
              final, ", ".join(f"{a}:{str(d)[:12]}" for a, d in sorted(rec["digests"].items())))
    return LocalArtifact(kind=art.kind, path=str(final), digests=dict(rec["digests"]),
                         verified_with=list(rec.get("verified_with") or []), insecure=bool(rec.get("insecure")),
                         url=art.url, upstream_url=art.upstream_url, downloaded=downloaded,
                         final_url=str(rec.get("final_url") or art.url))


class _Progress:
    def __init__(self, name: str, total: int | None, enabled: bool | None):
        self.bar: Any = None
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
