"""Two 1-vCPU boots, run by test_vm_core.test_two_vms_at_once_under_xdist with pytest -n 2."""
import json
import time

import pytest

from harness.lab import BootRequest


@pytest.mark.parametrize("which", ["a", "b"])
def test_pair(live_vm, which):
    t0 = time.time()
    lb = live_vm(BootRequest("fcos", "stable", "pxe-rootfs-url", "bios", cpus=1,
                             ignition={"ignition": {"version": "3.3.0"}},
                             name=f"fcos.stable.pxe-rootfs-url.bios.parallel-{which}"))
    lb.machine.wait_for_ssh()
    (lb.run_dir / "spans.json").write_text(json.dumps({"start": t0, "ssh": time.time()}))
