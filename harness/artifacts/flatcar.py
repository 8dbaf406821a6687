"""Flatcar Container Linux: release server layout, version.txt, DIGESTS.

``https://<channel>.release.flatcar-linux.net/<board>/{current,<version>}/``; ``current`` is
resolved to a concrete version (``current/version.txt``, ``FLATCAR_VERSION=``) before anything
is downloaded, so cache entries and reports always name a real version.
"""
from __future__ import annotations

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
