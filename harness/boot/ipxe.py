"""iPXE boot scripts, as the FCOS and Flatcar docs write them.

FCOS (live-booting docs)::

    #!ipxe
    set STREAM stable
    set VERSION <version>
    set CONFIGURL <url of config.ign>
    set BASEURL <base>/prod/streams/${STREAM}/builds/${VERSION}/x86_64
    kernel ${BASEURL}/<kernel> initrd=main coreos.live.rootfs_url=${BASEURL}/<rootfs> ignition.firstboot ignition.platform.id=metal ignition.config.url=${CONFIGURL}
    initrd --name main ${BASEURL}/<initramfs>
    boot

Flatcar (booting-with-ipxe docs)::

    #!ipxe
    set base-url <base>/amd64-usr/<version>
    kernel ${base-url}/flatcar_production_pxe.vmlinuz initrd=flatcar_production_pxe_image.cpio.gz flatcar.first_boot=1 ignition.config.url=<url>
    initrd ${base-url}/flatcar_production_pxe_image.cpio.gz
    boot
"""
from __future__ import annotations

from collections.abc import Sequence


def fcos_script(stream: str, version: str, base_url: str, kernel: str, initramfs: str,
                kargs: Sequence[str], rootfs: str | None = None, config_url: str | None = None) -> str:
    """``base_url`` ends at ``.../prod/streams``; file names come from the stream metadata."""
    lines = ["#!ipxe", "", f"set STREAM {stream}", f"set VERSION {version}"]
    args = ["initrd=main"]
    if rootfs:
        args.append(f"coreos.live.rootfs_url=${{BASEURL}}/{rootfs}")
    if config_url:
        lines.append(f"set CONFIGURL {config_url}")
    lines.append(f"set BASEURL {base_url.rstrip('/')}/${{STREAM}}/builds/${{VERSION}}/x86_64")
    lines.append("")
    k = list(kargs)
    if config_url:
        k = [a if not a.startswith("ignition.config.url=") else "ignition.config.url=${CONFIGURL}" for a in k]
    lines.append(f"kernel ${{BASEURL}}/{kernel} {' '.join(args + k)}")
    lines.append(f"initrd --name main ${{BASEURL}}/{initramfs}")
    lines += ["", "boot", ""]
    return "\n".join(lines)


def flatcar_script(base_url: str, kargs: Sequence[str],
                   kernel: str = "flatcar_production_pxe.vmlinuz",
                   image: str = "flatcar_production_pxe_image.cpio.gz") -> str:
    """``base_url`` is ``.../amd64-usr/<version>`` (a concrete version, never ``current``)."""
    return "\n".join(["#!ipxe", "", f"set base-url {base_url.rstrip('/')}",
                      f"kernel ${{base-url}}/{kernel} initrd={image} {' '.join(kargs)}",
                      f"initrd ${{base-url}}/{image}", "boot", ""])


def pxe_script(kernel: str, initrds: Sequence[str], kargs: Sequence[str], base_url: str) -> str:
    """The PXELINUX config's boot as an iPXE script (UEFI ``pxe``: the iPXE EFI ROM takes
    PXELINUX's place; the script itself comes over TFTP, the files from ``base_url``)."""
    base = base_url.rstrip("/") + "/"
    names = [f"initrd{i}" for i in range(len(initrds))]
    lines = ["#!ipxe", "",
             f"kernel {base}{kernel} {' '.join([f'initrd={n}' for n in names] + list(kargs))}"]
    lines += [f"initrd --name {n} {base}{path}" for n, path in zip(names, initrds)]
    lines += ["boot", ""]
    return "\n".join(lines)
