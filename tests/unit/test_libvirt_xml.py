"""Domain XML of the libvirt backend (harness.vm.libvirt.domain_xml), one feature at a time."""
import xml.etree.ElementTree as ET

import pytest

from harness.errors import LivelabError
from harness.vm.accel import Accel
from harness.vm.libvirt import (
    CD_ALIAS,
    COMBINED_INITRD,
    QEMU_NS,
    combine_initrds,
    domain_name,
    domain_xml,
    is_local_uri,
    xml_isolation_problems,
    xml_passthrough_args,
)
from harness.vm.qemu import OVMF_CODE, Disk, VMSpec, build_command, isolation_problems, netdev_arg, nic_arg
from harness.vm.spec import OVMF_SECURE_CODE, OVMF_SECURE_VARS

TCG = Accel("tcg", "test")


def spec(**kw):
    return VMSpec(name=kw.pop("name", "fcos.stable.pxe.bios"), memory_mib=kw.pop("memory_mib", 2048), **kw)


def dom(tmp_path, accel=TCG, **kw):
    return ET.fromstring(domain_xml(spec(**kw), tmp_path, accel, name="livelab-t-1"))


def args(root):
    return [a.get("value") for a in root.iter(f"{{{QEMU_NS}}}arg")]


def opt_values(c, flag):
    return [c[i + 1] for i, a in enumerate(c) if a == flag]


def test_basics_tcg_and_kvm(tmp_path):
    root = dom(tmp_path, memory_mib=3072, cpus=1)
    assert root.get("type") == "qemu"
    assert root.findtext("name") == "livelab-t-1"
    assert root.find("memory").get("unit") == "MiB" and root.findtext("memory") == "3072"
    assert root.findtext("vcpu") == "1"
    assert root.find("os/type").get("machine") == "q35"
    cpu = root.find("cpu")
    assert cpu.get("mode") == "custom" and cpu.find("model").text == "qemu64"
    assert cpu.find("topology").attrib == {"sockets": "1", "dies": "1", "cores": "1", "threads": "1"}
    feats = {(f.get("name"), f.get("policy")) for f in cpu.findall("feature")}
    assert {("svm", "disable"), ("vmx", "disable"), ("sse4.2", "require")} <= feats
    kvm = dom(tmp_path, accel=Accel("kvm", "x"))
    assert kvm.get("type") == "kvm" and kvm.find("cpu").get("mode") == "host-passthrough"


def test_domain_name_is_sanitized():
    assert domain_name("fcos.stable.pxe.bios", pid=42) == "livelab-fcos.stable.pxe.bios-42"
    assert domain_name("a b/c:d", pid=7) == "livelab-a-b-c-d-7"


def test_bios_and_uefi(tmp_path):
    bios = dom(tmp_path)
    assert bios.find("os/loader") is None and bios.find("os/bios").get("useserial") == "yes"
    uefi = dom(tmp_path, firmware="uefi")
    loader = uefi.find("os/loader")
    assert loader.text == OVMF_CODE and loader.get("readonly") == "yes" and loader.get("type") == "pflash"
    assert uefi.findtext("os/nvram") == str(tmp_path / "OVMF_VARS.fd")
    with pytest.raises(LivelabError):
        dom(tmp_path, firmware="coreboot")
    assert uefi.find("features/smm") is None and loader.get("secure") is None


def test_uefi_secure_loader_is_secure_with_smm(tmp_path):
    root = dom(tmp_path, firmware="uefi-secure")
    loader = root.find("os/loader")
    assert loader.text == OVMF_SECURE_CODE
    assert (loader.get("readonly"), loader.get("secure"), loader.get("type")) == ("yes", "yes", "pflash")
    nvram = root.find("os/nvram")
    assert nvram.text == str(tmp_path / "OVMF_VARS.fd") and nvram.get("template") == OVMF_SECURE_VARS
    assert root.find("features/smm").get("state") == "on"


def test_direct_kernel_boot(tmp_path):
    root = dom(tmp_path, boot="kernel", kernel="/k/vmlinuz", initrds=["/k/initrd.img"], append="console=ttyS0 x=1")
    assert root.findtext("os/kernel") == "/k/vmlinuz"
    assert root.findtext("os/initrd") == "/k/initrd.img"
    assert root.findtext("os/cmdline") == "console=ttyS0 x=1"
    several = dom(tmp_path, boot="kernel", kernel="/k/vmlinuz", initrds=["/k/a.img", "/k/b.img"])
    assert several.findtext("os/initrd") == str(tmp_path / COMBINED_INITRD)
    with pytest.raises(LivelabError):
        dom(tmp_path, boot="kernel")


def test_combine_initrds_pads_to_4_bytes(tmp_path):
    (tmp_path / "a").write_bytes(b"abcde")
    (tmp_path / "b").write_bytes(b"xyz")
    out = combine_initrds([str(tmp_path / "a"), str(tmp_path / "b")], tmp_path / "c.img")
    assert out.read_bytes() == b"abcde\0\0\0xyz\0"


def test_cdrom_on_sata_with_alias_and_boot_order(tmp_path):
    root = dom(tmp_path, cdrom="/r/live.iso", boot="cdrom")
    cd = root.find("devices/disk[@device='cdrom']")
    assert cd.find("source").get("file") == "/r/live.iso"
    assert cd.find("target").get("bus") == "sata"
    assert cd.find("readonly") is not None
    assert cd.find("alias").get("name") == CD_ALIAS and CD_ALIAS.startswith("ua-")
    assert cd.find("boot").get("order") == "1"


def test_disks_are_the_overlays(tmp_path):
    root = dom(tmp_path, disks=[Disk("var", size="8G", serial="var"), Disk("two", size="1G")], boot="network")
    disks = root.findall("devices/disk[@device='disk']")
    assert [d.find("source").get("file") for d in disks] == [str(tmp_path / "disk-var.qcow2"),
                                                             str(tmp_path / "disk-two.qcow2")]
    assert all(d.find("driver").get("type") == "qcow2" for d in disks)
    assert disks[0].findtext("serial") == "var"
    # a network boot: the NIC has bootindex=1, every disk an order after it (never a second 1)
    assert [d.find("boot").get("order") for d in disks] == ["2", "3"]
    assert "bootindex=1" in next(a for a in args(root) if a.startswith("virtio-net-pci"))
    first = dom(tmp_path, disks=[Disk("root", size="8G")], boot="disk")
    assert first.find("devices/disk/boot").get("order") == "1"


def test_sector_4096_disks_have_blockio(tmp_path):
    root = dom(tmp_path, disks=[Disk("var", size="2G", sector=4096), Disk("two", size="1G")])
    var, two = root.findall("devices/disk[@device='disk']")
    assert var.find("blockio").attrib == {"logical_block_size": "4096", "physical_block_size": "4096"}
    assert two.find("blockio") is None


def test_the_iso_as_a_disk_is_raw_read_only_and_booted_first(tmp_path):
    root = dom(tmp_path, boot="disk", boot_disk="iso",
               disks=[Disk("var", size="2G"), Disk("iso", image="/r/live.iso", sector=4096)])
    var, iso = root.findall("devices/disk[@device='disk']")
    assert iso.find("source").get("file") == "/r/live.iso" and iso.find("driver").get("type") == "raw"
    assert iso.find("readonly") is not None and var.find("readonly") is None
    assert iso.find("blockio").get("logical_block_size") == "4096"
    assert iso.find("target").attrib == {"dev": "vdb", "bus": "virtio"}
    assert (iso.find("boot").get("order"), var.find("boot").get("order")) == ("1", "2")
    assert iso.find("alias").get("name") == "ua-disk1dev"
    assert root.find("devices/disk[@device='cdrom']") is None


def test_network_is_passthrough_user_mode_only(tmp_path):
    s = spec(boot="network", tftp_dir="/t/tftp", bootfile="pxelinux.0", http_port=8123, ssh_port=2222)
    root = ET.fromstring(domain_xml(s, tmp_path, TCG))
    assert list(root.iter("interface")) == []
    a = args(root)
    netdev = opt_values(a, "-netdev")
    assert netdev == [netdev_arg(s)] == opt_values(build_command(s, tmp_path, TCG), "-netdev")
    opts = netdev[0].split(",")
    assert opts[0] == "user" and "restrict=on" in opts
    assert "tftp=/t/tftp" in opts and "bootfile=pxelinux.0" in opts
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in opts
    assert any((o.startswith("guestfwd=tcp:10.0.2.100:80-cmd:") and o.endswith("127.0.0.1 8123"))
               or o.endswith("TCP:127.0.0.1:8123") for o in opts)
    nic = opt_values(a, "-device")[0]
    assert nic.startswith(nic_arg(s) + ",") and "bootindex=1" in nic   # the QEMU backend's NIC, plus an address
    assert isolation_problems(a) == []
    assert xml_isolation_problems(domain_xml(s, tmp_path, TCG)) == []
    assert xml_passthrough_args(domain_xml(s, tmp_path, TCG)) == a


def test_isolation_check_catches_an_interface(tmp_path):
    xml = domain_xml(spec(ssh_port=22), tmp_path, TCG).replace(
        "<devices>", "<devices><interface type='network'><source network='default'/></interface>", 1)
    assert any("interface" in p for p in xml_isolation_problems(xml))


def test_serial_console_socket_and_log(tmp_path):
    ser = dom(tmp_path).find("devices/serial")
    assert ser.get("type") == "unix"
    assert ser.find("source").get("mode") == "bind"
    assert ser.find("source").get("path") == str(tmp_path / "console.sock")
    assert ser.find("log").get("file") == str(tmp_path / "console.log")
    assert ser.find("log").get("append") == "on"


def test_virtio_ports_and_fw_cfg(tmp_path):
    root = dom(tmp_path, virtio_ports=["org.livelab.boot-done", "coreos.liveiso-success"],
               fw_cfg={"opt/com.coreos/config": "/r/config.ign", "etc/other": "/r/x"})
    chans = root.findall("devices/channel")
    assert [(c.find("target").get("name"), c.find("source").get("path")) for c in chans] == [
        ("org.livelab.boot-done", str(tmp_path / "port-org.livelab.boot-done")),
        ("coreos.liveiso-success", str(tmp_path / "port-coreos.liveiso-success"))]
    entries = root.findall("sysinfo[@type='fwcfg']/entry")
    assert [(e.get("name"), e.get("file")) for e in entries] == [("opt/com.coreos/config", "/r/config.ign")]
    assert "name=etc/other,file=/r/x" in opt_values(args(root), "-fw_cfg")
    assert dom(tmp_path, virtio_ports=[]).find("devices/channel") is None


def test_remote_uris_are_told_apart():
    assert is_local_uri("qemu:///system") and is_local_uri("qemu:///session")
    assert is_local_uri("qemu+ssh://localhost/system")
    assert not is_local_uri("qemu+ssh://build-2.example/system")
