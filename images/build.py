#!/usr/bin/env python3
"""Build livelab's stand-in live OS and publish it as an FCOS / Flatcar mirror tree.

Run as ``python3 images/build.py [--force] [--out DIR]`` from the repository root (or
``make images`` / ``livelab images build``).  Only the Python standard library is used.

Stages (see images/README.md):
  base     mmdebstrap tarball of Debian 12 packages, cached under images/cache/ keyed by the
           package list (packages.txt) and the mmdebstrap options;
  rootfs   unpack, apply images/overlay/rootfs, run images/customize.sh in a chroot, trim;
  initrd   dracut (inside the chroot) with the project's own modules (overlay/dracut/);
  squashfs mksquashfs + rootfs.img (newc cpio, root.squashfs first);
  iso      isolinux + GRUB EFI live ISO with Ignition and kargs embed areas;
  publish  mirror tree in upstream layouts, OpenPGP-signed, plus metadata files.

The finished output directory carries ``build-info.json`` with the recipe key; an unchanged
recipe re-runs in well under 5 s.  Everything is built in a temporary directory beside the
output and renamed into place only when complete.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import hashlib
import json
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = HERE / "out"
CACHE = HERE / "cache"
OVERLAY = HERE / "overlay"
PACKAGES_FILE = HERE / "packages.txt"

# Versions published in the mirror.  Every build of a distribution shares the same bytes
# (hard links); only names, metadata and signatures differ.
FCOS_STREAMS = {
    # stream: [versions oldest -> newest]; the newest is the stream's current release.
    "stable": ["41.20250315.3.0", "42.20250901.3.0"],
    "testing": ["42.20250915.2.0"],
    "next": ["43.20250920.1.0"],
}
FLATCAR_CHANNELS = {
    "stable": "4081.2.1",
    "beta": "4152.1.0",
    "alpha": "4186.0.0",
    "lts": "3815.2.5",
}
# Ignition config spec versions this image's Ignition (Debian 2.14) reads: 3.0.0-3.3.0 and
# 3.4.0-experimental.  The "newest stable" spec is what the harness should generate.
IGNITION_SPEC = "3.3.0"
IGNITION_SPECS_ACCEPTED = ["3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0-experimental"]

# Host tools: command -> Debian package.
HOST_TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "mksquashfs": "squashfs-tools",
    "unsquashfs": "squashfs-tools",
    "xorriso": "xorriso",
    "gpg": "gpg",
    "gpgv": "gpgv",
    "cpio": "cpio",
    "xz": "xz-utils",
    "zstd": "zstd",
    "mformat": "mtools",
    "mcopy": "mtools",
    "mkfs.vfat": "dosfstools",
    "grub-mkimage": "grub-common",
    "chroot": "coreutils",
    "tar": "tar",
}
HOST_FILES = {
    "/usr/lib/ISOLINUX/isolinux.bin": "isolinux",
    "/usr/lib/ISOLINUX/isohdpfx.bin": "isolinux",
    "/usr/lib/syslinux/modules/bios/ldlinux.c32": "syslinux-common",
    "/usr/lib/grub/x86_64-efi/moddep.lst": "grub-efi-amd64-bin",
}

ISO_KARGS_AREA = 1139  # bytes, as in real FCOS ISOs
IGNITION_AREA = 256 * 1024
STREAM_HASH_CHUNK = 2 * 1024 * 1024


class BuildError(Exception):
    """A one-line build failure."""


# --------------------------------------------------------------------------- progress

class Progress:
    """Phase names with elapsed time; a live ticker on a terminal, plain lines otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.t0 = time.monotonic()
        self.phase = None
        self.phase_t0 = 0.0
        self.times: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = None

    def _line(self, text: str, end: str = "\n") -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + end)
        else:
            self.stream.write(text + end)
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            if self.phase:
                now = time.monotonic()
                self._line(f"  [{now - self.t0:6.1f}s] {self.phase} ... {now - self.phase_t0:5.1f}s", end="")

    def start(self, phase: str) -> None:
        self.end()
        self.phase = phase
        self.phase_t0 = time.monotonic()
        self._line(f"  [{self.phase_t0 - self.t0:6.1f}s] {phase} ...", end="" if self.tty else "\n")
        if self.tty and self._thread is None:
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()

    def end(self, note: str = "") -> None:
        if self.phase:
            now = time.monotonic()
            dt = now - self.phase_t0
            self.times[self.phase] = round(dt, 1)
            self._line(f"  [{now - self.t0:6.1f}s] {self.phase} done in {dt:.1f}s{(' ' + note) if note else ''}")
            self.phase = None

    def info(self, text: str) -> None:
        self._line("  " + text)

    def close(self) -> None:
        self.end()
        self._stop.set()


# --------------------------------------------------------------------------- helpers

def run(cmd, *, cwd=None, env=None, input=None, log=None, check=True, capture=False):
    """Run a command; on failure raise BuildError with the tail of its output."""
    res = subprocess.run(cmd, cwd=cwd, env=env, input=input,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = res.stdout or b""
    if log is not None:
        with open(log, "ab") as f:
            f.write(b"$ " + " ".join(map(str, cmd)).encode() + b"\n" + out + b"\n")
    if check and res.returncode != 0:
        tail = out.decode(errors="replace").strip().splitlines()[-15:]
        raise BuildError(f"{Path(str(cmd[0])).name} failed (exit {res.returncode}): " + " | ".join(tail))
    return out if capture else res.returncode


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_list() -> list[str]:
    pkgs = []
    for line in PACKAGES_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pkgs.append(line)
    return pkgs


def host_apt_mirrors() -> list[str]:
    """One-line sources for bookworm, bookworm-updates, bookworm-security from the host's config."""
    debian = "http://deb.debian.org/debian"
    security = "http://deb.debian.org/debian-security"
    texts = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            texts.append(p.read_text())
        except OSError:
            pass
    for text in texts:
        for line in text.splitlines():
            words = line.replace("[", " [").split()
            uris = []
            if line.startswith("URIs:"):
                uris = words[1:]
            elif line.startswith("deb ") and not "[" in line:
                uris = words[1:2]
            for uri in uris:
                if uri.rstrip("/").endswith("/debian-security"):
                    security = uri.rstrip("/")
                elif uri.rstrip("/").endswith("/debian"):
                    debian = uri.rstrip("/")
    return [f"deb {debian} bookworm main", f"deb {debian} bookworm-updates main",
            f"deb {security} bookworm-security main"]


DPKG_EXCLUDES = [
    "/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/locale/*",
    "/usr/share/lintian/*", "/usr/share/linda/*", "/usr/share/groff/*", "/usr/share/bug/*",
    "/usr/share/i18n/*", "/usr/share/zsh/*", "/usr/share/fish/*",
]


def mmdebstrap_cmd(target: Path) -> list[str]:
    pkgs = package_list()
    cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar",
           "--aptopt=APT::Install-Recommends \"false\"",
           "--aptopt=Acquire::Retries \"3\"",
           "--include=" + ",".join(pkgs)]
    for pat in DPKG_EXCLUDES:
        cmd.append(f"--dpkgopt=path-exclude={pat}")
    # The kernel's postinst would run a generic dracut (a minute of work) that we throw away:
    # a dummy dracut first in dpkg's PATH skips it.
    cmd.append("--essential-hook=mkdir -p \"$1/usr/local/sbin\" && printf '#!/bin/sh\\nexit 0\\n' > \"$1/usr/local/sbin/dracut\" && chmod 755 \"$1/usr/local/sbin/dracut\"")
    cmd.append("--customize-hook=rm -f \"$1/usr/local/sbin/dracut\" \"$1\"/boot/initrd.img-* && rm -rf \"$1\"/var/cache/apt/* \"$1\"/var/lib/apt/lists/*")
    cmd += ["bookworm", str(target)]
    cmd += host_apt_mirrors()
    return cmd


def base_key() -> str:
    h = hashlib.sha256()
    h.update(json.dumps(mmdebstrap_cmd(Path("TARGET")), sort_keys=True).encode())
    return h.hexdigest()[:16]
