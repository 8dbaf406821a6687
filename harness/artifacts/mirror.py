"""Upstream URL -> cache key / mirror URL mapping, and the (urllib) transport.

Fixed rules (a mirror is a plain static tree):

* ``https://builds.coreos.fedoraproject.org/<path>``       -> ``<mirror>/fcos/<path>``
* ``https://<channel>.release.flatcar-linux.net/<path>``   -> ``<mirror>/flatcar/<channel>/<path>``

The same relative path (``fcos/<path>``, ``flatcar/<channel>/<path>``) is the cache key, so a
mirror and upstream share cache entries.  With a mirror set, a URL matching neither rule is an
error: nothing is ever fetched upstream behind the user's back.
"""
from __future__ import annotations

import contextlib
import errno
import http.client
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request

from ..errors import LivelabError
from ..vocab import FLATCAR_CHANNELS

FCOS_BASE = "https://builds.coreos.fedoraproject.org/"
_FLATCAR_RE = re.compile(r"^https://(?P<channel>[a-z0-9-]+)\.release\.flatcar-linux\.net/(?P<path>.*)$")

DEFAULT_TIMEOUT = 30.0
USER_AGENT = "livelab-artifacts/0.1"


class NetError(LivelabError):
    """A network failure; ``retryable`` for 5xx, connection errors, stalls and short reads."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def cache_key(upstream_url: str) -> str:
    """The mirror/cache-relative path of an upstream URL (``fcos/...`` or ``flatcar/<ch>/...``)."""
    if upstream_url.startswith(FCOS_BASE):
        path = upstream_url[len(FCOS_BASE):]
        key = "fcos/" + path
    else:
        m = _FLATCAR_RE.match(upstream_url)
        if not m or m.group("channel") not in FLATCAR_CHANNELS:
            raise LivelabError(
                f"URL {upstream_url} matches no mirror rule (expected {FCOS_BASE}... or "
                f"https://<{'|'.join(FLATCAR_CHANNELS)}>.release.flatcar-linux.net/...)")
        key = f"flatcar/{m.group('channel')}/{m.group('path')}"
    key = key.split("?", 1)[0].split("#", 1)[0]
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise LivelabError(f"URL {upstream_url} has an unsafe path for the cache/mirror")
    return key


def normalize_mirror(mirror: str | None) -> str | None:
    """Accept http(s)://, file:// or a local directory path; return a URL without trailing slash."""
    if not mirror:
        return None
    scheme = urllib.parse.urlsplit(mirror).scheme
    if scheme in ("http", "https", "file"):
        return mirror.rstrip("/")
    if scheme == "" and (os.path.isabs(mirror) or os.path.isdir(mirror)):
        return urllib.parse.urljoin("file:", urllib.request.pathname2url(os.path.abspath(mirror))).rstrip("/")
    raise LivelabError(f"unsupported mirror {mirror!r}: expected http://, https://, file:// or a directory")


def map_url(url: str, mirror: str | None) -> str:
    """Map an upstream URL onto the mirror (identity without a mirror)."""
    mirror = normalize_mirror(mirror)
    if mirror is None:
        return url
    if url.startswith(mirror + "/"):
        return url          # already on the mirror
    return f"{mirror}/{cache_key(url)}"


# ---------------------------------------------------------------- transport

class Response:
    """A streaming body: ``status`` (200/206), ``length`` (bytes still to come, or None), ``read(n)``."""

    def __init__(self, url: str, fp, status: int, length: int | None, offset: int, total: int | None,
                 timeout: float):
        self.url, self._fp, self.status, self.length = url, fp, status, length
        self.offset, self.total, self.timeout = offset, total, timeout

    def read(self, n: int = 1 << 20) -> bytes:
        try:
            return self._fp.read(n)
        except (socket.timeout, TimeoutError):
            raise NetError(f"{self.url}: stalled, no data for {self.timeout:g}s (read timeout)",
                           retryable=True) from None
        except (http.client.IncompleteRead, ConnectionError, OSError) as exc:
            raise NetError(f"{self.url}: connection broken during download ({_cause(exc)})",
                           retryable=True) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._fp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _cause(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        exc = reason
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed ({exc.strerror or exc})"
    text = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
    return " ".join(str(text).split())


def open_url(url: str, offset: int = 0, timeout: float = DEFAULT_TIMEOUT) -> Response:
    """Open ``url`` (http, https or file) for streaming from byte ``offset``.

    Raises NetError naming the URL and the HTTP status or cause.  A server that ignores the
    Range header answers 200 and the caller must restart from zero (``status == 200``).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = urllib.request.url2pathname(parts.path)
        try:
            fp = open(path, "rb")  # noqa: SIM115 -- returned open: the caller streams and closes it
        except FileNotFoundError:
            raise NetError(f"{url}: not found (no such file)", status=404) from None
        except OSError as exc:
            raise NetError(f"{url}: {_cause(exc)}") from None
        size = os.fstat(fp.fileno()).st_size
        if offset:
            fp.seek(min(offset, size))
        return Response(url, fp, 206 if offset else 200, size - min(offset, size), offset, size, timeout)
    if parts.scheme not in ("http", "https"):
        raise LivelabError(f"unsupported URL scheme in {url}")
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        code = exc.code
        exc.close()
        if code == 416 and offset:
            return Response(url, _Empty(), 416, 0, offset, None, timeout)
        raise NetError(f"{url}: HTTP {code} {exc.reason}", status=code, retryable=code >= 500) from None
    except urllib.error.URLError as exc:
        raise NetError(f"{url}: {_cause(exc)}", retryable=True) from None
    except (socket.timeout, TimeoutError):
        raise NetError(f"{url}: stalled, no response for {timeout:g}s (read timeout)", retryable=True) from None
    except (http.client.HTTPException, ConnectionError, OSError) as exc:
        raise NetError(f"{url}: {_cause(exc)}", retryable=True) from None
    status = resp.status
    length = resp.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    total = None
    if status == 206:
        m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != offset:
            resp.close()
            raise NetError(f"{url}: bad Content-Range for a resume from byte {offset}", retryable=True)
        total = int(m.group(3)) if m.group(3) != "*" else None
    else:
        offset = 0
        total = length
    return Response(url, resp, status, length, offset, total, timeout)


class _Empty:
    def read(self, n=-1):
        return b""

    def close(self):
        pass


def read_url(url: str, timeout: float = DEFAULT_TIMEOUT, limit: int = 64 << 20) -> bytes:
    """Read a small file (metadata, signature, DIGESTS) completely."""
    with open_url(url, timeout=timeout) as resp:
        chunks, got = [], 0
        while True:
            b = resp.read(1 << 16)
            if not b:
                break
            chunks.append(b)
            got += len(b)
            if got > limit:
                raise NetError(f"{url}: larger than {limit} bytes, refusing")
        if resp.length is not None and got != resp.length:
            raise NetError(f"{url}: connection closed after {got} of {resp.length} bytes", retryable=True)
        return b"".join(chunks)
