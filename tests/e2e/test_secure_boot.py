"""UEFI Secure Boot (firmware ``uefi-secure``): the live ISO boots through its signed chain (shim,
GRUB, kernel) with Secure Boot enforced and says so; a kernel whose signature is stripped from the
real ISO is refused by GRUB under shim, and the boot fails at once with that reason; a network
boot under Secure Boot is refused before any VM starts (tests/unit/test_secureboot_media.py).  Ids
carry the configuration."""
import re
import time

import pytest

from harness.boot.iso import LiveISO
from harness.errors import BootFailure
from harness.lab import BootRequest
from harness.triage.rules import SECURE_BOOT
from harness.vm.qemu import LIVEISO_SUCCESS_PORT

pytestmark = pytest.mark.e2e
EMPTY = {"ignition": {"version": "3.3.0"}}
KERNEL = "images/pxeboot/vmlinuz"          # the live ISO's kernel, where FCOS's ISO has it
# the UEFI variable SecureBoot (EFI global variable GUID): 4 bytes of attributes, then 1 = enforced
SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


@pytest.mark.livelab(os="fcos", stream="stable", method="iso", firmware="uefi-secure")
@pytest.mark.ci
def test_live_login_under_secure_boot(live_vm):
    """fcos.stable.iso.uefi-secure.live-login (kola's live-login.uefi-secure): no user config; serial
    autologin as core and coreos-liveiso-success, with Secure Boot enforced: the firmware's SecureBoot
    variable is 1, the kernel says so and is locked down."""
    lb = live_vm(BootRequest("fcos", "stable", "iso", "uefi-secure", user_config=False,
                             name="fcos.stable.iso.uefi-secure.live-login"))
    m = lb.machine
    assert m.spec.firmware == "uefi-secure" and m.spec.virtio_ports == [LIVEISO_SUCCESS_PORT]
    status, out = m.console_run(f"id -un; od -An -tu1 -j4 -N1 {SECURE_BOOT_VAR}; cat /sys/kernel/security/lockdown")
    lines = [ln.strip() for ln in out.strip().splitlines()]
    assert status == 0 and lines[:2] == ["core", "1"], out
    assert "[integrity]" in lines[2], out
    console = (lb.run_dir / "console.log").read_text(errors="replace")
    assert re.search(r"secureboot: Secure boot enabled", console), console[-3000:]
    m.wait_for_port_token("coreos-liveiso-success", port=LIVEISO_SUCCESS_PORT)


@pytest.mark.livelab(os="fcos", stream="stable", method="iso", firmware="uefi-secure")
@pytest.mark.ci
def test_unsigned_kernel_is_refused_fast(live_vm):
    """fcos.stable.iso.uefi-secure.unsigned-kernel: the customized live ISO with its kernel's
    signature stripped (the harness's own media code, on the real signed ISO): shim and GRUB start,
    GRUB's kernel check through shim refuses it, and the wait fails within seconds of that line with
    the reason "secure boot refused" (not a time-out)."""
    lb = live_vm(BootRequest("fcos", "stable", "iso", "uefi-secure", ignition=EMPTY,
                             name="fcos.stable.iso.uefi-secure.unsigned-kernel"), start=False)
    lb.prepare()
    iso = lb.require_machine().spec.cdrom
    assert LiveISO(iso).signature(KERNEL) is not None, "the stand-in's kernel is not signed: nothing to strip"
    LiveISO.strip_signature(iso, KERNEL)
    assert LiveISO(iso).signature(KERNEL) is None
    t0 = time.monotonic()
    lb.start()
    m = lb.machine
    with pytest.raises(BootFailure) as exc:
        m.wait_for_ssh()
    failed_at = time.monotonic()
    first = str(exc.value).splitlines()[0]
    assert SECURE_BOOT in first and "timed out" not in first, str(exc.value)[:2000]
    assert m.tap.failure is not None and m.tap.failure[0] == SECURE_BOOT
    assert "bad shim signature" in m.tap.failure[1], m.tap.failure
    seen_at = m.tap.failure[2]
    print(f"refused: the wait failed {failed_at - seen_at:.2f} s after the line, {failed_at - t0:.1f} s after start")
    assert failed_at - seen_at < 5, f"failed {failed_at - seen_at:.1f} s after the refusal line"
    assert failed_at - t0 < m.timeouts.boot / 2
    assert "Linux version" not in (lb.run_dir / "console.log").read_text(errors="replace")
