"""Small initrd helpers: newc cpio writer/reader, xz (CRC32) and gzip wrappers.

Formats (see reference FORMATS.md §4/§5):

* newc cpio: each member is a 110-byte ASCII header (magic ``070701`` followed by 13
  eight-digit hex fields: ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
  devminor, rdevmajor, rdevminor, namesize incl. NUL, check), the NUL-terminated
  name, padding to a 4-byte boundary, the data, padding to a 4-byte boundary.  The
  archive ends with a ``TRAILER!!!`` member.
* The Linux initramfs unpacker only accepts xz streams with a CRC32 (or no) check,
  so the live-ISO / PXE Ignition archives are xz with ``check=CRC32``, preset 9.

Archives come from outside (downloaded initrds, the embed area of any ISO given to livelab), so
reading them is bounded: decompression stops at an output limit, and a cpio archive may hold
only so many members, each wholly inside the archive.
"""
from __future__ import annotations

import gzip
import io
import lzma
import re
import stat
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
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

MiB = 1024 * 1024
# The largest initrds livelab reads unpack to a few hundred MiB (Flatcar's PXE image, which
# carries /usr as a squashfs, to about 450 MiB); past 1 GiB the data is not an initrd but a
# decompression bomb, and the whole output is held in memory.
MAX_INITRD_UNPACKED = 1024 * MiB
# A dracut initramfs has a few thousand members; a hundred thousand is far past any real one.
MAX_CPIO_MEMBERS = 100_000
# The kernel's initramfs unpacker refuses names longer than PATH_MAX (namesize counts the NUL).
MAX_CPIO_NAME = 4096
_INPUT_CHUNK = 64 * 1024      # compressed input handed to a decompressor per call
_OUTPUT_CHUNK = 4 * MiB       # decompressed output taken from it per call


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


_HEADER_RE = re.compile(NEWC_MAGIC + rb"[0-9A-Fa-f]{104}")
_NOT_ZERO = re.compile(rb"[^\0]")


def iter_newc(archive: bytes, *, max_members: int | None = None) -> Iterator[CpioEntry]:
    """The members of a (possibly multi-archive, zero-padded) newc cpio, one at a time.

    Archives concatenated after a ``TRAILER!!!`` (with zero padding between them, as the
    kernel accepts) are read as well.  Every header field must be eight hex digits and every
    member must lie inside ``archive``; more than ``max_members`` (default
    ``MAX_CPIO_MEMBERS``) members or a name longer than the kernel's ``PATH_MAX`` is an error.
    """
    if max_members is None:
        max_members = MAX_CPIO_MEMBERS
    pos = 0
    n = len(archive)
    count = 0
    while pos < n:
        if archive[pos] == 0:  # padding between concatenated archives
            nonzero = _NOT_ZERO.search(archive, pos)
            if nonzero is None:
                return
            pos = nonzero.start()
        if archive[pos:pos + 6] != NEWC_MAGIC:
            raise LivelabError(f"not a newc cpio archive (bad magic at byte {pos})")
        if pos + _HEADER_LEN > n:
            raise LivelabError("truncated newc cpio header")
        if not _HEADER_RE.match(archive, pos):
            raise LivelabError(f"corrupt newc cpio header at byte {pos}")
        vals = dict(zip(_FIELDS, (int(archive[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13))))
        if vals["namesize"] > MAX_CPIO_NAME:
            raise LivelabError(f"corrupt newc cpio header at byte {pos}: "
                               f"name size {vals['namesize']} is more than {MAX_CPIO_NAME}")
        name_start = pos + _HEADER_LEN
        name_end = name_start + vals["namesize"]
        if name_end > n:
            raise LivelabError("truncated newc cpio header")
        name = archive[name_start:name_end].rstrip(b"\0").decode("utf-8", "replace")
        data_start = name_end + _pad4(_HEADER_LEN + vals["namesize"])
        data_end = data_start + vals["filesize"]
        if data_end > n:
            raise LivelabError(f"truncated newc cpio member {name!r}")
        pos = data_end + _pad4(vals["filesize"])
        if name == TRAILER:
            continue
        count += 1
        if count > max_members:
            raise LivelabError(f"newc cpio archive has more than {max_members} members")
        yield CpioEntry(name=name, mode=vals["mode"], data=archive[data_start:data_end],
                        uid=vals["uid"], gid=vals["gid"], mtime=vals["mtime"], nlink=vals["nlink"])


def read_newc(archive: bytes, *, max_members: int | None = None) -> list:
    """All members of a newc cpio (see :func:`iter_newc`) as ``CpioEntry`` items."""
    return list(iter_newc(archive, max_members=max_members))


def xz_crc32(data: bytes) -> bytes:
    """xz-compress ``data`` with a CRC32 check (kernel-compatible), preset 9."""
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=9)


def _mib(n: int) -> str:
    return f"{n / MiB:g} MiB"


def _inflate(dec: lzma.LZMADecompressor | zlib._Decompress, error: type[Exception], kind: str, data: memoryview,
             pos: int, out: list, produced: int, limit: int, what: str) -> tuple[int, int]:
    """Decompress the one stream starting at ``data[pos]`` with ``dec`` (an lzma or zlib
    decompressor), appending its output to ``out``.

    Input goes in ``_INPUT_CHUNK`` pieces and each call may give at most ``_OUTPUT_CHUNK``
    bytes, so neither the input after the stream nor the output past ``limit`` is ever held.
    Returns the position just after the stream and the total output so far.
    """
    pending = b""        # input zlib has been given but not consumed yet (its unconsumed_tail)
    more_output = False  # the last call stopped at its output cap: the decoder holds more
    while not dec.eof:
        if not pending and not more_output:
            if pos >= len(data):
                raise LivelabError(f"{what}: corrupt {kind} data: truncated stream")
            pending = bytes(data[pos:pos + _INPUT_CHUNK])
            pos += len(pending)
        cap = min(_OUTPUT_CHUNK, limit - produced + 1)
        try:
            piece = dec.decompress(pending, cap)
        except error as exc:
            raise LivelabError(f"{what}: corrupt {kind} data: {exc}") from None
        pending = getattr(dec, "unconsumed_tail", b"")
        more_output = len(piece) == cap
        produced += len(piece)
        if produced > limit:
            raise LivelabError(f"{what} decompresses to more than {_mib(limit)}")
        out.append(piece)
    return pos - len(pending) - len(dec.unused_data), produced


def decompress(blob: bytes, *, limit: int | None = None, what: str = "initrd") -> bytes:
    """Decompress xz or gzip (several streams, zero padding between them, as the kernel
    accepts), or return an uncompressed cpio as is.

    More than ``limit`` bytes of output (default ``MAX_INITRD_UNPACKED``) is an error
    ("``what`` decompresses to more than N MiB"), found without decompressing further.
    """
    if limit is None:
        limit = MAX_INITRD_UNPACKED
    if not blob.startswith((XZ_MAGIC, GZIP_MAGIC)):
        return blob
    data = memoryview(blob)
    out: list = []
    produced = 0
    pos = 0
    while pos < len(data):
        if data[pos] == 0:
            nonzero = _NOT_ZERO.search(blob, pos)
            if nonzero is None:
                break
            pos = nonzero.start()
        head = bytes(data[pos:pos + len(XZ_MAGIC)])
        if head.startswith(XZ_MAGIC):
            pos, produced = _inflate(lzma.LZMADecompressor(format=lzma.FORMAT_XZ), lzma.LZMAError, "xz",
                                     data, pos, out, produced, limit, what)
        elif head.startswith(GZIP_MAGIC):
            pos, produced = _inflate(zlib.decompressobj(16 + zlib.MAX_WBITS), zlib.error, "gzip",
                                     data, pos, out, produced, limit, what)
        else:  # an uncompressed archive after the compressed ones
            produced += len(data) - pos
            if produced > limit:
                raise LivelabError(f"{what} decompresses to more than {_mib(limit)}")
            out.append(bytes(data[pos:]))
            break
    return b"".join(out)


def read_initrd(blob: bytes, *, limit: int | None = None, what: str = "initrd") -> list:
    """List the members of an xz/gzip/uncompressed newc initrd (at most ``limit`` bytes unpacked)."""
    return read_newc(decompress(blob, limit=limit, what=what))


def extract_member(blob: bytes, name: str, *, limit: int | None = None,
                   what: str = "initrd") -> bytes | None:
    """Data of member ``name`` (leading ``/`` or ``./`` ignored) or None."""
    want = name.lstrip("/")
    for e in iter_newc(decompress(blob, limit=limit, what=what)):
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
