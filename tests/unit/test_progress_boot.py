"""The boot's progress display (harness.progress.boot): recorded consoles replayed through a ConsoleTap
with the display attached, in its plain, live (a terminal), quiet and console-echo forms, and the
same lines through logging."""
import gzip
import io
import logging
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.cli import run as cli_run
from harness.console import BOOT, LOST, PHASE, BootEvent, ConsoleTap
from harness.progress.boot import STAGES, BootLog, BootProgress, choose_mode, stage_of
from harness.triage.rules import PHASES

DATA = Path(__file__).resolve().parents[1] / "data" / "triage"
# the console's phases in boot order, then the machine's own
ORDER = ["qemu_start", "first_console", *[p.name for p in PHASES], "ssh_ready"]
LINE = re.compile(r"^livelab: (?P<vm>\S+): +(?P<t>\d+\.\d) s +(?P<what>\S+) +(?P<text>.*)$")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def replay(tap, text, chunk=400, before=None):
    """Feed a console as QEMU's reader thread would: a boot starts, chunks arrive, SSH answers."""
    tap.new_boot(time.monotonic())
    tap.reach("qemu_start", 0.0)
    for i in range(0, len(text), chunk):
        if before is not None:
            before(text[:i])
        tap.write(text[i:i + chunk])


def phase_lines(out):
    return [m.group("what") for m in map(LINE.match, out.splitlines()) if m]


def healthy(name="fcos.stable.pxe.bios.base.log.gz"):
    return gzip.open(DATA / "healthy" / name, "rt", errors="replace").read()


@pytest.mark.parametrize("log", ["fcos.stable.pxe.bios.base.log.gz", "flatcar.stable.ipxe.bios.base.log.gz",
                                 "fcos.next.iso.bios.base.log.gz"])
def test_a_recorded_boot_gives_its_phase_lines_in_order(log):
    out = io.StringIO()
    tap = ConsoleTap(time.monotonic())
    shown = BootProgress("vm1", "plain", out, heartbeat_s=0).attach(tap)
    replay(tap, healthy(log))
    tap.reach("ssh_ready")
    shown.close()
    seen = phase_lines(out.getvalue())
    assert seen == sorted(seen, key=ORDER.index), seen       # boot order
    assert len(seen) == len(set(seen))                       # each phase once
    for phase in ("qemu_start", "first_console", "kernel_start", "init_start", "switch_root", "real_root",
                  "login_prompt", "ssh_ready"):
        assert phase in seen, (phase, out.getvalue())
    assert "(firmware and loading: " in out.getvalue()       # the span a phase ends
    assert shown.stage == "ready"
    assert all(LINE.match(ln).group("vm") == "vm1" for ln in out.getvalue().splitlines())


def test_a_lost_boot_says_its_reason_at_the_deciding_line():
    text = (DATA / "failures" / "fcos.stable.pxe-rootfs-url.bios.ignition-files-404.log").read_text(errors="replace")
    out = io.StringIO()
    tap = ConsoleTap(time.monotonic())
    shown = BootProgress("vm1", "plain", out, heartbeat_s=0).attach(tap)
    deciding = text.index("Ignition failed")
    said_at = []
    replay(tap, text, chunk=80, before=lambda fed: said_at.append(len(fed)) if "LOST" in out.getvalue()
           and not said_at else None)
    shown.close()
    lost = [ln for ln in out.getvalue().splitlines() if " LOST " in ln]
    assert len(lost) == 1 and "Ignition failed" in lost[0]
    # at once: within a chunk or two of the line that decided it, not at the end of the log
    assert said_at and said_at[0] <= deciding + 400 < len(text)
    assert shown.stage == "lost" and shown.lost.name == tap.failure[0]
    shown.event(BootEvent(PHASE, "login_prompt", 50.0))          # the emergency shell's prompt, say
    assert shown.stage == "lost" and shown.status().plain.startswith("vm1  lost: Ignition failed")


def test_live_mode_draws_a_status_line_and_prints_the_phases_above_it():
    term = Terminal()
    tap = ConsoleTap(time.monotonic())
    shown = BootProgress("fcos.stable.pxe.bios", "live", term).attach(tap)
    assert shown._live is not None
    replay(tap, healthy())
    status = shown.status().plain
    assert status.startswith("fcos.stable.pxe.bios  SSH [7/7]") and "total" in status, status
    time.sleep(0.3)                    # a refresh or two of the live line
    shown.close()
    assert shown._live is None and shown.mode == "plain"
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", term.getvalue())
    assert [w for w in phase_lines(text.replace("\r", "\n"))][:3] == ["qemu_start", "first_console", "kernel_start"]
    assert "login_prompt" in text


def test_status_before_qemu_and_stages():
    shown = BootProgress("vm", "plain", io.StringIO(), heartbeat_s=0)
    assert shown.status().plain.startswith("vm  preparing")
    assert "still preparing (artifacts, Ignition config, boot media)" in shown.heartbeat()
    assert stage_of([]) == "starting"
    assert stage_of(["qemu_start", "first_console"]) == "firmware"
    assert stage_of(["qemu_start", "kernel_start", "init_start", "ignition_start", "rootfs_done"]) == "Ignition"
    assert stage_of(["ignition_done"]) == "switch-root"
    assert stage_of(["real_root", "multi_user"]) == "login"
    assert stage_of(["sshd_started", "multi_user"]) == "SSH"          # the furthest stage counts
    assert stage_of(["login_prompt", "ssh_ready"]) == "ready"
    assert STAGES == ("firmware", "kernel", "initramfs", "Ignition", "switch-root", "login", "SSH")


def test_plain_mode_is_never_silent_for_long():
    out = io.StringIO()
    tap = ConsoleTap(time.monotonic())
    shown = BootProgress("vm1", "plain", out, heartbeat_s=0.2).attach(tap)
    tap.new_boot(time.monotonic())
    tap.reach("qemu_start", 0.0)
    tap.write("[    0.000000] Linux version 6.1.0 (debian)\n")
    time.sleep(0.9)
    shown.close()
    beats = [ln for ln in out.getvalue().splitlines() if "still" in ln]
    assert len(beats) >= 2, out.getvalue()
    assert "still kernel [2/7]" in beats[0] and "last phase kernel_start" in beats[0]


def test_quiet_prints_nothing_and_a_failing_watcher_never_stops_the_console(caplog):
    out = io.StringIO()
    tap = ConsoleTap(time.monotonic())
    BootProgress("vm1", "quiet", out).attach(tap)
    tap.watchers.insert(0, lambda ev: 1 / 0)
    with caplog.at_level(logging.WARNING, logger="harness.console"):
        replay(tap, healthy())
    assert out.getvalue() == ""
    assert "login_prompt" in tap.phases and "a watcher failed" in caplog.text


def test_console_echo_puts_each_phase_line_on_a_line_of_its_own():
    out, console = io.StringIO(), io.StringIO()
    tap = ConsoleTap(time.monotonic())
    shown = BootProgress("vm1", "live", out).attach(tap, echo=console)
    assert shown.mode == "plain"          # the raw console and a redrawn line do not share a terminal
    tap.write("SeaBIOS\r\n[    0.0] Linux version 6.1.0 (debian)\r\n[    0.1] Command li")
    tap.write("ne: x\r\n")
    shown.close()
    assert console.getvalue() == "SeaBIOS\r\n[    0.0] Linux version 6.1.0 (debian)\r\n[    0.1] Command li\nne: x\r\n"
    assert phase_lines(out.getvalue()) == ["first_console", "kernel_start"]
    assert shown.echo not in tap.listeners and shown.event not in tap.watchers


def test_a_second_boot_starts_over():
    out = io.StringIO()
    shown = BootProgress("vm1", "plain", out, heartbeat_s=0)
    for ev in (BootEvent(BOOT, "1", 0.0), BootEvent(PHASE, "qemu_start", 0.0), BootEvent(PHASE, "kernel_start", 3.0),
               BootEvent(BOOT, "2", 0.0), BootEvent(PHASE, "qemu_start", 0.0), BootEvent(PHASE, "kernel_start", 2.5),
               BootEvent(LOST, "kernel panic", 4.0, "Kernel panic - not syncing: VFS")):
        shown.event(ev)
    lines = out.getvalue().splitlines()
    assert lines[2] == "livelab: vm1: boot 2"
    assert lines[4].endswith("kernel started (firmware and loading: 2.5 s)")
    assert lines[5] == "livelab: vm1:     4.0 s  LOST           kernel panic: Kernel panic - not syncing: VFS"


def test_boot_log_writes_the_same_lines_through_logging(caplog):
    tap = ConsoleTap(time.monotonic())
    tap.watchers.append(BootLog("vm7"))
    with caplog.at_level(logging.INFO, logger="harness.boot"):
        replay(tap, healthy())
        tap.write("[  99.0] Kernel panic - not syncing: x\n")
    infos = [r.getMessage() for r in caplog.records if r.name == "harness.boot" and r.levelno == logging.INFO]
    assert infos[0].startswith("vm7:     0.0 s  qemu_start") and any("kernel_start" in m for m in infos)
    assert [r.levelname for r in caplog.records if "LOST" in r.getMessage()] == ["INFO"]


def test_mode_choice(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    assert choose_mode(quiet=True, stream=Terminal()) == "quiet"
    assert choose_mode(stream=Terminal()) == "live"
    monkeypatch.setenv("TERM", "dumb")
    assert choose_mode(stream=Terminal()) == "plain"
    monkeypatch.setenv("TERM", "xterm")
    assert choose_mode(plain=True, stream=Terminal()) == "plain"
    assert choose_mode(stream=io.StringIO()) == "plain"
    with pytest.raises(ValueError):
        BootProgress("vm", "fancy")


def test_the_cli_watches_the_prepared_machine(monkeypatch):
    tap = ConsoleTap(time.monotonic())
    lb = SimpleNamespace(name="fcos.stable.iso.bios", require_machine=lambda: SimpleNamespace(tap=tap))
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    args = SimpleNamespace(quiet=False, console=False, verbose=False)
    shown = cli_run._display(args, lb.name)
    assert shown.mode == "plain" and shown._thread is not None and shown.stage == "preparing"
    cli_run._watch(args, lb, shown)
    assert shown.event in tap.watchers and shown.stage == "starting"
    tap.write("[    0.0] Linux version 6.1.0 (debian)\n")
    shown.close()
    assert "fcos.stable.iso.bios:" in err.getvalue() and "kernel_start" in err.getvalue()
    quiet = cli_run._display(SimpleNamespace(quiet=True, console=False, verbose=False), lb.name)
    assert quiet.mode == "quiet" and quiet._thread is None
    quiet.close()


def test_a_phase_line_names_its_span_as_livelab_timings_splits_it():
    """Ignition's span leaves out the live rootfs it waited for, as harness.vm.record.split does."""
    from harness.progress.boot import BootLines
    lines = BootLines("vm")
    said = [lines.line(BootEvent(PHASE, name, t)) for name, t in
            [("ignition_start", 10.0), ("rootfs_start", 12.0), ("rootfs_done", 15.0), ("ignition_done", 16.0)]]
    assert said[2].endswith("live rootfs: ready (live rootfs: 3.0 s)")
    assert said[3].endswith("Ignition done (Ignition: 3.0 s)")
