#!/usr/bin/env python3
"""Build livelab's stand-in live OS and publish it as an FCOS / Flatcar mirror tree.

Run as ``python3 images/build.py [--force] [--out DIR]`` from the repository root (or
``make images`` / ``livelab images build``).  Only the Python standard library is used.

Stages (see images/README.md):
  ignition upstream Ignition v2.23.0 built from source (images/ignition_src.py), cached in the
           user's cache directory keyed by its source pin;
  base     mmdebstrap tarball of Debian 12 packages, cached under images/cache/ keyed by the
           package list (packages.txt) and the mmdebstrap options;
  rootfs   unpack, apply images/overlay/rootfs, run images/customize.sh in a chroot, trim;
  initrd   dracut (inside the chroot) with the project's own modules (overlay/dracut/);
  squashfs mksquashfs + rootfs.img (newc cpio, root.squashfs first);
  iso      isolinux + signed shim/GRUB EFI live ISO with Ignition and kargs embed areas;
  publish  mirror tree in upstream layouts, OpenPGP-signed, plus metadata files.

The finished output directory carries ``build-info.json`` with the recipe key; an unchanged
recipe re-runs in well under 5 s.  Everything is built in a temporary directory beside the
output and renamed into place only when complete.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gzip
import hashlib
import html
import importlib.util
import json
import os
import re
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
IGNITION_SRC_FILE = HERE / "ignition_src.py"


def _load_ignition_src():
    """images/ignition_src.py, loaded by path (build.py also runs loaded by path from the CLI)."""
    spec = importlib.util.spec_from_file_location("livelab_images_ignition_src", IGNITION_SRC_FILE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


ignition_src = _load_ignition_src()

# Versions published in the mirror.  Every build of a distribution shares the same bytes
# (hard links); only names, metadata and signatures differ.
FCOS_STREAMS = {
    # stream: [versions oldest -> newest]; the newest is the stream's current release.
    "stable": ["41.20250315.3.0", "42.20250901.3.0"],
    # testing has a history to bisect (`livelab bisect`): six releases, the planted regression in three
    "testing": ["42.20250707.2.0", "42.20250721.2.0", "42.20250804.2.0", "42.20250818.2.0", "42.20250901.2.0",
                "42.20250915.2.0"],
    "next": ["43.20250920.1.0"],
}
FLATCAR_CHANNELS = {
    # channel: its current release
    "stable": "4081.2.1",
    "beta": "4152.1.0",
    "alpha": "4186.0.0",
    "lts": "3815.2.5",
}
# channel: its older releases, oldest first (alpha has a history to bisect, with the planted regression)
FLATCAR_HISTORY = {
    "alpha": ["4012.0.0", "4054.0.0", "4081.0.0", "4116.0.0", "4152.0.0"],
}
# The planted regression (images/README.md, "Release history"): the root filesystem of these releases
# lacks /etc/sudoers.d/coreos, so user core has no passwordless sudo and the `base` scenario's check
# "core has passwordless sudo" fails.  Introduced by the first of each list, fixed by the current release.
REGRESSION_FILE = "etc/sudoers.d/coreos"
REGRESSED = {
    "fcos": ["42.20250804.2.0", "42.20250818.2.0", "42.20250901.2.0"],
    "flatcar": ["4081.0.0", "4116.0.0", "4152.0.0"],
}


def flatcar_releases(channel: str) -> list[str]:
    """Every release of a Flatcar channel, oldest first; the last is its current one."""
    return [*FLATCAR_HISTORY.get(channel, []), FLATCAR_CHANNELS[channel]]
# Ignition config spec versions this image's Ignition (upstream v2.23.0, built from source) reads:
# 3.0.0-3.5.0 and 3.6.0-experimental.  The "newest stable" spec is what the harness should generate;
# each mirror version gets the lower of this and what the real release of that version reads.
IGNITION_SPEC = "3.5.0"
IGNITION_SPECS_ACCEPTED = ["3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0", "3.6.0-experimental"]

# Newest stable spec the REAL release of each mirror version reads (harness/data/ignition-specs.yaml;
# tests/unit/test_ignition_build.py keeps the two in step).  The stand-in's version of it reads the
# lower of this and IGNITION_SPEC, so tests see the same refusals as with real images.
REAL_MAX_SPEC = {
    "fcos": {"41.20250315.3.0": "3.4.0", "42.20250901.3.0": "3.5.0", "42.20250915.2.0": "3.5.0",
             "43.20250920.1.0": "3.5.0", "42.20250707.2.0": "3.5.0", "42.20250721.2.0": "3.5.0",
             "42.20250804.2.0": "3.5.0", "42.20250818.2.0": "3.5.0", "42.20250901.2.0": "3.5.0"},
    "flatcar": {"4081.2.1": "3.4.0", "4152.1.0": "3.4.0", "4186.0.0": "3.4.0", "3815.2.5": "3.4.0",
                "4012.0.0": "3.4.0", "4054.0.0": "3.4.0", "4081.0.0": "3.4.0", "4116.0.0": "3.4.0",
                "4152.0.0": "3.4.0"},
}


def _spec_tuple(spec: str) -> tuple[int, ...]:
    return tuple(int(x) for x in spec.split("-")[0].split("."))


def standin_spec(os_id: str, version: str) -> str:
    """The stand-in's spec for one mirror version: the lower of IGNITION_SPEC and the real release's."""
    real = REAL_MAX_SPEC[os_id][version]
    return min(real, IGNITION_SPEC, key=_spec_tuple)


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
    "lzop": "lzop",
    "mformat": "mtools",
    "mcopy": "mtools",
    "mkfs.vfat": "dosfstools",
    "chroot": "coreutils",
    "tar": "tar",
}
HOST_FILES = {
    "/usr/lib/ISOLINUX/isolinux.bin": "isolinux",
    "/usr/lib/ISOLINUX/isohdpfx.bin": "isolinux",
    "/usr/lib/syslinux/modules/bios/ldlinux.c32": "syslinux-common",
}
# The ISO's UEFI boot chain, Debian 12's signed binaries (images/README.md, "Secure Boot"): shim
# signed by Microsoft's UEFI CA, and GRUB signed by Debian's key (which shim trusts).  ISO path ->
# (host file, Debian package).  Their bytes are part of the recipe key.
EFI_BOOT_FILES = {
    "EFI/BOOT/BOOTX64.EFI": ("/usr/lib/shim/shimx64.efi.signed", "shim-signed"),
    "EFI/BOOT/grubx64.efi": ("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", "grub-efi-amd64-signed"),
    "EFI/BOOT/mmx64.efi": ("/usr/lib/shim/mmx64.efi.signed", "shim-helpers-amd64-signed"),
}
HOST_FILES.update({host: pkg for host, pkg in EFI_BOOT_FILES.values()})
# Debian's signed GRUB reads its configuration from its built-in prefix, /EFI/debian on the device it
# was loaded from (the El Torito image); this stub there chains to EFI/fedora/grub.cfg on the ISO,
# the file that carries the kernel arguments (coreos/kargs.json names it).
GRUB_STUB_CFG = ("search --no-floppy --set=root --file /coreos/igninfo.json\n"
                 "set prefix=($root)/EFI/fedora\n"
                 "configfile ($root)/EFI/fedora/grub.cfg\n")

ISO_KARGS_AREA = 1139  # bytes, as in real FCOS ISOs
IGNITION_AREA = 256 * 1024
STREAM_HASH_CHUNK = 2 * 1024 * 1024


class BuildError(Exception):
    """A one-line build failure."""


# --------------------------------------------------------------------------- progress

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")
HEARTBEAT_S = 10.0      # without a terminal: the longest a stage goes without a line


def _clip(text: str, width: int = 100) -> str:
    text = " ".join(_ANSI.sub("", text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


class Progress:
    """Stage names with elapsed time, and what the stage is doing now (``note``: the last
    interesting line of its commands).

    On a terminal a ticker redraws the stage's line every second; otherwise a heartbeat line is
    printed whenever nothing was for ``heartbeat_s`` seconds.  A milestone (a new step inside a
    stage) is printed at once in both forms."""

    def __init__(self, stream=sys.stderr, heartbeat_s: float = HEARTBEAT_S, tty: bool | None = None):
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.heartbeat_s = heartbeat_s
        self.t0 = time.monotonic()
        self.phase = None
        self.phase_t0 = 0.0
        self.detail = ""
        self.times: dict[str, float] = {}
        self._last_out = self.t0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None

    def _line(self, text: str, end: str = "\n") -> None:
        with self._lock:
            if self.tty:
                self.stream.write("\r\033[K" + text + end)
            else:
                self.stream.write(text + end)
            self.stream.flush()
            self._last_out = time.monotonic()

    def _stamp(self, now: float) -> str:
        return f"  [{now - self.t0:6.1f}s]"

    def _tick(self) -> None:
        while not self._stop.wait(1.0 if self.tty else min(1.0, self.heartbeat_s)):
            with self._lock:
                if not self.phase:
                    continue
                now = time.monotonic()
                detail = f"  {self.detail}" if self.detail else ""
                if self.tty:
                    width = shutil.get_terminal_size((100, 24)).columns - 1
                    text = f"{self._stamp(now)} {self.phase} ... {now - self.phase_t0:5.1f}s{detail}"
                    self._line(text[:width], end="")
                elif now - self._last_out >= self.heartbeat_s:
                    self._line(f"{self._stamp(now)} {self.phase} ... {now - self.phase_t0:.0f}s so far"
                               + (f": {self.detail}" if self.detail else ""))

    def start(self, phase: str) -> None:
        self.end()
        with self._lock:
            self.phase = phase
            self.detail = ""
            self.phase_t0 = time.monotonic()
            self._line(f"{self._stamp(self.phase_t0)} {phase} ...", end="" if self.tty else "\n")
            if self._thread is None:
                self._thread = threading.Thread(target=self._tick, daemon=True)
                self._thread.start()

    def end(self, note: str = "") -> None:
        with self._lock:
            if self.phase:
                now = time.monotonic()
                dt = now - self.phase_t0
                self.times[self.phase] = round(dt, 1)
                self._line(f"{self._stamp(now)} {self.phase} done in {dt:.1f}s{(' ' + note) if note else ''}")
                self.phase = None
                self.detail = ""

    def info(self, text: str) -> None:
        self._line("  " + text)

    def note(self, text: str, milestone: bool = False) -> None:
        """What the stage does now (the ticker and the next heartbeat show it); a milestone is
        printed at once."""
        text = _clip(text)
        if not text:
            return
        with self._lock:
            self.detail = text
            if milestone:
                self._line(f"{self._stamp(time.monotonic())} {self.phase or 'images'}: {text}")

    def watch(self, status=None):
        """A line handler for ``run``: each line through ``status.feed`` (a ``(text, milestone)``
        or None), or, without one, each line itself as the stage's detail."""
        def on_line(line: str) -> None:
            if status is None:
                self.note(line)
                return
            got = status.feed(line)
            if got:
                self.note(*got)
        return on_line

    def close(self) -> None:
        self.end()
        self._stop.set()


class MmdebstrapStatus:
    """What ``mmdebstrap --verbose`` is doing, from its lines: its own steps (``I: ...``, printed
    at once) and apt's and dpkg's package lines counted: download, unpack, configure."""

    _TOTAL = re.compile(r"(\d+) upgraded, (\d+) newly installed")
    _GET = re.compile(r"^Get:(\d+) \S+ \S+ (.*?) \[")
    _FETCHED = re.compile(r"^Fetched (.+) in (.+)")

    def __init__(self):
        self.total = 0
        self.counts = {"download": 0, "unpack": 0, "configure": 0}

    def _count(self, what: str, pkg: str) -> tuple[str, bool]:
        self.counts[what] += 1
        of = f"/{self.total}" if self.total else ""
        return f"{what} {self.counts[what]}{of}: {pkg}", False

    def feed(self, line: str):
        line = _ANSI.sub("", line).strip()
        if line.startswith(("I: ", "W: ", "E: ")):
            if line.startswith("I: "):
                self.total = 0
                self.counts = dict.fromkeys(self.counts, 0)
            return line[3:], True
        m = self._TOTAL.search(line)
        if m:
            self.total = int(m.group(2))
            return f"{self.total} packages to install", True
        m = self._GET.match(line)
        if m:   # "Get:7 URL bookworm/main amd64 libc6 amd64 2.36-9 [2757 kB]", or an index ("... InRelease [151 kB]")
            words = m.group(2).split()
            self.counts["download"] = int(m.group(1)) - 1
            return self._count("download", words[1] if len(words) >= 4 else " ".join(words))
        if line.startswith("Unpacking "):
            return self._count("unpack", line.split()[1])
        if line.startswith("Setting up "):
            return self._count("configure", line.split()[2])
        m = self._FETCHED.match(line)
        if m:
            return f"downloaded {m.group(1)} in {m.group(2)}", True
        return None


class SquashfsStatus:
    """mksquashfs's progress bar (``[===/  ] 1234/5678  21%``), one ``\\r``-separated update at a time."""

    _BAR = re.compile(r"\]\s+(\d+)/(\d+)\s+(\d+)%")

    def __init__(self):
        self.percent = -1

    def feed(self, line: str):
        m = self._BAR.search(line)
        if not m:
            return None
        percent = int(m.group(3))
        step = percent // 25 != self.percent // 25     # each quarter is printed at once
        self.percent = percent
        return f"mksquashfs {percent}% ({m.group(1)}/{m.group(2)} blocks)", step and percent > 0


# --------------------------------------------------------------------------- helpers


def _resolve_in(root: Path, rel: str) -> str | None:
    """``rel`` with every symlink followed as it would be inside ``root`` (a chroot's view: an
    absolute link target starts again at ``root``); None for a loop or a dangling link."""
    todo = [p for p in rel.split("/") if p]
    done: list[str] = []
    for _ in range(256):
        if not todo:
            return "/".join(done)
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        q = root.joinpath(*done, part)
        if q.is_symlink():
            target = os.readlink(q)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p] + todo
            continue
        if not q.exists():
            return None
        done.append(part)
    return None

_SEGMENT = re.compile(rb"[\r\n]")


def run(cmd, *, cwd=None, env=None, input=None, log=None, check=True, capture=False, on_line=None):
    """Run a command; on failure raise BuildError with the tail of its output.  ``on_line`` gets
    each line of its output (stdout and stderr; a ``\\r`` ends a line too: progress bars) as it
    comes."""
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.PIPE if input is not None else None,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        raise BuildError(f"cannot run {cmd[0]}: {e.strerror}") from None
    if input is not None:
        def feed():
            with contextlib.suppress(OSError):
                proc.stdin.write(input)
                proc.stdin.close()
        threading.Thread(target=feed, daemon=True).start()
    chunks, pending = [], b""
    while True:
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        chunks.append(chunk)
        if on_line is not None:
            *lines, pending = _SEGMENT.split(pending + chunk)
            for line in lines:
                if line.strip():
                    on_line(line.decode(errors="replace"))
    if on_line is not None and pending.strip():
        on_line(pending.decode(errors="replace"))
    proc.stdout.close()
    returncode = proc.wait()
    out = b"".join(chunks)
    if log is not None:
        with open(log, "ab") as f:
            f.write(b"$ " + " ".join(map(str, cmd)).encode() + b"\n" + out + b"\n")
    if check and returncode != 0:
        tail = [ln for ln in re.split(r"[\r\n]", out.decode(errors="replace")) if ln.strip()][-15:]
        raise BuildError(f"{Path(str(cmd[0])).name} failed (exit {returncode}): " + " | ".join(tail))
    return out if capture else returncode


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
    """One-line sources for bookworm, bookworm-updates, bookworm-security and bookworm-backports
    (the kernel, packages.txt) from the host's config."""
    debian = "http://deb.debian.org/debian"
    security = "http://deb.debian.org/debian-security"
    texts = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        with contextlib.suppress(OSError):
            texts.append(p.read_text())
    for text in texts:
        for line in text.splitlines():
            words = line.replace("[", " [").split()
            uris = []
            if line.startswith("URIs:"):
                uris = words[1:]
            elif line.startswith("deb ") and "[" not in line:
                uris = words[1:2]
            for uri in uris:
                if uri.rstrip("/").endswith("/debian-security"):
                    security = uri.rstrip("/")
                elif uri.rstrip("/").endswith("/debian"):
                    debian = uri.rstrip("/")
    return [f"deb {debian} bookworm main", f"deb {debian} bookworm-updates main",
            f"deb {security} bookworm-security main", f"deb {debian} bookworm-backports main"]


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
    cmd.append("--essential-hook=mkdir -p \"$1/usr/local/sbin\" && "
               "printf '#!/bin/sh\\nexit 0\\n' > \"$1/usr/local/sbin/dracut\" && "
               "chmod 755 \"$1/usr/local/sbin/dracut\"")
    cmd.append("--customize-hook=rm -f \"$1/usr/local/sbin/dracut\" \"$1\"/boot/initrd.img-* && "
               "rm -rf \"$1\"/var/cache/apt/* \"$1\"/var/lib/apt/lists/*")
    cmd += ["bookworm", str(target)]
    cmd += host_apt_mirrors()
    return cmd


def base_key() -> str:
    h = hashlib.sha256()
    h.update(json.dumps(mmdebstrap_cmd(Path("TARGET")), sort_keys=True).encode())
    return h.hexdigest()[:16]


def recipe_key() -> str:
    """Hash of every recipe input: this script, customize.sh, package list, overlay tree."""
    h = hashlib.sha256()
    inputs = [HERE / "build.py", HERE / "customize.sh", PACKAGES_FILE, IGNITION_SRC_FILE]
    inputs += sorted(p for p in OVERLAY.rglob("*") if p.is_file() or p.is_symlink())
    for p in inputs:
        rel = p.relative_to(HERE).as_posix()
        st = p.lstat()
        h.update(rel.encode() + b"\0" + oct(stat.S_IMODE(st.st_mode)).encode() + b"\0")
        if p.is_symlink():
            h.update(os.readlink(p).encode())
        else:
            h.update(p.read_bytes())
        h.update(b"\0")
    h.update(json.dumps([FCOS_STREAMS, FLATCAR_CHANNELS, IGNITION_SPEC, base_key(), ignition_src.pin()],
                        sort_keys=True).encode())
    # the host's signed shim and GRUB go into the ISO as they are: a new package version is a new recipe
    for host, _pkg in EFI_BOOT_FILES.values():
        h.update(sha256_file(Path(host)).encode() if Path(host).exists() else b"missing")
    return h.hexdigest()[:20]


def check_host_tools() -> None:
    missing = {}
    for tool, pkg in HOST_TOOLS.items():
        if shutil.which(tool) is None:
            missing.setdefault(pkg, []).append(tool)
    for path, pkg in HOST_FILES.items():
        if not Path(path).exists():
            missing.setdefault(pkg, []).append(path)
    if missing:
        pkgs = sorted(missing)
        what = ", ".join(f"{', '.join(v)} (Debian package {k})" for k, v in sorted(missing.items()))
        raise BuildError(f"missing host tools: {what}; install with: apt-get install -y {' '.join(pkgs)}")
    if os.geteuid() != 0:
        raise BuildError("the image build needs root (mmdebstrap --mode=root, chroot, loop-free but "
                         "ownership-preserving unpack); run it as root")


def directory_page(path: str, dirs: list[str]) -> str:
    """A web server's page of a directory that holds ``dirs``: links ``./<name>/``, as the Flatcar
    release server's board directories link to their releases."""
    links = "".join(f'<a href="./{html.escape(d)}/">{html.escape(d)}/</a>\n' for d in dirs)
    return (f"<html>\n<head><title>Index of {html.escape(path)}</title></head>\n<body>\n"
            f"<h1>Index of {html.escape(path)}</h1><hr><pre><a href=\"../\">../</a>\n{links}</pre><hr>"
            "</body>\n</html>\n")


# --------------------------------------------------------------------------- cpio (newc)

def _newc_header(name: str, mode: int, size: int, ino: int, mtime: int = 0, nlink: int = 1) -> bytes:
    namez = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, nlink, mtime, size, 0, 0, 0, 0, len(namez), 0]
    hdr = b"070701" + b"".join(b"%08X" % f for f in fields) + namez
    hdr += b"\0" * ((4 - len(hdr) % 4) % 4)
    return hdr


class NewcWriter:
    """Minimal newc (SVR4, no CRC) archive writer; files are streamed from disk."""

    def __init__(self, f):
        self.f = f
        self.ino = 1

    def _pad(self, n: int) -> None:
        if n % 4:
            self.f.write(b"\0" * (4 - n % 4))

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        self.f.write(_newc_header(name, stat.S_IFDIR | mode, 0, self.ino, nlink=2))
        self.ino += 1

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.f.write(_newc_header(name, stat.S_IFREG | mode, len(data), self.ino))
        self.ino += 1
        self.f.write(data)
        self._pad(len(data))

    def add_file(self, name: str, path: Path, mode: int = 0o644) -> None:
        size = path.stat().st_size
        self.f.write(_newc_header(name, stat.S_IFREG | mode, size, self.ino))
        self.ino += 1
        with open(path, "rb") as src:
            shutil.copyfileobj(src, self.f, 1 << 20)
        self._pad(size)

    def close(self) -> None:
        self.f.write(_newc_header("TRAILER!!!", 0, 0, 0, nlink=1))
        # pad the archive to a 512-byte multiple, like cpio(1)
        pos = self.f.tell()
        if pos % 512:
            self.f.write(b"\0" * (512 - pos % 512))


# --------------------------------------------------------------------------- stages

class Builder:
    def __init__(self, out: Path, progress: Progress):
        self.out = out
        self.progress = progress
        self.key = recipe_key()
        self.build_id = f"livelab-{self.key[:12]}"
        self.tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out.parent))
        self.log = self.tmp / "build.log"
        self.root = self.tmp / "root"
        self.work = self.tmp / "work"
        self.stage = self.tmp / "out"
        self.work.mkdir()
        self.stage.mkdir()
        self.kver = ""
        self.info: dict = {"recipe_key": self.key, "build_id": self.build_id}
        self.mounts: list[Path] = []

    # ---- helpers
    def sh(self, cmd, **kw):
        """``run`` with the build log; its output lines feed the stage's progress (``on_line``
        overrides: a command's own status parser)."""
        kw.setdefault("on_line", self.progress.watch())
        return run(cmd, log=self.log, **kw)

    def chroot(self, *args: str, capture=False):
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LC_ALL": "C", "HOME": "/root", "DEBIAN_FRONTEND": "noninteractive"}
        return run(["chroot", str(self.root), *args], env=env, log=self.log, capture=capture,
                   on_line=None if capture else self.progress.watch())

    def mount_chroot(self) -> None:
        for d in ("proc", "sys", "dev"):
            target = self.root / d
            target.mkdir(exist_ok=True)
            self.sh(["mount", "--rbind" if d == "dev" else "--bind", f"/{d}", str(target)])
            self.mounts.append(target)

    def umount_chroot(self) -> None:
        while self.mounts:
            t = self.mounts.pop()
            run(["umount", "-R", "-l", str(t)], check=False)

    def cleanup(self) -> None:
        self.umount_chroot()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- ignition (upstream, from source; cached in the user's cache directory)
    def ignition(self, source: str | Path | None = None, url: str | None = None) -> None:
        self.progress.start(f"ignition: upstream {ignition_src.TAG} (ignition, ignition-validate)")
        try:
            self.ign_dir, info = ignition_src.ensure(source, url, log=self.log, note=self.progress.note)
        except ignition_src.IgnitionBuildError as e:
            raise BuildError(str(e)) from None
        self.info["ignition"] = {k: info.get(k) for k in ("version", "commit", "tree_sha256", "cache_hit", "seconds",
                                                          "build_seconds", "go", "source", "sizes")}
        self.info["ignition"]["cache"] = str(self.ign_dir)
        self.progress.end("(cached)" if info["cache_hit"] else f"(built with {info.get('go')})")

    # ---- base
    def base(self) -> Path:
        key = base_key()
        tar = CACHE / f"base-{key}.tar"
        self.info["base_key"] = key
        if tar.exists():
            self.info["base_cache_hit"] = True
            self.progress.info(f"base: cached {tar.relative_to(REPO) if tar.is_relative_to(REPO) else tar}")
            return tar
        self.info["base_cache_hit"] = False
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = CACHE / f"base-{key}.tar.partial"
        self.progress.start("base: mmdebstrap (Debian 12 packages)")
        # --verbose: apt's and dpkg's own lines, counted as the stage's progress (not part of the cache key)
        cmd = mmdebstrap_cmd(partial)
        self.sh([cmd[0], "--verbose", *cmd[1:]], on_line=self.progress.watch(MmdebstrapStatus()))
        os.replace(partial, tar)
        for old in CACHE.glob("base-*.tar"):
            if old != tar:
                old.unlink()
        self.progress.end()
        return tar

    # ---- rootfs
    def rootfs(self, tar: Path) -> None:
        self.progress.start("rootfs: unpack + overlay + customize")
        self.root.mkdir()
        self.sh(["tar", "-xf", str(tar), "-C", str(self.root), "--numeric-owner", "--xattrs",
                 "--xattrs-include=*"])
        self.sh(["cp", "-a", "--no-preserve=ownership", f"{OVERLAY}/rootfs/.", str(self.root)])
        mod = self.root / "usr/lib/dracut/modules.d/35livelab-live"
        shutil.copytree(OVERLAY / "dracut/35livelab-live", mod)
        shutil.copy(OVERLAY / "dracut/livelab.conf", self.root / "etc/dracut.conf.d/10-livelab.conf")
        # Upstream Ignition in place of Debian's 2.14 (the package stays in packages.txt so that the
        # cached base tarball stays valid): upstream's own dracut module with the binary built from
        # the same tree; Debian's module and its ignition-validate go.
        ign_mod = self.root / "usr/lib/dracut/modules.d/30ignition"
        shutil.rmtree(ign_mod, ignore_errors=True)
        shutil.copytree(self.ign_dir / "30ignition", ign_mod, symlinks=True)
        shutil.copy2(self.ign_dir / "ignition", ign_mod / "ignition")
        (self.root / "usr/bin/ignition-validate").unlink(missing_ok=True)
        # Boot speed: dracut's kernel-modules and kernel-network-modules install every block,
        # filesystem and NIC driver (61 MB of modules in the initramfs). livelab's initramfs
        # gets only the explicit list (`drivers=` in livelab.conf + 35livelab-live's
        # installkernel + their dependencies): a later installkernel() definition wins.
        for m in ["90kernel-modules", "90kernel-network-modules"]:
            ms = self.root / "usr/lib/dracut/modules.d" / m / "module-setup.sh"
            with open(ms, "a") as f:
                f.write("\n# livelab: explicit driver list only (images/build.py)\n"
                        "installkernel() { return 0; }\n")
        shutil.copy(HERE / "customize.sh", self.root / "tmp/customize.sh")
        kernels = sorted((self.root / "boot").glob("vmlinuz-*"))
        if not kernels:
            raise BuildError("no kernel in the base tarball (linux-image-amd64 missing?)")
        self.kver = kernels[-1].name[len("vmlinuz-"):]
        self.info["kernel"] = self.kver
        # Debian's 6.12 ships its modules xz-compressed (6.1's were not): every module a boot loads
        # was unpacked again under TCG, and with .ko.xz 5 of 23 ISO boots waited 3-8 s for their
        # first SSH login (images/README.md, "The kernel"). Unpacked here; each module's signature
        # is inside the .ko, so Secure Boot's lockdown still accepts them.
        xz_modules = sorted(str(p) for p in (self.root / "usr/lib/modules" / self.kver).rglob("*.ko.xz"))
        for i in range(0, len(xz_modules), 400):
            run(["xz", "--decompress", *xz_modules[i:i + 400]])
        self.mount_chroot()
        if xz_modules:
            self.chroot("depmod", "-a", self.kver)
        self.chroot("/bin/bash", "/tmp/customize.sh")
        self.progress.end()

    # ---- initrd
    def initrd(self) -> None:
        self.progress.start("initrd: dracut in the chroot")
        self.chroot("dracut", "--no-compress", "--force", "--kver", self.kver, "/tmp/initrd.cpio")
        self.umount_chroot()
        shutil.move(str(self.root / "tmp/initrd.cpio"), self.work / "initrd.cpio")
        shutil.copy(self.root / "boot" / f"vmlinuz-{self.kver}", self.work / "vmlinuz")
        self.progress.end()

    # ---- trim + squashfs
    def squashfs(self) -> None:
        self.progress.start("squashfs: trim + mksquashfs")
        r = self.root
        for p in ["boot", "usr/lib/dracut", "usr/bin/ignition-validate", "etc/dracut.conf.d",
                  "var/cache/apt", "var/lib/apt/lists", "var/log/apt", "var/cache/debconf/templates.dat-old",
                  "usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info",
                  "tmp/customize.sh", "usr/sbin/dracut", "usr/bin/dracut", "usr/bin/lsinitrd"]:
            q = r / p
            if q.is_dir() and not q.is_symlink():
                shutil.rmtree(q)
            elif q.exists() or q.is_symlink():
                q.unlink()
        (r / "boot").mkdir(exist_ok=True)
        mods = r / "usr/lib/modules" / self.kver / "kernel"
        drop = ["sound", "drivers/gpu", "drivers/media", "drivers/net/wireless", "drivers/infiniband",
                "drivers/staging", "drivers/bluetooth", "drivers/iio", "drivers/isdn", "drivers/usb",
                "drivers/hwmon", "drivers/mtd", "drivers/thunderbolt", "drivers/net/can",
                "drivers/net/usb", "drivers/net/wwan", "drivers/nfc", "drivers/leds", "drivers/mfd",
                "drivers/misc", "drivers/platform", "drivers/power", "drivers/video", "drivers/hid",
                "drivers/input/touchscreen", "drivers/input/misc", "drivers/input/joystick",
                "drivers/input/tablet", "drivers/gnss", "drivers/comedi", "drivers/fpga", "drivers/spi",
                "drivers/i2c", "drivers/edac", "drivers/xen", "drivers/hv", "drivers/target",
                "arch/x86/kvm", "drivers/scsi/lpfc", "drivers/scsi/qla2xxx", "drivers/scsi/qla4xxx",
                "drivers/scsi/mpt3sas",
                "drivers/scsi/megaraid", "drivers/scsi/bfa", "drivers/scsi/be2iscsi", "drivers/scsi/aacraid",
                "drivers/scsi/smartpqi", "drivers/scsi/qedf", "drivers/scsi/qedi", "drivers/scsi/bnx2fc",
                "drivers/scsi/bnx2i", "drivers/scsi/cxgbi", "drivers/scsi/fnic", "drivers/scsi/pm8001",
                "drivers/scsi/mpi3mr", "drivers/scsi/hisi_sas", "drivers/scsi/csiostor", "drivers/scsi/elx",
                "drivers/net/ethernet/mellanox", "drivers/net/ethernet/broadcom", "drivers/net/ethernet/chelsio",
                "drivers/net/ethernet/qlogic", "drivers/net/ethernet/marvell", "drivers/net/ethernet/sfc",
                "drivers/net/ethernet/cavium", "drivers/net/ethernet/huawei", "drivers/net/ethernet/emulex",
                "drivers/net/ethernet/netronome", "drivers/net/ethernet/pensando", "drivers/net/ethernet/amd",
                "drivers/net/ethernet/aquantia", "drivers/net/ethernet/microsoft", "drivers/net/ethernet/cisco",
                "drivers/net/ethernet/freescale", "drivers/net/ethernet/realtek", "drivers/net/ethernet/sun",
                "drivers/net/ethernet/intel/ice", "drivers/net/ethernet/intel/i40e", "drivers/net/ethernet/intel/ixgbe",
                "drivers/net/ethernet/intel/iavf", "drivers/net/ethernet/intel/igb", "drivers/net/ethernet/intel/idpf",
                "net/wireless", "net/mac80211", "net/bluetooth", "net/nfc", "net/ceph", "fs/ceph", "fs/ocfs2",
                "fs/gfs2", "fs/nfs", "fs/nfsd", "fs/smb", "fs/cifs", "fs/ntfs3", "fs/jfs", "fs/reiserfs"]
        for d in drop:
            shutil.rmtree(mods / d, ignore_errors=True)
        # NIC drivers: only the ones QEMU offers (virtio_net is in drivers/net itself)
        eth = mods / "drivers/net/ethernet"
        for d in list(eth.iterdir()) if eth.is_dir() else []:
            if d.name != "intel":
                shutil.rmtree(d) if d.is_dir() else d.unlink()
        for d in list((eth / "intel").iterdir()) if (eth / "intel").is_dir() else []:
            if d.name not in ("e1000", "e1000e"):
                shutil.rmtree(d) if d.is_dir() else d.unlink()
        for d in ["drivers/mmc", "drivers/net/fddi", "drivers/net/hamradio", "drivers/net/ieee802154",
                  "drivers/net/arcnet", "drivers/net/plip", "drivers/net/slip", "drivers/net/ppp",
                  "drivers/atm", "net/sunrpc", "net/rxrpc", "net/atm", "net/6lowpan", "net/ieee802154",
                  "net/mac802154", "net/rds", "net/tipc", "net/sctp", "net/dccp", "net/l2tp", "net/batman-adv",
                  "fs/afs", "fs/lockd", "fs/nfs_common", "fs/ubifs", "fs/orangefs", "fs/coda", "fs/dlm",
                  "fs/ksmbd", "fs/nilfs2", "fs/f2fs", "fs/hfs", "fs/hfsplus", "fs/ufs", "fs/jffs2"]:
            shutil.rmtree(mods / d, ignore_errors=True)
        for d in (mods / "drivers/scsi").iterdir() if (mods / "drivers/scsi").is_dir() else []:
            if d.is_dir():     # HBA driver families; the core, sd/sr/sg and virtio_scsi stay
                shutil.rmtree(d)
        # Software the live root never runs (Python, full Perl, Ignition itself -- it runs in
        # the initramfs --, ICU for xfs_scrub): less to fetch, hash and unpack at boot.
        # Files only; perl-base, xfsprogs' mkfs/repair tools stay.
        gone = self.chroot("dpkg-query", "-L", "python3", "python3.11", "python3-minimal",
                           "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
                           "libpython3-stdlib", "perl", "perl-modules-5.36", "libperl5.36",
                           "ignition", "libicu72", capture=True).decode()
        for line in gone.splitlines():
            q = r / line.strip().lstrip("/")
            if line.startswith("/") and (q.is_file() or q.is_symlink()) and not q.is_dir():
                q.unlink()
        for q in [r / "usr/sbin/xfs_scrub", r / "usr/sbin/xfs_scrub_all", r / "usr/lib/python3",
                  r / "usr/lib/python3.11", r / "usr/share/perl", r / "usr/lib/x86_64-linux-gnu/perl"]:
            if q.is_dir() and not q.is_symlink():
                shutil.rmtree(q)
            elif q.exists() or q.is_symlink():
                q.unlink()
        self.chroot("depmod", "-a", self.kver)
        self.prefetch_list()
        for f in (r / "var/log").rglob("*"):
            if f.is_file():
                f.unlink()
        sq = self.work / "root.squashfs"
        self.mksquashfs(sq)
        self.info.setdefault("sizes", {})["root.squashfs"] = sq.stat().st_size
        # the releases with the planted regression: the same root without one file (images/README.md,
        # "Release history"); only this squashfs is packed again, everything else is derived from it
        if not (r / REGRESSION_FILE).is_file():
            raise BuildError(f"the planted regression removes /{REGRESSION_FILE}, which the root does not have")
        # (zstd level 3: about 1 s instead of 10 s for 15% more bytes, to keep the build short)
        (self.work / "regressed").mkdir()
        self.mksquashfs(self.work / "regressed/root.squashfs", exclude=[REGRESSION_FILE], level=3)
        self.info["sizes"]["regressed/root.squashfs"] = (self.work / "regressed/root.squashfs").stat().st_size
        self.progress.end(f"({sq.stat().st_size >> 20} MiB)")

    def mksquashfs(self, sq: Path, exclude: list[str] | None = None, level: int = 15) -> None:
        self.sh(["mksquashfs", str(self.root), str(sq), "-comp", "zstd", "-Xcompression-level", str(level),
                 "-noappend", "-quiet", "-wildcards", "-e", "proc/*", "sys/*", "dev/*",
                 "run/*", "tmp/*", *(exclude or [])], on_line=self.progress.watch(SquashfsStatus()))

    # What the real root's systemd reads first: its own binaries up to sshd, their libraries and
    # the unit files.  livelab-live-rootfs reads them in the background once the squashfs is
    # mounted, while Ignition runs, so switch-root does not wait for squashfs to decompress them
    # block by block (about 3 s under TCG).  Nothing a user can see but the time.
    PREFETCH_BINARIES = (
        "usr/lib/systemd/systemd", "usr/lib/systemd/systemd-journald", "usr/lib/systemd/systemd-udevd",
        "usr/lib/systemd/systemd-networkd", "usr/lib/systemd/systemd-logind", "usr/lib/systemd/systemd-sysctl",
        "usr/lib/systemd/systemd-remount-fs", "usr/lib/systemd/systemd-modules-load",
        "usr/lib/systemd/systemd-network-generator", "usr/lib/systemd/systemd-user-sessions",
        "usr/bin/systemd-tmpfiles", "usr/bin/journalctl", "usr/bin/udevadm", "usr/bin/kmod", "usr/bin/systemctl",
        "usr/bin/dbus-daemon", "usr/sbin/sshd", "usr/bin/ssh-keygen", "usr/sbin/agetty", "usr/bin/dash",
        "usr/bin/bash", "usr/bin/login", "usr/bin/cat")
    # and the first SSH login's path: the PAM modules of sshd's and systemd-user's stacks, the user
    # manager's units and generators (`systemd --user` is the binary above)
    PREFETCH_LOGIN_DIRS = ("usr/lib/x86_64-linux-gnu/security", "usr/lib/systemd/user",
                           "usr/lib/systemd/user-generators", "etc/pam.d")

    def prefetch_list(self) -> None:
        r = self.root
        files: set[str] = set()
        gens = r / "usr/lib/systemd/system-generators"
        masked = r / "etc/systemd/system-generators"
        binaries = [b for b in self.PREFETCH_BINARIES if (r / b).exists()]
        binaries += [str(g.relative_to(r)) for g in sorted(gens.iterdir())
                     if g.is_file() and not (masked / g.name).is_symlink()] if gens.is_dir() else []
        for d in self.PREFETCH_LOGIN_DIRS:
            binaries += [str(f.relative_to(r)) for f in sorted((r / d).rglob("*"))
                         if f.is_file() and not f.is_symlink()] if (r / d).is_dir() else []
        for b in binaries:
            files.add(b)
            with open(r / b, "rb") as f:
                if f.read(4) != b"\x7fELF":     # a script: its interpreter is in the list already
                    continue
            out = self.chroot("ldd", "/" + b, capture=True).decode(errors="replace")
            for m in re.finditer(r"(?:=> )?(/\S+) \(0x", out):
                files.add(m.group(1).lstrip("/"))
        for d in ("usr/lib/systemd/system", "etc/systemd/system"):
            files.update(str(f.relative_to(r)) for f in (r / d).rglob("*") if f.is_file() and not f.is_symlink())
        # real paths inside the root (libraries are symlinks), existing regular files only
        real = {t for t in (_resolve_in(r, f) for f in files) if t and (r / t).is_file()}
        lst = r / "usr/lib/livelab/prefetch.list"
        lst.parent.mkdir(parents=True, exist_ok=True)
        lst.write_text("".join(f"{f}\n" for f in sorted(real)))
        self.info["prefetch_files"] = len(real)

    # ---- pxe artifacts
    def pxe(self) -> None:
        self.progress.start("pxe: rootfs.img, initramfs (fcos, flatcar)")
        w = self.work
        # FCOS initramfs: lzo(dracut cpio) + plain cpio with the flavour files. The kernel
        # unpacks lzop -9 in 1.5 s under TCG against 4.6 s for zstd (92 MB cpio). lz4 would be
        # as fast, but the kernel's legacy-lz4 reader has no end marker: it fails on any cpio
        # appended after it ("Initramfs unpacking failed: Decoding failed").
        lzo = w / "initrd.cpio.lzo"
        self.sh(["lzop", "-q", "-f", "-9", "-o", str(lzo), str(w / "initrd.cpio")])
        # Flatcar PXE image: its first gzip member, the dracut cpio, compressed once for every variant
        member = w / "initrd.cpio.gz"
        with open(member, "wb") as f, open(w / "initrd.cpio", "rb") as src, \
                gzip.GzipFile(fileobj=f, mode="wb", compresslevel=4, mtime=0) as gz:
            shutil.copyfileobj(src, gz, 1 << 20)
        # the build's artifacts, then the same around the regressed root (the planted regression's releases)
        for d in (w, w / "regressed"):
            self.live_artifacts(d, lzo, member)
        for f in (lzo, member, w / "initrd.cpio"):
            f.unlink()
        sizes = self.info.setdefault("sizes", {})
        for n in ["vmlinuz", "initramfs-fcos.img", "rootfs.img", "flatcar_production_pxe_image.cpio.gz"]:
            sizes[n] = (w / n).stat().st_size
        self.progress.end()

    def live_artifacts(self, d: Path, lzo: Path, flatcar_member: Path) -> None:
        """rootfs.img, initramfs-fcos.img and the Flatcar PXE image around ``d/root.squashfs``."""
        # FCOS rootfs.img: newc cpio, root.squashfs first (mountable at offset 124), then the stamp
        with open(d / "rootfs.img", "wb") as f:
            c = NewcWriter(f)
            c.add_file("root.squashfs", d / "root.squashfs")
            c.add_dir("etc")
            c.add_bytes("etc/coreos-live-rootfs", (self.build_id + "\n").encode())
            c.close()
        with open(d / "rootfs.img", "rb") as f:
            assert f.read(124)[110:123] == b"root.squashfs"
        lines = ["stream-hash sha256 2097152"]
        with open(d / "rootfs.img", "rb") as f:
            for chunk in iter(lambda: f.read(STREAM_HASH_CHUNK), b""):
                lines.append(hashlib.sha256(chunk).hexdigest())
        want = ("\n".join(lines) + "\n").encode()
        fcos_ver = FCOS_STREAMS["stable"][-1]
        flatcar_ver = FLATCAR_CHANNELS["stable"]
        # the FCOS initramfs: the lzo'd dracut cpio, then the flavour files (the rootfs's stream hash among them)
        with open(d / "initramfs-fcos.img", "wb") as f:
            with open(lzo, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
            # the kernel only takes an uncompressed cpio that starts 4-byte aligned
            if f.tell() % 4:
                f.write(b"\0" * (4 - f.tell() % 4))
            c = NewcWriter(f)
            c.add_dir("etc")
            c.add_bytes("etc/livelab-flavour", b"fcos\n")
            c.add_bytes("etc/livelab-version", (fcos_ver + "\n").encode())
            c.add_bytes("etc/coreos-live-initramfs", (self.build_id + "\n").encode())
            c.add_bytes("etc/coreos-live-want-rootfs", want)
            c.close()
        # Flatcar PXE image: gzip members: the dracut cpio, then flavour files + root squashfs
        # (stored, not deflated: the squashfs is already compressed) -- usable as the only initrd.
        with open(d / "flatcar_production_pxe_image.cpio.gz", "wb") as f:
            with open(flatcar_member, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
            with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=0, mtime=0) as gz:
                c = NewcWriter(gz)
                # NewcWriter needs tell(); GzipFile.tell() gives the uncompressed offset
                c.add_dir("etc")
                c.add_bytes("etc/livelab-flavour", b"flatcar\n")
                c.add_bytes("etc/livelab-version", (flatcar_ver + "\n").encode())
                # as flatcar/bootengine's 99journald-conf: the initramfs journal goes to the console too
                # (Ignition's lines, each GET attempt, show live on a Flatcar serial console)
                c.add_dir("etc/systemd")
                c.add_dir("etc/systemd/journald.conf.d")
                c.add_bytes("etc/systemd/journald.conf.d/00-forward-to-console.conf",
                            b"[Journal]\nForwardToConsole=yes\n")
                c.add_dir("usr")
                c.add_dir("usr/share")
                c.add_dir("usr/share/oem")
                c.add_file("root.squashfs", d / "root.squashfs")
                c.close()

    # ---- ISO
    def efi_boot(self) -> Path:
        """The El Torito EFI image (``efiboot.img``, also the isohybrid GPT's ESP): the signed shim as
        the removable-media loader, the signed GRUB beside it and the stub config GRUB reads."""
        w = self.work
        img = w / "efiboot.img"
        if img.exists():
            return img
        stub = w / "grub-stub.cfg"
        stub.write_text(GRUB_STUB_CFG)
        payload = sum(Path(host).stat().st_size for host, _pkg in EFI_BOOT_FILES.values())
        kib = (payload * 5 // 4) // 1024 + 1024            # FAT overhead and slack
        self.sh(["mkfs.vfat", "-C", "-n", "EFIBOOT", str(img), str(kib)])
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        run(["mmd", "-i", str(img), "::/EFI", "::/EFI/BOOT", "::/EFI/debian"], env=env, log=self.log)
        for dest, (host, _pkg) in EFI_BOOT_FILES.items():
            run(["mcopy", "-i", str(img), host, f"::/{dest}"], env=env, log=self.log)
        run(["mcopy", "-i", str(img), str(stub), "::/EFI/debian/grub.cfg"], env=env, log=self.log)
        self.info["efi_boot"] = {dest: {"from": host, "sha256": sha256_file(Path(host))}
                                 for dest, (host, _pkg) in EFI_BOOT_FILES.items()}
        return img

    def artifacts_of(self, os_id: str, version: str) -> Path:
        """Where the live artifacts of a release are: the build's, or the planted regression's."""
        return self.work / "regressed" if version in REGRESSED[os_id] else self.work

    def iso(self, version: str) -> Path:
        w = self.work
        src = self.artifacts_of("fcos", version)
        self.efi_boot()
        volid = f"fedora-coreos-{version}"[:32]
        kargs = f"coreos.liveiso={volid} ignition.firstboot ignition.platform.id=metal"
        tree = w / f"iso-{version}"
        for d in ["images/pxeboot", "coreos", "isolinux", "EFI/fedora", "EFI/BOOT", "EFI/debian"]:
            (tree / d).mkdir(parents=True, exist_ok=True)
        os.link(w / "vmlinuz", tree / "images/pxeboot/vmlinuz")
        os.link(src / "initramfs-fcos.img", tree / "images/pxeboot/initrd.img")
        os.link(src / "rootfs.img", tree / "images/pxeboot/rootfs.img")
        (tree / "images/ignition.img").write_bytes(b"\0" * IGNITION_AREA)
        os.link(w / "efiboot.img", tree / "images/efiboot.img")
        for dest, (host, _pkg) in EFI_BOOT_FILES.items():       # the same chain in the ISO's own tree
            shutil.copy(host, tree / dest)
        (tree / "EFI/debian/grub.cfg").write_text(GRUB_STUB_CFG)
        shutil.copy("/usr/lib/ISOLINUX/isolinux.bin", tree / "isolinux/isolinux.bin")
        shutil.copy("/usr/lib/syslinux/modules/bios/ldlinux.c32", tree / "isolinux/ldlinux.c32")
        area = kargs + "\n"
        area += "#" * (ISO_KARGS_AREA - len(area))
        marker = "# COREOS_KARG_EMBED_AREA\n"
        iso_pre = ("# livelab stand-in for the Fedora CoreOS live ISO (isolinux, BIOS).\n"
                   "serial 0 115200\n"
                   "default linux\n"
                   "prompt 0\n"
                   "timeout 0\n\n"
                   "label linux\n"
                   "  kernel /images/pxeboot/vmlinuz\n"
                   "  append initrd=/images/pxeboot/initrd.img,/images/ignition.img ")
        iso_cfg = iso_pre + area + marker + "\n"
        grub_pre = ("# livelab stand-in for the Fedora CoreOS live ISO (GRUB, UEFI).\n"
                    "set default=\"0\"\n"
                    "set timeout=0\n"
                    "insmod gzio\n"
                    "insmod iso9660\n\n"
                    "menuentry 'Fedora CoreOS (Live)' --class fedora --class gnu-linux --class gnu --class os {\n"
                    "\tlinux /images/pxeboot/vmlinuz ")
        grub_cfg = grub_pre + area + marker + "\tinitrd /images/pxeboot/initrd.img /images/ignition.img\n}\n"
        (tree / "isolinux/isolinux.cfg").write_text(iso_cfg)
        (tree / "EFI/fedora/grub.cfg").write_text(grub_cfg)
        kj = {"default": kargs,
              "files": [{"path": "EFI/fedora/grub.cfg", "offset": len(grub_pre.encode()), "pad": "#", "end": "\n"},
                        {"path": "isolinux/isolinux.cfg", "offset": len(iso_pre.encode()), "pad": "#", "end": "\n"}],
              "size": ISO_KARGS_AREA}
        (tree / "coreos/kargs.json").write_text(json.dumps(kj, indent=2) + "\n")
        (tree / "coreos/igninfo.json").write_text(json.dumps({"file": "images/ignition.img"}) + "\n")
        iso = w / f"live-{version}.iso"
        self.sh(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(iso), "-V", volid, "-J", "-R",
                 "-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin",
                 "-c", "isolinux/boot.cat", "-b", "isolinux/isolinux.bin", "-no-emul-boot",
                 "-boot-load-size", "4", "-boot-info-table",
                 "-eltorito-alt-boot", "-e", "images/efiboot.img", "-no-emul-boot", "-isohybrid-gpt-basdat",
                 str(tree)])
        shutil.rmtree(tree)
        return iso

    def isos(self) -> dict[str, Path]:
        self.progress.start("iso: live ISOs (isolinux + shim/GRUB EFI, isohybrid)")
        out = {}
        for _stream, versions in FCOS_STREAMS.items():
            for v in versions:
                out[v] = self.iso(v)
        self.info.setdefault("sizes", {})["live.iso"] = next(iter(out.values())).stat().st_size
        self.progress.end()
        return out

    # ---- publish
    def gpg(self, *args: str, capture=False):
        env = dict(os.environ, GNUPGHOME=str(self.gnupg), LC_ALL="C")
        return run(["gpg", "--batch", "--quiet", "--no-tty", *args], env=env, log=self.log, capture=capture)

    def make_key(self) -> None:
        self.gnupg = self.tmp / "gnupg"
        self.gnupg.mkdir(mode=0o700)
        uid = "livelab stand-in image signing key <images@livelab.invalid>"
        self.gpg("--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
        self.gpg("--export", "--output", str(self.stage / "keyring.gpg"))
        self.gpg("--armor", "--export", "--output", str(self.stage / "keyring.asc"))
        fpr = self.gpg("--with-colons", "--list-keys", capture=True).decode()
        self.info["signing_key"] = next(line.split(":")[9] for line in fpr.splitlines() if line.startswith("fpr:"))
        self._sigs: dict[tuple[str, str], Path] = {}

    def sign(self, path: Path, suffix: str = ".sig", clearsign: bool = False) -> Path:
        """Detached binary signature (or clearsigned copy) beside path; identical bytes share it."""
        inode = path.stat()
        k = (f"{inode.st_dev}:{inode.st_ino}", suffix)
        dst = path.with_name(path.name + suffix)
        if k in self._sigs:
            os.link(self._sigs[k], dst)
            return dst
        if clearsign:
            self.gpg("--clearsign", "--output", str(dst), str(path))
        else:
            self.gpg("--detach-sign", "--output", str(dst), str(path))
        self._sigs[k] = dst
        return dst

    def link(self, src: Path, dst: Path) -> Path:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            dst.unlink()
        os.link(src, dst)
        return dst

    def publish(self, isos: dict[str, Path]) -> None:
        self.progress.start("publish: signed mirror tree")
        self.make_key()
        w, st = self.work, self.stage
        live = st / "live"
        live.mkdir()
        for n in ["vmlinuz", "initramfs-fcos.img", "rootfs.img", "flatcar_production_pxe_image.cpio.gz"]:
            self.link(w / n, live / n)
        # the validator of the stand-in's Ignition, for the harness (--ignition-validate)
        (st / "bin").mkdir()
        shutil.copy2(self.ign_dir / "ignition-validate", st / "bin/ignition-validate")
        self.link(isos[FCOS_STREAMS["stable"][-1]], live / "live.iso")
        mirror = st / "mirror"
        sha = {d: {n: sha256_file(d / n) for n in ["initramfs-fcos.img", "rootfs.img"]}
               for d in (w, w / "regressed")}
        sha_kernel = sha256_file(w / "vmlinuz")
        iso_sha = {v: sha256_file(p) for v, p in isos.items()}
        now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        specs = {"fcos": {}, "flatcar": {}}
        base = "https://builds.coreos.fedoraproject.org"
        # ---------------- FCOS
        for stream, versions in FCOS_STREAMS.items():
            releases = []
            for v in versions:
                old = v < "42.20250410.3.1"
                names = {
                    "kernel": (f"fedora-coreos-{v}-live-kernel-x86_64" if old
                               else f"fedora-coreos-{v}-live-kernel.x86_64"),
                    "initramfs": f"fedora-coreos-{v}-live-initramfs.x86_64.img",
                    "rootfs": f"fedora-coreos-{v}-live-rootfs.x86_64.img",
                    "iso": f"fedora-coreos-{v}-live.x86_64.iso" if old else f"fedora-coreos-{v}-live-iso.x86_64.iso",
                }
                a = self.artifacts_of("fcos", v)
                src = {"kernel": w / "vmlinuz", "initramfs": a / "initramfs-fcos.img", "rootfs": a / "rootfs.img",
                       "iso": isos[v]}
                sums = {"kernel": sha_kernel, "initramfs": sha[a]["initramfs-fcos.img"],
                        "rootfs": sha[a]["rootfs.img"], "iso": iso_sha[v]}
                rel = f"prod/streams/{stream}/builds/{v}/x86_64"
                arts = {}
                for kind, name in names.items():
                    f = self.link(src[kind], mirror / "fcos" / rel / name)
                    self.sign(f)
                    loc = f"{base}/{rel}/{name}"
                    arts[kind] = {"location": loc, "signature": loc + ".sig", "sha256": sums[kind]}
                formats = {"pxe": {"kernel": arts["kernel"], "initramfs": arts["initramfs"], "rootfs": arts["rootfs"]},
                           "iso": {"disk": arts["iso"]}}
                commit = hashlib.sha256(f"{v}/{self.key}".encode()).hexdigest()
                release_json = {
                    "release": v, "stream": stream,
                    "metadata": {"last-modified": stamp},
                    "architectures": {"x86_64": {
                        "commit": commit,
                        "media": {"metal": {"artifacts": formats}}}}}
                rj = mirror / "fcos" / f"prod/streams/{stream}/builds/{v}/release.json"
                rj.write_text(json.dumps(release_json, indent=2) + "\n")
                releases.append({"version": v, "metadata": f"{base}/prod/streams/{stream}/builds/{v}/release.json",
                                 "commits": [{"architecture": "x86_64", "checksum": commit}]})
                specs["fcos"][v] = standin_spec("fcos", v)
                current = (v, formats)
            idx = {"note": "For use only by Fedora CoreOS internal tooling.  All other applications should "
                           "obtain release info from stream metadata endpoints.",
                   "stream": stream, "metadata": {"last-modified": stamp}, "releases": releases}
            (mirror / "fcos" / f"prod/streams/{stream}/releases.json").write_text(json.dumps(idx, indent=2) + "\n")
            v, formats = current
            stream_json = {"stream": stream,
                           "metadata": {"last-modified": stamp, "generator": "livelab images/build.py"},
                           "architectures": {"x86_64": {"artifacts": {"metal": {"release": v, "formats": formats}}}}}
            (mirror / "fcos/streams").mkdir(parents=True, exist_ok=True)
            (mirror / "fcos/streams" / f"{stream}.json").write_text(json.dumps(stream_json, indent=2) + "\n")
        # ---------------- Flatcar
        digests: dict[Path, dict[str, tuple[Path, Path]]] = {}
        for a in (w, w / "regressed"):
            digests[a] = {}
            for n in ["flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz"]:
                src = w / "vmlinuz" if n.endswith("vmlinuz") else a / n
                text = ""
                for algo in ("md5", "sha1", "sha512"):
                    h = hashlib.new(algo)
                    with open(src, "rb") as f:
                        for block in iter(lambda: f.read(1 << 20), b""):
                            h.update(block)
                    text += f"# {algo.upper()} HASH\n{h.hexdigest()}  {n}\n"
                d = a / f"{n}.DIGESTS"
                d.write_text(text)
                digests[a][n] = (src, d)
        for ch in FLATCAR_CHANNELS:
            board = mirror / "flatcar" / ch / "amd64-usr"
            for v in flatcar_releases(ch):
                b, br, pa = v.split(".")
                vt = (f"FLATCAR_BUILD={b}\nFLATCAR_BRANCH={br}\nFLATCAR_PATCH={pa}\nFLATCAR_VERSION={v}\n"
                      f"FLATCAR_VERSION_ID={v}\nFLATCAR_BUILD_ID=\"{now.strftime('%Y-%m-%d-%H%M')}\"\n"
                      f"FLATCAR_SDK_VERSION={b}.0.0\n")
                d = board / v
                d.mkdir(parents=True)
                (d / "version.txt").write_text(vt)
                self.sign(d / "version.txt")
                for n, (src, dg) in digests[self.artifacts_of("flatcar", v)].items():
                    f = self.link(src, d / n)
                    self.sign(f)
                    g = self.link(dg, d / f"{n}.DIGESTS")
                    self.sign(g)
                    self.sign(g, ".asc", clearsign=True)
                specs["flatcar"][v] = standin_spec("flatcar", v)
            # `current`: a copy of the newest release (the release server's own layout)
            cur = board / "current"
            cur.mkdir()
            for f in (board / FLATCAR_CHANNELS[ch]).iterdir():
                os.link(f, cur / f.name)
            # the board directory's page: what the server answers for .../amd64-usr/ (the channel's releases)
            (board / "index.html").write_text(directory_page("/amd64-usr/", [*flatcar_releases(ch), "current"]))
        (st / "ignition-specs.json").write_text(json.dumps(
            {"_comment": "Ignition config spec version each published OS version reads (newest stable): the "
                         f"lower of {IGNITION_SPEC} and what the real release reads; this image's Ignition "
                         f"{ignition_src.VERSION} accepts " + ", ".join(IGNITION_SPECS_ACCEPTED),
             "accepted": IGNITION_SPECS_ACCEPTED, **specs}, indent=2) + "\n")
        self.progress.end()

    def finish(self, t0: float) -> None:
        st = self.stage
        self.info["sizes"]["live.iso"] = (st / "live/live.iso").stat().st_size
        du = run(["du", "-sb", "--count-links", str(st)], capture=True).split()[0]
        dul = run(["du", "-sb", str(st)], capture=True).split()[0]
        self.info["sizes"]["output_apparent_bytes"] = int(du)
        self.info["sizes"]["output_disk_bytes"] = int(dul)
        self.info["phase_seconds"] = self.progress.times
        self.info["build_seconds"] = round(time.monotonic() - t0, 1)
        self.info["built_at"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.info["fcos_streams"] = FCOS_STREAMS
        self.info["flatcar_channels"] = FLATCAR_CHANNELS
        self.info["flatcar_history"] = FLATCAR_HISTORY
        self.info["regressed"] = {"file": REGRESSION_FILE, **REGRESSED}
        prev = self.out / "build-info.json"
        if prev.exists():
            try:
                old = json.loads(prev.read_text())
                self.info["history"] = ([*old.get("history", []),
                                         {k: old.get(k) for k in ("recipe_key", "build_seconds", "base_cache_hit",
                                                                  "built_at")}])[-10:]
            except (OSError, ValueError):
                pass
        shutil.copy(self.log, st / "build.log")
        (st / "build-info.json").write_text(json.dumps(self.info, indent=2) + "\n")
        # atomic swap: the finished tree replaces the previous one in one rename
        old = None
        if self.out.exists():
            old = self.out.parent / f".old-{self.out.name}-{os.getpid()}"
            os.rename(self.out, old)
        os.rename(st, self.out)
        if old:
            shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- entry points

EXPECTED = ["build-info.json", "bin/ignition-validate", "keyring.gpg", "keyring.asc", "ignition-specs.json",
            "live/vmlinuz", "live/initramfs-fcos.img", "live/rootfs.img", "live/live.iso",
            "live/flatcar_production_pxe_image.cpio.gz", "mirror/fcos/streams/stable.json"]


def up_to_date(out: Path) -> bool:
    try:
        info = json.loads((out / "build-info.json").read_text())
    except (OSError, ValueError):
        return False
    return info.get("recipe_key") == recipe_key() and all((out / p).exists() for p in EXPECTED)


def build(out: Path | None = None, force: bool = False, stream=sys.stderr, ignition_source: str | Path | None = None,
          ignition_url: str | None = None) -> int:
    """Build (or confirm up to date) the images; returns 0 or raises BuildError.

    ``ignition_source``: a local Ignition source archive (default ``$LIVELAB_IGNITION_SOURCE``, else
    the download from ``ignition_url`` / ``$LIVELAB_IGNITION_URL`` / upstream)."""
    t0 = time.monotonic()
    out = Path(out or DEFAULT_OUT).resolve()
    check_host_tools()
    if not force and up_to_date(out):
        dt = time.monotonic() - t0
        try:
            info = json.loads((out / "build-info.json").read_text())
            info["up_to_date_check_seconds"] = round(dt, 2)
            tmpf = out / ".build-info.json.tmp"
            tmpf.write_text(json.dumps(info, indent=2) + "\n")
            os.replace(tmpf, out / "build-info.json")
        except OSError:
            pass
        stream.write(f"images: up to date ({out}, recipe {recipe_key()}) in {dt:.2f}s\n")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(".build-*"):
        shutil.rmtree(stale, ignore_errors=True)
    progress = Progress(stream)
    stream.write(f"images: building {out} (recipe {recipe_key()})\n")
    b = Builder(out, progress)
    try:
        b.ignition(ignition_source, ignition_url)
        tar = b.base()
        b.rootfs(tar)
        b.initrd()
        b.squashfs()
        b.pxe()
        isos = b.isos()
        b.publish(isos)
        progress.close()
        b.finish(t0)
    except BaseException:
        progress.close()
        stream.write(f"images: build failed; log: {b.log}\n")
        b.umount_chroot()
        raise
    b.cleanup()
    stream.write(f"images: done in {time.monotonic() - t0:.0f}s -> {out}\n")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="images/build.py", description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rebuild even if the recipe is unchanged")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default images/out)")
    ap.add_argument("--ignition-source", metavar="FILE", default=None,
                    help=f"local Ignition {ignition_src.TAG} source archive (default ${ignition_src.SOURCE_ENV}; "
                         "else it is downloaded from upstream)")
    ap.add_argument("--ignition-url", metavar="URL", default=None,
                    help=f"where to download the Ignition source archive (default ${ignition_src.URL_ENV} or "
                         f"{ignition_src.DEFAULT_URL})")
    args = ap.parse_args(argv)
    try:
        return build(args.out, args.force, ignition_source=args.ignition_source, ignition_url=args.ignition_url)
    except BuildError as e:
        sys.stderr.write(f"images/build.py: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("images/build.py: interrupted; nothing was published\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
