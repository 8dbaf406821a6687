"""Test wall times and the CI budget estimated from them.

A durations file (JSON, ``livelab.durations/1``) holds what one ``make test`` took:

    {"schema": "livelab.durations/1", "started_at": 1795300000.0, "machine": {"cpus": 2, ...},
     "workers": 2,                                   # xdist workers of the parallel part
     "phases": {"image_build_s": 402.1, "unit_s": 61.0, ...},   # fixed steps before the e2e cases
     "cases": {"<node id>": {"seconds": 97.2, "parallel": true, "outcome": "passed", "worker": "gw1"}}}

- ``DurationsRecorder`` is the pytest side (``pytest --durations-json PATH``): on the controller it
  adds each test's setup + call + teardown seconds to ``cases`` and to the JUnit file (properties
  ``livelab_wall_s`` and ``livelab_parallel``).
- ``python3 -m harness.durations start|time|report`` are the Makefile's side: a fresh file, a timed
  step written to ``phases``, and the closing summary against CI's limit.
- ``estimate()`` is the budget: the fixed phases, plus the serial cases, plus the parallel cases
  divided by the workers; a case with no recorded time counts ``UNKNOWN_CASE_S``.

Standard library only: the Makefile runs it with the system Python before the venv exists.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .atomic import atomic_write

SCHEMA = "livelab.durations/1"
CI_LIMIT_S = 90 * 60          # CI stops a run here, and such a run does not land
BUDGET_S = 60 * 60            # what the estimate may reach: the rest is CI's margin
UNKNOWN_CASE_S = 150.0        # a case nobody has timed yet
# phases that come before the end-to-end cases (the e2e_* phases are the cases themselves)
FIXED_PHASES = ("setup_s", "image_build_s", "lint_s", "unit_s", "libvirt_setup_s")

_F = TypeVar("_F", bound=Callable[..., Any])

try:                          # the recorder is a pytest plugin; the rest runs without pytest
    import pytest
    _tryfirst = pytest.hookimpl(tryfirst=True)
except ImportError:           # pragma: no cover
    def _tryfirst(f: _F) -> _F:
        return f


# ---------------------------------------------------------------- the file

def load(path: Path | str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return new_record()
    except ValueError as exc:
        raise SystemExit(f"livelab: {path}: not a durations file ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise SystemExit(f"livelab: {path}: not a durations file (schema is not {SCHEMA})")
    data.setdefault("phases", {})
    data.setdefault("cases", {})
    return data


def save(path: Path | str, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True) + "\n", fsync=False)


def machine() -> dict:
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"cpus": os.cpu_count() or 1, "mem_total_mib": mem}


def new_record() -> dict:
    return {"schema": SCHEMA, "started_at": time.time(), "machine": machine(), "phases": {}, "cases": {}}


# ---------------------------------------------------------------- the pytest side

def case_id(nodeid: str) -> str:
    """A node id as collection names it: without the ``@group`` that ``--dist loadgroup`` appends."""
    return re.sub(r"@[\w.-]+$", "", nodeid) if "::" in nodeid else nodeid


class DurationsRecorder:
    """Registered on the pytest controller by ``--durations-json PATH`` (see pytest_plugin)."""

    def __init__(self, config: pytest.Config):
        self.path = Path(config.getoption("--durations-json"))
        n = getattr(config.option, "numprocesses", None)
        self.workers = n if isinstance(n, int) and n > 0 else 1
        self.parallel = self.workers > 1
        self.seconds: dict[str, float] = {}
        self.cases: dict[str, dict] = {}

    @_tryfirst
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        nodeid = case_id(report.nodeid)
        self.seconds[nodeid] = self.seconds.get(nodeid, 0.0) + (report.duration or 0.0)
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.cases[nodeid] = {"outcome": report.outcome}
        if report.when != "teardown":
            return
        wall = round(self.seconds.get(nodeid, 0.0), 2)
        case = self.cases.setdefault(nodeid, {"outcome": report.outcome})
        if report.outcome == "failed":
            case["outcome"] = "error"
        case.update(seconds=wall, parallel=self.parallel)
        worker = getattr(report, "node", None)
        if worker is not None:
            case["worker"] = getattr(getattr(worker, "gateway", None), "id", None) or str(worker)
        # junitxml writes the teardown report's properties into the test case
        report.user_properties.append(("livelab_wall_s", wall))
        report.user_properties.append(("livelab_parallel", str(self.parallel).lower()))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        data = load(self.path)
        for nodeid, case in self.cases.items():
            if "seconds" in case:
                data["cases"][nodeid] = case
        if self.parallel:
            data["workers"] = self.workers
        save(self.path, data)


# ---------------------------------------------------------------- the budget

@dataclass
class Estimate:
    fixed_s: float
    serial_s: float
    parallel_sum_s: float
    workers: int
    unknown: list[str]

    @property
    def total_s(self) -> float:
        return self.fixed_s + self.serial_s + self.parallel_sum_s / self.workers

    def describe(self) -> str:
        unknown = f"; {len(self.unknown)} case(s) with no recorded time counted {UNKNOWN_CASE_S:.0f} s each" \
            if self.unknown else ""
        return (f"estimated make test: {_mmss(self.total_s)} = fixed steps {_mmss(self.fixed_s)} + serial cases "
                f"{_mmss(self.serial_s)} + parallel cases {_mmss(self.parallel_sum_s)} / {self.workers} workers"
                f" (budget {_mmss(BUDGET_S)}, CI limit {_mmss(CI_LIMIT_S)}){unknown}")


def estimate(reference: dict, cases: dict[str, bool], workers: int | None = None) -> Estimate:
    """The CI time of ``cases`` (node id -> runs serially) from the recorded ``reference``."""
    recorded = reference.get("cases", {})
    phases = reference.get("phases", {})
    workers = max(1, int(workers or reference.get("workers") or 1))
    fixed = sum(float(phases.get(k, 0.0)) for k in FIXED_PHASES)
    serial = parallel = 0.0
    unknown = []
    for nodeid, is_serial in cases.items():
        seconds = (recorded.get(nodeid) or {}).get("seconds")
        if seconds is None:
            unknown.append(nodeid)
            seconds = UNKNOWN_CASE_S
        if is_serial:
            serial += float(seconds)
        else:
            parallel += float(seconds)
    return Estimate(fixed, serial, parallel, workers, unknown)


def _mmss(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


def summary(data: dict, now: float | None = None, top: int = 10) -> str:
    """The closing lines of ``make test``: its total against CI's limit, the steps, the longest cases."""
    now = time.time() if now is None else now
    total = now - float(data.get("started_at", now))
    lines = [f"livelab CI budget: make test took {_mmss(total)} of CI's {_mmss(CI_LIMIT_S)} limit "
             f"({100 * total / CI_LIMIT_S:.0f}%; the budget for the estimate is {_mmss(BUDGET_S)})"]
    phases = data.get("phases", {})
    if phases:
        workers = data.get("workers")
        lines.append("  steps: " + ", ".join(
            f"{k[:-2].replace('_', ' ')}{f' ({workers} workers)' if k == 'e2e_parallel_s' and workers else ''}"
            f" {_mmss(v)}" for k, v in phases.items()))
    cases = sorted(data.get("cases", {}).items(), key=lambda kv: -kv[1].get("seconds", 0.0))
    if cases:
        lines.append(f"  the {min(top, len(cases))} longest of {len(cases)} end-to-end cases:")
        for nodeid, case in cases[:top]:
            lines.append(f"  {case.get('seconds', 0.0):7.1f} s  {'parallel' if case.get('parallel') else 'serial  '}"
                         f"  {case.get('outcome', '?'):7}  {nodeid}")
    if total > CI_LIMIT_S:
        lines.append(f"livelab CI budget: OVER CI's limit by {_mmss(total - CI_LIMIT_S)}: this run would not land")
    return "\n".join(lines)


# ---------------------------------------------------------------- the Makefile's side

def join_junit(out: Path | str, inputs: Iterable[Path | str]) -> None:
    """One JUnit file from several pytest runs (missing inputs are left out)."""
    import xml.etree.ElementTree as ET
    root = ET.Element("testsuites")
    for path in inputs:
        if not Path(path).is_file():
            continue
        tree = ET.parse(path).getroot()
        for suite in ([tree] if tree.tag == "testsuite" else tree.iter("testsuite")):
            suite.set("name", f"{suite.get('name', 'pytest')}:{Path(path).stem}")
            root.append(suite)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m harness.durations",
                                description="durations of make test, and its CI budget")
    p.add_argument("--file", default="runs/ci-durations.json", help="the durations file (default %(default)s)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("start", help="start a fresh durations file (the clock of make test starts here)")
    t = sub.add_parser("time", help="run a command and record its seconds as a phase")
    t.add_argument("phase", help="phase name, e.g. image_build_s")
    t.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    sub.add_parser("report", help="print the total against CI's limit and the ten longest cases")
    j = sub.add_parser("junit", help="join JUnit files into one (their <testsuite>s under one <testsuites>)")
    j.add_argument("out")
    j.add_argument("inputs", nargs="+")
    args = p.parse_args(argv)
    if args.cmd == "junit":
        join_junit(args.out, args.inputs)
        return 0
    if args.cmd == "start":
        save(args.file, new_record())
        return 0
    if args.cmd == "time":
        cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not cmd:
            p.error("time: no command after the phase")
        t0 = time.monotonic()
        rc = subprocess.call(cmd)
        data = load(args.file)
        data["phases"][args.phase] = round(time.monotonic() - t0, 1)
        save(args.file, data)
        return rc
    print(summary(load(args.file)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
