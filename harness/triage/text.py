"""Console and journal text as lines: the forms real boot logs come in, made comparable.

A serial console carries ANSI colour and cursor codes (sometimes with the ESC byte lost on the
way, leaving ``[0;32m`` in the text), CR as well as CRLF (systemd's start-job spinner rewrites
its line with a bare CR), and lines split across reads.  A pasted log may be ``journalctl``
output (``short``, ``short-precise``, ``short-iso``, ``short-monotonic``) or kernel lines with
``[   12.345678]`` stamps.  ``LineSplitter`` turns chunks into complete lines; ``parse_line``
takes the prefixes off and keeps the time stamp they carry, so that stall rules can measure
time from the text itself (a replayed log gives the verdict the live console gave).
"""
from __future__ import annotations

import re
from typing import NamedTuple

# ANSI escape sequences (CSI, OSC titles, charset selection, and the two-byte ones: ESC M reverse
# index, which systemd's status lines use to step back up a line, ESC c reset, ESC 7/8, ESC =/>)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][A-Z0-9]|\x1b[@-Z\\^_c78=>]")
# the same codes with their ESC lost: SGR colours ("[0;1;31m") and erase/cursor codes ("[K", "[25;80H",
# "M[K" at the start of a line: reverse index, then erase)
_ANSI_NO_ESC = re.compile(r"\[(?:\d{1,3}(?:;\d{1,3})*)?m|(?:^M)?\[\d{0,3}K|\[\d{1,3};\d{1,3}H")
# other control characters (the console's BEL, backspace, NUL padding), tab kept
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# kernel printk stamp, also journalctl -o short-monotonic: "[   12.345678] ", with the syslog level
# /dev/kmsg and pstore put before it ("<4>[   12.345678] ")
_KERNEL_TS = re.compile(r"^(?:<\d>)?\[\s*(\d{1,7}\.\d{1,9})\]\s?")
# dmesg -T: "[Tue Oct 11 22:44:47 2022] "
_DMESG_T = re.compile(r"^\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d (?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d) \d{4}\]\s?")
# a syslog level alone ("<6>text"), a pasted quote ("> text")
_LEVEL_OR_QUOTE = re.compile(r"^(?:<\d>|> ?)")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# journalctl short / short-precise: "Nov 27 12:00:01[.123456] host ident[pid]: message"; the host
# is missing with --no-hostname, and a trimmed paste may keep the time only
_JOURNAL_SHORT = re.compile(r"^(?:(?P<mon>[A-Z][a-z]{2}) (?P<day>[ \d]\d) )?"
                            r"(?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?) "
                            r"(?:(?P<host>[^\s:\[\]]+) )?(?P<ident>[^\s:\[]+)(?:\[\d+\])?: ")
# journalctl short-iso / short-iso-precise: "2026-11-27T12:00:01[.123456]+0000 host ident[pid]: message"
_JOURNAL_ISO = re.compile(r"^(?P<date>\d{4}-\d\d-\d\d)T(?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)"
                          r"(?:[+-]\d\d:?\d\d|Z)? (?:(?P<host>[^\s:\[\]]+) )?(?P<ident>[^\s:\[]+)(?:\[\d+\])?: ")

MAX_LINE = 4096   # a longer "line" (a console that never sends a newline) is cut into pieces this long


def clean(text: str) -> str:
    """The printable text of console output: ANSI codes, with or without their ESC, removed."""
    text = _ANSI.sub("", text)
    text = _ANSI_NO_ESC.sub("", text)
    return _CONTROL.sub("", text)


class LogLine(NamedTuple):
    """One line of a log: its number (from 1), the message, and what the prefixes said."""

    no: int
    text: str            # the whole cleaned line (what the console showed, prefixes included)
    message: str         # the text after the time stamp and host of a journal or kernel prefix
    ts: float | None     # seconds: kernel/monotonic stamp, or the journal's time of day
    ident: str | None    # the journal's syslog identifier ("systemd", "kernel", "ignition")


def _journal_seconds(m: re.Match[str]) -> float:
    return int(m.group("h")) * 3600 + int(m.group("m")) * 60 + float(m.group("s"))


def parse_line(no: int, text: str) -> LogLine:
    """Split a cleaned line into its stamp, identifier and message."""
    message, ts, ident = _LEVEL_OR_QUOTE.sub("", text, count=1), None, None
    jm = _JOURNAL_SHORT.match(message) or _JOURNAL_ISO.match(message)
    if jm and jm.groupdict().get("mon") in (None, *_MONTHS):
        # the identifier stays in the message ("ignition[812]: ..."), as on a console
        ts, ident, message = _journal_seconds(jm), jm.group("ident"), message[jm.start("ident"):]
    km = _KERNEL_TS.match(message)
    if km:
        if ts is None:
            ts = float(km.group(1))
        message = message[km.end():]
    else:
        dm = _DMESG_T.match(message)
        if dm:
            ts, message = _journal_seconds(dm), message[dm.end():]
    return LogLine(no, text, message, ts, ident)


class LineSplitter:
    """Chunks of console output in, complete cleaned lines out.

    ``\\n``, ``\\r\\n`` and a bare ``\\r`` all end a line (the spinner's rewritten line is a line of
    its own, so its counter is seen at once); blank lines are dropped.
    ``partial`` is the text of the line still open (a prompt, or a last line with no newline)."""

    def __init__(self) -> None:
        self._open = ""

    def feed(self, data: str) -> list[str]:
        text = self._open + data
        parts = re.split(r"\r\n|\n|\r", text)
        self._open = parts.pop()
        out: list[str] = []
        for part in parts:
            out.extend(self._pieces(part))
        if len(self._open) > MAX_LINE:      # no newline for this long: take it as lines as it is
            out.extend(self._pieces(self._open))
            self._open = ""
        return out

    def _pieces(self, raw: str) -> list[str]:
        line = clean(raw)
        if not line.strip():
            return []
        return [line[i:i + MAX_LINE] for i in range(0, len(line), MAX_LINE)]

    @property
    def partial(self) -> str:
        return clean(self._open)

    def close(self) -> list[str]:
        """The open line as a last line (end of input)."""
        rest, self._open = self._open, ""
        return self._pieces(rest) if rest.strip() else []
