"""The same boots on real FCOS / Flatcar artifacts (opt-in: `pytest --real -m real`, needs the
internet).  Skips with the reason when the real servers cannot be reached; never counted as done."""

import pytest

from harness.artifacts import resolve
from harness.errors import LivelabError
from harness.lab import BootRequest

pytestmark = [pytest.mark.real, pytest.mark.e2e]


@pytest.mark.parametrize("os_id,stream,method", [("fcos", "stable", "pxe-rootfs-url"), ("fcos", "stable", "iso"),
                                                 ("flatcar", "stable", "ipxe")])
def test_real_live_boot(live_vm, livelab, os_id, stream, method):
    try:
        resolve(os_id, stream, timeout=15)
    except LivelabError as exc:
        pytest.skip(f"real {os_id} {stream} artifacts unreachable: {exc.one_line()}")
    lb = live_vm(BootRequest(os_id, stream, method, "bios", ignition={"ignition": {"version": "3.3.0"}},
                             name=f"{os_id}.{stream}.{method}.bios.real"),
                 mirror=None, keyring=None, ignition_spec_table=None)
    lb.machine.wait_for_ssh()
    if os_id == "fcos":
        lb.machine.succeed("test -e /run/ostree-live")
