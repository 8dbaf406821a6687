"""Butane variant/version → Ignition spec table, spec-version comparison, target checks.

Table from Butane's docs/specs.md (see shared/reference/FORMATS.md §6).
"""
from __future__ import annotations

import re
from typing import Any

from ..errors import LivelabError
from ..safeload import shown

# (variant, butane version) -> Ignition spec version
SPEC_TABLE: dict[tuple[str, str], str] = {
    ("fcos", "1.0.0"): "3.0.0",
    ("fcos", "1.1.0"): "3.1.0",
    ("fcos", "1.2.0"): "3.2.0",
    ("fcos", "1.3.0"): "3.2.0",
    ("fcos", "1.4.0"): "3.3.0",
    ("fcos", "1.5.0"): "3.4.0",
    ("fcos", "1.6.0"): "3.5.0",
    ("flatcar", "1.0.0"): "3.3.0",
    ("flatcar", "1.1.0"): "3.4.0",
}

# Butane's internal "base" level for each supported version (base v0_N → N); features
# of the common base are gated by it.
BASE_LEVEL: dict[tuple[str, str], int] = {
    ("fcos", "1.0.0"): 1,
    ("fcos", "1.1.0"): 2,
    ("fcos", "1.2.0"): 3,
    ("fcos", "1.3.0"): 3,
    ("fcos", "1.4.0"): 4,
    ("fcos", "1.5.0"): 5,
    ("fcos", "1.6.0"): 6,
    ("flatcar", "1.0.0"): 4,
    ("flatcar", "1.1.0"): 5,
}

# Ignition spec versions this project knows the shape of (for the structural check)
KNOWN_SPECS = ("3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0")


def supported_variants_text() -> str:
    by_variant: dict[str, list[str]] = {}
    for (variant, version) in SPEC_TABLE:
        by_variant.setdefault(variant, []).append(version)
    return "; ".join(f"{v} {', '.join(vs)}" for v, vs in by_variant.items())


def spec_for_variant(variant: str, version: str) -> str:
    """The Ignition spec version Butane ``variant``/``version`` translates to."""
    key = (str(variant), str(version))
    if key not in SPEC_TABLE:
        raise LivelabError(
            f"unsupported Butane variant/version {shown(variant)} {shown(version)}; "
            f"supported: {supported_variants_text()}")
    return SPEC_TABLE[key]


_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(-experimental)?$")


def parse_spec(version: str) -> tuple[int, int, int, int]:
    """Sortable key for an Ignition spec version; ``-experimental`` sorts below the release."""
    m = _VERSION_RE.match(str(version).strip())
    if not m:
        raise LivelabError(f"invalid Ignition spec version {version!r} (expected X.Y.Z or X.Y.Z-experimental)")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if m.group(4) else 1)


def compare_specs(a: str, b: str) -> int:
    """-1, 0 or 1 as spec ``a`` is older than, equal to, or newer than ``b``."""
    ka, kb = parse_spec(a), parse_spec(b)
    return (ka > kb) - (ka < kb)


def spec_of(config: dict[str, Any] | str | bytes) -> str:
    """The ``ignition.version`` of a config dict (or JSON text)."""
    data: Any = config     # JSON text parses to any JSON value, not necessarily an object
    if isinstance(config, (str, bytes)):
        import json
        try:
            data = json.loads(config)
        except ValueError as exc:
            raise LivelabError(f"Ignition config is not valid JSON: {exc}") from None
    try:
        version = data["ignition"]["version"]
    except (KeyError, TypeError):
        raise LivelabError("Ignition config has no ignition.version") from None
    if not isinstance(version, str):
        raise LivelabError("Ignition config's ignition.version is not a string")
    return version


def butane_for_spec(spec: str) -> list[str]:
    """Butane ``variant version`` strings that produce ``spec``."""
    return [f"{v} {ver}" for (v, ver), s in SPEC_TABLE.items() if s == spec]


def newest_butane_for(max_spec: str, variant: str | None = None) -> str | None:
    """The newest Butane version (of ``variant``) whose output a target reading ``max_spec`` accepts."""
    best = None
    for (v, ver), s in SPEC_TABLE.items():
        if variant and v != variant:
            continue
        if compare_specs(s, max_spec) <= 0 and (
                best is None or tuple(map(int, ver.split("."))) > tuple(map(int, best.split(".")))):
            best = ver
    return best


def check_target(config: dict[str, Any] | str | bytes, max_spec: str, target: str | None = None,
                 variant: str | None = None, butane_version: str | None = None) -> None:
    """Refuse (LivelabError) a config whose spec is newer than ``max_spec``, the newest the target reads.

    ``target`` names the OS build in the message (e.g. "fcos 42.20250901.3.0"); ``variant`` and
    ``butane_version`` (when the config came from Butane) make the hint precise.  An
    ``-experimental`` spec is accepted only by a reader whose max is that same experimental
    spec (Ignition never reads older experimental specs).
    """
    spec = spec_of(config)
    parse_spec(max_spec)
    newer = compare_specs(spec, max_spec) > 0
    if spec.endswith("-experimental") and spec != max_spec:
        newer = True
    if not newer:
        return
    who = f"{target}" if target else "the target"
    msg = f"Ignition config spec {spec} is newer than {max_spec}, the newest spec {who} reads"
    hint_variant = variant or (target.split()[0] if target and target.split()[0] in ("fcos", "flatcar") else None)
    parts = []
    if variant and butane_version:
        parts.append(f"Butane {variant} {butane_version} → {spec}")
    elif hint_variant:
        srcs = [s for s in butane_for_spec(spec) if s.startswith(hint_variant + " ")]
        if srcs:
            parts.append(f"Butane {' / '.join(srcs)} → {spec}")
    if hint_variant:
        best = newest_butane_for(max_spec, hint_variant)
        if best:
            parts.append(f"use {hint_variant} ≤ {best}")
    if parts:
        msg += f" ({'; '.join(parts)})"
    raise LivelabError(msg)
