"""Secure Boot without a VM: where a PE image's signature is (harness.boot.pe), an ISO's kernel
unsigned by the harness's media code (LiveISO.strip_signature), the firmware in the vocabulary, and
the network boots refused before any VM.

The ISO is the coreos-assembler fixture rebuilt with xorriso around a PE kernel; xorriso reads
the result back as an independent reader."""
from __future__ import annotations

import lzma
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from harness import vocab
from harness.boot import pe
from harness.boot.iso import LiveISO
from harness.errors import LivelabError
from harness.lab import BootRequest, LabOptions, LiveBoot
from harness.selection import Selection, configuration_of
from harness.vocab import FIRMWARES, refusal

FIXTURE = Path("/work/shared/reference/samples/coreos-installer/embed-areas-2021-09.iso.xz")
KERNEL = "images/pxeboot/vmlinuz"
CERT = b"\x30\x82" + bytes(range(256)) * 3        # stands in for a WIN_CERTIFICATE with PKCS#7 data


def pe_image(magic: int = 0x20B, cert: bytes | None = CERT, directories: int = 16,
             body: bytes = b"\xcc" * 3000) -> bytes:
    """A minimal PE/COFF image (DOS stub, PE header, optional header with ``directories`` data
    directories) and, when ``cert`` is given, an attribute certificate table after its body."""
    dirs_at = {0x10B: 96, 0x20B: 112}[magic]
    optional = bytearray(dirs_at + 8 * directories)
    struct.pack_into("<H", optional, 0, magic)
    struct.pack_into("<I", optional, dirs_at - 4, directories)
    head = bytearray(0x80)
    head[:2] = b"MZ"
    struct.pack_into("<I", head, 0x3C, 0x80)
    head += b"PE\0\0" + struct.pack("<HHIIIHH", 0x8664, 0, 0, 0, 0, len(optional), 0x22) + optional
    image = bytearray(head + body)
    if cert is not None:
        image += b"\0" * (-len(image) % 8)
        struct.pack_into("<II", image, 0x80 + 24 + dirs_at + 8 * 4, len(image), len(cert))
        image += cert
    return bytes(image)


# ---------------------------------------------------------------- harness.boot.pe

def test_signature_of_pe32_plus_and_pe32():
    for magic, dirs_at in ((0x20B, 112), (0x10B, 96)):
        image = pe_image(magic)
        sig = pe.signature(image[:pe.HEADER_BYTES], len(image), "k")
        assert sig == pe.Signature(0x80 + 24 + dirs_at + 32, len(image) - len(CERT), len(CERT))
        assert image[sig.offset:] == CERT


def test_unsigned_images_have_no_signature():
    image = pe_image(cert=None)
    assert pe.signature(image, len(image), "k") is None
    short = pe_image(cert=None, directories=4)         # no security directory at all
    assert pe.signature(short, len(short), "k") is None


@pytest.mark.parametrize("image, error", [
    (b"the kernel", "k: not a PE/COFF image (no MZ header)"),
    (b"MZ" + b"\0" * 0x3A + struct.pack("<I", 0x40) + b"NE\0\0" + b"\0" * 200, "no PE signature at offset 64"),
    (pe_image()[:0x80 + 24] + b"\x0b\x03" + pe_image()[0x80 + 26:], "optional header magic 0x30b"),
    (pe_image()[:0x100], "its headers end early"),
])
def test_not_a_pe_image_is_one_line(image, error):
    with pytest.raises(LivelabError, match=re.escape(error)):
        pe.signature(image, len(image), "k")


def test_a_certificate_table_outside_the_file_is_refused():
    image = pe_image()
    with pytest.raises(LivelabError, match=r"certificate table \(offset \d+, 770 bytes\) is not inside the image"):
        pe.signature(image, len(image) - 1, "k")


# ---------------------------------------------------------------- LiveISO.strip_signature

@pytest.fixture(scope="module")
def signed_iso(tmp_path_factory) -> Path:
    """The fixture live ISO with a signed PE image as its kernel."""
    if not FIXTURE.exists() or shutil.which("xorriso") is None:
        pytest.skip("needs the reference fixture ISO and xorriso")
    d = tmp_path_factory.mktemp("iso")
    (d / "fixture.iso").write_bytes(lzma.decompress(FIXTURE.read_bytes()))
    tree = d / "tree"
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(d / "fixture.iso"), "-extract", "/", str(tree)],
                   check=True, capture_output=True)
    subprocess.run(["chmod", "-R", "u+w", str(tree)], check=True)
    (tree / KERNEL).write_bytes(pe_image())
    iso = d / "signed.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(iso), "-V", "fedora-coreos-34", "-R", "-J",
                    str(tree)], check=True, capture_output=True)
    return iso


def _extract(iso: Path, path: str, dest: Path) -> bytes:
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", f"/{path}", str(dest)],
                   check=True, capture_output=True)
    return dest.read_bytes()


def test_strip_signature_unsigns_the_kernel_and_keeps_every_other_byte(signed_iso, tmp_path):
    before = LiveISO(signed_iso)
    sig = before.signature(KERNEL)
    assert sig is not None and sig.size == len(CERT)
    out = LiveISO.strip_signature(signed_iso, KERNEL, tmp_path / "unsigned.iso")
    after = LiveISO(out)
    assert after.signature(KERNEL) is None
    assert after.current_kargs() == before.current_kargs()           # still a live ISO with its areas
    kernel = _extract(out, KERNEL, tmp_path / "vmlinuz")
    want = bytearray(pe_image())
    want[sig.entry:sig.entry + 8] = bytes(8)
    want[sig.offset:] = bytes(len(CERT))
    assert kernel == bytes(want)
    a, b = signed_iso.read_bytes(), out.read_bytes()
    changed = [i for i in range(len(a)) if a[i] != b[i]]
    start = before.fs.lookup(KERNEL).offset
    assert changed and all(start + sig.entry <= i < start + sig.entry + 8 or start + sig.offset <= i
                           < start + sig.offset + sig.size for i in changed)


def test_strip_signature_in_place_and_its_refusals(signed_iso, tmp_path):
    iso = tmp_path / "live.iso"
    shutil.copyfile(signed_iso, iso)
    assert LiveISO.strip_signature(iso, KERNEL) == iso
    assert LiveISO(iso).signature(KERNEL) is None
    with pytest.raises(LivelabError, match=rf"{KERNEL} is not signed \(it has no Authenticode certificate table\)"):
        LiveISO.strip_signature(iso, KERNEL)
    with pytest.raises(LivelabError, match=re.escape("isolinux/isolinux.cfg: not a PE/COFF image")):
        LiveISO.strip_signature(iso, "isolinux/isolinux.cfg")
    with pytest.raises(LivelabError, match=re.escape("no file EFI/BOOT/BOOTX64.EFI in the ISO")):
        LiveISO.strip_signature(iso, "EFI/BOOT/BOOTX64.EFI")


# ---------------------------------------------------------------- the vocabulary, and refusals before boot

def test_uefi_secure_in_ids_and_selection():
    assert "uefi-secure" in FIRMWARES
    tid = vocab.TestId.parse("fcos.stable.iso.uefi-secure.live-login")
    assert (tid.firmware, tid.scenario) == ("uefi-secure", "live-login")
    assert vocab.TestId.parse("fcos.stable.iso.uefi.live-login").firmware == "uefi"
    conf = configuration_of(type("I", (), {"name": "test_x[fcos.stable.iso.uefi-secure]",
                                           "get_closest_marker": lambda self, n: None})())
    assert conf == {"os": "fcos", "stream": "stable", "method": "iso", "firmware": "uefi-secure"}
    assert not Selection.from_options(firmware=["uefi"]).keeps(conf)
    assert Selection.from_options(firmware=["uefi-secure"]).keeps(conf)


@pytest.mark.parametrize("method", ["pxe", "pxe-rootfs-url", "ipxe", "ipxe-chain"])
def test_network_boots_under_secure_boot_are_refused_before_any_vm(method, tmp_path):
    assert refusal("iso", "uefi-secure", 512) is None and refusal(method, "uefi", 512) is None
    with pytest.raises(LivelabError) as exc:
        LiveBoot(BootRequest("fcos", "stable", method, "uefi-secure"), LabOptions(accel="tcg"), tmp_path)
    why = refusal(method, "uefi-secure", 512)
    assert str(exc.value) == f"fcos.stable.{method}.uefi-secure: refused before boot: {why}"
    assert f"{method} under uefi-secure cannot boot: iPXE loads the kernel" in str(exc.value)
    assert "\n" not in str(exc.value) and not list(tmp_path.iterdir())
