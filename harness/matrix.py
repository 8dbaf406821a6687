"""The nightly matrix: validate a request, build its test ids, run them under pytest-xdist, classify.

A matrix is ``<os> x streams x methods x firmware x disk sectors x scenarios``; each cell is one
scenario case (``scenarios/<scenario>.yaml::<os>.<stream>.<method>.<firmware>.<scenario>[.4k]``).
Every value is checked against :mod:`harness.vocab` before anything runs.  A cell the vocabulary
refuses (``vocab.refusal``: ``iso-as-disk`` on 4096-byte sectors, a network boot under
``uefi-secure``) is not run: it is listed with its reason (``Matrix.refused``) and the report shows it
"not applicable", never counted as failed.  Cells that fail can be re-run (``rerun``);
a cell that fails and then passes is *flaky*, never a plain pass.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import runtime
from . import scenario as sc
from .atomic import atomic_write
from .errors import LivelabError
from .hosts import worker_count
from .triage.inputs import triage_run_dir
from .vocab import (
    CASE_ID_RE,
    DISK_SUFFIX,
    FIRMWARES,
    OS_METHODS,
    SECTORS,
    STREAMS,
    TestId,
    check_firmware,
    check_method,
    check_os,
    check_stream,
    memory_minimum,
    parse_sector,
    refusal,
)


@dataclass(frozen=True)
class Cell:
    id: str
    os: str
    stream: str
    method: str
    firmware: str
    scenario: str
    memory_mib: int
    scenario_file: str = ""       # the scenario's YAML (its pytest node id is <file>::<id>)
    boots: int = 1                # how many boots the scenario makes (the duration estimate scales with it)
    sector: int = 512             # the disks' sector size (4096: the id ends in .4k)


@dataclass
class Matrix:
    os: str
    streams: list[str]
    methods: list[str]
    firmware: list[str]
    scenarios: list[str]
    cells: list[Cell]
    dropped: list[str] = field(default_factory=list)   # requested cells no scenario applies to
    refused: list[dict] = field(default_factory=list)  # {"id", "reason"}: requested cells that cannot boot
    sectors: list[int] = field(default_factory=lambda: [512])

    scenario_dirs: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.cells]

    def node_id(self, test_id: str, relative_to: Path | None = None) -> str:
        return node_id(next(c for c in self.cells if c.id == test_id), relative_to)

    def meta(self) -> dict:
        return {"os": self.os, "streams": self.streams, "methods": self.methods,
                "firmware": self.firmware, "sectors": self.sectors, "scenarios": self.scenarios,
                "refused": list(self.refused)}


def split_list(text: str | Sequence[str]) -> list[str]:
    """``"a, b,a"`` (or a list of such) -> ``["a", "b"]``: order kept, duplicates dropped."""
    items = text if isinstance(text, (list, tuple)) else [text]
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def default_scenario_dirs() -> list[Path]:
    """``./scenarios`` when there is one (as in a livelab checkout or a user's repo)."""
    here = Path.cwd() / "scenarios"
    return [here] if here.is_dir() else []


def parse_sectors(text: str | Sequence[str] | None) -> list[int] | None:
    """``--sector 512,4096`` -> ``[512, 4096]`` (each one ``vocab.SECTORS`` has); None: not given."""
    if not text:
        return None
    return [parse_sector(item) for item in split_list(text)]


def build_matrix(os_id: str, streams: str | Sequence[str] | None = None, methods: str | Sequence[str] | None = None,
                 firmware: str | Sequence[str] | None = None, scenarios: str | Sequence[str] | None = None,
                 scenario_dirs: Sequence[Path] | None = None, sectors: str | Sequence[str] | None = None) -> Matrix:
    """Validate a request and list its cells (defaults: every stream, method and firmware; ``base``;
    512-byte sectors, and 4096 where the scenario offers it: a 4Kn cell is asked for by name or
    ``sectors``, or offered)."""
    check_os(os_id)
    streams = split_list(streams) if streams else list(STREAMS[os_id])
    methods = split_list(methods) if methods else list(OS_METHODS[os_id])
    firmware = split_list(firmware) if firmware else list(FIRMWARES)
    scenarios = split_list(scenarios) if scenarios else ["base"]
    asked_sectors = parse_sectors(sectors)
    for s in streams:
        check_stream(os_id, s)
    for m in methods:
        check_method(os_id, m)
    for f in firmware:
        check_firmware(f)
    dirs = sc.scenario_dirs(default_scenario_dirs() if scenario_dirs is None else scenario_dirs)
    if not dirs:
        raise LivelabError("no scenario directory: run from a directory with scenarios/, or pass --scenario-dir DIR")
    loaded = []
    for name in scenarios:
        path = next((d / f"{name}.yaml" for d in dirs if (d / f"{name}.yaml").is_file()), None)
        if path is None:
            known = ", ".join(sorted({p.stem for d in dirs for p in d.glob("*.yaml")})) or "none"
            raise LivelabError(f"unknown scenario {name!r}: expected one of {known}")
        loaded.append(sc.load(path))
    cells: list[Cell] = []
    dropped: list[str] = []
    refused: list[dict] = []
    for scen in loaded:
        offered = {case.id for case in scen.cases()}
        offered_if_bootable = {case.id for case in scen.cases(with_refused=True)}
        for stream in streams:
            for method in methods:
                for fw in firmware:
                    for sector in asked_sectors or SECTORS:
                        tid = str(TestId(os_id, stream, method, fw, scen.name, DISK_SUFFIX.get(sector)))
                        why = refusal(method, fw, sector)
                        if why and (asked_sectors or tid in offered_if_bootable):
                            refused.append({"id": tid, "reason": why})
                            continue
                        if tid not in offered:
                            if asked_sectors or sector == 512:    # unasked 4Kn cells: only those offered
                                dropped.append(tid)
                            continue
                        mem = scen.memory or memory_minimum(os_id, method).mib
                        cells.append(Cell(tid, os_id, stream, method, fw, scen.name, mem, str(scen.path),
                                          len(scen.boots), sector))
    if not cells and not refused:
        raise LivelabError(f"no cell of this matrix is offered by scenario(s) {', '.join(scenarios)} "
                           f"(e.g. {dropped[0]})")
    return Matrix(os_id, streams, methods, firmware, scenarios, cells, dropped, refused=refused,
                  sectors=asked_sectors or list(SECTORS), scenario_dirs=[str(d) for d in dirs])


def compute_workers(memories: Sequence[int], requested: int | str | None = None, mem_available: int | None = None,
                    cpus: int | None = None) -> int:
    """pytest-xdist workers: ``requested``, or what memory and CPUs allow (never more than cells).

    auto: ``runtime.plan_workers`` for the largest VM of the matrix.
    """
    n_cells = max(1, len(memories))
    n = runtime.count_or_auto(requested, "--workers")
    if n is not None:
        return min(n, n_cells)
    return min(runtime.plan_workers(max(memories or [0]), mem_available, cpus), n_cells)


def node_id(cell: Cell, relative_to: Path | None = None) -> str:
    """The pytest node id of a cell: its scenario file (absolute, or relative to ``relative_to``:
    what workers on other hosts resolve in their own checkout) and its id."""
    path = os.path.relpath(cell.scenario_file, relative_to) if relative_to is not None else cell.scenario_file
    return f"{path}::{cell.id}"


def run_dir_name(test_id: str) -> str:
    """The directory the pytest plugin gives a test's VM (``LivelabSession.run_dir_for``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", test_id)


def pytest_command(node_ids: Iterable[str], junit: Path, run_dir: Path, workers: int,
                   options: dict | None = None, extra: Sequence[str] = (),
                   scenario_dirs: Sequence[str] = (), hosts: Sequence[str] = ()) -> list[str]:
    """The pytest invocation for ``ids``; ``options``: mirror, keyring, ignition_spec_table, extend_timeout,
    vm_cpus.  ``hosts``: ``--tx`` values of workers on other hosts (``harness.hosts``), instead of
    ``workers`` local ones; then every option names its value in one argument (``--run-dir=DIR``),
    since xdist refuses, for a remote worker, an argument that names a file of this machine."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "harness.matrix_clock", "-rfE"]
    cmd += ["--dist=load", *(f"--tx={h}" for h in hosts)] if hosts else ["-n", str(workers)]
    pairs = [("--junitxml", str(junit)), ("--run-dir", str(run_dir))]
    pairs += [(f"--{key.replace('_', '-')}", str(value)) for key, value in (options or {}).items()
              if value not in (None, "", 0, 0.0)]
    pairs += [("--scenario-dir", str(d)) for d in scenario_dirs]
    for flag, value in pairs:
        cmd += [f"{flag}={value}"] if hosts else [flag, value]
    return cmd + list(extra) + list(node_ids)


# ---------------------------------------------------------------- results of one pytest run

# JUnit properties of each case (harness.matrix_clock): the wall clock at its set-up and after its tear-down
CLOCK_STARTED = "livelab_started"
CLOCK_ENDED = "livelab_ended"
# ... and (harness.pytest_plugin) its VMs' run directories and the host of a remote worker that ran it
RUN_DIR_PROPERTY = "livelab_run_dir"
HOST_PROPERTY = "livelab_host"


@dataclass
class Attempt:
    result: str                        # pass | fail | skip
    duration: float = 0.0
    run_dirs: list[str] = field(default_factory=list)
    message: str = ""
    started: float | None = None       # wall clock at its set-up and at the end of its tear-down
    ended: float | None = None         # (JUnit properties of harness.matrix_clock)
    host: str | None = None            # the host it ran on, when a worker on another host ran it


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def parse_junit(path: Path, run_root: Path | None = None) -> dict[str, Attempt]:
    """Test id -> Attempt for every scenario case of a pytest JUnit file."""
    out: dict[str, Attempt] = {}
    if not Path(path).is_file():
        return out
    for case in ET.parse(path).getroot().iter("testcase"):
        m = CASE_ID_RE.match(case.get("name", ""))
        if not m:
            continue
        tid = m.group("id")
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        skipped = case.find("skipped")
        if bad is not None:
            result, message = "fail", _first_line(bad.get("message")) or _first_line(bad.text)
        elif skipped is not None:
            result, message = "skip", _first_line(skipped.get("message"))
        else:
            result, message = "pass", ""
        props = [(p.get("name"), p.get("value", "")) for p in case.iter("property")]
        dirs = [value for name, value in props if name == RUN_DIR_PROPERTY]
        clock = {name: _seconds(value) for name, value in props if name in (CLOCK_STARTED, CLOCK_ENDED)}
        host = next((value for name, value in props if name == HOST_PROPERTY and value), None)
        if not dirs and run_root is not None and (Path(run_root) / run_dir_name(tid)).is_dir():
            dirs = [str(Path(run_root) / run_dir_name(tid))]
        out[tid] = Attempt(result, float(case.get("time") or 0.0), dirs, message,
                           clock.get(CLOCK_STARTED), clock.get(CLOCK_ENDED), host)
    return out


def _seconds(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def classify(attempts: Sequence[Attempt]) -> str:
    """pass (first try), flaky (failed, then passed), skip, or fail (never passed)."""
    results = [a.result for a in attempts]
    if "pass" in results:
        return "pass" if results.index("pass") == 0 else "flaky"
    if results and all(r == "skip" for r in results):
        return "skip"
    return "fail"


def _rel(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base) if Path(path).resolve().is_relative_to(base.resolve()) else str(path)
    except (OSError, ValueError):
        return str(path)


def _artifacts(run_dir: str | None, output_dir: Path) -> dict:
    if not run_dir:
        return {"run_dir": None, "console_log": None}
    rd = Path(run_dir)
    console = rd / "console.log"
    return {"run_dir": _rel(rd, output_dir), "console_log": _rel(console, output_dir) if console.is_file() else None}


def make_cell(cell: Cell, attempts: Sequence[Attempt], output_dir: Path) -> dict:
    """The summary.json record of one cell from its attempts (in order)."""
    output_dir = Path(output_dir)
    result = classify(attempts)
    final = next((a for a in attempts if a.result == "pass"), attempts[-1]) if attempts else Attempt("fail")
    timings = None
    if final.run_dirs and (Path(final.run_dirs[0]) / "timings.json").is_file():
        try:
            timings = json.loads((Path(final.run_dirs[0]) / "timings.json").read_text())
        except ValueError:
            timings = None
    failed = [a for a in attempts if a.result == "fail"]
    # the console triage of the failure the message comes from (the same summary a failed test's report has)
    triaged = triage_run_dir(failed[0].run_dirs[0]) if failed and failed[0].run_dirs else None
    history = [{"attempt": i + 1, "result": a.result, "duration": round(a.duration, 2), "message": a.message,
                **_artifacts(a.run_dirs[0] if a.run_dirs else None, output_dir),
                **({"started": a.started, "ended": a.ended} if a.started is not None else {}),
                **({"host": a.host} if a.host else {})}
               for i, a in enumerate(attempts)]
    return {"id": cell.id, "os": cell.os, "stream": cell.stream, "method": cell.method,
            "firmware": cell.firmware, "scenario": cell.scenario, "result": result,
            "attempts": len(attempts), "duration": round(sum(a.duration for a in attempts), 2),
            **_artifacts(final.run_dirs[0] if final.run_dirs else None, output_dir),
            "timings": timings,
            "message": (failed[0].message or "failed") if failed and result in ("fail", "flaky") else "",
            "triage": ({"verdict": triaged.verdict.headline, "summary": triaged.summary()}
                       if triaged is not None and result in ("fail", "flaky") else None),
            **({"host": final.host} if final.host else {}),
            "history": history}


# ---------------------------------------------------------------- the run

Runner = Callable[..., int]


def _subprocess_runner(cmd: list[str], cwd: Path | None = None) -> int:
    """pytest in the current directory: its ini file (mirror, keyring) applies, as to a plain run.
    ``cwd``: the controller of workers on other hosts runs elsewhere (``run_matrix``)."""
    return subprocess.run(cmd, cwd=cwd).returncode


def run_matrix(matrix: Matrix, output_dir: Path, workers: int, rerun: int = 0, options: dict | None = None,
               extra: Sequence[str] = (), runner: Runner = _subprocess_runner,
               log: Callable[[str], None] = print, hosts: Sequence[str] = ()) -> list[dict]:
    """Run every cell (then re-run failures up to ``rerun`` times); return the summary cells.

    Attempt n writes ``attempts/junit-<n>.xml`` and its VMs under ``runs`` (n = 1) or ``runs-rerun<n-1>``.
    ``hosts``: run on workers on other hosts (``--tx`` values, ``harness.hosts``), each started in its
    host's checkout: the node ids and scenario directories are given relative to the current
    directory, and pytest runs in an empty directory of its own, where none of them names a file
    (xdist refuses an argument naming a local file it would have to copy).
    """
    output_dir = Path(output_dir).resolve()
    (output_dir / "attempts").mkdir(parents=True, exist_ok=True)
    atomic_write(output_dir / "ids.txt", "".join(f"{matrix.node_id(i)}\n" for i in matrix.ids), fsync=False)
    attempts: dict[str, list[Attempt]] = {i: [] for i in matrix.ids}
    todo = list(matrix.ids)
    project = Path.cwd() if hosts else None
    dirs = [os.path.relpath(d, project) for d in matrix.scenario_dirs] if hosts else matrix.scenario_dirs
    for n in range(1, max(0, rerun) + 2):
        run_root = output_dir / ("runs" if n == 1 else f"runs-rerun{n - 1}")
        junit = output_dir / "attempts" / f"junit-{n}.xml"
        w = worker_count(hosts) if hosts else min(workers, len(todo))
        log(f"livelab: matrix attempt {n}: {len(todo)} cell(s), {w} worker(s)"
            + (f" on {len(hosts)} host(s)" if hosts else ""))
        cmd = pytest_command([matrix.node_id(t, project) for t in todo], junit, run_root, w, options, extra,
                             dirs, hosts)
        if hosts:
            with tempfile.TemporaryDirectory(prefix="livelab-controller-") as cwd:
                rc = runner(cmd, cwd=Path(cwd))
        else:
            rc = runner(cmd)
        got = parse_junit(junit, run_root)
        for tid in todo:
            attempts[tid].append(got.get(tid) or Attempt("fail", message=f"no result: pytest exited {rc}"))
        todo = [t for t in todo if attempts[t][-1].result == "fail"]
        if not todo or (not got and rc not in (0, 1)):   # pytest itself failed: a rerun would too
            break
    by_id = {c.id: c for c in matrix.cells}
    return [make_cell(by_id[t], attempts[t], output_dir) for t in matrix.ids]


def attempt_files(output_dir: Path) -> list[Path]:
    files = list((Path(output_dir) / "attempts").glob("junit-*.xml"))
    return sorted(files, key=lambda p: int(p.stem.split("-")[1]))
