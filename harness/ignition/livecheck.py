"""Refuse, before boot, a live config that changes a root disk the VM does not have.

A config with ``boot_device`` (LUKS root, mirrored boot disk), ``grub.users`` (a file on /boot) or
a hand-written change of the root filesystem is an *installed* system's config.  Given to a live
boot, Ignition's disks stage waits for devices that never come: the live system has no
/dev/disk/by-partlabel/root, and a livelab VM has no /dev/sda.  ``livelab butane`` translates such
configs unchanged; ``LiveBoot`` (``livelab boot``/``check``, the pytest fixtures) calls
``check_live_disks`` with the request's disks and refuses, in one line, unless they hold it:

* what is the root disk: LUKS volume ``root``, RAIDs ``md-root``/``md-boot``, filesystems labelled
  ``root`` or ``boot``, mounted at /boot, or on /dev/mapper/root, /dev/md/md-root|md-boot,
  /dev/disk/by-label/root|boot|EFI-SYSTEM, /dev/disk/by-partlabel/root|boot|EFI-SYSTEM|BIOS-BOOT|
  PowerPC-PReP-boot, and disks /dev/disk/by-id/coreos-boot-disk (followed through the RAIDs and
  LUKS volumes they sit on);
* a partition or filesystem label the config does not create itself exists only on a disk holding
  an installed image: the request needs a disk with ``backing``;
* a whole disk it partitions (a mirror's /dev/vdb, ...) must be an attached disk, named as livelab
  VMs name them (/dev/vdX in attachment order, /dev/disk/by-id/virtio-SERIAL), and a blank one at
  least ``MIN_DISK_MIB``: butane's largest replicated layout (x86_64: BIOS boot 1 + ESP 127 + boot
  384 MiB) plus the 8 GiB Fedora CoreOS requires of a root filesystem.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

from ..errors import LivelabError
from .checks import BOOT_DISK

MIN_DISK_MIB = 1 + 127 + 384 + 8192
ROOT_PARTLABELS = ("root", "boot", "EFI-SYSTEM", "BIOS-BOOT", "PowerPC-PReP-boot")
ROOT_FSLABELS = ("root", "boot", "EFI-SYSTEM")
_VD = re.compile(r"/dev/vd([a-z])\Z")
_VIRTIO_ID = "/dev/disk/by-id/virtio-"
_SIZE = re.compile(r"([1-9][0-9]*)([KMGT]?)\Z")


class DiskLike(Protocol):
    """What is read of a request's disk (harness.vm.spec.Disk)."""
    size: str | None
    backing: str | None
    serial: str | None


def _size_mib(size: str | None) -> float | None:
    m = _SIZE.match(size or "")
    if not m:
        return None
    return int(m.group(1)) * {"": 1 / 2 ** 20, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 ** 2}[m.group(2)]


def _root_uses(storage: dict) -> list[tuple[str, str]]:
    """(device path, what uses it) for every device the root disk's storage sits on."""
    luks = {v.get("name"): v for v in storage.get("luks") or [] if isinstance(v, dict)}
    raid = {r.get("name"): r for r in storage.get("raid") or [] if isinstance(r, dict)}
    out: list[tuple[str, str]] = []
    todo: list[tuple[str, str]] = []
    for fs in storage.get("filesystems") or []:
        if not isinstance(fs, dict) or not isinstance(fs.get("device"), str):
            continue
        dev = fs["device"]
        if fs.get("label") in ("root", "boot") or fs.get("path") == "/boot" or _is_root_name(dev):
            todo.append((dev, f"filesystem on {dev}"))
    todo += [(f"/dev/mapper/{n}", f"LUKS volume {n}") for n in luks if n == "root"]
    todo += [(f"/dev/md/{n}", f"RAID {n}") for n in raid if n in ("md-root", "md-boot")]
    todo += [(d["device"], "disk") for d in storage.get("disks") or []
             if isinstance(d, dict) and isinstance(d.get("device"), str) and d["device"].startswith(BOOT_DISK)]
    seen: set[str] = set()
    while todo:
        dev, what = todo.pop(0)
        if dev in seen:
            continue
        seen.add(dev)
        name = dev.rsplit("/", 1)[-1]
        if dev.startswith("/dev/mapper/") and name in luks and isinstance(luks[name].get("device"), str):
            todo.append((luks[name]["device"], f"LUKS volume {name}"))
        elif dev.startswith("/dev/md/") and name in raid:
            todo += [(m, f"RAID {name}") for m in raid[name].get("devices") or [] if isinstance(m, str)]
        else:
            out.append((dev, what))
    return out


def _is_root_name(dev: str) -> bool:
    return (dev in ("/dev/mapper/root", "/dev/md/md-root", "/dev/md/md-boot") or dev.startswith(BOOT_DISK)
            or any(dev == f"/dev/disk/by-label/{x}" for x in ROOT_FSLABELS)
            or any(dev == f"/dev/disk/by-partlabel/{x}" for x in ROOT_PARTLABELS))


def _attached(dev: str, disks: Sequence[DiskLike]) -> DiskLike | None:
    m = _VD.match(dev)
    if m:
        i = ord(m.group(1)) - ord("a")
        return disks[i] if i < len(disks) else None
    if dev.startswith(_VIRTIO_ID):
        return next((d for d in disks if d.serial and dev == _VIRTIO_ID + d.serial), None)
    return None


def problem(config: dict[str, Any] | None, disks: Sequence[DiskLike]) -> str | None:
    """Why ``disks`` cannot hold the root-disk changes of ``config`` (None: they can, or there are none)."""
    storage = (config or {}).get("storage")
    if not isinstance(storage, dict):
        return None
    uses = _root_uses(storage)
    if not uses:
        return None
    part_disk = {p.get("label"): d.get("device") for d in storage.get("disks") or [] if isinstance(d, dict)
                 for p in d.get("partitions") or [] if isinstance(p, dict) and p.get("label")}
    fs_labels = {fs.get("label") for fs in storage.get("filesystems") or [] if isinstance(fs, dict)}
    installed = any(d.backing for d in disks)
    head = f"the live config changes the root disk ({uses[0][1]})"
    for dev, what in uses:
        whole = dev
        if dev.startswith("/dev/disk/by-partlabel/") and dev.rsplit("/", 1)[-1] in part_disk:
            whole = part_disk[dev.rsplit("/", 1)[-1]] or dev
        elif dev.startswith("/dev/disk/by-label/") and dev.rsplit("/", 1)[-1] in fs_labels:
            continue    # a filesystem the config makes (its own device is checked)
        if whole.startswith(("/dev/disk/by-partlabel/", "/dev/disk/by-label/", BOOT_DISK, "/dev/mapper/",
                             "/dev/md/")):
            if not installed:
                return (f"{head}: Ignition would wait for {dev} ({what}), which only a disk holding an installed "
                        "image has; attach one (a disk with backing=) or give this config to the installed "
                        "system instead of the live boot")
            continue
        disk = _attached(whole, disks)
        if disk is None:
            have = f"its {len(disks)} disk(s) are /dev/vda.. and /dev/disk/by-id/virtio-SERIAL" if disks \
                else "it has no disk"
            return (f"{head}: Ignition would wait for {whole} ({what}), which this VM does not have ({have}); "
                    f"attach a disk of at least {MIN_DISK_MIB} MiB and name it so in the config")
        size = _size_mib(disk.size)
        if not disk.backing and size is not None and size < MIN_DISK_MIB:
            return (f"{head}: {whole} ({what}) is a {disk.size} disk, less than the {MIN_DISK_MIB} MiB a root disk "
                    "needs (butane's boot partitions, 512 MiB, and the 8 GiB root filesystem)")
    return None


def check_live_disks(config: dict[str, Any] | None, disks: Sequence[DiskLike]) -> None:
    """Raise LivelabError (one line) when a live boot's config changes a root disk ``disks`` cannot hold."""
    why = problem(config, disks)
    if why:
        raise LivelabError(why)
