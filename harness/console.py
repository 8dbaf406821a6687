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
from re import Pattern
from typing import Callable, ClassVar, TextIO

import pexpect
import pexpect.spawnbase

from . import poll
from .errors import BootFailure

log = logging.getLogger(__name__)

# (reason, pattern): a console line matching a pattern ends the boot at once.
FAIL_PATTERNS = [
    ("kernel panic", re.compile(r"Kernel panic - not syncing.*")),
    ("out of memory", re.compile(r"(Out of memory: Kill(ed)? process.*|oom-kill:.*|Kernel panic.*[Oo]ut of memory.*)")),
    ("out of RAM-disk space", re.compile(r".*No space left on device.*")),
    ("Ignition failed", re.compile(r".*(Ignition failed|Failed to start .*Ignition|ignition\[\d+\]: .*CRITICAL.*).*")),
    ("live rootfs refused", re.compile(r".*(Found initramfs version .* but rootfs version.*|No rootfs image found.*"
                                       r"|Couldn't fetch, verify, and unpack image.*|[Rr]ootfs (image )?hash mismatch.*"
                                       r"|coreos-livepxe-rootfs.*[Ff]ail.*)")),
    ("no bootable device",
     re.compile(r".*(No bootable device|No more network devices|PXE-E\w+:|Could not boot image).*")),
    # PXELINUX/ISOLINUX ("<file>... failed: Bad file number", e.g. no memory for the initrds) and GRUB
    ("boot loader failed", re.compile(r".*((^|Loading )\S+\.\.\. failed: .+|error: out of memory\.?"
                                      r"|error: you need to load the kernel first).*")),
    ("dracut initqueue timeout", re.compile(r".*dracut-initqueue.*timeout.*|.*Could not boot\..*")),
    ("emergency mode", re.compile(r".*(You are in emergency mode|Entering emergency mode|emergency shell).*")),
]

# phase name -> first console line that marks it (seconds from QEMU start are recorded)
PHASE_PATTERNS = [
    ("kernel_start", re.compile(r"Linux version \d")),
    ("ignition_done", re.compile(r"(Finished|Reached target).*(Ignition \(files\)|ignition-files|Ignition Complete)")),
    ("switch_root", re.compile(r"(Switching root|Reached target .*Switch Root)")),
    ("login_prompt", re.compile(r"login: ?$|login:")),
]


def _compile(pattern: str | Pattern, regex: bool) -> Pattern:
    if isinstance(pattern, str):
        return re.compile(pattern if regex else re.escape(pattern))
    return pattern


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


class ConsoleTap:
    """Receives every chunk read from the console, as it arrives."""

    def __init__(self, t0: float, fail_patterns: Iterable[tuple[str, Pattern[str]]] = FAIL_PATTERNS,
                 keep_lines: int = 200):
        self.t0 = t0
        self.fail_patterns = list(fail_patterns)
        self.lines: collections.deque[str] = collections.deque(maxlen=keep_lines)
        self.phases: dict = {}
        self.failure: tuple | None = None      # (reason, line, monotonic time seen)
        self._partial = ""
        self.ignored_failures: list[str] = []
        self.listeners: list[Callable[[str], None]] = []   # e.g. echo the console live
        self.timed_log: TextIO | None = None   # every line with its seconds since QEMU start / reset

    def new_boot(self, t0: float) -> None:
        self.t0 = t0
        self.phases = {}
        self.failure = None
        self._partial = ""

    def write(self, data: str) -> None:
        if not data:
            return
        for listener in self.listeners:
            listener(data)
        if "first_console" not in self.phases:
            self.phases["first_console"] = round(time.monotonic() - self.t0, 2)
        text = self._partial + _ANSI.sub("", data)
        *complete, self._partial = text.split("\n")
        for line in complete:
            self._line(line)
        # a prompt such as "login: " has no newline yet
        if self._partial.endswith("login: ") and "login_prompt" not in self.phases:
            self.phases["login_prompt"] = round(time.monotonic() - self.t0, 2)

    def flush(self) -> None:
        pass

    def _line(self, line: str) -> None:
        self.lines.append(line)
        now = time.monotonic()
        if self.timed_log is not None:
            self.timed_log.write(f"[{now - self.t0:8.2f}] {line}\n")
            self.timed_log.flush()
        for name, pat in PHASE_PATTERNS:
            if name not in self.phases and pat.search(line):
                self.phases[name] = round(now - self.t0, 2)
        if self.failure is None:
            for reason, pat in self.fail_patterns:
                if reason in self.ignored_failures:
                    continue
                if pat.match(line) or pat.search(line):
                    self.failure = (reason, line.strip(), now)
                    log.debug("console: %s at %.1f s: %s", reason, now - self.t0, line.strip())
                    break

    def last_lines(self, n: int = 50) -> str:
        lines = list(self.lines)[-n:]
        if self._partial:
            lines.append(self._partial)
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
            raise BootFailure(f"{self.name}: {reason}: {line!r}\n--- last 50 console lines ---\n"
                              f"{self.tap.last_lines(50)}", ) from None
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
                              f"{pat.pattern!r} on the console\n--- last 50 console lines ---\n"
                              f"{self.tap.last_lines(50)}")
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

    KEYS: ClassVar[dict] = {"ctrl-b": "\x02", "ctrl-c": "\x03", "ctrl-d": "\x04", "enter": "\r", "esc": "\x1b"}

    def send_key(self, key: str) -> None:
        self.child.send(self.KEYS[key.lower()])

    # ------------------------------------------------------------------ shell
    PROMPT = "LLSH-PROMPT# "

    def login(self, user: str, password: str | None, timeout: float) -> None:
        """Log in at a getty prompt (with a password) and set up a shell for ``run``."""
        self.wait_for(re.compile(r"login: ?$", re.M), timeout)
        self.send_line(user)
        if password is not None:
            self.wait_for("Password:", timeout)
            self.send_line(password)
        self.take_shell(timeout)

    # a shell prompt ends its line with $ or #; a banner line of #s (the live ISO's motd) is not one
    SHELL_PROMPT = re.compile(r"^(?!#+ *$).*[$#] ?$", re.M)
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
        """Run a command in the console shell: (exit status, output)."""
        token = uuid.uuid4().hex[:8]
        self.send_line(f"{command}; echo \"__LL_{token}_RC=$?__\"")
        m = self.wait_for(re.compile(rf"__LL_{token}_RC=(\d+)__"), timeout)
        output = _ANSI.sub("", self.child.before).replace(self.PROMPT, "")
        # drop the echoed command line if the terminal echoed it
        lines = [line for line in output.split("\n") if f"__LL_{token}_RC" not in line]
        self.wait_for(self.PROMPT, timeout)
        return int(m.group(1)), "\n".join(lines).strip("\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.child.close()
        self._reader.join(timeout=2)
