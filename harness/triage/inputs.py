"""Logs to triage: a console or journal text file (``.gz`` too), standard input, or a livelab
run directory (its ``console.log``, with the phase timings of its ``timings.json``).

A file is read in chunks straight into the triage, so a log of any size takes bounded memory.
"""
from __future__ import annotations

import codecs
import gzip
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import LivelabError
from .engine import Triage, Verdict

CHUNK = 1 << 20


class UnreadableLog(LivelabError):
    """An input that is not there, not readable, or not a log."""

    exit_status = 2


@dataclass
class Triaged:
    """The verdict on one input, with what the run directory said about its phases."""

    name: str
    verdict: Verdict
    timings: dict[str, Any] = field(default_factory=dict)    # phase -> seconds (last boot of timings.json)

    def as_dict(self) -> dict[str, Any]:
        d = {"input": self.name, **self.verdict.as_dict()}
        if self.timings:
            d["phase_seconds"] = self.timings
        return d

    def summary(self) -> str:
        text = self.verdict.summary()
        if self.timings:
            text += "\nphase times (timings.json): " + ", ".join(
                f"{p} {s:g} s" for p, s in sorted(self.timings.items(), key=lambda kv: kv[1]))
        return text


def _feed(stream: IO[bytes], triage: Triage) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        triage.feed(decoder.decode(chunk))
    triage.feed(decoder.decode(b"", final=True))
    triage.close()


def _phase_seconds(timings_path: Path) -> dict[str, Any]:
    try:
        data = json.loads(timings_path.read_text(errors="replace"))
        boots = data.get("boots") or []
        phases = boots[-1].get("phases") if boots else data.get("phases")
        return {k: v for k, v in (phases or {}).items() if isinstance(v, (int, float))}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def triage_path(path: str | Path) -> Triaged:
    """The verdict on one input (``-`` is standard input); ``UnreadableLog`` when there is none."""
    triage = Triage()
    if str(path) == "-":
        _feed(sys.stdin.buffer, triage)
        return Triaged("-", triage.verdict())
    p = Path(path)
    timings: dict[str, Any] = {}
    if p.is_dir():
        console = p / "console.log"
        if not console.is_file():
            raise UnreadableLog(f"{p}: a directory, but not a livelab run directory (no console.log in it)")
        if (p / "timings.json").is_file():
            timings = _phase_seconds(p / "timings.json")
        p = console
    try:
        with open(p, "rb") as raw:
            if raw.read(2) == b"\x1f\x8b":
                raw.seek(0)
                with gzip.open(raw) as unzipped:
                    _feed(unzipped, triage)       # type: ignore[arg-type]
            else:
                raw.seek(0)
                _feed(raw, triage)
    except FileNotFoundError:
        raise UnreadableLog(f"{path}: no such file or directory") from None
    except IsADirectoryError:
        raise UnreadableLog(f"{path}: a directory, but not a livelab run directory") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UnreadableLog(f"{path}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    return Triaged(str(path), triage.verdict(), timings)


def triage_run_dir(run_dir: str | Path) -> Triaged | None:
    """The verdict on a run directory's console, or None when it has no console log (for reports)."""
    try:
        return triage_path(run_dir) if (Path(run_dir) / "console.log").is_file() else None
    except UnreadableLog:
        return None
