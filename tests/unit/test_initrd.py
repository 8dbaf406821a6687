"""newc cpio / xz / gzip helpers, checked against the real cpio and xz tools."""
from __future__ import annotations

import gzip
import lzma
import shutil
import subprocess

import pytest
from limits import LIVELAB_ERROR, MiB, run_limited, zeros_gzip, zeros_xz

from harness.boot import initrd
from harness.errors import LivelabError

needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio not installed")
needs_xz = pytest.mark.skipif(shutil.which("xz") is None, reason="xz not installed")


def test_newc_layout_and_trailer():
    arc = initrd.newc_archive([("config.ign", b"{}", 0o100600)])
    assert arc.startswith(b"070701")
    # first header: 13 hex fields; mode, nlink, filesize, namesize
    fields = [int(arc[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
    assert fields[1] == 0o100600 and fields[4] == 1 and fields[6] == 2 and fields[11] == len("config.ign") + 1
    # name padded so data starts 4-aligned: 110 + 11 = 121 -> 124
    assert arc[110:121] == b"config.ign\0"
    assert arc[124:126] == b"{}"
    assert b"TRAILER!!!\0" in arc
    assert len(arc) % 4 == 0


@pytest.mark.parametrize("name_len", range(1, 9))
@pytest.mark.parametrize("data_len", [0, 1, 2, 3, 4, 5])
def test_roundtrip_alignment(name_len, data_len):
    members = [("n" * name_len, b"x" * data_len, 0o100644), ("d", b"", 0o040755),
               ("d/f", b"yz" * data_len, 0o100600)]
    entries = initrd.read_newc(initrd.newc_archive(members))
    assert [(e.name, e.data, e.mode) for e in entries] == members


def test_bad_magic_rejected():
    with pytest.raises(LivelabError):
        initrd.read_newc(b"070707" + b"0" * 200)


def test_dir_with_data_rejected():
    with pytest.raises(LivelabError):
        initrd.newc_archive([("d", b"x", 0o040755)])


def test_xz_crc32_check():
    blob = initrd.xz_crc32(b"hello" * 100)
    assert blob.startswith(b"\xfd7zXZ\x00")
    # stream flags byte 7: check type 0x01 = CRC32
    assert blob[6:8] == b"\x00\x01"
    assert lzma.decompress(blob) == b"hello" * 100


@needs_cpio
@needs_xz
def test_ignition_initrd_with_real_tools(tmp_path):
    cfg = b'{"ignition":{"version":"3.3.0"}}\n'
    blob = initrd.ignition_initrd(cfg)
    listing = subprocess.run("xz -dc | cpio -itv", shell=True, input=blob, capture_output=True, check=True)
    line = [ln for ln in listing.stdout.decode().splitlines() if ln.strip()]
    assert len(line) == 1 and line[0].startswith("-rw-------") and line[0].endswith(" config.ign"), line
    info = subprocess.run(["xz", "--robot", "-lvv", "-"], input=blob, capture_output=True)
    if info.returncode != 0:  # older xz cannot list stdin
        p = tmp_path / "i.xz"
        p.write_bytes(blob)
        info = subprocess.run(["xz", "--robot", "-lvv", str(p)], capture_output=True, check=True)
    assert "CRC32" in info.stdout.decode()
    subprocess.run("xz -dc | cpio -idm --quiet", shell=True, input=blob, cwd=tmp_path, check=True)
    assert (tmp_path / "config.ign").read_bytes() == cfg
    assert initrd.extract_member(blob, "config.ign") == cfg
    assert initrd.extract_member(blob + b"\0" * 64, "/config.ign") == cfg


@needs_cpio
def test_oem_initrd_gzip_with_parent_dirs(tmp_path):
    blob = initrd.oem_initrd({"usr/share/oem/config.ign": b'{"ignition":{"version":"3.3.0"}}'})
    assert blob[:2] == b"\x1f\x8b"
    raw = gzip.decompress(blob)
    listing = subprocess.run(["cpio", "-itv"], input=raw, capture_output=True, check=True).stdout.decode()
    lines = [ln for ln in listing.splitlines() if ln.strip()]
    assert [ln.split()[-1] for ln in lines] == ["usr", "usr/share", "usr/share/oem", "usr/share/oem/config.ign"]
    assert all(ln.startswith("drwxr-xr-x") for ln in lines[:3])
    assert lines[3].startswith("-rw-r--r--")
    subprocess.run(["cpio", "-idm", "--quiet"], input=raw, cwd=tmp_path, check=True)
    assert (tmp_path / "usr/share/oem/config.ign").read_bytes() == b'{"ignition":{"version":"3.3.0"}}'
    names = [e.name for e in initrd.read_initrd(blob)]
    assert names[-1] == "usr/share/oem/config.ign"


# ------------------------------------------------------------------ hostile archives


def test_decompress_concatenated_streams_and_padding():
    a = initrd.newc_archive([("a", b"1" * 5000, 0o100644)])
    b = initrd.newc_archive([("b", b"2" * 3, 0o100644)])
    raw = initrd.newc_archive([("c", b"3", 0o100644)])
    blob = initrd.xz_crc32(a) + b"\0" * 12 + gzip.compress(b, mtime=0) + b"\0" * 4 + raw
    assert initrd.decompress(blob) == a + b + raw
    assert [e.name for e in initrd.read_initrd(blob)] == ["a", "b", "c"]
    assert initrd.decompress(initrd.xz_crc32(a) + b"\0" * 100_000) == a


def test_decompress_many_streams_is_a_loop_not_a_recursion():
    # one empty xz stream per ~100 bytes: the old decoder recursed once per stream
    blob = initrd.xz_crc32(b"") * 5000 + initrd.xz_crc32(initrd.newc_archive([("x", b"y", 0o100644)]))
    assert [e.name for e in initrd.read_initrd(blob)] == ["x"]


def test_decompress_limit_is_exact():
    data = b"z" * (2 * MiB)
    assert initrd.decompress(initrd.xz_crc32(data), limit=2 * MiB) == data
    with pytest.raises(LivelabError, match=r"^initrd decompresses to more than 2 MiB$"):
        initrd.decompress(initrd.xz_crc32(data + b"!"), limit=2 * MiB)
    with pytest.raises(LivelabError, match=r"^the OEM initrd decompresses to more than 1 MiB$"):
        initrd.decompress(gzip.compress(data), limit=MiB, what="the OEM initrd")


@pytest.mark.parametrize("blob,message", [
    (initrd.xz_crc32(b"x" * 1000)[:-20], "initrd: corrupt xz data: truncated stream"),
    (initrd.xz_crc32(b"x" * 1000)[:40] + b"\xff" * 40, "initrd: corrupt xz data"),
    (gzip.compress(b"x" * 1000)[:15], "initrd: corrupt gzip data: truncated stream"),
    (initrd.GZIP_MAGIC + b"\x08" + b"\xff" * 30, "initrd: corrupt gzip data"),
], ids=["xz-truncated", "xz-garbage", "gzip-truncated", "gzip-garbage"])
def test_corrupt_streams_are_one_line(blob, message):
    with pytest.raises(LivelabError, match="^" + message):
        initrd.decompress(blob)


def _header(**fields) -> bytes:
    values = {"ino": "00000001", "mode": "000081A4", "nlink": "00000001", "filesize": "00000000",
              "namesize": "00000002"}
    values.update(fields)
    order = ("ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor", "devminor",
             "rdevmajor", "rdevminor", "namesize", "check")
    return b"070701" + b"".join(values.get(k, "00000000").encode() for k in order)


def test_cpio_negative_size_is_refused_not_looped():
    # int("-000007C", 16) is -124: the member's data would end where its header starts, and the
    # old reader went back to that header forever, growing its list of members without bound
    archive = _header(filesize="-000007C", namesize="0000000B") + b"config.ign\0" + b"\0" * 16
    outcome = run_limited(initrd.read_newc, archive, memory=256 * MiB, timeout=5)
    assert outcome.kind == LIVELAB_ERROR, outcome
    assert outcome.message == "corrupt newc cpio header at byte 0"


def test_cpio_name_longer_than_path_max():
    archive = _header(namesize="00001001") + b"n" * 4097 + b"\0" * 4
    with pytest.raises(LivelabError, match="name size 4097 is more than 4096"):
        initrd.read_newc(archive)


def test_cpio_member_count_is_bounded(monkeypatch):
    monkeypatch.setattr(initrd, "MAX_CPIO_MEMBERS", 50)
    fifty = initrd.newc_archive([(f"f{i}", b"", 0o100644) for i in range(50)])
    assert len(initrd.read_newc(fifty)) == 50
    with pytest.raises(LivelabError, match="more than 50 members"):
        initrd.read_newc(initrd.newc_archive([(f"f{i}", b"", 0o100644) for i in range(51)]))


def test_cpio_member_past_the_end_is_truncation():
    archive = _header(filesize="7FFFFFFF", namesize="00000002") + b"a\0" + b"\0" * 64
    with pytest.raises(LivelabError, match="truncated newc cpio member 'a'"):
        initrd.read_newc(archive)


@pytest.mark.parametrize("kind", ["xz", "gzip"])
def test_bomb_stops_at_the_limit_within_bounded_memory(monkeypatch, kind):
    """1.5 GiB of zeros (xz: 24 streams of 64 MiB; gzip: 96 members of 16 MiB) against a limit of
    64 MiB, in a child allowed 512 MiB more than this process: a clean error, well in time."""
    bomb = zeros_xz(64 * MiB) * 24 if kind == "xz" else zeros_gzip(16 * MiB) * 96
    monkeypatch.setattr(initrd, "MAX_INITRD_UNPACKED", 64 * MiB)
    outcome = run_limited(initrd.read_initrd, bomb, memory=512 * MiB, timeout=10)
    assert outcome.kind == LIVELAB_ERROR, outcome
    assert outcome.message == "initrd decompresses to more than 64 MiB"
    assert outcome.seconds < 5
