"""``livelab repro TEST_ID``: a deliberately failing test, then its VM re-created from its vm.json.

The failing test boots fcos.stable.pxe-rootfs-url.bios and asserts a file Ignition never writes;
``livelab repro`` boots the same release with the same method, memory, kernel arguments and
Ignition config, prints the SSH command, reproduces the failure over SSH, and ``livelab down``
powers it off leaving nothing running."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paramiko
import pytest
from procs import qemus_of

REPO = Path(__file__).resolve().parents[2]
TID = "fcos.stable.pxe-rootfs-url.bios.repro-me"

FAILING_TEST = f'''
from harness.lab import BootRequest

def test_deliberately_fails(live_vm):
    lb = live_vm(BootRequest("fcos", "stable", "pxe-rootfs-url", "bios", name="{TID}",
                             kargs=["livelab.repro=1"]))
    lb.machine.wait_for_ssh()
    lb.machine.succeed("test -e /etc/written-by-nobody")
'''


@pytest.mark.livelab(os="fcos", stream="stable", method="pxe-rootfs-url", firmware="bios")
@pytest.mark.e2e
@pytest.mark.ci
def test_repro_of_a_deliberately_failed_test(tmp_path):
    env = dict(os.environ)
    runs = tmp_path / "runs"
    (tmp_path / "test_fail.py").write_text(FAILING_TEST)
    first = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                            str(REPO / "pyproject.toml"), "--rootdir", str(REPO), "--run-dir", str(runs / "failed"),
                            str(tmp_path / "test_fail.py")], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=1200)
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
    assert "written-by-nobody" in first.stdout
    (failed_json,) = list((runs / "failed").rglob("vm.json"))
    failed = json.loads(failed_json.read_text())
    assert failed["name"] == TID

    repro_dir = runs / "repro"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "repro", TID, "--runs", str(runs),
                             "--run-dir", str(repro_dir)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    ready = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if "SSH ready" in line:
                ready.set()
    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(900), "".join(lines)[-3000:]
        text = "".join(lines)
        assert f"re-creating {TID} (fcos stable {failed['release']['version']})" in text
        port = int(re.search(r"-p (\d+) ", text).group(1))
        key = paramiko.Ed25519Key.from_private_key_file(str(repro_dir / "ssh" / "id_ed25519"))
        cli = paramiko.SSHClient()
        cli.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        cli.connect("127.0.0.1", port=port, username="core", pkey=key, timeout=30, banner_timeout=30,
                    allow_agent=False, look_for_keys=False)
        try:
            _, out, _ = cli.exec_command("cat /proc/cmdline; test -e /etc/written-by-nobody; echo rc=$?")
            cmdline = out.read().decode()
        finally:
            cli.close()
        # the same kernel arguments (the harness's and the test's) and the same failure
        for karg in failed["kernel_args_per_boot"][0]:
            assert karg in cmdline, (karg, cmdline)
        assert "rc=1" in cmdline
        repro = json.loads((repro_dir / "vm.json").read_text())
        assert repro["release"]["version"] == failed["release"]["version"]
        for field in ("memory_mib", "method", "firmware", "kargs", "cpus"):
            assert repro["request"][field] == failed["request"][field], field
        assert qemus_of(repro_dir)
        down = subprocess.run([sys.executable, "-m", "harness.cli", "down"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)
        assert "stopping" in down.stdout, down.stdout + down.stderr
        assert proc.wait(120) == 0, "".join(lines)[-3000:]
        deadline = time.monotonic() + 10
        while qemus_of(repro_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not qemus_of(repro_dir)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
