"""The VM core on the stand-in: console and SSH together, reboots, power-cycles, isolation, fast
failure, cleanup after SIGKILL, parallel VMs.  Ids carry the configuration like every test."""
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from procs import qemus_of

from harness.errors import BootFailure
from harness.lab import BootRequest
from harness.vm.qemu import isolation_problems

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

# password "livelab" for the console login (openssl passwd -6 -salt livelab livelab)
CONSOLE_BUTANE = """
variant: fcos
version: 1.4.0
passwd:
  users:
    - name: core
      password_hash: "{hash}"
"""


def _password_hash(password="livelab"):
    return subprocess.run(["openssl", "passwd", "-6", "-salt", "livelabsalt", password], check=True,
                          capture_output=True, text=True).stdout.strip()


def _host_key(m):
    return m.ssh.client.get_transport().get_remote_server_key().get_base64()


@pytest.mark.livelab(os="fcos", stream="stable", method="pxe-rootfs-url", firmware="bios")
@pytest.mark.ci
def test_console_ssh_reboot_reset_isolation(live_vm, request):
    """fcos.stable.pxe-rootfs-url.bios: console login + SSH on one VM; guest reboot and hard
    reset each give new host keys and re-run Ignition; isolation read back from QEMU itself."""
    req = BootRequest("fcos", "stable", "pxe-rootfs-url", "bios",
                      butane=CONSOLE_BUTANE.format(hash=_password_hash()), name="fcos.stable.pxe-rootfs-url.bios")
    lb = live_vm(req)
    m = lb.machine
    # isolation, from QEMU's own configuration: the command line and the live user-net state
    assert isolation_problems(m.command()) == []
    usernet = m.qmp.cmd("human-monitor-command", **{"command-line": "info usernet"})
    fwd = [line for line in usernet.splitlines() if "HOST_FORWARD" in line]
    assert fwd and all("127.0.0.1" in line for line in fwd), usernet
    m.console_login("core", "livelab")
    status, out = m.console_run("cat /proc/cmdline")
    assert status == 0 and "ignition.firstboot" in out
    m.wait_for_ssh()
    assert m.succeed("id -un").strip() == "core"
    key1, id1 = _host_key(m), m.boot_id()
    m.reboot()
    m.wait_for_ssh()            # accepts only a new boot_id
    key2, id2 = _host_key(m), m.boot_id()
    assert id2 != id1, "reboot() must be proven by a new boot_id"
    assert key2 != key1, "a live boot must generate new sshd host keys"
    assert m.succeed("systemctl is-enabled livelab-boot-done.service").strip() == "enabled"
    m.reset()
    m.wait_for_ssh()
    assert m.boot_id() not in (id1, id2)
    assert _host_key(m) not in (key1, key2)
    timings = json.loads((lb.run_dir / "timings.json").read_text())
    assert timings["accel"] in ("tcg", "kvm") and len(timings["boots"]) == 3
    for boot in timings["boots"]:
        assert {"qemu_start", "kernel_start", "ssh_ready"} <= set(boot["phases"]), boot
    assert [b["boot_id"] for b in timings["boots"]] == [id1, id2, m.boot_id()]


@pytest.mark.livelab(os="flatcar", stream="stable", method="pxe", firmware="bios")
@pytest.mark.ci
def test_power_cycle_changes_kernel_arguments(live_vm):
    """flatcar.stable.pxe.bios: flatcar.first_boot=1 on boot 1 only, with state kept on a disk."""
    req = BootRequest("flatcar", "stable", "pxe", "bios", name="flatcar.stable.pxe.bios",
                      ignition={"ignition": {"version": "3.3.0"}}, kargs=["livelab.marker=one"])
    lb = live_vm(req)
    m = lb.machine
    m.wait_for_ssh()
    assert "flatcar.first_boot=1" in m.succeed("cat /proc/cmdline")
    lb.power_cycle(add=["livelab.marker=two"], remove=["flatcar.first_boot", "livelab.marker"])
    # without flatcar.first_boot Ignition does not run: the session key is not installed, so
    # the boot is judged on the console
    m.wait_for_console_text(re.compile(r"login:"))
    cfg = (lb.run_dir / "pxelinux.cfg").read_text()
    assert "livelab.marker=two" in cfg and "flatcar.first_boot" not in cfg and "marker=one" not in cfg
    vm = json.loads((lb.run_dir / "vm.json").read_text())
    assert "flatcar.first_boot=1" in vm["kernel_args_per_boot"][0]
    assert "flatcar.first_boot=1" not in vm["kernel_args_per_boot"][1]


@pytest.mark.livelab(os="fcos", stream="stable", method="pxe-rootfs-url", firmware="bios")
@pytest.mark.ci
@pytest.mark.serial          # times the failure report (5 s)
def test_emergency_mode_fails_within_5s(live_vm):
    """fcos.stable.pxe-rootfs-url.bios.emergency: a karg forcing emergency mode fails the wait
    within 5 s of the console line, with the console evidence, not by a time-out."""
    req = BootRequest("fcos", "stable", "pxe-rootfs-url", "bios", ignition={"ignition": {"version": "3.3.0"}},
                      kargs=["systemd.unit=emergency.target"], name="fcos.stable.pxe-rootfs-url.bios.emergency")
    lb = live_vm(req)
    log = lb.run_dir / "console.log"
    seen = {}

    def tail():
        while "t" not in seen:
            if log.exists() and "emergency mode" in log.read_text(errors="replace"):
                seen["t"] = time.monotonic()
            time.sleep(0.05)

    watcher = threading.Thread(target=tail, daemon=True)
    watcher.start()
    with pytest.raises(BootFailure) as exc:
        lb.machine.wait_for_ssh()
    failed_at = time.monotonic()
    seen.setdefault("t", failed_at)
    watcher.join(1)
    assert "emergency mode" in str(exc.value)
    assert "--- last 50 console lines ---" in str(exc.value)
    assert failed_at - seen["t"] <= 5.0, f"failure reported {failed_at - seen['t']:.1f} s after the line"


@pytest.mark.livelab(os="fcos", stream="stable", method="pxe-rootfs-url", firmware="bios")
@pytest.mark.ci
@pytest.mark.serial          # kills a child pytest mid-boot
def test_sigkill_of_pytest_mid_boot_leaves_no_qemu(tmp_path):
    """A pytest killed with SIGKILL while its VM boots takes QEMU with it (PR_SET_PDEATHSIG)."""
    run_dir = tmp_path / "runs"
    child = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "scenarios/base.yaml::fcos.stable.pxe-rootfs-url.bios.base",
                              "--run-dir", str(run_dir)], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not qemus_of(run_dir):
            assert child.poll() is None, "child pytest ended before QEMU started"
            assert time.monotonic() < deadline, "QEMU never started"
            time.sleep(0.2)
        time.sleep(3)   # mid-boot
        child.send_signal(signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 10
        while qemus_of(run_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert qemus_of(run_dir) == []
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.livelab(os="fcos", stream="stable", method="pxe-rootfs-url", firmware="bios")
@pytest.mark.ci
@pytest.mark.serial          # needs the whole host: its own two VMs must run at the same time
def test_two_vms_at_once_under_xdist(tmp_path):
    """pytest -n 2 boots two 1-vCPU VMs at the same time (admission lets both in)."""
    run_dir = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                           str(ROOT / "tests/e2e/parallel_pair.py"), "--run-dir", str(run_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    spans = []
    for t in run_dir.rglob("spans.json"):
        spans.append(json.loads(t.read_text()))
    assert len(spans) == 2
    (_a0, a1), (b0, _b1) = sorted((s["start"], s["ssh"]) for s in spans)
    assert b0 < a1, "the two VMs did not run at the same time"
