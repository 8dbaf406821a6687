"""RFC 2397 data URLs as Butane writes them, and their decoding."""
from __future__ import annotations

import base64
import gzip
import urllib.parse

# Butane's allowance for the extra `"compression": "gzip"` in the output
_GZIP_OVERHEAD = 25


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
    """The bytes a data URL carries (gunzipped when ``compression`` is "gzip")."""
    if not url.startswith("data:"):
        raise ValueError(f"not a data URL: {url[:40]!r}")
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise ValueError("data URL has no ','")
    if header.endswith(";base64"):
        data = base64.b64decode(payload, validate=True)
    else:
        data = urllib.parse.unquote_to_bytes(payload)
    if compression == "gzip":
        data = gzip.decompress(data)
    return data
