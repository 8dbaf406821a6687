"""Plain data types of the artifacts subsystem (no I/O here)."""
from __future__ import annotations

from dataclasses import dataclass, field, asdict
from typing import Dict, List, Optional


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
    signature_url: Optional[str]
    digests: Dict[str, str] = field(default_factory=dict)
    filename: str = ""
    upstream_signature_url: Optional[str] = None
    digests_source: Optional[str] = None   # where the digests came from (stream JSON, DIGESTS URL…)

    def digest_strings(self) -> List[str]:
        return [f"{algo}:{hexd}" for algo, hexd in sorted(self.digests.items())]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Release:
    os: str
    stream: str
    version: str
    arch: str
    artifacts: Dict[str, Artifact]
    mirror: Optional[str] = None
    metadata_source: Optional[str] = None   # the stream JSON / release.json / version.txt used

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
    digests: Dict[str, str]
    verified_with: List[str]          # primary-key fingerprints that made a good signature
    insecure: bool = False            # True when the signature was not checked (insecure=True)
    url: str = ""
    upstream_url: str = ""
    downloaded: bool = False          # False when served from a warm cache

    def to_dict(self) -> dict:
        return asdict(self)
