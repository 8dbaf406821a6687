"""A bisect's steps: each try of a release, its verdict, the retry of an unclear one, and ``bisect.json``.

``Bisection`` drives a ``Search`` with a ``probe`` (a release and the attempt number in, an
``Outcome`` out: ``probe.CaseProbe`` boots the pytest case; unit tests pass a fake).  Verdicts:

- **bad end first**: the bad release is tried in the first round; how it fails (its ``reason``:
  the console triage's ``lost: <reason>``, or the scenario check that failed) is the *reference*.
  A bad end that passes ends the bisect: there is nothing to search.
- **good**: the case passed.  **bad**: it failed with the reference's reason.
- **skip**: its artifacts are missing (nothing booted), or it failed for another reason twice.
- **flaky**: a failure with another reason than the reference's is not counted at once: the
  release is tried once more, and that try counts (good or bad; a second failure of another kind is
  a skip).  ``bisect.json`` keeps both tries.

Each round tries ``search.jobs`` releases at once (threads; each probe is its own pytest process,
and every VM start still waits for the host's memory admission).  ``bisect.json`` is written after
every round, so an interrupted bisect keeps what it found.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..atomic import atomic_write
from .search import BAD, GOOD, SKIP, Result, Search

SCHEMA = "livelab.bisect/1"
UNCLEAR = "unclear"         # a failure with another reason than the reference's: tried once more
PASS, FAIL, MISSING = "pass", "fail", "missing"


@dataclass
class Outcome:
    """What one try of a release gave."""

    release: str
    result: str                  # pass, fail, or missing (its artifacts are not published: nothing booted)
    reason: str = ""             # why it failed: "lost: <triage reason>", "check failed: ...", "missing: ..."
    message: str = ""            # the test's own failure message (first line)
    triage: str = ""             # the console triage's verdict (ok, lost: ..., no failure found; ...)
    run_dir: str | None = None   # the VM's run directory (console.log, vm.json, checks.log ...)
    seconds: float = 0.0

    @property
    def booted(self) -> bool:
        return self.result != MISSING


Probe = Callable[[str, int], Outcome]       # (release, attempt 1 or 2) -> what it gave


def judge(outcome: Outcome, reference: str) -> str:
    """good, bad, skip, or UNCLEAR (a failure whose reason is not the reference's)."""
    if outcome.result == PASS:
        return GOOD
    if outcome.result == MISSING:
        return SKIP
    return BAD if outcome.reason == reference else UNCLEAR


@dataclass
class Step:
    """One try of one release, as ``bisect.json`` records it."""

    step: int
    round: int
    release: str
    attempt: int
    verdict: str                 # good | bad | skip | retry (the first, unclear try of a release)
    outcome: Outcome
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "outcome"}
        o = asdict(self.outcome)
        o.pop("release")
        return {**d, **o}

    def line(self) -> str:
        """The step as printed: verdict and reason, then the console triage and the run directory."""
        o = self.outcome
        what = self.verdict + (f": {o.reason}" if o.reason and self.verdict != GOOD else "")
        text = f"step {self.step} (round {self.round}): {self.release} {what}"
        if self.note:
            text += f" [{self.note}]"
        if o.booted:
            text += f"\n    triage: {o.triage or 'no console log'}; {o.seconds:.0f} s; run dir {o.run_dir or '-'}"
        return text


@dataclass
class Report:
    """How a bisect ended: its answer (None when the bad end was not bad), every step, the boots."""

    result: Result | None
    steps: list[Step] = field(default_factory=list)
    reference: str = ""
    problem: str = ""

    @property
    def boots(self) -> int:
        return sum(1 for s in self.steps if s.outcome.booted)


class Bisection:
    """Tries releases of ``releases`` (oldest first; the first good, the last bad) with ``probe``,
    ``jobs`` at a time, until one good/bad boundary is left; ``record``: the bisect.json to keep."""

    def __init__(self, releases: Sequence[str], probe: Probe, jobs: int = 1, record: Path | None = None,
                 meta: dict[str, Any] | None = None, say: Callable[[str], None] = lambda line: None):
        self.search = Search(releases, jobs)
        self.probe = probe
        self.record_path = record
        self.meta = dict(meta or {})
        self.say = say
        self.report = Report(None)
        self.started = time.time()

    def _try(self, releases: list[str], attempt: int) -> dict[str, Outcome]:
        if len(releases) == 1:
            return {releases[0]: self.probe(releases[0], attempt)}
        with ThreadPoolExecutor(max_workers=len(releases)) as pool:
            futures = {r: pool.submit(self.probe, r, attempt) for r in releases}
            return {r: f.result() for r, f in futures.items()}

    def _step(self, rnd: int, outcome: Outcome, attempt: int, verdict: str, note: str = "") -> None:
        step = Step(len(self.report.steps) + 1, rnd, outcome.release, attempt, verdict, outcome, note)
        self.report.steps.append(step)
        self.say(step.line())

    def run(self) -> Report:
        search, bad_end = self.search, self.search.releases[-1]
        rnd = 0
        self.write()
        while not search.done:
            rnd += 1
            batch = search.next_round()
            last_good, first_bad = search.boundary()
            self.say(f"round {rnd}: trying {', '.join(batch)} ({len(search.untested())} untested between "
                     f"{last_good} and {first_bad})")
            got = self._try(batch, 1)
            if bad_end in got and not self._reference(rnd, got.pop(bad_end)):
                for outcome in got.values():        # tried beside the bad end: nothing to compare them with
                    self._step(rnd, outcome, 1, "unjudged", "the bad end did not fail")
                break
            unclear = []
            for release, outcome in got.items():
                verdict = judge(outcome, self.report.reference)
                if verdict == UNCLEAR:
                    unclear.append(release)
                    self._step(rnd, outcome, 1, "retry", "failed for another reason than the bad end: tried again")
                    continue
                search.record(release, verdict)
                self._step(rnd, outcome, 1, verdict)
            for release, outcome in (self._try(unclear, 2) if unclear else {}).items():
                verdict = judge(outcome, self.report.reference)
                if verdict == UNCLEAR:
                    verdict, note = SKIP, "failed twice for another reason than the bad end"
                else:
                    first = next(s for s in reversed(self.report.steps) if s.release == release).outcome
                    note = f"flaky: the first try failed ({first.reason})"
                search.record(release, verdict)
                self._step(rnd, outcome, 2, verdict, note)
            self.write()
        if not self.report.problem:
            self.report.result = search.result()
        self.write()
        return self.report

    def _reference(self, rnd: int, outcome: Outcome) -> bool:
        """The bad end's try: its failure reason becomes the reference; False when it did not fail."""
        if outcome.result == FAIL:
            self.report.reference = outcome.reason
            self.search.record(outcome.release, BAD)
            self._step(rnd, outcome, 1, BAD, "the bad end: later failures are compared with its reason")
            return True
        verdict = GOOD if outcome.result == PASS else SKIP
        self.search.record(outcome.release, verdict)
        self._step(rnd, outcome, 1, verdict, "the bad end")
        self.report.problem = (f"the bad release {outcome.release} passed: nothing to bisect"
                               if outcome.result == PASS else
                               f"the bad release {outcome.release} cannot be tried: {outcome.reason}")
        return False

    def document(self) -> dict[str, Any]:
        r = self.report
        return {"schema": SCHEMA, **self.meta, "releases": self.search.releases, "jobs": self.search.jobs,
                "started": self.started, "ended": time.time(), "reference": r.reference or None,
                "boots": r.boots, "steps": [s.as_dict() for s in r.steps],
                "result": r.result.as_dict() if r.result else None, "problem": r.problem or None}

    def write(self) -> None:
        if self.record_path is not None:
            atomic_write(self.record_path, json.dumps(self.document(), indent=2) + "\n", fsync=False)
