"""Plain data types of the artifacts subsystem (no I/O here)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Artifact:
    """One downloadable file of a release.

    ``url`` is what is downloaded (mirror-mapped), ``upstream_url`` the canonical
    upstream location (it also names the cache entry), ``signature_url`` the mapped
    detached-signature URL, ``digests`` maps algorithm -> lowercase hex.
    """
    kind: str
    url: str
    upstream_url: str
    signature_url: str | None
    digests: dict[str, str] = field(default_factory=dict)
    filename: str = ""
    upstream_signature_url: str | None = None
    digests_source: str | None = None   # where the digests came from (stream JSON, DIGESTS URL…)

    def digest_strings(self) -> list[str]:
        return [f"{algo}:{hexd}" for algo, hexd in sorted(self.digests.items())]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Release:
    os: str
    stream: str
    version: str
    arch: str
    artifacts: dict[str, Artifact]
    mirror: str | None = None
    metadata_source: str | None = None   # the stream JSON / release.json / version.txt used

    def to_dict(self) -> dict:
        return {
            "os": self.os, "stream": self.stream, "version": self.version, "arch": self.arch,
            "mirror": self.mirror, "metadata_source": self.metadata_source,
            "artifacts": {k: a.to_dict() for k, a in self.artifacts.items()},
        }


@dataclass
class LocalArtifact:
    """A verified file in the cache."""
    kind: str
    path: str
    digests: dict[str, str]
    verified_with: list[str]          # primary-key fingerprints that made a good signature
    insecure: bool = False            # True when the signature was not checked (insecure=True)
    url: str = ""
    upstream_url: str = ""
    downloaded: bool = False          # False when served from a warm cache
    final_url: str = ""               # where the bytes really came from (after redirects)

    def to_dict(self) -> dict:
        return asdict(self)
