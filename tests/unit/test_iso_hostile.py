"""Hostile live ISOs: the real 2021-09 fixture ISO with its embed metadata made to lie.

Every offset and length the image gives (coreos/kargs.json, coreos/igninfo.json, the legacy
coreKarg / coreiso+ headers, the ISO9660 directory) is checked before anything is written:
each bad value is a one-line error naming the ISO, the key and the value, and the ISO stays
byte-identical.  The Ignition area's decompression is bounded (checked under a real memory
limit), files are written through livelab temp names, and bad paths are one-line errors.
"""
from __future__ import annotations

import contextlib
import copy
import errno
import functools
import hashlib
import io
import json
import lzma
import os
import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import refusal_line, run_livelab
from limits import RESULT, MiB, run_limited, zeros_xz

import harness.boot.iso as iso_module
from harness.atomic import TEMP_TAG
from harness.boot import initrd
from harness.boot.iso import ISO9660, MAX_IGNITION_UNPACKED, SECTOR, LiveISO
from harness.cli import main as livelab
from harness.errors import LivelabError

FIXTURE = Path("/work/shared/reference/samples/coreos-installer/embed-areas-2021-09.iso.xz")
REPO = Path(__file__).resolve().parents[2]
IMAGE_SIZE = 681984
IGN_AREA = (102400, 262144)
GRUB_CFG = 370688          # image offset of EFI/fedora/grub.cfg (2192 bytes)
DEFAULT = ("mitigations=auto,nosmt coreos.liveiso=fedora-coreos-34.20210921.dev.0 "
           "ignition.firstboot ignition.platform.id=metal")
# the fixture's coreos/kargs.json
KARGS_JSON = {"default": DEFAULT, "size": 1139,
              "files": [{"offset": 970, "path": "EFI/fedora/grub.cfg"},
                        {"offset": 1870, "path": "isolinux/isolinux.cfg"}]}
CORE_KARG = 32768 - 24 - 72    # legacy coreKarg header: magic, length, default offset, 6 area offsets
CORE_ISO = 32768 - 24          # legacy coreiso+ header: magic, offset, length
CFG = {"ignition": {"version": "3.3.0"}}

pytestmark = pytest.mark.skipif(not FIXTURE.exists(), reason="reference fixture ISO not available")


# ------------------------------------------------------------------ editing an ISO9660 image


def _both_endian32(value: int) -> bytes:
    return struct.pack("<I", value) + struct.pack(">I", value)


def _records(image: bytearray, offset: int, size: int):
    """``(position, record)`` of each directory record in the extent at ``offset``."""
    pos, end = offset, offset + size
    while pos < end:
        length = image[pos]
        if length == 0:
            pos = (pos // SECTOR + 1) * SECTOR
            continue
        yield pos, bytes(image[pos:pos + length])
        pos += length


def set_file(image: bytearray, path: str, data: bytes) -> None:
    """Give the ISO file ``path`` the content ``data``: the data goes at the end of the image,
    the file's directory record is pointed at it; a new file gets a plain ISO9660 record (no
    Rock Ridge name) in its directory's first sector."""
    fs = ISO9660(io.BytesIO(bytes(image)))
    parent_path, _, name = path.rpartition("/")
    parent = fs.lookup(parent_path)
    assert parent is not None and parent.is_dir, parent_path
    existing = fs.lookup(path)
    image.extend(b"\0" * (-len(image) % SECTOR))
    lba = len(image) // SECTOR
    image.extend(data + b"\0" * (-len(data) % SECTOR))
    extent = _both_endian32(lba) + _both_endian32(len(data))
    if existing is not None:
        for pos, rec in _records(image, parent.offset, parent.size):
            if struct.unpack_from("<I", rec, 2)[0] * SECTOR == existing.offset and \
                    struct.unpack_from("<I", rec, 10)[0] == existing.size:
                image[pos + 2:pos + 18] = extent
                return
        raise AssertionError(f"no directory record for {path}")
    end = parent.offset
    for pos, rec in _records(image, parent.offset, SECTOR):
        end = pos + len(rec)
    raw = name.upper().encode("ascii") + b";1"
    body = b"\0" + extent + bytes(7) + b"\0\0\0" + b"\1\0\0\1" + bytes([len(raw)]) + raw
    record = bytes([len(body) + 1 + (1 - len(raw) % 2)]) + body + b"\0" * (1 - len(raw) % 2)
    assert end + len(record) <= parent.offset + SECTOR, "no room in the directory's first sector"
    image[end:end + len(record)] = record


# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture(scope="module")
def pristine_bytes() -> bytes:
    data = lzma.decompress(FIXTURE.read_bytes())
    assert len(data) == IMAGE_SIZE
    return data


@pytest.fixture
def good_iso(pristine_bytes, tmp_path) -> Path:
    p = tmp_path / "in" / "good.iso"
    p.parent.mkdir()
    p.write_bytes(pristine_bytes)
    return p


def make_iso(path: Path, pristine: bytes, *, kargs=None, igninfo=None, core_karg=None, core_iso=None,
             area: bytes | None = None) -> Path:
    """The fixture ISO at ``path`` with ``kargs`` as coreos/kargs.json (a JSON value, or raw
    bytes), ``igninfo`` as a new coreos/igninfo.json, ``core_karg`` (8 u64: length, default
    offset, 6 area offsets) / ``core_iso`` (offset, length) as legacy headers, and ``area`` at
    the start of the Ignition area."""
    image = bytearray(pristine)
    for name, content in (("coreos/kargs.json", kargs), ("coreos/igninfo.json", igninfo)):
        if content is not None:
            set_file(image, name, content if isinstance(content, bytes) else json.dumps(content).encode())
    if core_karg is not None:
        image[CORE_KARG + 8:CORE_KARG + 72] = struct.pack("<8Q", *core_karg)
    if core_iso is not None:
        image[CORE_ISO + 8:CORE_ISO + 24] = struct.pack("<QQ", *core_iso)
    if area is not None:
        assert len(area) <= IGN_AREA[1]
        image[IGN_AREA[0]:IGN_AREA[0] + len(area)] = area
    path.write_bytes(bytes(image))
    return path


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("livelab: error: ") and "Traceback" not in err, err
    return lines[0]


run_cli = functools.partial(run_livelab, timeout=60)     # ``livelab ARGS`` as a user runs it


def assert_clean_error(proc: subprocess.CompletedProcess, message: str) -> None:
    """Exit status 2 and exactly one stderr line, ``livelab: error: <message>``, no traceback."""
    assert refusal_line(proc) == f"livelab: error: {message}"


def with_change(change) -> dict:
    doc = copy.deepcopy(KARGS_JSON)
    change(doc)
    return doc


# ------------------------------------------------------------------ an ISO9660 directory that lies


def _record_position(image: bytearray, directory, iso_name: bytes) -> int:
    for pos, rec in _records(image, directory.offset, directory.size):
        if rec[33:33 + rec[32]] == iso_name:
            return pos
    raise AssertionError(iso_name)


def test_directory_listing_its_parent_ends_the_walk(pristine_bytes):
    image = bytearray(pristine_bytes)
    set_file(image, "coreos/loop", b"")
    fs = ISO9660(io.BytesIO(bytes(image)))
    pos = _record_position(image, fs.lookup("coreos"), b"LOOP;1")
    image[pos + 2:pos + 18] = _both_endian32(fs.root.offset // SECTOR) + _both_endian32(fs.root.size)
    image[pos + 25] = 0x02   # a directory: the root again
    paths = [path for path, _entry in ISO9660(io.BytesIO(bytes(image))).files()]
    assert "coreos/kargs.json" in paths and "EFI/fedora/grub.cfg" in paths
    assert len(paths) == len(set(paths))


def test_huge_directory_is_refused(pristine_bytes, tmp_path, capsys):
    image = bytearray(pristine_bytes)
    fs = ISO9660(io.BytesIO(pristine_bytes))
    pos = _record_position(image, fs.root, b"COREOS")
    image[pos + 10:pos + 18] = _both_endian32(0xFFFFFFF0)
    bad = tmp_path / "bad.iso"
    bad.write_bytes(bytes(image))
    assert livelab(["iso", "show", str(bad)]) == 2
    assert one_error_line(capsys) == (f"livelab: error: {bad}: directory 'coreos' is 4294967280 bytes, "
                                      f"more than the 4194304 an ISO directory may have here")


def test_odd_logical_block_size_is_refused(pristine_bytes, tmp_path):
    image = bytearray(pristine_bytes)
    image[16 * SECTOR + 128:16 * SECTOR + 132] = struct.pack("<H", 1) + struct.pack(">H", 1)
    bad = tmp_path / "bad.iso"
    bad.write_bytes(bytes(image))
    with pytest.raises(LivelabError, match=r"not a usable ISO9660 image \(logical block size 1\)"):
        LiveISO(bad)


# ------------------------------------------------------------------ kargs.json that lies


def _drop(key):
    return lambda d: d.pop(key)


KARGS_CASES = [
    ("negative-offset", lambda d: d["files"][0].update(offset=-970),
     "files[0].offset is -970: an offset inside EFI/fedora/grub.cfg cannot be negative"),
    ("offset-past-the-image", lambda d: d["files"][0].update(offset=10**12),
     "files[0].offset is 1000000000000: the 1139-byte area would end past the end of EFI/fedora/grub.cfg "
     "(2192 bytes)"),
    ("offset-past-its-file", lambda d: d["files"][0].update(offset=1100),
     "files[0].offset is 1100: the 1139-byte area would end past the end of EFI/fedora/grub.cfg (2192 bytes)"),
    ("overlapping-areas", lambda d: d["files"].append({"path": "EFI/fedora/grub.cfg", "offset": 1000}),
     "files[2].offset is 1000: its area (image offset 371688, 1139 bytes) overlaps the one of "
     "coreos/kargs.json: files[0].offset (image offset 371658, 1139 bytes)"),
    ("same-area-twice", lambda d: d["files"].append(dict(d["files"][0])),
     "files[2].offset is 970: its area (image offset 371658, 1139 bytes) overlaps the one of "
     "coreos/kargs.json: files[0].offset (image offset 371658, 1139 bytes)"),
    ("default-longer-than-the-area", lambda d: d.update(default="x=" + "a" * 1200),
     'default is "x=' + "a" * 52 + '...": 1203 bytes with its end character, more than the 1139-byte '
     "kernel-argument area"),
    ("default-with-a-hash", lambda d: d.update(default="quiet # x"),
     "default is \"quiet # x\": kernel arguments may not contain newlines, NUL or '#'"),
    ("offset-a-string", lambda d: d["files"][0].update(offset="970"),
     'files[0].offset is "970": expected an integer'),
    ("offset-a-boolean", lambda d: d["files"][0].update(offset=True), "files[0].offset is true: expected an integer"),
    ("offset-a-float", lambda d: d["files"][0].update(offset=970.0), "files[0].offset is 970.0: expected an integer"),
    ("offset-null", lambda d: d["files"][0].update(offset=None), "files[0].offset is null: expected an integer"),
    ("offset-missing", lambda d: d["files"][0].pop("offset"), "files[0].offset is missing"),
    ("files-an-object", lambda d: d.update(files={"path": "EFI/fedora/grub.cfg", "offset": 970}),
     'files is {"path": "EFI/fedora/grub.cfg", "offset": 970}: expected a list'),
    ("file-entry-a-list", lambda d: d["files"].__setitem__(0, ["EFI/fedora/grub.cfg", 970]),
     'files[0] is ["EFI/fedora/grub.cfg", 970]: expected an object'),
    ("files-missing", _drop("files"), "files is missing"),
    ("size-missing", _drop("size"), "size is missing"),
    ("default-missing", _drop("default"), "default is missing"),
    ("default-a-number", lambda d: d.update(default=5), "default is 5: expected a string"),
    ("size-too-big", lambda d: d.update(size=5000), "size is 5000: not a kernel-argument area size (1 to 2048 bytes)"),
    ("size-zero", lambda d: d.update(size=0), "size is 0: not a kernel-argument area size (1 to 2048 bytes)"),
    ("path-no-such-file", lambda d: d["files"][0].update(path="EFI/fedora/nope.cfg"),
     'files[0].path is "EFI/fedora/nope.cfg": no such file in the ISO'),
    ("path-a-directory", lambda d: d["files"][0].update(path="EFI/fedora"),
     'files[0].path is "EFI/fedora": a directory in the ISO, not a file'),
    ("path-a-number", lambda d: d["files"][0].update(path=7), "files[0].path is 7: expected a string"),
    ("pad-two-bytes", lambda d: d["files"][0].update(pad="\u00e9"),
     'files[0].pad is "\\u00e9": expected one ASCII character'),
    ("end-empty", lambda d: d["files"][0].update(end=""), 'files[0].end is "": expected one ASCII character'),
]


@pytest.mark.parametrize("change,message", [c[1:] for c in KARGS_CASES], ids=[c[0] for c in KARGS_CASES])
def test_lying_kargs_json_is_refused_before_any_write(pristine_bytes, tmp_path, capsys, change, message):
    bad = make_iso(tmp_path / "bad.iso", pristine_bytes, kargs=with_change(change))
    before = sha256(bad)
    want = f"livelab: error: {bad}: coreos/kargs.json: {message}"
    out = tmp_path / "out.iso"
    for argv in (["iso", "reset", bad], ["iso", "reset", "-o", out, bad],
                 ["iso", "customize", "--live-karg-append", "console=ttyS0", bad],
                 ["iso", "customize", "--force", "--live-karg-append", "console=ttyS0", "-o", out, bad],
                 ["iso", "show", bad]):
        assert livelab([str(a) for a in argv]) == 2, argv
        assert one_error_line(capsys) == want, argv
    assert sha256(bad) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.iso"]


@pytest.mark.parametrize("content,message", [
    (b"[1, 2]", "coreos/kargs.json is not a JSON object"),
    (b'{"default": ', "coreos/kargs.json is not valid JSON"),
    (b"\xff\xfe{}", "coreos/kargs.json is not valid JSON"),
    (b"[" * 30_000 + b"]" * 30_000, "coreos/kargs.json is not valid JSON"),
    (b'{"size": ' + b"9" * 5000 + b"}", "coreos/kargs.json is not valid JSON"),
    (b" " * (64 * 1024 + 1), "coreos/kargs.json is 65537 bytes, more than the 65536 such a file may have"),
], ids=["a-list", "cut-short", "not-utf8", "nested-deeper-than-python-recurses", "huge-number", "too-big"])
def test_broken_kargs_json_is_one_line(pristine_bytes, tmp_path, capsys, content, message):
    bad = make_iso(tmp_path / "bad.iso", pristine_bytes, kargs=content)
    assert livelab(["iso", "reset", str(bad)]) == 2
    assert one_error_line(capsys) == f"livelab: error: {bad}: {message}"


def test_reproduction_negative_offset_reset_and_customize(pristine_bytes, tmp_path):
    """The reported case: a negative files[0].offset made `iso reset` write '#' over the start of
    EFI/fedora/grub.cfg and exit 0, and `iso customize` refuse as "already customized"."""
    bad = make_iso(tmp_path / "bad.iso", pristine_bytes,
                   kargs=with_change(lambda d: d["files"][0].update(offset=-970)))
    before = sha256(bad)
    message = (f"{bad}: coreos/kargs.json: files[0].offset is -970: an offset inside EFI/fedora/grub.cfg "
               f"cannot be negative")
    assert_clean_error(run_cli("iso", "reset", bad), message)
    assert_clean_error(run_cli("iso", "customize", "--live-karg-append", "console=ttyS0", bad), message)
    assert sha256(bad) == before
    assert bad.read_bytes()[GRUB_CFG:GRUB_CFG + 2192] == pristine_bytes[GRUB_CFG:GRUB_CFG + 2192]


def test_json_type_error_cli(pristine_bytes, tmp_path):
    bad = make_iso(tmp_path / "bad.iso", pristine_bytes,
                   kargs=with_change(lambda d: d["files"].__setitem__(0, "EFI/fedora/grub.cfg")))
    assert_clean_error(run_cli("iso", "show", bad),
                       f'{bad}: coreos/kargs.json: files[0] is "EFI/fedora/grub.cfg": expected an object')


# ------------------------------------------------------------------ igninfo.json that lies


IGNINFO_CASES = [
    ("negative-offset", {"file": "images/ignition.img", "offset": -1},
     "offset is -1: outside images/ignition.img (262144 bytes)"),
    ("offset-past-the-file", {"file": "images/ignition.img", "offset": 262144},
     "offset is 262144: outside images/ignition.img (262144 bytes)"),
    ("length-past-the-file", {"file": "images/ignition.img", "offset": 1024, "length": 262144},
     "length is 262144: the area at offset 1024 of images/ignition.img would end past its end (262144 bytes)"),
    ("length-zero", {"file": "images/ignition.img", "length": 0},
     "length is 0: the area at offset 0 of images/ignition.img would end past its end (262144 bytes)"),
    ("length-huge", {"file": "images/ignition.img", "length": 2**64},
     "length is 18446744073709551616: the area at offset 0 of images/ignition.img would end past its end "
     "(262144 bytes)"),
    ("length-a-string", {"file": "images/ignition.img", "length": "big"}, 'length is "big": expected an integer'),
    ("file-missing", {"offset": 0}, "file is missing"),
    ("file-not-there", {"file": "images/nope.img"}, 'file is "images/nope.img": no such file in the ISO'),
    ("file-a-directory", {"file": "images"}, 'file is "images": a directory in the ISO, not a file'),
]


@pytest.mark.parametrize("igninfo,message", [c[1:] for c in IGNINFO_CASES], ids=[c[0] for c in IGNINFO_CASES])
def test_lying_igninfo_json_is_refused_before_any_write(pristine_bytes, tmp_path, capsys, igninfo, message):
    bad = make_iso(tmp_path / "bad.iso", pristine_bytes, igninfo=igninfo)
    before = sha256(bad)
    cfg = tmp_path / "c.ign"
    cfg.write_text(json.dumps(CFG))
    for argv in (["iso", "reset", bad], ["iso", "customize", "--live-ignition", cfg, bad], ["iso", "show", bad]):
        assert livelab([str(a) for a in argv]) == 2, argv
        assert one_error_line(capsys) == f"livelab: error: {bad}: coreos/igninfo.json: {message}", argv
    assert sha256(bad) == before


def test_igninfo_area_over_a_kargs_area(pristine_bytes, tmp_path, capsys):
    bad = make_iso(tmp_path / "bad.iso", pristine_bytes,
                   igninfo={"file": "EFI/fedora/grub.cfg", "offset": 900, "length": 200})
    before = sha256(bad)
    assert livelab(["iso", "reset", str(bad)]) == 2
    assert one_error_line(capsys) == (
        f"livelab: error: {bad}: coreos/kargs.json: files[0].offset is 970: its area (image offset 371658, "
        f"1139 bytes) overlaps the one of coreos/igninfo.json: offset (image offset 371588, 200 bytes)")
    assert sha256(bad) == before


def test_good_igninfo_json_is_used(pristine_bytes, tmp_path):
    good = make_iso(tmp_path / "good.iso", pristine_bytes, igninfo={"file": "images/ignition.img", "offset": 0})
    li = LiveISO(good)
    assert li.sources[0] == "coreos/igninfo.json" and li.ignition_areas == [IGN_AREA]
    out = LiveISO.customize(good, tmp_path / "o.iso", ignition=CFG)
    assert LiveISO(out).embedded_ignition() == CFG


# ------------------------------------------------------------------ legacy headers that lie


LEGACY_CASES = [
    ("coreKarg-area-in-the-system-area", {"core_karg": (1139, 94208, 100, 371658, 0, 0, 0, 0)},
     "coreKarg header: area offset 0 is 100: its area (image offset 100) would overwrite the ISO's system "
     "area or volume descriptors (bytes 0-40959)"),
    ("coreKarg-area-past-the-image", {"core_karg": (1139, 94208, 98126, 10**12, 0, 0, 0, 0)},
     "coreKarg header: area offset 1 is 1000000000000: its area (image offset 1000000000000, 1139 bytes) ends "
     "past the end of the image (681984 bytes)"),
    ("coreKarg-area-in-no-file", {"core_karg": (1139, 94208, 50000, 371658, 0, 0, 0, 0)},
     "coreKarg header: area offset 0 is 50000: its 1139-byte area is not inside any file of the ISO"),
    ("coreKarg-area-over-the-ignition-area", {"core_karg": (1139, 94208, 98126, 102400, 0, 0, 0, 0)},
     "coreKarg header: area offset 1 is 102400: its area (image offset 102400, 1139 bytes) overlaps the one of "
     "images/ignition.img: extent (image offset 102400, 262144 bytes)"),
    ("coreKarg-length-zero", {"core_karg": (0, 94208, 98126, 371658, 0, 0, 0, 0)},
     "coreKarg header: length is 0: not a kernel-argument area length (1 to 2048 bytes)"),
    ("coreKarg-length-disagrees", {"core_karg": (1000, 94208, 98126, 371658, 0, 0, 0, 0)},
     "coreKarg header: length is 1000: disagrees with coreos/kargs.json size 1139"),
    ("coreKarg-default-past-the-image", {"core_karg": (1139, 2**63, 98126, 371658, 0, 0, 0, 0)},
     "coreKarg header: default offset is 9223372036854775808: its 1139-byte area ends past the end of the "
     "image (681984 bytes)"),
    ("coreiso-area-past-the-image", {"core_iso": (10**9, 262144)},
     "coreiso+ header: offset is 1000000000: its area (image offset 1000000000, 262144 bytes) ends past the "
     "end of the image (681984 bytes)"),
    ("coreiso-length-huge", {"core_iso": (102400, 2**40)},
     "coreiso+ header: length is 1099511627776: not an Ignition area length (1 to 16777216 bytes)"),
    ("coreiso-area-over-a-kargs-area", {"core_iso": (371000, 1000)},
     "coreos/kargs.json: files[0].offset is 970: its area (image offset 371658, 1139 bytes) overlaps the one "
     "of coreiso+ header: offset (image offset 371000, 1000 bytes)"),
]


@pytest.mark.parametrize("edits,message", [c[1:] for c in LEGACY_CASES], ids=[c[0] for c in LEGACY_CASES])
def test_lying_legacy_headers_are_refused_before_any_write(pristine_bytes, tmp_path, capsys, edits, message):
    bad = make_iso(tmp_path / "bad.iso", pristine_bytes, **edits)
    before = sha256(bad)
    for argv in (["iso", "reset", bad], ["iso", "customize", "--live-karg-append", "x=1", bad]):
        assert livelab([str(a) for a in argv]) == 2, argv
        assert one_error_line(capsys) == f"livelab: error: {bad}: {message}", argv
    assert sha256(bad) == before


def test_legacy_headers_alone_must_point_into_files(pristine_bytes, tmp_path, monkeypatch):
    """Without kargs.json, coreKarg areas are checked against the whole ISO9660 tree."""
    real_lookup = ISO9660.lookup
    monkeypatch.setattr(ISO9660, "lookup", lambda self, path: None if path.startswith("coreos/")
                        else real_lookup(self, path))
    assert {a.offset for a in LiveISO(make_iso(tmp_path / "ok.iso", pristine_bytes)).kargs_areas} == {98126, 371658}
    bad = make_iso(tmp_path / "bad.iso", pristine_bytes, core_karg=(1139, 94208, 98126, 50000, 0, 0, 0, 0))
    with pytest.raises(LivelabError, match="area offset 1 is 50000: its 1139-byte area is not inside any file"):
        LiveISO(bad)


# ------------------------------------------------------------------ decompression bombs


def _show(path: Path) -> tuple:
    """``livelab iso show PATH``: its exit status and what it printed on stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = livelab(["iso", "show", str(path)])
    return status, err.getvalue()


BOMBS = {
    # 24 concatenated streams of 64 MiB of zeros: 1.5 GiB in 237 KB of the 256 KiB area
    "concatenated-streams": lambda: zeros_xz(64 * MiB) * 24,
    # one stream of 64 MiB: stopped inside the stream
    "one-stream": lambda: zeros_xz(64 * MiB),
}


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_xz_bomb_in_ignition_area_stops_within_bounded_memory(pristine_bytes, tmp_path, bomb):
    """`iso show` on an Ignition area that unpacks to 1.5 GiB grew past 2 GB and never ended;
    now it stops at MAX_IGNITION_UNPACKED, in a child allowed only 512 MiB more than this process."""
    bad = make_iso(tmp_path / "bomb.iso", pristine_bytes, area=BOMBS[bomb]())
    outcome = run_limited(_show, bad, memory=512 * MiB, timeout=10)
    assert outcome.kind == RESULT, outcome
    assert outcome.value == (2, f"livelab: error: {bad}: Ignition embed area decompresses to more than 16 MiB\n")
    assert outcome.seconds < 5, outcome
    assert 16 * MiB == MAX_IGNITION_UNPACKED


def test_xz_bomb_cli_one_line_under_a_memory_limit(pristine_bytes, tmp_path):
    bad = make_iso(tmp_path / "bomb.iso", pristine_bytes, area=BOMBS["concatenated-streams"]())

    def one_gib_of_address_space() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1024 * MiB, 1024 * MiB))

    proc = run_cli("iso", "show", bad, preexec_fn=one_gib_of_address_space)
    assert_clean_error(proc, f"{bad}: Ignition embed area decompresses to more than 16 MiB")


def test_bomb_iso_is_customized_and_reset_clears_it(pristine_bytes, tmp_path, capsys):
    """A filled Ignition area is a customization (refused without --force, for that reason);
    reset never decompresses it and gives back the pristine bytes."""
    bad = make_iso(tmp_path / "bomb.iso", pristine_bytes, area=BOMBS["concatenated-streams"]())
    assert livelab(["iso", "customize", "--live-karg-append", "x=1", str(bad)]) == 2
    assert "is already customized" in one_error_line(capsys)
    assert livelab(["iso", "reset", str(bad)]) == 0
    assert bad.read_bytes() == pristine_bytes


def test_embedded_config_nested_too_deep(pristine_bytes, tmp_path, capsys):
    deep = make_iso(tmp_path / "deep.iso", pristine_bytes, area=initrd.ignition_initrd(b"[" * 100_000))
    with pytest.raises(LivelabError, match=r"embedded config\.ign is not valid JSON"):
        LiveISO(deep).embedded_ignition()
    assert livelab(["iso", "show", str(deep)]) == 0     # shown as text
    assert "[[[[" in capsys.readouterr().out


# ------------------------------------------------------------------ atomic output


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_next_run_removes_a_dead_writers_temp(good_iso, tmp_path):
    outdir = tmp_path / "out"
    outdir.mkdir()
    dead = outdir / f".live.iso.{TEMP_TAG}.{_dead_pid()}.0123abcd"
    alive = outdir / f".live.iso.{TEMP_TAG}.{os.getpid()}.89abcdef"
    other = outdir / ".live.iso.tmp"      # not livelab's: left alone
    for p in (dead, alive, other):
        p.write_bytes(b"partial")
    assert livelab(["iso", "customize", "--live-karg-append", "x=1", "-o", str(outdir / "live.iso"),
                    str(good_iso)]) == 0
    assert sorted(p.name for p in outdir.iterdir()) == sorted([alive.name, other.name, "live.iso"])


def test_killed_customize_leaves_only_a_temp_that_the_next_run_cleans(good_iso, tmp_path):
    """A real SIGKILL after the copy: the output name never appears, the temp does; the next run
    (any livelab write into that directory) removes it."""
    out = tmp_path / "live.iso"
    script = ("import os, signal, sys\n"
              "import harness.boot.iso as m\n"
              "copy = m._copy_into\n"
              "def copy_then_die(source, target):\n"
              "    copy(source, target)\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n"
              "m._copy_into = copy_then_die\n"
              "from harness.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script, "iso", "customize", "--live-karg-append", "x=1",
                           "-o", str(out), str(good_iso)], cwd=REPO, env=env, capture_output=True, timeout=60)
    assert proc.returncode == -9
    leftovers = [p.name for p in tmp_path.iterdir() if TEMP_TAG in p.name]
    assert len(leftovers) == 1 and not out.exists()
    assert run_cli("iso", "customize", "--live-karg-append", "x=1", "-o", out, good_iso).returncode == 0
    assert [p.name for p in tmp_path.iterdir() if TEMP_TAG in p.name] == []
    assert LiveISO(out).current_kargs() == DEFAULT + " x=1"


@pytest.mark.parametrize("in_place", [False, True], ids=["to-output", "in-place"])
def test_error_mid_write_leaves_the_target_untouched(good_iso, tmp_path, capsys, monkeypatch, in_place):
    out = tmp_path / "out.iso"
    out.write_bytes(b"the previous output")
    target = good_iso if in_place else out
    before = target.read_bytes()

    def copy_half_then_fill_the_disk(source, dest):
        dest.write(source.read(IMAGE_SIZE // 2))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(iso_module, "_copy_into", copy_half_then_fill_the_disk)
    argv = ["iso", "customize", "--live-karg-append", "x=1", str(good_iso)]
    if not in_place:
        argv[-1:-1] = ["-o", str(out)]
    assert livelab(argv) == 2
    assert one_error_line(capsys) == f"livelab: error: cannot write {target}: No space left on device"
    assert target.read_bytes() == before
    assert [p for p in target.parent.iterdir() if TEMP_TAG in p.name] == []


def test_in_place_keeps_mode_and_symlink(good_iso, tmp_path):
    os.chmod(good_iso, 0o640)
    link = tmp_path / "link.iso"
    link.symlink_to(good_iso)
    assert livelab(["iso", "customize", "--live-karg-append", "x=1", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == str(good_iso)
    assert good_iso.stat().st_mode & 0o777 == 0o640
    assert LiveISO(good_iso).current_kargs() == DEFAULT + " x=1"
    assert [p for p in good_iso.parent.iterdir() if TEMP_TAG in p.name] == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write read-only files")
def test_in_place_on_a_read_only_iso_is_refused(good_iso, capsys):
    os.chmod(good_iso, 0o444)
    assert livelab(["iso", "reset", str(good_iso)]) == 2
    assert one_error_line(capsys) == (f"livelab: error: cannot modify {good_iso} in place: it is read-only "
                                      f"(write a copy with -o OUT)")


def test_in_place_on_a_read_only_iso_is_refused_even_for_root(good_iso, capsys, monkeypatch):
    """The rename would replace a read-only file in a writable directory: refused (whoever runs it)."""
    real_access = os.access

    def access(path, mode, **kwargs):
        if Path(path) == good_iso and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(iso_module.os, "access", access)
    before = sha256(good_iso)
    assert livelab(["iso", "customize", "--live-karg-append", "x=1", str(good_iso)]) == 2
    assert one_error_line(capsys) == (f"livelab: error: cannot modify {good_iso} in place: it is read-only "
                                      f"(write a copy with -o OUT)")
    assert sha256(good_iso) == before


def test_pxe_ignition_wrap_writes_atomically(tmp_path):
    cfg = tmp_path / "c.ign"
    cfg.write_text(json.dumps(CFG))
    dead = tmp_path / f".ign.img.{TEMP_TAG}.{_dead_pid()}.0123abcd"
    dead.write_bytes(b"partial")
    assert livelab(["pxe", "ignition-wrap", "-i", str(cfg), "-o", str(tmp_path / "ign.img")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ign", "ign.img"]


# ------------------------------------------------------------------ bad paths, from the command line


def test_output_into_a_missing_directory(good_iso, tmp_path):
    out = tmp_path / "missing" / "out.iso"
    for argv in (["iso", "customize", "--live-karg-append", "x=1", "-o", out, good_iso],
                 ["iso", "reset", "-o", out, good_iso]):
        assert_clean_error(run_cli(*argv), f"output {out}: directory {out.parent} does not exist")
    assert not out.parent.exists()


def test_output_onto_a_directory(good_iso, tmp_path):
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    cfg = tmp_path / "c.ign"
    cfg.write_text(json.dumps(CFG))
    for argv in (["iso", "customize", "--live-ignition", cfg, "-o", outdir, good_iso],
                 ["iso", "reset", "-o", outdir, good_iso],
                 ["pxe", "ignition-wrap", "-i", cfg, "-o", outdir]):
        assert_clean_error(run_cli(*argv), f"output {outdir} is a directory: give a file name")
    assert list(outdir.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ign", "in", "outdir"]


def test_bad_iso_inputs(pristine_bytes, tmp_path):
    text = tmp_path / "notes.iso"
    text.write_text("not an ISO\n" * 4000)
    empty = tmp_path / "empty.iso"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.iso"
    truncated.write_bytes(pristine_bytes[:400_000])
    cases = [
        (tmp_path, f"ISO image {tmp_path} is a directory"),
        (tmp_path / "nope.iso", f"ISO image not found: {tmp_path / 'nope.iso'}"),
        (text, f"{text}: not an ISO9660 image (no primary volume descriptor at sector 16)"),
        (empty, f"ISO image {empty} is empty"),
        (truncated, f"{truncated}: truncated ISO image: 400000 bytes, but its volume descriptor says 681984"),
        ("/dev/null", "ISO image /dev/null is not a regular file"),
    ]
    for path, message in cases:
        assert_clean_error(run_cli("iso", "show", path), message)
    assert_clean_error(run_cli("iso", "reset", truncated), cases[4][1])
    assert truncated.read_bytes() == pristine_bytes[:400_000]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_iso_cli(good_iso):
    os.chmod(good_iso, 0)
    assert_clean_error(run_cli("iso", "show", good_iso), f"cannot read ISO image {good_iso}: Permission denied")


def test_unreadable_iso(good_iso, capsys, monkeypatch):
    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(iso_module, "open", refuse, raising=False)
    assert livelab(["iso", "show", str(good_iso)]) == 2
    assert one_error_line(capsys) == f"livelab: error: cannot read ISO image {good_iso}: Permission denied"


def test_output_naming_the_input_is_in_place(good_iso, pristine_bytes):
    LiveISO.customize(good_iso, None, karg_append=["x=1"])
    os.chmod(good_iso, 0o600)
    assert livelab(["iso", "reset", "-o", str(good_iso), str(good_iso)]) == 0
    assert good_iso.read_bytes() == pristine_bytes
    assert good_iso.stat().st_mode & 0o777 == 0o600
