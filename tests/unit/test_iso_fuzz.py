"""Property tests (Hypothesis) for the ISO9660 reader and the coreos-installer embed areas.

Whatever the image -- the real 2021-09 fixture ISO with bytes of its volume descriptors, directory
records, ``coreos/*.json`` files, legacy headers or Ignition area overwritten, truncated or
extended; the fixture with arbitrary ``coreos/kargs.json`` / ``coreos/igninfo.json`` contents;
a few arbitrary bytes -- what ``livelab iso show``, ``iso customize`` and ``iso reset`` do is a
result or one ``LivelabError`` line, in bounded time:

- ``show`` (``LiveISO`` + ``describe`` + the embedded config and kargs) never modifies the file;
- a refused ``customize`` / ``reset`` leaves it byte-identical, with no temp file beside it;
- a ``customize`` that succeeds changes bytes only inside the embed areas, and the ISO then opens
  with the config it was given; a ``reset`` that succeeds leaves an ISO that is not customized.

The profile (``HYPOTHESIS_PROFILE``: ci, the default, or fuzz) is in hypothesis_profiles.py; each
property runs a fraction of the profile's examples (``_examples``).  A failure found once stays as
an ``@example`` on its property.
"""
from __future__ import annotations

import io
import json
import lzma
import struct
from pathlib import Path
from typing import Any, NamedTuple

import hypothesis_profiles  # noqa: F401 -- registers and loads the profile
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_iso_hostile import CORE_ISO, CORE_KARG, FIXTURE, IGN_AREA, IMAGE_SIZE, KARGS_JSON, make_iso, set_file
from test_parsers_fuzz import assert_result_or_one_line, failed, json_values

from harness.boot.iso import ISO9660, SECTOR, LiveISO

pytestmark = pytest.mark.skipif(not FIXTURE.exists(), reason="reference fixture ISO not available")

CFG = {"ignition": {"version": "3.3.0"}}
IGNINFO = {"file": "images/ignition.img", "offset": 0, "length": IGN_AREA[1]}


def _examples(fraction: float) -> int:
    """``fraction`` of the loaded profile's examples per property: the ci profile's (700) gives
    the file's cost in the unit suite; ``HYPOTHESIS_PROFILE=fuzz`` scales it up."""
    return max(10, int(settings.default.max_examples * fraction))


# ------------------------------------------------------------------ the images


def _pristine() -> bytes:
    data = lzma.decompress(FIXTURE.read_bytes()) if FIXTURE.exists() else b""
    assert not data or len(data) == IMAGE_SIZE
    return data


PRISTINE = _pristine()


def _with_igninfo(pristine: bytes) -> bytes:
    if not pristine:
        return b""
    image = bytearray(pristine)
    set_file(image, "coreos/igninfo.json", json.dumps(IGNINFO).encode())
    return bytes(image)


# the two bases the mutations start from: the fixture as it is (images/ignition.img, coreiso+,
# kargs.json, coreKarg) and the fixture with a coreos/igninfo.json naming its Ignition area
BASES = {"fixture": PRISTINE, "with igninfo.json": _with_igninfo(PRISTINE)}


def _regions(image: bytes) -> dict[str, tuple[int, int]]:
    """``name: (offset, length)`` of the parts of ``image`` the reader and the embed areas depend on."""
    if not image:
        return {"start": (0, 1)}
    fs = ISO9660(io.BytesIO(image))
    regions = {
        "volume descriptors": (16 * SECTOR, fs.descriptors_end - 16 * SECTOR),
        "coreKarg and coreiso+ headers": (CORE_KARG, CORE_ISO + 24 - CORE_KARG),
        "root directory": (fs.root.offset, fs.root.size),
        "Ignition area start": (IGN_AREA[0], 64),
        "legacy default kargs": (94208, 64),
    }
    for path in ("coreos", "images", "coreos/kargs.json", "coreos/igninfo.json"):
        entry = fs.lookup(path)
        if entry is not None:
            regions[path] = (entry.offset, entry.size)
    return regions


REGIONS = {name: _regions(image) for name, image in BASES.items()}

# numbers an ISO9660 field or a header may hold to make the reader go far or wrong: both-endian u32
# (extent LBA, size), LE u64 (legacy headers), single bytes (record length, flags, name length)
_NUMBERS = [0, 1, 2, 16, 17, 20, 29, 31, 33, 34, 46, 255, 2047, 2048, 2049, IMAGE_SIZE // SECTOR, IMAGE_SIZE,
            IGN_AREA[0], IGN_AREA[1], 1139, 0x7FFFFFFF, 0xFFFFFFFF]
payloads = st.one_of(
    st.binary(min_size=1, max_size=16),
    st.sampled_from(_NUMBERS).map(lambda n: struct.pack("<I", n) + struct.pack(">I", n)),
    st.sampled_from(_NUMBERS).map(lambda n: struct.pack("<Q", n)),
    st.integers(0, 255).map(lambda n: bytes([n])),
    st.sampled_from([b"coreiso+", b"coreKarg", b"\x01CD001\x01", b"\xff", b"\x02", b"\xfd7zXZ\x00",
                     b"\x1f\x8b\x08", b"NM\x05\x01\x00", b"CE\x1c\x01", b"SP\x07\x01\xbe\xef\x00"]))


class Mutation(NamedTuple):
    """Overwrite ``data`` at ``offset`` bytes into ``region`` of the base image."""

    region: str
    offset: int
    data: bytes


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, list[Mutation], str, int | bytes]:
    """A base image's name, up to 4 byte ranges of its interesting regions to overwrite, then
    ``keep``, ``truncate`` (at a length) or ``extend`` (with bytes)."""
    base = draw(st.sampled_from(sorted(BASES)))
    regions = REGIONS[base]
    changes = []
    for _ in range(draw(st.integers(0, 4))):
        region = draw(st.sampled_from(sorted(regions)))
        changes.append(Mutation(region, draw(st.integers(0, max(0, regions[region][1] - 1))), draw(payloads)))
    resize = draw(st.sampled_from(["keep", "keep", "truncate", "extend"]))
    how: int | bytes = 0
    if resize == "truncate":
        how = draw(st.integers(1, IMAGE_SIZE))
    elif resize == "extend":
        how = draw(st.one_of(st.binary(max_size=64), st.integers(1, 4 * SECTOR).map(bytes)))
    return base, changes, resize, how


def mutated(base: str, changes: list[Mutation], resize: str, how: int | bytes) -> bytes:
    image = bytearray(BASES[base])
    for change in changes:
        at = REGIONS[base][change.region][0] + change.offset
        image[at:at + len(change.data)] = change.data
    if resize == "truncate":
        assert isinstance(how, int)
        del image[how:]
    elif resize == "extend":
        assert isinstance(how, bytes)
        image.extend(how)
    return bytes(image)


# ------------------------------------------------------------------ the operations


def _iso_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("isofuzz")


def show(path: Path) -> str:
    """What ``livelab iso show`` reads: the areas, the embedded config and the kargs."""
    iso = LiveISO(path)
    text = iso.describe()
    iso.embedded_ignition()
    iso.current_kargs()
    iso.is_customized()
    return text


def assert_changed_only_in_areas(before: bytes, after: bytes, ranges: list) -> None:
    assert len(after) == len(before), "the image changed size"
    restored = bytearray(after)
    for off, length in ranges:
        restored[off:off + length] = before[off:off + length]
    assert restored == before, "bytes outside the embed areas changed"


def exercise(path: Path, image: bytes, *, force: bool = False, karg: bool = False) -> None:
    """``show``, then ``customize`` and ``reset`` in place, on ``image`` written at ``path``."""
    path.write_bytes(image)
    opened = assert_result_or_one_line(LiveISO, path)
    assert_result_or_one_line(show, path)
    assert path.read_bytes() == image, "iso show modified the ISO"
    if failed(opened):
        # refused to open: customize and reset refuse it as well, leaving it as it was
        for op in (lambda: LiveISO.customize(path, ignition=CFG, force=True), lambda: LiveISO.reset(path)):
            assert failed(assert_result_or_one_line(op))
            assert path.read_bytes() == image and list(path.parent.iterdir()) == [path]
        return
    ranges = opened.area_ranges()
    appended = ["console=ttyS0"] if karg else []
    outcome = assert_result_or_one_line(LiveISO.customize, path, ignition=CFG, karg_append=appended, force=force)
    after = path.read_bytes()
    assert list(path.parent.iterdir()) == [path], "a temp file was left beside the ISO"
    if failed(outcome):
        assert after == image, f"a refused customize changed the ISO: {outcome}"
    else:
        assert_changed_only_in_areas(image, after, ranges)
        reopened = assert_result_or_one_line(LiveISO, path)
        assert not failed(reopened), f"the customized ISO does not open any more: {reopened}"
        assert reopened.embedded_ignition() == CFG
    before = path.read_bytes()
    outcome = assert_result_or_one_line(LiveISO.reset, path)
    assert list(path.parent.iterdir()) == [path], "a temp file was left beside the ISO"
    if failed(outcome):
        assert path.read_bytes() == before, f"a refused reset changed the ISO: {outcome}"
    else:
        reset = assert_result_or_one_line(LiveISO, path)
        assert not failed(reset), f"the reset ISO does not open any more: {reset}"
        assert not reset.is_customized()


# ------------------------------------------------------------------ the properties


@settings(max_examples=_examples(1 / 7))
@given(mutation=mutations(), force=st.booleans(), karg=st.booleans())
def test_mutated_fixture_iso(tmp_path_factory, mutation, force, karg):
    exercise(_iso_dir(tmp_path_factory) / "live.iso", mutated(*mutation), force=force, karg=karg)


def _mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``good``, sometimes any JSON value."""
    return st.one_of(good, good, good, json_values)


_KARG_PATHS = ["EFI/fedora/grub.cfg", "isolinux/isolinux.cfg", "coreos/kargs.json", "images/ignition.img",
               ".cmdline", "zipl.prm", "coreos", "/EFI/fedora/grub.cfg", "efi/FEDORA/GRUB.CFG", "nope", ""]
_IGN_FILES = ["images/ignition.img", "images/efiboot.img", "EFI/fedora/grub.cfg", "coreos/kargs.json",
              "coreos/igninfo.json", "images", "isolinux/isolinux.cfg", "nope", ""]
_NUMBERS_NEAR = st.one_of(
    st.sampled_from([0, 1, -1, 970, 1870, 1139, 1140, 2048, 2049, 3083, 2192, IGN_AREA[1], IGN_AREA[1] + 1,
                     2 ** 31, 2 ** 63, 2 ** 64, 10 ** 30, -(2 ** 63)]),
    st.integers(-5000, 300_000))


@st.composite
def kargs_docs(draw: st.DrawFn) -> Any:
    doc: dict = {}
    if draw(st.integers(0, 9)):
        doc["default"] = draw(_mostly(st.one_of(
            st.just(KARGS_JSON["default"]), st.text(max_size=40),
            st.sampled_from(["a#b", "x\ny", "\x00", "é" * 600, "a" * 1139, "a" * 1138, " "]))))
    if draw(st.integers(0, 9)):
        doc["size"] = draw(_mostly(_NUMBERS_NEAR))
    if draw(st.integers(0, 9)):
        item = st.fixed_dictionaries(
            {"path": _mostly(st.sampled_from(_KARG_PATHS)), "offset": _mostly(_NUMBERS_NEAR)},
            optional={"pad": _mostly(st.sampled_from(["#", " ", "", "##", "é", "\n", "\x00"])),
                      "end": _mostly(st.sampled_from(["\n", "#", "", "é", "ab"]))})
        doc["files"] = draw(_mostly(st.lists(item, max_size=3)))
    return draw(st.one_of(st.just(doc), st.just(doc), json_values))


@st.composite
def igninfo_docs(draw: st.DrawFn) -> Any:
    doc: dict = {}
    if draw(st.integers(0, 9)):
        doc["file"] = draw(_mostly(st.sampled_from(_IGN_FILES)))
    for key in ("offset", "length"):
        if draw(st.integers(0, 2)):
            doc[key] = draw(_mostly(_NUMBERS_NEAR))
    return draw(st.one_of(st.just(doc), st.just(doc), json_values))


def _encoded(value: Any, encoding: str) -> bytes:
    """``value`` as JSON text in ``encoding``: ``utf-8``, ``utf-16``, or ``1e999`` (UTF-8 with its
    first ``0`` made a number out of a float's range)."""
    text = json.dumps(value)
    if encoding == "1e999":
        return text.replace("0", "1e999", 1).encode()
    return text.encode(encoding)


@settings(max_examples=_examples(1 / 7))
@given(kargs=st.one_of(st.none(), kargs_docs()), igninfo=st.one_of(st.none(), igninfo_docs()),
       encoding=st.sampled_from(["utf-8", "utf-8", "utf-16", "1e999"]), force=st.booleans(), karg=st.booleans())
# an Ignition area over coreos/kargs.json: customize and reset wrote the config (and zeros) over the
# file the kargs areas are found by, and the ISO no longer opened
@example(kargs=None, igninfo={"file": "coreos/kargs.json"}, encoding="utf-8", force=False, karg=False)
@example(kargs=None, igninfo={"file": "coreos/kargs.json"}, encoding="utf-8", force=True, karg=False)
@example(kargs=None, igninfo={"file": "coreos/igninfo.json"}, encoding="utf-8", force=False, karg=False)
# a value with a run of spaces in the message: one_line() squeezed it, so the line said another value
@example(kargs=None, igninfo={"file": "  "}, encoding="utf-8", force=False, karg=False)
@example(kargs=None, igninfo={"file": ["  "]}, encoding="utf-8", force=False, karg=False)
def test_embed_json_files(tmp_path_factory, kargs, igninfo, encoding, force, karg):
    directory = _iso_dir(tmp_path_factory)
    path = make_iso(directory / "live.iso", PRISTINE, kargs=None if kargs is None else _encoded(kargs, encoding),
                    igninfo=None if igninfo is None else _encoded(igninfo, encoding))
    exercise(path, path.read_bytes(), force=force, karg=karg)


@settings(max_examples=_examples(1 / 3))
@given(data=st.binary(max_size=4 * SECTOR),
       prefix=st.sampled_from([None, b"", b"\x01CD001\x01", b"\xffCD001\x01", b"\x01CD001\x01\x00"]))
def test_arbitrary_bytes_as_an_iso(tmp_path_factory, data, prefix):
    """A few arbitrary bytes; with a ``prefix``, after an empty system area and that start of a
    volume descriptor."""
    image = data if prefix is None else bytes(16 * SECTOR) + prefix + data
    exercise(_iso_dir(tmp_path_factory) / "live.iso", image)
