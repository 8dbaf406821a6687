"""Live-ISO customization on the real 2021-09 coreos-assembler fixture ISO.

The checks use the real tools (xz, cpio, xorriso) as independent readers.
"""
from __future__ import annotations

import base64
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.boot.iso import LiveISO, modify_kargs
from harness.cli import main as livelab
from harness.errors import LivelabError

FIXTURE = Path("/work/shared/reference/samples/coreos-installer/embed-areas-2021-09.iso.xz")
DEFAULT = ("mitigations=auto,nosmt coreos.liveiso=fedora-coreos-34.20210921.dev.0 "
           "ignition.firstboot ignition.platform.id=metal")
IGN_AREA = (102400, 262144)
KARGS_OFFSETS = {98126, 371658}
KARGS_SIZE = 1139

pytestmark = pytest.mark.skipif(not FIXTURE.exists(), reason="reference fixture ISO not available")


def _need(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {' '.join(missing)}")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("fixture") / "pristine.iso"
    p.write_bytes(lzma.decompress(FIXTURE.read_bytes()))
    os.chmod(p, 0o444)
    return p


@pytest.fixture
def iso(pristine, tmp_path) -> Path:
    p = tmp_path / "in.iso"
    shutil.copyfile(pristine, p)
    return p


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def write_cfg(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


CFG = {"ignition": {"version": "3.3.0"},
       "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAAtest livelab"]}]}}


def outside_areas_equal(a: bytes, b: bytes, areas) -> bool:
    assert len(a) == len(b)
    pos = 0
    for off, length in sorted(areas):
        if a[pos:off] != b[pos:off]:
            return False
        pos = off + length
    return a[pos:] == b[pos:]


def xorriso_extract(iso: Path, path: str, dest: Path) -> bytes:
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", path, str(dest)],
                   check=True, capture_output=True)
    return dest.read_bytes()


# ------------------------------------------------------------------ discovery


def test_discovery_json_and_legacy_agree(pristine):
    li = LiveISO(pristine)
    assert li.volume_id == "fedora-coreos-34.20210921.dev.0"
    assert li.ignition_area == IGN_AREA
    assert li.legacy_ignition_area == IGN_AREA          # coreiso+
    assert li.ignition_areas == [IGN_AREA]
    assert li.legacy_kargs["length"] == KARGS_SIZE       # coreKarg
    assert li.legacy_kargs["default_offset"] == 94208
    assert set(li.legacy_kargs["offsets"]) == KARGS_OFFSETS
    json_areas = {a.offset for a in li.kargs_areas if a.file}
    assert json_areas == KARGS_OFFSETS                   # kargs.json via the ISO9660 reader
    assert {a.offset for a in li.kargs_areas} == KARGS_OFFSETS
    assert all(a.length == KARGS_SIZE and a.pad == "#" and a.end == "\n" for a in li.kargs_areas)
    assert li.default_kargs == DEFAULT == li.legacy_kargs["default"]
    assert li.current_kargs() == DEFAULT
    assert li.embedded_ignition() is None
    assert not li.is_customized()


def test_iso9660_reader_matches_xorriso(pristine):
    _need("xorriso")
    out = subprocess.run(["xorriso", "-indev", str(pristine), "-find", "/", "-exec", "report_lba"],
                         capture_output=True, text=True, check=True).stdout
    lbas = {}
    for m in re.finditer(r"File data lba:\s*\d+\s*,\s*(\d+)\s*,\s*\d+\s*,\s*(\d+)\s*,\s*'([^']+)'", out):
        lbas[m.group(3)] = (int(m.group(1)) * 2048, int(m.group(2)))
    assert lbas["/images/ignition.img"] == IGN_AREA
    li = LiveISO(pristine)
    for path, (off, size) in lbas.items():
        e = li.fs.lookup(path)
        assert e is not None and (e.offset, e.size) == (off, size), path
        assert li.fs.lookup(path.upper()).offset == off  # case-insensitive
    for a in li.kargs_areas:
        assert a.offset - lbas["/" + a.file][0] in (970, 1870)


# ------------------------------------------------------------------ customize


def test_customize_ignition_and_kargs(pristine, tmp_path):
    _need("xz", "cpio", "xorriso")
    cfg = write_cfg(tmp_path / "c.ign", CFG)
    out = tmp_path / "out.iso"
    before = sha256(pristine)
    rc = livelab(["iso", "customize", "--live-ignition", str(cfg),
                  "--live-karg-append", "console=ttyS0,115200", "--live-karg-append", "loglevel=7",
                  "--live-karg-delete", "mitigations=auto,nosmt",
                  "-o", str(out), str(pristine)])
    assert rc == 0
    assert sha256(pristine) == before  # input untouched
    a, b = pristine.read_bytes(), out.read_bytes()
    areas = [IGN_AREA] + [(o, KARGS_SIZE) for o in KARGS_OFFSETS]
    assert outside_areas_equal(a, b, areas)
    assert a != b

    # Ignition area: xz(CRC32) newc cpio with config.ign 0600, zero padded
    area = b[IGN_AREA[0]:IGN_AREA[0] + IGN_AREA[1]]
    assert area.startswith(b"\xfd7zXZ\x00")
    blob = area.rstrip(b"\0")
    blob += b"\0" * ((4 - len(blob) % 4) % 4)
    lst = subprocess.run("xz -dc | cpio -itv", shell=True, input=area, capture_output=True, check=True)
    lines = [ln for ln in lst.stdout.decode().splitlines() if ln.strip()]
    assert len(lines) == 1 and re.match(r"^-rw------- .* config\.ign$", lines[0]), lines
    (tmp_path / "x").mkdir()
    subprocess.run("xz -dc | cpio -idm --quiet", shell=True, input=area, cwd=tmp_path / "x", check=True)
    assert (tmp_path / "x/config.ign").read_bytes() == cfg.read_bytes()
    xzf = tmp_path / "area.xz"
    xzf.write_bytes(area)
    info = subprocess.run(["xz", "--robot", "-lvv", str(xzf)], capture_output=True, text=True, check=True).stdout
    assert "CRC32" in info

    # kargs areas in both bootloader configs
    want = DEFAULT.replace("mitigations=auto,nosmt ", "") + " console=ttyS0,115200 loglevel=7"
    for path in ("/isolinux/isolinux.cfg", "/EFI/fedora/grub.cfg"):
        text = xorriso_extract(out, path, tmp_path / Path(path).name).decode()
        m = re.search(re.escape(want) + r"\n(#+) COREOS_KARG_EMBED_AREA", text)
        assert m, path
        assert m.start() in (970, 1870)
        # the area is KARGS_SIZE bytes; the fixture's template has one more '#' after it
        assert len(want) + 1 + len(m.group(1)) == KARGS_SIZE + 1
        assert "mitigations" not in text.split("COREOS_KARG_EMBED_AREA")[0].splitlines()[-1]

    li = LiveISO(out)
    assert li.embedded_ignition() == CFG
    assert li.current_kargs() == want
    assert li.is_customized()


def test_customize_in_place_without_output(iso, tmp_path):
    cfg = write_cfg(tmp_path / "c.ign", CFG)
    assert livelab(["iso", "customize", "--live-ignition", str(cfg), str(iso)]) == 0
    assert LiveISO(iso).embedded_ignition() == CFG


def test_api_customize_dict_and_reset(pristine, tmp_path):
    out = LiveISO.customize(pristine, tmp_path / "o.iso", ignition=CFG, karg_append=["console=ttyS0"])
    assert out == tmp_path / "o.iso"
    li = LiveISO(out)
    assert li.embedded_ignition() == CFG
    assert li.current_kargs() == DEFAULT + " console=ttyS0"
    back = LiveISO.reset(out, tmp_path / "r.iso")
    assert sha256(back) == sha256(pristine)


def test_refuses_customized_without_force(pristine, tmp_path):
    cfg = write_cfg(tmp_path / "c.ign", CFG)
    one = tmp_path / "one.iso"
    LiveISO.customize(pristine, one, ignition=cfg.read_bytes())
    with pytest.raises(LivelabError, match="already customized"):
        LiveISO.customize(one, tmp_path / "two.iso", karg_append=["x=1"])
    assert not (tmp_path / "two.iso").exists()
    # kargs-only customization also counts as customized
    kone = LiveISO.customize(pristine, tmp_path / "k.iso", karg_append=["x=1"])
    with pytest.raises(LivelabError, match="already customized"):
        LiveISO.customize(kone, tmp_path / "k2.iso", karg_append=["y=2"])
    # --force: starts from the pristine state (previous Ignition removed, default kargs)
    two = tmp_path / "two.iso"
    rc = livelab(["iso", "customize", "--force", "--live-karg-append", "x=1", "-o", str(two), str(one)])
    assert rc == 0
    li = LiveISO(two)
    assert li.embedded_ignition() is None
    assert li.current_kargs() == DEFAULT + " x=1"


def test_cli_refusal_is_one_line(pristine, tmp_path, capsys):
    cfg = write_cfg(tmp_path / "c.ign", CFG)
    one = LiveISO.customize(pristine, tmp_path / "one.iso", ignition=CFG)
    capsys.readouterr()
    rc = livelab(["iso", "customize", "--live-ignition", str(cfg), str(one)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "already customized" in err


def test_too_large_config_refused(pristine, tmp_path):
    noise = base64.b64encode(os.urandom(300 * 1024)).decode()
    big = {"ignition": {"version": "3.3.0"},
           "storage": {"files": [{"path": "/var/noise", "contents": {"source": "data:;base64," + noise}}]}}
    with pytest.raises(LivelabError, match="Compressed initramfs is too large"):
        LiveISO.customize(pristine, tmp_path / "o.iso", ignition=big)
    assert not (tmp_path / "o.iso").exists()


def test_kargs_too_long_refused(pristine, tmp_path):
    with pytest.raises(LivelabError, match="too long"):
        LiveISO.customize(pristine, tmp_path / "o.iso", karg_append=["x=" + "a" * 1100])


def test_karg_delete_missing_is_error(pristine, tmp_path, capsys):
    rc = livelab(["iso", "customize", "--live-karg-delete", "quiet", "-o", str(tmp_path / "o.iso"), str(pristine)])
    assert rc == 2 and "quiet" in capsys.readouterr().err
    assert not (tmp_path / "o.iso").exists()


def test_karg_replace_and_delete_by_key(pristine, tmp_path):
    out = LiveISO.customize(pristine, tmp_path / "o.iso",
                            karg_replace=["ignition.platform.id=metal=qemu"], karg_delete=["mitigations"])
    assert LiveISO(out).current_kargs() == (
        "coreos.liveiso=fedora-coreos-34.20210921.dev.0 ignition.firstboot ignition.platform.id=qemu")
    with pytest.raises(LivelabError, match="cannot replace"):
        modify_kargs(DEFAULT, replace=["ignition.platform.id=aws=qemu"])


def test_reset_restores_pristine_bytes(pristine, iso, tmp_path):
    cfg = write_cfg(tmp_path / "c.ign", CFG)
    assert livelab(["iso", "customize", "--live-ignition", str(cfg), "--live-karg-append",
                    "console=ttyS0,115200", str(iso)]) == 0
    assert sha256(iso) != sha256(pristine)
    out = tmp_path / "reset.iso"
    assert livelab(["iso", "reset", "-o", str(out), str(iso)]) == 0
    assert sha256(out) == sha256(pristine)
    assert livelab(["iso", "reset", str(iso)]) == 0   # in place
    assert sha256(iso) == sha256(pristine)


def test_multiple_live_ignition_merged(pristine, tmp_path):
    c1 = write_cfg(tmp_path / "a.ign", {"ignition": {"version": "3.2.0"}, "storage": {"files": [{"path": "/a"}]}})
    c2 = write_cfg(tmp_path / "b.ign", {"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/b"}]}})
    out = tmp_path / "o.iso"
    assert livelab(["iso", "customize", "--live-ignition", str(c1), "--live-ignition", str(c2),
                    "-o", str(out), str(pristine)]) == 0
    cfg = LiveISO(out).embedded_ignition()
    assert cfg["ignition"]["version"] == "3.3.0"
    srcs = [m["source"] for m in cfg["ignition"]["config"]["merge"]]
    assert [base64.b64decode(s.split(",", 1)[1]) for s in srcs] == [c1.read_bytes(), c2.read_bytes()]


@pytest.mark.parametrize("content,msg", [
    ("variant: fcos\nversion: 1.5.0\n", "not valid JSON"),
    ('{"passwd": {}}', "ignition.version"),
    ('{"ignition": {"version": "2.2.0"}}', "not supported"),
    ("[1, 2]", "JSON object"),
])
def test_invalid_ignition_rejected(pristine, tmp_path, capsys, content, msg):
    cfg = write_cfg(tmp_path / "bad.ign", content)
    out = tmp_path / "o.iso"
    rc = livelab(["iso", "customize", "--live-ignition", str(cfg), "-o", str(out), str(pristine)])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and err.count("\n") == 1
    assert not out.exists()


def test_show(pristine, tmp_path, capsys):
    out = LiveISO.customize(pristine, tmp_path / "o.iso", ignition=CFG, karg_append=["console=ttyS0"])
    capsys.readouterr()
    assert livelab(["iso", "show", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ssh-ed25519 AAAAtest livelab" in text
    assert f"Default kargs: {DEFAULT}\n" in text
    assert f"Current kargs: {DEFAULT} console=ttyS0" in text


def test_iso_without_embed_areas(tmp_path, capsys):
    _need("xorriso")
    src = tmp_path / "tree"
    (src / "images").mkdir(parents=True)
    (src / "images/hello.txt").write_text("hi\n")
    plain = tmp_path / "plain.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", "PLAIN", "-o", str(plain), str(src)],
                   check=True, capture_output=True)
    li_err = None
    try:
        LiveISO(plain)
    except LivelabError as exc:
        li_err = str(exc)
    assert li_err and "no Ignition or kernel-argument embed area" in li_err
    cfg = write_cfg(tmp_path / "c.ign", CFG)
    rc = livelab(["iso", "customize", "--live-ignition", str(cfg), "-o", str(tmp_path / "o.iso"), str(plain)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "embed area" in err
    # the reader itself works on this ISO (Rock Ridge names)
    from harness.boot.iso import ISO9660
    fs = ISO9660(plain)
    e = fs.lookup("images/hello.txt")
    assert fs.read_file(e) == b"hi\n"
    with open(plain, "rb") as f:
        assert ISO9660(f).lookup("IMAGES/HELLO.TXT").size == 3


def test_not_an_iso(tmp_path):
    p = tmp_path / "x.iso"
    p.write_bytes(b"\0" * 40000)
    with pytest.raises(LivelabError, match="not an ISO9660"):
        LiveISO(p)


def test_pxe_ignition_wrap(tmp_path):
    _need("xz", "cpio")
    cfg = write_cfg(tmp_path / "c.ign", CFG)
    out = tmp_path / "ign.img"
    assert livelab(["pxe", "ignition-wrap", "-i", str(cfg), "-o", str(out)]) == 0
    blob = out.read_bytes()
    assert blob.startswith(b"\xfd7zXZ\x00")
    (tmp_path / "x").mkdir()
    subprocess.run("xz -dc | cpio -idm --quiet", shell=True, input=blob, cwd=tmp_path / "x", check=True)
    assert (tmp_path / "x/config.ign").read_bytes() == cfg.read_bytes()
    assert oct((tmp_path / "x/config.ign").stat().st_mode & 0o777) == "0o600"
    bad = write_cfg(tmp_path / "bad.ign", "{}")
    assert livelab(["pxe", "ignition-wrap", "-i", str(bad), "-o", str(tmp_path / "b.img")]) == 2


def test_legacy_headers_only_give_same_result(pristine, tmp_path, monkeypatch):
    """With coreos/*.json and images/ignition.img hidden, coreiso+/coreKarg alone drive the edit."""
    both = LiveISO.customize(pristine, tmp_path / "both.iso", ignition=CFG, karg_append=["console=ttyS0"])
    real_lookup = __import__("harness.boot.iso", fromlist=["ISO9660"]).ISO9660.lookup

    def hidden(self, path):
        if path.strip("/").lower() in ("coreos/kargs.json", "coreos/igninfo.json", "images/ignition.img"):
            return None
        return real_lookup(self, path)

    monkeypatch.setattr("harness.boot.iso.ISO9660.lookup", hidden)
    li = LiveISO(pristine)
    assert li.sources == ["coreiso+", "coreKarg"]
    assert li.ignition_area == IGN_AREA
    assert {a.offset for a in li.kargs_areas} == KARGS_OFFSETS
    assert li.default_kargs == DEFAULT
    legacy = LiveISO.customize(pristine, tmp_path / "legacy.iso", ignition=CFG, karg_append=["console=ttyS0"])
    assert sha256(legacy) == sha256(both)


def test_json_only_without_legacy_headers(pristine, tmp_path):
    data = bytearray(pristine.read_bytes())
    data[32768 - 24 - 72:32768] = bytes(96)  # wipe coreKarg + coreiso+ headers
    nohdr = tmp_path / "nohdr.iso"
    nohdr.write_bytes(bytes(data))
    li = LiveISO(nohdr)
    assert li.sources == ["images/ignition.img", "coreos/kargs.json"]
    assert li.ignition_area == IGN_AREA and {a.offset for a in li.kargs_areas} == KARGS_OFFSETS
    out = LiveISO.customize(nohdr, tmp_path / "o.iso", ignition=CFG, karg_append=["console=ttyS0"])
    ref = LiveISO.customize(pristine, tmp_path / "ref.iso", ignition=CFG, karg_append=["console=ttyS0"])
    a, b = out.read_bytes(), ref.read_bytes()
    assert a[32768:] == b[32768:]


def test_plain_iso9660_names_without_rock_ridge(tmp_path):
    _need("xorriso")
    src = tmp_path / "tree"
    (src / "coreos").mkdir(parents=True)
    (src / "coreos/hello.txt").write_text("hi\n")
    plain = tmp_path / "plain.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(plain), str(src)],
                   check=True, capture_output=True)
    from harness.boot.iso import ISO9660
    fs = ISO9660(plain)
    e = fs.lookup("/coreos/hello.txt")
    assert e is not None and e.iso_name == "HELLO.TXT" and fs.read_file(e) == b"hi\n"


def test_writes_cover_exactly_the_areas(pristine):
    li = LiveISO(pristine)
    writes = li._plan(b"\xfd7zXZ\x00payload", DEFAULT + " console=ttyS0")
    spans = sorted((off, len(data)) for off, data in writes)
    assert spans == sorted([IGN_AREA] + [(o, KARGS_SIZE) for o in KARGS_OFFSETS])
    for off, data in writes:
        if off in KARGS_OFFSETS:
            assert data == (DEFAULT + " console=ttyS0\n").encode().ljust(KARGS_SIZE, b"#")


def test_el_torito_disabled_for_a_boot_as_disk(pristine, tmp_path):
    """iso-as-disk (as kola does): the El Torito boot record's identifier alone changes, so firmware
    boots the disk through its MBR or GPT; the customization stays readable; xorriso (an independent
    reader) finds no El Torito boot any more."""
    from harness.boot.iso import ISO9660, disable_el_torito
    out = LiveISO.customize(pristine, tmp_path / "disk.iso", karg_append=["quiet"])
    before = out.read_bytes()
    offset = ISO9660(out).el_torito_id
    assert offset == 17 * 2048 + 7 and before[offset:offset + 23] == b"EL TORITO SPECIFICATION"
    assert disable_el_torito(out) is True
    after = out.read_bytes()
    assert len(after) == len(before) and after[offset:offset + 23] == b"NO TORITO SPECIFICATION"
    assert after[:offset] == before[:offset] and after[offset + 2:] == before[offset + 2:]
    assert LiveISO(out).current_kargs().endswith(" quiet")
    assert ISO9660(out).el_torito_id is None and disable_el_torito(out) is False
    if shutil.which("xorriso"):
        def report(iso):
            return subprocess.run(["xorriso", "-indev", str(iso), "-report_el_torito", "plain"],
                                  capture_output=True, text=True).stdout
        assert "El Torito boot img" in report(pristine) and "El Torito boot img" not in report(out)


def test_the_iso_methods_media(pristine, tmp_path):
    """The customized ISO of iso/iso-fromram is a CD; iso-as-disk's is the same ISO (Ignition and
    kargs embedded), El Torito disabled, as a disk of the request's sector size booted first."""
    from types import SimpleNamespace

    from harness.boot import methods
    from harness.boot.iso import ISO9660
    from harness.lab import BootRequest
    from harness.vm.spec import Disk
    config = {"ignition": {"version": "3.3.0"}}
    for method in ("iso", "iso-as-disk"):
        run_dir = tmp_path / method
        run_dir.mkdir()
        lab = SimpleNamespace(req=BootRequest("fcos", "stable", method, "uefi"), run_dir=run_dir, config=config,
                              files={"iso": SimpleNamespace(path=str(pristine))})
        media = methods.prepare(lab, ["console=ttyS0,115200"])
        out = run_dir / "live.iso"
        assert LiveISO(out).current_kargs().endswith(" console=ttyS0,115200")
        assert json.loads(LiveISO(out).embedded_ignition_bytes()) == config
        if method == "iso":
            assert media == methods.BootMedia("cdrom", cdrom=str(out)) and ISO9660(out).el_torito_id
        else:
            assert media == methods.BootMedia("disk", disk=Disk("iso", image=str(out), sector=512))
            assert ISO9660(out).el_torito_id is None
