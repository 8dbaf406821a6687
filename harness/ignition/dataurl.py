"""RFC 2397 data URLs as Butane writes them, and their decoding."""
from __future__ import annotations

import base64
import gzip
import urllib.parse
import zlib
from collections.abc import Callable

# Butane's allowance for the extra `"compression": "gzip"` in the output
_GZIP_OVERHEAD = 25
# What a gzip data URL may inflate to when it is checked.  A config is at most 16 MiB (safeload), and
# a file Ignition writes from one is rarely more than a few MiB; a bomb stops here instead of
# filling memory.
MAX_INFLATED = 256 << 20


def make_data_url(data: bytes, compression: str | None = None,
                  allow_compression: bool = True) -> tuple[str, str]:
    """(url, compression): the shortest of ``data:,<escaped>``, ``data:;base64,<b64>`` and,
    when the caller set no compression of their own, gzip+base64 (only if it wins by more
    than the ``"compression":"gzip"`` it costs).  ``compression`` comes back as "" when
    uncompressed, so a merged parent's compression can't leak into this resource.
    """
    comp = compression or ""
    escaped = "data:," + urllib.parse.quote(data, safe="")
    b64 = "data:;base64," + base64.b64encode(data).decode("ascii")
    url = b64 if len(b64) < len(escaped) else escaped
    if allow_compression and not compression:
        gz = gzip.compress(data, compresslevel=9, mtime=0)
        gz_url = "data:;base64," + base64.b64encode(gz).decode("ascii")
        if len(gz_url) + _GZIP_OVERHEAD < len(url):
            url, comp = gz_url, "gzip"
    return url, comp


def decode_data_url(url: str, compression: str | None = None) -> bytes:
    """The bytes a data URL carries (gunzipped when ``compression`` is "gzip"); ValueError when it
    is not a data URL, or inflates past ``MAX_INFLATED``."""
    data = _payload(url)
    if compression == "gzip":
        out = bytearray()
        _gunzip(data, MAX_INFLATED, out.extend)
        return bytes(out)
    return data


def check_data_url(url: str, compression: str | None = None) -> None:
    """ValueError when ``decode_data_url`` would fail; the inflated bytes are counted, not kept."""
    data = _payload(url)
    if compression == "gzip":
        _gunzip(data, MAX_INFLATED, lambda piece: None)


def _payload(url: str) -> bytes:
    if not url.startswith("data:"):
        raise ValueError(f"not a data URL: {url[:40]!r}")
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise ValueError("data URL has no ','")
    if header.endswith(";base64"):
        return base64.b64decode(payload, validate=True)
    return urllib.parse.unquote_to_bytes(payload)


def _gunzip(data: bytes, limit: int, sink: Callable[[bytes], object]) -> None:
    """Inflate gzip ``data`` (one member or several) into ``sink`` 1 MiB at a time; ValueError once
    the output would pass ``limit`` bytes, or the data is bad or cut short."""
    total = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = rest
        while pending and not inflater.eof:
            try:
                piece = inflater.decompress(pending, 1 << 20)
            except zlib.error as exc:
                raise ValueError(f"bad gzip data ({exc})") from None
            total += len(piece)
            if total > limit:
                raise ValueError(f"gzip data inflates to more than {limit >> 20} MiB")
            sink(piece)
            pending = inflater.unconsumed_tail
        if not inflater.eof:
            raise ValueError("gzip data is truncated")
        rest = inflater.unused_data
