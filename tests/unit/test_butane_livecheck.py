"""A live boot of an installed system's root-disk config is refused before boot, unless its disks hold it.

``livelab butane`` translates such configs unchanged (test_butane_bootdevice.py); ``LiveBoot``
(``livelab boot``/``check``, the pytest fixtures) calls harness.ignition.livecheck first.
"""
from __future__ import annotations

import textwrap

import pytest

from harness.errors import LivelabError
from harness.ignition import butane_to_ignition
from harness.ignition.livecheck import MIN_DISK_MIB, check_live_disks, problem
from harness.lab import BootRequest, LabOptions, LiveBoot
from harness.vm.spec import Disk


def ign(text: str) -> dict:
    return butane_to_ignition(textwrap.dedent(text)).config


LUKS = ign("""
    variant: fcos
    version: 1.3.0
    boot_device:
      luks:
        tpm2: true
    """)
GRUB = ign("""
    variant: fcos
    version: 1.5.0
    grub:
      users: [{name: root, password_hash: grub.pbkdf2.sha512.10000.AA}]
    """)
ROOT_FS = ign("""
    variant: fcos
    version: 1.6.0
    storage:
      filesystems:
        - {device: /dev/disk/by-partlabel/root, label: root, format: xfs, wipe_filesystem: true}
    """)
BOOT_DISK = ign("""
    variant: fcos
    version: 1.6.0
    storage:
      disks:
        - {device: /dev/disk/by-id/coreos-boot-disk, partitions: [{number: 5, label: data}]}
    """)


def mirror(*devices: str) -> dict:
    return ign(f"""
        variant: fcos
        version: 1.3.0
        boot_device:
          luks: {{tpm2: true}}
          mirror: {{devices: [{", ".join(devices)}]}}
        """)


INSTALLED = Disk("os", backing="/images/fcos-metal.qcow2", backing_format="qcow2")
BIG = Disk("a", size="10G")


@pytest.mark.parametrize("config", [LUKS, GRUB, ROOT_FS, BOOT_DISK], ids=["luks", "grub", "root-fs", "boot-disk"])
def test_the_installed_disks_partitions_need_an_installed_disk(config):
    assert "only a disk holding an installed image has" in problem(config, [])
    assert "only a disk holding an installed image has" in problem(config, [BIG, BIG])
    assert problem(config, [INSTALLED]) is None


def test_luks_message_is_one_line_naming_what_waits():
    with pytest.raises(LivelabError) as e:
        check_live_disks(LUKS, [])
    assert str(e.value) == (
        "the live config changes the root disk (LUKS volume root): Ignition would wait for "
        "/dev/disk/by-partlabel/root (LUKS volume root), which only a disk holding an installed image has; "
        "attach one (a disk with backing=) or give this config to the installed system instead of the live boot")


def test_mirror_needs_its_disks_attached_and_big_enough():
    docs = mirror("/dev/sda", "/dev/sdb")       # butane-examples.md: no livelab VM has /dev/sda
    assert "Ignition would wait for /dev/sda (RAID md-boot), which this VM does not have (it has no disk)" \
        in problem(docs, [])
    assert "which this VM does not have (its 2 disk(s) are /dev/vda.." in problem(docs, [BIG, BIG])
    vd = mirror("/dev/vda", "/dev/vdb")
    assert "/dev/vdb" in problem(vd, [BIG])
    assert problem(vd, [BIG, BIG]) is None
    assert problem(vd, [BIG, Disk("b", size=f"{MIN_DISK_MIB}M")]) is None
    small = problem(vd, [BIG, Disk("b", size="2G")])
    assert small.endswith("/dev/vdb (RAID md-boot) is a 2G disk, less than the 8704 MiB a root disk needs "
                          "(butane's boot partitions, 512 MiB, and the 8 GiB root filesystem)")
    by_id = mirror("/dev/disk/by-id/virtio-m1", "/dev/disk/by-id/virtio-m2")
    assert problem(by_id, [Disk("x", size="9G", serial="m1"), Disk("y", size="9G", serial="m2")]) is None
    assert "virtio-m2" in problem(by_id, [Disk("x", size="9G", serial="m1")])


@pytest.mark.parametrize("text", [
    "variant: fcos\nversion: 1.6.0\n",
    # the repository's own scenarios: a data disk, a LUKS volume that is not the root
    "variant: fcos\nversion: 1.6.0\nstorage:\n  disks: [{device: /dev/disk/by-id/virtio-var, partitions: "
    "[{number: 1, label: var}]}]\n  filesystems: [{device: /dev/disk/by-partlabel/var, path: /var, format: xfs, "
    "label: var, with_mount_unit: true}]\n",
    "variant: fcos\nversion: 1.6.0\nstorage:\n  luks: [{name: secret, device: /dev/disk/by-id/virtio-secret}]\n"
    "  filesystems: [{device: /dev/mapper/secret, path: /var/lib/secret, format: xfs, label: secret}]\n",
    # boot_device asking for nothing generates nothing
    "variant: fcos\nversion: 1.6.0\nboot_device: {layout: aarch64}\n",
])
def test_live_configs_pass(text):
    assert problem(butane_to_ignition(text).config, []) is None
    assert problem(None, []) is None


def test_liveboot_refuses_before_anything_starts(tmp_path, monkeypatch):
    """The one check both front-ends share: LiveBoot's request checks, before the accelerator probe."""
    import harness.lab as lab

    monkeypatch.setattr(lab, "qemu_binary", lambda: "qemu-system-x86_64")

    def no_probe(*a, **kw):
        raise AssertionError("the accelerator probe ran")

    monkeypatch.setattr(lab, "choose", no_probe)
    bu = "variant: fcos\nversion: 1.3.0\nboot_device:\n  luks:\n    tpm2: true\n"
    with pytest.raises(LivelabError, match=r"^the live config changes the root disk \(LUKS volume root\)"):
        LiveBoot(BootRequest("fcos", "stable", "pxe", butane=bu), LabOptions(), tmp_path)
    req = BootRequest("fcos", "stable", "pxe", ignition=LUKS)
    with pytest.raises(LivelabError, match=r"root disk"):
        LiveBoot(req, LabOptions(), tmp_path)
    with pytest.raises(AssertionError, match="accelerator probe"):     # an installed disk attached: accepted
        LiveBoot(BootRequest("fcos", "stable", "pxe", butane=bu, disks=[INSTALLED]), LabOptions(), tmp_path)
