"""Per-VM files as report attachments: packed on a worker, carried as pytest and xdist carry a report,
written into the controller's run directory, which the report's properties then name."""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import execnet
import pytest
from _pytest.reports import TestReport

from harness import attachments
from harness.errors import LivelabError

REPO = Path(__file__).resolve().parents[2]


def _worker_tree(root: Path) -> list:
    """A test's run directory as a worker leaves it: two VMs, text files, a disk image, a socket."""
    vm1 = root / "fcos.stable.iso.bios.base"
    vm2 = vm1 / "vm2"
    vm2.mkdir(parents=True)
    (vm1 / "console.log").write_bytes(b"\x1b[0mLinux version 6.1\r\n\xff not UTF-8\nlogin: \n" * 200)
    (vm1 / "vm.json").write_text(json.dumps({"name": "vm1", "memory_mib": 4096}))
    (vm1 / "timings.json").write_text('{"boots": []}')
    (vm1 / "config.ign").write_text('{"ignition": {"version": "3.4.0"}}')
    (vm1 / "qemu-cmdline.txt").write_text("qemu-system-x86_64 -m 4096\n")
    (vm1 / "live.iso").write_bytes(b"\0" * 4096)                  # media: stays on the host
    (vm1 / "disk0.qcow2").write_bytes(b"QFI\xfb")
    (vm2 / "console.log").write_text("second VM\n")
    import socket
    with socket.socket(socket.AF_UNIX) as s:                      # the console socket
        s.bind(str(vm1 / "c.sock"))
    (root / "other-test").mkdir()
    (root / "other-test" / "console.log").write_text("not this test's\n")
    return [vm1, vm2]


def _report(payload: dict, dirs: list) -> TestReport:
    rep = TestReport("scenarios/base.yaml::fcos.stable.iso.bios.base", ("scenarios/base.yaml", 0, "x"), {},
                     "passed", None, "teardown",
                     user_properties=[("livelab_host", "host-a"), *(("livelab_run_dir", str(d)) for d in dirs)])
    setattr(rep, attachments.REPORT_ATTR, payload)
    return rep


def test_pack_takes_the_tests_text_files_only(tmp_path):
    dirs = _worker_tree(tmp_path / "host")
    payload = attachments.pack(tmp_path / "host", dirs, "host-a")
    assert payload["host"] == "host-a" and payload["schema"] == attachments.SCHEMA
    assert sorted(f["path"] for f in payload["files"]) == [
        "fcos.stable.iso.bios.base/config.ign", "fcos.stable.iso.bios.base/console.log",
        "fcos.stable.iso.bios.base/qemu-cmdline.txt", "fcos.stable.iso.bios.base/timings.json",
        "fcos.stable.iso.bios.base/vm.json", "fcos.stable.iso.bios.base/vm2/console.log"]
    assert payload["dirs"] == {str(dirs[0]): "fcos.stable.iso.bios.base", str(dirs[1]): "fcos.stable.iso.bios.base/vm2"}
    # plain data: JSON carries it as well as execnet
    assert json.loads(json.dumps(payload)) == payload


def test_round_trip_through_report_serialization_to_the_controller(tmp_path):
    """Worker: pack onto the teardown report; pytest + execnet serialize it (what xdist sends);
    controller: the plugin's receiver writes the files and rewrites the run-dir properties."""
    dirs = _worker_tree(tmp_path / "host")
    rep = _report(attachments.pack(tmp_path / "host", dirs, "host-a"), dirs)
    sent = execnet.loads(execnet.dumps(rep._to_json()))           # what crosses the SSH channel
    got = TestReport._from_json(sent)

    from harness.pytest_plugin import AttachmentReceiver

    class Config:                                                # the controller's: only its run directory
        rootpath = tmp_path

        def getoption(self, name, default=None):
            return str(tmp_path / "controller-runs") if name == "--run-dir" else default

    AttachmentReceiver(Config()).pytest_runtest_logreport(got)
    here = tmp_path / "controller-runs" / "fcos.stable.iso.bios.base"
    for name in ("console.log", "vm.json", "timings.json", "config.ign", "qemu-cmdline.txt", "vm2/console.log"):
        assert (here / name).read_bytes() == (dirs[0] / name).read_bytes(), name
    assert not (here / "live.iso").exists() and not (here / "disk0.qcow2").exists()
    assert not (tmp_path / "controller-runs" / "other-test").exists()
    assert got.user_properties == [("livelab_host", "host-a"), ("livelab_run_dir", str(here)),
                                   ("livelab_run_dir", str(here / "vm2"))]
    # the data is gone from the report once written: the terminal reporter keeps every report
    assert not hasattr(got, attachments.REPORT_ATTR)


def test_a_file_over_the_limit_is_named_not_sent(tmp_path):
    dirs = _worker_tree(tmp_path / "host")
    payload = attachments.pack(tmp_path / "host", dirs, "h", limit=1000)
    assert [e["path"] for e in payload["left_out"]] == ["fcos.stable.iso.bios.base/console.log"]
    attachments.unpack(payload, tmp_path / "c")
    note = (tmp_path / "c" / "fcos.stable.iso.bios.base" / attachments.LEFT_OUT_FILE).read_text()
    assert note.startswith("fcos.stable.iso.bios.base/console.log\t") and "not sent" in note
    assert not (tmp_path / "c" / "fcos.stable.iso.bios.base" / "console.log").exists()


@pytest.mark.parametrize("path", ["../escape.log", "/etc/x.log", "a/../../b.log", ""])
def test_a_path_that_leaves_the_run_directory_is_refused(tmp_path, path):
    dirs = _worker_tree(tmp_path / "host")
    payload = attachments.pack(tmp_path / "host", dirs, "h")
    payload["files"][0]["path"] = path
    with pytest.raises(LivelabError, match="not a relative path inside the run directory"):
        attachments.unpack(payload, tmp_path / "c" / "runs")
    assert not (tmp_path / "c" / "escape.log").exists()


def test_damaged_data_is_refused(tmp_path):
    dirs = _worker_tree(tmp_path / "host")
    payload = attachments.pack(tmp_path / "host", dirs, "h")
    payload["files"][0]["size"] += 1
    with pytest.raises(LivelabError, match=r"bytes, the worker sent"):
        attachments.unpack(payload, tmp_path / "c")
    payload["files"][0]["data"] = "!!"
    with pytest.raises(LivelabError, match="unreadable data"):
        attachments.unpack(payload, tmp_path / "c")
    with pytest.raises(LivelabError, match=r"not a livelab\.attachments/1 payload"):
        attachments.unpack({"files": []}, tmp_path / "c")


REMOTE_CONFTEST = '''
import pytest

@pytest.hookimpl(trylast=True)
def pytest_configure_node(node):
    # these popen workers stand in for workers on other hosts: they boot under their own run root
    node.workerinput["livelab_remote"] = True
'''

FAKE_VM_TEST = '''
import os
import pytest

@pytest.mark.parametrize("n", [1, 2, 3])
def test_vm(n, livelab, request):
    d = livelab.run_dir_for(request.node.nodeid)
    assert str(d).startswith(os.environ["LIVELAB_RUN_DIR"])       # the worker's own run root
    (d / "console.log").write_text(f"console of vm {n} on {os.environ['PYTEST_XDIST_WORKER']}\\n")
    (d / "disk.qcow2").write_text("stays")
    request.node.livelab_run_dirs = [d]
    assert n != 2, "vm 2 failed"
'''


def test_xdist_carries_the_files_and_the_host_of_each_report(tmp_path):
    """A real xdist run (popen workers marked remote): each report names the worker's host; the
    controller's run directory gets the files, the JUnit file names them and the host."""
    (tmp_path / "conftest.py").write_text(REMOTE_CONFTEST)
    (tmp_path / "test_vms.py").write_text(FAKE_VM_TEST)
    worker_root, controller_root = tmp_path / "worker-runs", tmp_path / "controller-runs"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-rfE",
                           f"--junitxml={tmp_path / 'j.xml'}", f"--run-dir={controller_root}", "test_vms.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LIVELAB_RUN_DIR": str(worker_root), "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 2 passed" in proc.stdout
    for n in (1, 2, 3):
        name = f"test_vm_{n}_"
        assert (controller_root / name / "console.log").read_text() == (worker_root / name / "console.log").read_text()
        assert not (controller_root / name / "disk.qcow2").exists()
    import socket
    props = {tc.get("name"): [(p.get("name"), p.get("value")) for p in tc.iter("property")]
             for tc in ET.parse(tmp_path / "j.xml").getroot().iter("testcase")}
    for n in (1, 2, 3):
        assert props[f"test_vm[{n}]"] == [("livelab_host", socket.gethostname()),
                                          ("livelab_run_dir", str(controller_root / f"test_vm_{n}_"))]
