"""What boot-failure lines look like, taken from the programs that print them.

Each ``Rule`` is one kind of console line: the reason it reports, a pattern, a severity and the
program (project and source file) that prints it.

- ``fatal``: the boot is lost; a wait fails at once.
- ``stall``: the boot is stuck once the text itself shows it past a bound: a start job's own
  counter, a retry count, or the span between the line stamps of the first and the latest such
  line.  The wall clock is never used, so a replayed log gives the verdict the live one gave.
- ``note``: recorded, never a failure by itself.

A rule that ``explains`` names a cause; one that does not (emergency mode, systemd giving up,
the kernel's panic banner) only says the boot is lost.  When a fatal or stall line ends a boot,
its reason is the earliest explaining line of that boot (a note can explain: an XFS corruption
line before the failed /sysroot mount), and later matches are its consequences.

Rules are tried in order; the first that matches a line decides what the line is.
"""
from __future__ import annotations

import re
from re import Pattern
from typing import NamedTuple

FATAL, STALL, NOTE = "fatal", "stall", "note"

# the reasons a lost boot is reported with (the first nine are the original names)
KERNEL_PANIC = "kernel panic"
OUT_OF_MEMORY = "out of memory"
RAMDISK_FULL = "out of RAM-disk space"
IGNITION = "Ignition failed"
ROOTFS_REFUSED = "live rootfs refused"
NO_BOOT_DEVICE = "no bootable device"
BOOTLOADER = "boot loader failed"
INITQUEUE = "dracut initqueue timeout"
EMERGENCY = "emergency mode"
ROOT_CORRUPT = "root filesystem corrupt"
NETWORK = "network never up"
BOOT_FULL = "boot partition full"
SECURE_BOOT = "secure boot refused"
# notes only
UNIT_FAILED = "unit failed"
KERNEL_WARNING = "kernel warning"
KERNEL_LOCKUP = "kernel lockup"

REASONS = (KERNEL_PANIC, OUT_OF_MEMORY, RAMDISK_FULL, IGNITION, ROOTFS_REFUSED, NO_BOOT_DEVICE, BOOTLOADER,
           INITQUEUE, EMERGENCY, ROOT_CORRUPT, NETWORK, BOOT_FULL, SECURE_BOOT)


class Stall(NamedTuple):
    """How a stall rule measures how long the boot has been stuck, and its bound.

    ``measure``: ``elapsed`` (the match's ``elapsed`` group, a systemd time span such as
    ``1min 30s``), ``count`` (the match's ``n`` group, e.g. a retry number), ``occurrences``
    (how many lines of this boot matched) or ``span`` (seconds from the first matching line of
    this boot to this one, by their stamps)."""

    measure: str
    bound: float
    unit: str = "s"


class Rule(NamedTuple):
    reason: str
    pattern: Pattern[str]
    severity: str = FATAL
    source: str = ""                 # the program and file that prints the line
    explains: bool = True            # names a cause (False: only says the boot is lost)
    stall: Stall | None = None
    context: tuple[int, int] = (5, 5)   # lines kept before / after the deciding line
    phase: str = "any"               # "initrd": only before switch-root; "root": only after it
    requires: str | None = None      # matches only after an explaining line with this reason (else the later rules try)
    unless: tuple[tuple[str, ...], int] | None = None   # a note if one of these reasons matched within N lines
    peek: bool = False               # also tried on a line still open (a console silent after it)


def _re(pattern: str, flags: int = 0) -> Pattern[str]:
    return re.compile(pattern, flags)


# systemd's unit status lines, in the three forms systemd has printed:
#   console status (src/core/job.c job_done_messages / unit.c unit_status_emit_starting_stopping_reloading):
#     "[FAILED] Failed to start ignition-files.service - Ignition (files)."  (v253+, status-unit-format=combined)
#     "[FAILED] Failed to start Ignition (files)."                           (earlier: the Description only)
#   journal (src/core/unit.c unit_log_failure, service.c service_enter_dead):
#     "ignition-files.service: Failed with result 'exit-code'."
#     "ignition-files.service: Main process exited, code=exited, status=1/FAILURE"
# The console ellipsizes long names ("ignition-fetch-of…ce"), so a rule names the unit or its
# Description, and either may be cut short.
def _failed(units: str, descriptions: str) -> str:
    """A pattern for "this unit failed", by unit name (any systemd form) or by Description."""
    return (rf"(?:Failed to (?:start|mount|activate|run)|Dependency failed for) (?:{units}|{descriptions})"
            rf"|(?:{units})(?:\.service|\.mount)?: (?:Failed with result|Main process exited, code=(?:exited|killed|dumped)"
            rf", status=(?!0/)|Control process exited, code=\w+, status=(?!0/)|Mount process exited, code=\w+"
            rf", status=(?!0\b))")


_IGN_UNITS = r"ignition-(?!ostree-firstboot-uuid)[\w@\\-]*(?:…\w*)?"    # ignition-fetch, -kargs, -disks, -mount, -files …
_IGN_DESCS = r"Ignition \([\w …-]+\)?|Ignition [\w ]*(?:…[\w ]*)?Complete|Ignition (?:OSTree: )?Mount"

RULES: list[Rule] = [
    # ------------------------------------------------------------ Secure Boot: a signature refused
    # the firmware refuses the first-stage loader (its db does not allow it); OVMF's own EFI shell, refused
    # by the same check when nothing else boots, is no user medium's refusal
    Rule(SECURE_BOOT, _re(r"BdsDxe: failed to (?:load|start) Boot[0-9A-Fa-f]{4} \"(?!EFI Internal Shell\")[^\"]*\" "
                          r"from .*: (?:Access Denied|Security Violation)"),
         source="edk2 OvmfPkg/Library/PlatformBmPrintScLib/StatusCodeHandler.c (\"%a: failed to %a %s \\\"%s\\\" "
                "from %s: %r\"; %r of EFI_ACCESS_DENIED / EFI_SECURITY_VIOLATION from SecurityPkg "
                "DxeImageVerificationLib, MdePkg BasePrintLib \"Access Denied\", \"Security Violation\")"),
    # shim refuses the second stage (GRUB): a box that waits for a key, drawn with cursor moves and no
    # newline, so the open line is tried too
    Rule(SECURE_BOOT, _re(r"Verification failed: \(0x[0-9A-Fa-f]+\) (?:Security Violation|Access Denied)"), peek=True,
         source="shim pe.c (handle_image: console_error(L\"Verification failed\", efi_status)), lib/console.c "
                "(console_error: \"%s: (0x%llx) %r\")"),
    # GRUB under shim refuses the kernel: shim's protocol said no
    Rule(SECURE_BOOT, _re(r"error: (?:bad shim signature|\S+ has invalid signature)"),
         source="GRUB grub-core/kern/efi/sb.c (shim_lock_verifier_write: \"bad shim signature\"; Debian 2.06, "
                "upstream); Fedora's linuxefi patch, grub-core/loader/i386/efi/linux.c (\"%s has invalid signature\")"),
    # ------------------------------------------------------------ firmware and boot loaders
    Rule(NO_BOOT_DEVICE, _re(r"No bootable device|No more network devices|PXE-E\w+:|Could not boot image"),
         source="SeaBIOS src/boot.c (\"No bootable device.\"); iPXE src/usr/autoboot.c (\"No more network devices\")"),
    # iPXE: a command that failed (a script without a fallback stops there; at the prompt nothing more comes)
    Rule(BOOTLOADER, _re(r"Error 0x[0-9a-f]{8} \(https?://ipxe\.org/[0-9a-f]{8}\)"),
         source="iPXE src/hci/strerror.c (strerror: \"Error %#08x\" and config/branding.h PRODUCT_ERROR_URI \"(http://ipxe.org/%08x)\")"),
    Rule(BOOTLOADER, _re(r"(?:^|Loading )\S+\.\.\. failed: .+|error: out of memory\.?|error: you need to load the kernel first"),
         source="syslinux com32/elflink/ldlinux (\"<file>... failed: <errno text>\"); GRUB grub-core/kern/mm.c, "
                "grub-core/loader/i386/linux.c"),
    # ------------------------------------------------------------ memory
    Rule(OUT_OF_MEMORY, _re(r"Out of memory: Kill(?:ed)? process|oom-kill:|invoked oom-killer:|"
                            r"Kernel panic - not syncing:.*[Oo]ut of memory|Memory cgroup out of memory: Kill"
                            r"|Out of memory and no killable processes|System is deadlocked on memory"),
         source="linux mm/oom_kill.c (dump_header \"invoked oom-killer:\", __oom_kill_process \"Out of memory: Killed process\", "
                "out_of_memory \"Out of memory and no killable processes...\", panic \"System is deadlocked on memory\")"),
    Rule(OUT_OF_MEMORY, _re(r"^(?:kernel: )?Mem-Info:|page allocation failure: order:"), severity=NOTE, context=(3, 10),
         source="linux mm/show_mem.c (__show_mem \"Mem-Info:\"), mm/page_alloc.c (warn_alloc \"page allocation failure: order:%u\")"),
    Rule(RAMDISK_FULL, _re(r"Ran out of memory when unpacking initrd filesystem"),
         source="fedora-coreos-config 05core 99emergency-shell-setup/emergency-shell.sh (live boot, dd ENOSPC)"),
    Rule(RAMDISK_FULL, _re(r"Initramfs unpacking failed: .*(?:write error|[Nn]o space)|"
                           r"\b(?:cpio|(?:bsd)?tar|unsquashfs|squashfs|rootfs|initramfs|write error|Cannot write)\b.*No space left on device"),
         phase="initrd",   # after switch-root the RAM disk is gone (a full /var or /boot is not it)
         source="linux init/initramfs.c (\"Initramfs unpacking failed: write error\"); strerror(ENOSPC) from cpio/tar"),
    # ------------------------------------------------------------ /boot full (ostree finalize / boot-complete)
    Rule(BOOT_FULL, _re(r"ostree-finalize-staged\.service failed on previous boot:.*No space left on device"),
         source="ostree src/ostree/ot-admin-builtin-boot-complete.c (\"ostree-finalize-staged.service failed on "
                "previous boot: %s\")"),
    Rule(BOOT_FULL, _re(r"(?:ostree|/boot|[Ii]nstalling kernel|[Bb]ootloader|bootcsum|finalize).*No space left on device"
                        r"|No space left on device.*(?:/boot|ostree)"),
         severity=NOTE, source="ostree src/libostree/ostree-sysroot-deploy.c (\"Installing kernel: ...\"), "
                               "src/ostree/ot-admin-builtin-finalize-staged.c; strerror(ENOSPC)"),
    Rule(BOOT_FULL, _re(_failed(r"ostree-finalize-staged|ostree-boot-complete",
                                r"OSTree Finalize Staged Deployment|OSTree Complete Boot")),
         requires=BOOT_FULL, explains=False,
         source="ostree src/boot/ostree-finalize-staged.service, ostree-boot-complete.service (Description=)"),
    Rule(RAMDISK_FULL, _re(r"No space left on device"), phase="initrd",
         source="strerror(ENOSPC): a write into the initramfs' RAM disk"),
    # ------------------------------------------------------------ live rootfs (FCOS coreos-livepxe-rootfs)
    Rule(ROOTFS_REFUSED, _re(r"Found initramfs version .* but rootfs version|No rootfs image found"
                             r"|Couldn't fetch, verify, and unpack image|Couldn't query the server for the rootfs|[Rr]ootfs (?:image )?hash mismatch"
                             r"|Failed to start (?:coreos-livepxe-rootfs|Acquire live PXE rootfs image)"
                             r"|coreos-livepxe-rootfs\.service: (?:Main process exited, code=\w+, status=(?!0/)|Failed with result)"),
         source="fedora-coreos-config overlay.d/05core/usr/lib/dracut/modules.d/35coreos-live/coreos-livepxe-rootfs.sh, "
                "coreos-livepxe-rootfs.service (Description=Acquire Live PXE rootfs Image)"),
    # ------------------------------------------------------------ filesystems (explaining notes)
    Rule(ROOT_CORRUPT, _re(r"XFS \([^)]+\): (?:Metadata corruption detected|Corruption (?:of in-memory data (?:\(0x[0-9a-f]+\) )?)?detected"
                           r"|metadata I/O error|Unmount and run xfs_repair|log mount failed|xfs_do_force_shutdown"
                           r"|Internal error|Filesystem has been shut down|Corruption warning)"),
         severity=NOTE, context=(8, 8), source="linux fs/xfs/xfs_message.c, xfs_error.c, xfs_fsops.c (xfs_do_force_shutdown)"),
    Rule(ROOT_CORRUPT, _re(r"EXT4-fs error \(device|EXT4-fs \([^)]+\): (?:VFS: Can't find ext4 filesystem|bad geometry"
                           r"|ext4_check_descriptors|couldn't mount|Remounting filesystem read-only|corrupted)"),
         severity=NOTE, source="linux fs/ext4/super.c (__ext4_error \"EXT4-fs error (device %s)\", ext4_fill_super)"),
    Rule(ROOT_CORRUPT, _re(r"BTRFS (?:error|critical) \(device|BTRFS: error|parent transid verify failed|corrupt (?:leaf|node)"
                           r"|BTRFS: (?:open_ctree|failed to read)"),
         severity=NOTE, source="linux fs/btrfs/messages.c, disk-io.c (\"parent transid verify failed\"), tree-checker.c"),
    Rule(ROOT_CORRUPT, _re(r"Structure needs cleaning|Bad magic number in super-block|fsck\S*: .*(?:UNEXPECTED INCONSISTENCY|"
                           r"contains a file system with errors)"),
         severity=NOTE, source="strerror(EUCLEAN) from mount(8); e2fsprogs e2fsck/unix.c"),
    # ------------------------------------------------------------ the kernel cannot mount or start its root
    Rule(KERNEL_PANIC, _re(r"VFS: Cannot open root device|VFS: Unable to mount root fs|Please append a correct \"root=\" boot option"
                           r"|Requested init \S+ failed|Failed to execute \S+ \(error -?\d+\)|No working init found"
                           r"|Attempted to kill init!"),
         context=(10, 10), source="linux init/do_mounts.c (mount_root_generic), init/main.c (kernel_init, run_init_process)"),
    # ------------------------------------------------------------ kernel faults
    Rule(KERNEL_LOCKUP, _re(r"(?<![A-Za-z_])BUG: (?:soft lockup|workqueue lockup)|INFO: task \S+ blocked for more than"
                            r"|rcu: INFO: rcu_\w+ (?:self-)?detected stalls?|hard LOCKUP"),
         severity=NOTE, explains=False, source="linux kernel/watchdog.c, kernel/hung_task.c, kernel/rcu/tree_stall.h"),
    Rule(KERNEL_WARNING, _re(r"WARNING: CPU: \d+ PID: \d+ at |WARNING: at \S+"),
         severity=NOTE, explains=False, source="linux kernel/panic.c (__warn)"),
    Rule(KERNEL_PANIC, _re(r"(?<![A-Za-z_])BUG: (?:unable to handle|kernel NULL pointer dereference|Bad page|KASAN|"
                           r"scheduling while atomic|sleeping function called)|(?<![A-Za-z_])Oops: |kernel BUG at \S+"
                           r"|general protection fault|: [0-9a-f]{4} \[#\d+\]|Unable to handle kernel (?:NULL pointer|paging request)"),
         context=(3, 25), source="linux arch/x86/mm/fault.c (page_fault_oops), arch/x86/kernel/dumpstack.c (__die_header), "
                                 "arch/x86/kernel/traps.c (\"general protection fault\"), lib/bug.c (\"kernel BUG at\")"),
    Rule(KERNEL_PANIC, _re(r"^(?:kernel: )?\s*(?:RIP: 00[0-9a-f]{2}:|pc : \S+\+0x)"), unless=((KERNEL_WARNING, KERNEL_LOCKUP), 60),
         explains=False,   # a dump only says the kernel died; under a WARNING or lockup header it is a plain note
         context=(3, 25), source="linux arch/x86/kernel/dumpstack.c (show_ip \"RIP: %04x:%pS\"), arch/arm64/kernel/process.c"),
    Rule(KERNEL_PANIC, _re(r"Kernel panic - not syncing"), explains=False, peek=True, context=(10, 3),
         source="linux kernel/panic.c (panic: \"Kernel panic - not syncing: %s\")"),
    # ------------------------------------------------------------ Ignition
    # a fetch that failed on the network is retried (tried before the Ignition rules: old Ignition
    # logged each failed try as an op, "[failed]   fetching config from ...")
    Rule(NETWORK, _re(r"ignition\[\d+\]: (?:.*: )?(?:GET error: |\[failed\]\s+(?:GET|fetching config from) ).*(?:network is unreachable|no route to host|no such host|"
                      r"i/o timeout|connection refused|server misbehaving|dial tcp)"),
         severity=STALL, stall=Stall("occurrences", 12, "failed attempts"), context=(6, 2),
         source="coreos/ignition internal/resource/http.go (\"%s error: %v\" per failed attempt; Go net's dial errors); "
                "Ignition v0.x logged each GET as an op, internal/log/log.go (\"[failed]   %s: %v\")"),
    Rule(IGNITION, _re(r"Ignition has failed|(?i:\bignition failed\b)|ignition\[\d+\]: CRITICAL"),
         context=(10, 5), source="coreos/ignition internal/main.go (\"Ignition failed: %v\"; \"CRITICAL : \" with --log-to-stdout); "
                                 "fedora-coreos-config overlay.d/05core/usr/lib/dracut/modules.d/99emergency-shell-setup/"
                                 "emergency-shell.sh (\"Ignition has failed. Please ensure your config is valid.\")"),
    Rule(IGNITION, _re(r"ignition\[\d+\]: (?:\w+: )?(?:failed to (?!fetch config: resource requires networking)"
                       r"(?:fetch|acquire|parse|merge|create|run|write|apply|determine|read|validate|generate)"
                       r"|config (?:is not valid|validation failed)|unable to fetch resource in time|.*\[failed\](?!\s+GET))"
                       r"|^(?:ignition\[\d+\]: )?(?:fetch-offline|fetch|kargs|disks|mount|files|umount) failed\s*$"),
         context=(10, 5), source="coreos/ignition internal/exec/engine.go (\"failed to acquire config: %v\", \"%s failed\" on "
                                 "stderr), internal/log/log.go (\"[failed]   %s: %v\"), internal/resource/http.go "
                                 "(\"unable to fetch resource in time\"); \"failed to fetch config: resource requires "
                                 "networking\" is the normal hand-over to ignition-fetch"),
    Rule(IGNITION, _re(_failed(_IGN_UNITS, _IGN_DESCS), re.I), context=(10, 5),
         source="coreos/ignition dracut/30ignition/ignition-*.service (Description=Ignition (fetch), (disks), (files) ...)"),
    # ------------------------------------------------------------ the network
    Rule(NETWORK, _re(_failed(r"systemd-networkd(?!-wait)|NetworkManager(?!-wait)|nm-initrd",
                              r"Network Configuration|Network Manager(?! Wait)|NetworkManager \(initrd\)")
                      + r"|failed unit \(listed\): (?:systemd-networkd|NetworkManager|nm-initrd)\.service"),
         source="systemd units/systemd-networkd.service.in (Description=Network Configuration); NetworkManager "
                "data/NetworkManager.service.in (Description=Network Manager); FCOS motd failed-units list "
                "(console-login-helper-messages)"),
    # a progress line: it explains nothing until its count passes the bound (attempt #1 is every fetch's)
    Rule(NETWORK, _re(r"ignition\[\d+\]: (?:.*: )?GET .*: attempt #(?P<n>\d+)"), severity=STALL,
         stall=Stall("count", 12, "attempts"), context=(6, 2), explains=False,
         source="coreos/ignition internal/resource/http.go (\"GET %s: attempt #%d\"; the wait doubles from 200 ms, "
                "capped at 5 s, so attempt 12 is about 36 s of retries)"),
    Rule(NETWORK, _re(r"Retrying in 5s\.\.\."), severity=STALL, stall=Stall("occurrences", 12, "retries"), context=(6, 2),
         source="fedora-coreos-config overlay.d/05core/usr/lib/dracut/modules.d/35coreos-live/coreos-livepxe-rootfs.sh "
                "(\"Couldn't establish connectivity with the server specified by:\" ... \"Retrying in 5s...\", for ever)"),
    Rule(NETWORK, _re(r"dhcp4? \(\S+\): (?:request timed out|.*state changed .*-> (?:fail|timeout))|"
                      r"Activation: failed for connection|[Cc]ould not acquire (?:IPv4 )?(?:lease|DHCP)|"
                      r"DHCP(?:v4)?(?: client)?: (?:.*)?[Tt]ime(?:d)? ?out|curl: \((?:6|7|28)\) .*(?:[Nn]etwork is unreachable|"
                      r"Could not resolve|Failed to connect|timed out)"),
         severity=STALL, stall=Stall("span", 60), context=(6, 2),
         source="NetworkManager src/core/dhcp/nm-dhcp-client.c (\"request timed out\"), src/core/devices/nm-device.c "
                "(\"Activation: failed for connection\"); curl's exit messages (6 resolve, 7 connect, 28 timeout)"),
    # ------------------------------------------------------------ a root device that never shows up
    Rule(INITQUEUE, _re(r"dracut-initqueue.*timeout|[Cc]ould not boot\.|timed out while waiting for udev queue to empty"
                        r"|Warning: \"?/dev/\S+\"? does not exist|udevadm settle - timeout|[Tt]imed out (?:while )?(?:for )?waiting (?:for )?"
                        r"the udev queue (?:to |being )?empty"),
         context=(10, 3), source="dracut modules.d/77initqueue/dracut-initqueue.sh (\"dracut-initqueue: timeout, "
                                 "still waiting for following initqueue hooks:\", \"starting timeout scripts\"), "
                                 "modules.d/80base/dracut-dev-lib.sh wait_for_dev (\"Warning: \\\"%s\\\" does not exist\"); "
                                 "systemd src/udev/udevadm-settle.c"),
    Rule(INITQUEUE, _re(r"Timed out waiting for device .*(?:disk|[Ll]abel|[Uu]uid|[Pp]artlabel|sysroot|\broot\b|ROOT|USR-|"
                        r"dev-[svx]d[a-z]|/dev/[svx]d[a-z]|nvme|mapper|dev-md|/dev/md)"),
         source="systemd src/core/device.c (job_done_messages for JOB_TIMEOUT: \"Timed out waiting for device %s.\")"),
    Rule(INITQUEUE, _re(r"(?P<dev>(?:dev-disk-by|dev-[svx]d[a-z]|dev-nvme|dev-mapper|dev-md)\S*\.device): Job \S+/start "
                        r"(?:failed with result 'timeout'|timed out)"),
         source="systemd src/core/job.c (job_log_done_status_message: \"Job %s/%s failed with result '%s'.\"; "
                "job_dispatch_timer \"Job %s/%s timed out.\")"),
    Rule(INITQUEUE, _re(r"A start job is running for (?P<what>.*(?:/dev/|(?<![\w-])dev-|\.device|[Dd]isk|sysroot|by-label|"
                        r"by-uuid|by-partlabel).*?) \((?P<elapsed>[\dhminsu. ]+?) / [^)]*\)"
                        r"|Job (?P<unit>(?:dev-|sysroot)\S*|\S*\.device)/start running \((?P<elapsed2>[\dhminsu. ]+?) / [^)]*\)"),
         severity=STALL, stall=Stall("elapsed", 30), context=(3, 1),
         explains=False,   # a progress line: below its bound it explains nothing
         source="systemd src/core/manager.c manager_print_jobs_in_progress (\"A %s job is running for %s (%s / %s)\"; "
                "newest: \"Job %s/%s running (%s / %s)\")"),
    # ------------------------------------------------------------ the emergency shell, and systemd giving up
    Rule(EMERGENCY, _re(r"Cannot open access to console, the root account is locked|"
                        + _failed(r"emergency|dracut-emergency|rescue", r"Emergency Shell|Dracut Emergency Shell|Rescue Shell")),
         source="util-linux login-utils/sulogin.c (\"Cannot open access to console, the root account is locked.\"); "
                "systemd units/emergency.service.in (Description=Emergency Shell)"),
    Rule(EMERGENCY, _re(r"dracut(?:\[\d+\])?: FATAL: |dracut(?:\[\d+\])?: Refusing to continue"),
         source="dracut modules.d/99base/dracut-lib.sh die (\"dracut: FATAL: %s\", \"dracut: Refusing to continue\")"),
    Rule(EMERGENCY, _re(r"Failed to isolate default target|Failed to start default target|Freezing execution|Caught <\w+>, (?:dumped core|cannot fork)"
                        r"|Dependency failed for (?:Initrd Default Target|initrd\.target|Multi-User System|multi-user\.target|"
                        r"default\.target|Graphical Interface|Initrd Root File System|initrd-root-fs\.target|"
                        r"Initrd Root Device|initrd-root-device\.target|Local File Systems|local-fs\.target|"
                        r"Initrd File Systems|initrd-fs\.target|Switch Root|initrd-switch-root\.target)"
                        r"|(?:initrd|multi-user|default|local-fs|initrd-root-fs|initrd-fs)\.target: "
                        r"(?:Job \S+ failed with result 'dependency'|Triggering OnFailure=)"),
         explains=False, source="systemd src/core/main.c (\"Failed to isolate default target\", freeze \"Freezing execution.\"), "
                                "src/core/job.c (\"Dependency failed for %s.\"), src/core/crash-handler.c (\"Caught <%s>\")"),
    Rule(EMERGENCY, _re(r"You are in emergency mode|Entering emergency mode|Reached target (?:emergency\.target|Emergency Mode)"
                        r"|Started (?:emergency\.service|Emergency Shell|dracut-emergency\.service|Dracut Emergency Shell)"
                        r"|Generating \"/run/initramfs/rdsosreport\.txt\"|Press Enter for emergency shell|has failed\. To debug this issue add"),
         explains=False, peek=True, context=(10, 3),
         source="systemd src/sulogin-shell/sulogin-shell.c (\"You are in emergency mode. ...\"); dracut "
                "modules.d/99base/dracut-lib.sh emergency_shell (\"Entering emergency mode. Exit the shell to continue.\", "
                "\"Generating \\\"/run/initramfs/rdsosreport.txt\\\"\"); flatcar/bootengine dracut/99emergency-timeout/timeout.sh "
                "(\"Press Enter for emergency shell or wait ...\")"),
    # ------------------------------------------------------------ units that may fail on a healthy boot
    Rule(UNIT_FAILED, _re(_failed(r"systemd-networkd-wait-online|NetworkManager-wait-online|nm-wait-online-initrd|"
                                  r"update-engine|locksmithd|zincati|afterburn[\w@-]*|[\w@-]*-cleanup|rpm-ostree-countme|"
                                  r"serial-getty@\S+|systemd-timesyncd|chronyd|mcelog|sshd-keygen@\S+",
                                  r"Wait for Network to be Configured|Network Manager Wait Online|Update Engine|"
                                  r"Cluster reboot manager|Zincati Update Agent|Afterburn[\w ()-]*|Serial Getty on \S+")
                          + r"|failed unit \(listed\): \S+"),
         severity=NOTE, explains=False, source="non-critical units: systemd, NetworkManager, Flatcar update_engine, zincati, afterburn"),
    # the units that prepare the root: fatal once a filesystem line explained the failure (else, as any
    # initramfs unit, a note that leads to emergency mode)
    Rule(EMERGENCY, _re(_failed(r"sysroot(?:-usr)?(?=\.mount)|ostree-prepare-root|initrd-setup-root(?!-after)|systemd-fsck-root"
                                r"|remount-sysroot",
                                r"/sysroot(?:/usr)?\.|OSTree Prepare OS/|Root filesystem setup|"
                                r"File System Check on Root Device|Remount Root File System")),
         requires=ROOT_CORRUPT, phase="initrd", context=(8, 3),
         source="systemd src/core/mount.c (\"Failed to mount %s.\"), units/systemd-fsck-root.service.in; ostree "
                "src/boot/ostree-prepare-root.service (Description=OSTree Prepare OS/); flatcar/bootengine "
                "initrd-setup-root.service (Description=Root filesystem setup), remount-sysroot.service"),
    # ... and without one: units whose failure isolates emergency.target (OnFailure=emergency.target)
    Rule(EMERGENCY, _re(_failed(r"sysroot(?:-usr)?(?=\.mount)|ostree-prepare-root|ostree-remount|initrd-setup-root(?!-after)"
                                r"|initrd-parse-etc|initrd-switch-root(?=\.service)",
                                r"/sysroot(?:/usr)?\.|OSTree Prepare OS/|OSTree Remount OS/ Bind Mounts|Root filesystem setup|"
                                r"Mountpoints Configured in the Real Root|Switch Root\.")
                        + r"|(?:sysroot\.mount|ostree-prepare-root\.service|ostree-remount\.service|initrd-setup-root\.service): "
                          r"Triggering OnFailure="),
         explains=False, context=(8, 3),
         source="ostree src/boot/ostree-prepare-root.service, ostree-remount.service (OnFailure=emergency.target); systemd "
                "units/initrd-parse-etc.service.in, initrd-switch-root.service.in; flatcar/bootengine initrd-setup-root.service"),
    Rule(EMERGENCY, _re(_failed(r"[\w@\\-]+(?:…\w*)?\.(?:service|mount|target|socket|device)|[\w@\\-]+…\w*",
                                r"[A-Z/][^.]*")),
         severity=NOTE, phase="initrd", context=(8, 3),
         source="systemd src/core/job.c (\"Failed to start %s.\"): in the initramfs every unit leads to the root"),
    Rule(UNIT_FAILED, _re(_failed(r"[\w@\\-]+(?:…\w*)?\.(?:service|mount|target|socket|device)", r"[A-Z/][^.]*")),
         severity=NOTE, explains=False, source="systemd src/core/job.c (\"Failed to start %s.\")"),
]

# every reason the console can report a lost boot with (fatal and stall rules, and the reasons
# explaining notes lend them); the tap's ``FAIL_PATTERNS`` is this list
FAILURE_RULES = [r for r in RULES if r.reason in REASONS]


class Phase(NamedTuple):
    name: str
    pattern: Pattern[str]


# phase name -> the first line that marks it, in boot order; harness.vm.record.SPANS turns them
# into the boot's split (firmware and loading, kernel to /init, initramfs units, Ignition, ...)
PHASES = [
    Phase("kernel_start", _re(r"Linux version \d")),
    # kernel init/main.c: run_init_process() "Run %s as init process"
    Phase("init_start", _re(r"Run \S+ as init process")),
    # the first Ignition stage unit starting (30ignition: "Ignition (fetch-offline)", "(fetch)", "(setup)"...)
    Phase("ignition_start", _re(r"Starting .*Ignition \(")),
    # the live root: FCOS coreos-livepxe-rootfs.service ("Acquire live PXE rootfs image"), the stand-in's
    # livelab-live-rootfs.service; fetched (rootfs_url) or found in the initrd / on the ISO
    Phase("rootfs_start", _re(r"Starting .*(?:livepxe-rootfs|live PXE rootfs|live-root)")),
    Phase("rootfs_done", _re(r"Finished .*(?:livepxe-rootfs|live PXE rootfs|live-root)")),
    Phase("ignition_done", _re(r"(?:Finished|Reached target).*(?:Ignition \(files\)|ignition-files|Ignition Complete)")),
    Phase("switch_root", _re(r"Switching root|Reached target .*Switch Root|Started initrd-switch-root")),
    # the real root's systemd has loaded its units (it stops the initrd's switch-root job first)
    Phase("real_root", _re(r"Stopped .*(?:initrd-switch-root|Switch Root)")),
    # sshd accepts connections: FCOS sshd.service, Debian's ssh.service, Flatcar's socket-activated sshd
    Phase("sshd_started", _re(r"Started (?:sshd?\.service|.*OpenSSH server daemon|.*Secure Shell server)"
                              r"|Listening on .*sshd\.socket")),
    Phase("multi_user", _re(r"Reached target (?:multi-user\.target|Multi-User System)")),
    # a real getty prompt: "<host> login:" (not "Last login:", not a status line naming login)
    Phase("login_prompt", _re(r"^[\w][\w.-]* login: ?(?:$|\S+ \(automatic login\)|\[\s*\d+\.\d+\])")),
]

NEW_BOOT = PHASES[0].pattern
# a getty prompt still waiting for its user (no newline after it)
LOGIN_PROMPT = re.compile(r"^[\w][\w.-]* login: ?$")
