"""Boot methods: turn a prepared ``LiveBoot`` into boot media for its VM.

=================  ==========================================================================
method             what the VM does
=================  ==========================================================================
``pxe``            BIOS: iPXE NIC ROM -> PXELINUX (``lpxelinux.0``) over QEMU's TFTP ->
                   ``pxelinux.cfg/default`` -> kernel + initramfs + rootfs (appended initrd),
                   fetched over HTTP (TFTP under TCG is ~1 MB/s).
                   UEFI: the iPXE EFI ROM runs the same boot over TFTP (``boot.ipxe``): Debian's
                   OVMF has no PXELINUX, and GRUB netboot would need a grub-mknetdir image we
                   would have to build; iPXE is already the NIC's ROM and speaks TFTP.
``pxe-rootfs-url`` as ``pxe`` with ``coreos.live.rootfs_url`` in place of the appended rootfs
``ipxe``           DHCP bootfile ``http://10.0.2.100/boot.ipxe``: the docs' script over HTTP
``ipxe-chain``     no bootfile: Ctrl-B at iPXE's prompt, ``dhcp``, ``chain http://.../boot.ipxe``
``iso``            the live ISO, customized (``iso customize``) with the config and kargs, as CD
``iso-fromram``    as ``iso`` with ``coreos.liveiso.fromram``
``iso-as-disk``    the same customized ISO as a virtio disk and no CD drive at all (a USB stick):
                   its El Torito record disabled, as kola does, so the firmware boots the
                   isohybrid's MBR (BIOS) or its GPT's ESP (UEFI); the disk has the request's
                   sector size, in a PCIe slot of its own (it can be unplugged: QMP device_del)
=================  ==========================================================================
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import atomic_write
from ..errors import BootFailure, LivelabError, required
from ..serve import HttpServer, guest_url
from ..vm.spec import LIVE_ISO_FILE, Disk
from ..vocab import ISO_METHODS
from . import ipxe as _ipxe
from . import pxe as _pxe

if TYPE_CHECKING:
    from ..lab import LiveBoot

BOOT_SCRIPT = "boot.ipxe"
ISO_DISK = "iso"            # the name of the live ISO's disk (iso-as-disk)


@dataclass(frozen=True)
class BootMedia:
    """What the next boot starts from (the machine applies it to its spec: ``Machine.use_media``)."""
    boot: str                        # network | cdrom | disk
    tftp_dir: str | None = None      # network: QEMU's TFTP root
    bootfile: str | None = None      # network: the DHCP bootfile (None: none offered, as for ipxe-chain)
    cdrom: str | None = None         # cdrom: the customized live ISO
    disk: Disk | None = None         # disk: the customized live ISO as a disk (booted first)


def _http(lab: LiveBoot) -> HttpServer:
    return required(lab.http, LivelabError(f"{lab.name}: not prepared yet (no HTTP server)"))


def _name(lab: LiveBoot, kind: str) -> str:
    return posixpath.basename(lab.paths[kind])


def _oem_initrd(lab: LiveBoot) -> list[str]:
    """Flatcar: an extra initrd holding /usr/share/oem/config.ign (as the Flatcar docs build it)."""
    if lab.req.oem_config is None:
        return []
    import json

    from .initrd import oem_initrd
    path = lab.run_dir / "oem.cpio.gz"
    atomic_write(path, oem_initrd({"usr/share/oem/config.ign": json.dumps(lab.req.oem_config).encode()}), fsync=False)
    _http(lab).publish("oem.cpio.gz", path)
    return ["oem.cpio.gz"]


def prepare(lab: LiveBoot, kargs: list[str]) -> BootMedia:
    """Write the boot media for the next boot of ``lab``'s VM with kernel arguments ``kargs``."""
    method, fw = lab.req.method, lab.req.firmware
    atomic_write(lab.run_dir / "kargs.txt", " ".join(kargs) + "\n", fsync=False)
    if method in ISO_METHODS:
        return _prepare_iso(lab, kargs)
    tftp = lab.run_dir / "tftp"
    oem = _oem_initrd(lab)
    if method in ("pxe", "pxe-rootfs-url"):
        initrds = [_name(lab, "initramfs")]
        if method == "pxe" and lab.req.os == "fcos":
            initrds.append(_name(lab, "rootfs"))
        initrds += oem
        # the boot program and its config over TFTP, the big files over HTTP (see boot/pxe.py)
        names = {_name(lab, k): lab.paths[k] for k in lab.files}
        names.update({o: o for o in oem})
        initrd_paths = [names[i] for i in initrds]
        if fw == "bios":
            cfg = _pxe.pxelinux_cfg(lab.paths["kernel"], initrd_paths, kargs, base_url=guest_url(""))
            bootfile = _pxe.populate_tftp(tftp, {}, cfg)
            atomic_write(lab.run_dir / "pxelinux.cfg", cfg, fsync=False)
        else:
            tftp.mkdir(parents=True, exist_ok=True)
            script = _ipxe.pxe_script(lab.paths["kernel"], initrd_paths, kargs, base_url=guest_url(""))
            atomic_write(tftp / BOOT_SCRIPT, script, fsync=False)
            atomic_write(lab.run_dir / BOOT_SCRIPT, script, fsync=False)
            bootfile = BOOT_SCRIPT
        return BootMedia("network", tftp_dir=str(tftp), bootfile=bootfile)
    if method in ("ipxe", "ipxe-chain"):
        script = boot_script(lab, kargs, oem)
        _http(lab).publish(BOOT_SCRIPT, script)
        atomic_write(lab.run_dir / BOOT_SCRIPT, script, fsync=False)
        tftp.mkdir(parents=True, exist_ok=True)   # empty: QEMU's DHCP needs none, kept for a uniform layout
        return BootMedia("network", tftp_dir=str(tftp),
                         bootfile=guest_url(BOOT_SCRIPT) if method == "ipxe" else None)
    raise LivelabError(f"unknown boot method {method!r}")


def boot_script(lab: LiveBoot, kargs: list[str], oem: list[str]) -> str:
    if lab.req.os == "fcos":
        rel = lab.require_release()
        kernel_key = lab.paths["kernel"]
        # .../fcos/prod/streams/<stream>/builds/<version>/x86_64/<file>
        prefix = kernel_key.split("/prod/streams/")[0] + "/prod/streams"
        k = [a for a in kargs if not a.startswith("coreos.live.rootfs_url=")]
        script = _ipxe.fcos_script(rel.stream, rel.version, guest_url(prefix), _name(lab, "kernel"),
                                   _name(lab, "initramfs"), k, rootfs=_name(lab, "rootfs"),
                                   config_url=guest_url("config.ign") if lab.config else None)
    else:
        base = guest_url(posixpath.dirname(lab.paths["kernel"]))
        script = _ipxe.flatcar_script(base, kargs)
    for extra in oem:
        script = script.replace("\nboot\n", f"\ninitrd {guest_url(extra)}\nboot\n")
    return script


def _prepare_iso(lab: LiveBoot, kargs: list[str]) -> BootMedia:
    from .iso import LiveISO, disable_el_torito
    out = lab.run_dir / LIVE_ISO_FILE
    LiveISO.customize(Path(lab.files["iso"].path), out, ignition=lab.config, karg_append=kargs, force=True)
    if lab.req.method == "iso-as-disk":
        disable_el_torito(out)
        return BootMedia("disk", disk=Disk(ISO_DISK, image=str(out), sector=lab.req.sector))
    return BootMedia("cdrom", cdrom=str(out))


def after_start(lab: LiveBoot) -> None:
    """Interactive steps right after QEMU starts (``ipxe-chain``: type at iPXE's prompt)."""
    if lab.req.method != "ipxe-chain":
        return
    m = lab.require_machine()
    con = required(m.console, BootFailure(f"{m.spec.name}: not running (no console)"))
    con.wait_for("Ctrl-B", m.timeouts.firmware)
    con.send_key("ctrl-b")
    con.wait_for("iPXE>", m.timeouts.firmware)
    con.type_line("dhcp", m.timeouts.firmware)
    con.wait_for("iPXE>", m.timeouts.firmware)
    con.type_line(f"chain {guest_url(BOOT_SCRIPT)}", m.timeouts.firmware)
    m.mark("ipxe_chain")
