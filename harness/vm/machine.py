"""One class owns one QEMU VM's life: start, QMP, console, SSH, waits, reboots, power-off.

Modelled on QEMU's ``python/qemu/machine``: ``Machine(spec, run_dir)`` runs the command line
built from a ``VMSpec`` (``spec.py``), starting QEMU paused, connecting QMP (``qemu.qmp``) and
the serial console, then resuming it.  Its verbs read like the NixOS test driver
(``wait_for_ssh``, ``succeed``, ``wait_until_succeeds``, ``wait_for_unit`` ...), every wait goes
through ``poll``, a reboot is proven by ``boot_id`` (as kola does) and an unclean power-off is an
``AbnormalShutdown``.  What a VM leaves behind (``vm.json``, ``timings.json``) is ``record.py``.

Process safety: QEMU gets ``PR_SET_PDEATHSIG`` = SIGKILL (it dies with its test even when pytest
is SIGKILLed), is registered for ``runtime.reap_stale`` and is admitted by memory and CPUs.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import paramiko
from qemu.qmp.legacy import QEMUMonitorProtocol

from .. import poll, runtime
from ..console import Console, ConsoleTap
from ..errors import AbnormalShutdown, BootFailure, LivelabError, required
from ..progress.boot import BootLog
from ..ssh import SSH, SessionKey
from . import record
from .accel import Accel, Timeouts, qemu_binary
from .spec import COMPLETION_PORT, COMPLETION_TOKEN, DISK_ID, UEFI_FIRMWARE, VARS_FILE, VMSpec, build_command

if TYPE_CHECKING:
    from ..boot.methods import BootMedia

log = logging.getLogger(__name__)
QMP_TIMEOUT = 30.0        # seconds any one QMP command may take (they answer in milliseconds)


class VMProcess(Protocol):
    """What a Machine needs of its QEMU: a ``subprocess.Popen``, or the libvirt backend's stand-in."""

    @property
    def pid(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


class QMPChannel(Protocol):
    """QMP as a Machine uses it: ``qemu.qmp``'s QEMUMonitorProtocol, or libvirt's monitor passthrough."""

    def cmd(self, *args: Any, **kwargs: Any) -> object: ...    # cmd(name, **arguments)

    def cmd_raw(self, name: str, args: dict[str, object] | None = None) -> dict[str, Any]: ...

    def close(self) -> None: ...


def _set_pdeathsig():
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setpgid(0, 0)               # own process group: a Ctrl-C to pytest reaches us through cleanup


class Machine:
    """One VM.  ``with Machine(spec, run_dir) as m: m.start(); m.wait_for_ssh(); m.succeed("id")``."""

    def __init__(self, spec: VMSpec, run_dir: Path, accel: Accel, timeouts: Timeouts | None = None,
                 ssh_key: SessionKey | None = None, admission: runtime.Admission | None = None,
                 ssh_user: str = "core"):
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.accel = accel
        self.timeouts = timeouts or Timeouts.for_accel(accel)
        self.ssh_key = ssh_key
        self.ssh_user = ssh_user
        self.admission = admission if admission is not None else runtime.Admission()
        self.proc: VMProcess | None = None
        self.qmp: QMPChannel | None = None
        self.console: Console | None = None
        self.ssh: SSH | None = None
        self._ssh_lease: runtime.PortLease | None = None
        self._fwd_leases: list[runtime.PortLease] = []
        self._admitted = False
        self.boot_index = 0
        self.boots: list[dict] = []     # per boot: kernel args, phases
        self.t0 = 0.0
        self.tap = ConsoleTap(time.monotonic())
        self.tap.watchers.append(BootLog(spec.name))    # each phase as a log line (pytest -v shows them)
        self._starts = 0
        self._stale_boot_id: str | None = None    # the boot_id the next SSH boot must not have
        self._console_shell_boot = 0               # the boot whose console shell we took over

    # ------------------------------------------------------------------ lifecycle
    def _prepare_disks(self) -> None:
        for disk in self.spec.disks:
            if disk.image:
                if not os.path.isfile(disk.image):
                    raise LivelabError(f"{self.spec.name}: disk {disk.name}: {disk.image} is not there")
                continue
            path = self.run_dir / disk.file_name
            if path.exists():
                continue
            if disk.backing:
                args = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", disk.backing_format,
                        "-b", str(Path(disk.backing).resolve()), str(path)]
            else:
                args = ["qemu-img", "create", "-q", "-f", "qcow2", str(path), disk.size or "8G"]
            subprocess.run(args, check=True)
        if self.spec.firmware in UEFI_FIRMWARE and not (self.run_dir / VARS_FILE).exists():
            code, template = UEFI_FIRMWARE[self.spec.firmware]
            for firmware_file in (code, template):
                if not os.path.exists(firmware_file):
                    raise LivelabError(f"UEFI firmware {firmware_file} missing: apt-get install ovmf")
            shutil.copyfile(template, self.run_dir / VARS_FILE)

    def _admit_and_prepare(self) -> None:
        """Before a start (any backend): wait for admission, lease the SSH port, make the disks."""
        if self.proc is not None:
            raise LivelabError(f"{self.spec.name} is already running")
        if not self._admitted:
            log.debug("%s: admission for %d MiB, %d vCPUs", self.spec.name, self.spec.memory_mib, self.spec.cpus)
            self.admission.acquire(f"{self.spec.name}-{os.getpid()}-{id(self)}", self.spec.memory_mib,
                                   self.spec.cpus, timeout=self.timeouts(1800))
            self._admitted = True
        if self.spec.ssh_port is None:
            self._ssh_lease = runtime.lease_port()
            self.spec.ssh_port = self._ssh_lease.port
        for fwd in self.spec.forwards:
            if not fwd[1]:
                lease = runtime.lease_port()
                self._fwd_leases.append(lease)
                fwd[1] = lease.port
        self._prepare_disks()

    def use_media(self, media: BootMedia) -> None:
        """Boot from ``media`` (a ``boot.methods.BootMedia``) from the next start on: its disk (the
        live ISO as a disk) replaces the disk of that name, after the others."""
        disks = [d for d in self.spec.disks if media.disk is None or d.name != media.disk.name]
        if media.disk is not None:
            disks.append(media.disk)
        self.spec = dataclasses.replace(self.spec, boot=media.boot, tftp_dir=media.tftp_dir, bootfile=media.bootfile,
                                        cdrom=media.cdrom, disks=disks,
                                        boot_disk=media.disk.name if media.disk is not None else None)

    def command(self) -> list[str]:
        return build_command(self.spec, self.run_dir, self.accel, qemu_binary())

    def start(self) -> None:
        """Start QEMU (admitted by memory and CPUs), connect QMP and console, resume the guest."""
        self._admit_and_prepare()
        for sock in ("console.sock", "qmp.sock"):
            (runtime.socket_dir(self.run_dir) / sock).unlink(missing_ok=True)
        cmd = self.command()
        self._starts += 1
        with open(self.run_dir / "qemu-cmdline.txt", "a") as f:
            f.write(f"# start {self._starts}, accel {self.accel.name} ({self.accel.reason})\n{shlex.join(cmd)}\n")
        self.write_vm_json()
        stderr = open(self.run_dir / "qemu-stderr.log", "ab")  # noqa: SIM115 -- QEMU's; ours is closed below
        proc = self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                            preexec_fn=_set_pdeathsig, close_fds=True)
        stderr.close()
        runtime.register_vm(proc.pid, self.spec.name, self.run_dir)
        log.debug("%s: QEMU started (pid %d, start %d): %s", self.spec.name, proc.pid, self._starts, shlex.join(cmd))
        if self.tap.timed_log is None:
            self.tap.timed_log = open(  # noqa: SIM115 -- kept by the console tap for the VM's life
                self.run_dir / "console-timed.log", "a", errors="replace")
        try:
            self._connect_qmp()
            self._new_boot()
            self.console = Console(str(runtime.socket_dir(self.run_dir) / "console.sock"), self.tap,
                                   name=self.spec.name, alive=self._dead_reason)
            self._live_qmp().cmd("cont")
        except BaseException:
            self.kill()
            raise

    def _dead_reason(self) -> str | None:
        if self.proc is None:
            return "QEMU is not running"
        rc = self.proc.poll()
        if rc is None:
            return None
        err = (self.run_dir / "qemu-stderr.log").read_text(errors="replace").strip().splitlines()
        return f"QEMU exited with status {rc}: {' | '.join(err[-3:]) or 'no message'}"

    def _connect_qmp(self) -> None:
        sock = str(runtime.socket_dir(self.run_dir) / "qmp.sock")

        def qemu_alive() -> None:
            dead = self._dead_reason()
            if dead:
                raise LivelabError(f"{self.spec.name}: {dead}")

        def connect() -> QMPChannel:
            if not os.path.exists(sock):
                raise poll.Retry("no socket yet")
            qmp = QEMUMonitorProtocol(sock)
            try:
                qmp.connect()
            except Exception as exc:
                raise poll.Retry(f"{type(exc).__name__}: {exc}") from None
            # no command may block for ever: an interrupted test tears its VM down through QMP, and
            # a wait cut short by Ctrl-C can leave the connection without an answer coming
            qmp.settimeout(QMP_TIMEOUT)
            return qmp

        self.qmp = poll.poll(connect, 15, what=f"{self.spec.name}: QMP socket {sock}", interval=0.05,
                             check=qemu_alive, error=LivelabError)

    def _new_boot(self) -> None:
        if self.boots:
            self.boots[-1]["phases"] = dict(self.tap.phases)
        self.boot_index += 1
        log.debug("%s: boot %d", self.spec.name, self.boot_index)
        self.t0 = time.monotonic()
        if self.tap.timed_log is not None:
            self.tap.timed_log.write(f"--- boot {self.boot_index} ---\n")
        self.tap.new_boot(self.t0)
        self.tap.reach("qemu_start", 0.0)
        self.boots.append({"boot": self.boot_index, "append": self.spec.append, "phases": self.tap.phases})
        if self.ssh is not None:
            self.ssh.new_boot()
        self.write_timings()

    def stop(self) -> None:
        """Power off: ask QEMU to quit, then make sure it is gone."""
        log.debug("%s: stop (QMP quit)", self.spec.name)
        if self.proc is None:
            return
        try:
            if self.qmp is not None:
                self.qmp.cmd("quit")
        except Exception:
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.kill()

    def _close_channels(self) -> None:
        """Drop the console and QMP connections (any backend)."""
        if self.console is not None:
            self.console.close()
            self.console = None
        if self.qmp is not None:
            with contextlib.suppress(Exception):
                self.qmp.close()
            self.qmp = None

    # A press that comes before the guest listens is lost: ACPI clears the power button's event
    # when its driver loads (Debian's `button` is a module, loaded by the real root's coldplug,
    # which a loaded host has seen finish after the first SSH login), and logind only acts on the
    # input device once udev has tagged it.  A guest that heard the press is shutting down and
    # ignores another one.
    REPRESS_S = 10.0

    def shutdown(self, timeout: float | None = None) -> None:
        """Clean power-off: the ACPI power button (QMP ``system_powerdown``), pressed again every
        ``REPRESS_S`` seconds until the guest powers off and QEMU ends; QEMU is stopped the hard
        way only if it has not ended within ``timeout``."""
        if self.proc is None:
            return
        timeout = timeout or self.timeouts.shutdown
        log.debug("%s: shutdown (ACPI power button, %.0f s)", self.spec.name, timeout)
        deadline = time.monotonic() + timeout
        reason, presses = None, 0
        while True:
            try:
                self._live_qmp().cmd("system_powerdown")
                presses += 1
            except Exception as exc:   # QMP is gone: QEMU is dying or dead
                if presses == 0 or self.proc.poll() is None:
                    reason = f"the power button could not be pressed ({type(exc).__name__}: {exc})"
                    break
            try:
                rc = self.proc.wait(timeout=max(0.0, min(self.REPRESS_S, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    reason = (f"the guest did not power off within {timeout:.0f} s of the power button "
                              f"(pressed {presses} time{'s' if presses > 1 else ''})")
                    break
                log.debug("%s: not powered off %.0f s after the power button: pressing it again",
                          self.spec.name, self.REPRESS_S)
                continue
            if rc != 0:
                reason = f"QEMU exited with status {rc} after the power button"
            break
        self.stop()
        if reason:
            raise AbnormalShutdown(f"{self.spec.name}: {reason}; QEMU was stopped the hard way\n"
                                   f"--- last 20 console lines ---\n{self.tap.last_lines(20)}")

    def kill(self) -> None:
        """Kill QEMU at once (SIGKILL) and release everything it held."""
        log.debug("%s: kill", self.spec.name)
        self._close_channels()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            if self.proc.pid is not None:
                runtime.unregister_vm(self.proc.pid)
            self.proc = None
        if self.ssh is not None:
            self.ssh.close()
        self.write_timings()
        if self.tap.timed_log is not None:
            self.tap.timed_log.close()
            self.tap.timed_log = None

    def close(self) -> None:
        """Kill the VM and release admission and ports (the end of its life)."""
        self.kill()
        if self._admitted:
            self.admission.release(f"{self.spec.name}-{os.getpid()}-{id(self)}")
            self._admitted = False
        if self._ssh_lease is not None:
            self._ssh_lease.release()
            self._ssh_lease = None
        for lease in self._fwd_leases:
            lease.release()
        self._fwd_leases = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------------ artifacts
    def write_vm_json(self, extra: dict | None = None) -> None:
        """``vm.json``: enough to re-create this VM (``record.py``)."""
        record.write_vm_json(self.run_dir, self.spec, self.accel, self.boots, extra)

    def write_timings(self) -> None:
        """``timings.json``: the phases of every boot so far, with its ``boot_id`` once known."""
        if self.boots:
            self.boots[-1]["phases"] = dict(self.tap.phases)
        record.write_timings(self.run_dir, self.spec.name, self.accel, self.boots)

    def mark(self, phase: str) -> None:
        if self.tap.reach(phase):
            self.write_timings()

    # ------------------------------------------------------------------ channels of a running VM
    def _live_qmp(self) -> QMPChannel:
        return required(self.qmp, LivelabError(f"{self.spec.name}: not running (no QMP connection)"))

    def _live_console(self) -> Console:
        return required(self.console, BootFailure(f"{self.spec.name}: not running (no console)"))

    def _live_ssh(self) -> SSH:
        return required(self.ssh, LivelabError(f"{self.spec.name}: no SSH session yet: call wait_for_ssh() first"))

    # ------------------------------------------------------------------ waits (runbook style)
    def check(self) -> None:
        """Fail fast: raise if the console showed a fatal line or QEMU died."""
        self._live_console().drain(0)

    def wait_for_console_text(self, pattern: str | re.Pattern, timeout: float | None = None,
                              regex: bool = False) -> re.Match:
        """Wait for text (or a regex) on the serial console; returns the match."""
        return self._live_console().wait_for(pattern, timeout or self.timeouts.boot, regex=regex)

    def port_text(self, port: str = COMPLETION_PORT) -> str:
        path = self.run_dir / f"port-{port}"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_port_token(self, token: str = COMPLETION_TOKEN, port: str = COMPLETION_PORT,
                            timeout: float | None = None, count: int = 1) -> float:
        """Wait until ``token`` appears ``count`` times on a virtio port (no SSH needed)."""
        timeout = timeout or self.timeouts.boot

        def no_token(msg: str) -> BootFailure:
            return BootFailure(f"{self.spec.name}: no {token!r} on virtio port {port} after {timeout:.0f} s\n"
                               f"--- last 50 console lines ---\n{self.tap.last_lines(50)}")

        poll.until(lambda: self.port_text(port).count(token) >= count, timeout, what=f"{token!r} on port {port}",
                   interval=0.5, check=self.check, error=no_token)
        return time.monotonic() - self.t0

    BOOT_ID = "cat /proc/sys/kernel/random/boot_id"

    def wait_for_ssh(self, timeout: float | None = None) -> SSH:
        """Wait until SSH answers with our key on *this* boot.

        After ``reboot()``, ``reset()`` or ``power_cycle()`` the guest's ``boot_id`` must differ
        from the one before: an sshd of the old boot that still answers is not the new boot."""
        if self.ssh_key is None:
            raise LivelabError("no SSH key for this VM")
        if self.ssh is None:
            if self.spec.ssh_port is None:
                raise LivelabError(f"{self.spec.name}: no SSH port (the VM was never started)")
            self.ssh = SSH("127.0.0.1", self.spec.ssh_port, self.ssh_key, user=self.ssh_user, name=self.spec.name)
        ssh = self.ssh
        timeout = timeout or self.timeouts.boot
        deadline = time.monotonic() + timeout

        def this_boot() -> SSH:
            ssh.wait(max(1.0, deadline - time.monotonic()), check=self.check)
            try:
                boot_id = ssh.run(self.BOOT_ID, timeout=30)[1].strip()
            except (OSError, EOFError, paramiko.SSHException) as exc:   # the old system going down
                ssh.new_boot()
                raise poll.Retry(f"reading boot_id: {type(exc).__name__}: {exc}") from None
            if not boot_id or boot_id == self._stale_boot_id:
                ssh.new_boot()      # nor is its host key this boot's
                raise poll.Retry(f"the sshd of the boot before answered (boot_id {boot_id or 'unreadable'})")
            self._stale_boot_id = None
            self.boots[-1]["boot_id"] = boot_id
            log.debug("%s: SSH on boot %d, boot_id %s", self.spec.name, self.boot_index, boot_id)
            return ssh

        def no_ssh(msg: str) -> poll.WaitTimeout:
            return poll.WaitTimeout(f"{msg}\nconsole triage: {self.tap.verdict().headline}\n"
                                    f"--- last 50 console lines ---\n{self.tap.last_lines(50)}")

        poll.poll(this_boot, timeout, what=f"{self.spec.name}: SSH on boot {self.boot_index}", interval=1.0,
                  check=self.check, error=no_ssh)
        self.mark("ssh_ready")
        return ssh

    def boot_id(self) -> str:
        """The guest's ``/proc/sys/kernel/random/boot_id`` (over SSH): new at every boot."""
        return self.succeed(self.BOOT_ID).strip()

    # ------------------------------------------------------------------ commands (over SSH)
    def succeed(self, command: str, timeout: float | None = None) -> str:
        """Run ``command``; it must exit 0.  Returns its stdout."""
        self.check()
        return self._live_ssh().succeed(command, timeout or self.timeouts.command)

    def fail(self, command: str, timeout: float | None = None) -> str:
        """Run ``command``; it must fail.  Returns its stdout and stderr."""
        self.check()
        return self._live_ssh().fail(command, timeout or self.timeouts.command)

    def execute(self, command: str, timeout: float | None = None) -> tuple:
        """Run ``command``: (exit status, stdout, stderr)."""
        self.check()
        return self._live_ssh().run(command, timeout or self.timeouts.command)

    def _until(self, command: str, want_success: bool, timeout: float | None, output: str | None = None) -> str:
        def probe() -> str:
            status, out, err = self.execute(command)
            if (status == 0) != want_success:
                raise poll.Retry(f"exit {status}: {(err.strip() or out.strip())[-300:]}")
            if output is not None and not re.search(output, out, re.M):
                raise poll.Retry(f"exit {status}, stdout not matching {output!r}: {out.strip()[-300:]}")
            return out if want_success else out + err
        return poll.poll(probe, timeout or self.timeouts.condition, interval=1.0, check=self.check,
                         what=f"{self.spec.name}: `{command}` to {'succeed' if want_success else 'fail'}")

    def wait_until_succeeds(self, command: str, timeout: float | None = None, output: str | None = None) -> str:
        """Run ``command`` every second until it exits 0 (and its stdout matches the regex
        ``output``, if given); returns its stdout."""
        return self._until(command, True, timeout, output)

    def wait_until_fails(self, command: str, timeout: float | None = None) -> str:
        """Run ``command`` every second until it exits non-zero; returns its stdout and stderr."""
        return self._until(command, False, timeout)

    def wait_for_unit(self, unit: str, timeout: float | None = None) -> None:
        """Wait until ``unit`` is active.  It fails at once when the unit failed, or when it is
        inactive with no job pending (nothing will start it)."""
        q = shlex.quote(unit)

        def journal() -> str:
            return self.execute(f"journalctl -b -u {q} --no-pager | tail -n 30")[1]

        def probe() -> None:
            state = self.execute(f"systemctl show -p ActiveState --value {q}")[1].strip()
            if state == "active":
                return
            if state == "failed":
                raise BootFailure(f"{self.spec.name}: unit {unit} failed\n{journal()}")
            if state == "inactive" and not self.execute(f"systemctl list-jobs --no-legend {q}")[1].strip():
                raise BootFailure(f"{self.spec.name}: unit {unit} is inactive and no job is pending\n{journal()}")
            raise poll.Retry(state or "unknown")

        poll.poll(probe, timeout or self.timeouts.condition, what=f"{self.spec.name}: unit {unit} active",
                  interval=1.0, check=self.check)

    def wait_for_open_port(self, port: int, timeout: float | None = None) -> None:
        """Wait until something listens on TCP ``port`` in the guest."""
        self.wait_until_succeeds(f"ss -Htln 'sport = :{int(port)}' | grep -q .", timeout)

    def wait_for_file(self, path: str, timeout: float | None = None) -> None:
        """Wait until ``path`` exists in the guest."""
        self.wait_until_succeeds(f"test -e {shlex.quote(path)}", timeout)

    # ------------------------------------------------------------------ the serial console
    def console_login(self, user: str, password: str | None = None, timeout: float | None = None) -> None:
        """Log in at the console's getty prompt; ``console_run`` then uses that shell."""
        self._live_console().login(user, password, timeout or self.timeouts.boot)
        self._console_shell_boot = self.boot_index

    def console_run(self, command: str, timeout: float | None = None) -> tuple:
        """Run ``command`` in the serial console's shell (taken over at its first use this boot):
        (exit status, output)."""
        console = self._live_console()
        if self._console_shell_boot != self.boot_index:
            console.take_shell(self.timeouts.boot)
            self._console_shell_boot = self.boot_index
        return console.run(command, timeout or self.timeouts.command)

    # ------------------------------------------------------------------ reboots and media
    def _remember_boot_id(self) -> None:
        """Before a reboot: the boot_id the next boot must not have (read now if SSH is up)."""
        known = next((b["boot_id"] for b in reversed(self.boots) if b.get("boot_id")), None)
        if self.ssh is not None and self.ssh.client is not None:
            with contextlib.suppress(Exception):
                known = self.ssh.run(self.BOOT_ID, timeout=10)[1].strip() or known
        self._stale_boot_id = known
        log.debug("%s: new boot requested; boot_id before: %s", self.spec.name, known)

    def reboot(self) -> None:
        """Guest reboot (systemctl reboot); the same QEMU process boots again.  The next
        ``wait_for_ssh()`` accepts only a new ``boot_id``."""
        self._remember_boot_id()
        with contextlib.suppress(Exception):   # the connection drops as the guest goes down
            self._live_ssh().run("sudo systemctl reboot", timeout=10)
        self._new_boot()

    def reset(self) -> None:
        """Hard reset through QMP (``system_reset``); proven like ``reboot``."""
        self._remember_boot_id()
        self._live_qmp().cmd("system_reset")
        self._new_boot()

    def power_cycle(self, append: str | None = None, prepare: Callable[[Machine], None] | None = None) -> None:
        """Power off, optionally change the kernel arguments of the next boot, power on; proven
        like ``reboot``.

        Direct-kernel boots take ``append``; network boots regenerate their boot config in
        ``prepare`` (e.g. pxelinux.cfg / boot.ipxe with other arguments).  Disks (overlays) keep
        their contents."""
        self._remember_boot_id()
        self.shutdown()
        if append is not None:
            self.spec.append = append
        if prepare is not None:
            prepare(self)
        self.start()

    CD_ID = "cd0dev"

    def tray_open(self) -> bool | None:
        devices = self._live_qmp().cmd("query-block")
        for dev in devices if isinstance(devices, list) else []:
            if dev.get("qdev", "").endswith(self.CD_ID) or dev.get("qdev") == self.CD_ID:
                return dev.get("tray_open")
        return None

    def eject(self, force: bool = False, wait: float = 10.0) -> dict:
        """QMP eject of the CD, as a person pressing the drive's button; returns QMP's answer.

        A guest locks the tray (udev's cdrom_id) and QEMU answers a non-forced eject of a locked
        tray by asking the guest to open it ("wait for tray to open and try again"): a guest that
        no longer uses the media lets it go, one that has it mounted cannot.  So: ask, wait up to
        ``wait`` s for the tray to open, ask again.  ``{"error": ...}`` means the guest kept it."""
        reply = self._live_qmp().cmd_raw("eject", {"id": self.CD_ID, "force": force})
        desc = (reply.get("error") or {}).get("desc", "")
        if force or "locked" not in desc:
            return reply
        with contextlib.suppress(poll.WaitTimeout):   # a guest that keeps the media: ask once more anyway
            poll.until(lambda: bool(self.tray_open()), wait, what="the CD tray to open", interval=0.25)
        return self._live_qmp().cmd_raw("eject", {"id": self.CD_ID, "force": False})

    DISK_ID = DISK_ID     # "disk{}dev": the QMP device id of spec.disks[i]

    def disk_id(self, name: str) -> str:
        """The QMP device id of the disk ``name``."""
        for i, disk in enumerate(self.spec.disks):
            if disk.name == name:
                return self.DISK_ID.format(i)
        raise LivelabError(f"{self.spec.name}: no disk {name!r} (disks: "
                           f"{', '.join(d.name for d in self.spec.disks) or 'none'})")

    def device_present(self, device_id: str) -> bool:
        """Whether QEMU still has the device ``device_id`` (QMP ``qom-list /machine/peripheral``)."""
        found = self._live_qmp().cmd("qom-list", path="/machine/peripheral")
        return isinstance(found, list) and any(isinstance(p, dict) and p.get("name") == device_id for p in found)

    def unplug_disk(self, name: str, wait: float = 30.0) -> dict:
        """QMP ``device_del`` of the disk ``name``, as pulling a USB stick out: QEMU asks the guest
        to let the device go (PCIe hot-unplug) and removes it when the guest has.  Waits up to
        ``wait`` s for the device to leave QEMU's device tree; returns QMP's answer, whether it is
        gone (``"unplugged"``) and after how many seconds."""
        device = self.disk_id(name)
        t0 = time.monotonic()
        reply = self._live_qmp().cmd_raw("device_del", {"id": device})
        gone = False
        if "error" not in reply:
            with contextlib.suppress(poll.WaitTimeout):
                poll.until(lambda: not self.device_present(device), wait,
                           what=f"{self.spec.name}: {device} to be unplugged", interval=0.25)
                gone = True
        return {"reply": reply, "unplugged": gone, "seconds": round(time.monotonic() - t0, 2)}

    def change_media(self, path: str) -> dict:
        return self._live_qmp().cmd_raw("blockdev-change-medium",
                                        {"id": self.CD_ID, "filename": str(path), "format": "raw"})

    def memory_total_mib(self) -> int:
        out = self.succeed("grep MemTotal /proc/meminfo")
        return int(out.split()[1]) // 1024

    # ------------------------------------------------------------------ forwarded ports
    def host_port(self, guest_port: int) -> int:
        """The 127.0.0.1 port forwarded to ``guest_port`` (declared in ``VMSpec.forwards``)."""
        for guest, host in self.spec.forwards:
            if guest == guest_port and host:
                return host
        raise LivelabError(f"{self.spec.name}: guest port {guest_port} is not forwarded (add it to forwards)")

    def probe_port(self, guest_port: int, send: bytes = b"GET / HTTP/1.0\r\n\r\n", wait: float = 5.0) -> tuple:
        """Connect to a guest TCP port from outside the guest, through its 127.0.0.1 forward.

        QEMU's user network accepts the host side at once and then opens the guest side, so what
        the guest's network stack did shows in what comes back: ``("answers", data)``,
        ``("refused", b"")`` when the guest reset the connection (nothing listens, or a reject
        rule) or ``("dropped", b"")`` when nothing at all came back within ``wait`` seconds (a
        firewall drop rule)."""
        import socket
        port = self.host_port(guest_port)
        deadline = time.monotonic() + wait
        data = b""
        with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
            try:
                s.sendall(send)
                while time.monotonic() < deadline:
                    s.settimeout(max(0.05, deadline - time.monotonic()))
                    chunk = s.recv(65536)
                    if not chunk:
                        return ("answers", data) if data else ("refused", b"")
                    data += chunk
            except socket.timeout:
                pass
            except (ConnectionResetError, BrokenPipeError):
                return ("answers", data) if data else ("refused", b"")
        return ("answers", data) if data else ("dropped", b"")
