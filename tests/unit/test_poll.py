"""The one wait helper (harness/poll.py), and the Machine verbs and reboot proof built on it."""
import time
from pathlib import Path

import pytest

from harness import poll, runtime
from harness.errors import BootFailure, LivelabError
from harness.vm.accel import Accel
from harness.vm.qemu import Machine, VMSpec


def test_poll_returns_the_probe_result_and_keeps_what_it_saw():
    seen = []

    def probe():
        seen.append(1)
        if len(seen) < 3:
            raise poll.Retry(f"try {len(seen)}")
        return "done"

    assert poll.poll(probe, 5, what="x", interval=0.01) == "done" and len(seen) == 3

    def never():
        seen.append(1)
        raise poll.Retry(f"try {len(seen)}")

    seen.clear()
    with pytest.raises(poll.WaitTimeout, match=r"^thing: not within 0 s \(last seen: try \d+\)$"):
        poll.poll(never, 0.05, what="thing", interval=0.01)
    assert len(seen) >= 2


def test_timeout_is_a_boot_failure_or_the_error_asked_for():
    def never():
        raise poll.Retry("nope")
    assert issubclass(poll.WaitTimeout, BootFailure)
    with pytest.raises(LivelabError, match="waited: not within"):
        poll.poll(never, 0.05, what="waited", interval=0.01, error=LivelabError)


def test_check_runs_between_tries_and_during_pauses_so_a_lost_boot_fails_at_once():
    calls = []

    def check():
        calls.append(time.monotonic())
        if len(calls) > 5:
            raise BootFailure("kernel panic")

    def never():
        raise poll.Retry("not yet")

    t0 = time.monotonic()
    with pytest.raises(BootFailure, match="kernel panic"):
        poll.poll(never, 60, what="x", interval=10, check=check)
    assert time.monotonic() - t0 < 2     # not the 10 s interval, not the 60 s time-out


def test_backoff_grows_the_pause_up_to_its_cap(monkeypatch):
    pauses = []
    monkeypatch.setattr(poll, "pause", lambda seconds, check=None: pauses.append(round(seconds, 3)))
    n = []

    def probe():
        n.append(1)
        if len(n) < 6:
            raise poll.Retry("x")

    poll.poll(probe, None, what="x", interval=0.5, backoff=1.5, max_interval=1.0)
    assert pauses == [0.5, 0.75, 1.0, 1.0, 1.0]


def test_until_and_pause():
    flag = {"at": time.monotonic() + 0.2}
    poll.until(lambda: time.monotonic() >= flag["at"], 5, what="flag", interval=0.01)
    with pytest.raises(poll.WaitTimeout, match="never: not within"):
        poll.until(lambda: False, 0.05, what="never", interval=0.01)
    t0 = time.monotonic()
    poll.pause(0.15)
    assert 0.14 <= time.monotonic() - t0 < 1


# ---------------------------------------------------------------- Machine on fakes (no QEMU)

class FakeSSH:
    """Answers boot_id with the ids given, in order; records what was asked."""

    def __init__(self, boot_ids):
        self.boot_ids = list(boot_ids)
        self.client = object()
        self.commands = []
        self.waits = 0
        self.new_boots = 0

    def wait(self, timeout, check=lambda: None):
        check()
        self.waits += 1
        self.client = object()
        return 0.0

    def run(self, command, timeout=120):
        self.commands.append(command)
        if command == Machine.BOOT_ID:
            return 0, self.boot_ids.pop(0) + "\n", ""
        if command.startswith("exit"):
            return int(command.split()[1]), "", "failed as asked"
        return 0, "ok\n", ""

    def succeed(self, command, timeout=120):
        return self.run(command, timeout)[1]

    def new_boot(self):
        self.new_boots += 1
        self.client = None

    def close(self):
        self.client = None


class FakeConsole:
    def drain(self, seconds=0.0):
        pass

    def close(self):
        pass


@pytest.fixture
def machine(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVELAB_STATE_DIR", str(tmp_path / "state"))
    m = Machine(VMSpec(name="fake", memory_mib=128, cpus=1, ssh_port=2222), tmp_path / "vm", Accel("tcg", "test"),
                ssh_key=object(), admission=runtime.Admission())
    m.console = FakeConsole()
    m._new_boot()
    return m


def test_a_stale_sshd_is_rejected_after_reboot(machine, monkeypatch):
    """After reboot(), an sshd still answering with the old boot_id is not the new boot: the
    wait drops it (and its host key) and waits on until a new boot_id answers."""
    monkeypatch.setattr(poll, "pause", lambda seconds, check=None: None)
    ssh = machine.ssh = FakeSSH(["boot-A", "boot-A", "boot-A", "boot-B"])
    machine.wait_for_ssh()
    assert machine.boots[-1]["boot_id"] == "boot-A"
    machine.reboot()            # reads boot-A before, then asks the guest to reboot
    assert "sudo systemctl reboot" in ssh.commands
    machine.wait_for_ssh()      # boot-A answers once more (stale), then boot-B
    assert ssh.waits == 3 and ssh.new_boots >= 1
    assert [b.get("boot_id") for b in machine.boots] == ["boot-A", "boot-B"]


def test_a_reboot_that_never_comes_is_a_time_out_naming_the_old_boot(machine, monkeypatch):
    machine.ssh = FakeSSH(["boot-A"] * 50)
    machine.wait_for_ssh()
    machine.reboot()
    with pytest.raises(poll.WaitTimeout, match=r"SSH on boot 2: not within .*the sshd of the boot before answered"):
        machine.wait_for_ssh(timeout=0.3)


def test_wait_until_succeeds_and_fails(machine, monkeypatch):
    monkeypatch.setattr(poll, "pause", lambda seconds, check=None: None)
    machine.ssh = FakeSSH([])
    assert machine.wait_until_succeeds("true") == "ok\n"
    assert "failed as asked" in machine.wait_until_fails("exit 3")
    with pytest.raises(poll.WaitTimeout, match=r"`exit 1` to succeed: not within 0 s \(last seen: exit 1: failed"):
        machine.wait_until_succeeds("exit 1", timeout=0.05)


def test_wait_for_unit_fails_at_once_on_failed_and_on_inactive_without_a_job(machine):
    class UnitSSH(FakeSSH):
        def __init__(self, state, jobs=""):
            super().__init__([])
            self.state, self.jobs = state, jobs

        def run(self, command, timeout=120):
            self.commands.append(command)
            if command.startswith("systemctl show"):
                return 0, self.state + "\n", ""
            if command.startswith("systemctl list-jobs"):
                return 0, self.jobs, ""
            return 0, "journal lines\n", ""

    machine.ssh = UnitSSH("active")
    machine.wait_for_unit("web.service")
    machine.ssh = UnitSSH("failed")
    with pytest.raises(BootFailure, match=r"unit web\.service failed"):
        machine.wait_for_unit("web.service", timeout=60)
    machine.ssh = UnitSSH("inactive")
    t0 = time.monotonic()
    with pytest.raises(BootFailure, match="inactive and no job is pending"):
        machine.wait_for_unit("web.service", timeout=60)
    assert time.monotonic() - t0 < 5
    machine.ssh = UnitSSH("inactive", jobs="42 web.service start waiting\n")
    with pytest.raises(poll.WaitTimeout, match="last seen: inactive"):
        machine.wait_for_unit("web.service", timeout=0.05)


def test_no_hand_written_wait_loop_outside_the_poll_helper():
    """Every sleep of the harness is the poll helper's (the reads and daemon loops that remain
    are listed: none of them waits for a condition)."""
    root = Path(__file__).resolve().parents[2] / "harness"
    sleepers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "time.sleep(" in p.read_text())
    assert sleepers == ["poll.py", "vm/libvirt.py"], sleepers
    # libvirt.py's only sleep is in the watchdog script it runs as a separate process
    text = (root / "vm" / "libvirt.py").read_text()
    watchdog = text[text.index("_WATCHDOG = "):]
    assert text.count("time.sleep(") == watchdog[:watchdog.index('"""', watchdog.index('"""') + 3)].count("time.sleep(")


def test_waits_are_logged_at_debug_level(caplog):
    n = []

    def probe():
        n.append(1)
        if len(n) < 2:
            raise poll.Retry("warming up")
        return 1

    with caplog.at_level("DEBUG", logger="harness.poll"):
        poll.poll(probe, 5, what="the web service", interval=0.01)
        with pytest.raises(poll.WaitTimeout):
            poll.poll(lambda: (_ for _ in ()).throw(poll.Retry("still down")), 0.02, what="never", interval=0.01)
    text = caplog.text
    assert "the web service: after" in text and "2 tries" in text
    assert "never: gave up after" in text and "last seen: still down" in text


def test_livelab_verbose_turns_on_debug_logging():
    """`livelab -v` sends the harness's debug lines (lifecycle steps, waits) to stderr."""
    import subprocess
    import sys
    code = ("import logging; from harness.cli import main; main(['-v', 'doctor', '--no-kvm-probe']); "
            "logging.getLogger('harness.vm.qemu').debug('lifecycle step')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "harness.vm.qemu: lifecycle step" in proc.stderr, proc.stderr


class FakeProc:
    """A QEMU that powers off after the power button, or never does."""

    def __init__(self, powers_off: bool, status: int = 0):
        self.powers_off, self.status, self.pid, self.killed, self.rc = powers_off, status, None, False, None

    def poll(self):
        return self.rc

    def wait(self, timeout=None):
        import subprocess
        if self.rc is None and not self.powers_off and not self.killed:
            time.sleep(min(timeout or 0, 0.2))     # a real wait, short: stop() waits too
            raise subprocess.TimeoutExpired("qemu", timeout)
        self.rc = self.status if not self.killed else -9
        return self.rc

    def kill(self):
        self.killed = True


class FakeQMP:
    def __init__(self):
        self.sent = []

    def cmd(self, name, **args):
        self.sent.append(name)

    def cmd_raw(self, name, args=None):
        return {}

    def close(self):
        pass


@pytest.mark.parametrize("powers_off, status, error", [
    (True, 0, None),
    (False, 0, r"fake: the guest did not power off within 1 s of the power button \(pressed \d+ times?\); "
               r"QEMU was stopped the hard way"),
    (True, 1, r"fake: QEMU exited with status 1 after the power button"),
])
def test_an_unclean_power_off_is_an_abnormal_shutdown(machine, powers_off, status, error):
    from harness.errors import AbnormalShutdown
    proc, qmp = FakeProc(powers_off, status), FakeQMP()
    machine.proc, machine.qmp = proc, qmp
    if error is None:
        machine.shutdown(timeout=1)
    else:
        with pytest.raises(AbnormalShutdown, match=error):
            machine.shutdown(timeout=1)
    assert qmp.sent[0] == "system_powerdown"
    assert machine.proc is None          # released either way


def test_a_press_the_guest_missed_is_pressed_again(machine, monkeypatch):
    """A guest whose power button driver loads after the first press (ACPI clears the event as
    the driver loads) hears the next one; presses stop when QEMU ends."""
    import subprocess

    class LateButton(FakeProc):
        def __init__(self, qmp):
            super().__init__(powers_off=False)
            self.qmp = qmp

        def wait(self, timeout=None):
            if len(self.qmp.sent) >= 2:      # the second press is heard
                self.rc = 0
                return 0
            raise subprocess.TimeoutExpired("qemu", timeout)

    monkeypatch.setattr(type(machine), "REPRESS_S", 0.01)
    qmp = FakeQMP()
    machine.proc, machine.qmp = LateButton(qmp), qmp
    machine.shutdown(timeout=5)
    assert qmp.sent.count("system_powerdown") == 2
    assert machine.proc is None


def test_a_guest_that_never_powers_off_is_pressed_until_the_time_out(machine, monkeypatch):
    from harness.errors import AbnormalShutdown
    monkeypatch.setattr(type(machine), "REPRESS_S", 0.2)
    qmp = FakeQMP()
    machine.proc, machine.qmp = FakeProc(powers_off=False), qmp
    with pytest.raises(AbnormalShutdown, match=r"within 1 s of the power button \(pressed [4-6] times\)"):
        machine.shutdown(timeout=1)
    assert qmp.sent.count("system_powerdown") >= 4 and machine.proc is None


def test_boot_media_is_a_record_the_machine_applies(machine):
    """Media preparation returns a BootMedia; the spec changes only when the machine applies it."""
    from harness.boot.methods import BootMedia
    before = machine.spec
    machine.use_media(BootMedia("network", tftp_dir="/t", bootfile="pxelinux.0"))
    assert (machine.spec.boot, machine.spec.tftp_dir, machine.spec.bootfile) == ("network", "/t", "pxelinux.0")
    assert before.boot == "disk" and machine.spec is not before and machine.spec.ssh_port == before.ssh_port
    machine.use_media(BootMedia("cdrom", cdrom="/live.iso"))
    assert (machine.spec.boot, machine.spec.cdrom, machine.spec.tftp_dir) == ("cdrom", "/live.iso", None)
    # the ISO as a disk: it joins the disks (after the request's), booted first; the next boot's replaces it
    from harness.vm.spec import Disk
    machine.spec.disks = [Disk("var", size="2G")]
    machine.use_media(BootMedia("disk", disk=Disk("iso", image="/live.iso", sector=4096)))
    assert (machine.spec.boot, machine.spec.boot_disk, machine.spec.cdrom) == ("disk", "iso", None)
    assert [d.name for d in machine.spec.disks] == ["var", "iso"] and machine.spec.disks[1].sector == 4096
    machine.use_media(BootMedia("disk", disk=Disk("iso", image="/live-2.iso")))       # the next boot's ISO
    assert [d.image for d in machine.spec.disks] == [None, "/live-2.iso"]


class FakeUnplugQMP(FakeQMP):
    """device_del as QEMU answers it: at once; the device leaves qom-list when the guest let it go."""

    def __init__(self, guest_lets_go: bool):
        super().__init__()
        self.devices = ["disk0dev", "disk1dev", "nic0"]
        self.guest_lets_go = guest_lets_go

    def cmd(self, name, **args):
        self.sent.append(name)
        assert (name, args) == ("qom-list", {"path": "/machine/peripheral"})
        return [{"name": d, "type": "child<virtio-blk-pci>"} for d in self.devices]

    def cmd_raw(self, name, args=None):
        self.sent.append(name)
        if args["id"] not in self.devices:
            return {"error": {"class": "DeviceNotFound", "desc": f"Device '{args['id']}' not found"}}
        if self.guest_lets_go:
            self.devices.remove(args["id"])
        return {"return": {}}


def test_unplugging_a_disk_waits_for_it_to_leave_qemu(machine):
    from harness.vm.spec import Disk
    machine.spec.disks = [Disk("var", size="2G"), Disk("iso", image="/live.iso")]
    machine.qmp = qmp = FakeUnplugQMP(guest_lets_go=True)
    assert machine.disk_id("iso") == "disk1dev" and machine.device_present("disk1dev")
    got = machine.unplug_disk("iso", wait=1)
    assert got["unplugged"] and got["reply"] == {"return": {}} and qmp.devices == ["disk0dev", "nic0"]
    assert not machine.unplug_disk("iso", wait=1)["unplugged"]          # gone already: QEMU's error, not a wait
    machine.qmp = FakeUnplugQMP(guest_lets_go=False)
    t0 = time.monotonic()
    kept = machine.unplug_disk("iso", wait=0.5)
    assert not kept["unplugged"] and "error" not in kept["reply"] and time.monotonic() - t0 >= 0.5
    with pytest.raises(LivelabError, match=r"fake: no disk 'usb' \(disks: var, iso\)"):
        machine.disk_id("usb")
