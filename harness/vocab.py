"""The one vocabulary of livelab: OS ids, methods, firmware, disk sectors, test ids, RAM minimums.

Every CLI, report and pytest id uses these names.  Test ids have the shape
``<os>.<stream|channel>.<method>.<firmware>[.<scenario>][.<disk>]``, e.g.
``fcos.stable.pxe.bios.persist-var`` or, on 4096-byte-sector disks, ``fcos.stable.iso.uefi.persist-var.4k``
(kola's ``4k`` variants), so that ``-k pxe``, ``-k uefi``, ``-k flatcar``, ``-k persist`` and ``-k 4k``
select naturally.  A scenario name is letters, digits, ``-`` and ``_`` (no dot) and never contains a
disk suffix: ``persist-var.4k`` is the scenario ``persist-var`` on 4Kn disks, and ``-k 4k`` selects
exactly the 4Kn ids.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import LivelabError

OSES = ("fcos", "flatcar")
FCOS_STREAMS = ("stable", "testing", "next")
FLATCAR_CHANNELS = ("stable", "beta", "alpha", "lts")
STREAMS = {"fcos": FCOS_STREAMS, "flatcar": FLATCAR_CHANNELS}

# method id -> one-line description
METHODS = {
    "pxe": "PXELINUX over TFTP, rootfs appended as an extra initrd",
    "pxe-rootfs-url": "PXELINUX over TFTP, rootfs fetched via coreos.live.rootfs_url",
    "ipxe": "iPXE script over HTTP (rootfs over HTTP for FCOS)",
    "ipxe-chain": "iPXE interactive: Ctrl-B, dhcp, chain http://.../boot.ipxe on the serial console",
    "iso": "live ISO on a virtual CD",
    "iso-fromram": "live ISO on a virtual CD with coreos.liveiso.fromram",
    "iso-as-disk": "live ISO (isohybrid) attached as a virtio disk, no CD drive: a USB stick's boot",
}
# which methods apply to which OS (Flatcar ships no live ISO; its docs boot it by PXE/iPXE)
OS_METHODS = {
    "fcos": ("pxe", "pxe-rootfs-url", "ipxe", "ipxe-chain", "iso", "iso-fromram", "iso-as-disk"),
    "flatcar": ("pxe", "ipxe", "ipxe-chain"),
}
# the methods that boot the live ISO (its kernel arguments and Ignition embedded in it)
ISO_METHODS = ("iso", "iso-fromram", "iso-as-disk")
FIRMWARES = ("bios", "uefi", "uefi-secure")
# logical = physical sector size of a VM's virtio disks, and the suffix it gives an id (kola's "4k")
SECTORS = (512, 4096)
DISK_SUFFIX = {4096: "4k"}
# the firmware names as a regex alternation, longest first (uefi-secure before its prefix uefi)
FIRMWARE_PATTERN = "|".join(sorted(FIRMWARES, key=len, reverse=True))
# a configuration in an id: <os>.<stream>.<method>.<firmware>
CONFIG_PATTERN = rf"(?P<os>fcos|flatcar)\.(?P<stream>[a-z]+)\.(?P<method>[a-z-]+)\.(?P<firmware>{FIRMWARE_PATTERN})"
# a scenario name: no dot, and no disk suffix anywhere in it (pytest's -k matches substrings)
_NOT_A_SUFFIX = "".join(f"(?!{s})" for s in DISK_SUFFIX.values())
SCENARIO_PATTERN = rf"(?:{_NOT_A_SUFFIX}[A-Za-z0-9_-])+"
DISK_PATTERN = "|".join(DISK_SUFFIX.values())
# a scenario case's test id (and its pytest / JUnit name): <configuration>.<scenario>[.<disk>]
CASE_ID_RE = re.compile(
    rf"^(?P<id>{CONFIG_PATTERN}\.(?P<scenario>{SCENARIO_PATTERN})(?:\.(?P<disk>{DISK_PATTERN}))?)$")


@dataclass(frozen=True)
class MemoryMinimum:
    mib: int
    source: str
    documented: bool = True


def memory_minimum(os_id: str, method: str) -> MemoryMinimum:
    """The documented RAM minimum for an OS and method (the default memory of a VM)."""
    if os_id == "fcos":
        if method in ("pxe-rootfs-url", "ipxe", "ipxe-chain"):
            return MemoryMinimum(2048, "FCOS live-booting docs: 2 GiB with coreos.live.rootfs_url")
        if method == "pxe":
            return MemoryMinimum(4096, "FCOS live-booting docs: 4 GiB with the rootfs appended as an initrd")
        if method in ISO_METHODS:
            return MemoryMinimum(4096, "not documented for the live ISO; kola's default of 4096 MiB", documented=False)
    if os_id == "flatcar":
        return MemoryMinimum(3072, "Flatcar PXE/iPXE docs: 3 GB (taken as 3072 MiB)")
    raise LivelabError(f"no memory minimum known for {os_id} via {method}")


def largest_memory_minimum() -> int:
    """The largest default VM memory of any OS and method (MiB)."""
    return max(memory_minimum(o, m).mib for o, methods in OS_METHODS.items() for m in methods)


def check_os(os_id: str) -> str:
    if os_id not in OSES:
        raise LivelabError(f"unknown OS {os_id!r}: expected one of {', '.join(OSES)}")
    return os_id


def check_stream(os_id: str, stream: str) -> str:
    check_os(os_id)
    if stream not in STREAMS[os_id]:
        kind = "stream" if os_id == "fcos" else "channel"
        raise LivelabError(
            f"unknown {os_id} {kind} {stream!r}: expected one of {', '.join(STREAMS[os_id])}")
    return stream


def check_method(os_id: str, method: str) -> str:
    check_os(os_id)
    if method not in METHODS:
        raise LivelabError(f"unknown boot method {method!r}: expected one of {', '.join(METHODS)}")
    if method not in OS_METHODS[os_id]:
        raise LivelabError(
            f"boot method {method!r} does not apply to {os_id}: expected one of {', '.join(OS_METHODS[os_id])}")
    return method


def check_firmware(firmware: str) -> str:
    if firmware not in FIRMWARES:
        raise LivelabError(f"unknown firmware {firmware!r}: expected one of {', '.join(FIRMWARES)}")
    return firmware


def check_sector(sector: object) -> int:
    """A disk sector size livelab attaches: 512 (QEMU's default) or 4096 (a 4Kn disk)."""
    if isinstance(sector, bool) or not isinstance(sector, int) or sector not in SECTORS:
        raise LivelabError(f"unsupported disk sector size {sector!r}: expected one of "
                           f"{', '.join(map(str, SECTORS))} (bytes, logical = physical)")
    return sector


def parse_sector(text: object, flag: str = "--sector") -> int:
    """A sector size as a command line gives it (``"4096"``); one line when it is not one."""
    try:
        return check_sector(int(str(text).strip()))
    except (ValueError, LivelabError):
        raise LivelabError(f"{flag} {text!r}: expected one of {', '.join(map(str, SECTORS))} "
                           "(bytes: the disks' logical = physical sector size)") from None


# Under Secure Boot the network methods have no signed path: the NIC's iPXE ROM runs (OVMF executes
# option ROMs unverified), but iPXE loads the kernel with the firmware's LoadImage, which accepts
# only what db's keys (Microsoft's) signed, and Debian 12's iPXE cannot hand it to shim.
NETWORK_METHODS = ("pxe", "pxe-rootfs-url", "ipxe", "ipxe-chain")


def refusal(method: str, firmware: str, sector: int) -> str | None:
    """Why a configuration cannot boot, for real images and the stand-in alike (None: it can).  It
    is refused before boot; a matrix lists it and shows it "not applicable", never as failed.

    A network boot under Secure Boot (``uefi-secure``): see ``NETWORK_METHODS``.
    The live ISO on a disk of 4096-byte sectors (kola's ``iso-as-disk.4k.uefi``): the live
    initramfs mounts the ISO9660 filesystem, and Linux's isofs refuses a device whose logical
    block size is larger than its 2048-byte sectors; under UEFI the firmware does not even get
    that far, since the isohybrid GPT and MBR count 512-byte sectors (images/README.md)."""
    if firmware == "uefi-secure" and method in NETWORK_METHODS:
        return (f"{method} under uefi-secure cannot boot: iPXE loads the kernel through the firmware, "
                f"which under Secure Boot runs only binaries signed by Microsoft's keys (a distribution's kernel "
                f"is trusted through shim, which livelab's network boots do not use); boot the ISO instead")
    if method == "iso-as-disk" and check_sector(sector) > 2048:
        uefi = ("UEFI finds no ESP (the isohybrid's GPT and MBR count 512-byte sectors), and "
                if firmware in ("uefi", "uefi-secure") else "")
        return (f"iso-as-disk on a {sector}-byte-sector disk cannot boot: {uefi}Linux's isofs mounts no ISO9660 "
                f"on a device with blocks over 2048 bytes (images/README.md, 4Kn)")
    return None


_ID_RE = re.compile(rf"^(?P<os>[a-z]+)\.(?P<stream>[a-z0-9]+)\.(?P<method>[a-z-]+)\.(?P<firmware>{FIRMWARE_PATTERN})"
                    rf"(?:\.(?P<scenario>{SCENARIO_PATTERN}))?(?:\.(?P<disk>{DISK_PATTERN}))?$")


@dataclass(frozen=True)
class TestId:
    os: str
    stream: str
    method: str
    firmware: str
    scenario: str | None = None
    disk: str | None = None       # "4k": the VM's disks have 4096-byte sectors

    def __str__(self) -> str:
        parts = [self.os, self.stream, self.method, self.firmware, self.scenario, self.disk]
        return ".".join(p for p in parts if p)

    @property
    def sector(self) -> int:
        """The sector size of the id's disks (its disk suffix; 512 without one)."""
        return next((s for s, suffix in DISK_SUFFIX.items() if suffix == self.disk), 512)

    @classmethod
    def parse(cls, text: str) -> TestId:
        m = _ID_RE.match(text.strip())
        if not m:
            raise LivelabError(
                f"bad test id {text!r}: expected <os>.<stream|channel>.<method>.<firmware>[.<scenario>][.<disk>] "
                f"(a scenario: letters, digits, - and _; a disk: {DISK_PATTERN.replace('|', ', ')})")
        tid = cls(**m.groupdict())
        check_stream(tid.os, tid.stream)
        check_method(tid.os, tid.method)
        return tid
