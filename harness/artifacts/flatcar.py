"""Flatcar Container Linux: release server layout, version.txt, DIGESTS.

``https://<channel>.release.flatcar-linux.net/<board>/{current,<version>}/``; ``current`` is
resolved to a concrete version (``current/version.txt``, ``FLATCAR_VERSION=``) before anything
is downloaded, so cache entries and reports always name a real version.
"""
from __future__ import annotations

import html
import re

from ..errors import LivelabError
from ..safeload import shown
from ..vocab import check_stream
from .mirror import map_url
from .model import Artifact, Release
from .pipeline import Fetcher
from .verify import parse_digests

BOARDS = {"x86_64": "amd64-usr", "amd64": "amd64-usr", "aarch64": "arm64-usr", "arm64": "arm64-usr"}
FILES = {"kernel": "flatcar_production_pxe.vmlinuz", "initramfs": "flatcar_production_pxe_image.cpio.gz"}
_VERSION_RE = re.compile(r"\d+\.\d+\.\d+(?:[+-][0-9A-Za-z._+-]+)?", re.ASCII)   # matched whole


def base_url(channel: str, arch: str = "x86_64") -> str:
    if arch not in BOARDS:
        raise LivelabError(f"unknown Flatcar architecture {arch!r}: expected one of {', '.join(BOARDS)}")
    return f"https://{channel}.release.flatcar-linux.net/{BOARDS[arch]}/"


def version_key(version: str) -> tuple:
    """Release order of Flatcar versions: build, branch, patch as numbers (a suffix after them last)."""
    m = re.match(r"(\d+)\.(\d+)\.(\d+)(.*)", version)
    if not m:
        raise LivelabError(f"bad Flatcar version {shown(version, quote=True)}: expected e.g. 3510.2.2")
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)


# a link in a directory page: href="..." or href='...'
_HREF_RE = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)


def parse_listing(page: str, board_path: str = "/amd64-usr/",
                  source: str = "the channel's directory page") -> list[str]:
    """The release versions a board directory's page links to (``./4186.0.0/``, ``4186.0.0/`` or
    ``<board_path>4186.0.0/``), in release order; ``current`` and ``current-<year>`` are not releases."""
    found: set[str] = set()
    for double, single in _HREF_RE.findall(page):
        href = html.unescape(double or single).split("?", 1)[0].split("#", 1)[0]
        if not href.endswith("/"):
            continue                    # a file, not a release directory
        if href.startswith(board_path):
            href = href[len(board_path):]
        elif href.startswith("./"):
            href = href[2:]
        name = href[:-1]
        if _VERSION_RE.fullmatch(name):
            found.add(name)
    if not found:
        raise LivelabError(f"{source} links to no release directory (expected links like ./4186.0.0/)")
    return sorted(found, key=version_key)


def list_releases(channel: str, fetcher: Fetcher, arch: str = "x86_64") -> list[str]:
    """The releases of ``channel``, oldest first, from the page of its board directory (the release
    server lists a directory per version, and ``current``)."""
    check_stream("flatcar", channel)
    url = base_url(channel, arch)
    board = "/" + BOARDS[arch] + "/"
    return fetcher.metadata(url, lambda data, src: parse_listing(data.decode("utf-8", errors="replace"), board, src))


def check_version(version: str, source: str = "--version") -> str:
    if not (isinstance(version, str) and _VERSION_RE.fullmatch(version)):
        raise LivelabError(f"bad Flatcar version {shown(version, quote=True)} from {source}: expected e.g. 3510.2.2")
    return version


def parse_version_txt(text: str, source: str = "version.txt") -> str:
    """FLATCAR_VERSION (else FLATCAR_VERSION_ID) from a shell-style version.txt."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$", line)
        if not m:
            raise LivelabError(f"malformed {source}: line {shown(line, 60, quote=True)} is not KEY=value")
        val = m.group(2).strip()
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
            val = val[1:-1]
        values[m.group(1)] = val
    version = values.get("FLATCAR_VERSION") or values.get("FLATCAR_VERSION_ID")
    if not version:
        raise LivelabError(f"malformed {source}: no FLATCAR_VERSION= line")
    if not _VERSION_RE.fullmatch(version):
        raise LivelabError(f"malformed {source}: FLATCAR_VERSION={shown(version, quote=True)} is not a version")
    return version


def resolve(channel: str, fetcher: Fetcher, arch: str = "x86_64", version: str | None = None,
            metadata: str | None = None) -> Release:
    """``metadata``: a version.txt path/URL to use instead of ``current/version.txt``."""
    check_stream("flatcar", channel)
    base = base_url(channel, arch)

    def parse_version(data: bytes, source: str) -> tuple[str, str]:
        return parse_version_txt(data.decode("utf-8", errors="replace"), source), source

    if version and version != "current":
        check_version(version)
        source = f"{base}{version}/"
    elif metadata:
        version, source = fetcher.read_source(metadata, parse_version)
    else:
        version, source = fetcher.metadata(f"{base}current/version.txt", parse_version)
    arts = {}
    for kind, name in FILES.items():
        up = f"{base}{version}/{name}"

        def parse_sha512(data: bytes, src: str, name: str = name) -> tuple[str, str]:
            return parse_digests(data.decode("utf-8", errors="replace"), name, source=src)["sha512"], src

        # re-read online (not immutable): a re-published mirror stays consistent
        found = fetcher.get_metadata(up + ".DIGESTS", parse_sha512, optional=True)
        digests, dsrc = ({"sha512": found[0]}, found[1]) if found else ({}, None)
        arts[kind] = Artifact(kind=kind, url=map_url(up, fetcher.mirror), upstream_url=up,
                              signature_url=map_url(up + ".sig", fetcher.mirror), digests=digests, filename=name,
                              upstream_signature_url=up + ".sig", digests_source=dsrc)
    return Release(os="flatcar", stream=channel, version=version, arch=arch, artifacts=arts,
                   mirror=fetcher.mirror, metadata_source=source)
