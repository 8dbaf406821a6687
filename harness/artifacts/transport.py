"""Transport: bytes from an http(s):// or file:// URL, under the network rules.

The rules, each in one place here:

* **Stall time-out**: in every ``stall_timeout`` seconds at least 64 KiB (or what is left of the
  body) must arrive; silence or a trickle is a retryable ``NetError`` saying how much came.
* **Deadline**: a whole download (all attempts of it) ends within ``deadline`` seconds.
* **Redirects**: with a mirror, only to the mirror's own origin (scheme, host, port); without
  one, only to https, at most ``MAX_REDIRECTS`` hops.  The final URL is kept
  (``Response.final_url``) so records can name it.  Signatures stay the trust anchor.
* **Resume**: ``offset`` asks for ``Range: bytes=<offset>-``; a server that ignores it answers
  200 and the caller starts over.

``NetError.retryable`` marks what may be tried again (5xx, connection errors, stalls, short reads).
"""
from __future__ import annotations

import contextlib
import errno
import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import IO, Any

from ..errors import LivelabError
from .mirror import DIRECTORY_PAGE

USER_AGENT = "livelab-artifacts/0.1"
DEFAULT_STALL_TIMEOUT = 30.0     # seconds in which STALL_BYTES must arrive
DEFAULT_DEADLINE = 3600.0        # seconds for one file, all attempts (a 1 GiB rootfs at 300 KiB/s)
STALL_BYTES = 64 << 10
MAX_REDIRECTS = 5
CHUNK = 4 << 20


class NetError(LivelabError):
    """A network failure; ``retryable`` for 5xx, connection errors, stalls and short reads."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the port made explicit for http/https."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _origin_text(o: tuple[str, str, int | None]) -> str:
    return f"{o[0]}://{o[1]}" + (f":{o[2]}" if o[2] else "")


@dataclass(frozen=True)
class Policy:
    """The network rules of one fetch: time limits and where redirects may go (the limits are checked
    where they are read: ``harness.artifacts.network_policy``)."""

    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    deadline: float = DEFAULT_DEADLINE
    mirror: str | None = None           # set: redirects stay inside its origin
    max_redirects: int = MAX_REDIRECTS

    def check_redirect(self, source: str, target: str, hops: int) -> None:
        """Refuse a redirect the rules do not allow (one line naming the redirect and its target)."""
        if hops > self.max_redirects:
            raise NetError(f"{source}: more than {self.max_redirects} redirects (last to {target})")
        if self.mirror is not None:
            want = origin(self.mirror)
            if want[0] != "file" and origin(target) != want:
                raise NetError(f"{source}: redirect to {target} leaves the mirror's origin {_origin_text(want)}: "
                               "refused (nothing is fetched from outside the mirror)")
        elif urllib.parse.urlsplit(target).scheme != "https":
            raise NetError(f"{source}: redirect to {target} is not https: refused")


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


class _Redirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handling, with every hop checked against the policy."""

    max_redirections = 100          # the policy's own count says it first

    def __init__(self, policy: Policy):
        self.policy, self.hops = policy, 0

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        self.hops += 1
        self.policy.check_redirect(req.full_url, newurl, self.hops)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:             # keep the resume point across the hop
            for name in ("Range", "User-Agent", "Accept-Encoding"):
                if req.has_header(name):
                    new.add_unredirected_header(name, req.get_header(name) or "")
        return new


class Response:
    """A streaming body.  ``status`` (200/206/416), ``length`` (bytes still to come, or None),
    ``offset`` (where the body starts), ``total`` (whole file size, if known), ``final_url``."""

    def __init__(self, url: str, fp: Any, status: int, length: int | None, offset: int, total: int | None,
                 policy: Policy, started: float, final_url: str | None = None):
        self.url, self._fp, self.status, self.length = url, fp, status, length
        self.offset, self.total, self.policy = offset, total, policy
        self.final_url = final_url or url
        self.received = 0
        self._deadline_at = started + policy.deadline
        self._window_start = time.monotonic()
        self._window_bytes = 0

    def _check_progress(self) -> None:
        now = time.monotonic()
        if now > self._deadline_at:
            raise NetError(f"{self.url}: not done within the deadline of {self.policy.deadline:g}s "
                           f"({self.offset + self.received} bytes so far)")
        if now - self._window_start >= self.policy.stall_timeout:
            left = None if self.length is None else self.length - self.received + self._window_bytes
            need = STALL_BYTES if left is None else min(STALL_BYTES, left)
            if self._window_bytes < need:
                raise NetError(f"{self.url}: stalled: {self._window_bytes} bytes in the last "
                               f"{self.policy.stall_timeout:g}s (stall time-out)", retryable=True)
            self._window_start, self._window_bytes = now, 0

    def read(self, n: int = CHUNK) -> bytes:
        """Up to ``n`` bytes, as soon as some are there; b"" at the end of the body."""
        self._check_progress()
        try:
            data = self._fp.read1(n) if hasattr(self._fp, "read1") else self._fp.read(n)
        except (socket.timeout, TimeoutError):
            raise NetError(f"{self.url}: stalled: no data for {self.policy.stall_timeout:g}s (stall time-out)",
                           retryable=True) from None
        except (http.client.IncompleteRead, ConnectionError, OSError) as exc:
            raise NetError(f"{self.url}: connection broken during download ({_cause(exc)})",
                           retryable=True) from None
        self.received += len(data)
        self._window_bytes += len(data)
        if not data and self.length is not None and self.received < self.length:
            raise NetError(f"{self.url}: connection closed after {self.offset + self.received} of "
                           f"{self.offset + self.length} bytes", retryable=True)
        return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._fp.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Empty:
    def read(self, n: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass


def open_url(url: str, offset: int = 0, policy: Policy | None = None, started: float | None = None) -> Response:
    """Open ``url`` for streaming from byte ``offset``; NetError names the URL and the status or cause.

    ``started``: when the whole download began (for the deadline across attempts).
    """
    policy = policy or Policy()
    started = time.monotonic() if started is None else started
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = urllib.request.url2pathname(parts.path)
        if os.path.isdir(path) and parts.path.endswith("/"):
            # a directory URL of a static tree: its page, as a web server serves it
            path = os.path.join(path, DIRECTORY_PAGE)
        if os.path.isdir(path):
            raise NetError(f"{url}: is a directory, not a file")
        try:
            fp = open(path, "rb")  # noqa: SIM115 -- returned open: the caller streams and closes it
        except FileNotFoundError:
            raise NetError(f"{url}: not found (no such file)", status=404) from None
        except OSError as exc:
            raise NetError(f"{url}: {_cause(exc)}") from None
        size = os.fstat(fp.fileno()).st_size
        start = min(offset, size)
        fp.seek(start)
        return Response(url, fp, 206 if offset else 200, size - start, start, size, policy, started)
    if parts.scheme not in ("http", "https"):
        raise LivelabError(f"unsupported URL scheme in {url}")
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    opener = urllib.request.build_opener(_Redirects(policy))
    req = urllib.request.Request(url, headers=headers)
    left = policy.deadline - (time.monotonic() - started)
    if left <= 0:
        raise NetError(f"{url}: not done within the deadline of {policy.deadline:g}s")
    try:
        resp = opener.open(req, timeout=min(policy.stall_timeout, left))
    except urllib.error.HTTPError as exc:
        code = exc.code
        exc.close()
        if code == 416 and offset:
            return Response(url, _Empty(), 416, 0, offset, None, policy, started)
        raise NetError(f"{url}: HTTP {code} {exc.reason}", status=code, retryable=code >= 500) from None
    except NetError:
        raise
    except urllib.error.URLError as exc:
        raise NetError(f"{url}: {_cause(exc)}", retryable=True) from None
    except (socket.timeout, TimeoutError):
        raise NetError(f"{url}: stalled: no response for {policy.stall_timeout:g}s (stall time-out)",
                       retryable=True) from None
    except (http.client.HTTPException, ConnectionError, OSError) as exc:
        raise NetError(f"{url}: {_cause(exc)}", retryable=True) from None
    status = resp.status
    raw_length = resp.headers.get("Content-Length")
    length = int(raw_length) if raw_length and raw_length.isdigit() else None
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
    return Response(url, resp, status, length, offset, total, policy, started, final_url=resp.geturl())


def read_url(url: str, policy: Policy | None = None, limit: int = 64 << 20) -> tuple[bytes, str]:
    """A small file (metadata, signature, DIGESTS) read completely: (bytes, the final URL)."""
    with open_url(url, policy=policy) as resp:
        if resp.length is not None and resp.length > limit:
            raise NetError(f"{url}: {resp.length} bytes, larger than the {limit}-byte limit for this file: refused")
        chunks, got = [], 0
        while True:
            b = resp.read(1 << 16)
            if not b:
                break
            chunks.append(b)
            got += len(b)
            if got > limit:
                raise NetError(f"{url}: larger than the {limit}-byte limit for this file: refused")
        return b"".join(chunks), resp.final_url
