"""A VM as data: ``VMSpec`` (memory, CPUs, firmware, boot media, disks, forwards) and the QEMU
command line built from it, with ``isolation_problems`` to prove the network stays on this host.

Pure: nothing here starts a process.  Both backends build on it (``machine.Machine`` runs the
command line, ``libvirt.LibvirtMachine`` turns the same spec into domain XML).  Networking is
QEMU user mode with ``restrict=on``: the guest reaches only the harness's HTTP server through
``guestfwd`` (10.0.2.100:80), QEMU's built-in TFTP, and SSH is forwarded to a 127.0.0.1 port.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import runtime
from ..errors import LivelabError
from ..serve import GUEST_HTTP_IP, GUEST_HTTP_PORT, relay_command
from .accel import Accel

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
# uefi-secure: OVMF built with Secure Boot and SMM-protected variables, and a variable store with
# Microsoft's keys enrolled and Secure Boot on (Debian's ovmf package)
OVMF_SECURE_CODE = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
OVMF_SECURE_VARS = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
# firmware -> (code, the template of the VM's own variable store, VARS_FILE in its run directory)
UEFI_FIRMWARE = {"uefi": (OVMF_CODE, OVMF_VARS), "uefi-secure": (OVMF_SECURE_CODE, OVMF_SECURE_VARS)}
VARS_FILE = "OVMF_VARS.fd"
# the big files a VM's run directory holds (``run_media`` removes them once a test has passed):
DISK_FILE = "disk-{}.qcow2"             # a disk's qcow2 (``Disk.file_name``)
LIVE_ISO_FILE = "live.iso"              # the customized live ISO (Ignition and kernel arguments embedded)
COMBINED_INITRD = "initrd-combined.img"  # libvirt: the initrds as one (its <initrd> takes one file)
# Network boots use the NIC's own QEMU ROM: Debian's ipxe-qemu (efi-<nic>.rom, BIOS and EFI iPXE
# in one), found by QEMU in its data path.  (Naming the same file with romfile= made SeaBIOS skip
# it in QEMU 7.2 here, so the default is kept; non-network boots get romfile= and no ROM.)
IPXE_ROM_DIR = "/usr/lib/ipxe/qemu"
COMPLETION_PORT = "org.livelab.boot-done"
COMPLETION_TOKEN = "livelab-boot-done"
LIVEISO_SUCCESS_PORT = "coreos.liveiso-success"


@dataclass
class Disk:
    """A virtio disk: a qcow2 overlay on ``backing`` (never a copy), a blank one of ``size``, or an
    ``image`` attached as it is (raw, read-only: the live ISO of ``iso-as-disk``, as a USB stick)."""
    name: str
    size: str | None = None           # e.g. "8G" for a blank disk
    backing: str | None = None        # base image the overlay sits on
    backing_format: str = "raw"
    serial: str | None = None         # appears as /dev/disk/by-id/virtio-<serial>
    sector: int = 512                 # logical = physical sector size: 512, or 4096 (a 4Kn disk)
    image: str | None = None          # raw and read-only, no overlay; in a PCIe slot of its own (device_del)

    @property
    def file_name(self) -> str:
        """The qcow2 in the VM's run directory (a disk without ``image``)."""
        return DISK_FILE.format(self.name)


@dataclass
class VMSpec:
    """Everything needed to re-create a VM (saved as vm.json)."""
    name: str
    memory_mib: int
    cpus: int = 2
    firmware: str = "bios"                # bios | uefi | uefi-secure
    machine: str = "q35"
    # direct kernel boot (PXE-equivalent kernel arguments go here or into a boot script)
    kernel: str | None = None
    initrds: list[str] = field(default_factory=list)
    append: str | None = None
    boot: str = "disk"                    # network | cdrom | disk | kernel
    nic_model: str = "virtio-net-pci"
    nic_rom: str | None = None         # None: QEMU's ROM for the NIC model (Debian: iPXE)
    tftp_dir: str | None = None
    bootfile: str | None = None
    http_port: int | None = None       # harness HTTP server on 127.0.0.1, reached at 10.0.2.100:80
    ssh_port: int | None = None        # hostfwd 127.0.0.1:ssh_port -> guest 22
    forwards: list[list[int | None]] = field(default_factory=list)  # [guest port, host port]: more hostfwds
    cdrom: str | None = None
    disks: list[Disk] = field(default_factory=list)
    boot_disk: str | None = None       # boot "disk": the disk booted first (by name; None: the first)
    virtio_ports: list[str] = field(default_factory=lambda: [COMPLETION_PORT])
    fw_cfg: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VMSpec:
        data = dict(data)
        # (a vm.json of before 4Kn disks has an ``interface`` key, always "virtio": dropped)
        data["disks"] = [Disk(**{k: v for k, v in d.items() if k in Disk.__dataclass_fields__})
                         for d in data.get("disks", [])]
        return cls(**data)


DISK_ID = "disk{}dev"       # the QMP device id of spec.disks[i] (the libvirt backend: ua-disk{}dev)


def booted_disk(spec: VMSpec) -> Disk | None:
    """The disk a ``boot: disk`` VM starts from: ``boot_disk`` by name, else the first."""
    if spec.boot != "disk" or not spec.disks:
        return None
    if spec.boot_disk is None:
        return spec.disks[0]
    found = next((d for d in spec.disks if d.name == spec.boot_disk), None)
    if found is None:
        raise LivelabError(f"{spec.name}: boot disk {spec.boot_disk!r} is not one of its disks")
    return found


def netdev_arg(spec: VMSpec) -> str:
    """The ``-netdev`` value: user mode, restricted; only the harness's services are reachable
    (shared by the QEMU and the libvirt backends)."""
    # IPv6 stays on (restricted like IPv4): with ipv6=off the firmware's iPXE sends router
    # solicitations nobody answers and waits about 13 s for them before it loads anything.
    # Both named: QEMU takes "ipv6=on" alone to mean IPv6 only.
    net = ["user", "id=net0", "restrict=on", "ipv4=on", "ipv6=on"]
    if spec.tftp_dir:
        net.append(f"tftp={spec.tftp_dir}")
    if spec.bootfile:
        net.append(f"bootfile={spec.bootfile}")
    if spec.ssh_port:
        net.append(f"hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22")
    for guest, host in spec.forwards:
        if host:
            net.append(f"hostfwd=tcp:127.0.0.1:{host}-:{guest}")
    if spec.http_port:
        net.append(f"guestfwd=tcp:{GUEST_HTTP_IP}:{GUEST_HTTP_PORT}-cmd:{relay_command(spec.http_port)}")
    return ",".join(net)


def nic_arg(spec: VMSpec) -> str:
    """The NIC ``-device`` value: the iPXE ROM and bootindex=1 only for a network boot."""
    nic = f"{spec.nic_model},netdev=net0,id=nic0"
    if spec.boot == "network":
        if spec.nic_rom:
            nic += f",romfile={spec.nic_rom}"
        nic += ",bootindex=1"
    else:
        nic += ",romfile="
    return nic


def build_command(spec: VMSpec, run_dir: Path, accel: Accel, qemu: str = "qemu-system-x86_64") -> list[str]:
    """The QEMU command line for ``spec`` (pure: no side effects)."""
    rd = Path(run_dir)
    sd = runtime.socket_dir(rd)
    secure = spec.firmware == "uefi-secure"
    # Secure Boot's variables live in SMM-protected flash: SMM on, the flash writable only from SMM
    cmd = [qemu, "-name", f"livelab-{spec.name},process=livelab-{spec.name}",
           "-machine", f"{spec.machine},smm=on" if secure else spec.machine, *accel.qemu_args(spec.cpus),
           "-m", str(spec.memory_mib),
           "-nodefaults", "-no-user-config", "-nographic", "-monitor", "none",
           "-S"]
    if spec.firmware in UEFI_FIRMWARE:
        code, _template = UEFI_FIRMWARE[spec.firmware]
        if secure:
            cmd += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
        cmd += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                "-drive", f"if=pflash,format=raw,unit=1,file={rd / VARS_FILE}"]
    elif spec.firmware != "bios":
        raise LivelabError(f"unknown firmware {spec.firmware!r}")
    # serial console: a socket for pexpect, every byte also logged by QEMU itself
    cmd += ["-chardev", f"socket,id=serial0,path={sd / 'console.sock'},server=on,wait=off,"
                        f"logfile={rd / 'console.log'},logappend=on",
            "-serial", "chardev:serial0"]
    cmd += ["-qmp", f"unix:{sd / 'qmp.sock'},server=on,wait=off"]
    # virtio-serial ports (completion token, coreos.liveiso-success): each to a file
    if spec.virtio_ports:
        cmd += ["-device", "virtio-serial-pci,id=vser0"]
        for i, port in enumerate(spec.virtio_ports):
            cmd += ["-chardev", f"file,id=vport{i},path={rd / ('port-' + port)}",
                    "-device", f"virtserialport,bus=vser0.0,chardev=vport{i},name={port}"]
    # network: user mode, restricted; only the harness's services are reachable
    cmd += ["-netdev", netdev_arg(spec), "-device", nic_arg(spec)]
    # media
    if spec.cdrom:
        cmd += ["-drive", f"if=none,id=cd0,media=cdrom,format=raw,readonly=on,file={spec.cdrom}",
                "-device", "ide-cd,drive=cd0,id=cd0dev,bus=ide.0" + (",bootindex=1" if spec.boot == "cdrom" else "")]
    boot_disk = booted_disk(spec)
    for i, disk in enumerate(spec.disks):
        dev = f"virtio-blk-pci,drive=disk{i},id={DISK_ID.format(i)}"
        if disk.image:
            # an image (the live ISO) is a device that can be pulled, as a USB stick: on q35 a
            # device on the root bus cannot be unplugged, so it gets a PCIe root port of its own
            if spec.machine.startswith("q35"):
                cmd += ["-device", f"pcie-root-port,id=rp-disk{i},bus=pcie.0,chassis={i + 1}"]
                dev += f",bus=rp-disk{i}"
            drive = f"if=none,id=disk{i},format=raw,readonly=on,file={disk.image}"
        else:
            drive = f"if=none,id=disk{i},format=qcow2,file={rd / disk.file_name},discard=unmap"
        if disk.serial:
            dev += f",serial={disk.serial}"
        if disk.sector != 512:
            dev += f",logical_block_size={disk.sector},physical_block_size={disk.sector}"
        if disk is boot_disk:
            dev += ",bootindex=1"
        cmd += ["-drive", drive, "-device", dev]
    if spec.boot == "kernel" or spec.kernel:
        if not spec.kernel:
            raise LivelabError("direct kernel boot needs a kernel")
        cmd += ["-kernel", spec.kernel]
        if spec.initrds:
            cmd += ["-initrd", ",".join(spec.initrds)]
        if spec.append:
            cmd += ["-append", spec.append]
    for name, fw_file in spec.fw_cfg.items():
        cmd += ["-fw_cfg", f"name={name},file={fw_file}"]
    cmd += ["-rtc", "base=utc", "-device", "virtio-rng-pci"]
    cmd += list(spec.extra_args)
    return cmd


def isolation_problems(cmd: list[str]) -> list[str]:
    """Why a command line would let a guest reach beyond the harness's loopback services."""
    problems = []
    for i, arg in enumerate(cmd):
        if arg != "-netdev" or i + 1 >= len(cmd):
            continue
        opts = cmd[i + 1].split(",")
        kind = opts[0]
        if kind != "user":
            problems.append(f"netdev {kind!r} is not user mode")
            continue
        if "restrict=on" not in opts:
            problems.append("user netdev without restrict=on")
        for opt in opts:
            if opt.startswith("hostfwd=") and not re.match(r"hostfwd=tcp:127\.0\.0\.1:\d+-:\d+$", opt):
                problems.append(f"{opt} is not bound to 127.0.0.1")
            if opt.startswith("guestfwd="):
                m = re.search(r"-cmd:(.*)$", cmd[i + 1])
                target = m.group(1) if m else ""
                if not re.search(r"127\.0\.0\.1:\d+$", target):
                    problems.append(f"guestfwd relays to {target!r}, not 127.0.0.1")
    if any(a in ("-net", "-nic") for a in cmd):
        problems.append("legacy -net/-nic option")
    return problems
