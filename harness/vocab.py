"""The one vocabulary of livelab: OS ids, methods, firmware, test ids, RAM minimums.

Every CLI, report and pytest id uses these names.  Test ids have the shape
``<os>.<stream|channel>.<method>.<firmware>[.<scenario>]``, e.g.
``fcos.stable.pxe.bios.persist-var`` so that ``-k pxe``, ``-k uefi``,
``-k flatcar`` and ``-k persist`` select naturally.
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
}
# which methods apply to which OS (Flatcar ships no live ISO; its docs boot it by PXE/iPXE)
OS_METHODS = {
    "fcos": ("pxe", "pxe-rootfs-url", "ipxe", "ipxe-chain", "iso", "iso-fromram"),
    "flatcar": ("pxe", "ipxe", "ipxe-chain"),
}
FIRMWARES = ("bios", "uefi", "uefi-secure")
# a configuration in an id: <os>.<stream>.<method>.<firmware>
CONFIG_PATTERN = r"(?P<os>fcos|flatcar)\.(?P<stream>[a-z]+)\.(?P<method>[a-z-]+)\.(?P<firmware>bios|uefi-secure|uefi)"
# a scenario case's test id (and its pytest / JUnit name): <configuration>.<scenario>
CASE_ID_RE = re.compile(rf"^(?P<id>{CONFIG_PATTERN}\.(?P<scenario>[A-Za-z0-9_-]+))$")


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
        if method in ("iso", "iso-fromram"):
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


# Under Secure Boot the network methods have no signed path: the NIC's iPXE ROM runs (OVMF executes
# option ROMs unverified), but iPXE loads the kernel with the firmware's LoadImage, which accepts
# only what db's keys (Microsoft's) signed, and Debian 12's iPXE cannot hand it to shim.
NETWORK_METHODS = ("pxe", "pxe-rootfs-url", "ipxe", "ipxe-chain")


def refusal(method: str, firmware: str) -> str | None:
    """Why a configuration cannot boot, for real images and the stand-in alike (None: it can).  It
    is refused before boot; a matrix lists it as "not applicable", never as failed."""
    if firmware == "uefi-secure" and method in NETWORK_METHODS:
        return (f"{method} under uefi-secure cannot boot: iPXE loads the kernel through the firmware, "
                f"which under Secure Boot runs only binaries signed by Microsoft's keys (a distribution's kernel "
                f"is trusted through shim, which livelab's network boots do not use); boot the ISO instead")
    return None


_ID_RE = re.compile(r"^(?P<os>[a-z]+)\.(?P<stream>[a-z0-9]+)\.(?P<method>[a-z-]+)\.(?P<firmware>bios|uefi-secure|uefi)"
                    r"(?:\.(?P<scenario>[A-Za-z0-9_.-]+))?$")


@dataclass(frozen=True)
class TestId:
    os: str
    stream: str
    method: str
    firmware: str
    scenario: str | None = None

    def __str__(self) -> str:
        base = f"{self.os}.{self.stream}.{self.method}.{self.firmware}"
        return f"{base}.{self.scenario}" if self.scenario else base

    @classmethod
    def parse(cls, text: str) -> TestId:
        m = _ID_RE.match(text.strip())
        if not m:
            raise LivelabError(
                f"bad test id {text!r}: expected <os>.<stream|channel>.<method>.<firmware>[.<scenario>]")
        tid = cls(**m.groupdict())
        check_stream(tid.os, tid.stream)
        check_method(tid.os, tid.method)
        return tid
