"""newc cpio / xz / gzip helpers, checked against the real cpio and xz tools."""
from __future__ import annotations

import gzip
import lzma
import shutil
import subprocess

import pytest

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
