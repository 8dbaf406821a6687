"""Small initrd helpers: newc cpio writer/reader, xz (CRC32) and gzip wrappers.

Formats (see reference FORMATS.md §4/§5):

* newc cpio: each member is a 110-byte ASCII header (magic ``070701`` followed by 13
  eight-digit hex fields: ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
  devminor, rdevmajor, rdevminor, namesize incl. NUL, check), the NUL-terminated
  name, padding to a 4-byte boundary, the data, padding to a 4-byte boundary.  The
  archive ends with a ``TRAILER!!!`` member.
* The Linux initramfs unpacker only accepts xz streams with a CRC32 (or no) check,
  so the live-ISO / PXE Ignition archives are xz with ``check=CRC32``, preset 9.
"""
from __future__ import annotations

import gzip
import io
import lzma
import stat
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import LivelabError

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"
_HEADER_LEN = 110
_FIELDS = ("ino", "mode", "uid", "gid", "nlink", "mtime", "filesize",
           "devmajor", "devminor", "rdevmajor", "rdevminor", "namesize", "check")

XZ_MAGIC = b"\xfd7zXZ\x00"
GZIP_MAGIC = b"\x1f\x8b"

Member = tuple[str, bytes, int]


@dataclass(frozen=True)
class CpioEntry:
    """One member read back from a newc archive."""

    name: str
    mode: int
    data: bytes
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    nlink: int = 1

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _header(*, ino: int, mode: int, nlink: int, filesize: int, name: bytes, mtime: int = 0) -> bytes:
    values = (ino, mode, 0, 0, nlink, mtime, filesize, 0, 0, 0, 0, len(name) + 1, 0)
    return NEWC_MAGIC + b"".join(b"%08X" % v for v in values)


def _normalize_name(name: str) -> str:
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    if not name or name in (".", "..") or ".." in name.split("/"):
        raise LivelabError(f"invalid cpio member name {name!r}")
    return name


def newc_archive(members: Sequence[Member], *, mtime: int = 0) -> bytes:
    """Build a newc cpio archive from ``(name, data, mode)`` tuples.

    ``mode`` is the full st_mode (e.g. ``0o100600`` for a file, ``0o040755`` for a
    directory); a mode without a file-type bit is taken as a regular file.  Names are
    stored relative (no leading ``/``).  Owners are root, mtime is ``mtime`` (0 by
    default: reproducible output).  Directories must carry empty data.
    """
    out = io.BytesIO()
    for ino, (name, data, mode) in enumerate(members, start=1):
        name = _normalize_name(name)
        if stat.S_IFMT(mode) == 0:
            mode |= stat.S_IFREG
        data = bytes(data)
        if stat.S_ISDIR(mode) and data:
            raise LivelabError(f"cpio directory member {name!r} cannot carry data")
        nlink = 2 if stat.S_ISDIR(mode) else 1
        bname = name.encode()
        out.write(_header(ino=ino, mode=mode, nlink=nlink, filesize=len(data), name=bname, mtime=mtime))
        out.write(bname + b"\0")
        out.write(b"\0" * _pad4(_HEADER_LEN + len(bname) + 1))
        out.write(data)
        out.write(b"\0" * _pad4(len(data)))
    bname = TRAILER.encode()
    out.write(_header(ino=0, mode=0, nlink=1, filesize=0, name=bname))
    out.write(bname + b"\0")
    out.write(b"\0" * _pad4(_HEADER_LEN + len(bname) + 1))
    return out.getvalue()


def with_parent_dirs(files: Mapping[str, bytes] | Iterable[tuple[str, bytes]], *,
                     file_mode: int = 0o100644, dir_mode: int = 0o040755) -> list:
    """Members for ``files`` (name -> data) with every parent directory listed first."""
    items = list(files.items()) if isinstance(files, Mapping) else list(files)
    members: list = []
    seen = set()
    for name, data in items:
        name = _normalize_name(name)
        parts = name.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in seen:
                seen.add(d)
                members.append((d, b"", dir_mode))
        if isinstance(data, tuple):  # (data, mode)
            data, mode = data
        else:
            mode = file_mode
        if isinstance(data, str):
            data = data.encode()
        members.append((name, bytes(data), mode))
    return members


def read_newc(archive: bytes) -> list:
    """Parse a (possibly multi-archive, zero-padded) newc cpio into ``CpioEntry`` items.

    Stops at end of input; archives concatenated after a ``TRAILER!!!`` (with zero
    padding between them, as the kernel accepts) are read as well.
    """
    entries: list = []
    pos = 0
    n = len(archive)
    while pos < n:
        if archive[pos] == 0:  # padding between concatenated archives
            pos += 1
            continue
        if archive[pos:pos + 6] != NEWC_MAGIC:
            raise LivelabError(f"not a newc cpio archive (bad magic at byte {pos})")
        if pos + _HEADER_LEN > n:
            raise LivelabError("truncated newc cpio header")
        try:
            vals = dict(zip(_FIELDS, (int(archive[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13))))
        except ValueError:
            raise LivelabError(f"corrupt newc cpio header at byte {pos}") from None
        name_start = pos + _HEADER_LEN
        name_end = name_start + vals["namesize"]
        name = archive[name_start:name_end].rstrip(b"\0").decode("utf-8", "replace")
        data_start = name_end + _pad4(_HEADER_LEN + vals["namesize"])
        data_end = data_start + vals["filesize"]
        if data_end > n:
            raise LivelabError(f"truncated newc cpio member {name!r}")
        pos = data_end + _pad4(vals["filesize"])
        if name == TRAILER:
            continue
        entries.append(CpioEntry(name=name, mode=vals["mode"], data=archive[data_start:data_end],
                                 uid=vals["uid"], gid=vals["gid"], mtime=vals["mtime"], nlink=vals["nlink"]))
    return entries


def xz_crc32(data: bytes) -> bytes:
    """xz-compress ``data`` with a CRC32 check (kernel-compatible), preset 9."""
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=9)


def _stream(blob: bytes, dec, error, kind: str) -> bytes:
    """Decode one compressed stream with ``dec``; more streams after it (initramfs style,
    zero padding allowed between them) are decoded too."""
    try:
        out = dec.decompress(blob)
    except error as exc:
        raise LivelabError(f"corrupt {kind} data: {exc}") from None
    if not dec.eof:
        raise LivelabError(f"corrupt {kind} data: truncated stream")
    rest = dec.unused_data
    if rest.strip(b"\0"):
        out += decompress(rest.lstrip(b"\0"))
    return out


def decompress(blob: bytes) -> bytes:
    """Decompress xz (trailing zero padding allowed), gzip, or return raw cpio as is."""
    if blob.startswith(XZ_MAGIC):
        return _stream(blob, lzma.LZMADecompressor(format=lzma.FORMAT_XZ), lzma.LZMAError, "xz")
    if blob.startswith(GZIP_MAGIC):
        return _stream(blob, zlib.decompressobj(16 + zlib.MAX_WBITS), zlib.error, "gzip")
    return blob


def read_initrd(blob: bytes) -> list:
    """List the members of an xz/gzip/uncompressed newc initrd."""
    return read_newc(decompress(blob))


def extract_member(blob: bytes, name: str) -> bytes | None:
    """Data of member ``name`` (leading ``/`` or ``./`` ignored) or None."""
    want = name.lstrip("/")
    for e in read_initrd(blob):
        got = e.name
        while got.startswith("./"):
            got = got[2:]
        if got.lstrip("/") == want:
            return e.data
    return None


def ignition_initrd(config: bytes) -> bytes:
    """xz(CRC32) newc cpio holding ``config.ign`` (mode 0100600) at the archive root."""
    return xz_crc32(newc_archive([("config.ign", bytes(config), 0o100600)]))


def oem_initrd(files: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> bytes:
    """gzip newc cpio for Flatcar OEM files, e.g. ``{"usr/share/oem/config.ign": data}``.

    Parent directories are added with mode 040755, files get 0100644 (pass
    ``(data, mode)`` as the value to choose another mode).
    """
    archive = newc_archive(with_parent_dirs(files))
    return gzip.compress(archive, compresslevel=9, mtime=0)
