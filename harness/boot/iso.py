"""Live-ISO customization: the Ignition and kernel-argument embed areas.

A Python re-implementation of the parts of ``coreos-installer iso customize`` that
livelab needs (``--live-ignition`` and ``--live-karg-*``), written from the format
notes in the reference FORMATS.md §4:

* Ignition area: ``coreos/igninfo.json`` (``file``, optional ``offset``/``length``),
  else ``images/ignition.img``; legacy ISOs also carry a ``coreiso+`` header at byte
  32768-24 (magic, LE u64 offset, LE u64 length).  The area holds an xz (CRC32) newc
  cpio with ``config.ign`` (0100600), zero padded; all zero means "not customized".
* Kargs areas: ``coreos/kargs.json`` (``default``, ``size``, ``files`` with ``path``,
  ``offset``, optional ``pad``/``end``), legacy ``coreKarg`` header at 32768-24-72
  (magic, LE u64 length, LE u64 default offset, up to 6 LE u64 area offsets).  Each
  area is kargs + end char, padded with the pad char to ``size``.

When both the JSON files and legacy headers are present all areas they name are
written consistently.  Bytes outside the areas are never touched, except by
``LiveISO.strip_signature``, which unsigns one PE file of the image (its security directory
entry and certificate table, ``harness.boot.pe``) for Secure Boot refusal tests.

The image may be hostile: every offset and length it gives is checked when it is opened
(see ``LiveISO``), the Ignition area is decompressed only up to ``MAX_IGNITION_UNPACKED``,
and every write goes to a livelab temp copy (``harness.atomic``) renamed over the target
only when complete -- also when the ISO is modified in place.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import stat
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple, Union

from ..atomic import atomic_output, atomic_write, check_output_path
from ..errors import LivelabError, required
from . import initrd as _initrd
from . import pe
from .initrd import MiB

SECTOR = 2048
_SYSTEM_AREA_END = 16 * SECTOR  # 32768
_CORE_ISO_MAGIC = b"coreiso+"
_CORE_ISO_OFFSET = _SYSTEM_AREA_END - 24
_CORE_KARG_MAGIC = b"coreKarg"
_CORE_KARG_OFFSET = _SYSTEM_AREA_END - 24 - 72
_MAX_KARGS_AREA = 2048
_MAX_LEGACY_KARG_AREAS = 6
DEFAULT_PAD = "#"
DEFAULT_END = "\n"
KARG_EMBED_MARKER = " COREOS_KARG_EMBED_AREA"
EL_TORITO_ID = b"EL TORITO SPECIFICATION"     # a boot record volume descriptor's system identifier

IgnitionInput = Union[dict, bytes, str, None]


# --------------------------------------------------------------------------- ISO9660


@dataclass(frozen=True)
class IsoEntry:
    """A directory record: ``name`` (Rock Ridge name if present), extent byte offset, size."""

    name: str
    iso_name: str
    offset: int
    size: int
    is_dir: bool


# Directories of real live ISOs are a sector or two and the tree has a few dozen entries; these
# bound what a hostile image can make the reader hold or walk.
MAX_DIRECTORY_SIZE = 4 * MiB
MAX_TREE_ENTRIES = 100_000
_BLOCK_SIZES = (512, 1024, 2048)   # ISO9660 allows 2^n from 512 up to the 2048-byte sector


def _u32(b: bytes, off: int) -> int:
    return struct.unpack_from("<I", b, off)[0]


class ISO9660:
    """Minimal read-only ISO9660 directory reader (primary volume, Rock Ridge NM names).

    The image may be hostile: reads never go past what the image holds, a directory is read
    only up to ``MAX_DIRECTORY_SIZE``, a Rock Ridge continuation area only up to one block,
    and a walk of the whole tree (:meth:`files`) visits each directory once.
    """

    def __init__(self, source: str | os.PathLike[str] | IO[bytes], size: int | None = None):
        """``source``: a path (opened for each read) or an open binary file object."""
        self._path: Path | None
        self._f: IO[bytes] | None
        if isinstance(source, (str, os.PathLike)):
            self._path, self._f = Path(source), None
            self.name = str(source)
        else:
            self._path, self._f = None, source
            self.name = str(getattr(source, "name", "ISO image"))
        self._size = size
        self.block_size = SECTOR
        self.volume_id = ""
        self.volume_size = 0
        self.el_torito_id: int | None = None    # offset of the El Torito boot record's system identifier
        root = None
        sector = 16
        while True:
            desc = self._read(sector * SECTOR, SECTOR)
            if len(desc) < SECTOR or desc[1:6] != b"CD001":
                break
            if desc[0] == 0 and desc[7:7 + len(EL_TORITO_ID)] == EL_TORITO_ID and self.el_torito_id is None:
                self.el_torito_id = sector * SECTOR + 7
            if desc[0] == 1 and root is None:
                self.block_size = struct.unpack_from("<H", desc, 128)[0] or SECTOR
                self.volume_id = desc[40:72].decode("ascii", "replace").strip()
                root = desc[156:156 + 34]
                self.volume_size = _u32(desc, 80) * self.block_size
            sector += 1
            if desc[0] == 255 or sector > 64:
                break
        # the system area and the volume descriptors: no embed area may lie here
        self.descriptors_end = sector * SECTOR
        if root is None:
            raise LivelabError(f"{self.name}: not an ISO9660 image (no primary volume descriptor at sector 16)")
        if self.block_size not in _BLOCK_SIZES:
            raise LivelabError(f"{self.name}: not a usable ISO9660 image (logical block size {self.block_size})")
        if size is not None and size < self.volume_size:
            raise LivelabError(f"{self.name}: truncated ISO image: {size} bytes, but its volume descriptor "
                               f"says {self.volume_size}")
        self._susp_skip = 0
        self.root = IsoEntry("", "", _u32(root, 2) * self.block_size, _u32(root, 10), True)
        # the root's "." record may carry the SUSP "SP" entry with the skip length
        first = self._read(self.root.offset, min(self.root.size, SECTOR))
        if first and first[0] >= 34:
            su = self._system_use(first[:first[0]])
            if su[:2] == b"SP" and len(su) >= 7 and su[4:6] == b"\xbe\xef":
                self._susp_skip = su[6]
        self._cache: dict = {}

    def _read(self, offset: int, length: int) -> bytes:
        try:
            if self._f is None:
                assert self._path is not None   # one of the two is always set
                with open(self._path, "rb") as f:
                    f.seek(offset)
                    return f.read(length)
            self._f.seek(offset)
            return self._f.read(length)
        except OSError as exc:
            raise LivelabError(f"cannot read {self.name}: {exc.strerror or exc}") from None

    @staticmethod
    def _system_use(rec: bytes) -> bytes:
        name_len = rec[32]
        start = 33 + name_len + (1 - name_len % 2)
        return rec[start:]

    def _rr_name(self, rec: bytes) -> str | None:
        su = self._system_use(rec)[self._susp_skip:]
        parts: list = []
        found = False
        areas = [su]
        hops = 0
        while areas and hops < 8:
            area = areas.pop(0)
            hops += 1
            i = 0
            while i + 4 <= len(area):
                sig, ln = area[i:i + 2], area[i + 2]
                if ln < 4 or i + ln > len(area):
                    break
                body = area[i:i + ln]
                if sig == b"NM" and ln >= 5:
                    flags = body[4]
                    if not flags & 0x06:  # not "." / ".." placeholders
                        parts.append(body[5:])
                        found = True
                elif sig == b"CE" and ln >= 28:
                    blk, off, cl = _u32(body, 4), _u32(body, 12), _u32(body, 20)
                    # a continuation area lies within one logical block
                    areas.append(self._read(blk * self.block_size + off, min(cl, self.block_size)))
                elif sig == b"ST":
                    break
                i += ln
        if not found:
            return None
        return b"".join(parts).decode("utf-8", "replace")

    def listdir(self, entry: IsoEntry) -> list:
        if not entry.is_dir:
            raise LivelabError(f"{entry.name!r} is not a directory in the ISO")
        key = entry.offset
        if key in self._cache:
            return self._cache[key]
        if entry.size > MAX_DIRECTORY_SIZE:
            raise LivelabError(f"{self.name}: directory {entry.name or '/'!r} is {entry.size} bytes, "
                               f"more than the {MAX_DIRECTORY_SIZE} an ISO directory may have here")
        data = self._read(entry.offset, entry.size)
        out: list = []
        pos = 0
        while pos < len(data):
            ln = data[pos]
            if ln == 0:  # records never cross sectors: skip to the next one
                pos = (pos // self.block_size + 1) * self.block_size
                continue
            rec = data[pos:pos + ln]
            pos += ln
            if len(rec) < 34:
                break
            name_len = rec[32]
            raw = rec[33:33 + name_len]
            if raw in (b"\x00", b"\x01"):
                continue
            iso_name = raw.decode("ascii", "replace")
            if ";" in iso_name:
                iso_name = iso_name.split(";", 1)[0]
            if iso_name.endswith(".") and not rec[25] & 0x02:
                iso_name = iso_name[:-1]
            rr = self._rr_name(rec)
            out.append(IsoEntry(rr or iso_name, iso_name, _u32(rec, 2) * self.block_size,
                                _u32(rec, 10), bool(rec[25] & 0x02)))
        self._cache[key] = out
        return out

    def lookup(self, path: str) -> IsoEntry | None:
        """Find ``path`` (``/``-separated, leading ``/`` optional, case-insensitive)."""
        entry = self.root
        for comp in [c for c in path.strip("/").split("/") if c]:
            if not entry.is_dir:
                return None
            children = self.listdir(entry)
            match = next((c for c in children if c.name == comp), None)
            if match is None:
                low = comp.lower()
                match = next((c for c in children if c.name.lower() == low or c.iso_name.lower() == low), None)
            if match is None:
                return None
            entry = match
        return entry

    def walk(self) -> Iterator[tuple[str, IsoEntry]]:
        """Every directory (the root first, as ``""``) and file of the tree with its path; each
        directory is read once, so a directory that lists one of its parents ends the walk
        instead of looping."""
        seen: set = set()
        entries = 0
        stack: list = [("", self.root)]
        while stack:
            prefix, directory = stack.pop()
            if directory.offset in seen:
                continue
            seen.add(directory.offset)
            yield prefix, directory
            for child in self.listdir(directory):
                entries += 1
                if entries > MAX_TREE_ENTRIES:
                    raise LivelabError(f"{self.name}: more than {MAX_TREE_ENTRIES} files and directories")
                path = f"{prefix}/{child.name}" if prefix else child.name
                if child.is_dir:
                    stack.append((path, child))
                else:
                    yield path, child

    def files(self) -> Iterator[tuple[str, IsoEntry]]:
        """Every file of the tree with its path (see :meth:`walk`)."""
        return ((path, entry) for path, entry in self.walk() if not entry.is_dir)

    def file_containing(self, offset: int, length: int) -> str | None:
        """The path of a file whose extent holds bytes ``offset`` to ``offset + length``, or None."""
        for path, entry in self.files():
            if entry.offset <= offset and offset + length <= entry.offset + entry.size:
                return path
        return None

    def read_file(self, entry: IsoEntry) -> bytes:
        return self._read(entry.offset, entry.size)


# --------------------------------------------------------------------------- areas


class KargsArea(NamedTuple):
    """A kernel-argument embed area: absolute byte ``offset`` in the ISO, ``length``."""

    offset: int
    length: int
    pad: str = DEFAULT_PAD
    end: str = DEFAULT_END
    file: str | None = None  # ISO path, or None for a legacy coreKarg area


def _parse_kargs_area(raw: bytes, area: KargsArea) -> str:
    text = raw.decode("utf-8", "replace")
    stripped = text.rstrip(area.pad)
    if stripped.endswith(area.end):
        stripped = stripped[: -len(area.end)]
    return stripped.strip()


def _format_kargs_area(kargs: str, area: KargsArea) -> bytes:
    content = (kargs + area.end).encode()
    if len(content) > area.length:
        raise LivelabError(
            f"kernel arguments too long for the embed area: {len(content)} > {area.length} bytes")
    filled = content + area.pad.encode() * (area.length - len(content))
    if len(filled) != area.length:   # pad is one byte by construction (see LiveISO._find_kargs)
        raise LivelabError(f"kernel-argument area padding {area.pad!r} is not one byte")
    return filled


def _validate_kargs_text(kargs: str) -> None:
    if any(c in kargs for c in "\n\r\0#"):
        raise LivelabError(f"kernel arguments may not contain newlines, NUL or '#': {kargs!r}")


def modify_kargs(base: str, append: Iterable[str] = (), delete: Iterable[str] = (),
                 replace: Iterable = ()) -> str:
    """Apply deletes, then replaces, then appends to the space-separated ``base`` kargs.

    * delete ``K=V`` removes every exact ``K=V``; delete ``K`` removes ``K`` and every
      ``K=...``; deleting something absent is an error.
    * replace ``K=OLD=NEW`` (or a ``(K, OLD, NEW)`` tuple) turns every ``K=OLD`` into
      ``K=NEW``; error if ``K=OLD`` is absent.
    * append adds the argument(s) at the end.
    """
    args = base.split()
    for d in delete:
        d = d.strip()
        if not d:
            continue
        keep = [a for a in args if a != d] if "=" in d else [a for a in args if a != d and not a.startswith(d + "=")]
        if len(keep) == len(args):
            raise LivelabError(f"cannot delete kernel argument {d!r}: not present in {' '.join(args)!r}")
        args = keep
    for r in replace:
        key, old, new = _split_replace(r)
        target = f"{key}={old}" if old != "" else key
        if target not in args:
            raise LivelabError(f"cannot replace kernel argument {target!r}: not present in {' '.join(args)!r}")
        repl = f"{key}={new}" if new != "" else key
        args = [repl if a == target else a for a in args]
    for a in append:
        args.extend(a.split())
    result = " ".join(args)
    _validate_kargs_text(result)
    return result


def _split_replace(r: str | Sequence[str]) -> tuple:
    if isinstance(r, (tuple, list)):
        if len(r) != 3:
            raise LivelabError(f"karg replace needs (key, old, new), got {r!r}")
        return tuple(str(x) for x in r)
    s = str(r)
    if s.count("=") < 2:
        raise LivelabError(f"--live-karg-replace wants KEY=OLD=NEW, got {s!r}")
    key, rest = s.split("=", 1)
    old, new = rest.rsplit("=", 1)
    if not key:
        raise LivelabError(f"--live-karg-replace wants KEY=OLD=NEW, got {s!r}")
    return key, old, new


# --------------------------------------------------------------------------- Ignition


_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(-experimental)?$")


def load_ignition(data: bytes | str | dict, source: str = "Ignition config") -> dict:
    """Parse and sanity-check an Ignition config (JSON object with ``ignition.version`` 3.x)."""
    if isinstance(data, dict):
        cfg = data
    else:
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise LivelabError(f"{source}: not UTF-8 text") from None
        try:
            cfg = json.loads(data)
        except json.JSONDecodeError as exc:
            hint = ("" if data.lstrip().startswith("{")
                    else " (a Butane YAML file? translate it first with `livelab butane`)")
            raise LivelabError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} "
                               f"column {exc.colno}{hint}") from None
    if not isinstance(cfg, dict):
        raise LivelabError(f"{source}: an Ignition config must be a JSON object")
    ign = cfg.get("ignition")
    version = ign.get("version") if isinstance(ign, dict) else None
    if not isinstance(version, str):
        raise LivelabError(f"{source}: missing ignition.version (not an Ignition config?)")
    m = _VERSION_RE.match(version)
    if not m:
        raise LivelabError(f"{source}: invalid ignition.version {version!r}")
    if m.group(1) != "3":
        raise LivelabError(f"{source}: ignition.version {version} is not supported (live images need spec 3.x)")
    return cfg


def _version_key(v: str) -> tuple:
    m = _VERSION_RE.match(v)
    if m is None:
        raise LivelabError(f"Ignition version {v!r}: expected X.Y.Z[-experimental]")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if m.group(4) else 1)


def merge_ignition(configs: Sequence[bytes | str | dict]) -> bytes:
    """One config: returned verbatim (bytes).  Several: a parent config whose
    ``ignition.config.merge`` lists each as a ``data:`` URL, with the highest version."""
    if not configs:
        raise LivelabError("no Ignition config given")
    raws: list = []
    parsed: list = []
    for i, c in enumerate(configs):
        cfg = load_ignition(c, f"Ignition config #{i + 1}")
        parsed.append(cfg)
        if isinstance(c, dict):
            raws.append(json.dumps(c, separators=(",", ":")).encode())
        else:
            raws.append(c.encode() if isinstance(c, str) else bytes(c))
    if len(raws) == 1:
        return raws[0]
    version = max((p["ignition"]["version"] for p in parsed), key=_version_key)
    parent = {
        "ignition": {
            "version": version,
            "config": {"merge": [
                {"source": "data:;base64," + base64.b64encode(r).decode("ascii")} for r in raws
            ]},
        }
    }
    return json.dumps(parent, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- file helpers


_FICLONE = 0x40049409   # linux/fs.h: FICLONE = _IOW(0x94, 9, int)


def _copy_into(source: IO[bytes], out: IO[bytes]) -> None:
    """Copy all of ``source`` into the empty ``out``: a reflink where the filesystem can
    (btrfs, xfs: no data copied), else by reading and writing."""
    try:
        fcntl.ioctl(out.fileno(), _FICLONE, source.fileno())
        return
    except OSError:
        pass
    shutil.copyfileobj(source, out, MiB)


def _json_text(value: object) -> str:
    """``value`` as JSON, shortened for a one-line message; a run of spaces in a string is
    escaped (``\\u0020``), as a one-line message (``LivelabError.one_line``) would squeeze it."""
    if isinstance(value, str) and len(value) > 57:
        text = json.dumps(value[:54] + "...")
    else:
        text = json.dumps(value)
        text = text if len(text) <= 60 else text[:57] + "..."
    return re.sub(r"  +", lambda m: "\\u0020" * len(m.group()), text)


_KIND_NAMES = {int: "an integer", str: "a string", list: "a list", dict: "an object"}


class _EmbedJson:
    """One of the ISO's ``coreos/*.json`` files: typed access to its keys, with one-line errors
    that name the ISO, the file, the key and the value found."""

    def __init__(self, iso: Path, name: str, doc: dict):
        self.iso, self.name, self.doc = iso, name, doc

    def error(self, key: str, value: object, problem: str) -> LivelabError:
        return LivelabError(f"{self.iso}: {self.name}: {key} is {_json_text(value)}: {problem}")

    def get(self, obj: dict, name: str, key: str, kind: type, *, required: bool = True) -> Any:
        """``obj[name]`` (``key`` is its full name for messages), checked to be a ``kind``.

        An optional key that is absent or null gives None; a JSON ``true`` is no integer.
        """
        value = obj.get(name)
        if value is None and not required:
            return None
        if name not in obj:
            raise LivelabError(f"{self.iso}: {self.name}: {key} is missing")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(key, value, f"expected {_KIND_NAMES[kind]}")
        return value


class _Claim(NamedTuple):
    """A byte range of the image that will be written, and where the image said so."""

    offset: int
    length: int
    key: str       # e.g. "coreos/kargs.json: files[1].offset", "coreKarg header: area offset 2"
    value: object  # the value found under ``key``

    def overlaps(self, other: _Claim) -> bool:
        return self.offset < other.offset + other.length and other.offset < self.offset + self.length


# --------------------------------------------------------------------------- LiveISO


# cosa makes the Ignition area (images/ignition.img) 256 KiB.  The whole area is read into
# memory and rewritten, so one much bigger than that is refused rather than trusted.
MAX_IGNITION_AREA = 16 * MiB
# What the Ignition area may decompress to.  The initramfs unpacks it into RAM at boot, and a
# live config -- even with CA bundles or a few embedded files -- is kilobytes, at most a few MiB.
MAX_IGNITION_UNPACKED = 16 * MiB
# coreos/igninfo.json and coreos/kargs.json are a few hundred bytes.
MAX_EMBED_JSON = 64 * 1024


class LiveISO:
    """The embed areas of a CoreOS live ISO.

    Attributes: ``ignition_area`` ``(offset, length)`` or None (primary area:
    igninfo.json / images/ignition.img, else coreiso+); ``ignition_areas`` (every
    distinct area found, written consistently); ``kargs_areas`` (list of
    ``KargsArea``); ``default_kargs`` (str or None); ``volume_id``; ``sources``.

    Everything the image says about where the areas are (JSON files, legacy headers, the
    ISO9660 directory) is checked when the ISO is opened: every area lies inside the image
    past its volume descriptors, inside the file it is said to be part of, and overlaps no
    other area, no ISO9660 directory and neither coreos/*.json file; the default kargs fit.
    A failed check is a one-line LivelabError naming the ISO, the key and its value, raised
    before anything is written.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.size = _image_size(self.path)
        self.sources: list = []
        self.ignition_area: tuple | None = None
        self.ignition_areas: list = []
        self.kargs_areas: list = []
        self.default_kargs: str | None = None
        self.legacy_ignition_area: tuple | None = None
        self.legacy_kargs: dict | None = None
        self._claims: list = []
        self.fs = ISO9660(self.path, self.size)
        self.volume_id = self.fs.volume_id
        self._protected = self._metadata_extents()
        self._find_ignition()
        self._find_kargs()
        if not self.ignition_areas and not self.kargs_areas:
            raise LivelabError(f"{self.path}: no Ignition or kernel-argument embed area found (not a CoreOS live ISO?)")

    # ---- discovery
    def _fail(self, key: str, value: object, problem: str) -> LivelabError:
        return LivelabError(f"{self.path}: {key} is {_json_text(value)}: {problem}")

    def _claim(self, offset: int, length: int, key: str, value: object) -> None:
        """Record that ``offset``/``length`` will be written; error if it is not a writable
        place of the image (outside it, in its system area / volume descriptors, or over an
        area claimed before)."""
        if offset < self.fs.descriptors_end:
            raise self._fail(key, value, f"its area (image offset {offset}) would overwrite the ISO's "
                                         f"system area or volume descriptors (bytes 0-{self.fs.descriptors_end - 1})")
        if offset + length > self.size:
            raise self._fail(key, value, f"its area (image offset {offset}, {length} bytes) ends past "
                                         f"the end of the image ({self.size} bytes)")
        claim = _Claim(offset, length, key, value)
        for what, p_off, p_len in self._protected:
            if claim.overlaps(_Claim(p_off, p_len, what, None)):
                raise self._fail(key, value, f"its area (image offset {offset}, {length} bytes) overlaps {what} "
                                             f"(image offset {p_off}, {p_len} bytes), which the embed areas "
                                             f"are found by")
        for earlier in self._claims:
            if claim.overlaps(earlier):
                raise self._fail(key, value, f"its area (image offset {offset}, {length} bytes) overlaps the one of "
                                             f"{earlier.key} (image offset {earlier.offset}, {earlier.length} bytes)")
        self._claims.append(claim)

    def _metadata_extents(self) -> list[tuple[str, int, int]]:
        """``(what, offset, length)`` of what the areas are found by: the ISO9660 directories and
        coreos/igninfo.json and coreos/kargs.json.  No area may overlap them: writing it would
        leave an ISO that livelab (and coreos-installer) can no longer read or reset."""
        out = []
        for path, entry in self.fs.walk():
            if entry.is_dir:
                out.append((f"the ISO directory {path or '/'}", entry.offset, entry.size))
        for path in ("coreos/igninfo.json", "coreos/kargs.json"):
            found = self.fs.lookup(path)
            if found is not None and not found.is_dir:
                out.append((path, found.offset, found.size))
        return out

    def _file_entry(self, doc: _EmbedJson, key: str, path: str) -> IsoEntry:
        """The ISO file ``path`` named under ``key`` of ``doc``, its extent checked to lie in the image."""
        entry = self.fs.lookup(path)
        if entry is None:
            raise doc.error(key, path, "no such file in the ISO")
        if entry.is_dir:
            raise doc.error(key, path, "a directory in the ISO, not a file")
        if entry.offset + entry.size > self.size:
            raise doc.error(key, path, f"its extent (image offset {entry.offset}, {entry.size} bytes) ends past "
                                       f"the end of the image ({self.size} bytes)")
        return entry

    def _json_file(self, path: str) -> _EmbedJson | None:
        entry = self.fs.lookup(path)
        if entry is None:
            return None
        if entry.is_dir:
            raise LivelabError(f"{self.path}: {path} is a directory, not a file")
        if entry.size > MAX_EMBED_JSON:
            raise LivelabError(f"{self.path}: {path} is {entry.size} bytes, more than the {MAX_EMBED_JSON} "
                               f"such a file may have")
        raw = self.fs.read_file(entry)
        if len(raw) < entry.size:
            raise LivelabError(f"{self.path}: {path} ends past the end of the image")
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):   # JSON or UTF-8 errors, huge numbers, deep nesting
            raise LivelabError(f"{self.path}: {path} is not valid JSON") from None
        if not isinstance(obj, dict):
            raise LivelabError(f"{self.path}: {path} is not a JSON object")
        return _EmbedJson(self.path, path, obj)

    def _find_ignition(self) -> None:
        primary = None
        info = self._json_file("coreos/igninfo.json")
        if info is not None:
            doc = info.doc
            name: str = info.get(doc, "file", "file", str)
            entry = self._file_entry(info, "file", name)
            off: int = info.get(doc, "offset", "offset", int, required=False) or 0
            if off < 0 or off >= entry.size:
                raise info.error("offset", off, f"outside {name} ({entry.size} bytes)")
            length: int | None = info.get(doc, "length", "length", int, required=False)
            if length is None:
                length = entry.size - off
                if length > MAX_IGNITION_AREA:
                    raise info.error("file", name, f"an Ignition area of {length} bytes, more than the "
                                                   f"{MAX_IGNITION_AREA} livelab accepts")
            elif length <= 0 or off + length > entry.size:
                raise info.error("length", length, f"the area at offset {off} of {name} would end past "
                                                   f"its end ({entry.size} bytes)")
            elif length > MAX_IGNITION_AREA:
                raise info.error("length", length, f"more than the {MAX_IGNITION_AREA} bytes livelab accepts "
                                                   f"for an Ignition area")
            primary = (entry.offset + off, length)
            self._claim(*primary, "coreos/igninfo.json: offset", off)
            self.sources.append("coreos/igninfo.json")
        else:
            image = self.fs.lookup("images/ignition.img")
            if image is not None and not image.is_dir and image.size > 0:
                key = "images/ignition.img: extent"
                if image.offset + image.size > self.size:
                    raise self._fail(key, image.offset, f"the {image.size}-byte file ends past the end of the "
                                                        f"image ({self.size} bytes)")
                if image.size > MAX_IGNITION_AREA:
                    raise self._fail(key, image.offset, f"an Ignition area of {image.size} bytes, more than the "
                                                        f"{MAX_IGNITION_AREA} livelab accepts")
                primary = (image.offset, image.size)
                self._claim(*primary, key, image.offset)
                self.sources.append("images/ignition.img")
        hdr = self._read(_CORE_ISO_OFFSET, 24)
        if len(hdr) == 24 and hdr[:8] == _CORE_ISO_MAGIC:
            off, length = struct.unpack_from("<QQ", hdr, 8)
            if length == 0 or length > MAX_IGNITION_AREA:
                raise self._fail("coreiso+ header: length", length,
                                 f"not an Ignition area length (1 to {MAX_IGNITION_AREA} bytes)")
            self.legacy_ignition_area = (off, length)
            if self.legacy_ignition_area != primary:
                self._claim(off, length, "coreiso+ header: offset", off)
                if self.fs.file_containing(off, length) is None:
                    raise self._fail("coreiso+ header: offset", off,
                                     f"its {length}-byte area is not inside any file of the ISO")
            self.sources.append("coreiso+")
        for area in (primary, self.legacy_ignition_area):
            if area is not None and area not in self.ignition_areas:
                self.ignition_areas.append(area)
        self.ignition_area = self.ignition_areas[0] if self.ignition_areas else None

    def _find_kargs(self) -> None:
        size = None
        info = self._json_file("coreos/kargs.json")
        if info is not None:
            doc = info.doc
            default: str = info.get(doc, "default", "default", str)
            size = info.get(doc, "size", "size", int)
            files: list = info.get(doc, "files", "files", list)
            if not 0 < size <= _MAX_KARGS_AREA:
                raise info.error("size", size, f"not a kernel-argument area size (1 to {_MAX_KARGS_AREA} bytes)")
            for i, item in enumerate(files):
                where = f"files[{i}]"
                if not isinstance(item, dict):
                    raise info.error(where, item, "expected an object")
                path: str = info.get(item, "path", f"{where}.path", str)
                offset: int = info.get(item, "offset", f"{where}.offset", int)
                entry = self._file_entry(info, f"{where}.path", path)
                if offset < 0:
                    raise info.error(f"{where}.offset", offset, f"an offset inside {path} cannot be negative")
                if offset + size > entry.size:
                    raise info.error(f"{where}.offset", offset, f"the {size}-byte area would end past the end "
                                                                f"of {path} ({entry.size} bytes)")
                pad = info.get(item, "pad", f"{where}.pad", str, required=False)
                end = info.get(item, "end", f"{where}.end", str, required=False)
                pad = DEFAULT_PAD if pad is None else pad
                end = DEFAULT_END if end is None else end
                for key, char in (("pad", pad), ("end", end)):
                    if len(char.encode()) != 1:
                        raise info.error(f"{where}.{key}", char, "expected one ASCII character")
                self._claim(entry.offset + offset, size, f"{info.name}: {where}.offset", offset)
                self.kargs_areas.append(KargsArea(entry.offset + offset, size, pad, end, path))
            self.default_kargs = default.strip()
            self.sources.append("coreos/kargs.json")
        hdr = self._read(_CORE_KARG_OFFSET, 72)
        if len(hdr) == 72 and hdr[:8] == _CORE_KARG_MAGIC:
            vals = struct.unpack_from("<8Q", hdr, 8)
            length, default_off, offsets = vals[0], vals[1], [v for v in vals[2:] if v]
            if length == 0 or length > _MAX_KARGS_AREA:
                raise self._fail("coreKarg header: length", length,
                                 f"not a kernel-argument area length (1 to {_MAX_KARGS_AREA} bytes)")
            if size is not None and size != length:
                raise self._fail("coreKarg header: length", length, f"disagrees with coreos/kargs.json size {size}")
            if default_off + length > self.size:
                raise self._fail("coreKarg header: default offset", default_off,
                                 f"its {length}-byte area ends past the end of the image ({self.size} bytes)")
            legacy_default = _parse_kargs_area(self._read(default_off, length), KargsArea(default_off, length))
            self.legacy_kargs = {"length": length, "default_offset": default_off,
                                 "offsets": offsets, "default": legacy_default}
            known = {a.offset for a in self.kargs_areas}
            for i, off in enumerate(offsets):
                if off in known:   # the same area as one of kargs.json's
                    continue
                key = f"coreKarg header: area offset {i}"
                self._claim(off, length, key, off)
                if self.fs.file_containing(off, length) is None:
                    raise self._fail(key, off, f"its {length}-byte area is not inside any file of the ISO")
                known.add(off)
                self.kargs_areas.append(KargsArea(off, length))
            if self.default_kargs is None:
                self.default_kargs = legacy_default
            self.sources.append("coreKarg")
        if info is not None:
            self._check_default_kargs(info.error, "default")
        elif self.legacy_kargs is not None:
            self._check_default_kargs(self._fail, "coreKarg header: default kargs")

    def _check_default_kargs(self, error: Callable[[str, object, str], LivelabError], key: str) -> None:
        """The default kargs are valid kernel arguments and fit every kargs area."""
        default = self.default_kargs or ""
        if any(c in default for c in "\n\r\0#"):
            raise error(key, default, "kernel arguments may not contain newlines, NUL or '#'")
        for area in self.kargs_areas:
            need = len((default + area.end).encode())
            if need > area.length:
                raise error(key, default, f"{need} bytes with its end character, more than the "
                                          f"{area.length}-byte kernel-argument area")

    # ---- reading
    def _read(self, offset: int, length: int) -> bytes:
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                return f.read(length)
        except OSError as exc:
            raise LivelabError(f"cannot read {self.path}: {exc.strerror or exc}") from None

    def area_ranges(self) -> list:
        """Every ``(offset, length)`` this module may write."""
        return sorted(set(self.ignition_areas) | {(a.offset, a.length) for a in self.kargs_areas})

    def current_kargs(self) -> str | None:
        """Kernel arguments now in the areas (None if the ISO has no kargs areas)."""
        if not self.kargs_areas:
            return None
        values = {_parse_kargs_area(self._read(a.offset, a.length), a) for a in self.kargs_areas}
        if len(values) != 1:
            raise LivelabError(f"{self.path}: kernel-argument embed areas disagree: "
                               f"{', '.join(_json_text(v) for v in sorted(values))}")
        return values.pop()

    def embedded_initrd(self) -> bytes | None:
        """Raw (compressed) archive in the Ignition area, without the zero padding; None if empty."""
        if self.ignition_area is None:
            return None
        raw = self._read(*self.ignition_area)
        if not raw.strip(b"\0"):
            return None
        return raw.rstrip(b"\0") if raw.startswith(_initrd.GZIP_MAGIC) else raw

    def embedded_ignition_bytes(self) -> bytes | None:
        blob = self.embedded_initrd()
        if blob is None:
            return None
        return _initrd.extract_member(blob, "config.ign", limit=MAX_IGNITION_UNPACKED,
                                      what=f"{self.path}: Ignition embed area")

    def embedded_ignition(self) -> dict | None:
        """The embedded ``config.ign`` parsed as JSON, or None when the area is empty."""
        data = self.embedded_ignition_bytes()
        if data is None:
            return None
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise LivelabError(f"{self.path}: embedded config.ign is not valid JSON") from None

    def ignition_customized(self) -> bool:
        return any(self._read(*a).strip(b"\0") for a in self.ignition_areas)

    def kargs_customized(self) -> bool:
        if not self.kargs_areas:
            return False
        try:
            cur = self.current_kargs()
        except LivelabError:
            return True
        return cur != self.default_kargs

    def is_customized(self) -> bool:
        return self.ignition_customized() or self.kargs_customized()

    # ---- writing
    @classmethod
    def customize(cls, src: str | Path, dst: str | Path | None = None,
                  ignition: IgnitionInput | Sequence = None, karg_append: Iterable[str] = (),
                  karg_delete: Iterable[str] = (), karg_replace: Iterable = (), force: bool = False) -> Path:
        """Write ``ignition`` and modified kargs into a copy ``dst`` of ``src`` (in place if
        ``dst`` is None or the same file).

        ``ignition``: a dict, JSON bytes/str (embedded verbatim), a list of those (merged
        via ``ignition.config.merge`` data URLs) or None (area left empty).  Kargs are
        computed from the ISO's default kargs.  An already customized ISO is refused
        unless ``force``; with ``force`` it is reset first.  Returns the output path.
        """
        if dst is not None:
            check_output_path(dst)
        iso = cls(src)
        karg_append, karg_delete, karg_replace = list(karg_append), list(karg_delete), list(karg_replace)
        if iso.is_customized() and not force:
            raise LivelabError(f"{iso.path} is already customized; use --force to replace its customizations "
                               f"(or `livelab iso reset`)")
        payload = None
        if ignition is not None:
            if not iso.ignition_areas:
                raise LivelabError(f"{iso.path} has no Ignition embed area")
            configs: list = list(ignition) if isinstance(ignition, (list, tuple)) else [ignition]
            config = merge_ignition(configs)
            payload = _initrd.ignition_initrd(config)
            room = min(length for _off, length in iso.ignition_areas)
            if len(payload) > room:
                raise LivelabError(f"Compressed initramfs is too large: {len(payload)} bytes > "
                                   f"{room}-byte Ignition area of {iso.path.name}")
        kargs = iso.default_kargs
        if karg_append or karg_delete or karg_replace:
            if not iso.kargs_areas or iso.default_kargs is None:
                raise LivelabError(f"{iso.path} does not support kernel-argument customization (no kargs embed areas)")
            kargs = modify_kargs(iso.default_kargs, karg_append, karg_delete, karg_replace)
        writes = iso._plan(payload, kargs)
        return iso._apply(dst, writes)

    def signature(self, path: str) -> pe.Signature | None:
        """Where the Authenticode signature of the PE file ``path`` of the ISO (a boot loader, the
        EFI-stub kernel) is, as offsets in that file; None when it is unsigned."""
        entry = self.fs.lookup(path)
        if entry is None or entry.is_dir:
            raise LivelabError(f"{self.path}: no file {path} in the ISO")
        if entry.offset + entry.size > self.size:
            raise LivelabError(f"{self.path}: {path} ends past the end of the image")
        head = self._read(entry.offset, min(entry.size, pe.HEADER_BYTES))
        return pe.signature(head, entry.size, f"{self.path}: {path}")

    @classmethod
    def strip_signature(cls, src: str | Path, path: str, dst: str | Path | None = None) -> Path:
        """Write a copy of ``src`` (in place if ``dst`` is None or the same file) in which the PE file
        ``path`` is unsigned: its security directory entry and its certificate table are zeroed, and
        every other byte of the image is kept.  Firmware, shim and GRUB then see an image nobody
        signed (what a Secure Boot test boots to be refused)."""
        if dst is not None:
            check_output_path(dst)
        iso = cls(src)
        sig = iso.signature(path)
        if sig is None:
            raise LivelabError(f"{iso.path}: {path} is not signed (it has no Authenticode certificate table)")
        start = required(iso.fs.lookup(path), LivelabError(f"{iso.path}: no file {path}")).offset
        writes = [(start + sig.entry, b"\0" * 8), (start + sig.offset, b"\0" * sig.size)]
        return iso._apply(dst, writes, allowed=[(off, len(data)) for off, data in writes])

    @classmethod
    def reset(cls, src: str | Path, dst: str | Path | None = None) -> Path:
        """Empty the Ignition area(s) and restore default kargs (in ``dst``, or in place)."""
        if dst is not None:
            check_output_path(dst)
        iso = cls(src)
        return iso._apply(dst, iso._plan(None, iso.default_kargs))

    def _plan(self, payload: bytes | None, kargs: str | None) -> list:
        writes = []
        for off, length in self.ignition_areas:
            data = payload or b""
            writes.append((off, data + b"\0" * (length - len(data))))
        if kargs is not None:
            for a in self.kargs_areas:
                writes.append((a.offset, _format_kargs_area(kargs, a)))
        return writes

    def _output(self, dst: str | Path | None) -> tuple[Path, bool]:
        """Where ``_apply`` writes (``dst``, else the ISO; a symlink's target, not the link),
        and whether that is the ISO itself (then it must be writable, and keeps its mode)."""
        if dst is None:
            named, in_place = self.path, True
        else:
            named = check_output_path(dst)
            in_place = named.exists() and os.path.samefile(named, self.path)
        if not in_place:
            return named, False
        target = named.resolve()
        if not os.access(target, os.W_OK):
            raise LivelabError(f"cannot modify {self.path} in place: it is read-only (write a copy with -o OUT)")
        return check_output_path(target, "ISO image"), True

    def _apply(self, dst: str | Path | None, writes: list, allowed: list | None = None) -> Path:
        """Write a copy of the ISO with ``writes`` (``(offset, data)``, each inside an area
        checked at discovery, or inside ``allowed``) applied to a livelab temp file beside the
        target, then rename it over the target: an interrupted run leaves the target as it was.
        Returns the output path as given (the ISO's when ``dst`` is None)."""
        target, in_place = self._output(dst)
        mode = stat.S_IMODE(self.path.stat().st_mode) if in_place else 0o644
        ranges = self.area_ranges() if allowed is None else allowed
        for off, data in writes:
            if not any(a_off <= off and off + len(data) <= a_off + a_len for a_off, a_len in ranges):
                raise LivelabError(f"internal error: a write at {off} ({len(data)} bytes) is outside every area")
        try:
            with open(self.path, "rb") as source, atomic_output(target, mode=mode) as out:
                _copy_into(source, out)
                copied = os.fstat(out.fileno()).st_size
                if copied != self.size:
                    raise LivelabError(f"{self.path} changed while being copied ({self.size} bytes, then {copied})")
                for off, data in writes:
                    out.seek(off)
                    out.write(data)
                if in_place:
                    os.fchmod(out.fileno(), mode)   # not narrowed by the umask
        except OSError as exc:
            raise LivelabError(f"cannot write {target}: {exc.strerror or exc}") from None
        return Path(dst) if dst is not None else self.path

    # ---- display
    def describe(self) -> str:
        lines = [f"ISO: {self.path}", f"Volume ID: {self.volume_id}",
                 f"Embed metadata: {', '.join(self.sources) or 'none'}"]
        if self.ignition_areas:
            lines.append("Ignition area: " + ", ".join(f"offset {o} length {n}" for o, n in self.ignition_areas))
        else:
            lines.append("Ignition area: none")
        cfg = self.embedded_ignition_bytes() if self.ignition_area else None
        if self.ignition_area and cfg is None and self.ignition_customized():
            lines.append("Embedded Ignition: area not empty, but holds no config.ign")
        elif cfg is None:
            lines.append("Embedded Ignition: none")
        else:
            try:
                text = json.dumps(json.loads(cfg), indent=2, sort_keys=True)
            except (ValueError, RecursionError):
                text = cfg.decode("utf-8", "replace")
            lines.append("Embedded Ignition:")
            lines.extend("  " + ln for ln in text.splitlines())
        if self.kargs_areas:
            lines.append("Kargs areas: " + ", ".join(
                f"{a.file or 'coreKarg'}@{a.offset} ({a.length} B)" for a in self.kargs_areas))
            lines.append(f"Default kargs: {self.default_kargs}")
            lines.append(f"Current kargs: {self.current_kargs()}")
        else:
            lines.append("Kargs areas: none")
        return "\n".join(lines)


def _image_size(path: Path) -> int:
    """The size of the ISO image at ``path``; a one-line error unless it is a readable, non-empty file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LivelabError(f"ISO image not found: {path}") from None
    except OSError as exc:
        raise LivelabError(f"cannot read ISO image {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise LivelabError(f"ISO image {path} is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise LivelabError(f"ISO image {path} is not a regular file")
    if st.st_size == 0:
        raise LivelabError(f"ISO image {path} is empty")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise LivelabError(f"cannot read ISO image {path}: {exc.strerror or exc}") from None
    return st.st_size


def disable_el_torito(path: str | Path) -> bool:
    """Make firmware boot ``path`` as a disk through its MBR (BIOS) or its GPT's ESP (UEFI), as most
    PC firmware boots a USB stick, not through El Torito: the boot record's system identifier
    becomes ``NO TORITO SPECIFICATION`` (what kola does to the ISO of its iso-as-disk tests; OVMF
    would boot El Torito from a disk too).  In place: meant for a run's own customized copy.
    Returns whether the ISO had an El Torito boot record."""
    offset = ISO9660(path).el_torito_id
    if offset is None:
        return False
    try:
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(b"NO")
    except OSError as exc:
        raise LivelabError(f"cannot write {path}: {exc.strerror or exc}") from None
    return True


def ignition_wrap(config: bytes | str | dict | Sequence, out: str | Path | None = None) -> bytes:
    """``pxe ignition wrap``: xz(CRC32) newc cpio with ``config.ign`` at the root.

    Validates (and, for several configs, merges) first; writes to ``out`` if given.
    """
    if out is not None:
        check_output_path(out)
    configs: list = list(config) if isinstance(config, (list, tuple)) else [config]
    blob = _initrd.ignition_initrd(merge_ignition(configs))
    if out is not None:
        atomic_write(out, blob)
    return blob
