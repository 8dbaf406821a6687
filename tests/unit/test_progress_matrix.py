"""A matrix run's progress (harness.progress.matrix) and the boot lines in pytest's own output
(harness.progress.logs): cells done / running / failed, the time left from recorded durations, a
failure said when it happens; the pytest side in real pytest runs (with and without xdist)."""
import io
import json
import os
import subprocess
import sys
import textwrap

from harness.progress import matrix as pm

IDS = ["fcos.stable.pxe.bios.base", "fcos.stable.iso.bios.base", "fcos.stable.ipxe.bios.base"]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def node(cid):
    return f"scenarios/base.yaml::{cid}"


def test_counts_failures_at_once_and_the_time_left():
    clock, out = Clock(), io.StringIO()
    p = pm.MatrixProgress(IDS, workers=2, expected={IDS[0]: 60.0, IDS[1]: 40.0, IDS[2]: 100.0}, stream=out,
                          clock=clock)
    assert p.status() == "0/3 done, 0 running, 0 failed, ~1m40s left"       # 200 s of cells over 2 workers
    p.event({"event": "start", "id": node(IDS[0])})
    p.event({"event": "start", "id": node(IDS[1])})
    clock.now += 30
    assert p.eta() == (30 + 10 + 100) / 2
    p.event({"event": "fail", "id": node(IDS[1]), "reason": "fcos.stable.iso.bios.base: BootFailure: vm1: Ignition "
                                                          "failed: 'Ignition failed: ...'"})
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("livelab: matrix: FAILED fcos.stable.iso.bios.base after 30 s: fcos.stable.iso.bios.base: "
                           "BootFailure: vm1: Ignition failed")
    assert last.endswith("[1/3 done, 1 running, 1 failed, ~1m05s left]")      # (100 + 30) / 2
    # its teardown ends it without another line
    n = len(out.getvalue().splitlines())
    p.event({"event": "end", "id": node(IDS[1]), "outcome": "failed"})
    assert len(out.getvalue().splitlines()) == n
    p.event({"event": "start", "id": node(IDS[2])})
    clock.now += 20
    p.event({"event": "end", "id": node(IDS[0]), "outcome": "passed"})
    assert out.getvalue().splitlines()[-1] == ("livelab: matrix: passed fcos.stable.pxe.bios.base in 50 s "
                                               "[2/3 done, 1 running, 1 failed, ~1m03s left]")
    # the passed cell took 50 s for 60 s recorded: the rest is scaled by 5/6 (100 * 5/6 - 20)
    assert round(p.eta(), 1) == round(100 * 5 / 6 - 20, 1)
    # a rerun of the failed cell runs again
    p.event({"event": "start", "id": node(IDS[1])})
    assert "started fcos.stable.iso.bios.base (attempt 2)" in out.getvalue()
    assert p.count("running") == 2 and p.count("failed") == 0
    p.event({"event": "start", "id": "tests/unit/test_other.py::test_x"})      # not a cell: ignored
    assert p.count("running") == 2


def test_heartbeat_names_the_running_cells():
    clock = Clock()
    p = pm.MatrixProgress(IDS, workers=1, expected=dict.fromkeys(IDS, 50.0), stream=io.StringIO(), clock=clock)
    p.event({"event": "start", "id": node(IDS[2])})
    clock.now += 12
    assert p.heartbeat() == "0/3 done, 1 running, 0 failed, ~2m18s left (fcos.stable.ipxe.bios.base 12 s)"


TESTS = '''
import pytest, time

@pytest.mark.parametrize("cell", ["fcos.stable.pxe.bios.base", "fcos.stable.iso.bios.base",
                                  "fcos.stable.ipxe.bios.base"])
def test_cell(cell):
    time.sleep(0.2)
    if cell.startswith("fcos.stable.iso"):
        raise AssertionError("vm1: Ignition failed: 'Ignition failed: x'")
    if cell.startswith("fcos.stable.ipxe"):
        pytest.skip("no iPXE here")
'''


def _pytest(tmp_path, *args, env=None):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_the_pytest_child_reports_its_cells_and_the_parent_follows(tmp_path):
    (tmp_path / "test_cells.py").write_text(TESTS)
    out = io.StringIO()
    events = tmp_path / "out" / "attempts" / "events.jsonl"
    p = pm.MatrixProgress(IDS, workers=2, expected=dict.fromkeys(IDS, 1.0), events_path=events, stream=out)
    with p:
        assert os.environ[pm.EVENTS_ENV] == str(events)
        proc = _pytest(tmp_path, "-n", "2", "test_cells.py")
    assert pm.EVENTS_ENV not in os.environ
    assert proc.returncode == 1, proc.stdout + proc.stderr
    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = {(e["event"], pm.cell_id(e["id"].split("[", 1)[-1].rstrip("]"))) for e in recorded}
    assert ("fail", IDS[1]) in kinds and ("end", IDS[2]) in kinds and len(recorded) == 7
    fail = next(e for e in recorded if e["event"] == "fail")
    assert fail["reason"] == "AssertionError: vm1: Ignition failed: 'Ignition failed: x'"
    assert {e["outcome"] for e in recorded if e["event"] == "end"} == {"passed", "failed", "skipped"}


def test_cell_ids_of_scenario_node_ids():
    assert pm.cell_id("/abs/scenarios/base.yaml::fcos.stable.pxe.bios.base") == "fcos.stable.pxe.bios.base"


BOOTING = '''
import time
from harness.console import ConsoleTap
from harness.progress.boot import BootLog

def test_boot():
    tap = ConsoleTap(time.monotonic())
    tap.watchers.append(BootLog("vm-under-test"))
    tap.new_boot(time.monotonic())
    tap.reach("qemu_start", 0.0)
    tap.write("[    0.000000] Linux version 6.1.0 (debian)\\n")
    print("captured output")
'''


def test_boot_lines_in_pytest_output(tmp_path):
    (tmp_path / "test_boot.py").write_text(textwrap.dedent(BOOTING))
    plain = _pytest(tmp_path, "test_boot.py")
    assert plain.returncode == 0 and "vm-under-test" not in plain.stdout + plain.stderr
    verbose = _pytest(tmp_path, "-v", "test_boot.py")
    lines = [ln for ln in verbose.stdout.splitlines() if "vm-under-test" in ln]
    assert [ln.split()[4] for ln in lines] == ["qemu_start", "first_console", "kernel_start"], verbose.stdout
    assert lines[0].startswith("livelab: vm-under-test:") and "captured output" not in verbose.stdout
    live = _pytest(tmp_path, "--log-cli-level=INFO", "test_boot.py")
    assert "kernel_start" in live.stdout and "live log call" in live.stdout
    workers = _pytest(tmp_path, "-v", "-n", "2", "test_boot.py")
    assert workers.returncode == 0, workers.stdout + workers.stderr
    assert "livelab: vm-under-test:" in workers.stderr and "kernel_start" in workers.stderr
    assert "] livelab: vm-under-test:" in workers.stderr      # the worker's id first


def test_for_matrix_follows_the_output_directory(tmp_path):
    p = pm.for_matrix(IDS, tmp_path, 2, quiet=True, expected=dict.fromkeys(IDS, 10.0))
    assert p.events_path == tmp_path / "attempts" / "progress-events.jsonl" and p.expected[IDS[0]] == 10.0
    with p:
        p.events_path.write_text(json.dumps({"event": "start", "id": node(IDS[0])}) + "\n")
        p.poll()
    assert p.state[IDS[0]] == "running" and p.stream is sys.stdout


def test_a_worker_failure_reason_skips_the_xdist_platform_header():
    """Under pytest-xdist a worker's failure text starts with ``[gwN] <platform> -- Python ...``:
    the reason shown is the first line after it, as without xdist."""
    class Report:
        longrepr = None
        longreprtext = ("[gw0] linux -- Python 3.11.7 /work/main/.venv/bin/python\n"
                        "fcos.stable.iso.bios.base: BootFailure: vm: Ignition failed: line\nmore")
    assert pm.failure_reason(Report()) == "fcos.stable.iso.bios.base: BootFailure: vm: Ignition failed: line"
    Report.longreprtext = "[gw1] linux -- Python 3.11.7 /x/python\n"
    assert pm.failure_reason(Report()) == "failed"
