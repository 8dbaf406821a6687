"""One try of one release: the failed pytest case, run again with the release pinned.

``CaseProbe`` first resolves the release and checks that its server publishes the artifacts the
boot method needs (opened, not downloaded); a release without them is ``missing`` and nothing
boots.  Otherwise the case runs as ``livelab matrix`` runs a cell: its own pytest process
(``harness.matrix.run_matrix``, ``--release <version>``), its output in ``pytest.log`` beside the
run directories.  Its failure reason, what bad and skip are judged by:

- ``lost: <reason>``: the console triage found the line that lost the boot;
- ``check failed: boot N: <check>``: a scenario check failed (its ``checks.log`` line);
- ``failed: <message>``: anything else, the test's message with its numbers left out.
"""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

from .. import artifacts
from .. import matrix as mx
from .. import scenario as sc
from ..errors import LivelabError
from ..lab import artifact_kinds
from ..triage.inputs import triage_run_dir
from .steps import FAIL, MISSING, PASS, Outcome

_FAILED_LINE = re.compile(r"^boot (\d+): FAILED (.*)$")


def check_reason(run_dir: Path, scenario: sc.Scenario) -> str | None:
    """``check failed: boot N: <check>`` from the run's checks.log, or None when no check failed."""
    try:
        lines = (run_dir / "checks.log").read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        m = _FAILED_LINE.match(line)
        if not m:
            continue
        boot, text = int(m.group(1)), m.group(2)
        checks = scenario.boots[boot - 1].checks if 0 < boot <= len(scenario.boots) else []
        names = [c.describe() for c in checks if text.startswith(c.describe() + ":")]
        return f"check failed: boot {boot}: {max(names, key=len) if names else text.split(':', 1)[0]}"
    return None


def message_reason(message: str, test_id: str) -> str:
    """``failed: <message>``: its first line, the test id in front and every number left out (times,
    sizes, ports and pids differ from try to try)."""
    first = next((line.strip() for line in message.splitlines() if line.strip()), "failed")
    if first.startswith(test_id + ":"):
        first = first[len(test_id) + 1:].strip()
    return "failed: " + re.sub(r"\d+(?:\.\d+)?", "N", first)[:200]


class CaseProbe:
    """Tries releases of ``cell``'s stream with its pytest case; each try in ``out/steps/``.

    ``options``: the pytest options with a value (mirror, keyring, vm_cpus ...); ``flags``: those
    without one (``--insecure`` ...); ``mirror``, ``cache_dir`` and ``offline`` also serve the
    artifact check.
    """

    def __init__(self, matrix: mx.Matrix, out: Path, options: dict[str, Any], flags: list[str],
                 mirror: str | None, cache_dir: str | None = None, offline: bool = False):
        (self.cell,) = matrix.cells
        self.matrix = matrix
        self.out = Path(out)
        self.options = options
        self.flags = flags
        self.mirror = mirror
        self.cache_dir = cache_dir
        self.offline = offline
        self.scenario = sc.load(Path(self.cell.scenario_file))

    def missing(self, release: str) -> list[str]:
        """The artifacts of ``release`` that its server does not publish (every one when the release's
        own metadata cannot be read)."""
        c = self.cell
        kinds = artifact_kinds(c.os, c.method)
        try:
            rel = artifacts.resolve(c.os, c.stream, version=release, mirror=self.mirror, cache_dir=self.cache_dir,
                                    offline=self.offline)
        except LivelabError as exc:
            return [f"{', '.join(kinds)} ({exc.one_line()})"]
        return artifacts.missing(rel, kinds, cache_dir=self.cache_dir, offline=self.offline)

    def __call__(self, release: str, attempt: int) -> Outcome:
        gone = self.missing(release)
        if gone:
            return Outcome(release, MISSING, reason="artifacts missing: " + "; ".join(gone))
        return self.run_case(release, attempt)

    def run_case(self, release: str, attempt: int) -> Outcome:
        """The case's pytest run on ``release`` (its ``attempt``-th try), in ``out/steps/<release>-try<n>``."""
        step_dir = self.out / "steps" / f"{release}-try{attempt}"
        step_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        (cell,) = mx.run_matrix(self.matrix, step_dir, 1, 0, {**self.options, "release": release}, self.flags,
                                runner=_logged(step_dir / "pytest.log"), log=lambda line: None)
        seconds = time.monotonic() - t0
        run_dir = step_dir / cell["run_dir"] if cell.get("run_dir") else None
        triaged = triage_run_dir(run_dir) if run_dir is not None else None
        triage = triaged.verdict.headline if triaged is not None else ""
        shown = str(run_dir) if run_dir is not None else None
        if cell["result"] == "pass":
            return Outcome(release, PASS, triage=triage, run_dir=shown, seconds=seconds)
        message = cell.get("message") or (cell["history"][-1]["message"] if cell.get("history") else "")
        if triaged is not None and triaged.verdict.failure is not None:
            reason = f"lost: {triaged.verdict.failure.reason}"
        else:
            reason = (check_reason(run_dir, self.scenario) if run_dir is not None else None) or \
                message_reason(message, cell["id"])
        return Outcome(release, FAIL, reason=reason, message=message.splitlines()[0] if message else "",
                       triage=triage, run_dir=shown, seconds=seconds)


def _logged(log: Path) -> mx.Runner:
    """A pytest runner that keeps the run's output in ``log`` (the bisect prints its own lines)."""
    def run(cmd: list[str]) -> int:
        with open(log, "ab") as f:
            f.write(("$ " + " ".join(cmd) + "\n").encode())
            f.flush()
            return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    return run
