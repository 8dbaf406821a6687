"""Fedora CoreOS: stream metadata, release index and release.json.

Artifact locations always come from the metadata (names changed in 2025: ``live-kernel-<arch>``
-> ``live-kernel.<arch>``, ``live.<arch>.iso`` -> ``live-iso.<arch>.iso``); nothing is templated.
"""
from __future__ import annotations

import posixpath
import re
import urllib.parse

from ..errors import LivelabError
from ..safeload import load_json, shown
from ..vocab import check_stream
from .mirror import FCOS_BASE, map_url
from .model import Artifact, Release
from .pipeline import Fetcher

ARCHES = ("x86_64", "aarch64", "ppc64le", "s390x")
# kind -> (format, key) under artifacts.metal.formats (stream) / media.metal.artifacts (release)
KINDS = {"kernel": ("pxe", "kernel"), "initramfs": ("pxe", "initramfs"), "rootfs": ("pxe", "rootfs"),
         "iso": ("iso", "disk")}


def stream_url(stream: str) -> str:
    return f"{FCOS_BASE}streams/{stream}.json"


def releases_index_url(stream: str) -> str:
    return f"{FCOS_BASE}prod/streams/{stream}/releases.json"


def _load_json(data: bytes, source: str) -> dict:
    doc = load_json(data, source)
    if not isinstance(doc, dict):
        raise LivelabError(f"{source} is not a JSON object")
    return doc


def _arch(doc: dict, arch: str, source: str) -> dict:
    arches = doc.get("architectures")
    if not isinstance(arches, dict):
        raise LivelabError(f"{source} has no 'architectures' object")
    if arch not in arches:
        names = [shown(a, 20) for a in sorted(arches)[:8]] + (["..."] if len(arches) > 8 else [])
        raise LivelabError(f"{source} has no architecture {shown(arch, quote=True)}: it has "
                           f"{', '.join(names) or 'none'}")
    entry = arches[arch]
    if not isinstance(entry, dict):
        raise LivelabError(f"{source}: architecture {shown(arch, quote=True)} is not an object")
    return entry


def _obj(value: object, what: str, source: str) -> dict:
    """``value`` if it is a JSON object (or absent: {}), else a one-line error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LivelabError(f"{source}: {what} is not an object")
    return value


def _entries(formats: object, release: str, source: str) -> dict[str, dict]:
    if not isinstance(formats, dict):
        raise LivelabError(f"{source}: no metal artifacts")
    out = {}
    for kind, (fmt, key) in KINDS.items():
        ent = _obj(formats.get(fmt), f"metal format {fmt}", source).get(key)
        if ent is None:
            continue
        where = f"{source}: metal {fmt}.{key}"
        if not isinstance(ent, dict) or not ent.get("location"):
            raise LivelabError(f"{where} has no location")
        _check_entry(ent, where)
        out[kind] = ent
    missing = [k for k in ("kernel", "initramfs", "rootfs") if k not in out]
    if missing:
        raise LivelabError(f"{source}: release {release} lacks live PXE artifacts: {', '.join(missing)}")
    return out


_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


# a URL has no spaces, line breaks or control characters (the mirror rules judge the rest)
_URL_TEXT = re.compile(r"[^\s\x00-\x1f\x7f]+")


def _check_entry(ent: dict, where: str) -> None:
    """location/signature are strings of URL characters (the mirror rules judge them); sha256 is 64 hex digits."""
    for name in ("location", "signature"):
        value = ent.get(name)
        if value is None and name == "signature":
            continue
        if not isinstance(value, str):
            raise LivelabError(f"{where}.{name} is {type(value).__name__} {shown(value, 60, quote=True)}, not a URL")
        if not _URL_TEXT.fullmatch(value):
            raise LivelabError(f"{where}.{name} {shown(value, 60, quote=True)} is not a URL")
    digest = ent.get("sha256")
    if digest is not None and not (isinstance(digest, str) and _SHA256.match(digest)):
        raise LivelabError(f"{where}.sha256 {shown(digest, quote=True)} is not a sha256 digest (64 hex digits)")


def parse_stream(doc: dict, arch: str, source: str = "stream metadata") -> tuple[str, dict[str, dict]]:
    """(release version, {kind: {location, signature, sha256}}) from a stream JSON document."""
    metal = _obj(_arch(doc, arch, source).get("artifacts"), "artifacts", source).get("metal")
    if not isinstance(metal, dict) or not metal.get("release"):
        raise LivelabError(f"{source}: no metal artifacts for {shown(arch)}")
    return _release_id(metal["release"], source), _entries(metal.get("formats"), metal["release"], source)


def _release_id(value: object, source: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Za-z._+-]{1,64}", value):
        raise LivelabError(f"{source}: release {shown(value, quote=True)} is not a release version")
    return value


def parse_release(doc: dict, arch: str, source: str = "release.json") -> tuple[str, dict[str, dict]]:
    """Same from a per-release ``release.json`` (``media``/``artifacts`` instead of ``artifacts``/``formats``)."""
    if not doc.get("release"):
        raise LivelabError(f"{source} has no 'release' field")
    release = _release_id(doc["release"], source)
    metal = _obj(_arch(doc, arch, source).get("media"), "media", source).get("metal")
    if not isinstance(metal, dict):
        raise LivelabError(f"{source}: no metal media for {shown(arch)}")
    return release, _entries(metal.get("artifacts"), release, source)


def index_versions(doc: dict, source: str = "releases.json") -> list[str]:
    """Every release of a release index, in the index's order (oldest first)."""
    rels = doc.get("releases")
    if not isinstance(rels, list):
        raise LivelabError(f"{source} has no 'releases' list")
    out: list[str] = []
    for i, r in enumerate(rels):
        version = _release_id(r.get("version") if isinstance(r, dict) else None, f"{source}: releases[{i}]")
        if version in out:
            raise LivelabError(f"{source}: release {version} is listed twice")
        out.append(version)
    return out


def list_releases(stream: str, fetcher: Fetcher) -> list[str]:
    """The releases of ``stream``, oldest first, from its release index."""
    check_stream("fcos", stream)
    return fetcher.metadata(releases_index_url(stream),
                            lambda data, src: index_versions(_load_json(data, src), src))


def find_in_index(doc: dict, version: str, stream: str, source: str = "releases.json") -> str:
    """The release.json URL of ``version`` in a release index."""
    rels = doc.get("releases")
    if not isinstance(rels, list):
        raise LivelabError(f"{source} has no 'releases' list")
    for r in rels:
        if isinstance(r, dict) and r.get("version") == version:
            url = r.get("metadata")
            if not isinstance(url, str) or not url.startswith(FCOS_BASE):
                raise LivelabError(f"{source}: release {version} has no metadata URL under {FCOS_BASE}")
            return url
    latest = rels[-1].get("version") if rels and isinstance(rels[-1], dict) else "none"
    raise LivelabError(f"FCOS {stream} has no release {shown(version)} in {source} (latest: {shown(latest)})")


def _artifact(kind: str, ent: dict, mirror: str | None) -> Artifact:
    loc = ent["location"]
    sig = ent.get("signature") or loc + ".sig"
    filename = posixpath.basename(urllib.parse.urlsplit(loc).path)
    digests = {"sha256": ent["sha256"].lower()} if ent.get("sha256") else {}
    return Artifact(kind=kind, url=map_url(loc, mirror), upstream_url=loc, signature_url=map_url(sig, mirror),
                    digests=digests, filename=filename, upstream_signature_url=sig,
                    digests_source="stream metadata" if digests else None)


def build_release(stream: str, arch: str, version: str, entries: dict[str, dict], mirror: str | None,
                  source: str) -> Release:
    arts = {k: _artifact(k, e, mirror) for k, e in entries.items()}
    return Release(os="fcos", stream=stream, version=version, arch=arch, artifacts=arts, mirror=mirror,
                   metadata_source=source)


def resolve(stream: str, fetcher: Fetcher, arch: str = "x86_64", version: str | None = None,
            metadata: str | None = None) -> Release:
    check_stream("fcos", stream)

    def parse_stream_json(data: bytes, source: str) -> tuple[str, str, dict[str, dict]]:
        doc = _load_json(data, source)
        if doc.get("stream") and doc["stream"] != stream:
            raise LivelabError(f"{source} is the {shown(doc['stream'], quote=True)} stream, not {stream!r}")
        return (source, *parse_stream(doc, arch, source))

    if metadata:
        source, latest, entries = fetcher.read_source(metadata, parse_stream_json)
    else:
        source, latest, entries = fetcher.metadata(stream_url(stream), parse_stream_json)
    if not version or version == latest:
        return build_release(stream, arch, latest, entries, fetcher.mirror, source)
    rel_url = fetcher.metadata(releases_index_url(stream),
                               lambda data, src: find_in_index(_load_json(data, src), version, stream, src))

    def parse_release_json(data: bytes, source: str) -> tuple[str, dict[str, dict], str]:
        got, entries = parse_release(_load_json(data, source), arch, source)
        if got != version:
            raise LivelabError(f"{source} describes release {got}, not {version}")
        return got, entries, source

    got, entries, source = fetcher.metadata(rel_url, parse_release_json)
    return build_release(stream, arch, got, entries, fetcher.mirror, source)
