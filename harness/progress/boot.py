"""One VM's boot as it goes: what a person at a terminal sees, and what a CI log gets.

``BootProgress`` watches a ``ConsoleTap`` (its ``BootEvent``s: a boot starts, a phase is reached, the
boot is lost) and shows, by ``mode``:

- ``live`` (a terminal): one status line (rich) with the VM, the stage it is in (``STAGES``: firmware →
  kernel → initramfs → Ignition → switch-root → login → SSH) and the time, redrawn as it goes; above
  it a line for each phase as it is reached, with the span it ended (``harness.vm.record.SPANS``),
  and a lost boot's reason the moment the console shows it;
- ``plain`` (CI logs, pipes, ``--console``, ``-v``): the same lines, one per phase, and a heartbeat
  line whenever nothing was printed for ``heartbeat_s`` seconds, so a slow stage is never silent;
- ``quiet``: nothing.

``BootLog`` writes the same lines through ``logging`` (logger ``harness.boot``, INFO); every
``Machine`` has one, and pytest shows them with ``-v`` or
``--log-cli-level=INFO`` (``harness.progress.logs``).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, TextIO

from ..console import BOOT, LOST, PHASE, BootEvent
from ..vm.record import SPAN_LABELS, SPANS, split

if TYPE_CHECKING:
    from ..console import ConsoleTap

LOG = logging.getLogger("harness.boot")
HEARTBEAT_S = 10.0          # plain mode: the longest a boot goes without a line
MODES = ("live", "plain", "quiet")

# the stages a person follows, in boot order
STAGES = ("firmware", "kernel", "initramfs", "Ignition", "switch-root", "login", "SSH")
PREPARING, STARTING, READY, LOST_STAGE = "preparing", "starting", "ready", "lost"
# what the stages before the first phase wait for
_WAITING = {PREPARING: "preparing (artifacts, Ignition config, boot media)",
            STARTING: "starting (admission by memory and CPUs, QEMU)"}
# the stage a boot is in once the phase showed (the furthest one counts)
_STAGE_OF = {
    "qemu_start": "firmware", "first_console": "firmware", "ipxe_chain": "firmware",
    "kernel_start": "kernel",
    "init_start": "initramfs",
    "ignition_start": "Ignition", "rootfs_start": "Ignition", "rootfs_done": "Ignition",
    "ignition_done": "switch-root", "switch_root": "switch-root",
    "real_root": "login", "multi_user": "login",
    "sshd_started": "SSH", "login_prompt": "SSH",
}
PHASE_TEXT = {
    "qemu_start": "QEMU started: firmware",
    "first_console": "first console output",
    "ipxe_chain": "iPXE chain-loads the boot script",
    "kernel_start": "kernel started",
    "init_start": "initramfs: /init runs",
    "ignition_start": "Ignition started",
    "rootfs_start": "live rootfs: loading",
    "rootfs_done": "live rootfs: ready",
    "ignition_done": "Ignition done",
    "switch_root": "switching to the real root",
    "real_root": "the real root's systemd is up",
    "sshd_started": "sshd started",
    "multi_user": "multi-user target reached",
    "login_prompt": "login prompt",
    "ssh_ready": "SSH answers: the harness is logged in",
}
# phase -> the span it ends
_SPAN_ENDED_BY = {end: span for span, _start, end in SPANS}
_MAX_LINE = 160             # a console line quoted in a lost boot's line


def stage_of(phases: Iterable[str]) -> str:
    """The stage a boot is in once ``phases`` showed: the furthest stage any of them reached;
    ``starting`` before any, ``ready`` once SSH answered."""
    phases = list(phases)
    if "ssh_ready" in phases:
        return READY
    ranks = [STAGES.index(_STAGE_OF[p]) for p in phases if p in _STAGE_OF]
    return STAGES[max(ranks)] if ranks else STARTING


def _clip(text: str, n: int = _MAX_LINE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"


class BootLines:
    """The lines of one VM's boot, one per event: ``line(event)`` (None for an event that is not
    worth a line, such as the first boot starting).  Keeps the phases seen, for the spans."""

    def __init__(self, name: str):
        self.name = name
        self.phases: dict[str, float] = {}
        self.boot = 0

    def line(self, event: BootEvent) -> str | None:
        if event.kind == BOOT:
            self.phases = {}
            self.boot = int(event.name) if event.name.isdigit() else self.boot + 1
            return f"{self.name}: boot {self.boot}" if self.boot > 1 else None
        if event.kind == LOST:
            where = f": {_clip(event.line)}" if event.line else ""
            return f"{self.name}: {event.seconds:7.1f} s  {'LOST':<14} {event.name}{where}"
        if event.kind != PHASE:
            return None
        self.phases[event.name] = event.seconds
        text = PHASE_TEXT.get(event.name, event.name.replace("_", " "))
        span = _SPAN_ENDED_BY.get(event.name)
        seconds = split(self.phases).get(span) if span is not None else None
        if span is not None and seconds is not None:      # as livelab timings has it (Ignition without the rootfs)
            text += f" ({SPAN_LABELS[span]}: {seconds:.1f} s)"
        return f"{self.name}: {event.seconds:7.1f} s  {event.name:<14} {text}"


class BootLog:
    """A ``ConsoleTap`` watcher that logs each line at INFO (a lost boot too: it is raised as a
    ``BootFailure`` anyway, and a WARNING would reach stderr of a CLI that configured no logging)."""

    def __init__(self, name: str, logger: logging.Logger = LOG):
        self.lines = BootLines(name)
        self.logger = logger

    def __call__(self, event: BootEvent) -> None:
        text = self.lines.line(event)
        if text is not None:
            self.logger.info("%s", text)


def choose_mode(quiet: bool = False, plain: bool = False, stream: TextIO | None = None) -> str:
    """``quiet``, ``plain`` (asked for, or ``stream`` is no terminal, or a dumb one) or ``live``."""
    if quiet:
        return "quiet"
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    terminal = isatty is not None and isatty() and os.environ.get("TERM") != "dumb"
    return "live" if terminal and not plain else "plain"


class BootProgress:
    """One VM's boot for a person (see the module): ``attach(tap)`` before the VM starts, ``finish()``
    once the boot is done (the live line goes; later events still get a plain line), ``close()``.

    ``echo``: also copy the raw console to this stream (``livelab boot --console``); the lines then
    start on a line of their own.  ``clock`` and ``heartbeat_s`` are for tests."""

    def __init__(self, name: str, mode: str = "plain", stream: TextIO | None = None, prefix: str = "livelab: ",
                 heartbeat_s: float = HEARTBEAT_S, clock: Callable[[], float] = time.monotonic):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        self.name = name
        self.mode = mode
        self.stream = stream if stream is not None else sys.stderr
        self.prefix = prefix
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.lines = BootLines(name)
        self.stage = PREPARING
        self.lost: BootEvent | None = None
        self._since = clock()            # when the stage began
        self._attached = clock()
        self._boot_t0: float | None = None   # clock() at this boot's QEMU start
        self._last_out = clock()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None
        self._tap: ConsoleTap | None = None
        self._echo: TextIO | None = None
        self._mid_line = False           # the echoed console's last line is still open

    # ------------------------------------------------------------------ wiring
    def attach(self, tap: ConsoleTap, echo: TextIO | None = None) -> BootProgress:
        """Watch ``tap`` (and copy its raw console to ``echo``); the live line or the heartbeat starts."""
        self._tap = tap
        with self._lock:
            if self.stage == PREPARING:
                self._set_stage(STARTING, self.clock())
        tap.watchers.append(self.event)
        if echo is not None:
            self._echo = echo
            tap.listeners.append(self.echo)
            if self.mode == "live":      # the raw console and a redrawn line do not share a terminal
                self.mode = "plain"
        self.start()
        return self

    def start(self) -> None:
        """The live line (``live``) or the heartbeat (``plain``) starts; ``attach`` calls it (call it
        before to be heard while the boot is prepared: in plain mode only, a download's progress
        bar is a live display of its own)."""
        if self.mode == "live" and self._live is None:
            from rich.console import Console
            from rich.live import Live
            from rich.spinner import Spinner
            spinner = Spinner("dots", style="cyan")

            def render() -> Spinner:
                spinner.update(text=self.status())
                return spinner
            self._live = Live(get_renderable=render, console=Console(file=self.stream, highlight=False),
                              refresh_per_second=8, transient=True)
            self._live.start()
        elif self.mode == "plain" and self._thread is None and self.heartbeat_s > 0:
            self._thread = threading.Thread(target=self._beat, name=f"progress-{self.name}", daemon=True)
            self._thread.start()

    def finish(self) -> None:
        """The boot is done: the live line and the heartbeat stop; later events get plain lines."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None
            if self.mode == "live":
                self.mode = "plain"

    def close(self) -> None:
        """``finish()`` and stop watching the tap."""
        self.finish()
        tap = self._tap
        if tap is not None:
            if self.event in tap.watchers:
                tap.watchers.remove(self.event)
            if self.echo in tap.listeners:
                tap.listeners.remove(self.echo)
            self._tap = None

    def __enter__(self) -> BootProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ events
    def event(self, event: BootEvent) -> None:
        """A ``ConsoleTap`` watcher."""
        with self._lock:
            now = self.clock()
            if event.kind == BOOT:
                self.lost = None
                self._boot_t0 = now - event.seconds
                self._set_stage(STARTING, now)
            elif event.kind == PHASE:
                if self._boot_t0 is None:
                    self._boot_t0 = now - event.seconds
                if self.lost is None:        # a lost boot stays lost until the next boot
                    self._set_stage(stage_of([*self.lines.phases, event.name]), now)
            elif event.kind == LOST:
                self.lost = event
                self._set_stage(LOST_STAGE, now)
            text = self.lines.line(event)
            if text is not None:
                self.say(text)

    def _set_stage(self, stage: str, now: float) -> None:
        if stage != self.stage:
            self.stage, self._since = stage, now

    def echo(self, data: str) -> None:
        """A ``ConsoleTap`` listener: the raw console, as it comes."""
        with self._lock:
            if self._echo is None or not data:
                return
            self._echo.write(data)
            self._echo.flush()
            self._mid_line = not data.endswith("\n")

    def say(self, text: str) -> None:
        """One line for the person (above the live line; none when quiet)."""
        with self._lock:
            self._last_out = self.clock()
            if self.mode == "quiet":
                return
            if self._live is not None:
                from rich.text import Text
                self._live.console.print(Text(self.prefix + text), soft_wrap=True)
                self._live.refresh()         # the status line below it shows the new stage at once
                return
            if self._mid_line and self._echo is not None:
                self._echo.write("\n")
                self._echo.flush()
                self._mid_line = False
            self.stream.write(self.prefix + text + "\n")
            self.stream.flush()

    # ------------------------------------------------------------------ what is shown
    def elapsed(self) -> float:
        """Seconds since this boot's QEMU start (before it: since ``attach``)."""
        start = self._boot_t0 if self._boot_t0 is not None else self._attached
        return max(0.0, self.clock() - start)

    def in_stage(self) -> float:
        return max(0.0, self.clock() - self._since)

    def _stage_label(self) -> str:
        if self.stage in STAGES:
            return f"{self.stage} [{STAGES.index(self.stage) + 1}/{len(STAGES)}]"
        if self.stage == LOST_STAGE and self.lost is not None:
            return f"lost: {self.lost.name}"
        return self.stage

    def status(self) -> Any:
        """The live line (a rich ``Text``): VM, stage, seconds in it, seconds since QEMU start."""
        from rich.text import Text
        style = {LOST_STAGE: "bold red", READY: "bold green"}.get(self.stage, "bold cyan")
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(self.name, style="bold")
        t.append("  ")
        t.append(self._stage_label(), style=style)
        t.append(f"  {int(self.in_stage())} s", style="yellow")
        t.append(f"  (total {self.elapsed():.1f} s)", style="dim")
        return t

    def heartbeat(self) -> str:
        """The plain line when nothing was said for a while."""
        last = list(self.lines.phases.items())[-1] if self.lines.phases else None    # the latest reached
        seen = f"; last phase {last[0]} at {last[1]:.1f} s" if last else ""
        what = _WAITING.get(self.stage) or self._stage_label()
        return f"{self.name}: {self.elapsed():7.1f} s  {'…':<14} still {what}: {int(self.in_stage())} s in it{seen}"

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self.heartbeat_s)):
            with self._lock:
                if self.clock() - self._last_out >= self.heartbeat_s and self.stage not in (READY, LOST_STAGE):
                    self.say(self.heartbeat())
