"""Command-line building of harness.vm.qemu, one option at a time."""
import shlex

import pytest

from harness.errors import LivelabError
from harness.vm.accel import Accel, Timeouts
from harness.vm.qemu import Disk, VMSpec, build_command, isolation_problems
from harness.vm.spec import OVMF_SECURE_CODE, OVMF_SECURE_VARS

TCG = Accel("tcg", "test")


def cmd(tmp_path, **kw):
    spec = VMSpec(name="t", memory_mib=kw.pop("memory_mib", 2048), **kw)
    return build_command(spec, tmp_path, TCG)


def opt_values(c, flag):
    return [c[i + 1] for i, a in enumerate(c) if a == flag]


def test_memory_and_cpus(tmp_path):
    c = cmd(tmp_path, memory_mib=3072, cpus=1)
    assert opt_values(c, "-m") == ["3072"]
    assert opt_values(c, "-smp") == ["1,sockets=1,dies=1,cores=1,threads=1"]


def test_tcg_gives_each_vcpu_its_own_socket(tmp_path):
    # one package per vCPU: Linux >= 6.9 then marks the TSC unstable at start-up and never
    # live-patches sched_clock's static key (accel.tcg_topology)
    assert opt_values(cmd(tmp_path, cpus=2), "-smp") == ["2,sockets=2,dies=1,cores=1,threads=1"]
    c = build_command(VMSpec(name="t", memory_mib=1024, cpus=2), tmp_path, Accel("kvm", "x"))
    assert opt_values(c, "-smp") == ["2"]


def test_tcg_has_no_nested_virt_flags(tmp_path):
    c = cmd(tmp_path)
    cpu = opt_values(c, "-cpu")[0]
    assert "-svm" in cpu and "-vmx" in cpu and not cpu.startswith("max")
    assert opt_values(c, "-accel")[0].startswith("tcg")
    c = build_command(VMSpec(name="t", memory_mib=1024), tmp_path, Accel("kvm", "x"))
    assert opt_values(c, "-accel") == ["kvm"] and opt_values(c, "-cpu") == ["host"]


def test_starts_paused_with_qmp_and_logged_serial(tmp_path):
    c = cmd(tmp_path)
    assert "-S" in c
    assert opt_values(c, "-qmp") == [f"unix:{tmp_path}/qmp.sock,server=on,wait=off"]
    chardevs = opt_values(c, "-chardev")
    assert any(f"path={tmp_path}/console.sock" in d and f"logfile={tmp_path}/console.log" in d for d in chardevs)
    assert opt_values(c, "-serial") == ["chardev:serial0"]


def test_bios_has_no_pflash_uefi_uses_private_vars(tmp_path):
    assert not [d for d in opt_values(cmd(tmp_path), "-drive") if "pflash" in d]
    drives = opt_values(cmd(tmp_path, firmware="uefi"), "-drive")
    pflash = [d for d in drives if "if=pflash" in d]
    assert len(pflash) == 2
    assert "readonly=on" in pflash[0] and "OVMF_CODE" in pflash[0]
    assert f"file={tmp_path}/OVMF_VARS.fd" in pflash[1] and "readonly" not in pflash[1]


def test_uefi_secure_has_smm_a_secure_flash_and_the_enrolled_vars(tmp_path):
    """uefi-secure: q35 with SMM, the pflash writable only from SMM, the Secure Boot build of OVMF and
    the VM's own copy of the variable store with Microsoft's keys (made by the machine at start)."""
    c = cmd(tmp_path, firmware="uefi-secure")
    assert opt_values(c, "-machine") == ["q35,smm=on"]
    assert opt_values(c, "-global") == ["driver=cfi.pflash01,property=secure,value=on"]
    pflash = [d for d in opt_values(c, "-drive") if "if=pflash" in d]
    assert pflash == [f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_SECURE_CODE}",
                      f"if=pflash,format=raw,unit=1,file={tmp_path}/OVMF_VARS.fd"]
    plain = cmd(tmp_path, firmware="uefi")
    assert opt_values(plain, "-machine") == ["q35"] and "-global" not in plain
    assert OVMF_SECURE_CODE.endswith(".secboot.fd") and OVMF_SECURE_VARS.endswith(".ms.fd")


def test_unknown_firmware_refused(tmp_path):
    with pytest.raises(LivelabError):
        cmd(tmp_path, firmware="coreboot")


def test_network_boot_nic_gets_ipxe_rom_and_tftp(tmp_path):
    c = cmd(tmp_path, boot="network", tftp_dir="/srv/tftp", bootfile="pxelinux.0", http_port=8080, ssh_port=2222)
    net = opt_values(c, "-netdev")[0]
    assert net.startswith("user,") and "restrict=on" in net
    # both families on and named (QEMU takes a lone "ipv6=on" as IPv6 only); with ipv6=off the
    # firmware's iPXE waits about 13 s for router advertisements before it loads anything
    opts = net.split(",")
    assert "ipv4=on" in opts and "ipv6=on" in opts and "ipv6=off" not in opts
    assert "tftp=/srv/tftp" in net and "bootfile=pxelinux.0" in net
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in net
    assert "guestfwd=tcp:10.0.2.100:80-cmd:" in net and net.endswith("127.0.0.1:8080")
    nic = next(d for d in opt_values(c, "-device") if d.startswith("virtio-net-pci"))
    assert "romfile" not in nic and "bootindex=1" in nic   # QEMU's own iPXE ROM for the NIC


def test_extra_forwards_are_loopback_hostfwds(tmp_path):
    c = cmd(tmp_path, ssh_port=2222, forwards=[[80, 4080], [8080, 4081]])
    net = opt_values(c, "-netdev")[0]
    assert "hostfwd=tcp:127.0.0.1:4080-:80" in net and "hostfwd=tcp:127.0.0.1:4081-:8080" in net
    assert isolation_problems(c) == []


def test_disk_boot_nic_has_no_rom(tmp_path):
    nic = next(d for d in opt_values(cmd(tmp_path), "-device") if d.startswith("virtio-net-pci"))
    assert nic.endswith("romfile=")


def test_cdrom_and_disks(tmp_path):
    c = cmd(tmp_path, boot="cdrom", cdrom="/x/live.iso",
            disks=[Disk("var", size="4G", serial="var"), Disk("root", backing="/base.img")])
    drives = opt_values(c, "-drive")
    assert any("media=cdrom" in d and "file=/x/live.iso" in d and "readonly=on" in d for d in drives)
    devs = opt_values(c, "-device")
    assert any(d.startswith("ide-cd,drive=cd0,id=cd0dev") and "bootindex=1" in d for d in devs)
    assert any("serial=var" in d for d in devs)
    assert any(f"file={tmp_path}/disk-var.qcow2" in d and "format=qcow2" in d for d in drives)
    assert any(f"file={tmp_path}/disk-root.qcow2" in d for d in drives)


def test_sector_4096_disks_have_4096_byte_blocks(tmp_path):
    """A Disk's sector is its logical and physical block size (QEMU's default, 512, is left unsaid)."""
    c = cmd(tmp_path, disks=[Disk("var", size="2G", serial="var", sector=4096), Disk("two", size="1G")])
    var, two = (d for d in opt_values(c, "-device") if d.startswith("virtio-blk-pci"))
    assert "logical_block_size=4096,physical_block_size=4096" in var and "serial=var" in var
    assert "block_size" not in two


def test_the_iso_as_a_disk_is_raw_read_only_booted_and_unpluggable(tmp_path):
    """iso-as-disk: the image as it is (no overlay), read-only, booted first whatever its place,
    behind a PCIe root port of its own (a root-bus device of q35 cannot be unplugged), no CD drive."""
    c = cmd(tmp_path, boot="disk", boot_disk="iso",
            disks=[Disk("var", size="2G"), Disk("iso", image="/r/live.iso", sector=4096)])
    drives, devs = opt_values(c, "-drive"), opt_values(c, "-device")
    assert "if=none,id=disk1,format=raw,readonly=on,file=/r/live.iso" in drives
    assert not (tmp_path / "disk-iso.qcow2").exists() and not any("disk-iso" in d for d in drives)
    assert "pcie-root-port,id=rp-disk1,bus=pcie.0,chassis=2" in devs
    iso = next(d for d in devs if "id=disk1dev" in d)
    assert iso == ("virtio-blk-pci,drive=disk1,id=disk1dev,bus=rp-disk1,"
                   "logical_block_size=4096,physical_block_size=4096,bootindex=1")
    var = next(d for d in devs if "id=disk0dev" in d)
    assert "bootindex" not in var and "bus=" not in var
    assert not any(d.startswith("ide-cd") for d in devs) and not any("media=cdrom" in d for d in drives)
    with pytest.raises(LivelabError, match="boot disk 'usb' is not one of its disks"):
        cmd(tmp_path, boot="disk", boot_disk="usb", disks=[Disk("var", size="2G")])


def test_disks_round_trip_vm_json_and_an_older_one_loads(tmp_path):
    spec = VMSpec(name="t", memory_mib=1024, boot="disk", boot_disk="iso",
                  disks=[Disk("iso", image="/r/live.iso", sector=4096)])
    assert VMSpec.from_dict(spec.to_dict()) == spec
    old = VMSpec(name="t", memory_mib=1024, disks=[Disk("var", size="2G")]).to_dict()
    old.pop("boot_disk")
    for d in old["disks"]:     # a vm.json of before: an always-"virtio" interface, no sector, no image
        d.pop("sector"), d.pop("image")
        d["interface"] = "virtio"
    assert VMSpec.from_dict(old).disks == [Disk("var", size="2G")]


def test_direct_kernel_boot(tmp_path):
    c = cmd(tmp_path, boot="kernel", kernel="/k", initrds=["/a", "/b"], append="console=ttyS0 x=1")
    assert opt_values(c, "-kernel") == ["/k"]
    assert opt_values(c, "-initrd") == ["/a,/b"]
    assert opt_values(c, "-append") == ["console=ttyS0 x=1"]
    with pytest.raises(LivelabError):
        cmd(tmp_path, boot="kernel")


def test_virtio_ports_go_to_files(tmp_path):
    c = cmd(tmp_path, virtio_ports=["org.livelab.boot-done", "coreos.liveiso-success"])
    devs = opt_values(c, "-device")
    assert "virtio-serial-pci,id=vser0" in devs
    assert any("name=coreos.liveiso-success" in d for d in devs)
    assert any(f"path={tmp_path}/port-coreos.liveiso-success" in d for d in opt_values(c, "-chardev"))
    assert "virtio-serial-pci,id=vser0" not in opt_values(cmd(tmp_path, virtio_ports=[]), "-device")


def test_fw_cfg_and_extra_args(tmp_path):
    c = cmd(tmp_path, fw_cfg={"opt/com.coreos/config": "/c.ign"}, extra_args=["-no-reboot"])
    assert opt_values(c, "-fw_cfg") == ["name=opt/com.coreos/config,file=/c.ign"]
    assert c[-1] == "-no-reboot"


def test_isolation_asserted_from_command_line(tmp_path):
    c = cmd(tmp_path, boot="network", http_port=8080, ssh_port=2222)
    assert isolation_problems(c) == []
    bad = [a.replace("restrict=on", "restrict=off") for a in c]
    assert "user netdev without restrict=on" in isolation_problems(bad)
    bad = [a.replace("hostfwd=tcp:127.0.0.1:", "hostfwd=tcp::") for a in c]
    assert any("not bound to 127.0.0.1" in p for p in isolation_problems(bad))
    assert any("not user mode" in p for p in isolation_problems([*c, "-netdev", "tap,id=x"]))


def test_command_line_is_shell_quotable(tmp_path):
    c = cmd(tmp_path, boot="kernel", kernel="/k", append='sshkey="ssh-ed25519 AAAA x"')
    assert shlex.split(shlex.join(c)) == c


def test_timeouts_scale_with_accelerator_and_extension():
    tcg = Timeouts.for_accel(Accel("tcg", ""))
    kvm = Timeouts.for_accel(Accel("kvm", ""))
    assert kvm.boot < tcg.boot
    assert Timeouts.for_accel(Accel("tcg", ""), 50).boot == pytest.approx(tcg.boot * 1.5)


def test_long_run_dirs_get_short_socket_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVELAB_STATE_DIR", str(tmp_path / "st"))
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    c = cmd(deep)
    socks = [a for a in c if "console.sock" in a or "qmp.sock" in a]
    for a in socks:
        path = a.split("path=")[-1].split(",")[0] if "path=" in a else a.split("unix:")[-1].split(",")[0]
        assert len(path) < 108 and str(deep) not in path
    assert any(f"logfile={deep}/console.log" in a for a in c)   # the log stays in the run dir


def test_probe_port_tells_answers_refused_and_dropped():
    """What QEMU's user network turns a guest's reply into on the 127.0.0.1 side: data, a close
    (the guest reset the connection), or silence (the guest dropped the packets)."""
    import socket
    import threading
    from types import SimpleNamespace

    from harness.vm.qemu import Machine

    def server(behaviour):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen()

        def serve():
            conn, _ = srv.accept()
            conn.recv(100)
            if behaviour == "answers":
                conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nhello")
                conn.close()
            elif behaviour == "refused":
                conn.close()
            else:
                threading.Event().wait(2)
                conn.close()
            srv.close()
        threading.Thread(target=serve, daemon=True).start()
        return srv.getsockname()[1]

    for behaviour in ("answers", "refused", "dropped"):
        fake = SimpleNamespace(spec=VMSpec(name="t", memory_mib=64, forwards=[[80, server(behaviour)]]))
        fake.host_port = lambda p, fake=fake: Machine.host_port(fake, p)
        result, data = Machine.probe_port(fake, 80, wait=1.0)
        assert result == behaviour
        assert (data.endswith(b"hello")) == (behaviour == "answers")
    with pytest.raises(LivelabError, match="guest port 443 is not forwarded"):
        Machine.host_port(fake, 443)
