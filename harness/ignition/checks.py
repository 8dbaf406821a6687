"""The conditions butane v0.25.1 reports as warnings (and the errors beside them), on plain values.

butane.py finds the YAML position of each; the texts are butane's own:

* config/common/errors.go: ErrDecimalMode (base/util/file.go ``CheckForDecimalMode``),
  ErrWrongPartitionNumber (config/fcos/v1_x/translate.go, fcos only), ErrReuseByLabel and
  ErrMountPointForbidden (config/fcos/v1_6/validate.go), ErrUnkownIgnitionVersion
  (base/v0_x/util.go ``ValidateIgnitionConfig``, inline merge/replace configs);
* the Ignition v2.23.0 that butane v0.25.1 vendors, whose validation of the generated config
  butane reports too: ``unused key`` (config/validate/validate.go), ErrModeSpecialBits
  (v3_x/types/mode.go), ErrInsecureProxy (proxy.go), ErrHardLinkSpecifiesOwner,
  ErrPartitionsOverwritten and ErrFilesystemImplicitWipe (storage.go), the missing [Install]
  section of an enabled unit or of an enabled instance's template (shared/validations/unit.go,
  v3_x/types/systemd.go).
"""
from __future__ import annotations

import json
import re
from typing import Any

UNUSED_KEY = "unused key {key}"
DECIMAL_MODE = "unreasonable mode would be reasonable if specified in octal; remember to add a leading zero"
MODE_SPECIAL_BITS = "setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0"
INSECURE_PROXY = "insecure plaintext HTTP proxy specified for HTTPS resources"
HARD_LINK_OWNER = "user/group ignored for hard link"
PARTITIONS_OVERWRITTEN = "filesystem overwrites partitioned device"
FILESYSTEM_IMPLICIT_WIPE = "device matches disk with wipeTable enabled; filesystem will be wiped"
WRONG_PARTITION_NUMBER = "incorrect partition number; a new partition will be created using reserved label"
REUSE_BY_LABEL = ("partitions cannot be reused by label; number must be specified except on boot disk "
                  "(/dev/disk/by-id/coreos-boot-disk) or when wipe_table is true")
MOUNT_POINT_FORBIDDEN = "path must be under /etc or /var if with_mount_unit is true"
UNKNOWN_IGNITION_VERSION = "skipping validation for the merge/replace ignition config due to an unkown version"

BOOT_DISK = "/dev/disk/by-id/coreos-boot-disk"
# partition labels of the OS image and the numbers they have there
RESERVED_LABELS = {"BIOS-BOOT": 1, "PowerPC-PReP-boot": 1, "EFI-SYSTEM": 2, "boot": 3, "root": 4}
_ALLOWED_MOUNTPOINT = re.compile(r"^/(etc|var)(/|\Z)")
_INSTANCE = re.compile(r"^(.+?)@(.+?)\.service\Z", re.S)
_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
                     r"(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?\Z")

# the validator's (ignition-validate's) warnings that the translation reports itself, with their
# YAML positions: the CLI leaves these out of the validator's output for a Butane config
EMULATED = ("nused key", "setuid/setgid/sticky", "insecure plaintext HTTP proxy", "ignored for hard link",
            "filesystem overwrites partitioned device", "filesystem will be wiped", "install section",
            "Install section")


def _typical_mode(mode: int, directory: bool) -> bool:
    """base/util/file.go ``isTypicalMode``: unsurprising permission bits."""
    if mode == 0:
        return True
    had_r = had_w = had_x = False
    for perm in (mode & 0o7, (mode >> 3) & 0o7, (mode >> 6) & 0o7):     # other, group, user
        r, w, x = bool(perm & 4), bool(perm & 2), bool(perm & 1)
        if (had_r and not r) or (had_w and not w) or (had_x and not x):
            return False            # a more specific class lacks what a less specific one has
        if x and had_r and not had_x:
            return False            # rwxr-----: read without execute below an executable class
        if (w or x) and not r:
            return False
        had_r, had_w, had_x = had_r or r, had_w or w, had_x or x
    if not had_r:
        return False
    if directory:
        return had_x and not mode & 0o4000 and not (mode & 0o3000 and not had_w)
    if mode & 0o6000 and (not had_x or mode & 0o2):
        return False
    return not mode & 0o1000


def decimal_mode(mode: int, directory: bool) -> bool:
    """The mode looks written in decimal where octal was meant (``CheckForDecimalMode``)."""
    if not 0 <= mode <= 7777:
        return False
    digits = f"{mode:04d}"
    if any(d > "7" for d in digits):
        return False
    return not _typical_mode(mode, directory) and _typical_mode(int(digits, 8), directory)


def special_bits(mode: int) -> bool:
    return bool((mode & 0xFFFFFFFF) & 0o7000)


def insecure_proxy(https_proxy: Any) -> bool:
    """An https_proxy of scheme http (Go's url.Parse lower-cases the scheme)."""
    return isinstance(https_proxy, str) and ":" in https_proxy and https_proxy.split(":", 1)[0].lower() == "http"


def unit_sections(contents: Any) -> set[str] | None:
    """The sections that hold at least one option (go-systemd's deserializer lists options, each with
    its section); None when there is no option or the text is not a unit."""
    if not isinstance(contents, str) or not contents:
        return None
    section = None
    found: set[str] = set()
    continued = False
    for raw in contents.splitlines():
        line = raw.strip()
        if continued:
            continued = line.endswith("\\")
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                return None
            section = line[1:-1]
            continue
        if section is None or "=" not in line:
            return None
        found.add(section)
        continued = line.endswith("\\")
    return found or None


def _quoted(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def unit_warnings(units: list[dict]) -> list[tuple[int, str]]:
    """(unit index, message) for enabled units with contents but no [Install] options, and for
    enabled instances whose template (in the config, with contents) has none."""
    out = []
    by_name = {u.get("name"): u for u in units if isinstance(u, dict)}
    for i, unit in enumerate(units):
        if unit.get("enabled") is not True:
            continue
        sections = unit_sections(unit.get("contents"))
        if sections is not None and "Install" not in sections:
            out.append((i, f"unit {_quoted(unit.get('name', ''))} is enabled, but has no install section "
                           "so enable does nothing"))
        m = _INSTANCE.match(unit.get("name") or "")
        if m:
            template = f"{m.group(1)}@.service"
            tsections = unit_sections((by_name.get(template) or {}).get("contents"))
            if tsections is not None and "Install" not in tsections:
                out.append((i, f"template unit {_quoted(template)} for {_quoted(unit['name'])} "
                               "doesn't have Install section"))
    return out


def filesystem_warnings(storage: dict) -> list[tuple[int, str]]:
    """(filesystem index, message) for filesystems on a whole disk the config also partitions or wipes."""
    disks = {d.get("device"): d for d in storage.get("disks") or [] if isinstance(d, dict)}
    out = []
    for i, fs in enumerate(storage.get("filesystems") or []):
        disk = disks.get(fs.get("device"))
        if disk is None:
            continue
        if disk.get("partitions"):
            out.append((i, PARTITIONS_OVERWRITTEN))
        elif fs.get("wipeFilesystem") is not True and disk.get("wipeTable") is True:
            out.append((i, FILESYSTEM_IMPLICIT_WIPE))
    return out


def wrong_partition_numbers(storage: dict) -> list[tuple[str, Any, str]]:
    """(disk device, partition key, label) of partitions with an OS image's label at another number,
    on disks not wiped (fcos ToIgn: they would be created anew with that label)."""
    out = []
    for disk in storage.get("disks") or []:
        if disk.get("wipeTable") is True:
            continue
        for p in disk.get("partitions") or []:
            label = p.get("label")
            if label in RESERVED_LABELS and p.get("number", 0) != RESERVED_LABELS[label]:
                out.append((disk.get("device"), partition_key(p), label))
    return out


def partition_key(p: dict) -> tuple:
    """Ignition's Partition.Key(): the number when set, else the label."""
    if p.get("number"):
        return ("number", p["number"])
    return ("label", p.get("label"))


def reuses_by_label(disk: dict) -> list[int]:
    """Partition indexes with a label and no number on a disk that is neither wiped nor the boot disk
    (fcos 1.6 ``Config.Validate``)."""
    if disk.get("device") == BOOT_DISK or disk.get("wipe_table") is True:
        return []
    return [i for i, p in enumerate(disk.get("partitions") or [])
            if not p.get("number") and p.get("label") is not None]


def mount_point_forbidden(fs: dict) -> bool:
    return (fs.get("with_mount_unit") is True and isinstance(fs.get("path"), str)
            and not _ALLOWED_MOUNTPOINT.match(fs["path"]))


def _semver(v: str) -> tuple | None:
    m = _SEMVER.match(v)
    if not m:
        return None
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4) or "", m.group(5) or "")


def inline_config(text: str, spec: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) of an inline ``ignition.config`` merge/replace config, read as a config of
    ``spec`` (base/v0_x/util.go ``ValidateIgnitionConfig``): another version is only a warning and
    skips the check; a config of ``spec`` gets Ignition's validation (here, the structural check)."""
    from .validate import structural_check

    try:
        data = json.loads(text)
    except ValueError as exc:
        return [f"config is not valid JSON: {exc}"], []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return [f"config is a JSON {type(data).__name__}, not an object"], []
    ign = data.get("ignition")
    if ign is not None and not isinstance(ign, dict):
        return ["ignition: expected an object"], []
    version = (ign or {}).get("version", "")
    if not isinstance(version, str):
        return ["ignition.version: expected a string"], []
    parsed = _semver(version)
    if parsed is None:
        return ["ignition.version: invalid config version (couldn't parse)"], []
    if parsed != _semver(spec):
        return [], [UNKNOWN_IGNITION_VERSION]
    result = structural_check(data)
    errors = [m.removeprefix("error at ") for m in result.messages if m.startswith("error")]
    warnings = [m.removeprefix("warning at ") for m in result.messages if m.startswith("warning")]
    return errors, warnings


def emulated(validator_message: str) -> bool:
    """A validator's warning that a Butane translation has reported already (with its YAML position)."""
    return any(s in validator_message for s in EMULATED)
