"""The id grammar (harness.vocab): <os>.<stream|channel>.<method>.<firmware>[.<scenario>][.<disk>].

No case here is parametrized with an id that names a disk suffix: pytest -k matches the text of
parameter ids, and -k of the suffix must select the 4096-byte-sector cases alone (test_selection)."""
import pytest

from harness import vocab
from harness.errors import LivelabError
from harness.lab import BootRequest
from harness.vocab import CASE_ID_RE, DISK_SUFFIX, check_sector, refusal

K = DISK_SUFFIX[4096]


def test_ids_parse_and_print_back_with_their_disk():
    for text, want in [
        ("fcos.stable.iso.uefi.persist-var", ("persist-var", None, 512)),
        (f"fcos.stable.iso.uefi.persist-var.{K}", ("persist-var", K, 4096)),
        (f"fcos.stable.iso-as-disk.uefi.base.{K}", ("base", K, 4096)),
        (f"fcos.stable.iso.uefi.{K}", (None, K, 4096)),               # a configuration on 4Kn disks
        ("flatcar.lts.pxe.bios", (None, None, 512)),
        ("flatcar.stable.ipxe.bios.rootfs-tmpfs", ("rootfs-tmpfs", None, 512)),
    ]:
        tid = vocab.TestId.parse(text)
        assert (tid.scenario, tid.disk, tid.sector) == want, text
        assert str(tid) == text


def test_a_disk_suffix_is_never_part_of_a_scenario_name():
    """The old grammar took ``persist-var.4k`` for a scenario name (it let names have dots)."""
    tid = vocab.TestId.parse(f"fcos.stable.iso.uefi.persist-var.{K}")
    assert tid.scenario == "persist-var" and tid.disk == K
    for bad in ("fcos.stable.iso.uefi.persist.var", f"fcos.stable.iso.uefi.raid{K}",
                f"fcos.stable.iso.uefi.base.{K}.{K}", "fcos.stable.iso.uefi.base.8k"):
        with pytest.raises(LivelabError, match=r"bad test id .*\[\.<scenario>\]\[\.<disk>\]"):
            vocab.TestId.parse(bad)
    m = CASE_ID_RE.match(f"fcos.stable.iso.uefi.persist-var.{K}")
    assert m and (m["scenario"], m["disk"], m["id"]) == ("persist-var", K, f"fcos.stable.iso.uefi.persist-var.{K}")
    assert CASE_ID_RE.match(f"fcos.stable.iso.uefi.{K}") is None      # a case id names its scenario
    assert CASE_ID_RE.match("fcos.stable.iso.uefi.persist-var")["disk"] is None


def test_a_request_id_carries_its_disk_suffix():
    req = BootRequest("fcos", "stable", "iso", "uefi", sector=4096)
    assert (req.config_id, req.test_id) == ("fcos.stable.iso.uefi", f"fcos.stable.iso.uefi.{K}")
    assert BootRequest("fcos", "stable", "iso", "uefi").test_id == "fcos.stable.iso.uefi"


def test_sector_sizes():
    assert check_sector(512) == 512 and check_sector(4096) == 4096
    for bad in (1024, "4096", True, 4096.0):
        with pytest.raises(LivelabError, match=r"unsupported disk sector size .*expected one of 512, 4096"):
            check_sector(bad)


def test_only_the_iso_on_a_disk_of_big_sectors_is_refused():
    assert refusal("iso-as-disk", "uefi", 512) is None and refusal("iso-as-disk", "bios", 512) is None
    assert refusal("iso", "uefi", 4096) is None and refusal("pxe", "bios", 4096) is None
    uefi, bios = refusal("iso-as-disk", "uefi", 4096), refusal("iso-as-disk", "bios", 4096)
    assert uefi and bios and "isofs" in uefi and "isofs" in bios and "\n" not in uefi
    assert "no ESP" in uefi and "ESP" not in bios


def test_requests_are_refused_before_the_probe(tmp_path, monkeypatch):
    """LiveBoot refuses, before the accelerator probe or any download: a configuration that cannot
    boot, a request disk of another sector size than the boot's, a request disk in the ISO's place."""
    from harness import lab
    from harness.vm.spec import Disk

    def no_probe(_accel):
        raise AssertionError("the accelerator probe ran")

    monkeypatch.setattr(lab, "choose", no_probe)
    monkeypatch.setattr(lab, "qemu_binary", lambda: "qemu-system-x86_64")
    for req, error in [
        (BootRequest("fcos", "stable", "iso-as-disk", "uefi", sector=4096),
         rf"^fcos\.stable\.iso-as-disk\.uefi\.{K}: refused before boot: iso-as-disk on a 4096-byte-sector disk"),
        (BootRequest("fcos", "stable", "iso", "uefi", disks=[Disk("var", size="2G", sector=4096)]),
         r"^disk var: sector 4096, but this boot's disks have 512-byte sectors"),
        (BootRequest("fcos", "stable", "iso-as-disk", "bios", disks=[Disk("iso", size="2G")]),
         r"^disk iso: the live ISO's disk is the boot method's \(iso-as-disk, disk 'iso'\)"),
        (BootRequest("fcos", "stable", "pxe", "bios", disks=[Disk("usb", image="/x.iso")]),
         r"^disk usb: the live ISO's disk is the boot method's"),
        (BootRequest("fcos", "stable", "pxe", "bios", sector=1024), r"^unsupported disk sector size 1024"),
    ]:
        with pytest.raises(LivelabError, match=error):
            lab.LiveBoot(req, lab.LabOptions(), tmp_path)
    with pytest.raises(AssertionError, match="accelerator probe"):     # 4Kn disks of a boot on 4Kn: accepted
        lab.LiveBoot(BootRequest("fcos", "stable", "iso", "uefi", sector=4096,
                                 disks=[Disk("var", size="2G"), Disk("two", size="1G", sector=4096)]),
                     lab.LabOptions(), tmp_path)
