"""PXELINUX boots over QEMU's built-in TFTP, as the FCOS docs write them.

``pxelinux_cfg`` renders ``pxelinux.cfg/default`` (``KERNEL``, ``APPEND initrd=a,b ...``,
``IPAPPEND 2``); ``populate_tftp`` lays out a TFTP root with Debian's ``lpxelinux.0`` (PXELINUX
with HTTP support) and ``ldlinux.c32`` and links (never copies) the verified cached artifacts.

PXELINUX, its ``ldlinux.c32`` and the config come over QEMU's TFTP; the kernel and initrds are
named by ``http://`` URLs of the harness's server when ``base_url`` is given.  Under TCG, TFTP
moves about 1 MB/s (one 1.4 KiB block per round trip through the emulated firmware): the 150 MB
of an FCOS kernel + initramfs + rootfs would take minutes, HTTP takes seconds.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..errors import LivelabError

PXELINUX = "/usr/lib/PXELINUX/pxelinux.0"
LDLINUX = "/usr/lib/syslinux/modules/bios/ldlinux.c32"


def pxelinux_cfg(kernel: str, initrds: Sequence[str], kargs: Sequence[str], base_url: str = "") -> str:
    """The ``pxelinux.cfg/default`` of the FCOS live-booting docs (files under ``base_url``)."""
    if base_url:
        base = base_url.rstrip("/") + "/"
        kernel = base + kernel
        initrds = [base + i for i in initrds]
    append = " ".join([f"initrd={','.join(initrds)}", *kargs]) if initrds else " ".join(kargs)
    return ("DEFAULT pxeboot\n"
            "TIMEOUT 20\n"
            "PROMPT 0\n"
            "LABEL pxeboot\n"
            f"    KERNEL {kernel}\n"
            f"    APPEND {append}\n"
            "IPAPPEND 2\n")


def link_into(directory: Path, files: dict[str, Path]) -> None:
    """Make ``directory/<name>`` point at each verified file (hard link, else symlink)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        dst = directory / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        try:
            os.link(src, dst)
        except OSError:
            dst.symlink_to(Path(src).resolve())


def populate_tftp(tftp_dir: Path, files: dict[str, Path], cfg_text: str) -> str:
    """Fill a TFTP root for PXELINUX; returns the DHCP bootfile name."""
    for needed, pkg in ((PXELINUX, "pxelinux"), (LDLINUX, "syslinux-common")):
        if not os.path.exists(needed):
            raise LivelabError(f"{needed} missing: apt-get install {pkg}")
    tftp_dir.mkdir(parents=True, exist_ok=True)
    for src in (PXELINUX, LDLINUX):
        shutil.copyfile(src, tftp_dir / os.path.basename(src))
    link_into(tftp_dir, files)
    (tftp_dir / "pxelinux.cfg").mkdir(exist_ok=True)
    (tftp_dir / "pxelinux.cfg" / "default").write_text(cfg_text)
    return os.path.basename(PXELINUX)
