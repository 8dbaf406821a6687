"""Validating Ignition configs before they are used.

The validators, in order: the configured ``ignition-validate`` (``--ignition-validate`` / ini
``livelab_ignition_validate``; this checkout's pyproject.toml and Makefile name the stand-in's
``images/out/bin/ignition-validate``, Ignition v2.23.0: 3.0.0-3.5.0 and 3.6.0-experimental), then the
one on PATH (Debian 12's reads 3.0.0-3.3.0 and 3.4.0-experimental).  The first that reads the
config's spec checks it (config written to a temp file); this project's own structural check is
left for specs that no available validator reads, and for a host with none at all (said once).
The result says which validator ran.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from ..errors import LivelabError
from .dataurl import check_data_url
from .schema import SCHEMA, ListOf, Obj, Prim, T, ign_key, level_for_spec
from .specs import KNOWN_SPECS, compare_specs, parse_spec

STRUCTURAL = "livelab structural"
IGNITION_VALIDATE = "ignition-validate"


@dataclass
class ValidationResult:
    ok: bool
    validator: str                 # "ignition-validate 2.14.0" | "livelab structural"
    messages: list = field(default_factory=list)
    spec: str | None = None

    def __bool__(self) -> bool:
        return self.ok


# --- which specs an ignition-validate reads ---

_VALIDATE_VERSION_CACHE: dict = {}


def ignition_validate_version(binary: str | None = None) -> str | None:
    """The Ignition release of the installed ``ignition-validate`` (e.g. "2.14.0"), or None."""
    binary = binary or shutil.which(IGNITION_VALIDATE)
    if not binary:
        return None
    if binary in _VALIDATE_VERSION_CACHE:
        return _VALIDATE_VERSION_CACHE[binary]
    try:
        out = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=30)
        m = re.search(r"(\d+\.\d+\.\d+)", out.stdout + out.stderr)
        version = m.group(1) if m else None
    except (OSError, subprocess.SubprocessError):
        version = None
    _VALIDATE_VERSION_CACHE[binary] = version
    return version


# Ignition release → (newest stable spec, experimental spec) it reads (Ignition's
# config/ directories: v3_4 stable since 2.15, v3_5 since 2.20, v3_6 since 2.26)
_READS = [
    ((2, 26, 0), "3.6.0", "3.7.0-experimental"),
    ((2, 20, 0), "3.5.0", "3.6.0-experimental"),
    ((2, 15, 0), "3.4.0", "3.5.0-experimental"),
    ((2, 14, 0), "3.3.0", "3.4.0-experimental"),
    ((2, 0, 0), "3.2.0", "3.3.0-experimental"),
]


def specs_read_by(ignition_version: str) -> tuple[str, str]:
    v = tuple(int(x) for x in ignition_version.split("."))
    for since, stable, exp in _READS:
        if v >= since:
            return stable, exp
    return "3.0.0", "3.1.0-experimental"


def ignition_validate_reads(spec: str, ignition_version: str) -> bool:
    stable, exp = specs_read_by(ignition_version)
    if spec.endswith("-experimental"):
        return spec == exp
    return parse_spec(spec)[0] == 3 and compare_specs(spec, stable) <= 0


# --- entry points ---

def _load(config: dict[str, Any] | str | bytes):
    if isinstance(config, dict):
        return config, json.dumps(config)
    if isinstance(config, bytes):
        config = config.decode("utf-8")
    try:
        return json.loads(config), config
    except ValueError as exc:
        return None, str(exc)


_SAID_NONE: list = []


def validators(binary: str | None = None) -> list[tuple[str, str]]:
    """The available ``ignition-validate`` binaries with their Ignition versions, in order of
    preference: ``binary`` (the configured one: an error when it is not there), then PATH's."""
    found: list[tuple[str, str]] = []
    if binary:
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise LivelabError(f"--ignition-validate {binary}: no such executable (build it with `make images`, "
                               "or leave the option out to use the ignition-validate on PATH)")
        iv = ignition_validate_version(binary)
        if not iv:
            raise LivelabError(f"--ignition-validate {binary}: `{binary} -version` names no Ignition version")
        found.append((binary, iv))
    on_path = shutil.which(IGNITION_VALIDATE)
    if on_path and not (binary and os.path.realpath(on_path) == os.path.realpath(binary)):
        iv = ignition_validate_version(on_path)
        if iv:
            found.append((on_path, iv))
    if not found and not _SAID_NONE:
        _SAID_NONE.append(True)
        print("livelab: no ignition-validate (none configured with --ignition-validate or ini "
              "livelab_ignition_validate, none on PATH): Ignition configs get livelab's structural check only",
              file=sys.stderr)
    return found


def validate(config: dict[str, Any] | str | bytes, *, binary: str | None = None) -> ValidationResult:
    """Validate an Ignition config (dict or JSON text).

    Uses the first available ``ignition-validate`` (``binary``, then PATH's) that reads the config's
    spec, else the structural check.
    """
    data, text = _load(config)
    if data is None:
        return ValidationResult(False, STRUCTURAL, [f"error: config is not valid JSON: {text}"])
    version = (data.get("ignition") or {}).get("version") if isinstance(data, dict) else None
    if not isinstance(version, str):
        return ValidationResult(False, STRUCTURAL, ["error at $.ignition.version: required"])
    try:
        parse_spec(version)
    except LivelabError as exc:
        return ValidationResult(False, STRUCTURAL, [f"error at $.ignition.version: {exc}"], version)
    for path, iv in validators(binary):
        if ignition_validate_reads(version, iv):
            return _run_ignition_validate(path, iv, text, version)
    return structural_check(data)


def validate_or_raise(config: dict[str, Any] | str | bytes, **kw) -> ValidationResult:
    """validate(); raise LivelabError (one line, naming the validator) when the config fails."""
    result = validate(config, **kw)
    if not result.ok:
        errors = [m for m in result.messages if not m.startswith("warning")] or result.messages
        detail = "; ".join(errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
        raise LivelabError(f"Ignition config (spec {result.spec}) failed validation by "
                           f"{result.validator}: {detail or 'no details'}")
    return result


def _run_ignition_validate(binary: str, iv: str, text: str, spec: str) -> ValidationResult:
    name = f"ignition-validate {iv}"
    fd, path = tempfile.mkstemp(prefix="livelab-", suffix=".ign")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        proc = subprocess.run([binary, path], capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(path)
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    if proc.returncode != 0 and not lines:
        lines = [f"error: ignition-validate exited with status {proc.returncode}"]
    return ValidationResult(proc.returncode == 0, name, lines, spec)


# --- the structural check ---

_HASH_RE = re.compile(r"^(sha512-[0-9a-f]{128}|sha256-[0-9a-f]{64})$")
_SCHEMES = {"http", "https", "tftp", "s3", "gs", "data"}
_UNIT_SUFFIXES = (".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target",
                  ".path", ".timer", ".snapshot", ".slice", ".scope")


class _Checker:
    def __init__(self, level: int):
        self.level = level
        self.errors: list = []
        self.warnings: list = []

    def err(self, path: str, msg: str):
        self.errors.append(f"error at {path}: {msg}")

    def warn(self, path: str, msg: str):
        self.warnings.append(f"warning at {path}: {msg}")

    def check(self, value: Any, typ: T, path: str):
        if value is None:
            return
        if isinstance(typ, Prim):
            want = {"str": str, "int": int, "bool": bool}[typ.kind]
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                self.err(path, f"expected {typ.kind}, got {type(value).__name__}")
                return
            if typ.enum is not None and value not in typ.enum:
                self.err(path, f"invalid value {value!r}")
            return
        if isinstance(typ, ListOf):
            if not isinstance(value, list):
                self.err(path, f"expected a list, got {type(value).__name__}")
                return
            seen: dict = {}
            for i, item in enumerate(value):
                self.check(item, typ.item, f"{path}.{i}")
                if typ.key and isinstance(item, dict):
                    k: object
                    if typ.key == "number|label":
                        k = ("number", item["number"]) if item.get("number") else ("label", item.get("label"))
                    else:
                        k = item.get(camel_key(typ.key))
                    if k is not None and k != ("label", None):
                        if k in seen:
                            self.err(f"{path}.{i}", f"duplicate entry {k!r} (also at {path}.{seen[k]})")
                        seen[k] = i
                elif not typ.key and not isinstance(item, (dict, list)):
                    if item in seen:
                        self.err(f"{path}.{i}", f"duplicate entry {item!r}")
                    seen[item] = i
            return
        if isinstance(typ, Obj):
            if not isinstance(value, dict):
                self.err(path, f"expected an object, got {type(value).__name__}")
                return
            by_ign = {}
            for name, f in typ.fields.items():
                if not f.butane_only:
                    by_ign[ign_key(name, f)] = f
            for key, v in value.items():
                f = by_ign.get(key)
                if f is None or f.since > self.level:
                    self.warn(f"{path}.{key}", f"unused key {key}")
                    continue
                self.check(v, f.type, f"{path}.{key}")
            for key, f in by_ign.items():
                if f.required and f.since <= self.level and value.get(key) is None:
                    self.err(f"{path}.{key}", "required")
            self.semantic(typ, value, path)

    def resource(self, value: dict, path: str):
        src = value.get("source")
        comp = value.get("compression")
        if comp not in (None, "", "gzip"):
            self.err(f"{path}.compression", f"unsupported compression {comp!r}")
        h = (value.get("verification") or {}).get("hash")
        if h is not None and not _HASH_RE.match(h):
            self.err(f"{path}.verification.hash", "invalid hash (want sha512-<128 hex> or sha256-<64 hex>)")
        if src is None:
            return
        if src.startswith("arn:"):
            if self.level < 5:
                self.err(f"{path}.source", "arn: URLs need spec 3.4.0")
            return
        scheme = urllib.parse.urlsplit(src).scheme
        if scheme not in _SCHEMES:
            self.err(f"{path}.source", f"unsupported URL scheme {scheme!r}")
        elif scheme == "data":
            try:
                check_data_url(src, comp)
            except Exception as exc:
                self.err(f"{path}.source", f"invalid data URL: {exc}")

    def semantic(self, typ: Obj, value: dict, path: str):
        name = typ.name
        if name == "resource":
            self.resource(value, path)
        elif name in ("file", "directory", "link"):
            p = value.get("path")
            if isinstance(p, str) and not p.startswith("/"):
                self.err(f"{path}.path", "path not absolute")
            mode = value.get("mode")
            if isinstance(mode, int) and not isinstance(mode, bool) and not 0 <= mode <= 0o7777:
                self.err(f"{path}.mode", "illegal file mode")
            if name == "file" and value.get("overwrite") and not (value.get("contents") or {}).get("source"):
                self.err(f"{path}.overwrite", "overwrite must be false if source is unspecified")
        elif name == "unit":
            n = value.get("name")
            if isinstance(n, str) and not n.endswith(_UNIT_SUFFIXES):
                self.err(f"{path}.name", "invalid systemd unit extension")
        elif name == "dropin":
            n = value.get("name")
            if isinstance(n, str) and not n.endswith(".conf"):
                self.err(f"{path}.name", "invalid systemd unit drop-in extension")
        elif name == "filesystem":
            fmt = value.get("format")
            if fmt == "none" and self.level < 4:
                self.err(f"{path}.format", "invalid filesystem format")
            d = value.get("device")
            if isinstance(d, str) and not d.startswith("/"):
                self.err(f"{path}.device", "path not absolute")
            p = value.get("path")
            if isinstance(p, str) and not p.startswith("/"):
                self.err(f"{path}.path", "path not absolute")
        elif name == "luks" and value.get("clevis", {}).get("custom") and (
                value["clevis"].get("tang") or value["clevis"].get("tpm2")):
            self.err(f"{path}.clevis.custom", "cannot use custom clevis config with tpm2 or tang")


def camel_key(key: str) -> str:
    from .schema import camel
    return camel(key)


def structural_check(config: dict) -> ValidationResult:
    """This project's check of an Ignition 3.0.0-3.5.0 config: known keys (unknown ones are
    warnings, as with ignition-validate), types, required keys, enums, duplicate paths/names,
    data URLs, hashes, modes."""
    version = (config.get("ignition") or {}).get("version")
    if version not in KNOWN_SPECS:
        return ValidationResult(False, STRUCTURAL,
                                [f"error at $.ignition.version: unsupported config version {version!r} "
                                 f"(structural check knows {', '.join(KNOWN_SPECS)})"], version)
    checker = _Checker(level_for_spec(version))
    checker.check(config, SCHEMA, "$")
    storage: dict = config["storage"] if isinstance(config.get("storage"), dict) else {}
    seen: dict = {}
    for kind in ("files", "directories", "links"):
        for i, entry in enumerate(storage.get(kind) or []):
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                p = os.path.normpath(entry["path"])
                where = f"$.storage.{kind}.{i}"
                if p in seen and not seen[p].startswith(f"$.storage.{kind}."):
                    checker.err(where, f"duplicate path {entry['path']} (also at {seen[p]})")
                seen.setdefault(p, where)
    return ValidationResult(not checker.errors, STRUCTURAL, checker.errors + checker.warnings, version)
