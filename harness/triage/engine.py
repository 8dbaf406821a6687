"""The triage of one log, line by line: live (the console tap feeds it as QEMU writes) or after
the fact (``livelab triage`` feeds a file).  Both give the same verdict for the same text.

``Triage.feed(text)`` takes chunks; ``failure`` is set on the line that ends the boot (a fatal
line, or a stall line past its bound) and names the earliest line of that boot that explains
it; later matches become its consequences.  ``verdict()`` sums it up.
"""
from __future__ import annotations

import collections
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from .rules import EMERGENCY, FATAL, NEW_BOOT, NOTE, PHASES, RULES, STALL, Phase, Rule
from .text import LineSplitter, LogLine, parse_line

MAX_CONSEQUENCES = 20
MAX_NOTES = 50
_FAILED_UNITS = re.compile(r"Failed Units: (\d+)")
_LISTED_UNIT = re.compile(r"^\s+(\S+\.(?:service|mount|socket|target|device|timer|path|scope|swap))\s*$")


@dataclass
class Finding:
    """A line that matched a rule."""

    reason: str
    severity: str
    line: LogLine
    rule: Rule
    detail: str = ""       # for a stall: what crossed the bound ("41 s", "12 attempts")
    demoted: bool = False  # its rule's severity did not hold (a stall below its bound, an `unless` that held)

    @property
    def source(self) -> str:
        return self.rule.source

    @property
    def explains(self) -> bool:
        return self.rule.explains and not self.demoted

    def as_dict(self) -> dict[str, Any]:
        d = {"reason": self.reason, "severity": self.severity, "line_no": self.line.no, "line": self.line.text.strip(),
             "source": self.source}
        if self.detail:
            d["detail"] = self.detail
        return d


@dataclass
class Failure:
    """Why a boot was lost: the deciding line (the earliest that explains it), the line that
    ended the boot (the same line unless an earlier line explained it), the lines
    around the deciding line, and what followed."""

    reason: str
    deciding: Finding
    trigger: Finding
    boot: int
    context: list[LogLine] = field(default_factory=list)
    after: int = 5                      # lines still to keep after the deciding line
    consequences: list[Finding] = field(default_factory=list)

    @property
    def line(self) -> str:
        return self.deciding.line.text.strip()

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "boot": self.boot, "deciding": self.deciding.as_dict(),
                "trigger": self.trigger.as_dict(), "context": [[ln.no, ln.text] for ln in self.context],
                "consequences": [c.as_dict() for c in self.consequences]}


@dataclass
class Verdict:
    status: str                     # "ok", "lost" or "incomplete" (no failure, and the boot never got to a login)
    failure: Failure | None
    phases: dict[str, int]          # phase -> line number, of the last boot (of the lost one if lost)
    notes: list[Finding]
    boots: int
    lines: int

    @property
    def last_phase(self) -> str:
        return max(self.phases, key=lambda p: self.phases[p]) if self.phases else "none"

    @property
    def headline(self) -> str:
        if self.failure is not None:
            return f"lost: {self.failure.reason}"
        if self.status == "ok":
            return "ok"
        return f"no failure found; last phase {self.last_phase}"

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.headline, "status": self.status,
                "reason": self.failure.reason if self.failure else None,
                "failure": self.failure.as_dict() if self.failure else None, "phases": self.phases,
                "last_phase": self.last_phase, "notes": [n.as_dict() for n in self.notes], "boots": self.boots,
                "lines": self.lines}

    def summary(self, context: bool = True) -> str:
        """The verdict as text: headline, deciding line with its context, consequences, phases."""
        out = [self.headline]
        f = self.failure
        if f is not None:
            out.append(f"deciding line {f.deciding.line.no}: {f.line}")
            if f.deciding.source:
                out.append(f"  (printed by {f.deciding.source})")
            if f.trigger.line.no != f.deciding.line.no:
                out.append(f"boot lost at line {f.trigger.line.no} ({f.trigger.reason}): {f.trigger.line.text.strip()}"
                           + (f" [{f.trigger.detail}]" if f.trigger.detail else ""))
            elif f.trigger.detail:
                out.append(f"  stalled: {f.trigger.detail}")
            if context and f.context:
                out.append("context:")
                width = len(str(f.context[-1].no))
                for ln in f.context:
                    out.append(f"  {'>' if ln.no == f.deciding.line.no else ' '} {ln.no:>{width}} | {ln.text}")
            if f.consequences:
                out.append("consequences:")
                out.extend(f"  line {c.line.no} ({c.reason}): {c.line.text.strip()}" for c in f.consequences)
        phases = ", ".join(f"{p} (line {n})" for p, n in sorted(self.phases.items(), key=lambda kv: kv[1]))
        out.append(f"phases: {phases or 'none'}")
        if self.notes:
            out.append("notes:")
            out.extend(f"  line {n.line.no} ({n.reason}): {n.line.text.strip()}" for n in self.notes[:10])
            if len(self.notes) > 10:
                out.append(f"  … and {len(self.notes) - 10} more")
        return "\n".join(out)


def _timespan(text: str) -> float:
    """systemd's format_timespan ("1min 30s", "2h 5min", "45.5s", "500ms") in seconds."""
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(h|min|ms|us|s)", text):
        total += float(num) * {"h": 3600, "min": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    return total


class Triage:
    """Line-by-line boot triage over ``rules`` (``RULES`` unless told otherwise)."""

    def __init__(self, rules: Iterable[Rule] = RULES, phases: Iterable[Phase] = PHASES, keep_lines: int = 200,
                 ignored: Collection[str] = ()) -> None:
        self.rules = list(rules)
        self.phase_patterns = list(phases)
        self.ignored = ignored          # reasons never reported (kept by reference: the tap's list may grow)
        self.lines: collections.deque[LogLine] = collections.deque(maxlen=keep_lines)
        self.splitter = LineSplitter()
        self.n = 0                                    # lines so far
        self.boot = 0                                 # boots seen ("Linux version" lines), 0 before the first
        self.failure: Failure | None = None
        self.notes: list[Finding] = []
        self.on_phase: Callable[[str, LogLine], None] | None = None
        self.on_failure: Callable[[Failure], None] | None = None
        self.on_line: Callable[[LogLine], None] | None = None
        self._peeked: int | None = None               # the open line's number, if it already decided the failure
        self._reset_boot()

    # ------------------------------------------------------------------ input
    def feed(self, data: str) -> None:
        for text in self.splitter.feed(data):
            self._line(text)
        self._peek()

    def close(self) -> None:
        """End of input: the open last line counts as a line."""
        for text in self.splitter.close():
            self._line(text)

    def new_boot(self) -> None:
        """A reset or power cycle: the next boot starts with a clean slate (the failure too)."""
        self.failure = None
        self.notes = []
        self._peeked = None
        self._reset_boot()

    def _reset_boot(self) -> None:
        self.phases: dict[str, int] = {}
        self._explaining: list[Finding] = []
        self._recent: collections.deque[tuple[int, str]] = collections.deque(maxlen=64)   # (line no, reason)
        self._first_ts: dict[int, float] = {}
        self._counts: dict[int, int] = {}
        self._listing = 0

    # ------------------------------------------------------------------ lines
    def _line(self, text: str) -> None:
        self.n += 1
        line = parse_line(self.n, text)
        self.lines.append(line)
        if self.on_line:
            self.on_line(line)
        if self.failure is not None and self.failure.after > 0:
            self.failure.context.append(line)
            self.failure.after -= 1
        # a new boot: the kernel's banner (stamped, or the first one; not `cat /proc/version` in a shell)
        if NEW_BOOT.search(line.message) and (line.ts is not None or line.ident == "kernel" or self.boot == 0):
            self.boot += 1
            if self.boot > 1:
                self._reset_boot()
        for phase in self.phase_patterns:
            if phase.name not in self.phases and phase.pattern.search(line.message):
                self.phases[phase.name] = line.no
                if self.on_phase:
                    self.on_phase(phase.name, line)
        if self._peeked == line.no:          # its failure was decided while the line was open
            self._peeked = None
            return
        found = self._match(self._listed(line))
        if found is not None:
            self._record(found)

    def _listed(self, line: LogLine) -> LogLine:
        """A unit in a login banner's "Failed Units: N" list reads as "failed unit (listed): X"."""
        m = _FAILED_UNITS.search(line.message)
        if m:
            self._listing = min(int(m.group(1)), 50)
            return line
        if self._listing:
            u = _LISTED_UNIT.match(line.message)
            if u:
                self._listing -= 1
                return line._replace(message=f"failed unit (listed): {u.group(1)}")
            self._listing = 0
        return line

    def _match(self, line: LogLine, severities: tuple[str, ...] = (FATAL, STALL, NOTE),
               peek: bool = False) -> Finding | None:
        for rule in self.rules:
            if rule.severity not in severities or (peek and not rule.peek):
                continue
            m = rule.pattern.search(line.message)
            if m is None:
                continue
            if rule.phase == "initrd" and "switch_root" in self.phases:
                continue
            if rule.phase == "root" and "switch_root" not in self.phases:
                continue
            if rule.requires is not None and not any(f.reason == rule.requires for f in self._explaining):
                continue                     # not this rule without its cause: the later rules decide
            return self._classify(rule, line, m)
        return None

    def _classify(self, rule: Rule, line: LogLine, m: re.Match[str]) -> Finding:
        severity, detail = rule.severity, ""
        if rule.unless is not None:
            reasons, within = rule.unless
            if any(r in reasons and line.no - no <= within for no, r in self._recent):
                severity = NOTE
        if severity == STALL and rule.stall is not None:
            value = self._measure(rule, line, m)
            if value is None or value < rule.stall.bound:
                severity = NOTE
            else:
                detail = f"{value:g} {rule.stall.unit} (bound {rule.stall.bound:g} {rule.stall.unit})"
        return Finding(rule.reason, severity, line, rule, detail, demoted=severity != rule.severity)

    def _measure(self, rule: Rule, line: LogLine, m: re.Match[str]) -> float | None:
        assert rule.stall is not None
        if rule.stall.measure == "elapsed":
            return _timespan(m.group("elapsed") or m.group("elapsed2") or "")
        if rule.stall.measure == "count":
            return float(m.group("n"))
        if rule.stall.measure == "occurrences":
            self._counts[id(rule)] = self._counts.get(id(rule), 0) + 1
            return float(self._counts[id(rule)])
        if line.ts is None:
            return None
        first = self._first_ts.setdefault(id(rule), line.ts)
        return round(line.ts - first, 3)

    def _record(self, found: Finding) -> None:
        if found.reason in self.ignored:
            return
        self._recent.append((found.line.no, found.reason))
        explains = found.explains
        if self.failure is not None:
            # what followed, each rule once (a status line and its journal copy say the same)
            if ((found.severity != NOTE or explains) and len(self.failure.consequences) < MAX_CONSEQUENCES
                    and found.rule is not self.failure.deciding.rule
                    and all(c.rule is not found.rule for c in self.failure.consequences)):
                self.failure.consequences.append(found)
            return
        if found.severity == NOTE:
            if found.demoted and found.rule.severity == STALL:
                return                                      # progress below its bound: not even a note
            if explains:
                if len(self._explaining) < MAX_NOTES:       # the earliest are the ones that can decide
                    self._explaining.append(found)
            elif len(self.notes) < MAX_NOTES:
                self.notes.append(found)
            return
        if explains:
            self._explaining.append(found)
        self._fail(found)

    def _specific(self) -> list[Finding]:
        """The explaining lines of this boot that name a cause of their own (not only emergency
        mode: a unit failing in the initramfs names one only when nothing more specific did)."""
        return [f for f in self._explaining if f.reason != EMERGENCY]

    def _context(self, deciding: Finding) -> list[LogLine]:
        """The kept lines around a deciding line (its rule says how many before and after)."""
        before, after = deciding.rule.context
        return [ln for ln in self.lines if deciding.line.no - before <= ln.no <= deciding.line.no + after]

    def _fail(self, trigger: Finding) -> None:
        # the earliest line that names a cause
        deciding = (self._specific() or self._explaining or [trigger])[0]
        after = deciding.rule.context[1]
        context = self._context(deciding)
        if context and context[-1].no < deciding.line.no:       # the open line (peeked) is not in self.lines yet
            context.append(deciding.line)
        remaining = max(0, deciding.line.no + after - (context[-1].no if context else deciding.line.no))
        self.failure = Failure(deciding.reason, deciding, trigger, self.boot, context, remaining)
        for f in self._explaining:
            if f is not deciding and f is not trigger and len(self.failure.consequences) < MAX_CONSEQUENCES:
                self.failure.consequences.append(f)
        if self.on_failure:
            self.on_failure(self.failure)

    def _explained_later(self, failure: Failure) -> Failure:
        """A boot lost on a line that explains nothing (the emergency shell, a failed /sysroot
        mount) whose cause shows only after it: the live console could not know it yet; the
        verdict on the whole log names it.  (FCOS's emergency shell prints the failed units' logs
        unit by unit, so a dump can show a consequence before its cause.)"""
        later = [c for c in failure.consequences if c.explains and c.reason != EMERGENCY]
        if not later:
            return failure
        cause = later[0]
        rest = [failure.deciding, *(c for c in failure.consequences if c is not cause)]
        return Failure(cause.reason, cause, failure.trigger, failure.boot, self._context(cause), 0,
                       rest[:MAX_CONSEQUENCES])

    def _peek(self) -> None:
        """A console that falls silent on a fatal line with no newline yet still fails on it."""
        if self.failure is not None or self._peeked is not None:
            return
        text = self.splitter.partial
        if not text.strip():
            return
        line = parse_line(self.n + 1, text)
        found = self._match(line, (FATAL,), peek=True)
        if found is not None and found.reason not in self.ignored:
            self._peeked = line.no
            self._recent.append((line.no, found.reason))
            self._fail(found)

    # ------------------------------------------------------------------ result
    def verdict(self) -> Verdict:
        """The verdict so far.  A log that ends (or a console that falls silent) after a line that
        explains a failure, before the boot got to a login, is lost for that reason too."""
        failure = self.failure
        healthy = "login_prompt" in self.phases or "multi_user" in self.phases
        # (a cause with a name of its own: a unit that failed in the initramfs, with nothing after
        # it, says too little; the log may be an excerpt of a boot that went on)
        specific = self._specific()
        if failure is None and specific and not healthy:
            first = specific[0]
            last = self.lines[-1] if self.lines else first.line
            ended = Finding(first.reason, NOTE, last, first.rule, "the log ends after it, before a login")
            failure = Failure(first.reason, first, ended, self.boot, self._context(first), 0,
                              [f for f in self._explaining if f is not first][:MAX_CONSEQUENCES])
        if failure is not None and not failure.deciding.explains:
            failure = self._explained_later(failure)
        status = "lost" if failure is not None else "ok" if healthy else "incomplete"
        return Verdict(status, failure, dict(self.phases), list(self.notes), max(self.boot, 1), self.n)


def triage_text(text: str, **kw: Any) -> Verdict:
    """The verdict on a whole log."""
    t = Triage(**kw)
    t.feed(text)
    t.close()
    return t.verdict()
