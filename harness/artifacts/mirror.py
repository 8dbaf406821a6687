"""Map: upstream URL -> cache key and mirror URL (pure; the transport is ``transport.py``).

Fixed rules (a mirror is a plain static tree):

* ``https://builds.coreos.fedoraproject.org/<path>``       -> ``<mirror>/fcos/<path>``
* ``https://<channel>.release.flatcar-linux.net/<path>``   -> ``<mirror>/flatcar/<channel>/<path>``

The same relative path (``fcos/<path>``, ``flatcar/<channel>/<path>``) is the cache key, so a
mirror and upstream share cache entries.  A directory URL (``…/amd64-usr/``: a Flatcar channel's
listing of its versions) keeps its trailing slash on the mirror, where the web server answers with
the directory's page, and is cached as ``<path>/index.html``, the name a static tree (``wget
--mirror``, the stand-in) keeps that page under.  With a mirror set, a URL matching neither rule is an
error: nothing is ever fetched upstream behind the user's back.
"""
from __future__ import annotations

import os
import re
import urllib.parse
import urllib.request

from ..errors import LivelabError
from ..vocab import FLATCAR_CHANNELS

FCOS_BASE = "https://builds.coreos.fedoraproject.org/"
_FLATCAR_RE = re.compile(r"^https://(?P<channel>[a-z0-9-]+)\.release\.flatcar-linux\.net/(?P<path>.*)$")


DIRECTORY_PAGE = "index.html"


def cache_key(upstream_url: str) -> str:
    """The mirror/cache-relative path of an upstream URL (``fcos/...`` or ``flatcar/<ch>/...``); a
    directory's page (a URL ending in ``/``) is its ``index.html``."""
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
    if key.endswith("/"):
        key += DIRECTORY_PAGE
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
    key = cache_key(url)
    if is_directory(url):   # the server answers a directory URL with its page
        key = key[:-len(DIRECTORY_PAGE)]
    return f"{mirror}/{key}"


def is_directory(url: str) -> bool:
    """Whether ``url`` names a directory (its path ends in ``/``)."""
    return urllib.parse.urlsplit(url).path.endswith("/")
