"""The accelerator probe runs a real probe guest (a boot sector writing to isa-debug-exit)."""
import pytest

from harness.vm import accel


def test_probe_guest_really_runs_under_tcg():
    status, seconds, _ = accel._run_probe(["-accel", "tcg"], timeout=20)
    assert status == accel._PROBE_EXIT
    assert seconds < 20


def test_tcg_requested_needs_no_probe():
    a = accel.choose("tcg")
    assert a.name == "tcg" and "-cpu" in a.qemu_args(2)


def test_unknown_accel_refused():
    with pytest.raises(Exception, match="unknown accelerator"):
        accel.choose("hvf")


def test_missing_qemu_binary_is_one_line_error(monkeypatch):
    monkeypatch.setattr(accel, "QEMU_BINARY", "qemu-system-does-not-exist")
    with pytest.raises(accel.LivelabError, match="apt-get install qemu-system-x86"):
        accel.qemu_binary()
