"""Boot configs are written as the FCOS and Flatcar docs write them."""
from harness.boot import ipxe, pxe


def test_pxelinux_cfg_as_in_the_fcos_docs():
    cfg = pxe.pxelinux_cfg("fedora-coreos-41-live-kernel-x86_64",
                           ["fedora-coreos-41-live-initramfs.x86_64.img", "fedora-coreos-41-live-rootfs.x86_64.img"],
                           ["ignition.firstboot", "ignition.platform.id=metal",
                            "ignition.config.url=http://10.0.2.100/config.ign"])
    assert cfg.splitlines() == [
        "DEFAULT pxeboot", "TIMEOUT 20", "PROMPT 0", "LABEL pxeboot",
        "    KERNEL fedora-coreos-41-live-kernel-x86_64",
        "    APPEND initrd=fedora-coreos-41-live-initramfs.x86_64.img,fedora-coreos-41-live-rootfs.x86_64.img "
        "ignition.firstboot ignition.platform.id=metal ignition.config.url=http://10.0.2.100/config.ign",
        "IPAPPEND 2"]


def test_pxelinux_cfg_with_http_base():
    cfg = pxe.pxelinux_cfg("a/k", ["a/i"], ["x=1"], base_url="http://10.0.2.100/")
    assert "KERNEL http://10.0.2.100/a/k" in cfg and "APPEND initrd=http://10.0.2.100/a/i x=1" in cfg


def test_fcos_ipxe_script_as_in_the_docs():
    s = ipxe.fcos_script("stable", "42.1", "http://10.0.2.100/fcos/prod/streams", "k.x86_64", "i.img",
                         ["ignition.firstboot", "ignition.platform.id=metal",
                          "ignition.config.url=http://10.0.2.100/config.ign", "console=ttyS0,115200"],
                         rootfs="r.img", config_url="http://10.0.2.100/config.ign")
    lines = [line for line in s.splitlines() if line]
    assert lines[0] == "#!ipxe"
    assert "set STREAM stable" in lines and "set VERSION 42.1" in lines
    assert "set BASEURL http://10.0.2.100/fcos/prod/streams/${STREAM}/builds/${VERSION}/x86_64" in lines
    assert ("kernel ${BASEURL}/k.x86_64 initrd=main coreos.live.rootfs_url=${BASEURL}/r.img ignition.firstboot "
            "ignition.platform.id=metal ignition.config.url=${CONFIGURL} console=ttyS0,115200") in lines
    assert "initrd --name main ${BASEURL}/i.img" in lines and lines[-1] == "boot"


def test_flatcar_ipxe_script_as_in_the_docs():
    s = ipxe.flatcar_script("http://10.0.2.100/flatcar/beta/amd64-usr/4152.1.0",
                            ["flatcar.first_boot=1", "ignition.config.url=http://10.0.2.100/config.ign"])
    assert s.splitlines() == [
        "#!ipxe", "", "set base-url http://10.0.2.100/flatcar/beta/amd64-usr/4152.1.0",
        "kernel ${base-url}/flatcar_production_pxe.vmlinuz initrd=flatcar_production_pxe_image.cpio.gz "
        "flatcar.first_boot=1 ignition.config.url=http://10.0.2.100/config.ign",
        "initrd ${base-url}/flatcar_production_pxe_image.cpio.gz", "boot"]


def test_uefi_pxe_script_names_every_initrd():
    s = ipxe.pxe_script("k", ["i", "r"], ["a=1"], base_url="http://10.0.2.100")
    assert "kernel http://10.0.2.100/k initrd=initrd0 initrd=initrd1 a=1" in s
    assert "initrd --name initrd1 http://10.0.2.100/r" in s
