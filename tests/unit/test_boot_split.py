"""The boot's split (harness.vm.record.SPANS) from its phases, and the phases read back from a
console-timed.log: the lines that mark them are the real ones (FCOS, Flatcar, the stand-in)."""
from __future__ import annotations

import json

import pytest

from harness.triage import PHASES, Triage
from harness.vm import record

# one line per phase, as consoles print them (systemd 252+ status lines, kernel lines)
MARKS = {
    "kernel_start": "[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)",
    "init_start": "[    2.426386] Run /init as init process",
    "ignition_start": "         Starting ignition-fetch-offline.service - Ignition (fetch-offline)...",
    "rootfs_start": "         Starting coreos-livepxe-rootfs.service - Acquire live PXE rootfs image...",
    "rootfs_done": "[  OK  ] Finished coreos-livepxe-rootfs.service - Acquire live PXE rootfs image.",
    "ignition_done": "[  OK  ] Reached target ignition-complete.target - Ignition Complete.",
    "switch_root": "[  OK  ] Reached target initrd-switch-root.target - Switch Root.",
    "real_root": "[  OK  ] Stopped initrd-switch-root.service - Switch Root.",
    "sshd_started": "[  OK  ] Started sshd.service - OpenSSH server daemon.",
    "multi_user": "[  OK  ] Reached target multi-user.target - Multi-User System.",
    "login_prompt": "localhost login: ",
}


def test_every_phase_has_a_real_line_and_marks_only_itself():
    assert set(MARKS) == {p.name for p in PHASES}
    for name, line in MARKS.items():
        hits = [p.name for p in PHASES if p.pattern.search(line.strip())]
        assert hits == [name], (line, hits)


@pytest.mark.parametrize("line", [
    "[  OK  ] Started ssh.service - OpenBSD Secure Shell server.",           # Debian (the stand-in)
    "[  OK  ] Listening on sshd.socket - OpenSSH Server Socket.",            # Flatcar: socket-activated
    "[  OK  ] Started sshd.service - OpenSSH server daemon.",                # Fedora CoreOS
])
def test_sshd_start_on_each_os(line):
    t = Triage(rules=())
    t.feed(line + "\n")
    assert "sshd_started" in t.phases


def test_stand_in_rootfs_unit_marks_the_rootfs_span():
    t = Triage(rules=())
    t.feed("         Starting livelab-live-root…stem (squashfs + overlay upper)...\n"
           "[  OK  ] Finished livelab-live-root…system (squashfs + overlay upper).\n")
    assert set(t.phases) == {"rootfs_start", "rootfs_done"}


PHASES_OF_A_PXE_BOOT = {"qemu_start": 0.0, "first_console": 0.1, "kernel_start": 20.0, "init_start": 22.5,
                        "ignition_start": 29.0, "rootfs_start": 33.0, "rootfs_done": 37.0, "ignition_done": 40.0,
                        "switch_root": 41.5, "real_root": 44.0, "sshd_started": 49.5, "ssh_ready": 50.25}


def test_split_takes_the_rootfs_out_of_ignition():
    s = record.split(PHASES_OF_A_PXE_BOOT)
    assert s == {"firmware_loading": 20.0, "kernel_to_init": 2.5, "initramfs_units": 6.5, "ignition": 7.0,
                 "rootfs": 4.0, "switch_root": 4.0, "real_root_to_sshd": 5.5, "harness_lag": 0.75}
    # the spans of a boot with every phase add up to boot-to-SSH
    assert sum(s.values()) == pytest.approx(PHASES_OF_A_PXE_BOOT["ssh_ready"])


def test_split_leaves_out_what_did_not_show():
    s = record.split({"qemu_start": 0.0, "kernel_start": 3.0, "init_start": 5.0})
    assert s == {"firmware_loading": 3.0, "kernel_to_init": 2.0}
    # a rootfs outside Ignition's span (none in the stand-in, but a boot may differ) is not subtracted
    s = record.split({"ignition_start": 1.0, "ignition_done": 5.0, "rootfs_start": 6.0, "rootfs_done": 7.0})
    assert s == {"ignition": 4.0, "rootfs": 1.0}


TIMED_LOG = """--- boot 1 ---
[    0.08] SeaBIOS (version 1.16.2-debian-1.16.2-1)
[    5.87] Probing EDD (edd=off to disable)... o[    0.000000] Linux version 6.1.0-56-amd64 (x)
[    8.10] [    2.426386] Run /init as init process
[   12.00]          Starting ignition-fetch-offline.service - Ignition (fetch-offline)...
[   14.76] [  OK  ] Reached target ignition-co…te.target - Ignition Complete.
[   17.08] [  OK  ] Reached target initrd-switch-root.target - Switch Root.
[   17.10]          Starting initrd-switch-root.service - Switch Root...
[   25.02] [  OK  ] Stopped initrd-switch-root.service - Switch Root.
[   30.11] [  OK  ] Started ssh.service - OpenBSD Secure Shell server.
--- boot 2 ---
[    4.00] [    0.000000] Linux version 6.1.0-56-amd64 (x)
[    6.00] [    1.900000] Run /init as init process
"""


def test_phases_read_back_from_a_timed_log():
    boots = record.timed_log_phases(TIMED_LOG)
    assert boots[0] == {"qemu_start": 0.0, "kernel_start": 5.87, "init_start": 8.1, "ignition_start": 12.0,
                        "ignition_done": 14.76, "switch_root": 17.08, "real_root": 25.02, "sshd_started": 30.11}
    assert boots[1] == {"qemu_start": 0.0, "kernel_start": 4.0, "init_start": 6.0}


def test_read_boots_completes_timings_json_from_the_log(tmp_path):
    (tmp_path / "console-timed.log").write_text(TIMED_LOG)
    (tmp_path / "timings.json").write_text(json.dumps({"schema": record.TIMINGS_SCHEMA, "boots": [
        {"boot": 1, "phases": {"qemu_start": 0.0, "kernel_start": 5.9, "ssh_ready": 31.0}}]}))
    boots = record.read_boots(tmp_path)
    assert len(boots) == 2
    # what timings.json recorded wins; the phases it lacks come from the log
    assert boots[0]["kernel_start"] == 5.9 and boots[0]["real_root"] == 25.02 and boots[0]["ssh_ready"] == 31.0
    assert record.split(boots[0])["harness_lag"] == pytest.approx(0.89)


def test_read_boots_of_an_empty_run_dir(tmp_path):
    assert record.read_boots(tmp_path) == []


def test_livelab_timings_prints_the_split_and_refuses_an_empty_dir(tmp_path, capsys):
    from harness.cli import main
    run = tmp_path / "runs" / "fcos.stable.iso.bios.base"
    run.mkdir(parents=True)
    (run / "console-timed.log").write_text(TIMED_LOG)
    assert main(["timings", str(tmp_path / "runs")]) == 0      # a directory of run directories
    out = capsys.readouterr().out
    assert "== " in out and "boot 1: firmware and loading 5.87 s, kernel to /init 2.23 s" in out
    assert "real root to sshd 5.09 s" in out and "boot 2: firmware and loading 4 s" in out
    assert main(["timings", "--json", str(run)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["boots"][0]["split"]["switch_root"] == pytest.approx(10.26)
    (tmp_path / "empty").mkdir()
    assert main(["timings", str(tmp_path / "empty")]) == 2
    assert "no timings.json or console-timed.log" in capsys.readouterr().err
