"""A passing test's boot media and disks are removed from its run directory (harness.run_media); a
failing test's, and those of a run with --keep-media or --keep-vms, stay."""
import os
import subprocess
import sys

from harness import run_media


def _vm_dir(d):
    d.mkdir(parents=True, exist_ok=True)
    (d / "live.iso").write_bytes(b"\0" * 5000)
    (d / "disk-var.qcow2").write_bytes(b"\0" * 300)
    (d / "initrd-combined.img").write_bytes(b"\0" * 20)
    for name in ("console.log", "vm.json", "kargs.txt", "OVMF_VARS.fd", "oem.cpio.gz"):
        (d / name).write_text(name)
    (d / "tftp").mkdir()
    (d / "tftp" / "live.iso").write_text("below the VM's directory: not its media")
    os.symlink("/nonexistent/fedora-coreos-live-rootfs.x86_64.img", d / "tftp" / "rootfs.img")
    return d


def test_shed_removes_the_media_and_says_so(tmp_path):
    d = _vm_dir(tmp_path / "vm")
    os.symlink(tmp_path / "elsewhere.qcow2", d / "disk-link.qcow2")   # a link is not media of this directory
    assert run_media.shed(d, "after the test passed") == 5320
    assert sorted(p.name for p in d.iterdir()) == sorted(
        ["console.log", "vm.json", "kargs.txt", "OVMF_VARS.fd", "oem.cpio.gz", "tftp", "disk-link.qcow2",
         run_media.RECORD_FILE])
    assert (d / "tftp" / "live.iso").exists()
    assert (d / run_media.RECORD_FILE).read_text().splitlines() == [
        "# removed after the test passed: name, bytes", "disk-var.qcow2 300", "initrd-combined.img 20",
        "live.iso 5000"]


def test_nothing_to_shed_writes_no_record(tmp_path):
    (tmp_path / "console.log").write_text("x")
    assert run_media.shed(tmp_path, "after the test passed") == 0
    assert [p.name for p in tmp_path.iterdir()] == ["console.log"]


PLUGIN_TEST = '''
import pathlib
import pytest

def _media(livelab, request):
    d = livelab.run_dir_for(request.node.nodeid)
    (d / "live.iso").write_bytes(b"\\0" * 4096)
    (d / "disk-var.qcow2").write_bytes(b"\\0" * 4096)
    (d / "console.log").write_text("console")
    request.node.livelab_run_dirs = [d]

@pytest.fixture
def breaks_on_teardown():
    yield
    raise RuntimeError("teardown failed")

def test_passes(livelab, request):
    _media(livelab, request)

def test_fails(livelab, request):
    _media(livelab, request)
    assert False, "the guest said no"

def test_teardown_fails(breaks_on_teardown, livelab, request):
    _media(livelab, request)

def test_skipped_after_boot(livelab, request):
    _media(livelab, request)
    pytest.skip("not on this host")
'''


def _run(tmp_path, *args):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "test_media.py").write_text(PLUGIN_TEST)
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--run-dir", str(runs),
                           *args, "test_media.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "1 failed, 2 passed, 1 skipped, 1 error" in proc.stdout, proc.stdout + proc.stderr
    return {d.name: sorted(p.name for p in d.iterdir()) for d in runs.iterdir() if d.name.startswith("test_")}


def test_the_plugin_sheds_a_passing_tests_media_only(tmp_path):
    kept = ["console.log", "disk-var.qcow2", "live.iso"]
    shed = ["console.log", run_media.RECORD_FILE]
    assert _run(tmp_path) == {"test_passes": shed, "test_skipped_after_boot": shed,
                              "test_fails": kept, "test_teardown_fails": kept}


def test_keep_media_and_keep_vms_keep_them(tmp_path):
    kept = ["console.log", "disk-var.qcow2", "live.iso"]
    for flag in ("--keep-media", "--keep-vms"):
        assert set(map(tuple, _run(tmp_path / flag.strip("-"), flag).values())) == {tuple(kept)}, flag
