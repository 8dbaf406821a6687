"""Across reboots and media: fromram (the CD's tray, the ISO as a disk), the ISO on 4Kn disks,
live login without a config, Flatcar root modes, sshkey, autologin, OEM config, RAM minimums.
Runbook style over harness classes; ids carry the config."""
import re
import time
from pathlib import Path

import pytest

from harness import matrix
from harness import scenario as sc
from harness.boot.methods import ISO_DISK
from harness.errors import BootFailure, LivelabError
from harness.lab import BootRequest
from harness.vm.qemu import LIVEISO_SUCCESS_PORT, Disk

pytestmark = pytest.mark.e2e
EMPTY = {"ignition": {"version": "3.3.0"}}
# the filesystem type (and source) holding the root's writable data: / itself on Flatcar; the
# upper layer where / is an overlay (the stand-in keeps a whole read-only root under it)
ROOT_STORAGE = ("""m=$(findmnt -n -o FSTYPE /); if [ "$m" = overlay ]; then """
                """u=$(findmnt -n -o OPTIONS / | tr , '\\n' | sed -n 's/^upperdir=//p'); """
                """findmnt -n -o SOURCE,FSTYPE --target "$u"; else findmnt -n -o SOURCE,FSTYPE /; fi""")


def _eject_error(reply):
    return (reply.get("error") or {}).get("desc")


@pytest.mark.livelab(os="fcos", stream="stable", method="iso-fromram")
@pytest.mark.ci
@pytest.mark.parametrize("firmware", ["bios"])
def test_fromram_releases_the_media(live_vm, firmware):
    """fcos.stable.iso-fromram.<fw>: no mount refers to the CD, a QMP eject WITHOUT force succeeds,
    the backing file can be overwritten, and the system keeps working after dropping caches."""
    lb = live_vm(BootRequest("fcos", "stable", "iso-fromram", firmware, ignition=EMPTY,
                             name=f"fcos.stable.iso-fromram.{firmware}"))
    m = lb.machine
    m.wait_for_ssh()
    assert "coreos.liveiso.fromram" in m.succeed("cat /proc/cmdline")
    mounts = m.succeed("findmnt -rn -o SOURCE,FSTYPE,TARGET")
    assert "iso9660" not in mounts and "/dev/sr0" not in mounts, mounts
    assert "sr0" not in m.succeed("sudo losetup -a; true")
    reply = m.eject(force=False)
    assert _eject_error(reply) is None, reply
    # the backing file is free to be overwritten: do it, then make the guest re-read everything
    iso = lb.run_dir / "live.iso"
    with open(iso, "r+b") as f:
        f.write(b"\0" * (1 << 20))
    m.succeed("sudo sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'")
    m.succeed("sudo find /usr/bin /usr/lib -type f -exec cat {} + > /dev/null")
    assert "No medium found" in m.execute("sudo dd if=/dev/sr0 of=/dev/null bs=2048 count=1")[2]
    assert m.succeed("echo still-alive").strip() == "still-alive"


@pytest.mark.livelab(os="fcos", stream="stable", method="iso", firmware="bios")
@pytest.mark.ci
def test_iso_without_fromram_keeps_the_media(live_vm):
    """fcos.stable.iso.bios: the contrast: the CD stays mounted and a QMP eject without force is
    refused (the tray is locked)."""
    lb = live_vm(BootRequest("fcos", "stable", "iso", "bios", ignition=EMPTY, name="fcos.stable.iso.bios.media"))
    m = lb.machine
    m.wait_for_ssh()
    assert "coreos.liveiso=" in m.succeed("cat /proc/cmdline")
    mounts = m.succeed("findmnt -rn -o SOURCE,FSTYPE,TARGET")
    assert "iso9660" in mounts, mounts
    err = _eject_error(m.eject(force=False))   # asks the guest, waits for the tray, asks again
    assert err and "locked" in err.lower(), err
    assert m.tray_open() is False


# The live ISO's disk in the guest: the disk under the partition coreos.liveiso= names (by its label)
ISO_DISK_NAME = ("lsblk -ndo PKNAME \"/dev/disk/by-label/$(sed -n 's/.*coreos\\.liveiso=\\([^ ]*\\).*/\\1/p' "
                 "/proc/cmdline)\"")
# after the disk is gone, what a live root needs of it: drop the page cache, read every program again
READ_EVERYTHING = ("sudo sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches; "
                   "find /usr/bin /usr/lib -type f -exec cat {} + > /dev/null'")


def _pull_iso_disk(lb):
    """The ISO as a disk (a USB stick) pulled out of a running live system, as the CD's tray
    contrast does it for a CD (``_eject_error``): is it held (mounted, the root's loop file on it;
    the kernel's own word: re-reading its partition table is refused while a partition is in use),
    then QMP ``device_del`` (QEMU removes the device once the guest let it go: Linux never refuses
    a PCIe unplug), and whether the live system still reads every program it has."""
    m = lb.machine
    disk = m.succeed(ISO_DISK_NAME).strip()
    assert re.fullmatch(r"vd[a-z]", disk), disk
    seen = {"disk": disk, "mounts": m.succeed("findmnt -rn -o SOURCE,FSTYPE,TARGET"),
            "loops": m.succeed("sudo losetup -a; true"),
            "reread": m.execute(f"sudo blockdev --rereadpt /dev/{disk}")}
    iso = str(lb.run_dir / "live.iso")
    assert any(b.get("inserted", {}).get("file") == iso for b in m.qmp.cmd("query-block")), "no ISO drive"
    seen["unplug"] = m.unplug_disk(ISO_DISK)
    seen["drives"] = [b.get("inserted", {}).get("file") for b in m.qmp.cmd("query-block")]
    seen["after"] = m.execute(f"test ! -e /sys/block/{disk} && {READ_EVERYTHING} && echo still-alive", timeout=300)
    return seen


@pytest.mark.livelab(os="fcos", stream="stable", method="iso-as-disk")
@pytest.mark.parametrize("firmware, fromram", [
    pytest.param("bios", True, id="fcos.stable.iso-as-disk.bios.fromram", marks=pytest.mark.ci),
    pytest.param("uefi", False, id="fcos.stable.iso-as-disk.uefi.kept", marks=pytest.mark.ci)])
def test_iso_disk_fromram_contrast(live_vm, firmware, fromram):
    """fcos.stable.iso-as-disk.<fw>.fromram|kept: the ISO as a disk has no tray; with
    coreos.liveiso.fromram the guest holds nothing of it, device_del takes it out of QEMU and of
    the guest, and the system keeps reading all it has; without fromram the guest holds it (its
    ISO9660 mounted, the root squashfs's loop file on it, the kernel refuses to re-read it: busy),
    and once pulled the live root loses what it had not read yet (I/O errors).  Each side on its
    own firmware: CI's two boots of the ISO as a disk cover the MBR (BIOS) and the GPT's ESP (UEFI)."""
    name = f"fcos.stable.iso-as-disk.{firmware}.{'fromram' if fromram else 'kept'}"
    lb = live_vm(BootRequest("fcos", "stable", "iso-as-disk", firmware, ignition=EMPTY, name=name,
                             kargs=["coreos.liveiso.fromram"] if fromram else []))
    m = lb.machine
    m.wait_for_ssh()
    assert m.spec.cdrom is None and "ide-cd" not in " ".join(m.command()), "a CD drive"
    assert m.succeed("test -e /run/ostree-live && ls /sys/class/block | grep -c '^sr' || true").strip() == "0"
    seen = _pull_iso_disk(lb)
    iso = str(lb.run_dir / "live.iso")
    assert seen["unplug"]["unplugged"] and "error" not in seen["unplug"]["reply"], seen["unplug"]
    assert iso not in seen["drives"], seen["drives"]
    if fromram:
        assert "iso9660" not in seen["mounts"] and f"/dev/{seen['disk']}" not in seen["mounts"], seen["mounts"]
        assert "/run/media/iso" not in seen["loops"], seen["loops"]
        assert seen["reread"][0] == 0, seen["reread"]
        assert seen["after"][0] == 0 and "still-alive" in seen["after"][1], seen["after"]
    else:
        assert re.search(rf"^/dev/{seen['disk']}\d* iso9660 /run/media/iso$", seen["mounts"], re.M), seen["mounts"]
        assert "/run/media/iso/images/pxeboot/rootfs.img" in seen["loops"], seen["loops"]
        assert seen["reread"][0] != 0 and "busy" in seen["reread"][2].lower(), seen["reread"]
        status, out, err = seen["after"]
        assert status != 0 and "still-alive" not in out, seen["after"]
        assert re.search(r"Input/output error|Bus error", err), seen["after"]


@pytest.mark.livelab(os="fcos", stream="stable", method="iso-as-disk")
@pytest.mark.ci
@pytest.mark.parametrize("firmware", ["bios", "uefi"], ids=lambda fw: f"fcos.stable.iso-as-disk.{fw}.base.4k")
def test_iso_as_disk_on_4kn_is_refused_before_boot(live_vm, firmware):
    """fcos.stable.iso-as-disk.<fw>.base.4k (kola's iso-as-disk.4k.uefi): the live ISO on a disk of
    4096-byte sectors cannot boot (OVMF finds no ESP, Linux's isofs mounts no ISO9660 on it;
    images/README.md): refused in one line before any VM, download or probe, and the matrix lists
    the cell as refused, not as failed."""
    scenarios = Path(__file__).resolve().parents[2] / "scenarios"
    base = sc.load(scenarios / "base.yaml")
    req = base.request("fcos", "stable", "iso-as-disk", firmware, sector=4096)
    assert req.test_id == f"fcos.stable.iso-as-disk.{firmware}.4k"
    with pytest.raises(LivelabError) as exc:
        live_vm(req, start=False)
    msg = str(exc.value)
    assert msg.startswith(f"fcos.stable.iso-as-disk.{firmware}.4k: refused before boot: iso-as-disk on a "
                          "4096-byte-sector disk cannot boot") and "isofs" in msg and "\n" not in msg, msg
    assert ("UEFI finds no ESP" in msg) == (firmware == "uefi"), msg
    assert not live_vm.boots, "a VM was made"
    m = matrix.build_matrix("fcos", "stable", "iso-as-disk", firmware, "base", [scenarios], sectors="4096")
    assert m.cells == [] and m.refused == [{"id": f"fcos.stable.iso-as-disk.{firmware}.base.4k",
                                             "reason": msg.split(": refused before boot: ", 1)[1]}]


@pytest.mark.livelab(os="fcos", stream="stable", method="iso", firmware="bios")
@pytest.mark.ci
def test_live_iso_without_config_autologin_and_success_token(live_vm):
    """fcos.stable.iso.bios.live-login (kola's live-login): no user config at all: serial
    autologin as core, and coreos-liveiso-success on its virtio port."""
    lb = live_vm(BootRequest("fcos", "stable", "iso", "bios", user_config=False,
                             name="fcos.stable.iso.bios.live-login"))
    m = lb.machine
    assert lb.config is None and m.spec.virtio_ports == [LIVEISO_SUCCESS_PORT]
    status, out = m.console_run("id -un")
    assert (status, out.strip()) == (0, "core")
    m.wait_for_port_token("coreos-liveiso-success", port=LIVEISO_SUCCESS_PORT)


@pytest.mark.livelab(os="flatcar", stream="stable", method="ipxe", firmware="bios")
@pytest.mark.parametrize("rootfstype,expect", [("tmpfs", "tmpfs"),
                                               pytest.param("btrfs", "btrfs", marks=pytest.mark.ci)])
def test_flatcar_rootfstype(live_vm, rootfstype, expect):
    """flatcar.stable.ipxe.bios.rootfs-<type>: the root filesystem type follows rootfstype=."""
    lb = live_vm(BootRequest("flatcar", "stable", "ipxe", "bios", ignition=EMPTY, kargs=[f"rootfstype={rootfstype}"],
                             name=f"flatcar.stable.ipxe.bios.rootfs-{rootfstype}"))
    lb.machine.wait_for_ssh()
    assert lb.machine.succeed(ROOT_STORAGE).split()[-1] == expect


@pytest.mark.livelab(os="flatcar", stream="stable", method="pxe", firmware="bios")
@pytest.mark.ci
def test_flatcar_root_on_disk_kept_across_reboot(live_vm):
    """flatcar.stable.pxe.bios.root-disk: root= on a local disk; flatcar.first_boot only on boot 1;
    the state written on boot 1 is there on boot 2 (Ignition did not run again)."""
    butane = """
variant: flatcar
version: 1.0.0
storage:
  filesystems:
    - device: /dev/disk/by-id/virtio-root
      format: ext4
      label: ROOT
      wipe_filesystem: true
"""
    lb = live_vm(BootRequest("flatcar", "stable", "pxe", "bios", butane=butane, kargs=["root=LABEL=ROOT"],
                             disks=[Disk("root", size="4G", serial="root")], name="flatcar.stable.pxe.bios.root-disk"))
    m = lb.machine
    m.wait_for_ssh()
    assert m.succeed(ROOT_STORAGE).split()[-1] == "ext4"
    m.succeed("sudo sh -c 'echo kept > /etc/livelab-state'")
    lb.power_cycle(remove=["flatcar.first_boot"])
    m.wait_for_ssh()   # the key Ignition wrote on boot 1 lives on the disk root
    assert m.succeed("cat /etc/livelab-state").strip() == "kept"
    assert "flatcar.first_boot" not in m.succeed("cat /proc/cmdline")


@pytest.mark.livelab(os="flatcar", stream="beta", method="pxe", firmware="bios")
@pytest.mark.ci
def test_flatcar_no_first_boot_sshkey_and_autologin(live_vm, livelab):
    """flatcar.beta.pxe.bios.sshkey-autologin: without flatcar.first_boot Ignition does not run
    (its config would write a file; the file is absent), sshkey="..." lets SSH in with no
    Ignition at all, and flatcar.autologin=ttyS0 gives a shell on the serial console."""
    key = livelab.ssh_key.public
    config = {"ignition": {"version": "3.3.0"},
              "storage": {"files": [{"path": "/etc/ignition-ran", "mode": 420, "contents": {"source": "data:,yes"}}]}}
    lb = live_vm(BootRequest("flatcar", "beta", "pxe", "bios", ignition=config, ssh=False, completion=False,
                             without_kargs=["flatcar.first_boot"],
                             kargs=[f'sshkey="{key}"', "flatcar.autologin=ttyS0"],
                             name="flatcar.beta.pxe.bios.sshkey-autologin"))
    m = lb.machine
    assert "flatcar.first_boot" not in (lb.run_dir / "kargs.txt").read_text()
    status, out = m.console_run("id -un; test -e /etc/ignition-ran && echo ran || echo not-run")
    assert status == 0 and out.splitlines() == ["core", "not-run"], out
    m.wait_for_ssh()
    assert m.succeed("cat ~/.ssh/authorized_keys ~/.ssh/authorized_keys.d/* 2>/dev/null").count(key.split()[1]) >= 1


@pytest.mark.livelab(os="flatcar", stream="stable", method="pxe", firmware="bios")
@pytest.mark.ci
def test_flatcar_oem_config_from_extra_initrd(live_vm):
    """flatcar.stable.pxe.bios.oem: /usr/share/oem/config.ign from an extra initrd is applied."""
    oem = {"ignition": {"version": "3.3.0"},
           "storage": {"files": [{"path": "/etc/livelab-oem", "mode": 420,
                                  "contents": {"source": "data:,from-oem"}}]}}
    lb = live_vm(BootRequest("flatcar", "stable", "pxe", "bios", user_config=False, oem_config=oem,
                             kargs=["flatcar.autologin=ttyS0"], name="flatcar.stable.pxe.bios.oem"))
    m = lb.machine
    status, out = m.console_run("cat /etc/livelab-oem")
    assert (status, out.strip()) == (0, "from-oem")


@pytest.mark.livelab(os="fcos", stream="stable", method="pxe", firmware="bios")
def test_below_minimum_refused_before_boot(live_vm):
    """fcos.stable.pxe.bios: asking for less than the documented minimum is refused at once."""
    with pytest.raises(LivelabError, match=r"below the minimum of 4096 MiB .*FCOS live-booting docs"):
        live_vm(BootRequest("fcos", "stable", "pxe", "bios", memory_mib=2048))


@pytest.mark.livelab(os="fcos", stream="stable", method="pxe", firmware="bios")
@pytest.mark.ci
def test_out_of_memory_fails_fast_and_memory_is_what_was_asked(live_vm):
    """fcos.stable.pxe.bios.oom: with the rootfs appended and far too little RAM, the boot fails
    fast with an out-of-memory reason (not a timeout); a VM's MemTotal matches what was asked."""
    t0 = time.monotonic()
    lb = live_vm(BootRequest("fcos", "stable", "pxe", "bios", memory_mib=256, ignition=EMPTY,
                             name="fcos.stable.pxe.bios.oom"), below_minimum=True)
    with pytest.raises(BootFailure) as exc:
        lb.machine.wait_for_ssh()
    first = str(exc.value).splitlines()[0]
    assert re.search(r"out of (memory|RAM-disk space)|kernel panic", first), first
    assert time.monotonic() - t0 < lb.machine.timeouts.boot / 2


@pytest.mark.livelab(os="fcos", stream="stable", method="pxe-rootfs-url", firmware="bios")
@pytest.mark.ci
def test_tampered_rootfs_is_refused_with_its_console_message(live_vm, tmp_path):
    """fcos.stable.pxe-rootfs-url.bios.tampered: the guest checks the rootfs it fetches against
    the hash list in its initramfs; a tampered image stops the boot with a clear console line,
    reported at once (the harness serves the verified cache, so the test tampers a copy)."""
    lb = live_vm(BootRequest("fcos", "stable", "pxe-rootfs-url", "bios", ignition=EMPTY,
                             name="fcos.stable.pxe-rootfs-url.bios.tampered"), start=False)
    lb.prepare()
    tampered = tmp_path / "rootfs.img"
    with open(lb.files["rootfs"].path, "rb") as src:
        data = bytearray(src.read())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    lb.http.publish(lb.paths["rootfs"], tampered)
    t0 = time.monotonic()
    lb.start()
    with pytest.raises(BootFailure) as exc:
        lb.machine.wait_for_ssh()
    assert "live rootfs refused" in str(exc.value).splitlines()[0], str(exc.value)[:500]
    assert time.monotonic() - t0 < lb.machine.timeouts.boot / 2
