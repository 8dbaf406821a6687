"""``livelab doctor``: can this host run livelab?

Looks for what the harness uses at run time -- QEMU and ``qemu-img``, the OVMF firmware, the
iPXE ROM of the NIC, PXELINUX, GnuPG, ``ignition-validate`` -- and prints one line per check
(``ok`` / ``missing``, with what was looked for), then one install command for the missing
packages (``apt-get`` on Debian/Ubuntu, ``dnf`` on Fedora/RHEL; both package names elsewhere).
KVM is probed with the harness's real probe guest; KVM unusable is a warning (TCG is used).
Exit status 0 when nothing required is missing, else 1.  The verb itself is ``harness/cli/doctor.py``.
"""
from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable

from .boot.pxe import LDLINUX, PXELINUX
from .errors import LivelabError
from .vm import accel
from .vm.spec import IPXE_ROM_DIR, OVMF_CODE, OVMF_SECURE_CODE, OVMF_SECURE_VARS, OVMF_VARS

OS_RELEASE = "/etc/os-release"
# QEMU's default ROM for the harness's NIC (virtio-net-pci); Debian's QEMU finds it in IPXE_ROM_DIR
IPXE_ROM = os.path.join(IPXE_ROM_DIR, "efi-virtio.rom")


@dataclass
class Result:
    what: str                 # what was looked for: a command or a file
    kind: str                 # "command" | "file" | "kvm"
    ok: bool
    required: bool
    detail: str               # where it was found, or why not
    debian: str | None = None   # the package that provides it
    fedora: str | None = None


def _table() -> list:
    """(what, kind, Debian package, Fedora package, required): read at call time (LIVELAB_QEMU)."""
    return [
        (accel.QEMU_BINARY, "command", "qemu-system-x86", "qemu-system-x86-core", True),
        ("qemu-img", "command", "qemu-utils", "qemu-img", True),
        (OVMF_CODE, "file", "ovmf", "edk2-ovmf", True),
        (OVMF_VARS, "file", "ovmf", "edk2-ovmf", True),
        (OVMF_SECURE_CODE, "file", "ovmf", "edk2-ovmf", True),     # --firmware uefi-secure
        (OVMF_SECURE_VARS, "file", "ovmf", "edk2-ovmf", True),
        (IPXE_ROM, "file", "ipxe-qemu", "ipxe-roms-qemu", True),
        (PXELINUX, "file", "pxelinux", "syslinux-tftpboot", True),
        (LDLINUX, "file", "syslinux-common", "syslinux-tftpboot", True),
        ("gpg", "command", "gpg", "gnupg2", True),      # imports keyrings (artifacts/verify.py)
        ("gpgv", "command", "gpgv", "gnupg2", True),    # checks signatures
        # optional: without it the harness validates Ignition configs with its structural check
        ("ignition-validate", "command", "ignition", "ignition-validate", False),
    ]


def run_checks(which: Callable = shutil.which, exists: Callable = os.path.exists,
               kvm_probe: Callable | None = accel.probe_kvm) -> list[Result]:
    """Every check of the table, then KVM (``kvm_probe=None`` skips the probe)."""
    results = []
    for what, kind, deb, fed, required in _table():
        if kind == "command":
            found = which(what)
            detail = found or "not on PATH"
        else:
            found = exists(what)
            detail = "present" if found else "no such file"
        results.append(Result(what, kind, bool(found), required, detail, deb, fed))
    results.append(_kvm(kvm_probe, qemu_ok=results[0].ok))
    return results


def _kvm(kvm_probe: Callable | None, qemu_ok: bool) -> Result:
    if kvm_probe is None:
        return Result("KVM", "kvm", False, False, "not probed (--no-kvm-probe)")
    if not qemu_ok:
        return Result("KVM", "kvm", False, False, "not probed: QEMU missing")
    try:
        why_not = kvm_probe()
    except LivelabError as exc:
        why_not = exc.one_line()
    if why_not is None:
        return Result("KVM", "kvm", True, False, "a probe guest ran under -accel kvm")
    return Result("KVM", "kvm", False, False, why_not)


def distribution(os_release: str = OS_RELEASE) -> tuple:
    """(family, ID) from os-release: family "debian", "fedora" or None (unknown)."""
    fields = {}
    try:
        with open(os_release) as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep and not key.startswith("#"):
                    try:
                        fields[key] = " ".join(shlex.split(value))
                    except ValueError:
                        fields[key] = value.strip("\"'")
    except OSError:
        return None, "unknown"
    os_id = fields.get("ID", "unknown").lower()
    for name in [os_id, *fields.get("ID_LIKE", "").lower().split()]:
        if name in ("debian", "ubuntu"):
            return "debian", os_id
        if name in ("fedora", "rhel", "centos"):
            return "fedora", os_id
    return None, os_id


def _unique(names: Iterable[str | None]) -> list:
    return list(dict.fromkeys(n for n in names if n))


def install_hint(results: list[Result], family: str | None) -> str | None:
    """One install command for the missing packages, or None when nothing is missing."""
    missing = [r for r in results if not r.ok and (r.debian or r.fedora)]
    if not missing:
        return None
    sudo = "" if os.geteuid() == 0 else "sudo "
    if family == "debian":
        return f"{sudo}apt-get install -y " + " ".join(_unique(r.debian for r in missing))
    if family == "fedora":
        return f"{sudo}dnf install -y " + " ".join(_unique(r.fedora for r in missing))
    return "packages (Debian / Fedora): " + "; ".join(
        _unique(f"{r.what}: {r.debian} / {r.fedora}" for r in missing))


def _line(r: Result) -> str:
    if r.kind == "kvm":
        if r.ok:
            return f"  ok       KVM usable ({r.detail})"
        if r.detail.startswith("not probed"):
            return f"  skipped  KVM {r.detail}"
        return f"  warning  KVM not usable: {r.detail}; TCG will be used (slower)"
    looked = f"{r.what} on PATH" if r.kind == "command" else r.what
    if r.ok:
        return f"  ok       {looked}" + (f": {r.detail}" if r.kind == "command" else "")
    status = "missing " if r.required else "missing (optional)"
    return f"  {status} {looked} (Debian {r.debian}, Fedora {r.fedora})"
