"""Sharded matrices without a VM: cells as data, the balanced split, shard outputs and their merge."""
import json
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import pytest

from harness import matrix as mx
from harness import matrix_merge, report, vocab
from harness import matrix_shards as shards
from harness.cli import main
from harness.errors import LivelabError

# 8 cells: 2 streams x 2 methods x 2 firmware, scenario base
REQUEST = ["fcos", "--streams", "stable,next", "--via", "pxe-rootfs-url,iso", "--firmware", "bios,uefi"]
PHASES = {"qemu_start": 0.0, "first_console": 1.0, "kernel_start": 4.0, "ignition_done": 20.0,
          "switch_root": 25.0, "login_prompt": 40.0, "ssh_ready": 45.0}
T0 = 1_800_000_000.0
REAL_RUN_MATRIX = mx.run_matrix


def _cells(n_streams=2):
    return mx.build_matrix("fcos", ["stable", "next", "testing"][:n_streams], "pxe-rootfs-url,iso", "bios,uefi").cells


# ---------------------------------------------------------------- the split

@pytest.mark.parametrize("text,expected", [("1/1", (1, 1)), ("2/4", (2, 4)), (" 3 / 3 ", (3, 3))])
def test_parse_shard(text, expected):
    s = shards.parse_shard(text)
    assert (s.index, s.count) == expected and s.label == f"{expected[0]}/{expected[1]}"


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0", "-1/2", ""])
def test_bad_shards_are_one_line(text):
    with pytest.raises(LivelabError, match=r"--shard .*expected K/N with 1 <= K <= N"):
        shards.parse_shard(text)


def test_split_is_longest_first_to_the_least_loaded_shard():
    cells = _cells()[:5]
    seconds = dict(zip([c.id for c in cells], [10.0, 9.0, 8.0, 7.0, 1.0]))
    a, b, c, d, e = (x.id for x in cells)
    # a(10)->1, b(9)->2, c(8)->2 (9 < 10), d(7)->1 (10 < 17), e(1)->1 (17 = 17: the lower shard)
    got = [[x.id for x in s] for s in shards.split(cells, 2, seconds)]
    assert got == [[a, d, e], [b, c]]
    # the same whatever order the cells come in (ties broken by id), each shard in the matrix's order
    again = shards.split(list(reversed(cells)), 2, seconds)
    assert [sorted(x.id for x in s) for s in again] == [sorted(s) for s in got]


def test_split_partitions_and_balances():
    cells = _cells(3)
    seconds = {c.id: 30.0 + (i * 37) % 100 for i, c in enumerate(cells)}
    for n in (1, 2, 3, 5, len(cells), len(cells) + 3):
        parts = shards.split(cells, n, seconds)
        assert len(parts) == n
        ids = [c.id for p in parts for c in p]
        assert sorted(ids) == sorted(c.id for c in cells) and len(set(ids)) == len(ids)
        loads = [sum(seconds[c.id] for c in p) for p in parts]
        if n <= len(cells):
            # longest-first greedy: no shard is more than one cell ahead of the least loaded one
            assert max(loads) - min(loads) <= max(seconds.values())
        else:
            assert sum(1 for p in parts if not p) == n - len(cells)


def test_estimate_from_method_memory_and_boots(tmp_path):
    m = mx.build_matrix("fcos", "stable", "pxe-rootfs-url,pxe", "bios", "base,persist-var")
    by = {c.id: c for c in m.cells}
    base_url = shards.estimate(by["fcos.stable.pxe-rootfs-url.bios.base"])
    base_pxe = shards.estimate(by["fcos.stable.pxe.bios.base"])
    persist = shards.estimate(by["fcos.stable.pxe-rootfs-url.bios.persist-var"])
    assert by["fcos.stable.pxe-rootfs-url.bios.persist-var"].boots == 3
    assert base_pxe > base_url                      # 4096 MiB and the appended rootfs against 2048 MiB
    assert persist == pytest.approx(3 * base_url)    # three boots


def test_durations_file_replaces_the_estimate(tmp_path):
    cells = _cells()
    f = tmp_path / "d.json"
    f.write_text(json.dumps({"schema": "livelab.durations/1", "cases": {
        "scenarios/base.yaml::fcos.stable.iso.bios.base": {"seconds": 101.0, "outcome": "passed"},
        "fcos.next.iso.uefi.base": {"seconds": 42.5},                          # a merge's durations.json
        "tests/e2e/test_libvirt.py::test_libvirt_boot[pxe]@libvirt": {"seconds": 9.0},
        "scenarios/base.yaml::fcos.next.iso.bios.base": {"seconds": 0}}}))      # no time: estimated
    plan = shards.Plan.make(mx.build_matrix("fcos", "stable,next", "pxe-rootfs-url,iso", "bios,uefi"), 2, f)
    assert plan.expected["fcos.stable.iso.bios.base"] == (101.0, "recorded")
    assert plan.expected["fcos.next.iso.uefi.base"] == (42.5, "recorded")
    assert plan.expected["fcos.next.iso.bios.base"][1] == "estimate"
    assert len(plan.expected) == len(cells)
    f.write_text(json.dumps({"schema": "something/1"}))
    with pytest.raises(LivelabError, match="not a durations file"):
        shards.load_durations(f)
    with pytest.raises(LivelabError, match="cannot read"):
        shards.load_durations(tmp_path / "nope.json")


# ---------------------------------------------------------------- --list

def _list(capsys, *args, request=REQUEST):
    capsys.readouterr()
    assert main(["matrix", *request, "--list", *args]) == 0
    return capsys.readouterr().out


def test_list_prints_the_cells_and_their_split(capsys):
    ids = mx.build_matrix("fcos", "stable,next", "pxe-rootfs-url,iso", "bios,uefi").ids
    lines = _list(capsys).splitlines()
    assert [line.split("\t")[0] for line in lines] == ids
    assert all(re.fullmatch(r"\S+\t\d+(\.\d)?s\testimate", line) for line in lines), lines
    split = dict(line.split("\t")[::3] for line in _list(capsys, "--shards", "2").splitlines())
    assert sorted(split.values()) == ["1/2"] * 4 + ["2/2"] * 4

    doc = json.loads(_list(capsys, "--json", "--shards", "2"))
    assert doc["schema"] == "livelab.cells/1" and doc["shard"] is None and doc["shard_count"] == 2
    assert [c["id"] for c in doc["cells"]] == ids
    assert doc["shard_ids"] == ["1/2", "2/2"]
    assert {c["id"]: c["shard"] for c in doc["cells"]} == split
    assert [i for s in doc["shards"] for i in s["cells"]] != [] and \
        sorted(i for s in doc["shards"] for i in s["cells"]) == sorted(ids)
    first = doc["cells"][0]
    assert {k: first[k] for k in ("os", "stream", "method", "firmware", "scenario", "memory_mib", "boots")} == \
        {"os": "fcos", "stream": "stable", "method": "pxe-rootfs-url", "firmware": "bios", "scenario": "base",
         "memory_mib": 2048, "boots": 1}
    # each shard's own list is its part of the split, in the matrix's order
    union = []
    for k in (1, 2):
        part = json.loads(_list(capsys, "--json", "--shard", f"{k}/2"))
        assert part["shard"] == f"{k}/2" and part["shards"] == doc["shards"]
        assert [c["id"] for c in part["cells"]] == doc["shards"][k - 1]["cells"]
        union += [c["id"] for c in part["cells"]]
    assert sorted(union) == sorted(ids)


@pytest.mark.parametrize("args,match", [
    (["--json"], "--json goes with --list"),
    (["--shards", "2", "-o", "x"], "--shards N goes with --list"),
    (["--shard", "3/2", "-o", "x"], "--shard '3/2'"),
    (["--shard", "1/2", "--shards", "3", "--list"], "disagree"),
    (["--shards", "0", "--list"], "--shards '0'"),
    ([], "--output DIR is required"),
])
def test_cli_refusals(args, match, capsys, monkeypatch):
    monkeypatch.setattr(mx, "run_matrix", lambda *a, **k: pytest.fail("ran"))
    assert main(["matrix", *REQUEST, *args]) == 2
    assert match in capsys.readouterr().err


# ---------------------------------------------------------------- shard runs (a fake pytest)

def _fake_pytest(fail=(), t0=None):
    """A runner for run_matrix that writes what pytest would: a JUnit file (with harness.matrix_clock's
    properties) and each VM's run directory (a disk image too, which a merge leaves behind)."""
    calls = []

    def runner(cmd):
        calls.append(cmd)
        base = time.time() if t0 is None else t0
        junit = Path(cmd[cmd.index("--junitxml") + 1])
        run_root = Path(cmd[cmd.index("--run-dir") + 1])
        cases = []
        for i, tid in enumerate(a.split("::")[-1] for a in cmd if "::" in a):
            rd = run_root / mx.run_dir_name(tid)
            rd.mkdir(parents=True, exist_ok=True)
            (rd / "console.log").write_text(f"{tid}\nLinux version 6.1\nlogin:\n")
            (rd / "timings.json").write_text(json.dumps({"schema": "livelab.timings/1", "vm": "vm1", "accel": "tcg",
                                                         "accel_reason": "test",
                                                         "boots": [{"boot": 1, "phases": PHASES}]}))
            (rd / "disk-var.qcow2").write_bytes(b"\0" * 4096)
            start = base + 100 * (len(calls) - 1) + 50 * i
            body = '<failure message="BootFailure: no SSH">trace</failure>' if tid in fail else ""
            cases.append(f'<testcase classname="scenarios.base.yaml" name="{tid}" time="48.5"><properties>'
                         f'<property name="livelab_run_dir" value="{rd}"/>'
                         f'<property name="livelab_started" value="{start:.3f}"/>'
                         f'<property name="livelab_ended" value="{start + 48.5:.3f}"/></properties>{body}</testcase>')
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{"".join(cases)}'
                         f'</testsuite></testsuites>')
        return 1 if fail else 0

    return runner, calls


def _run_shard(monkeypatch, out, shard, host, fail=(), t0=None, request=REQUEST, extra=()):
    runner, calls = _fake_pytest(fail, t0)
    monkeypatch.setattr(mx, "run_matrix", lambda m, o, w, rerun, options, ex, hosts=(): REAL_RUN_MATRIX(
        m, o, w, rerun, options, ex, runner=runner, log=lambda _: None))
    rc = main(["matrix", *request, "--shard", shard, "--host", host, "-o", str(out), *extra])
    return rc, calls


def test_a_shard_runs_its_cells_and_tags_its_outputs(tmp_path, monkeypatch, capsys):
    rc, calls = _run_shard(monkeypatch, tmp_path / "s1", "1/2", "host-a")
    assert rc == 0
    doc = json.loads(_list(capsys, "--json", "--shards", "2"))
    mine = doc["shards"][0]["cells"]
    (cmd,) = calls
    assert [a.split("::")[-1] for a in cmd if "::" in a] == mine
    assert cmd[cmd.index("harness.matrix_clock") - 1] == "-p"
    summary = json.loads((tmp_path / "s1" / "summary.json").read_text())
    assert summary["shard"]["index"] == 1 and summary["shard"]["count"] == 2 and summary["shard"]["label"] == "1/2"
    assert summary["shard"]["host"] == "host-a" and summary["shard"]["cells"] == mine
    assert [p["id"] for p in summary["plan"]] == [c["id"] for c in doc["cells"]]
    assert {p["id"]: p["shard"] for p in summary["plan"]} == {c["id"]: c["shard"] for c in doc["cells"]}
    for c in summary["cells"]:
        assert (c["host"], c["shard"], c["result"]) == ("host-a", "1/2", "pass")
        (h,) = c["history"]
        assert h["host"] == "host-a" and h["ended"] - h["started"] == pytest.approx(48.5)
    props = [{p.get("name"): p.get("value") for p in case.iter("property")}
             for case in ET.parse(tmp_path / "s1" / "junit.xml").getroot().iter("testcase")]
    assert len(props) == 4 and all(p["livelab_host"] == "host-a" and p["livelab_shard"] == "1/2" for p in props)
    html = (tmp_path / "s1" / "report.html").read_text()
    assert html.count('class="host-timeline"') == 1 and html.count('class="run-bar pass"') == 4
    ET.fromstring(html.split("\n", 1)[1])           # still XHTML


def test_an_empty_shard_runs_nothing_and_still_reports(tmp_path, monkeypatch):
    request = ["fcos", "--streams", "stable", "--via", "iso", "--firmware", "bios,uefi"]
    rc, calls = _run_shard(monkeypatch, tmp_path / "s3", "3/3", "host-c", request=request)
    assert rc == 0 and calls == []
    summary = json.loads((tmp_path / "s3" / "summary.json").read_text())
    assert summary["cells"] == [] and summary["shard"]["cells"] == [] and len(summary["plan"]) == 2


# ---------------------------------------------------------------- merge

def _two_shards(tmp_path, monkeypatch, fail=()):
    for k, host in ((1, "host-a"), (2, "host-b")):
        _run_shard(monkeypatch, tmp_path / f"shard-{k}", f"{k}/2", host, fail=fail)
    return [tmp_path / "shard-1", tmp_path / "shard-2"]


def _links(html: str) -> tuple:
    """(hrefs, ids) of a report."""
    return re.findall(r'href="([^"]*)"', html), set(re.findall(r'\sid="([^"]*)"', html))


def test_two_shards_merge_into_the_unsharded_matrix(tmp_path, monkeypatch, capsys):
    dirs = _two_shards(tmp_path, monkeypatch)
    unsharded = [line.split("\t")[0] for line in _list(capsys).splitlines()]
    out = tmp_path / "merged"
    assert main(["matrix", "merge", str(out), *map(str, dirs)]) == 0
    assert "8 cells, 8 pass, 0 flaky, 0 fail, 0 skip, 0 missing" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert [c["id"] for c in summary["cells"]] == unsharded
    split = {c["id"]: c["shard"] for c in json.loads(_list(capsys, "--json", "--shards", "2"))["cells"]}
    for c in summary["cells"]:
        assert c["result"] == "pass" and c["attempts"] == 1
        assert (c["host"], c["shard"]) == ({"1/2": "host-a", "2/2": "host-b"}[split[c["id"]]], split[c["id"]])
        assert (out / c["console_log"]).is_file() and c["console_log"].startswith("shards/")
    assert summary["totals"]["cells"] == 8 and summary["totals"]["pass"] == 8
    assert [r["host"] for r in summary["merged"]["inputs"]] == ["host-a", "host-b"]
    assert summary["merged"]["missing"] == []
    # only what a report links to is copied: no disk images
    assert not list(out.rglob("*.qcow2")) and list(out.rglob("console.log"))
    # junit: every cell once, with its host
    cases = list(ET.parse(out / "junit.xml").getroot().iter("testcase"))
    assert sorted(c.get("name") for c in cases) == sorted(unsharded)
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["livelab_host"] in ("host-a", "host-b") and props["livelab_run_dir"].startswith("shards/")
        assert list(props).count("livelab_run_dir") == 1
    # the report: per-host totals, a timeline per host, every link resolving inside the output
    html = (out / "report.html").read_text()
    assert html.count('class="host-timeline"') == 2 and html.count('class="run-bar pass"') == 8
    hosts = ET.fromstring(html.split("\n", 1)[1]).find(".//{*}table[@id='hosts']")
    rows = [[td.text for td in tr] for tr in hosts.find("{*}tbody")]
    assert [r[:4] for r in rows] == [["host-a", "1/2", "4", "4"], ["host-b", "2/2", "4", "4"]]
    hrefs, ids = _links(html)
    assert len(hrefs) >= 8
    for href in hrefs:
        if href.startswith("#"):
            assert href[1:] in ids, href
        else:
            assert "://" not in href and not href.startswith("/") and (out / unquote(href)).is_file(), href
    # the next night's split from this night's times
    durations = out / "durations.json"
    assert len(json.loads(durations.read_text())["cases"]) == 8
    doc = json.loads(_list(capsys, "--json", "--shards", "2", "--durations", str(durations)))
    assert {c["expected_from"] for c in doc["cells"]} == {"recorded"}
    assert {c["expected_s"] for c in doc["cells"]} == {48.5}


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_merging_the_same_inputs_twice_gives_the_same_output(tmp_path, monkeypatch, capsys):
    dirs = _two_shards(tmp_path, monkeypatch, fail=("fcos.next.iso.bios.base",))
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["matrix", "merge", str(a), *map(str, dirs)]) == 1
    first = _tree(a)
    assert main(["matrix", "merge", str(a), *map(str, dirs)]) == 1          # again, over itself
    assert main(["matrix", "merge", str(b), *map(str, reversed(dirs))]) == 1  # elsewhere, inputs reversed
    assert _tree(a) == first == _tree(b)
    assert len(first) > 20


def test_a_withheld_shard_is_reported_missing(tmp_path, monkeypatch, capsys):
    dirs = _two_shards(tmp_path, monkeypatch)
    withheld = json.loads((dirs[1] / "summary.json").read_text())["shard"]["cells"]
    capsys.readouterr()
    out = tmp_path / "merged"
    assert main(["matrix", "merge", str(out), str(dirs[0])]) == 1
    printed = capsys.readouterr().out
    assert "8 cells, 4 pass, 0 flaky, 0 fail, 0 skip, 4 missing" in printed
    for tid in withheld:
        assert f"livelab: {tid}: missing: no shard's output has this cell (planned for shard 2/2)" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["cells"]) == 8 and summary["totals"]["missing"] == 4
    missing = [c for c in summary["cells"] if c["result"] == "missing"]
    assert [c["id"] for c in missing] == [i for i in summary["merged"]["missing"]] and \
        sorted(summary["merged"]["missing"]) == sorted(withheld)
    assert all(c["host"] is None and c["attempts"] == 0 and c["stream"] for c in missing)
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("errors")) == ("8", "4")
    html = (out / "report.html").read_text()
    assert '<span class="badge missing">4 missing</span>' in html
    assert html.count('<td class="cell missing"') == 4


def test_a_plan_names_the_cells_of_shards_that_left_nothing(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(_list(capsys, "--json", "--shards", "2"))
    out = tmp_path / "merged"
    summary = matrix_merge.merge(out, [], [plan], log=lambda _: None)
    assert len(summary["cells"]) == 8 and {c["result"] for c in summary["cells"]} == {"missing"}
    assert summary == json.loads((out / "summary.json").read_text())
    with pytest.raises(LivelabError, match="no shard output directory"):
        matrix_merge.merge(tmp_path / "none", [], log=lambda _: None)
    with pytest.raises(SystemExit):                  # the command wants at least one DIR
        main(["matrix", "merge", str(tmp_path / "none"), "--plan", str(plan)])


def test_a_shard_run_again_keeps_both_runs_as_attempts(tmp_path, monkeypatch, capsys):
    dirs = _two_shards(tmp_path, monkeypatch, fail=("fcos.next.iso.uefi.base", "fcos.stable.iso.bios.base"))
    shard_of = {c["id"]: c["shard"] for c in json.loads(_list(capsys, "--json", "--shards", "2"))["cells"]}
    # the job of one failing cell's shard ran again, later, on another runner, and passed
    k = shard_of["fcos.next.iso.uefi.base"][0]
    _run_shard(monkeypatch, tmp_path / "again", f"{k}/2", "host-c")
    out = tmp_path / "merged"
    assert main(["matrix", "merge", str(out), *map(str, dirs), str(tmp_path / "again")]) == 1   # one fail left
    cells = {c["id"]: c for c in json.loads((out / "summary.json").read_text())["cells"]}
    assert len(cells) == 8
    c = cells["fcos.next.iso.uefi.base"]
    assert (c["result"], c["attempts"], c["host"]) == ("flaky", 2, "host-c")
    assert [(h["attempt"], h["result"], h["host"]) for h in c["history"]] == \
        [(1, "fail", "host-a" if k == "1" else "host-b"), (2, "pass", "host-c")]
    assert c["message"] == "BootFailure: no SSH"
    for tid, cell in cells.items():
        if shard_of[tid][0] == k and tid != "fcos.next.iso.uefi.base":
            assert cell["attempts"] == 2 and cell["result"] in ("pass", "flaky")
    other = "fcos.stable.iso.bios.base"
    if shard_of[other][0] != k:
        assert (cells[other]["result"], cells[other]["attempts"]) == ("fail", 1)
    props = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
             for case in ET.parse(out / "junit.xml").getroot().iter("testcase")}
    assert props["fcos.next.iso.uefi.base"]["livelab_host"] == "host-c"
    assert props["fcos.next.iso.uefi.base"]["flaky"] == "true"
    html = (out / "report.html").read_text()
    assert html.count('class="host-timeline"') == 3


def test_shards_of_two_oses_merge_into_one_report(tmp_path, monkeypatch, capsys):
    flatcar = ["flatcar", "--channels", "beta", "--via", "pxe", "--firmware", "bios"]
    fcos = ["fcos", "--streams", "stable", "--via", "iso", "--firmware", "bios"]
    _run_shard(monkeypatch, tmp_path / "f", "1/1", "host-f", request=flatcar)
    _run_shard(monkeypatch, tmp_path / "c", "1/1", "host-c", request=fcos)
    out = tmp_path / "merged"
    assert main(["matrix", "merge", str(out), str(tmp_path / "f"), str(tmp_path / "c")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [c["id"] for c in summary["cells"]] == ["fcos.stable.iso.bios.base", "flatcar.beta.pxe.bios.base"]
    assert summary["os"] == "fcos, flatcar"
    html = (out / "report.html").read_text()
    assert "<th>OS</th><th>stream / channel</th>" in html


def test_merge_refuses_to_overwrite_what_it_did_not_write(tmp_path, monkeypatch):
    dirs = _two_shards(tmp_path, monkeypatch)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(LivelabError, match="not empty and not an earlier merge's output"):
        matrix_merge.merge(busy, dirs, log=lambda _: None)
    with pytest.raises(LivelabError, match="an input cannot be the merge's output"):
        matrix_merge.merge(dirs[0], dirs, log=lambda _: None)
    (tmp_path / "junk").mkdir()
    with pytest.raises(LivelabError, match=r"no summary\.json"):
        matrix_merge.merge(tmp_path / "m", [tmp_path / "junk"], log=lambda _: None)
    assert (busy / "notes.txt").read_text() == "mine"


def test_a_summary_run_dir_outside_its_shard_is_not_copied(tmp_path, monkeypatch):
    dirs = _two_shards(tmp_path, monkeypatch)
    path = dirs[0] / "summary.json"
    summary = json.loads(path.read_text())
    summary["cells"][0]["history"][0]["console_log"] = "../../../../etc/passwd"
    summary["cells"][0]["history"][0]["run_dir"] = "/etc"
    path.write_text(json.dumps(summary))
    merged = matrix_merge.merge(tmp_path / "m", dirs, log=lambda _: None)
    cell = next(c for c in merged["cells"] if c["id"] == summary["cells"][0]["id"])
    assert cell["run_dir"] is None and cell["console_log"] is None
    assert not list((tmp_path / "m").rglob("passwd"))


# ---------------------------------------------------------------- the clock plugin, in a real pytest

def test_clock_plugin_records_each_test_under_xdist(tmp_path):
    (tmp_path / "test_two.py").write_text(
        "import time, pytest\n"
        "@pytest.mark.parametrize('n', [1, 2])\n"
        "def test_sleep(n):\n    time.sleep(0.3 * n)\n")
    junit = tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "harness.matrix_clock",
                           "-n", "2", f"--junitxml={junit}", "test_two.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        started, ended = float(props["livelab_started"]), float(props["livelab_ended"])
        n = int(case.get("name")[-2])
        assert 0.3 * n - 0.01 <= ended - started < 0.3 * n + 30
        assert abs(started - __import__("time").time()) < 600


def test_parse_junit_reads_the_clock(tmp_path):
    runner, _ = _fake_pytest(t0=T0)
    junit = tmp_path / "j.xml"
    runner(["pytest", "--junitxml", str(junit), "--run-dir", str(tmp_path / "runs"), "x::fcos.stable.iso.bios.base"])
    (a,) = mx.parse_junit(junit).values()
    assert a.started == pytest.approx(T0) and a.ended == pytest.approx(T0 + 48.5)


def test_report_of_a_summary_without_hosts_has_no_host_section(tmp_path):
    cells = [{"id": "fcos.stable.iso.bios.base", "os": "fcos", "stream": "stable", "method": "iso",
              "firmware": "bios", "scenario": "base", "result": "pass", "attempts": 1, "duration": 1.0,
              "history": []}]
    html = report.render_html(report.summarize(cells), tmp_path)
    assert 'id="hosts"' not in html and "host-timeline" not in html


def test_refused_cells_are_never_run_and_survive_the_merge(tmp_path, monkeypatch, capsys):
    """--firmware uefi-secure: a network boot cannot boot: listed with its reason (stderr of --list,
    every shard's summary, the merge's), run by no shard, and in the report "not applicable"."""
    request = ["fcos", "--streams", "stable", "--via", "pxe,iso", "--firmware", "uefi,uefi-secure"]
    doc = json.loads(_list(capsys, "--json", "--shards", "2", request=request))
    assert [c["id"] for c in doc["cells"]] == ["fcos.stable.pxe.uefi.base", "fcos.stable.iso.uefi.base",
                                               "fcos.stable.iso.uefi-secure.base"]
    assert [r["id"] for r in doc["refused"]] == ["fcos.stable.pxe.uefi-secure.base"]
    ran = []
    for k, host in ((1, "host-a"), (2, "host-b")):
        rc, calls = _run_shard(monkeypatch, tmp_path / f"s{k}", f"{k}/2", host, request=request)
        assert rc == 0
        ran += [a.split("::")[-1] for cmd in calls for a in cmd if "::" in a]
    assert sorted(ran) == sorted(c["id"] for c in doc["cells"])
    out = tmp_path / "merged"
    assert main(["matrix", "merge", str(out), str(tmp_path / "s1"), str(tmp_path / "s2")]) == 0
    assert "3 cells, 3 pass, 0 flaky, 0 fail, 0 skip, 0 missing" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["refused"] == doc["refused"]
    html = (out / "report.html").read_text()
    assert '<td class="cell refused" data-id="fcos.stable.pxe.uefi-secure.base"' in html
    ET.fromstring(html.split("\n", 1)[1])


def test_refused_cells_go_through_shards_and_their_merge(tmp_path, monkeypatch, capsys):
    """Cells that cannot boot (the ISO as a disk of 4096-byte sectors) are in no shard, and every
    shard's summary and the merge list them once, with their reason, as refused: not failed."""
    k = vocab.DISK_SUFFIX[4096]
    request = ["fcos", "--streams", "stable", "--via", "iso,iso-as-disk", "--firmware", "uefi", "--sector", "512,4096"]
    for n in (1, 2):
        rc, _calls = _run_shard(monkeypatch, tmp_path / f"s{n}", f"{n}/2", f"host-{n}", request=request)
        assert rc == 0
    doc = json.loads(_list(capsys, "--json", "--shards", "2", request=request))
    assert [c["id"] for c in doc["cells"]] == ["fcos.stable.iso.uefi.base", "fcos.stable.iso-as-disk.uefi.base"]
    assert [c["sector"] for c in doc["cells"]] == [512, 512]
    refused = [{"id": f"fcos.stable.iso-as-disk.uefi.base.{k}", "reason": vocab.refusal("iso-as-disk", "uefi", 4096)}]
    assert doc["refused"] == refused
    out = tmp_path / "merged"
    assert main(["matrix", "merge", str(out), str(tmp_path / "s1"), str(tmp_path / "s2")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["refused"] == refused and summary["totals"]["fail"] == 0 and len(summary["cells"]) == 2
    assert f"fcos.stable.iso-as-disk.uefi.base.{k}</code>" in (out / "report.html").read_text()
