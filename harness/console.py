"""The serial console of a VM, driven with pexpect.

QEMU exposes the guest's first serial port as a unix socket (and writes every byte to
``console.log`` itself, so the log is complete even if the harness dies).  ``Console`` reads that
socket in a thread (the guest's UART never stalls on an idle harness) and offers pexpect's
``expect`` over what it read; every chunk goes at once through a ``ConsoleTap`` that

- records the phase timings (kernel start, Ignition done, switch-root, login prompt), and
- watches for the lines that mean a boot is lost (kernel panic, emergency mode, Ignition
  failed, dracut initqueue time-out, out of memory), so that a wait fails within a second of
  such a line with the last 50 console lines, instead of running into its time-out.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import collections
import contextlib
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from re import Pattern
from typing import Callable, ClassVar, TextIO

import pexpect
import pexpect.spawnbase

from . import poll
from .errors import BootFailure
from .triage import RULES, Failure, Rule, Triage, Verdict
from .triage.rules import LOGIN_PROMPT
from .triage.text import LogLine

log = logging.getLogger(__name__)

# The failure lines (harness.triage.rules): iterable as (reason, pattern, severity, source, …)
# tuples; every reason the tap can report is among them.
FAIL_PATTERNS = RULES


def _compile(pattern: str | Pattern, regex: bool) -> Pattern:
    if isinstance(pattern, str):
        return re.compile(pattern if regex else re.escape(pattern))
    return pattern


# A kernel message on the serial console, with printk's time stamp (as FCOS, Flatcar and the
# stand-in print them).  The 8250 console writes a record whole, but at any point of what the shell
# writes: between two lines of a command's output, or inside one (a late driver probe's
# "input: ImExPS/2 Generic Explorer Mouse" has landed above a command's first line).
_STAMP = r"\[ *\d+\.\d+\] "     # printk's time stamp
KERNEL_RECORD = _STAMP + r"[^\n]*\n"
_KERNEL_RECORDS = re.compile(KERNEL_RECORD)


# A kernel record that landed right after a prompt, on the prompt's line: "localhost login: [
# 33.926559] input: Power Button as ..." (the prompt no longer ends its line).
KERNEL_TAIL = rf"(?:{_STAMP}[^\n]*)?"


def without_kernel_records(text: str) -> str:
    """``text`` from the console with the kernel's messages taken out."""
    return _KERNEL_RECORDS.sub("", text)


def tolerant(literal: str) -> str:
    """A regex for ``literal`` as the console may show it: kernel records anywhere inside."""
    return f"(?:{KERNEL_RECORD})*".join(re.escape(c) for c in literal)


def frame_end(end: str) -> Pattern:
    """The regex of a frame's last line, ``end`` then ``<status>_N=<bytes>__``, kernel records
    allowed anywhere in it."""
    digits = rf"(?:\d|{KERNEL_RECORD})+"
    return re.compile(tolerant(end) + digits + tolerant("_N=") + digits + tolerant("__"))


def decode_framed(transcript: str, begin: str, end: str) -> tuple[int, bytes]:
    """What ``Console.run`` framed: the exit status and the output bytes, from the console text
    between the ``begin`` line and ``end``'s ``RC=<status>_N=<bytes>__``, kernel records taken
    out.  The output travels as base64, whose alphabet has no ``[`` nor space, so a kernel
    record inside it is told apart from it (and a command's own ``dmesg`` lines are kept).
    Raises ValueError when the frame is not whole."""
    text = without_kernel_records(transcript).replace("\r", "")
    start = text.rfind(begin + "\n")
    stop = text.find(end, start + 1) if start >= 0 else -1
    tail = re.match(r"(\d+)_N=(\d+)__", text[stop + len(end):]) if stop >= 0 else None
    if tail is None:
        raise ValueError("the output's frame is not whole")
    body = re.sub(r"\s+", "", text[start + len(begin) + 1:stop])
    try:
        data = base64.b64decode(body, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the output is not base64 ({exc})") from None
    if len(data) != int(tail.group(2)):
        raise ValueError(f"{len(data)} bytes of output arrived; the guest sent {tail.group(2)}")
    return int(tail.group(1)), data


# the kinds of BootEvent
BOOT, PHASE, LOST = "boot", "phase", "lost"


@dataclass(frozen=True)
class BootEvent:
    """What a ``ConsoleTap`` tells its ``watchers``, as it happens: a boot starts (``name``: its
    number), a phase showed (``name``: the phase), or the boot is lost (``name``: the reason)."""

    kind: str            # BOOT, PHASE or LOST
    name: str
    seconds: float       # since this boot's QEMU start (or reset)
    line: str = ""       # the console line that showed it


def _as_rules(patterns: Iterable[Rule | tuple]) -> list[Rule]:
    """Rules, from rules or from plain ``(reason, pattern)`` pairs (each a fatal rule)."""
    return [p if isinstance(p, Rule) else Rule(p[0], _compile(p[1], True)) for p in patterns]


class ConsoleTap:
    """Receives every chunk read from the console, as it arrives, and triages it line by line
    (``harness.triage``): ``failure`` is ``(reason, deciding line, monotonic time)`` once a line
    ends the boot, ``phases`` the seconds from ``t0`` at which each boot phase showed.

    ``listeners`` get every raw chunk; ``watchers`` get a ``BootEvent`` for each new boot, each
    phase as it is first reached (the console's, and those the machine adds with ``reach``) and a
    lost boot, on the thread that saw it (a watcher that raises is logged, never the console's
    problem)."""

    def __init__(self, t0: float, fail_patterns: Iterable[Rule | tuple] = FAIL_PATTERNS, keep_lines: int = 200):
        self.t0 = t0
        self.fail_patterns = _as_rules(fail_patterns)
        self.keep_lines = keep_lines
        self.ignored_failures: list[str] = []
        self.listeners: list[Callable[[str], None]] = []   # e.g. echo the console live
        self.watchers: list[Callable[[BootEvent], None]] = []   # e.g. show the boot's progress
        self.boot = 0                          # boots started (new_boot) so far
        self.timed_log: TextIO | None = None   # every line with its seconds since QEMU start / reset
        self.triage = self._new_triage()
        self.phases: dict = {}
        self.failure: tuple | None = None      # (reason, line, monotonic time seen)

    def _new_triage(self) -> Triage:
        t = Triage(self.fail_patterns, keep_lines=self.keep_lines, ignored=self.ignored_failures)
        t.on_phase = self._phase
        t.on_failure = self._failed
        t.on_line = self._timed_line
        return t

    def reach(self, name: str, seconds: float | None = None, line: str = "") -> bool:
        """Record phase ``name`` of this boot at ``seconds`` (default: now) unless it showed
        already, and tell the watchers; True when it is new."""
        if name in self.phases:
            return False
        self.phases[name] = round(time.monotonic() - self.t0, 2) if seconds is None else seconds
        self._tell(BootEvent(PHASE, name, self.phases[name], line))
        return True

    def _tell(self, event: BootEvent) -> None:
        for watcher in list(self.watchers):
            try:
                watcher(event)
            except Exception:
                log.warning("console: a watcher failed on %s", event, exc_info=True)

    def _phase(self, name: str, line: LogLine) -> None:
        self.reach(name, line=line.text.strip())

    def _failed(self, failure: Failure) -> None:
        now = time.monotonic()
        self.failure = (failure.reason, failure.line, now)
        log.debug("console: %s at %.1f s: %s", failure.reason, now - self.t0, failure.line)
        self._tell(BootEvent(LOST, failure.reason, round(now - self.t0, 2), failure.line))

    def _timed_line(self, line: LogLine) -> None:
        if self.timed_log is not None:
            self.timed_log.write(f"[{time.monotonic() - self.t0:8.2f}] {line.text}\n")
            self.timed_log.flush()

    def new_boot(self, t0: float) -> None:
        self.t0 = t0
        self.phases = {}
        self.failure = None
        self.triage.new_boot()
        self.boot += 1
        self._tell(BootEvent(BOOT, str(self.boot), 0.0))

    def write(self, data: str) -> None:
        if not data:
            return
        for listener in self.listeners:
            listener(data)
        if "first_console" not in self.phases:
            self.reach("first_console")
        self.triage.feed(data)
        # a prompt such as "login: " has no newline yet
        if "login_prompt" not in self.phases and LOGIN_PROMPT.search(self.triage.splitter.partial):
            self.reach("login_prompt", line=self.triage.splitter.partial.strip())

    def flush(self) -> None:
        pass

    @property
    def lines(self) -> list[str]:
        return [ln.text for ln in self.triage.lines]

    def verdict(self) -> Verdict:
        """The triage of the console so far (for a wait that timed out: the last phase, a suspect)."""
        return self.triage.verdict()

    def evidence(self) -> str:
        """What decided the failure, for a BootFailure message: the line that ended the boot
        when an earlier line explained it (empty when there is no more to say)."""
        f = self.triage.failure
        if f is None or f.trigger.line.no == f.deciding.line.no:
            return ""
        return f"--- the boot was lost at: {f.trigger.line.text.strip()!r} ({f.trigger.reason}) ---\n"

    def last_lines(self, n: int = 50) -> str:
        lines = self.lines[-n:]
        partial = self.triage.splitter.partial
        if partial.strip():
            lines.append(partial)
        return "\n".join(lines)


class _BufferSpawn(pexpect.spawnbase.SpawnBase):
    """pexpect over bytes a reader thread collects (so the guest's serial port never blocks)."""

    def __init__(self, sock: socket.socket, **kw):
        super().__init__(timeout=1, **kw)
        self.sock = sock
        self.child_fd = -1
        self._cond = threading.Condition()
        self._chunks: collections.deque = collections.deque()
        self._closed = False

    def feed(self, data: bytes) -> None:
        with self._cond:
            self._chunks.append(data)
            self._cond.notify_all()

    def feed_eof(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def read_nonblocking(self, size: int = 1, timeout: float | None = None):
        with self._cond:
            # woken by feed()/feed_eof(): a condition wait, not a poll
            self._cond.wait_for(lambda: self._chunks or self._closed,
                                None if timeout is None else max(0.0, timeout))
            if not self._chunks:
                if self._closed:
                    self.flag_eof = True
                    raise pexpect.EOF("console closed")
                raise pexpect.TIMEOUT("no console output")
            data = self._chunks.popleft()
            if len(data) > size:
                self._chunks.appendleft(data[size:])
                data = data[:size]
        text = self._decoder.decode(data, final=False)
        self._log(text, "read")
        return text

    def send(self, s: str | bytes):
        b = self._encoder.encode(s, final=False) if isinstance(s, str) else s
        self.sock.sendall(b)
        return len(b)

    def sendline(self, s: str = ""):
        return self.send(s + self.linesep)

    def isalive(self):
        return not self._closed

    def close(self):
        self.feed_eof()


class Console:
    """pexpect on a VM's serial console socket.

    A reader thread drains the socket continuously: it feeds the ``ConsoleTap`` (phase timings and
    fatal-line watchers, in real time) and a buffer that pexpect's ``expect`` consumes."""

    def __init__(self, sock_path: str, tap: ConsoleTap, name: str = "vm",
                 alive: Callable[[], str | None] | None = None, connect_timeout: float = 10.0):
        self.name = name
        self.tap = tap
        self._alive = alive or (lambda: None)

        def connect() -> socket.socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(sock_path)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                sock.close()
                raise poll.Retry(f"{type(exc).__name__}") from None
            return sock

        self.sock = poll.poll(connect, connect_timeout, what=f"{name}: serial console socket {sock_path}",
                              interval=0.05, error=BootFailure)
        self.child = _BufferSpawn(self.sock, encoding="utf-8", codec_errors="replace")
        self.child.delaybeforesend = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._reader = threading.Thread(target=self._read_loop, name=f"console-{name}", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.child.feed_eof()
                return
            self.tap.write(self._decoder.decode(data))
            self.child.feed(data)

    # ------------------------------------------------------------------ failure checks
    def check(self) -> None:
        """Raise BootFailure if a fatal console line was seen or QEMU is gone."""
        if self.tap.failure:
            reason, line, _ = self.tap.failure
            raise BootFailure(f"{self.name}: {reason}: {line!r}\n{self.tap.evidence()}"
                              f"--- last 50 console lines ---\n{self.tap.last_lines(50)}") from None
        dead = self._alive()
        if dead:
            raise BootFailure(f"{self.name}: {dead}\n--- last 50 console lines ---\n{self.tap.last_lines(50)}")

    def drain(self, seconds: float = 0.0) -> None:
        """Let ``seconds`` pass while watching the console (the reader thread does the reading)."""
        poll.pause(seconds, self.check)

    # ------------------------------------------------------------------ waits
    def wait_for(self, pattern: str | Pattern, timeout: float, regex: bool = False) -> re.Match:
        """Wait for text (or a regex with ``regex=True`` / a compiled pattern) on the console."""
        pat = _compile(pattern, regex)
        match = self.poll_for(pat, timeout)
        if match is None:
            raise BootFailure(f"{self.name}: timed out after {timeout:.0f} s waiting for "
                              f"{pat.pattern!r} on the console ({self.tap.verdict().headline})\n"
                              f"--- last 50 console lines ---\n{self.tap.last_lines(50)}")
        return match

    def poll_for(self, pattern: str | Pattern, timeout: float, regex: bool = False) -> re.Match | None:
        """Like ``wait_for`` but returns None when ``timeout`` passes (a lost boot still raises)."""
        pat = _compile(pattern, regex)
        deadline = time.monotonic() + timeout

        def expect_a_while() -> re.Match:
            try:   # at most a second at a time, so the watchers run in between
                self.child.expect([pat], timeout=min(1.0, max(0.05, deadline - time.monotonic())))
            except pexpect.TIMEOUT:
                raise poll.Retry("no match") from None
            except pexpect.EOF:
                self.check()
                raise BootFailure(f"{self.name}: console closed while waiting for {pat.pattern!r}\n"
                                  f"--- last 50 console lines ---\n{self.tap.last_lines(50)}") from None
            self.check_after_match()
            return self.child.match

        try:
            return poll.poll(expect_a_while, timeout, what=f"{pat.pattern!r} on the console", interval=0,
                             check=self.check)
        except poll.WaitTimeout:
            self.check()
            return None

    def check_after_match(self) -> None:
        if self.tap.failure:
            self.check()

    # ------------------------------------------------------------------ input
    def send(self, text: str) -> None:
        self.child.send(text)

    def send_line(self, line: str = "") -> None:
        self.child.send(line + "\r")

    def type_line(self, line: str, timeout: float, chunk: int = 8) -> None:
        """Type a line at a firmware prompt (iPXE's) a few characters at a time, each piece only
        after the one before it was echoed, then Enter.  A UART holds 16 characters: a whole line
        sent at once into a guest that is slow to read (TCG on a busy host) loses the rest."""
        for i in range(0, len(line), chunk):
            piece = line[i:i + chunk]
            self.send(piece)
            self.wait_for(piece, timeout)
        self.send("\r")

    KEYS: ClassVar[dict] = {"ctrl-b": "\x02", "ctrl-c": "\x03", "ctrl-d": "\x04", "enter": "\r", "esc": "\x1b"}

    def send_key(self, key: str) -> None:
        self.child.send(self.KEYS[key.lower()])

    # ------------------------------------------------------------------ shell
    PROMPT = "LLSH-PROMPT# "

    def login(self, user: str, password: str | None, timeout: float) -> None:
        """Log in at a getty prompt (with a password) and set up a shell for ``run``."""
        self.wait_for(re.compile(rf"login: ?{KERNEL_TAIL}$", re.M), timeout)
        self.send_line(user)
        if password is not None:
            self.wait_for("Password:", timeout)
            self.send_line(password)
        self.take_shell(timeout)

    # a shell prompt ends its line with $ or # (or a kernel record follows it there); a banner
    # line of #s (the live ISO's motd) is not one
    SHELL_PROMPT = re.compile(rf"^(?!#+ *$).*[$#] ?{KERNEL_TAIL}$", re.M)
    RESEND_S = 10.0

    def take_shell(self, timeout: float) -> None:
        """Take over an (autologin) shell: wait for a prompt and install a known one.

        What is typed while login is still setting up the terminal can be flushed away (login
        discards pending input), so the set-up line is typed again every ``RESEND_S`` seconds
        until its prompt shows; the line is idempotent."""
        deadline = time.monotonic() + timeout
        self.wait_for(self.SHELL_PROMPT, timeout)
        # the prompt is spelt split in the command so that its echo cannot match the prompt
        half = len(self.PROMPT) // 2
        setup = (f"bind 'set enable-bracketed-paste off' 2>/dev/null; stty -echo 2>/dev/null; "
                 f"export TERM=dumb PS1='{self.PROMPT[:half]}''{self.PROMPT[half:]}'")

        def type_setup() -> None:
            self.send_line(setup)
            left = deadline - time.monotonic()
            if self.poll_for(self.PROMPT, max(0.1, min(self.RESEND_S, left))) is None:
                raise poll.Retry("no prompt after the set-up line")

        def no_prompt(msg: str) -> BootFailure:
            return BootFailure(f"{self.name}: no shell prompt answered within {timeout:.0f} s"
                               f"\n--- last 50 console lines ---\n{self.tap.last_lines(50)}")

        poll.poll(type_setup, max(0.0, deadline - time.monotonic()), what="shell prompt", interval=0,
                  check=self.check, error=no_prompt)

    def run(self, command: str, timeout: float) -> tuple:
        """Run a command in the console shell: (exit status, output, stdout and stderr together).

        The command runs in the shell itself (a ``cd`` or ``export`` stays), its output into a
        file that is then printed as base64 between two marker lines, with the exit status and
        the byte count after it: kernel messages that the console prints meanwhile, between or
        inside lines, are taken out, and the count proves that nothing else got in or was lost."""
        token = uuid.uuid4().hex[:8]
        begin, end = f"__LL_{token}_OUT__", f"__LL_{token}_RC="
        # the markers are spelt split in the command so that an echo of it cannot match them; the
        # count goes through $((...)), as a wc that pads its number (BSD's) would not fit the frame
        self.send_line(f'__ll_f=$(mktemp); {{ {command}\n}} >"$__ll_f" 2>&1; __ll_rc=$?; '
                       f"printf '%s%s\\n' __LL_ {token}_OUT__; base64 \"$__ll_f\"; "
                       f"printf '%s%s%s_N=%s__\\n' __LL_ {token}_RC= \"$__ll_rc\" \"$(($(wc -c <\"$__ll_f\")))\"; "
                       f'rm -f "$__ll_f"; unset __ll_f __ll_rc')
        m = self.wait_for(frame_end(end), timeout)
        transcript = self.child.before + m.group(0)
        self.wait_for(re.compile(tolerant(self.PROMPT)), timeout)
        try:
            status, data = decode_framed(transcript, begin, end)
        except ValueError as exc:
            raise BootFailure(f"{self.name}: the console garbled the output of `{command}`: {exc}\n"
                              f"--- what the console showed ---\n{transcript[-3000:]}") from None
        return status, data.decode("utf-8", errors="replace").strip("\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.child.close()
        self._reader.join(timeout=2)
