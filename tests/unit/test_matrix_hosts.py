"""``livelab matrix --hosts``: the pytest it runs (xdist workers over SSH), each cell's host from its
report, and the report and the merge grouping cells by host."""
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from harness import matrix as mx
from harness import matrix_merge, report
from harness.cli import main

REPO = Path(__file__).resolve().parents[2]
REQUEST = ["fcos", "--streams", "stable", "--via", "pxe,iso", "--firmware", "bios,uefi"]     # 4 cells
PHASES = {"qemu_start": 0.0, "kernel_start": 5.0, "ignition_done": 30.0, "switch_root": 34.0,
          "login_prompt": 50.0, "ssh_ready": 56.0}
REAL_RUN_MATRIX = mx.run_matrix


def _two_host_pytest(t0: float = 1_800_000_000.0):
    """What pytest with two SSH workers leaves: the controller's JUnit names each case's host (the
    worker's report), and its run directory has each cell's files (written from the reports)."""
    calls = []

    def runner(cmd, cwd=None):
        calls.append((cmd, cwd, sorted(os.listdir(cwd)) if cwd else None))
        opt = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in cmd if a.startswith("--") and "=" in a}
        run_root = Path(opt["--run-dir"])
        cases = []
        for i, tid in enumerate(a.split("::")[-1] for a in cmd if "::" in a):
            host = ("lab-a", "lab-b")[i % 2]
            rd = run_root / mx.run_dir_name(tid)
            rd.mkdir(parents=True, exist_ok=True)
            (rd / "console.log").write_text(f"{tid} on {host}\nlogin:\n")
            (rd / "timings.json").write_text(json.dumps({"boots": [{"boot": 1, "phases": PHASES}]}))
            start = t0 + 60 * (i // 2)
            cases.append(f'<testcase classname="scenarios.base.yaml" name="{tid}" time="55.0"><properties>'
                         f'<property name="livelab_host" value="{host}"/>'
                         f'<property name="livelab_run_dir" value="{rd}"/>'
                         f'<property name="livelab_started" value="{start:.3f}"/>'
                         f'<property name="livelab_ended" value="{start + 55:.3f}"/></properties></testcase>')
        junit = Path(opt["--junitxml"])
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{"".join(cases)}'
                         '</testsuite></testsuites>')
        return 0

    return runner, calls


def _run(monkeypatch, out: Path, hosts: str = "ssh=lab@a,ssh=lab@b//chdir=/srv/tests"):
    runner, calls = _two_host_pytest()
    monkeypatch.setattr(mx, "run_matrix", lambda m, o, w, rerun, options, ex, hosts=(): REAL_RUN_MATRIX(
        m, o, w, rerun, options, ex, runner=runner, log=lambda _: None, hosts=hosts))
    monkeypatch.chdir(REPO)
    rc = main(["matrix", *REQUEST, "--hosts", hosts, "--host", "controller", "--vm-cpus", "1", "-o", str(out)])
    return rc, calls


def test_the_pytest_it_runs_reaches_the_hosts(tmp_path, monkeypatch):
    rc, calls = _run(monkeypatch, tmp_path / "out")
    assert rc == 0 and len(calls) == 1
    cmd, cwd, listing = calls[0]
    assert "--dist=load" in cmd and "-n" not in cmd
    assert [a for a in cmd if a.startswith("--tx=")] == [
        f"--tx=ssh=lab@a//python={__import__('sys').executable}//chdir={REPO}",
        f"--tx=ssh=lab@b//chdir=/srv/tests//python={__import__('sys').executable}"]
    # node ids and scenario directories relative to the checkout (each worker starts in its own) ...
    ids = [a for a in cmd if "::" in a]
    assert ids and all(a.startswith("scenarios/base.yaml::fcos.stable.") for a in ids)
    assert "--scenario-dir=scenarios" in cmd and "--vm-cpus=1" in cmd
    assert f"--run-dir={tmp_path / 'out' / 'runs'}" in cmd
    # ... and pytest runs in an empty directory of its own, where no argument names a file (xdist would refuse it)
    assert listing == [] and not Path(cwd).exists() and not any(Path(a.split("::")[0]).is_absolute() for a in ids)


def test_each_cell_is_on_the_host_its_report_names_and_the_report_groups_by_host(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _run(monkeypatch, out)
    summary = json.loads((out / "summary.json").read_text())
    by = {c["id"]: c for c in summary["cells"]}
    on = {c["id"]: c["host"] for c in summary["cells"]}
    assert sorted(on.values()) == ["lab-a", "lab-a", "lab-b", "lab-b"]
    for c in summary["cells"]:
        assert c["history"][0]["host"] == c["host"] and c["shard"] == "1/1"
        assert (out / c["console_log"]).read_text().startswith(f"{c['id']} on {c['host']}")
    assert summary["shard"]["host"] == "controller"            # the run itself: where it was driven from
    # the JUnit file of the run names each case's host
    props = {tc.get("name"): {p.get("name"): p.get("value") for p in tc.iter("property")}
             for tc in ET.parse(out / "junit.xml").getroot().iter("testcase")}
    assert {tid: p["livelab_host"] for tid, p in props.items()} == on
    assert all(list(p).count("livelab_host") == 1 for p in
               ([q.get("name") for q in tc.iter("property")] for tc in ET.parse(out / "junit.xml").getroot()
                .iter("testcase")))

    rows = report.host_totals(summary, summary["cells"])
    assert [(r["host"], r["cells"], r["pass"], r["attempts"]) for r in rows] == [("lab-a", 2, 2, 2), ("lab-b", 2, 2, 2)]
    html = (out / "report.html").read_text()
    sections = re.findall(r'<section class="host" data-run="[^"]*"><h3>(.*?)</h3>(.*?)</section>', html)
    assert [h for h, _ in sections] == ["lab-a &#183; shard 1/1", "lab-b &#183; shard 1/1"]
    for heading, body in sections:
        host = heading.split(" ")[0]
        assert sorted(re.findall(r'<g class="run-bar pass" data-id="([^"]+)">', body)) == sorted(
            tid for tid, h in on.items() if h == host)
    for tid, host in on.items():
        assert re.search(rf'id="vm-{re.escape(tid)}">.*?on <span class="host">{host}</span>', html), tid
    assert by  # every cell passed through the summary


def test_a_merge_keeps_each_attempt_on_its_host(tmp_path, monkeypatch):
    _run(monkeypatch, tmp_path / "out")
    merged = matrix_merge.merge(tmp_path / "merged", [tmp_path / "out"], log=lambda _: None)
    on = {c["id"]: (c["host"], c["history"][0]["host"]) for c in merged["cells"]}
    assert sorted(h for h, _ in on.values()) == ["lab-a", "lab-a", "lab-b", "lab-b"]
    assert all(a == b for a, b in on.values())
    rows = report.host_totals(merged, merged["cells"])
    assert [(r["host"], r["cells"]) for r in rows] == [("lab-a", 2), ("lab-b", 2)]
    assert len({r["run"] for r in rows}) == 1                   # one run, two hosts


def test_a_single_host_shard_is_one_row_as_before(tmp_path):
    cells = [{"id": "fcos.stable.pxe.bios.base", "os": "fcos", "stream": "stable", "method": "pxe",
              "firmware": "bios", "scenario": "base", "result": "pass", "duration": 1.0, "host": "h",
              "history": [{"attempt": 1, "result": "pass", "duration": 1.0, "host": "h"}]},
             {"id": "fcos.stable.pxe.uefi.base", "os": "fcos", "stream": "stable", "method": "pxe",
              "firmware": "uefi", "scenario": "base", "result": "pass", "duration": 1.0,
              "history": [{"attempt": 1, "result": "pass", "duration": 1.0}]}]          # an older summary: no host
    summary = {"shard": {"host": "h", "label": "1/1", "started": 0.0, "ended": 5.0}}
    rows = report.host_totals(summary, cells)
    assert [(r["host"], r["cells"], r["attempts"]) for r in rows] == [("h", 2, 2)]
