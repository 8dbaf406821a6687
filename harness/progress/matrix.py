"""A ``livelab matrix`` run as it goes: cells done, running and failed, and the time left.

The matrix runs its cells in a pytest child (with xdist).  Two halves talk through a file of JSON
lines named by ``$LIVELAB_PROGRESS_EVENTS``:

- ``CellEvents``, a pytest plugin on the child's controller (``record_events``, from the livelab
  plugin's ``pytest_configure``), appends ``{"event": "start" | "fail" | "end", "id": NODE_ID, ...}``
  as xdist reports each test starting, failing (with its reason, at once) and ending;
- ``MatrixProgress``, around the run in the parent (a context manager: it names the file in the
  environment the child inherits and follows it in a thread), prints a line per start, failure and
  end, and a status line when nothing happened for ``heartbeat_s`` seconds: cells done / running /
  failed and an estimate of the time left from each cell's expected seconds (the shard plan's:
  recorded durations, else estimated; ``harness.matrix_shards``), scaled by how long this run's
  finished cells took against theirs.

A cell that fails and starts again (``--rerun``) counts as running again.
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, TextIO

EVENTS_ENV = "LIVELAB_PROGRESS_EVENTS"
HEARTBEAT_S = 30.0
_MAX_REASON = 200


def cell_id(nodeid: str) -> str:
    """A cell's id from a pytest node id (``scenarios/base.yaml::fcos.stable.pxe.bios.base``)."""
    return nodeid.rsplit("::", 1)[-1]


# pytest-xdist heads a worker's failure text with the worker's platform line
_XDIST_HEADER = re.compile(r"^\[gw\d+\] \S+ -- Python ")


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip() and not _XDIST_HEADER.match(ln.strip())), "")
    return line if len(line) <= _MAX_REASON else line[:_MAX_REASON - 1] + "…"


def _mmss(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


# ---------------------------------------------------------------- the pytest side (the child)

def failure_reason(report: Any) -> str:
    """The first line of a failed report: its crash message, else its text (a scenario case's
    ``repr_failure`` is one line: ``<id>: BootFailure: <vm>: <reason>: <line>``)."""
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    text = getattr(crash, "message", None) or getattr(report, "longreprtext", "") or ""
    return _first_line(text) or "failed"


class CellEvents:
    """pytest plugin for the controller: a JSON line per test start, failure and end."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.failed: set[str] = set()
        self.skipped: set[str] = set()

    def _write(self, **event: Any) -> None:
        event["t"] = round(time.time(), 3)
        with open(self.path, "a") as f:     # one short write per line: readers never see half a line
            f.write(json.dumps(event) + "\n")

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.failed.discard(nodeid)
        self.skipped.discard(nodeid)
        self._write(event="start", id=nodeid)

    def pytest_runtest_logreport(self, report: Any) -> None:
        nodeid = report.nodeid
        if report.failed and nodeid not in self.failed:
            self.failed.add(nodeid)
            self._write(event="fail", id=nodeid, when=report.when, reason=failure_reason(report))
        elif report.skipped and report.when in ("setup", "call"):
            self.skipped.add(nodeid)
        if report.when == "teardown":
            outcome = "failed" if nodeid in self.failed else "skipped" if nodeid in self.skipped else "passed"
            self._write(event="end", id=nodeid, outcome=outcome)


def record_events(config: Any) -> CellEvents | None:
    """Register ``CellEvents`` when ``$LIVELAB_PROGRESS_EVENTS`` names a file (and take the name
    out of the environment: a pytest that a test starts must not write there too)."""
    path = os.environ.pop(EVENTS_ENV, None)
    if not path:
        return None
    plugin = CellEvents(path)
    config.pluginmanager.register(plugin, "livelab-progress-events")
    return plugin


# ---------------------------------------------------------------- the parent

class MatrixProgress:
    """The cells of one matrix run as they go (see the module).  ``event(dict)`` takes one event;
    as a context manager it follows ``events_path`` while the run goes on."""

    def __init__(self, ids: Sequence[str], workers: int, expected: dict[str, float],
                 events_path: Path | str | None = None, stream: TextIO | None = None, quiet: bool = False,
                 heartbeat_s: float = HEARTBEAT_S, clock: Callable[[], float] = time.monotonic):
        self.ids = list(ids)
        self.workers = max(1, int(workers))
        self.expected = expected
        self.events_path = Path(events_path) if events_path is not None else None
        self.stream = stream if stream is not None else sys.stdout
        self.quiet = quiet
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.state = dict.fromkeys(self.ids, "waiting")   # waiting | running | passed | failed | skipped
        self.started: dict[str, float] = {}
        self.took: dict[str, float] = {}                     # finished cells: seconds this run
        self.attempts = dict.fromkeys(self.ids, 0)
        self._lock = threading.RLock()
        self._last_out = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._offset = 0
        self._partial = b""
        self._env_before: str | None = None

    # ------------------------------------------------------------------ counts and the estimate
    def count(self, *states: str) -> int:
        return sum(1 for s in self.state.values() if s in states)

    def _scale(self) -> float:
        """How long this run's passed cells took against their recorded times (0.25 to 4; a failure
        ends early and says nothing of the host's speed)."""
        done = [i for i in self.took if self.took[i] > 0 and self.state[i] == "passed"]
        if not done:
            return 1.0
        ratio = sum(self.took[i] for i in done) / max(1e-6, sum(self.expected[i] for i in done))
        return min(4.0, max(0.25, ratio))

    def eta(self) -> float:
        """Seconds left: the waiting cells' expected time and the running cells' rest, over the
        workers (never less than the longest running rest)."""
        now, scale = self.clock(), self._scale()
        waiting = sum(self.expected[i] * scale for i in self.ids if self.state[i] == "waiting")
        rests = [max(0.0, self.expected[i] * scale - (now - self.started[i]))
                 for i in self.ids if self.state[i] == "running"]
        slots = min(self.workers, max(1, self.count("waiting", "running")))
        return max((waiting + sum(rests)) / slots, max(rests, default=0.0))

    def status(self) -> str:
        total = len(self.ids)
        done = self.count("passed", "failed", "skipped")
        parts = [f"{done}/{total} done", f"{self.count('running')} running", f"{self.count('failed')} failed"]
        if done < total:
            parts.append(f"~{_mmss(self.eta())} left")
        return ", ".join(parts)

    # ------------------------------------------------------------------ events
    def event(self, ev: dict) -> None:
        """One event of the pytest child (see ``CellEvents``)."""
        cid = cell_id(str(ev.get("id", "")))
        kind = ev.get("event")
        with self._lock:
            if cid not in self.state:
                return
            now = self.clock()
            if kind == "start":
                self.state[cid] = "running"
                self.started[cid] = now
                self.attempts[cid] += 1
                again = f" (attempt {self.attempts[cid]})" if self.attempts[cid] > 1 else ""
                self.say(f"started {cid}{again}")
            elif kind == "fail" and self.state[cid] == "running":
                self.state[cid] = "failed"
                self.took[cid] = now - self.started.get(cid, now)
                self.say(f"FAILED {cid} after {self.took[cid]:.0f} s: {ev.get('reason') or 'failed'}")
            elif kind == "end":
                if self.state[cid] == "running":
                    outcome = str(ev.get("outcome"))
                    self.state[cid] = outcome if outcome in ("passed", "failed", "skipped") else "failed"
                    self.took[cid] = now - self.started.get(cid, now)
                    self.say(f"{self.state[cid]} {cid} in {self.took[cid]:.0f} s")
                elif self.state[cid] == "failed":     # its failure was said; its teardown is over
                    self.took[cid] = now - self.started.get(cid, now)

    def say(self, text: str, status: bool = True) -> None:
        with self._lock:
            self._last_out = self.clock()
            if self.quiet:
                return
            self.stream.write(f"livelab: matrix: {text}" + (f" [{self.status()}]" if status else "") + "\n")
            self.stream.flush()

    def heartbeat(self) -> str:
        now = self.clock()
        running = [f"{i} {now - self.started[i]:.0f} s" for i in self.ids if self.state[i] == "running"]
        return self.status() + (f" ({'; '.join(running)})" if running else "")

    # ------------------------------------------------------------------ following the child
    def poll(self) -> None:
        """Read the events added to the file since the last poll."""
        if self.events_path is None:
            return
        try:
            with open(self.events_path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict):
                self.event(ev)

    def _follow(self) -> None:
        while not self._stop.wait(0.5):
            self.poll()
            with self._lock:
                if self.clock() - self._last_out >= self.heartbeat_s and self.count("waiting", "running"):
                    self.say(self.heartbeat(), status=False)

    def __enter__(self) -> MatrixProgress:
        if self.events_path is not None:
            self.events_path.parent.mkdir(parents=True, exist_ok=True)
            self.events_path.write_bytes(b"")
            self._env_before = os.environ.get(EVENTS_ENV)
            os.environ[EVENTS_ENV] = str(self.events_path)
            self._thread = threading.Thread(target=self._follow, name="matrix-progress", daemon=True)
            self._thread.start()
        self.say(f"{len(self.ids)} cell(s), {self.workers} worker(s)")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.events_path is not None:
            if self._env_before is None:
                os.environ.pop(EVENTS_ENV, None)
            else:
                os.environ[EVENTS_ENV] = self._env_before
            self.poll()


def for_matrix(ids: Sequence[str], output_dir: Path, workers: int, expected: dict[str, float],
               quiet: bool = False) -> MatrixProgress:
    """The progress of a matrix run writing to ``output_dir`` (its events in ``attempts/``);
    ``expected``: each cell's seconds (harness.matrix_shards: recorded durations, else estimated)."""
    return MatrixProgress(ids, workers, expected=expected,
                          events_path=Path(output_dir) / "attempts" / "progress-events.jsonl", quiet=quiet)
