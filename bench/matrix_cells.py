"""The cells of the matrix benchmark (bench/run.py --only e): 1-vCPU boots run with ``pytest -n 2``.

Not collected by ``make test`` (bench/ is outside testpaths).  Each cell writes ``cell.json``
(wall seconds of the test, QEMU start -> SSH ready from the harness's timings) into its run dir.
"""
import json
import os
import time

import pytest

from harness.lab import BootRequest

CELLS = [c for c in os.environ.get("BENCH_MATRIX_CELLS",
                                   "fcos.stable,fcos.testing,fcos.next,fcos.stable-2").split(",") if c]


@pytest.mark.parametrize("cell", CELLS)
def test_cell(live_vm, cell):
    os_id, stream = cell.split(".", 1)
    stream = stream.split("-")[0]
    t0 = time.time()
    method = "pxe-rootfs-url" if os_id == "fcos" else "pxe"
    lb = live_vm(BootRequest(os_id, stream, method, "bios", cpus=1, ignition={"ignition": {"version": "3.3.0"}},
                             name=f"bench.matrix.{cell}"))
    lb.machine.wait_for_ssh()
    t1 = time.time()
    phases = lb.machine.tap.phases
    (lb.run_dir / "cell.json").write_text(json.dumps({
        "cell": cell, "start": t0, "ssh": t1, "boot_s": phases.get("ssh_ready"),
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "main")}))
