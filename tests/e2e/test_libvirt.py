"""The libvirt backend (``--backend libvirt``) on the stand-in: fcos stable over PXE and from the
ISO (BIOS), SSH, isolation read back from libvirt's live domain XML, QMP through libvirt, and no
``livelab-*`` domain left behind.  Needs libvirtd on qemu:///system (scripts/setup-libvirt.sh)."""
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from harness.lab import BootRequest

# one xdist worker runs them in order (--dist loadgroup): the last checks the others left no domain
pytestmark = [pytest.mark.e2e, pytest.mark.ci, pytest.mark.xdist_group("libvirt")]
URI = "qemu:///system"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
BUTANE = """
variant: fcos
version: 1.4.0
storage:
  files:
    - path: /etc/livelab-libvirt
      contents:
        inline: via-libvirt
"""


def _livelab_domains():
    out = subprocess.run(["virsh", "-c", URI, "list", "--all", "--name"], check=True,
                         capture_output=True, text=True).stdout
    return [n for n in out.split() if n.startswith("livelab-")]


@pytest.fixture(autouse=True)
def _libvirt_up():
    pytest.importorskip("libvirt", reason="libvirt-python not installed (pip install 'livelab[libvirt]')")
    if not shutil.which("virsh") or subprocess.run(["virsh", "-c", URI, "version"],
                                                  capture_output=True).returncode != 0:
        pytest.skip(f"libvirtd does not answer on {URI}: run scripts/setup-libvirt.sh")
    yield


def _check_isolation(m):
    from harness.vm.libvirt import xml_isolation_problems
    from harness.vm.qemu import isolation_problems
    xml = m.dom.XMLDesc(0)
    root = ET.fromstring(xml)
    assert root.get("type") in ("qemu", "kvm")
    assert list(root.iter("interface")) == [], "libvirt <interface> in the live domain"
    args = [a.get("value") for a in root.iter(f"{{{QEMU_NS}}}arg")]
    netdevs = [args[i + 1] for i, a in enumerate(args) if a == "-netdev"]
    assert len(netdevs) == 1 and netdevs[0].startswith("user,") and "restrict=on" in netdevs[0].split(",")
    fwds = [o for o in netdevs[0].split(",") if o.startswith("hostfwd=")]
    assert fwds and all(o.startswith("hostfwd=tcp:127.0.0.1:") for o in fwds), netdevs
    assert xml_isolation_problems(xml) == []
    assert isolation_problems(m.command()) == []          # QEMU's real argv (/proc/<pid>/cmdline)
    usernet = m.qmp.cmd("human-monitor-command", **{"command-line": "info usernet"})
    fwd = [line for line in usernet.splitlines() if "HOST_FORWARD" in line]
    assert fwd and all("127.0.0.1" in line for line in fwd), usernet


@pytest.mark.livelab(os="fcos", stream="stable", firmware="bios")
@pytest.mark.parametrize("method", ["pxe", "iso"])
def test_libvirt_boot(live_vm, method):
    """fcos.stable.<pxe|iso>.bios through libvirt: SSH, Ignition ran, isolation, QMP, cleanup."""
    lb = live_vm(BootRequest("fcos", "stable", method, "bios", butane=BUTANE,
                             name=f"fcos.stable.{method}.bios.libvirt"),
                 backend="libvirt", libvirt_uri=URI)
    m = lb.machine
    assert type(m).__name__ == "LibvirtMachine"
    name = m.domain_name
    assert name in _livelab_domains()
    _check_isolation(m)
    assert m.qmp.cmd("query-status")["status"] == "running"
    m.wait_for_ssh()
    assert m.succeed("cat /etc/livelab-libvirt").strip() == "via-libvirt"
    assert m.succeed("id -un").strip() == "core"
    m.wait_for_port_token()
    if method == "iso":
        err = (m.eject(force=False).get("error") or {}).get("desc", "")
        assert "locked" in err.lower(), err      # the QMP id of the CD is libvirt's alias
    assert (lb.run_dir / "console.log").stat().st_size > 0
    lb.close()
    assert name not in _livelab_domains()
    assert m.watchdog is None


_ORPHAN = r"""
import sys, time
from pathlib import Path
from harness.vm.accel import Accel
from harness.vm.libvirt import LibvirtMachine
from harness.vm.qemu import VMSpec
rd = Path(sys.argv[1])
m = LibvirtMachine(VMSpec(name="orphan", memory_mib=128, cpus=1, boot="network", virtio_ports=[]),
                   rd, Accel("tcg", "test"))
m.start()
print(m.domain_name, m.proc.pid, flush=True)
time.sleep(600)
"""


def test_sigkilled_owner_leaves_no_domain(tmp_path):
    """A test process killed with SIGKILL: its watchdog destroys the domain within seconds."""
    import os
    import signal
    import sys
    import time

    from harness import runtime
    proc = subprocess.Popen([sys.executable, "-c", _ORPHAN, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        name, qemu_pid = proc.stdout.readline().split()
        assert name in _livelab_domains()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 20
        while name in _livelab_domains() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert name not in _livelab_domains()
        assert not runtime.pid_alive(int(qemu_pid))
        assert "destroying" in (tmp_path / "libvirt-watchdog.log").read_text()
        runtime.reap_stale(log=lambda msg: None)   # drops the dead run's VM record
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_no_livelab_domain_left():
    """After the tests above (and their fixtures' cleanup) no livelab-* domain of this process is left."""
    import os
    assert [n for n in _livelab_domains() if n.endswith(f"-{os.getpid()}")] == []
