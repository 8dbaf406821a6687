"""Under pytest-xdist a failed test still carries its VMs' files, its JUnit properties and its run
directory in the one run root that every worker shares."""
import subprocess
import sys
import xml.etree.ElementTree as ET

TEST = '''
import pytest

@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_vm(n, livelab, request):
    d = livelab.run_dir_for(request.node.nodeid)
    (d / "console.log").write_text(f"console of vm {n}\\nKernel panic - not syncing\\n")
    (d / "vm.json").write_text('{"name": "vm%d"}' % n)
    request.node.livelab_run_dirs = [d]
    assert n % 2, f"vm {n} failed"
'''


def test_failure_attachments_and_run_dirs_under_xdist(tmp_path):
    (tmp_path / "test_vms.py").write_text(TEST)
    junit = tmp_path / "junit.xml"
    env_run = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-o",
                           "junit_logging=all", f"--junitxml={junit}", "--run-dir", str(env_run), "test_vms.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "2 failed, 2 passed" in out
    # the failed tests' reports carry their VM files (sections), sent back from the workers
    for n in (2, 4):
        assert f"livelab test_vm_{n}_/console.log" in out and f"console of vm {n}" in out
        assert f"livelab test_vm_{n}_/vm.json" in out
    assert "console of vm 1" not in out
    # and each ends with why it failed, after the files (a log cut to its tail still says it)
    for n in (2, 4):
        recap = out.index("livelab: why it failed", out.index(f"livelab test_vm_{n}_/vm.json"))
        assert f"error: AssertionError: vm {n} failed" in out[recap:recap + 300]
        assert f"test_vm_{n}_: console: lost: kernel panic" in out[recap:recap + 300]
    # one run root for every worker; every test's directory is in it
    assert sorted(p.name for p in env_run.iterdir()) == [f"test_vm_{n}_" for n in (1, 2, 3, 4)]
    props = {tc.get("name"): {p.get("name"): p.get("value") for p in tc.iter("property")}
             for tc in ET.parse(junit).getroot().iter("testcase")}
    assert props["test_vm[2]"]["livelab_run_dir"] == str(env_run / "test_vm_2_")
    assert props["test_vm[4]"]["livelab_run_dir"] == str(env_run / "test_vm_4_")


def test_workers_share_one_run_stamp(tmp_path):
    """Without --run-dir the controller picks runs/<stamp> once; its workers inherit it."""
    (tmp_path / "test_stamp.py").write_text(
        "import pytest, time\n"
        "@pytest.mark.parametrize('n', range(4))\n"
        "def test_stamp(n, livelab, request):\n"
        "    time.sleep(0.6)\n"
        "    livelab.run_dir_for(request.node.nodeid)\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider", "--rootdir",
                           str(tmp_path), "test_stamp.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in __import__("os").environ.items() if k != "LIVELAB_RUN_STAMP"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stamps = list((tmp_path / "runs").iterdir())
    assert len(stamps) == 1 and len(list(stamps[0].iterdir())) == 4
