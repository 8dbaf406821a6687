"""Every triage rule against the lines the upstream programs print (harness.triage.rules).

The lines are the upstream format strings rendered with plausible values, in the forms a serial
console or a journal shows them: systemd's combined status form ("[FAILED] Failed to start
ignition-files.service - Ignition (files).") and its older Description-only form, the journal's
"systemd[1]: x.service: Failed with result 'exit-code'.", kernel-stamped lines and journalctl's
short, short-precise and short-iso prefixes.
"""
import time

import pytest

from harness.console import FAIL_PATTERNS, ConsoleTap
from harness.triage import Triage, triage_text
from harness.triage.rules import (
    BOOT_FULL,
    BOOTLOADER,
    EMERGENCY,
    IGNITION,
    INITQUEUE,
    KERNEL_LOCKUP,
    KERNEL_PANIC,
    KERNEL_WARNING,
    NETWORK,
    NO_BOOT_DEVICE,
    OUT_OF_MEMORY,
    RAMDISK_FULL,
    REASONS,
    ROOT_CORRUPT,
    ROOTFS_REFUSED,
    RULES,
    SECURE_BOOT,
    UNIT_FAILED,
)
from harness.triage.text import parse_line

KERNEL = "[    0.000000] Linux version 6.9.7-200.fc40.x86_64 (mockbuild@fedoraproject.org) (gcc 14.1.1) #1 SMP\n"
INITRD = KERNEL + ("[    1.234567] Run /init as init process\n"
                   "[    1.500000] systemd[1]: Reached target initrd-fs.target.\n")
SWITCHED = INITRD + ("[  OK  ] Finished ignition-files.service - Ignition (files).\n"
                     "[  OK  ] Reached target initrd-switch-root.target - Switch Root.\n"
                     "[    6.100000] systemd[1]: Switching root.\n")
HEALTHY_END = "[  OK  ] Reached target multi-user.target - Multi-User System.\n\nfedora login: "


def lost(text: str, reason: str):
    """The verdict on a log, checked to be lost for ``reason``."""
    v = triage_text(text)
    assert v.failure is not None, v.summary()
    assert v.failure.reason == reason, v.summary()
    assert v.headline == f"lost: {reason}"
    return v


def not_lost(text: str):
    v = triage_text(text)
    assert v.failure is None, v.summary()
    assert not v.headline.startswith("lost"), v.summary()
    return v


def not_failed(text: str):
    """No line of ``text`` ends the boot (a stall below its bound, say), and the boot may go on to a login."""
    t = Triage()
    t.feed(text)
    t.close()
    assert t.failure is None, t.verdict().summary()
    v = not_lost(text + "[  OK  ] Reached target initrd-switch-root.target - Switch Root.\n" + HEALTHY_END)
    assert v.status == "ok"
    return v


def deciding(v) -> str:
    return v.failure.deciding.line.text


def line_no(text: str, needle: str) -> int:
    """The 1-based number of the first non-blank line containing ``needle`` (blank lines are dropped)."""
    lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]
    return next(i for i, ln in enumerate(lines, 1) if needle in ln)


# ====================================================================== Ignition
IGNITION_LINES = {
    # fedora-coreos-config 99emergency-shell-setup/emergency-shell.sh
    "banner": "Ignition has failed. Please ensure your config is valid. Note that only",
    # systemd status, combined (unit - Description) and Description-only forms
    "files-combined": "[FAILED] Failed to start ignition-files.service - Ignition (files).",
    "files-description": "[FAILED] Failed to start Ignition (files).",
    "fetch-offline-combined": "[FAILED] Failed to start ignition-fetch-offline.service - Ignition (fetch-offline).",
    "fetch-description": "[FAILED] Failed to start Ignition (fetch).",
    "kargs-combined": "[FAILED] Failed to start ignition-kargs.service - Ignition (kargs).",
    "disks-description": "[FAILED] Failed to start Ignition (disks).",
    "mount-combined": "[FAILED] Failed to start ignition-mount.service - Ignition (mount).",
    "ellipsized-name": "[FAILED] Failed to start ignition-fetch-of…ce - Ignition (fetch-offline).",
    "ellipsized-name-only": "[FAILED] Failed to start ignition-fetch-of…ce.",
    "ellipsized-description": "[FAILED] Failed to start Ignition (fetch-of…line).",
    "flatcar-quench": "[FAILED] Failed to start Ignition (record completion).",
    # journal (systemd service.c / unit.c)
    "journal-failed-with-result": "[    9.870000] systemd[1]: ignition-files.service: Failed with result 'exit-code'.",
    "journal-main-process": "[    9.860000] systemd[1]: ignition-disks.service: Main process exited, code=exited, "
                            "status=1/FAILURE",
    "journal-failed-to-start": "[    9.880000] systemd[1]: Failed to start ignition-files.service - Ignition (files).",
    # coreos/ignition internal/main.go and internal/exec/engine.go
    "ignition-failed": "[    9.850000] ignition[812]: Ignition failed: failed to create files: error creating "
                       "/sysroot/notwritable.txt: open /sysroot/notwritable.txt: read-only file system",
    "acquire-config": "ignition[812]: failed to acquire config: unable to fetch resource in time",
    "acquire-config-journal": "Oct 24 08:28:04 ignition[812]: failed to acquire config: config is not valid",
    "fetch-timeout": "ignition[812]: failed to fetch config: unable to fetch resource in time",
    "op-failed": 'ignition[812]: files: createFilesystemsFiles: createFiles: op(1): [failed]   writing file '
                 '"/sysroot/etc/foo": open /sysroot/etc/foo: read-only file system',
    "stage-failed-stderr": "files failed",
    "stage-failed-stderr-prefixed": "ignition[812]: disks failed",
    "critical-stdout": "CRITICAL : Ignition failed: failed to create users/groups: failed to create user core",
    # lower-case forms
    "lower-status": "[FAILED] failed to start ignition-files.service - ignition (files).",
    "lower-ignition-failed": "ignition failed: config is not valid",
}


def test_ignition_failure_at_any_feed_split():
    line = "[FAILED] Failed to start ignition-files.service - Ignition (files).\r\n"
    for cut in range(1, len(line)):
        t = Triage()
        t.feed(INITRD)
        t.feed(line[:cut])
        t.feed(line[cut:])
        assert t.failure is not None and t.failure.reason == IGNITION, cut


@pytest.mark.parametrize("line", [
    "ignition[812]: failed to fetch config: resource requires networking",
    "[    3.300000] ignition[812]: failed to fetch config: resource requires networking",
    "Oct 24 08:28:04 ignition[812]: failed to fetch config: resource requires networking",
], ids=["bare", "kernel-stamp", "journal"])
def test_ignition_needs_network_is_normal(line):
    v = not_lost(INITRD + line + "\n[  OK  ] Started ignition-fetch.service - Ignition (fetch).\n")
    assert not any(n.reason == IGNITION for n in v.notes)


def test_ignition_root_cause_with_emergency_consequences():
    text = INITRD + (
        "[    9.850000] ignition[812]: Ignition failed: failed to create files: error creating /sysroot/x\n"
        "[FAILED] Failed to start ignition-files.service - Ignition (files).\n"
        "See 'systemctl status ignition-files.service' for details.\n"
        "[DEPEND] Dependency failed for ignition-complete.target - Ignition Complete.\n"
        "[DEPEND] Dependency failed for initrd.target - Initrd Default Target.\n"
        "[  OK  ] Reached target emergency.target - Emergency Mode.\n"
        "------\n"
        "Ignition has failed. Please ensure your config is valid. Note that only\n"
        "Ignition spec v3.0.0+ configs are accepted.\n"
        "------\n"
        "Displaying logs from failed units: ignition-files.service\n"
        "Entering emergency mode. Exit the shell to continue.\n"
        "Type \"journalctl\" to view system logs.\n")
    v = lost(text, IGNITION)
    assert "Ignition failed: failed to create files" in deciding(v)
    later = [c.line.text for c in v.failure.consequences]
    assert any("Initrd Default Target" in t for t in later), later
    # each rule once: the emergency lines (target reached, "Entering emergency mode") are one rule
    assert any("Emergency Mode" in t or "Entering emergency mode" in t for t in later), later
    assert {c.reason for c in v.failure.consequences} >= {EMERGENCY}
    assert all(c.line.no > v.failure.deciding.line.no for c in v.failure.consequences)


def test_ignition_unit_failure_first_then_emergency():
    text = INITRD + ("[FAILED] Failed to start Ignition (files).\n"
                     "[DEPEND] Dependency failed for Initrd Default Target.\n"
                     "You are in emergency mode. After logging in, type \"journalctl -xb\" to view\n")
    v = lost(text, IGNITION)
    assert "Ignition (files)" in deciding(v)
    assert {c.reason for c in v.failure.consequences} == {EMERGENCY}


# ====================================================================== root filesystem corruption
CORRUPTION = {
    "xfs-metadata-io": '[   10.642843] XFS (vda4): metadata I/O error in "xfs_read_agf+0x77/0xe0 [xfs]" at daddr '
                       "0x387601 len 1 error 74",
    "xfs-metadata-corruption": "[   10.566833] XFS (vda4): Metadata corruption detected at xfs_buf_ioend+0x162/0x570 "
                               "[xfs], xfs_inode block 0x2f4680 xfs_inode_buf_verify",
    "xfs-corruption-detected": "[   10.566900] XFS (vda4): Corruption detected. Unmount and run xfs_repair",
    "xfs-in-memory": "[   10.650680] XFS (vda4): Corruption of in-memory data (0x8) detected at "
                     "xfs_trans_cancel+0x12c/0x150 [xfs] (fs/xfs/xfs_trans.c:1097).  Shutting down filesystem.",
    "xfs-shutdown": "[   10.647388] XFS (vda4): xfs_do_force_shutdown(0x8) called from line 985 of file "
                    "fs/xfs/xfs_mount.c. Return address = 0000000090259f56",
    "xfs-log-mount": "[   10.600000] XFS (vda4): log mount failed",
    "ext4-error": "[    8.100000] EXT4-fs error (device vda9): ext4_lookup:1855: inode #2: comm systemd: "
                  "deleted inode referenced: 12",
    "ext4-no-fs": "[    8.100000] EXT4-fs (vda9): VFS: Can't find ext4 filesystem",
    "ext4-bad-geometry": "[    8.100000] EXT4-fs (vda9): bad geometry: block count 4158971 exceeds size of device "
                         "(2047483 blocks)",
    "btrfs-error": "[    8.100000] BTRFS error (device vda4): parent transid verify failed on 30556160 wanted 12 "
                   "found 9",
    "btrfs-critical": "[    8.100000] BTRFS critical (device vda4): corrupt leaf: root=2 block=30556160 slot=3, "
                      "invalid key objectid",
    "btrfs-open-ctree": "[    8.100000] BTRFS error (device vda4): open_ctree failed",
    "euclean": "[   10.679940] ignition-ostree-mount-sysroot[521]: mount: /sysroot: mount(2) system call failed: "
               "Structure needs cleaning.",
}
ROOT_UNIT_FAILS = {
    "sysroot-description": "[FAILED] Failed to mount /sysroot.",
    "sysroot-combined": "[FAILED] Failed to mount sysroot.mount - /sysroot.",
    "sysroot-journal": "[   10.690000] systemd[1]: sysroot.mount: Mount process exited, code=exited, status=32/n/a",
    "prepare-root-combined": "[FAILED] Failed to start ostree-prepare-root.service - OSTree Prepare OS/.",
    "prepare-root-description": "[FAILED] Failed to start OSTree Prepare OS/.",
    "ignition-ostree-mount": "[FAILED] Failed to start ignition-ostree-mount-firstboot-sysroot.service - "
                             "Ignition OSTree: Mount (firstboot) /sysroot.",
    "ignition-ostree-mount-description": "[FAILED] Failed to start Ignition OSTree: Mount (firstboot) /sysroot.",
    "flatcar-setup-root": "[FAILED] Failed to start Root filesystem setup.",
    "flatcar-setup-root-combined": "[FAILED] Failed to start initrd-setup-root.service - Root filesystem setup.",
}


@pytest.mark.parametrize("unit", ROOT_UNIT_FAILS.values(), ids=ROOT_UNIT_FAILS.keys())
@pytest.mark.parametrize("corrupt", CORRUPTION.values(), ids=CORRUPTION.keys())
def test_root_corruption_then_root_unit_fails(corrupt, unit):
    text = INITRD + corrupt + "\n[   10.652971] XFS (vda4): Please unmount the filesystem\n" + unit + "\n"
    v = lost(text, ROOT_CORRUPT)
    assert v.failure.deciding.line.no == line_no(text, corrupt)


@pytest.mark.parametrize("unit", ROOT_UNIT_FAILS.values(), ids=ROOT_UNIT_FAILS.keys())
def test_root_corruption_then_root_unit_fails_live(unit):
    corrupt = CORRUPTION["xfs-metadata-corruption"]
    tap = ConsoleTap(time.monotonic())
    tap.write(INITRD.replace("\n", "\r\n") + corrupt + "\r\n")
    assert tap.failure is None
    tap.write(unit + "\r\n")
    assert tap.failure is not None and tap.failure[0] == ROOT_CORRUPT
    assert corrupt in tap.failure[1]
    f = tap.triage.failure
    assert f.trigger.line.no == f.deciding.line.no + 1
    assert unit.strip() in tap.evidence()


@pytest.mark.parametrize("unit", [
    "[FAILED] Failed to mount /sysroot.",
    "[FAILED] Failed to start ostree-prepare-root.service - OSTree Prepare OS/.",
    "[FAILED] Failed to start Root filesystem setup.",
], ids=["sysroot", "prepare-root", "flatcar-setup-root"])
def test_root_unit_failing_without_corruption_leads_to_emergency(unit):
    t = Triage()
    t.feed(INITRD + unit + "\n")
    # these units isolate emergency.target when they fail: the boot is lost at once
    assert t.failure is not None and t.failure.reason == EMERGENCY
    assert unit in t.failure.deciding.line.text
    t.feed("[DEPEND] Dependency failed for initrd-root-fs.target - Initrd Root File System.\n")
    assert [c.reason for c in t.failure.consequences] == [EMERGENCY]


def test_a_cause_that_shows_after_a_lost_boots_line_names_the_verdict():
    # FCOS's emergency shell dumps the failed units' logs unit by unit: /sysroot first, its cause after
    text = (INITRD + "Displaying logs from failed units: sysroot.mount coreos-livepxe-rootfs.service\n"
            "Jul 07 18:28:33 systemd[1]: sysroot.mount: Failed with result 'exit-code'.\n"
            "Jul 07 18:28:33 coreos-livepxe-rootfs[798]: No rootfs image found.  Modify your PXE configuration\n")
    t = Triage()
    t.feed(text)
    assert t.failure.reason == EMERGENCY            # what the live console knew at that line
    v = t.verdict()
    assert v.headline == "lost: live rootfs refused"
    assert "No rootfs image found" in v.failure.line
    assert "sysroot.mount" in v.failure.consequences[0].line.text


@pytest.mark.parametrize("corrupt", CORRUPTION.values(), ids=CORRUPTION.keys())
def test_root_corruption_alone_at_the_end(corrupt):
    t = Triage()
    t.feed(INITRD + corrupt + "\n")
    t.close()
    assert t.failure is None            # a note: nothing failed yet ...
    v = t.verdict()
    assert v.headline == f"lost: {ROOT_CORRUPT}"    # ... but the log ends after it
    assert corrupt in deciding(v)


def test_real_xfs_excerpt():
    text = INITRD + (
        '[   10.642843] XFS (vda4): metadata I/O error in "xfs_read_agf+0x77/0xe0 [xfs]" at daddr 0x387601 len 1 '
        "error 74\n"
        "[   10.645555] XFS (vda4): Error -117 recovering leftover CoW allocations.\n"
        "[   10.679940] ignition-ostree-mount-sysroot[521]: mount: /sysroot: mount(2) system call failed: "
        "Structure needs cleaning.\n"
        "[   10.687108] systemd[1]: ignition-ostree-mount-firstboot-sysroot.service: Main process exited, "
        "code=exited, status=32/n/a\n"
        "\x1bM\x1b[K[\x1b[0;1;31mFAILED\x1b[0m] Failed to start \x1b[0;1;39mIgnition O…e: Mount (firstboot) "
        "/sysroot\x1b[0m.[   10.695154] systemd[1]: Failed to start Ignition OSTree: Mount (firstboot) /sysroot.\n")
    v = lost(text, ROOT_CORRUPT)
    assert "metadata I/O error" in deciding(v)


# ====================================================================== the root device never shows up
ROOT_DEVICE = [
    ("vfs-cannot-open", '[    2.100000] VFS: Cannot open root device "LABEL=root" or unknown-block(0,0): error -6',
     KERNEL_PANIC),
    ("vfs-unable-panic", "[    2.200000] Kernel panic - not syncing: VFS: Unable to mount root fs on "
                         "unknown-block(0,0)", KERNEL_PANIC),
    ("timeout-combined", r"[ TIME ] Timed out waiting for device dev-disk-by\x2dlabel-root.device - "
                         "/dev/disk/by-label/root.", INITQUEUE),
    ("timeout-description", "[ TIME ] Timed out waiting for device /dev/disk/by-label/root.", INITQUEUE),
    ("timeout-flatcar", "[ TIME ] Timed out waiting for device /dev/disk/by-label/ROOT.", INITQUEUE),
    ("timeout-journal", r"[   91.500000] systemd[1]: Timed out waiting for device dev-disk-by\x2dlabel-root.device "
                        "- /dev/disk/by-label/root.", INITQUEUE),
    ("job-no-limit", "[  *** ] A start job is running for /dev/disk/by-label/root (31s / no limit)", INITQUEUE),
    ("job-minutes", "[ ***  ] A start job is running for /dev/disk/by-label/root (1min 15s / 1min 30s)", INITQUEUE),
    ("job-n-of-m", "[***   ] (1 of 2) A start job is running for /dev/disk/by-label/root (45s / 1min 30s)",
     INITQUEUE),
    ("job-ellipsized", "[ ***  ] A start job is running for /dev/dis…y-label/root (1min 15s / 1min 30s)", INITQUEUE),
    ("job-combined-older", r"[  *** ] A start job is running for dev-disk-by\x2dlabel-root.device - "
                           "/dev/disk/by-label/root (35s / 1min 30s)", INITQUEUE),
    ("job-newest", r"[  *** ] Job dev-disk-by\x2dlabel-root.device/start running (35s / 1min 30s)", INITQUEUE),
    ("initqueue-still-waiting", "[  123.400000] dracut-initqueue[456]: Warning: dracut-initqueue: timeout, still "
                                "waiting for following initqueue hooks:", INITQUEUE),
    ("initqueue-timeout-scripts", "[  123.500000] dracut-initqueue[456]: Warning: dracut-initqueue: starting timeout "
                                  "scripts", INITQUEUE),
    ("initqueue-old", "dracut-initqueue[456]: Warning: dracut-initqueue timeout - starting timeout scripts",
     INITQUEUE),
    ("udev-queue", "timed out while waiting for udev queue to empty", INITQUEUE),
    ("udevadm-settle", "udevadm[321]: Timed out for waiting the udev queue being empty.", INITQUEUE),
    ("does-not-exist", 'Warning: "/dev/disk/by-label/root" does not exist', INITQUEUE),
    ("does-not-exist-stamped", '[  184.100000] dracut-initqueue[456]: Warning: "/dev/disk/by-label/root" does not '
                               "exist", INITQUEUE),
    ("could-not-boot", "dracut-initqueue[456]: Warning: Could not boot.", INITQUEUE),
]


@pytest.mark.parametrize("line,reason", [r[1:] for r in ROOT_DEVICE], ids=[r[0] for r in ROOT_DEVICE])
def test_root_device_missing(line, reason):
    text = INITRD + "[  OK  ] Reached target basic.target - Basic System.\n" + line + "\n"
    v = lost(text, reason)
    assert v.failure.deciding.line.no == line_no(text, line)


@pytest.mark.parametrize("line", [
    "[  *** ] A start job is running for /dev/disk/by-label/root (29s / no limit)",
    "[  *** ] A start job is running for /dev/disk/by-label/root (5s / 1min 30s)",
    r"[  *** ] Job dev-disk-by\x2dlabel-root.device/start running (12s / 1min 30s)",
    "[ ***  ] A start job is running for /dev/dis…y-label/root (900ms / 1min 30s)",
], ids=["29s", "5s", "newest-12s", "ms"])
def test_start_job_below_bound_is_not_a_failure(line):
    not_failed(INITRD + line + "\n")


def test_one_start_job_line_is_enough():
    t = Triage()
    t.feed(INITRD + "[  *** ] A start job is running for /dev/disk/by-label/root (31s / no limit)\r")
    assert t.failure is not None and t.failure.reason == INITQUEUE
    assert "31 s" in t.failure.trigger.detail


def test_spinner_rewritten_with_bare_cr():
    t = Triage()
    t.feed(INITRD)
    for s in range(20, 34):
        cylon = ["[  *** ]", "[ ***  ]", "[***   ]"][s % 3]
        t.feed(f"\r\x1b[K{cylon} A start job is running for /dev/disk/by-label/root ({s}s / no limit)")
        if s <= 30:
            assert t.failure is None, s
    t.feed("\r")
    assert t.failure is not None and t.failure.reason == INITQUEUE


# ====================================================================== systemd giving up
GIVING_UP = {
    "isolate-status": "[!!!!!!] Failed to isolate default target.",
    "isolate-journal": "[    5.000000] systemd[1]: Failed to isolate default target: Unit default.target not found.",
    "freezing": "[    5.000000] systemd[1]: Freezing execution.",
    "caught-segv": "[    5.000000] systemd[1]: Caught <SEGV>, dumped core as pid 123.",
    "caught-abrt-journal": "Nov 27 12:00:01 host systemd[1]: Caught <ABRT>, dumped core as pid 456.",
    "initrd-target-combined": "[DEPEND] Dependency failed for initrd.target - Initrd Default Target.",
    "initrd-target-description": "[DEPEND] Dependency failed for Initrd Default Target.",
    "initrd-root-fs": "[DEPEND] Dependency failed for initrd-root-fs.target - Initrd Root File System.",
    "multi-user-description": "[DEPEND] Dependency failed for Multi-User System.",
    "multi-user-combined": "[DEPEND] Dependency failed for multi-user.target - Multi-User System.",
    "default-target": "[DEPEND] Dependency failed for default.target - Graphical Interface.",
    "local-fs": "[DEPEND] Dependency failed for Local File Systems.",
    "local-fs-journal": "Mar 25 00:04:28 ad10.prod.com systemd[1]: local-fs.target: Job local-fs.target/start "
                        "failed with result 'dependency'.",
    "on-failure": "systemd[1]: initrd.target: Triggering OnFailure= dependencies.",
}


@pytest.mark.parametrize("agent", [
    "[FAILED] Failed to start zincati.service - Zincati Update Agent.",
    "[FAILED] Failed to start update-engine.service - Update Engine.",
    "[FAILED] Failed to start Update Engine.",
    "[    7.000000] systemd[1]: zincati.service: Main process exited, code=exited, status=1/FAILURE",
], ids=["zincati", "update-engine-combined", "update-engine-description", "zincati-journal"])
def test_agent_failed_first_then_multi_user_dependency(agent):
    text = SWITCHED + agent + "\n[DEPEND] Dependency failed for Multi-User System.\n"
    v = lost(text, EMERGENCY)
    assert "Multi-User System" in deciding(v)


# ====================================================================== the emergency shell
EMERGENCY_LINES = {
    "root-locked": "Cannot open access to console, the root account is locked.",
    "emergency-service-combined": "[FAILED] Failed to start emergency.service - Emergency Shell.",
    "emergency-service-description": "[FAILED] Failed to start Emergency Shell.",
    "dracut-emergency": "[FAILED] Failed to start dracut-emergency.service - Dracut Emergency Shell.",
    "systemd-emergency": 'You are in emergency mode. After logging in, type "journalctl -xb" to view',
    "dracut-entering": "Entering emergency mode. Exit the shell to continue.",
    "flatcar-prompt": "Press Enter for emergency shell or wait 5 minutes for reboot.",
    "flatcar-prompt-later": "Press Enter for emergency shell or wait 4 minutes 45 seconds for reboot.",
    "rdsosreport": 'Generating "/run/initramfs/rdsosreport.txt"',
    "rd-shell-0": 'Boot has failed. To debug this issue add "rd.shell rd.debug" to the kernel command line.',
    "dracut-fatal": "<24>dracut: FATAL: No or empty root= argument",
    "dracut-refusing": "dracut: Refusing to continue",
}


def test_flatcar_prompts_joined_by_cr():
    prompts = ("Press Enter for emergency shell or wait 5 minutes for reboot.                 \r"
               "Press Enter for emergency shell or wait 4 minutes 45 seconds for reboot.      \r")
    tap = ConsoleTap(time.monotonic())
    tap.write(INITRD.replace("\n", "\r\n") + prompts)
    assert tap.failure is not None and tap.failure[0] == EMERGENCY


def test_root_locked_after_emergency_banner():
    text = SWITCHED + (
        'You are in emergency mode. After logging in, type "journalctl -xb" to view system logs, "systemctl '
        'reboot" to reboot, "systemctl default" or "exit" to boot into default mode.\n\n'
        "Cannot open access to console, the root account is locked.\n"
        "See sulogin(8) man page for more details.\n\nPress Enter to continue.\n")
    v = lost(text, EMERGENCY)
    assert "root account is locked" in deciding(v) or "emergency mode" in deciding(v)


# ====================================================================== kernel faults
FAULTS = {
    "null-deref": "[    5.123456] BUG: kernel NULL pointer dereference, address: 0000000000000000",
    "page-fault": "[    5.123456] BUG: unable to handle page fault for address: ffff9559503ff000",
    "paging-request-old": "[    5.123456] BUG: unable to handle kernel paging request at ffffffffc0123456",
    "oops-new": "[    5.123500] Oops: 0002 [#1] PREEMPT SMP NOPTI",
    "oops-old": "[    5.123500] Oops: 0000 [#1] SMP PTI",
    "oops-twice": "[    5.123500] Oops: Oops: 0002 [#1] PREEMPT SMP NOPTI",
    "gpf-new": "[   25.672050] general protection fault, probably for non-canonical address 0x3b656c7469742e65: "
               "0000 [#1] SMP PTI",
    "gpf-old": "[   25.672050] general protection fault: 0000 [#1] SMP",
    "kernel-bug": "[    5.123456] kernel BUG at mm/slub.c:123!",
    "kernel-bug-dmesg-t": "[Tue Oct 11 22:44:47 2022] kernel BUG at net/core/skbuff.c:4218!",
    "invalid-opcode": "[    5.123456] invalid opcode: 0000 [#1] SMP",
    "kmsg-level": "<1>[434752.852411] BUG: unable to handle page fault for address: ffff9559503ff000",
    "rip-alone": "[    5.123600] RIP: 0010:func+0x12/0x34",
    "rip-kernel-journal": "Nov 27 12:00:01 host kernel: RIP: 0010:kmem_cache_alloc+0x7d/0x2c0",
    "after-other-text": "[  OK  ] Started foo.service.[   5.123456] BUG: kernel NULL pointer dereference, "
                        "address: 0000000000000008",
    "panic-banner": "[    5.200000] Kernel panic - not syncing: Fatal exception",
    "attempted-to-kill-init": "[    5.200000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
    "no-working-init": "[    2.200000] Kernel panic - not syncing: No working init found.  Try passing init= option "
                       "to kernel. See Linux Documentation/admin-guide/init.rst for guidance.",
    "failed-to-execute": "[    2.100000] Failed to execute /init (error -2)",
}


def test_kernel_fault_dump_decided_by_its_header():
    text = KERNEL + (
        "[    5.123456] BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
        "[    5.123470] #PF: supervisor read access in kernel mode\n"
        "[    5.123480] #PF: error_code(0x0000) - not-present page\n"
        "[    5.123500] Oops: 0000 [#1] PREEMPT SMP NOPTI\n"
        "[    5.123510] CPU: 0 PID: 1 Comm: systemd Not tainted 6.9.7-200.fc40.x86_64 #1\n"
        "[    5.123520] Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-2.fc40 04/01/2014\n"
        "[    5.123600] RIP: 0010:func+0x12/0x34\n"
        "[    5.123700] Call Trace:\n[    5.123710]  <TASK>\n[    5.123720]  </TASK>\n"
        "[    5.200000] Kernel panic - not syncing: Fatal exception\n")
    v = lost(text, KERNEL_PANIC)
    assert "NULL pointer dereference" in deciding(v)


WARNING_DUMP = (
    "[    3.000000] ------------[ cut here ]------------\n"
    "[    3.000001] WARNING: CPU: 0 PID: 1 at kernel/foo.c:123 func+0x12/0x34\n"
    "[    3.000002] Modules linked in: virtio_net net_failover failover\n"
    "[    3.000003] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.9.7-200.fc40.x86_64 #1\n"
    "[    3.000004] Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-2.fc40 04/01/2014\n"
    "[    3.000005] RIP: 0010:func+0x12/0x34\n"
    "[    3.000006] Code: 48 89 e5 41 55 41 54 53 48 83 ec 08 <0f> 0b 48 83 c4 08 5b 41 5c\n"
    "[    3.000007] RSP: 0018:ffffb2c2c0013d58 EFLAGS: 00010246\n"
    "[    3.000008] Call Trace:\n[    3.000009]  <TASK>\n[    3.000010]  ? __warn+0x81/0x130\n"
    "[    3.000011]  </TASK>\n"
    "[    3.000012] ---[ end trace 0000000000000000 ]---\n")
LOCKUP_DUMP = (
    "[   48.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [kworker/0:1:123]\n"
    "[   48.000001] Modules linked in: virtio_net\n"
    "[   48.000002] CPU: 0 PID: 123 Comm: kworker/0:1 Not tainted 6.9.7-200.fc40.x86_64 #1\n"
    "[   48.000003] RIP: 0010:_raw_spin_lock+0x1a/0x30\n"
    "[   48.000004] Call Trace:\n[   48.000005]  <IRQ>\n[   48.000006]  </IRQ>\n")


@pytest.mark.parametrize("dump,reason", [(WARNING_DUMP, KERNEL_WARNING), (LOCKUP_DUMP, KERNEL_LOCKUP)],
                         ids=["warning", "soft-lockup"])
def test_kernel_warning_and_lockup_are_notes(dump, reason):
    v = not_lost(SWITCHED + dump + HEALTHY_END)
    assert v.status == "ok"
    assert reason in {n.reason for n in v.notes}
    # and a log that ends inside the dump is not lost either
    not_lost(KERNEL + dump)


@pytest.mark.parametrize("line", [
    "[   60.000000] rcu: INFO: rcu_sched self-detected stall on CPU",
    "[  245.000000] INFO: task systemd-udevd:312 blocked for more than 122 seconds.",
    "[   48.000000] watchdog: Watchdog detected hard LOCKUP on cpu 0",
], ids=["rcu-stall", "hung-task", "hard-lockup"])
def test_other_lockups_are_notes(line):
    v = not_lost(KERNEL + line + "\n")
    assert KERNEL_LOCKUP in {n.reason for n in v.notes}


# ====================================================================== the network
NETWORK_LINES = {
    "networkd-combined": "[FAILED] Failed to start systemd-networkd.service - Network Configuration.",
    "networkd-description": "[FAILED] Failed to start Network Configuration.",
    "networkd-journal": "[    4.000000] systemd[1]: systemd-networkd.service: Failed with result 'exit-code'.",
    "nm-combined": "[FAILED] Failed to start NetworkManager.service - Network Manager.",
    "ignition-attempt-12": "[   40.000000] ignition[812]: GET http://10.0.2.2:8000/config.ign: attempt #12",
    "ignition-attempt-40": "Oct 24 08:28:04 ignition[812]: GET http://10.0.2.2:8000/config.ign: attempt #40",
}


def test_failed_units_banner_naming_networkd():
    text = SWITCHED + ("Fedora CoreOS 40.20240701.3.0\n[systemd]\nFailed Units: 1\n  systemd-networkd.service\n"
                       "\nfedora login: ")
    v = lost(text, NETWORK)
    assert "systemd-networkd.service" in deciding(v)


@pytest.mark.parametrize("n", [1, 3, 11])
def test_ignition_attempts_below_bound(n):
    text = INITRD + "".join(f"ignition[812]: GET http://10.0.2.2:8000/config.ign: attempt #{i}\n"
                            "ignition[812]: GET error: Get \"http://10.0.2.2:8000/config.ign\": dial tcp "
                            "10.0.2.2:8000: connect: connection refused\n"
                            for i in range(1, n + 1))
    not_failed(text)


GET_ERRORS = {
    "unreachable": "connect: network is unreachable",
    "refused": "connect: connection refused",
    "no-route": "connect: no route to host",
}


@pytest.mark.parametrize("tail", GET_ERRORS.values(), ids=GET_ERRORS.keys())
def test_twelve_get_errors(tail):
    err = f'ignition[812]: GET error: Get "http://10.0.2.2:8000/config.ign": dial tcp 10.0.2.2:8000: {tail}\n'
    not_failed(INITRD + err * 11)
    v = lost(INITRD + err * 12, NETWORK)
    assert v.failure.trigger.line.no == line_no(INITRD, "initrd-fs") + 12


def test_livepxe_retrying():
    block = ("curl: (7) Failed to connect to 10.0.2.2 port 8000 after 0 ms: Couldn't connect to server\n"
             "Couldn't establish connectivity with the server specified by:\n"
             "coreos.live.rootfs_url=http://10.0.2.2:8000/rootfs.img\n"
             "Retrying in 5s...\n")
    not_failed(INITRD + block * 11)
    lost(INITRD + block * 12, NETWORK)


def _dhcp(stamps, form):
    out = []
    for s in stamps:
        msg = f"NetworkManager[612]: <info>  [17000000{s:02d}.1234] dhcp4 (ens2): request timed out"
        if form == "kernel":
            out.append(f"[{s + 5:12.6f}] {msg}")
        else:
            out.append(f"Nov 27 12:{s // 60:02d}:{s % 60:02d} localhost {msg}")
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("form", ["kernel", "journal"])
def test_dhcp_timeouts_over_a_minute(form):
    lost(INITRD + _dhcp([0, 15, 30, 45, 60], form), NETWORK)


@pytest.mark.parametrize("form", ["kernel", "journal"])
def test_dhcp_timeouts_over_ten_seconds(form):
    not_failed(INITRD + _dhcp([0, 5, 10], form))


# ====================================================================== a full /boot
def test_boot_full_finalize_staged():
    text = SWITCHED + HEALTHY_END.replace("fedora login: ", "") + (
        "Nov 27 12:00:01 host systemd[1]: Stopping ostree-finalize-staged.service - OSTree Finalize Staged "
        "Deployment...\n"
        "Nov 27 12:00:01 host ostree[3521]: Finalizing staged deployment\n"
        "Nov 27 12:00:02 host ostree[3521]: error: Installing kernel: regfile copy: No space left on device\n"
        "Nov 27 12:00:02 host systemd[1]: ostree-finalize-staged.service: Control process exited, code=exited, "
        "status=1/FAILURE\n"
        "Nov 27 12:00:02 host systemd[1]: ostree-finalize-staged.service: Failed with result 'exit-code'.\n")
    v = lost(text, BOOT_FULL)
    assert "No space left on device" in deciding(v)
    assert "Control process exited" in v.failure.trigger.line.text


@pytest.mark.parametrize("line", [
    "ostree[812]: error: ostree-finalize-staged.service failed on previous boot: error: Installing kernel: "
    "regfile copy: No space left on device",
    "[   12.000000] ostree[812]: error: ostree-finalize-staged.service failed on previous boot: Installing kernel: "
    "No space left on device",
], ids=["journal", "kernel-stamp"])
def test_boot_full_next_boot(line):
    text = SWITCHED + line + "\n[FAILED] Failed to start ostree-boot-complete.service - OSTree Complete Boot.\n"
    v = lost(text, BOOT_FULL)
    assert "failed on previous boot" in deciding(v)


def test_boot_complete_after_enospc_description_form():
    text = SWITCHED + ("ostree[812]: error: Installing kernel: regfile copy: No space left on device\n"
                       "[FAILED] Failed to start OSTree Complete Boot.\n")
    lost(text, BOOT_FULL)


def test_finalize_staged_without_enospc_is_not_a_failure():
    text = SWITCHED + HEALTHY_END.replace("fedora login: ", "") + (
        "11:25:39 ostree[3521]: error: Cleaning deployments: Removing ostree/deploy/fedora-coreos/deploy/5470.0: "
        "unlinkat(resolv.conf): Operation not permitted\n"
        "11:25:39 systemd[1]: ostree-finalize-staged.service: Control process exited, code=exited, "
        "status=1/FAILURE\n"
        "11:25:39 systemd[1]: ostree-finalize-staged.service: Failed with result 'exit-code'.\n"
        "[FAILED] Failed to start ostree-boot-complete.service - OSTree Complete Boot.\n")
    not_lost(text)


# ====================================================================== the original reasons
ORIGINAL = [
    ("panic", "[    2.000000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
     KERNEL_PANIC),
    ("panic-fatal-exception", "[    9.000000] Kernel panic - not syncing: Fatal exception in interrupt", KERNEL_PANIC),
    ("oom-killed", "[   12.100000] Out of memory: Killed process 1234 (ignition) total-vm:812345kB, "
                   "anon-rss:512000kB", OUT_OF_MEMORY),
    ("oom-invoked", "[   12.000000] ignition invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), "
                    "order=0, oom_score_adj=0", OUT_OF_MEMORY),
    ("oom-no-killable", "[   12.200000] Out of memory and no killable processes...", OUT_OF_MEMORY),
    ("oom-deadlocked", "[   12.200001] Kernel panic - not syncing: System is deadlocked on memory", OUT_OF_MEMORY),
    ("oom-panic-on-oom", "[   12.200001] Kernel panic - not syncing: Out of memory: compulsory panic_on_oom is "
                         "enabled", OUT_OF_MEMORY),
    ("cpio", "cpio: write error: No space left on device", RAMDISK_FULL),
    ("initramfs-unpack", "[    1.100000] Initramfs unpacking failed: write error", RAMDISK_FULL),
    ("fcos-live-ram", "Ran out of memory when unpacking initrd filesystem.  Ensure your system has", RAMDISK_FULL),
    ("initrd-enospc", "[    3.000000] coreos-livepxe-rootfs[700]: bsdtar: Write failed: No space left on device",
     RAMDISK_FULL),
    ("rootfs-version", "Found initramfs version 40.20240701.3.0 but rootfs version 40.20240616.3.0.",
     ROOTFS_REFUSED),
    ("rootfs-missing", "No rootfs image found.  Modify your PXE configuration to add the rootfs", ROOTFS_REFUSED),
    ("rootfs-fetch", "Couldn't fetch, verify, and unpack image specified by:", ROOTFS_REFUSED),
    ("rootfs-unit", "[FAILED] Failed to start coreos-livepxe-rootfs.service - Acquire Live PXE rootfs Image.",
     ROOTFS_REFUSED),
    ("seabios", "No bootable device.", NO_BOOT_DEVICE),
    ("ipxe", "No more network devices", NO_BOOT_DEVICE),
    ("syslinux", "Loading /images/pxeboot/vmlinuz... failed: No such file or directory", BOOTLOADER),
    ("grub-oom", "error: out of memory.", BOOTLOADER),
    ("grub-no-kernel", "error: you need to load the kernel first.", BOOTLOADER),
    ("emergency-systemd", 'You are in emergency mode. After logging in, type "journalctl -xb" to view', EMERGENCY),
    ("emergency-dracut", "Entering emergency mode. Exit the shell to continue.", EMERGENCY),
    ("emergency-flatcar", "Press Enter for emergency shell or wait 5 minutes for reboot.", EMERGENCY),
]


@pytest.mark.parametrize("line,reason", [r[1:] for r in ORIGINAL], ids=[r[0] for r in ORIGINAL])
def test_original_reasons(line, reason):
    lost(INITRD + line + "\n", reason)


@pytest.mark.parametrize("line", [
    "systemd[1]: Failed to start rpm-ostreed-automatic.service: No space left on device",
    "containerd[900]: failed to extract layer: write /var/lib/containerd/x.tar: No space left on device",
    "ostree[3521]: error: Installing kernel: copying /boot/ostree/fedora-coreos-1/initramfs-6.9.img: "
    "No space left on device",
], ids=["start-word", "tar-file", "initramfs-path-on-boot"])
def test_enospc_after_switch_root_is_not_the_ram_disk(line):
    v = triage_text(SWITCHED + line + "\n" + HEALTHY_END)
    assert v.failure is None or v.failure.reason != RAMDISK_FULL, v.summary()


# ====================================================================== healthy boots
HEALTHY = {
    "wait-online-networkd": "[FAILED] Failed to start systemd-networkd-wait-online.service - Wait for Network to be "
                            "Configured.",
    "wait-online-networkd-description": "[FAILED] Failed to start Wait for Network to be Configured.",
    "wait-online-nm": "[FAILED] Failed to start NetworkManager-wait-online.service - Network Manager Wait Online.",
    "wait-online-nm-journal": "systemd[1]: NetworkManager-wait-online.service: Failed with result 'exit-code'.",
    "update-engine": "[FAILED] Failed to start update-engine.service - Update Engine.",
    "locksmithd": "[FAILED] Failed to start locksmithd.service - Cluster reboot manager.",
    "zincati": "[FAILED] Failed to start zincati.service - Zincati Update Agent.",
    "zincati-journal": "systemd[1]: zincati.service: Main process exited, code=exited, status=1/FAILURE",
    "afterburn-sshkeys": "[FAILED] Failed to start afterburn-sshkeys@core.service - Afterburn (SSH Keys).",
    "tmpfiles-clean": "[FAILED] Failed to start systemd-tmpfiles-clean.service - Cleanup of Temporary Directories.",
    "motd-var-srv": "Failed Units: 1\n  var-srv.mount",
    "motd-two": "Failed Units: 2\n    zincati.service\n    afterburn-sshkeys@core.service",
    "last-login": "Last login: Thu Apr 21 17:54:24 on tty1",
    "last-login-ssh": "Last login: Thu Apr 21 17:54:24 2022 from 10.0.2.2",
    "systemctl-status": ("● emergency.service - Emergency Shell\n"
                         "     Loaded: loaded (/usr/lib/systemd/system/emergency.service; static)\n"
                         "     Active: inactive (dead)\n"
                         "       Docs: man:sulogin(8)"),
    "reached-target": "[  OK  ] Reached target network-online.target - Network is Online.",
    "fw-cfg": "ignition[812]: QEMU firmware config was not found. Ignoring...",
    "ignition-passed": "ignition[812]: files passed",
    "ignition-finished": "ignition[812]: Ignition finished successfully",
    "ostree-info": "ostree[3521]: Insufficient space left in bootfs; updating bootloader in two steps",
    "condition-skipped": "systemd[1]: Condition check resulted in Ignition (fetch) being skipped.",
    "serial-getty": "systemd[1]: serial-getty@ttyS0.service: Failed with result 'exit-code'.",
    "kernel-io-error-on-data-disk": "[   30.000000] Buffer I/O error on dev vdb, logical block 0, async page read",
}
INITRD_HEALTHY = {
    "initqueue-warning": "[    2.000000] dracut-initqueue[456]: Warning: Multiple ip= arguments: assuming "
                         "rd.neednet=1",
    "needs-network": "ignition[812]: failed to fetch config: resource requires networking",
    "fw-cfg": "ignition[812]: QEMU firmware config was not found. Ignoring...",
    "reached-target": "[  OK  ] Reached target initrd-root-device.target - Initrd Root Device.",
    "expecting-device": r"         Expecting device dev-disk-by\x2dlabel-root.device - /dev/disk/by-label/root...",
    "found-device": r"[  OK  ] Found device dev-disk-by\x2dlabel-root.device - /dev/disk/by-label/root.",
}


@pytest.mark.parametrize("line", HEALTHY.values(), ids=HEALTHY.keys())
def test_healthy_lines_after_switch_root(line):
    v = not_lost(SWITCHED + line + "\n" + HEALTHY_END)
    assert v.status == "ok"
    not_lost(SWITCHED + line + "\n")          # nor when the log ends there


@pytest.mark.parametrize("line", INITRD_HEALTHY.values(), ids=INITRD_HEALTHY.keys())
def test_healthy_lines_in_the_initrd(line):
    v = not_lost(INITRD + line + "\n" + SWITCHED[len(INITRD):] + HEALTHY_END)
    assert v.status == "ok"
    not_lost(INITRD + line + "\n")


def test_get_not_found_then_success():
    not_failed(INITRD + "ignition[812]: GET http://10.0.2.2:8000/config.ign: attempt #1\n"
                        "ignition[812]: GET result: Not Found\n"
                        "ignition[812]: GET http://10.0.2.2:8000/config.ign: attempt #2\n"
                        "ignition[812]: GET result: OK\n"
                        "ignition[812]: fetched user config from \"qemu\"\n")


# progress lines (a start job's counter, a fetch attempt) below their bound explain nothing: a log
# that ends after them is not lost
@pytest.mark.parametrize("text", [
    "[  *** ] A start job is running for /dev/disk/by-label/root (5s / 1min 30s)\n",
    r"[  *** ] Job dev-disk-by\x2dlabel-root.device/start running (12s / 1min 30s)" "\n",
    "ignition[812]: GET http://10.0.2.2:8000/config.ign: attempt #1\nignition[812]: GET result: Not Found\n",
], ids=["start-job-5s", "newest-12s", "get-attempt-1"])
def test_progress_below_bound_at_the_end_of_a_log(text):
    v = not_lost(INITRD + text)
    assert v.headline.startswith("no failure found")


# an error line below its stall bound still explains: a log that ends after it is lost for it
def test_old_ignition_failed_get_at_the_end_of_a_log():
    line = ('> Aug 03 17:47:54 localhost ignition[242]: op(1): op(2): [failed]   GET '
            '"http://169.254.169.254/2009-04-04/user-data": Get http://169.254.169.254/2009-04-04/user-data: '
            "dial tcp 169.254.169.254:80: connect: network is unreachable\n")
    t = Triage()
    t.feed(INITRD + line)
    t.close()
    assert t.failure is None
    # one failed attempt below the bound explains nothing: the log just ends
    assert t.verdict().headline == "no failure found; last phase init_start"
    lost(INITRD + line * 12, NETWORK)


def test_healthy_boot_with_noise_is_ok():
    text = SWITCHED + "\n".join(HEALTHY.values()) + "\n" + HEALTHY_END
    v = not_lost(text)
    assert v.headline == "ok"
    assert UNIT_FAILED in {n.reason for n in v.notes}


# ====================================================================== the login phase
@pytest.mark.parametrize("tail", [
    "cosa-devsh login: ",
    "fedora login: core (automatic login)\n",
    "localhost login: ",
], ids=["open-prompt", "autologin", "localhost"])
def test_login_phase_from_a_getty_prompt(tail):
    v = not_lost(SWITCHED + "\n" + tail)
    assert "login_prompt" in v.phases
    assert v.headline == "ok"


def test_login_prompt_on_the_live_console():
    tap = ConsoleTap(time.monotonic())
    tap.write(SWITCHED.replace("\n", "\r\n") + "\r\nFedora CoreOS 40\r\n\r\ncosa-devsh login: ")
    assert "login_prompt" in tap.phases
    assert tap.failure is None


@pytest.mark.parametrize("line", [
    "Last login: Thu Apr 21 17:54:24 on tty1",
    "[  OK  ] Started systemd-logind.service - User Login Management.",
    "[  OK  ] Started getty@tty1.service - Getty on tty1.",
], ids=["last-login", "logind", "getty-started"])
def test_not_a_login_prompt(line):
    v = triage_text(SWITCHED + line + "\n")
    assert "login_prompt" not in v.phases
    assert v.headline.startswith("no failure found; last phase")


# ====================================================================== input forms
FORMS = {
    "serial-ansi-crlf": "\x1b[0;1;31mFAILED\x1b[0m] Failed to start \x1b[0;1;39mignition-files.service\x1b[0m - "
                        "Ignition (files).\r\n",
    "lost-esc": "[0;1;31mFAILED[0m] Failed to start [0;1;39mignition-files.service[0m - Ignition (files).\r\n",
    "lost-esc-description": "[[0;1;31mFAILED[0m] Failed to start [0;1;39mIgnition (files)[0m.\r\n",
    "journal-short": "Nov 27 12:00:01 localhost systemd[1]: ignition-files.service: Failed with result 'exit-code'.\n",
    "journal-short-no-host": "Nov 27 12:00:01 systemd[1]: ignition-files.service: Failed with result 'exit-code'.\n",
    "journal-short-precise": "Nov 27 12:00:01.123456 localhost systemd[1]: ignition-files.service: Failed with "
                             "result 'exit-code'.\n",
    "journal-short-iso": "2024-11-27T12:00:01+0000 localhost systemd[1]: ignition-files.service: Failed with result "
                         "'exit-code'.\n",
    "journal-short-iso-precise": "2024-11-27T12:00:01.123456+00:00 localhost ignition[812]: Ignition failed: "
                                 "config is not valid\n",
    "kernel-stamp": "[   12.345678] systemd[1]: Failed to start ignition-files.service - Ignition (files).\n",
    "kmsg-level": "<4>[  12.3] ignition[812]: Ignition failed: config is not valid\n",
    "dmesg-t": "[Tue Oct 11 22:44:47 2022] ignition[812]: Ignition failed: config is not valid\n",
    "quoted-paste": "> Aug 03 17:47:54 localhost ignition[242]: failed to acquire config: config is not valid\n",
    "journal-ansi-colour": "Oct 24 08:28:04 ignition[812]: \x1b[0;1;31mIgnition failed: config is not valid"
                           "\x1b[0m\n",
}


@pytest.mark.parametrize("data", FORMS.values(), ids=FORMS.keys())
def test_input_forms(data):
    v = lost(INITRD + data, IGNITION)
    assert "ignition" in v.failure.line.lower()


@pytest.mark.parametrize("data", FORMS.values(), ids=FORMS.keys())
def test_input_forms_on_the_console_tap(data):
    tap = ConsoleTap(time.monotonic())
    tap.write(INITRD.replace("\n", "\r\n"))
    tap.write(data)
    assert tap.failure is not None and tap.failure[0] == IGNITION


@pytest.mark.parametrize("line,reason", [
    ("[FAILED] Failed to start ignition-files.service - Ignition (files).\r\n", IGNITION),
    ("[    5.123456] BUG: kernel NULL pointer dereference, address: 0000000000000000\r\n", KERNEL_PANIC),
    ("[ TIME ] Timed out waiting for device /dev/disk/by-label/root.\r\n", INITQUEUE),
    ("[  *** ] A start job is running for /dev/disk/by-label/root (1min 15s / 1min 30s)\r", INITQUEUE),
    ("[FAILED] Failed to start systemd-networkd.service - Network Configuration.\r\n", NETWORK),
], ids=["ignition", "null-deref", "device-timeout", "start-job", "networkd"])
def test_fatal_line_fed_one_character_at_a_time(line, reason):
    tap = ConsoleTap(time.monotonic())
    tap.write(INITRD.replace("\n", "\r\n"))
    body = line.rstrip("\r\n")
    for ch in body:
        tap.write(ch)
        assert tap.failure is None, repr(ch)
    tap.write(line[len(body):])
    assert tap.failure is not None and tap.failure[0] == reason


def test_ansi_status_word_split_across_chunks():
    chunks = ["\x1b[0;1;3", "1mFAI", "LED\x1b[0m] Failed to st", "art \x1b[0;1;39mignition-fi",
              "les.service\x1b[0m - Ignition (files).\r", "\n"]
    tap = ConsoleTap(time.monotonic())
    tap.write(INITRD.replace("\n", "\r\n"))
    for c in chunks:
        tap.write(c)
    assert tap.failure is not None and tap.failure[0] == IGNITION


@pytest.mark.parametrize("line", [
    "Entering emergency mode. Exit the shell to continue.",
    "You are in emergency mode. After logging in, type \"journalctl -xb\" to view",
    "Press Enter for emergency shell or wait 5 minutes for reboot.      ",
    "[   12.300000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
], ids=["dracut", "systemd", "flatcar", "panic"])
def test_console_silent_after_a_fatal_line_without_newline(line):
    tap = ConsoleTap(time.monotonic())
    tap.write(INITRD.replace("\n", "\r\n") + line)
    assert tap.failure is not None
    assert tap.failure[0] in (EMERGENCY, KERNEL_PANIC)
    assert line.strip()[:20] in tap.failure[1]


def test_silent_emergency_after_ignition_keeps_the_root_cause():
    tap = ConsoleTap(time.monotonic())
    tap.write(INITRD.replace("\n", "\r\n") + "ignition[812]: failed to acquire config: config is not valid\r\n")
    assert tap.failure is not None and tap.failure[0] == IGNITION
    tap.write("Entering emergency mode. Exit the shell to continue.")
    assert tap.failure[0] == IGNITION


def test_emergency_prompt_then_more_text_is_counted_once():
    t = Triage()
    t.feed(INITRD + "Entering emergency mode. Exit the shell to continue.")
    assert t.failure is not None and t.failure.reason == EMERGENCY
    no = t.failure.deciding.line.no
    t.feed("\nType \"journalctl\" to view system logs.\n")
    t.close()
    assert t.failure.deciding.line.no == no
    assert t.lines[-2].no == no and "Entering emergency mode" in t.lines[-2].text


# ====================================================================== Secure Boot refusals
# the firmware's, shim's and GRUB's own lines, as OVMF (Debian 2022.11, OVMF_CODE_4M.secboot.fd with the
# ms variables), shim 16.1 and GRUB 2.06 printed them on a serial console here
OVMF_START = ('BdsDxe: loading Boot0001 "UEFI QEMU DVD-ROM QM00011 " from PciRoot(0x0)/Pci(0x1F,0x2)/'
              'Sata(0x5,0xFFFF,0x0)\r\n')
GRUB_REFUSAL = ("\x1b[0m\x1b[30m\x1b[47mWelcome to GRUB!\r\n\r\x1b[0m\x1b[37m\x1b[40m"
                "  Booting `Fedora CoreOS (Live)'\r\n\r\nerror: bad shim signature.\r\n"
                "error: you need to load the kernel first.\r\n\r\n"
                "Press any key to continue...\r\n")
# shim's console_error box: cursor moves, box-drawing bytes (code page 437) and no newline, waiting for a key
SHIM_BOX = ("\x1b[01;01H\ufffd\x1b[01;01H\ufffd" + "\ufffd" * 78 + "\ufffd\x1b[02;01H\ufffd" + " " * 36 + "ERROR"
            + " " * 37 + "\ufffd\x1b[03;01H\ufffd" + " " * 78 + "\ufffd\x1b[04;01H\ufffd" + " " * 16
            + "Verification failed: (0x1A) Security Violation" + " " * 16 + "\ufffd\x1b[05;01H\ufffd" + " " * 78)


@pytest.mark.parametrize("line", [
    'BdsDxe: failed to load Boot0001 "UEFI Non-Block Boot Device" from PciRoot(0x0)/Pci(0x1,0x0): Access Denied',
    'BdsDxe: failed to start Boot0003 "UEFI QEMU DVD-ROM QM00005 " from PciRoot(0x0)/Pci(0x1F,0x2)/'
    'Sata(0x2,0xFFFF,0x0): Security Violation',
    "error: bad shim signature.",
    "error: /images/pxeboot/vmlinuz has invalid signature.",
    "Verification failed: (0x1A) Security Violation",
], ids=["ovmf-denied", "ovmf-violation", "grub-shim", "grub-linuxefi", "shim"])
def test_secure_boot_refusals(line):
    v = lost(OVMF_START.replace("\r", "") + line + "\n", SECURE_BOOT)
    assert deciding(v) == line


def test_grub_refusal_is_the_cause_and_its_kernel_error_a_consequence():
    v = lost(OVMF_START + GRUB_REFUSAL, SECURE_BOOT)
    assert deciding(v) == "error: bad shim signature."
    assert any("you need to load the kernel first" in c.line.text for c in v.failure.consequences), v.summary()


def test_firmware_refusing_its_own_shell_is_not_a_secure_boot_refusal():
    """With nothing bootable, Secure Boot OVMF also refuses its built-in (unsigned) shell: no medium of
    the user's was refused."""
    text = ('BdsDxe: failed to start Boot0002 "EFI Internal Shell" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)/'
            'FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1): Security Violation\nBdsDxe: No bootable option or device '
            'was found.\n')
    v = triage_text(text)
    assert v.failure is None or v.failure.reason != SECURE_BOOT, v.summary()


def test_shims_box_is_caught_while_the_console_waits_for_a_key():
    tap = ConsoleTap(time.monotonic())
    tap.write(OVMF_START + 'BdsDxe: starting Boot0001 "UEFI QEMU DVD-ROM QM00011 " from PciRoot(0x0)\r\n' + SHIM_BOX)
    assert tap.failure is not None and tap.failure[0] == SECURE_BOOT
    assert "Verification failed: (0x1A) Security Violation" in tap.failure[1]


# ====================================================================== the tap's pattern list
def test_fail_patterns_are_tuples_covering_every_reason():
    seen = set()
    for entry in FAIL_PATTERNS:
        reason, pattern, *_ = entry
        assert isinstance(reason, str)
        assert hasattr(pattern, "search")
        seen.add(reason)
    assert set(REASONS) <= seen, set(REASONS) - seen


def test_every_rule_cites_its_source():
    from harness.triage.rules import RULES
    for rule in RULES:
        assert rule.source, rule.reason


# one upstream line (with what must come before it) for every rule: no rule goes untested
EVERY_RULE = [
    ("", 'BdsDxe: failed to load Boot0001 "UEFI QEMU DVD-ROM QM00005 " from PciRoot(0x0): Access Denied'),
    ("", "Verification failed: (0x1A) Security Violation"),
    ("", "error: bad shim signature."),
    ("", "No bootable device."),
    ("", "Loading vmlinuz... failed: No such file or directory"),
    ("", "http://10.0.... Error 0x3e11623b (http://ipxe.org/3e11623b)"),
    ("", "[    0.538528] Mem-Info:"),
    ("", "[    3.1] Out of memory: Killed process 1 (systemd) total-vm:1000kB"),
    ("", "Ran out of memory when unpacking initrd filesystem.  Ensure your system has"),
    ("", "[    1.491100] Initramfs unpacking failed: write error"),
    ("", "Nov 27 12:00:00 host ostree[3521]: error: Installing kernel: regfile copy: No space left on device"),
    ("", "error: ostree-finalize-staged.service failed on previous boot: Installing kernel: No space left on device"),
    ("Nov 27 12:00:00 host ostree[3521]: error: Installing kernel: regfile copy: No space left on device\n",
     "Nov 27 12:00:01 host systemd[1]: ostree-finalize-staged.service: Control process exited, code=exited, "
     "status=1/FAILURE"),
    (INITRD, "dd: error writing '/run/x': No space left on device"),
    ("", "Jul 07 18:28:33 coreos-livepxe-rootfs[798]: No rootfs image found.  Modify your PXE configuration"),
    ("", "[   10.566833] XFS (vda4): Metadata corruption detected at xfs_buf_ioend+0x162/0x570 [xfs]"),
    ("", "[   12.1] EXT4-fs error (device vda9): ext4_lookup:1602: inode #67005: comm docker: deleted inode"),
    ("", "[   12.1] BTRFS error (device vda4): parent transid verify failed on 30588928 wanted 12 found 10"),
    ("", "mount: /sysroot: mount(2) system call failed: Structure needs cleaning."),
    ("", "[    2.8] VFS: Cannot open root device \"LABEL=root\" or unknown-block(0,0): error -6"),
    ("", "[   40.1] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [kworker/0:1:123]"),
    ("", "[    5.1] WARNING: CPU: 0 PID: 1 at kernel/foo.c:123 func+0x12/0x34"),
    ("", "[    5.3] BUG: kernel NULL pointer dereference, address: 0000000000000008"),
    ("", "[    5.4] RIP: 0010:__cgroup_bpf_run_filter_skb+0x155/0x1d0"),
    ("", "[    5.5] Kernel panic - not syncing: sysrq triggered crash"),
    ("", "ignition[812]: GET error: Get \"http://10.0.2.2/config.ign\": dial tcp 10.0.2.2:80: connect: "
         "network is unreachable"),
    ("", "Ignition has failed. Please ensure your config is valid. Note that only"),
    ("", "[    3.9] ignition[812]: failed to acquire config: unable to fetch resource in time"),
    ("", "[FAILED] Failed to start ignition-files.service - Ignition (files)."),
    ("", "[FAILED] Failed to start systemd-networkd.service - Network Configuration."),
    ("", "[    3.2] ignition[812]: GET http://10.0.2.2:8000/config.ign: attempt #3"),
    ("", "Retrying in 5s..."),
    ("", "[   30.1] NetworkManager[512]: <info>  [1700000000.1] dhcp4 (ens2): request timed out"),
    ("", "[  121.0] dracut-initqueue[456]: Warning: dracut-initqueue: timeout, still waiting for following "
         "initqueue hooks:"),
    ("", "[ TIME ] Timed out waiting for device dev-disk-by\\x2dlabel-root.device - /dev/disk/by-label/root."),
    ("", "Sep 24 09:51:32 localhost systemd[1]: dev-disk-by\\x2dlabel-boot.device: Job "
         "dev-disk-by\\x2dlabel-boot.device/start failed with result 'timeout'."),
    ("", "[  *** ] A start job is running for /dev/disk/by-label/root (35s / no limit)"),
    ("", "Cannot open access to console, the root account is locked."),
    ("", "<24>dracut: FATAL: No or empty root= argument"),
    ("", "[   10.1] systemd[1]: Failed to isolate default target: Unit foo.target not found."),
    ("", "You are in emergency mode. After logging in, type \"journalctl -xb\" to view"),
    ("", "[FAILED] Failed to start zincati.service - Zincati Update Agent."),
    ("[   10.5] XFS (vda4): Corruption detected. Unmount and run xfs_repair\n",
     "[FAILED] Failed to start ostree-prepare-root.service - OSTree Prepare OS/."),
    ("", "[FAILED] Failed to start ostree-remount.service - OSTree Remount OS/ Bind Mounts."),
    (INITRD, "[FAILED] Failed to start coreos-gpt-setup.service - Generate New UUID For Boot Disk GPT."),
    (SWITCHED, "[FAILED] Failed to start example.service - Example."),
]


def test_every_rule_has_an_upstream_example():
    hit = set()
    for before, line in EVERY_RULE:
        t = Triage()
        t.feed(before)
        found = t._match(parse_line(t.n + 1, line))
        assert found is not None, line
        hit.add(id(found.rule))
    missing = [f"{r.reason}: {r.pattern.pattern[:60]}" for r in RULES if id(r) not in hit]
    assert not missing, missing


# the tables of lines that, alone in the initramfs, lose the boot for their reason: one test for all
LINE_TABLES = [(IGNITION, IGNITION_LINES), (EMERGENCY, GIVING_UP), (EMERGENCY, EMERGENCY_LINES),
               (KERNEL_PANIC, FAULTS), (NETWORK, NETWORK_LINES)]


@pytest.mark.parametrize("reason,line", [pytest.param(reason, line, id=f"{reason}:{key}")
                                         for reason, table in LINE_TABLES for key, line in table.items()])
def test_a_line_alone_loses_the_boot_for_its_reason(reason, line):
    text = INITRD + line + "\n"
    v = lost(text, reason)
    assert v.failure.deciding.line.no == line_no(text, line)
