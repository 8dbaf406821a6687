"""Faults around a booting VM: a child pytest interrupted mid-boot (SIGINT, SIGTERM, SIGKILL)
leaves no QEMU and no HTTP server of its run behind; an SSH forward port taken at QEMU start is
one clear error and no QEMU.

The 1-trial SIGKILL case is tests/e2e/test_vm_core.py::test_sigkill_of_pytest_mid_boot_leaves_no_qemu;
here SIGKILL runs only in the 20-trial loop (``slow``).
"""
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from procs import qemus_of

from harness import runtime
from harness.errors import LivelabError
from harness.vm.accel import Accel
from harness.vm.qemu import Machine, VMSpec

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CASE = "fcos.stable.pxe-rootfs-url.bios.base"
# expected exit status of the child pytest per signal (pytest: 2 = interrupted)
EXIT = {signal.SIGINT: (2,), signal.SIGTERM: (-signal.SIGTERM,), signal.SIGKILL: (-signal.SIGKILL,)}


def _listening(port: int) -> str:
    return subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout.strip()


def _listening_of(pid: int) -> str:
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    return "\n".join(line for line in out.splitlines() if f"pid={pid}," in line)


def _relays(http_port: int):
    out = subprocess.run(["pgrep", "-af", f"TCP:127.0.0.1:{http_port}"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def _default_signals() -> None:
    """The child takes SIGINT and SIGTERM as a terminal would send them: a shell that starts a job in
    the background without job control (``cmd &`` in a script, as some CI runners do) passes SIGINT
    on ignored, and a pytest that ignores it would make this test blind."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interrupt_mid_boot(run_dir: Path, sig: int, log: Path) -> dict:
    """One trial: boot CASE in a child pytest, send ``sig`` mid-boot, return what was left."""
    with open(log, "wb") as out:
        child = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                  f"scenarios/base.yaml::{CASE}", "--run-dir", str(run_dir)],
                                 cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_default_signals)
    try:
        # artifacts are cached after the first boot; a VM may queue in admission behind others
        deadline = time.monotonic() + 900
        while True:
            seen = qemus_of(run_dir)
            if seen:
                break
            assert child.poll() is None, f"child pytest ended before QEMU started:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "QEMU never started"
            time.sleep(0.2)
        cmdline = seen[0]
        http_port = int(re.search(r"TCP:127\.0\.0\.1:(\d+)", cmdline).group(1))
        ssh_port = int(re.search(r"hostfwd=tcp:127\.0\.0\.1:(\d+)-", cmdline).group(1))
        time.sleep(3)                          # mid-boot
        assert child.poll() is None, f"the boot ended before the signal:\n{log.read_text()[-3000:]}"
        assert _listening_of(child.pid), "the child's HTTP server is not listening (test is blind)"
        child.send_signal(sig)
        try:
            rc = child.wait(120)
        except subprocess.TimeoutExpired:
            rc = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (qemus_of(run_dir) or _listening(http_port) or _relays(http_port)):
            time.sleep(0.2)
        return {"rc": rc, "qemu": qemus_of(run_dir), "http": _listening(http_port), "ssh": _listening(ssh_port),
                "relays": _relays(http_port), "child_listening": _listening_of(child.pid) if rc is None else ""}
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for line in qemus_of(run_dir):          # never leave a VM of ours behind, even on failure
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)


def _signal_params():
    params = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        params.append(pytest.param(sig, 1, id=f"{sig.name}-1", marks=[pytest.mark.ci, pytest.mark.serial]))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        params.append(pytest.param(sig, 20, id=f"{sig.name}-20", marks=[pytest.mark.slow, pytest.mark.serial]))
    return params


@pytest.mark.livelab(os="fcos", stream="stable", method="pxe-rootfs-url", firmware="bios")
@pytest.mark.parametrize("sig,trials", _signal_params())
def test_signal_to_pytest_mid_boot_leaves_nothing(tmp_path, sig, trials):
    """fcos.stable.pxe-rootfs-url.bios.base in a child pytest, signalled a few seconds into the
    boot: it ends, and no QEMU of its run dir, no relay and no listening HTTP server remain."""
    for trial in range(trials):
        # short: QEMU's console/QMP unix socket paths must stay under 108 bytes
        run_dir = Path(tempfile.mkdtemp(prefix=f"llf-{sig.name}-", dir="/tmp"))
        try:
            left = _interrupt_mid_boot(run_dir, sig, tmp_path / f"child-{trial}.log")
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        where = f"{sig.name} trial {trial + 1}/{trials}"
        assert left["rc"] in EXIT[sig], f"{where}: child pytest exit status {left['rc']}"
        assert left["qemu"] == [], f"{where}: QEMU survived: {left['qemu']}"
        assert left["http"] == "" and left["child_listening"] == "", f"{where}: HTTP server left: {left}"
        assert left["ssh"] == "", f"{where}: SSH forward still listening: {left['ssh']}"
        assert left["relays"] == [], f"{where}: guestfwd relays left: {left['relays']}"


@pytest.mark.ci
def test_taken_ssh_port_is_one_clear_error_and_no_qemu(tmp_path, monkeypatch):
    """A forward port somebody else took between lease and QEMU start: QEMU refuses it, the
    harness says so in one line naming the port, and nothing is left running."""
    monkeypatch.setenv("LIVELAB_STATE_DIR", str(tmp_path / "state"))   # a private admission ledger
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        port = squatter.getsockname()[1]
        spec = VMSpec(name="fault.port-taken", memory_mib=128, cpus=1, ssh_port=port, virtio_ports=[])
        m = Machine(spec, tmp_path / "vm", Accel("tcg", "test"), admission=runtime.Admission())
        try:
            with pytest.raises(LivelabError) as exc:
                m.start()
        finally:
            m.close()
    msg = exc.value.one_line()
    assert "\n" not in str(exc.value), str(exc.value)
    assert re.search(r"(?i)host ?forward", msg) and str(port) in msg, msg
    assert m.proc is None and qemus_of(tmp_path / "vm") == []
