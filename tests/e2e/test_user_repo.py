"""livelab in a user's own repository, as a user has it: a non-editable install in a fresh venv, a
repo with a pytest.ini, one scenario with its Butane and one Python test; `pytest` there boots both."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "images" / "out"

SCENARIO = """\
description: the user's own file, written by Ignition
butane: mine.bu
applies: {os: [fcos], method: [pxe-rootfs-url], firmware: [bios]}
boots:
  - checks:
      - ssh: cat /etc/mine
        output: '^from-scenario$'
"""
BUTANE = """\
variant: fcos
version: 1.4.0
storage:
  files:
    - path: /etc/mine
      contents: {inline: from-scenario}
"""
PYTHON_TEST = '''
from harness.lab import BootRequest

BUTANE = """
variant: fcos
version: 1.4.0
storage:
  files:
    - path: /etc/mine
      contents: {inline: from-python}
"""


def test_my_pxe_boot(live_vm):
    vm = live_vm(BootRequest("fcos", "stable", "pxe-rootfs-url", "bios", butane=BUTANE))
    vm.machine.wait_for_ssh()
    assert vm.machine.succeed("cat /etc/mine").strip() == "from-python"
'''


@pytest.mark.e2e
@pytest.mark.ci
@pytest.mark.livelab(os="fcos", stream="stable", method="pxe-rootfs-url", firmware="bios")
def test_user_repo_with_a_plain_install(tmp_path):
    assert (OUT / "mirror").is_dir(), "the stand-in mirror is missing: run `make images`"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(REPO)],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    where = subprocess.run([str(py), "-c", "import harness; print(harness.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert str(venv) in where and str(REPO) not in where, where

    repo = tmp_path / "my-os-config"
    (repo / "scenarios").mkdir(parents=True)
    (repo / "scenarios" / "mine.yaml").write_text(SCENARIO)
    (repo / "scenarios" / "mine.bu").write_text(BUTANE)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_mine.py").write_text(PYTHON_TEST)
    (repo / "pytest.ini").write_text(
        "[pytest]\n"
        f"livelab_mirror = {OUT / 'mirror'}\n"
        f"livelab_keyring = {OUT / 'keyring.gpg'}\n"
        f"livelab_ignition_spec_table = {OUT / 'ignition-specs.json'}\n"
        "livelab_scenarios = scenarios\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LIVELAB_RUN_STAMP", "LIVELAB_RUN_DIR")}
    proc = subprocess.run([str(py), "-m", "pytest", "-v", "-p", "no:cacheprovider", "-rfE"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "scenarios/mine.yaml::fcos.stable.pxe-rootfs-url.bios.mine PASSED" in out, out[-3000:]
    assert "tests/test_mine.py::test_my_pxe_boot PASSED" in out, out[-3000:]
    assert "2 passed" in out
    # each VM kept its artifacts in the user's repo
    runs = repo / "runs"
    assert len(list(runs.glob("*/fcos.stable.pxe-rootfs-url.bios.mine/console.log"))) == 1
    assert len(list(runs.glob("*/test_my_pxe_boot/vm.json"))) == 1
