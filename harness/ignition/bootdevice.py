"""Butane's ``boot_device`` (fcos >= 1.3.0) and ``grub`` (fcos >= 1.5.0) sugar, as butane v0.25.1 has it.

The rules, written from butane v0.25.1's sources (not copied):

* config/fcos/v1_3..v1_6/validate.go: ``layout`` is aarch64, ppc64le or x86_64 (fcos 1.6 adds
  s390x-eckd, s390x-virt and s390x-zfcp); s390x-eckd and s390x-zfcp need ``luks.device``
  (``/dev/dasdX`` resp. ``/dev/sdX``); no ``mirror`` on s390x; ``cex`` only on an s390x layout and
  never with tpm2/tang; a mirror of one device is refused; every ``grub.users`` entry needs
  ``name`` and ``password_hash``.
* config/fcos/v1_3..v1_6/translate.go (``processBootDevice``, ``handleUserGrubCfg``): nothing is
  generated unless the root is encrypted (tpm2, tang, or cex) or mirrored.  A mirror partitions
  every device (``wipeTable``): bios-N (1 MiB, BIOS boot type) on x86_64, prep-N (4 MiB, PReP
  type) on ppc64le, reserved-N (1 MiB) otherwise; esp-N (127 MiB, ESP type) on x86_64/aarch64,
  reserved-N (1 MiB) otherwise; boot-N (384 MiB); root-N (the rest).  RAID1 ``md-boot``
  (``--metadata=1.0``) over the boot-N partitions, ``md-root`` over the root-N ones; vfat esp-N,
  ext4 ``boot`` on md-boot.  LUKS ``root`` (label luks-root, wipeVolume) on
  /dev/disk/by-partlabel/root, /dev/md/md-root when mirrored, DEVICE+"2" on s390x-eckd and
  DEVICE+"4" on s390x-zfcp, with clevis (tang, threshold, tpm2) or cex; xfs ``root`` on
  /dev/mapper/root (or md-root unencrypted).  ``grub.users`` writes /boot/grub2/user.cfg (an
  append) on the ext4 /boot of /dev/disk/by-label/boot.
* Both are merged under the user's own config the way Ignition merges a parent and a child
  (baseutil.MergeTranslatedConfigs): what the user declares with the same key (a filesystem's
  device, a partition's label, a disk's device, ...) takes the user's fields in place.
"""
from __future__ import annotations

import re
from typing import Any

from ..errors import LivelabError

# partition type GUIDs (config/fcos/v1_x/translate.go)
RESERVED_TYPE_GUID = "8DA63339-0007-60C0-C436-083AC8230908"
BIOS_TYPE_GUID = "21686148-6449-6E6F-744E-656564454649"
PREP_TYPE_GUID = "9E1A2D38-C612-4316-AA26-8B49521E5A8B"
ESP_TYPE_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"

# the replicated partitions' sizes (MiB), the OS image's layout
RESERVED_MIB = 1
BIOS_MIB = 1
PREP_MIB = 4
ESP_MIB = 127
BOOT_MIB = 384

LAYOUTS = ("aarch64", "ppc64le", "x86_64")
S390X_LAYOUTS = ("s390x-eckd", "s390x-virt", "s390x-zfcp")

# config/common/errors.go
ERR_UNKNOWN_LAYOUT = "layout must be one of: aarch64, ppc64le, s390x-eckd, s390x-virt, s390x-zfcp, x86_64"
ERR_TOO_FEW_MIRROR_DEVICES = "mirroring requires at least two devices"
ERR_NO_LUKS_BOOT_DEVICE = "device is required for layouts: s390x-eckd, s390x-zfcp"
ERR_MIRROR_NOT_SUPPORTED = "mirroring not supported on layouts: s390x-eckd, s390x-zfcp, s390x-virt"
ERR_LUKS_BOOT_DEVICE_BAD_NAME = ("device name must start with /dev/dasd on s390x-eckd layout or /dev/sd on "
                                 "s390x-zfcp layout")
ERR_CEX_ARCH = "when using cex the targeted architecture must match s390x"
ERR_CEX_WITH_CLEVIS = "cannot use cex with clevis"          # Ignition's shared/errors
ERR_GRUB_NAME = 'field "name" is required'
ERR_GRUB_PASSWORD = 'field "password_hash" is required'

# RE2 ``$`` (no multi-line flag) is the end of the text: ``\Z`` here
_DASD = re.compile(r"/dev/dasd[a-z]\Z")
_SD = re.compile(r"/dev/sd[a-z]\Z")


class Problem(LivelabError):
    """A refused boot_device/grub: ``where`` is the key path below the section (e.g. "layout")."""

    def __init__(self, where: str, message: str):
        super().__init__(message)
        self.where = where
        self.message = message


def _enabled(value: Any) -> bool:
    return value is True


def check_boot_device(bd: dict, s390x: bool) -> None:
    """Raise Problem for a boot_device butane refuses; ``s390x``: the spec knows the s390x layouts
    and cex (fcos 1.6)."""
    layout = bd.get("layout")
    luks = bd.get("luks") or {}
    devices = (bd.get("mirror") or {}).get("devices") or []
    if layout is not None:
        if layout in LAYOUTS:
            pass
        elif s390x and layout in ("s390x-eckd", "s390x-zfcp"):
            device = luks.get("device")
            if not device:
                raise Problem("layout", ERR_NO_LUKS_BOOT_DEVICE)
            if not (_DASD if layout == "s390x-eckd" else _SD).search(device):
                raise Problem("layout", ERR_LUKS_BOOT_DEVICE_BAD_NAME)
        elif not (s390x and layout == "s390x-virt"):
            raise Problem("layout", ERR_UNKNOWN_LAYOUT)
        if s390x and layout.startswith("s390x") and devices:
            raise Problem("layout", ERR_MIRROR_NOT_SUPPORTED)
    if s390x and _enabled((luks.get("cex") or {}).get("enabled")):
        if layout is None:
            raise Problem("luks.cex", ERR_CEX_ARCH)
        if not layout.startswith("s390x"):
            raise Problem("layout", ERR_CEX_ARCH)
        if luks.get("tang") or _enabled(luks.get("tpm2")):
            raise Problem("luks", ERR_CEX_WITH_CLEVIS)
    if len(devices) == 1:
        raise Problem("mirror.devices", ERR_TOO_FEW_MIRROR_DEVICES)


def check_grub_user(user: dict) -> None:
    if not user.get("name"):
        raise Problem("name", ERR_GRUB_NAME)
    if not user.get("password_hash"):
        raise Problem("password_hash", ERR_GRUB_PASSWORD)


def _partition(label: str, size_mib: int | None = None, type_guid: str | None = None) -> dict:
    out: dict[str, Any] = {"label": label}
    if size_mib is not None:
        out["sizeMiB"] = size_mib
    if type_guid is not None:
        out["typeGuid"] = type_guid
    return out


def _mirror_disk(device: str, n: int, layout: str) -> dict:
    if layout == "x86_64":
        first = _partition(f"bios-{n}", BIOS_MIB, BIOS_TYPE_GUID)
    elif layout == "ppc64le":
        first = _partition(f"prep-{n}", PREP_MIB, PREP_TYPE_GUID)
    else:
        first = _partition(f"reserved-{n}", RESERVED_MIB, RESERVED_TYPE_GUID)
    if layout in ("x86_64", "aarch64"):
        second = _partition(f"esp-{n}", ESP_MIB, ESP_TYPE_GUID)
    else:
        second = _partition(f"reserved-{n}", RESERVED_MIB, RESERVED_TYPE_GUID)
    return {"device": device, "wipeTable": True,
            "partitions": [first, second, _partition(f"boot-{n}", BOOT_MIB), _partition(f"root-{n}")]}


def render_boot_device(bd: dict) -> dict | None:
    """The Ignition config fragment (parent of the user's config) a checked boot_device stands for;
    None when it asks for neither encryption nor mirroring."""
    luks = bd.get("luks") or {}
    devices = (bd.get("mirror") or {}).get("devices") or []
    cex = _enabled((luks.get("cex") or {}).get("enabled"))
    want_luks = _enabled(luks.get("tpm2")) or bool(luks.get("tang")) or cex
    want_mirror = bool(devices)
    if not want_luks and not want_mirror:
        return None
    layout = bd.get("layout") or "x86_64"
    storage: dict[str, list] = {"disks": [], "raid": [], "luks": [], "filesystems": []}
    if want_mirror:
        for n, device in enumerate(devices, start=1):
            storage["disks"].append(_mirror_disk(device, n, layout))
            if layout in ("x86_64", "aarch64"):
                storage["filesystems"].append({"device": f"/dev/disk/by-partlabel/esp-{n}", "format": "vfat",
                                               "label": f"esp-{n}", "wipeFilesystem": True})

        def members(prefix: str) -> list[str]:
            return [f"/dev/disk/by-partlabel/{prefix}-{n}" for n in range(1, len(devices) + 1)]

        storage["raid"] = [
            # the superblock at the end of the partition: BIOS GRUB reads md-boot as a plain filesystem
            {"devices": members("boot"), "level": "raid1", "name": "md-boot", "options": ["--metadata=1.0"]},
            {"devices": members("root"), "level": "raid1", "name": "md-root"},
        ]
        storage["filesystems"].append({"device": "/dev/md/md-boot", "format": "ext4", "label": "boot",
                                       "wipeFilesystem": True})
    if want_luks:
        if layout == "s390x-eckd":
            device = f"{luks['device']}2"
        elif layout == "s390x-zfcp":
            device = f"{luks['device']}4"
        elif want_mirror:
            device = "/dev/md/md-root"
        else:
            device = "/dev/disk/by-partlabel/root"
        volume: dict[str, Any] = {}
        if cex:
            volume["cex"] = {"enabled": True}
        else:
            clevis = {k: luks[k] for k in ("tang", "threshold", "tpm2") if k in luks}
            volume["clevis"] = clevis
        volume.update(device=device, label="luks-root", name="root", wipeVolume=True)
        if "discard" in luks:
            volume["discard"] = luks["discard"]
        storage["luks"] = [volume]
    storage["filesystems"].append({"device": "/dev/mapper/root" if want_luks else "/dev/md/md-root",
                                   "format": "xfs", "label": "root", "wipeFilesystem": True})
    return {"storage": {k: v for k, v in storage.items() if v}}


def grub_user_cfg(users: list[dict]) -> str:
    """/boot/grub2/user.cfg for checked grub.users (buildGrubConfig)."""
    names = " ".join(u["name"] for u in users)
    lines = "\n".join(f"password_pbkdf2 {u['name']} {u['password_hash']}" for u in users)
    return f'# Generated by Butane\n\nset superusers="{names}"\n{lines}\n'


def render_grub(data_url: tuple[str, str]) -> dict:
    """The Ignition fragment (parent of the user's config) for grub.users; ``data_url`` is the
    (source, compression) of their grub_user_cfg()."""
    source, compression = data_url
    return {"storage": {
        "filesystems": [{"device": "/dev/disk/by-label/boot", "format": "ext4", "path": "/boot"}],
        "files": [{"path": "/boot/grub2/user.cfg", "append": [{"source": source, "compression": compression}]}],
    }}
