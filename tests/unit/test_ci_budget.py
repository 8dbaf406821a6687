"""CI's budget, checked: the `ci` subset estimated from the committed durations (tests/ci-durations.json)
stays within 60 of CI's 90 minutes.  A change that adds CI boots refreshes that file (README, "CI budget")."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import durations

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "tests" / "ci-durations.json"


def _collect(marker: str) -> list:
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-m", marker, "tests/e2e", "scenarios"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [line.strip() for line in proc.stdout.splitlines() if "::" in line]


@pytest.fixture(scope="module")
def ci_cases() -> dict:
    """Node id -> runs serially, for today's `ci` subset, as make test splits it."""
    serial = _collect("ci and serial")
    parallel = _collect("ci and not serial")
    assert serial and parallel
    return {**{n: True for n in serial}, **{n: False for n in parallel}}


@pytest.fixture(scope="module")
def reference() -> dict:
    return durations.load(REFERENCE)


def test_reference_is_a_measured_make_test(reference):
    assert reference["schema"] == durations.SCHEMA
    for phase in ("image_build_s", "unit_s"):
        assert reference["phases"].get(phase, 0) > 0, f"{phase} missing from {REFERENCE}"
    assert reference.get("workers", 1) >= 2, "the reference should come from make test's parallel run"
    assert all(c["seconds"] > 0 for c in reference["cases"].values())


def test_ci_subset_fits_the_budget(reference, ci_cases):
    est = durations.estimate(reference, ci_cases)
    print(est.describe())
    assert est.total_s <= durations.BUDGET_S, est.describe()


def test_every_ci_case_has_a_recorded_time(reference, ci_cases):
    """A case added to the CI subset without refreshing the reference counts 150 s; say so."""
    missing = [n for n in ci_cases if n not in reference["cases"]]
    assert not missing, f"refresh {REFERENCE.name} (README, CI budget): no recorded time for {missing}"


def test_a_made_up_long_case_breaks_the_budget(reference, ci_cases):
    """The same check fails when one more case, recorded at 40 minutes, joins the subset."""
    fake = "tests/e2e/test_made_up.py::test_forty_minutes"
    ref = json.loads(json.dumps(reference))
    ref["cases"][fake] = {"seconds": 2400.0, "parallel": False, "outcome": "passed"}
    est = durations.estimate(ref, {**ci_cases, fake: True})
    assert est.total_s > durations.BUDGET_S, est.describe()
    # as a parallel case it still costs its share
    est_p = durations.estimate(ref, {**ci_cases, fake: False})
    base = durations.estimate(reference, ci_cases)
    assert est_p.total_s == pytest.approx(base.total_s + 2400.0 / base.workers)


def test_unknown_cases_count_150_s():
    ref = {"schema": durations.SCHEMA, "workers": 2, "phases": {"image_build_s": 400.0, "unit_s": 60.0},
           "cases": {"a": {"seconds": 100.0}}}
    est = durations.estimate(ref, {"a": False, "b": False, "c": True})
    assert est.unknown == ["b", "c"]
    assert est.total_s == pytest.approx(460.0 + 150.0 + (100.0 + 150.0) / 2)
    # the fixed steps come from the file, not from constants
    ref["phases"]["image_build_s"] = 1000.0
    assert durations.estimate(ref, {"a": False}).total_s == pytest.approx(1060.0 + 50.0)


def test_time_records_a_phase_and_keeps_the_exit_status(tmp_path):
    f = tmp_path / "d.json"
    assert durations.main(["--file", str(f), "start"]) == 0
    assert durations.main(["--file", str(f), "time", "unit_s", "--", sys.executable, "-c", "exit(3)"]) == 3
    data = durations.load(f)
    assert "unit_s" in data["phases"] and data["phases"]["unit_s"] >= 0


def test_summary_names_the_limit_and_the_longest_cases():
    data = {"schema": durations.SCHEMA, "started_at": 0.0, "workers": 2,
            "phases": {"image_build_s": 400.0, "e2e_parallel_s": 1500.0},
            "cases": {f"t::c{i}": {"seconds": float(i), "parallel": i % 2 == 0, "outcome": "passed"}
                      for i in range(1, 13)}}
    text = durations.summary(data, now=41 * 60)
    assert "make test took 41m00s of CI's 90m00s limit" in text
    assert "e2e parallel (2 workers) 25m00s" in text
    lines = [line for line in text.splitlines() if "t::c" in line]
    assert len(lines) == 10 and "t::c12" in lines[0] and "t::c3" in lines[-1]
    assert "OVER" in durations.summary(data, now=91 * 60)


def test_recorder_under_xdist_writes_cases_and_junit_properties(tmp_path):
    """A real pytest -n 2 run with --durations-json: every case with its seconds, marked parallel,
    and the same figures as properties of the JUnit test cases."""
    (tmp_path / "test_two.py").write_text(
        "import time, pytest\n"
        "@pytest.mark.parametrize('n', [1, 2, 3])\n"
        "def test_sleep(n):\n    time.sleep(0.2 * n)\n")
    out, junit = tmp_path / "d.json", tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                           "--durations-json", str(out), f"--junitxml={junit}", "test_two.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = durations.load(out)
    assert data["workers"] == 2
    assert set(data["cases"]) == {f"test_two.py::test_sleep[{n}]" for n in (1, 2, 3)}
    for nodeid, case in data["cases"].items():
        n = int(nodeid[-2])
        assert case["parallel"] is True and case["outcome"] == "passed" and case["worker"].startswith("gw")
        assert 0.2 * n - 0.01 <= case["seconds"] < 0.2 * n + 5
    import xml.etree.ElementTree as ET
    props = {(tc.get("name"), p.get("name")): p.get("value")
             for tc in ET.parse(junit).getroot().iter("testcase") for p in tc.iter("property")}
    assert props[("test_sleep[3]", "livelab_parallel")] == "true"
    assert float(props[("test_sleep[3]", "livelab_wall_s")]) == data["cases"]["test_two.py::test_sleep[3]"]["seconds"]


def test_case_ids_drop_the_xdist_group():
    assert durations.case_id("tests/e2e/test_libvirt.py::test_libvirt_boot[pxe]@libvirt") == \
        "tests/e2e/test_libvirt.py::test_libvirt_boot[pxe]"
    assert durations.case_id("scenarios/base.yaml::fcos.stable.pxe.bios.base") == \
        "scenarios/base.yaml::fcos.stable.pxe.bios.base"
