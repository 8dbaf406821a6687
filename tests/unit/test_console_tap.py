"""Fast-fail watchers and phase timings of the console tap."""
import time

import pytest

from harness.console import ConsoleTap


@pytest.mark.parametrize("line,reason", [
    ("[   12.3] Kernel panic - not syncing: VFS: Unable to mount root fs", "kernel panic"),
    ("You are in emergency mode. After logging in, type \"journalctl -xb\"", "emergency mode"),
    ("[  OK  ] Ignition failed: some reason", "Ignition failed"),
    ("[FAILED] Failed to start ignition-files.service - Ignition (files).", "Ignition failed"),
    ("dracut-initqueue[312]: Warning: dracut-initqueue: timeout, still waiting for following initqueue hooks:",
     "dracut initqueue timeout"),
    ("[ 3.1] Out of memory: Killed process 1 (systemd)", "out of memory"),
    ("cpio: write error: No space left on device", "out of RAM-disk space"),
    ("Found initramfs version 1 but rootfs version 2", "live rootfs refused"),
    ("Couldn't fetch, verify, and unpack image specified by coreos.live.rootfs_url=http://x", "live rootfs refused"),
    ("No bootable device.", "no bootable device"),
    # PXELINUX with too little memory for the kernel and initrds (the path wraps at column 80)
    ("\x1b[25;80H\r\n/fedora-coreos-42.20250901.3.0-live-kernel.x86_64... failed: Bad file number",
     "boot loader failed"),
    ("Loading vmlinuz... failed: No such file or directory", "boot loader failed"),
    ("error: out of memory.", "boot loader failed"),
])
def test_fatal_lines(line, reason):
    tap = ConsoleTap(time.monotonic())
    tap.write("harmless\r\n" + line + "\r\n")
    assert tap.failure is not None
    assert tap.failure[0] == reason
    assert line.strip().split("\n")[-1] in tap.last_lines(50)


def test_harmless_boot_has_no_failure_and_records_phases():
    tap = ConsoleTap(time.monotonic())
    for chunk in ["[    0.000] Linux version 6.1.0 (debian)\r\n", "[  OK  ] Finished ignition-files.service - Ig",
                  "nition (files).\r\n", "[  OK  ] Reached target initrd-switch-root.target - Switch Root.\r\n",
                  "\x1b[0;32mDebian GNU/Linux 12 host ttyS0\x1b[0m\r\n\r\nhost login: "]:
        tap.write(chunk)
    assert tap.failure is None
    for phase in ("first_console", "kernel_start", "ignition_done", "switch_root", "login_prompt"):
        assert phase in tap.phases, phase


def test_a_successful_load_is_not_a_failure():
    tap = ConsoleTap(time.monotonic())
    tap.write("Loading http://10.0.2.100/fcos/x/vmlinuz... ok\r\nLoading initrd.img...ok\r\n"
              "[  OK  ] Finished systemd-fsck-root.service\r\n")
    assert tap.failure is None


def test_ignored_failure_reason():
    tap = ConsoleTap(time.monotonic())
    tap.ignored_failures.append("Ignition failed")
    tap.write("Ignition failed: x\n")
    assert tap.failure is None


def test_last_lines_bounded():
    tap = ConsoleTap(time.monotonic())
    tap.write("".join(f"line {i}\n" for i in range(500)))
    last = tap.last_lines(50).splitlines()
    assert len(last) == 50 and last[-1] == "line 499"
