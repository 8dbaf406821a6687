"""The matrix runner: ids and validation, workers, flaky classification, reruns, summary cells."""
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import matrix as mx
from harness import report, vocab
from harness.cli import main
from harness.errors import LivelabError

PHASES = {"qemu_start": 0.0, "first_console": 1.0, "kernel_start": 4.0, "ignition_done": 20.0,
          "switch_root": 25.0, "login_prompt": 40.0, "ssh_ready": 45.0}


def test_ids_cover_the_product_in_order():
    m = mx.build_matrix("fcos", "stable,testing", "pxe,iso", "bios,uefi")
    assert m.ids[:4] == ["fcos.stable.pxe.bios.base", "fcos.stable.pxe.uefi.base",
                         "fcos.stable.iso.bios.base", "fcos.stable.iso.uefi.base"]
    assert len(m.ids) == 8 and len(set(m.ids)) == 8
    assert {c.memory_mib for c in m.cells} == {4096}
    assert m.meta()["streams"] == ["stable", "testing"]


def test_defaults_and_list_parsing():
    m = mx.build_matrix("flatcar", ["stable, beta", "stable"], "ipxe", None)
    assert m.streams == ["stable", "beta"] and m.firmware == ["bios", "uefi", "uefi-secure"]
    assert m.scenarios == ["base"]
    assert m.ids == ["flatcar.stable.ipxe.bios.base", "flatcar.stable.ipxe.uefi.base",
                     "flatcar.beta.ipxe.bios.base", "flatcar.beta.ipxe.uefi.base"]
    # a network boot under Secure Boot cannot boot: no cell, listed as refused with its reason
    assert [r["id"] for r in m.refused] == ["flatcar.stable.ipxe.uefi-secure.base",
                                           "flatcar.beta.ipxe.uefi-secure.base"]
    assert all(r["reason"].startswith("ipxe under uefi-secure cannot boot: ") for r in m.refused)
    assert m.meta()["refused"] == m.refused
    # a scenario that does not apply to uefi-secure drops the cell (not offered), it does not refuse it
    wipe = mx.build_matrix("fcos", "stable", "pxe-rootfs-url", "uefi-secure,bios", "wipe-var")
    assert wipe.refused == [] and wipe.dropped == ["fcos.stable.pxe-rootfs-url.uefi-secure.wipe-var"]
    assert mx.build_matrix("fcos", "stable", "pxe-rootfs-url", "bios").cells[0].memory_mib == 2048


@pytest.mark.parametrize("args,match", [
    (("debian", None, None, None), "unknown OS"),
    (("fcos", "beta", None, None), "unknown fcos stream 'beta'"),
    (("flatcar", "next", None, None), "unknown flatcar channel"),
    (("flatcar", "stable", "iso", None), "does not apply to flatcar"),
    (("fcos", "stable", "netboot", None), "unknown boot method"),
    (("fcos", "stable", "pxe", "coreboot"), "unknown firmware"),
])
def test_every_value_is_validated(args, match):
    with pytest.raises(LivelabError, match=match):
        mx.build_matrix(*args)


def test_scenarios_filter_cells(tmp_path):
    (tmp_path / "only-pxe.yaml").write_text("applies: {os: [fcos], method: [pxe], firmware: [bios]}\nmemory: 3000\n")
    m = mx.build_matrix("fcos", "stable", "pxe,ipxe", "bios", "only-pxe", scenario_dirs=[tmp_path])
    assert m.ids == ["fcos.stable.pxe.bios.only-pxe"] and m.cells[0].memory_mib == 3000
    assert m.dropped == ["fcos.stable.ipxe.bios.only-pxe"]
    with pytest.raises(LivelabError, match="no cell"):
        mx.build_matrix("fcos", "stable", "ipxe", "bios", "only-pxe", scenario_dirs=[tmp_path])
    with pytest.raises(LivelabError, match="unknown scenario 'nope': expected one of only-pxe"):
        mx.build_matrix("fcos", "stable", "pxe", "bios", "nope", scenario_dirs=[tmp_path])


def test_workers_by_memory_and_cpus():
    w = mx.compute_workers
    # (24000 - 2048) // (4096 + 256) = 5, capped by 16 CPUs and 18 cells
    assert w([4096] * 18, mem_available=24000, cpus=16) == 5
    assert w([2048, 4096] * 9, mem_available=24000, cpus=2) == 2        # CPUs bound
    assert w([2048] * 18, mem_available=24000, cpus=16) == 9            # 21952 // 2304
    assert w([4096] * 3, mem_available=24000, cpus=16) == 3             # never more than cells
    assert w([4096] * 4, mem_available=3000, cpus=16) == 1              # at least one
    assert w([4096] * 4, "auto", mem_available=24000, cpus=1) == 1
    assert w([4096] * 4, "3") == 3 and w([4096] * 2, 8) == 2
    for bad in ("0", "x", -1):
        with pytest.raises(LivelabError, match="--workers"):
            w([4096], bad)


@pytest.mark.parametrize("results,expected", [
    (["pass"], "pass"), (["fail", "pass"], "flaky"), (["fail", "fail", "pass"], "flaky"),
    (["fail", "fail"], "fail"), (["fail"], "fail"), (["skip"], "skip"), (["skip", "fail"], "fail"), ([], "fail"),
])
def test_flaky_classification(results, expected):
    assert mx.classify([mx.Attempt(r) for r in results]) == expected


def test_pytest_command_selects_ids_exactly(tmp_path):
    m = mx.build_matrix("fcos", "stable", "pxe", "bios")
    nid = m.node_id("fcos.stable.pxe.bios.base")
    assert nid == f"{Path('scenarios/base.yaml').resolve()}::fcos.stable.pxe.bios.base"
    cmd = mx.pytest_command([nid], tmp_path / "j.xml", tmp_path / "runs", 2,
                            {"mirror": "/m", "keyring": None, "ignition_spec_table": "/s.json", "extend_timeout": 50.0,
                             "vm_cpus": 1}, ["-x"], m.scenario_dirs)
    assert cmd[1:3] == ["-m", "pytest"]
    for part in (["-n", "2"], ["-p", "no:cacheprovider"], ["--junitxml", str(tmp_path / "j.xml")],
                 ["--run-dir", str(tmp_path / "runs")], ["--mirror", "/m"], ["--ignition-spec-table", "/s.json"],
                 ["--extend-timeout", "50.0"], ["--vm-cpus", "1"],
                 ["--scenario-dir", str(Path("scenarios").resolve())]):
        i = cmd.index(part[0])
        assert cmd[i:i + len(part)] == part
    assert "--keyring" not in cmd and "-x" in cmd
    assert cmd[-1] == nid


def test_matrix_collects_exactly_its_node_ids(tmp_path):
    """The node ids the matrix passes are what pytest collects (the plugin's scenario files)."""
    import subprocess
    import sys
    m = mx.build_matrix("fcos", "stable,next", "pxe", "bios")
    ids = [m.node_id(i) for i in m.ids]
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "--scenario-dir", m.scenario_dirs[0], *ids], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = [line.split("::")[-1] for line in proc.stdout.splitlines() if "::" in line]
    assert got == m.ids


def test_no_scenario_directory_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LivelabError, match=r"no scenario directory: .* --scenario-dir DIR"):
        mx.build_matrix("fcos", "stable", "pxe", "bios")
    with pytest.raises(LivelabError, match=r"scenario directory .*nowhere does not exist"):
        mx.build_matrix("fcos", "stable", "pxe", "bios", scenario_dirs=[tmp_path / "nowhere"])


def _junit(path: Path, results: dict, run_root: Path) -> None:
    """A pytest-like JUnit file; each VM's run dir gets console.log and timings.json."""
    cases = []
    for tid, result in results.items():
        rd = run_root / mx.run_dir_name(tid)
        rd.mkdir(parents=True, exist_ok=True)
        (rd / "console.log").write_text(f"{tid}\nLinux version 6.1\nlogin:\n")
        phases = PHASES if result == "pass" else {"qemu_start": 0.0, "kernel_start": 3.0}
        (rd / "timings.json").write_text(json.dumps({"schema": "livelab.timings/1", "vm": "vm1", "accel": "tcg",
                                                     "accel_reason": "no /dev/kvm",
                                                     "boots": [{"boot": 1, "phases": phases}]}))
        body = {"pass": "", "skip": '<skipped message="skipped: no artifacts"/>',
                "fail": '<failure message="BootFailure: vm1: no SSH after 300 s&#10;--- last lines">'
                        'trace</failure>'}[result]
        cases.append(f'<testcase classname="scenarios.base.yaml" name="{tid}" time="12.5">'
                     f'{body}</testcase>')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{"".join(cases)}'
                    f'</testsuite></testsuites>')


def test_parse_junit(tmp_path):
    ids = {"fcos.stable.pxe.bios.base": "pass", "fcos.stable.iso.bios.base": "fail",
           "fcos.stable.ipxe.bios.base": "skip"}
    _junit(tmp_path / "j.xml", ids, tmp_path / "runs")
    got = mx.parse_junit(tmp_path / "j.xml", tmp_path / "runs")
    assert {k: a.result for k, a in got.items()} == ids
    assert got["fcos.stable.iso.bios.base"].message == "BootFailure: vm1: no SSH after 300 s"
    assert got["fcos.stable.pxe.bios.base"].duration == 12.5
    assert got["fcos.stable.pxe.bios.base"].run_dirs == [str(tmp_path / "runs" / "fcos.stable.pxe.bios.base")]
    assert mx.parse_junit(tmp_path / "missing.xml") == {}


def test_run_matrix_reruns_failures_and_reports_flaky(tmp_path):
    m = mx.build_matrix("fcos", "stable", "pxe,iso,ipxe", "bios")
    a, b, c = m.ids
    plan = [{a: "pass", b: "fail", c: "fail"}, {b: "pass", c: "fail"}, {c: "fail"}]
    calls = []

    def runner(cmd):
        calls.append(cmd)
        run_root = Path(cmd[cmd.index("--run-dir") + 1])
        _junit(Path(cmd[cmd.index("--junitxml") + 1]), plan[len(calls) - 1], run_root)
        return 1

    out = tmp_path / "out"
    cells = mx.run_matrix(m, out, workers=3, rerun=2, runner=runner, log=lambda _: None)
    # attempt 2 runs only the two failures, in their own run dir, with fewer workers
    assert [c_[-1] for c_ in calls[1:]] == [m.node_id(c), m.node_id(c)]
    assert m.node_id(a) not in calls[1] and m.node_id(b) in calls[1]
    assert calls[1][calls[1].index("--run-dir") + 1] == str(out / "runs-rerun1")
    assert calls[1][calls[1].index("-n") + 1] == "2"
    assert (out / "ids.txt").read_text().split() == [m.node_id(i) for i in m.ids]
    by = {x["id"]: x for x in cells}
    assert (by[a]["result"], by[a]["attempts"]) == ("pass", 1)
    assert (by[b]["result"], by[b]["attempts"]) == ("flaky", 2)
    assert (by[c]["result"], by[c]["attempts"]) == ("fail", 3)
    assert by[b]["run_dir"] == f"runs-rerun1/{mx.run_dir_name(b)}"           # the passing attempt
    assert by[b]["history"][0]["console_log"] == f"runs/{mx.run_dir_name(b)}/console.log"
    assert by[b]["message"].startswith("BootFailure") and by[a]["message"] == ""
    assert by[a]["console_log"] == f"runs/{mx.run_dir_name(a)}/console.log"
    assert by[a]["timings"]["boots"][0]["phases"]["ssh_ready"] == 45.0

    junit = report.merge_junit(mx.attempt_files(out), cells, out / "junit.xml")
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    props = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
             for case in suite.iter("testcase")}
    assert props[b]["flaky"] == "true"
    assert props[c]["attempts"] == "3" and "flaky" not in props[c]
    assert props[b]["livelab_run_dir"] == f"runs-rerun1/{mx.run_dir_name(b)}"


def test_cells_pytest_gave_no_result_for_fail(tmp_path):
    m = mx.build_matrix("fcos", "stable", "pxe", "bios")
    cells = mx.run_matrix(m, tmp_path, 1, runner=lambda cmd: 4, log=lambda _: None)
    assert cells[0]["result"] == "fail" and cells[0]["message"] == "no result: pytest exited 4"
    junit = report.merge_junit(mx.attempt_files(tmp_path), cells, tmp_path / "junit.xml")
    assert ET.parse(junit).getroot().find("testsuite").get("errors") == "1"


def test_cli_validates_before_running(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(mx, "run_matrix", lambda *a, **k: pytest.fail("ran"))
    assert main(["matrix", "fcos", "--streams", "stable,bogus", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "livelab: error: unknown fcos stream 'bogus': expected one of stable, testing, next"
    assert main(["matrix", "flatcar", "--channels", "beta", "--via", "iso", "-o", str(tmp_path)]) == 2
    assert main(["matrix", "fcos", "--workers", "none", "-o", str(tmp_path)]) == 2
    assert main(["matrix", "fcos", "-o", str(tmp_path), "stray"]) == 2
    assert "pytest options go after --" in capsys.readouterr().err


def test_cli_runs_and_reports(tmp_path, monkeypatch, capsys):
    seen, real_run = {}, mx.run_matrix

    def fake_run(m, out, workers, rerun, options, extra, hosts=()):
        assert options["vm_cpus"] >= 1
        seen.update(workers=workers, rerun=rerun, options=options, extra=extra, ids=m.ids)
        _junit(out / "attempts" / "junit-1.xml", {m.ids[0]: "pass", m.ids[1]: "fail"}, out / "runs")
        return real_run(m, out, workers, runner=lambda cmd: 1, log=lambda _: None)

    monkeypatch.setattr(mx, "run_matrix", fake_run)
    rc = main(["matrix", "flatcar", "--channels", "stable", "--via", "pxe", "-o", str(tmp_path), "--workers", "2",
               "--rerun", "1", "--mirror", "/mirror", "--extend-timeout", "25", "--", "-x", "-v"])
    assert rc == 1
    assert seen["ids"] == ["flatcar.stable.pxe.bios.base", "flatcar.stable.pxe.uefi.base"]
    assert seen["workers"] == 2 and seen["rerun"] == 1 and seen["extra"] == ["-x", "-v"]
    assert seen["options"]["mirror"] == "/mirror" and seen["options"]["extend_timeout"] == 25.0
    for name in ("junit.xml", "summary.json", "report.html"):
        assert (tmp_path / name).is_file()
    out = capsys.readouterr().out
    assert "1 pass, 0 flaky, 1 fail, 0 skip, 1 refused before boot" in out
    assert ("flatcar.stable.pxe.uefi-secure.base: refused before boot, not run: pxe under uefi-secure cannot "
            "boot: ") in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [c["id"] for c in summary["cells"]] == seen["ids"]
    assert [r["id"] for r in summary["refused"]] == ["flatcar.stable.pxe.uefi-secure.base"]
    (tmp_path / "report.html").unlink()
    assert main(["matrix", "report", str(tmp_path)]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "flatcar.stable.pxe.uefi.base" in html
    # the refused cell has its place in the table, "not applicable", and its reason below it
    assert '<td class="cell refused" data-id="flatcar.stable.pxe.uefi-secure.base" title="pxe under' in html
    assert ">not applicable</td>" in html and '<ul class="refused" id="refused">' in html
    ET.fromstring(html.split("\n", 1)[1])
    assert main(["matrix", "report", str(tmp_path / "nope")]) == 2


def test_no_rerun_when_pytest_itself_failed(tmp_path):
    calls = []
    m = mx.build_matrix("fcos", "stable", "pxe", "bios")
    cells = mx.run_matrix(m, tmp_path, 1, rerun=3, runner=lambda cmd: calls.append(cmd) or 2, log=lambda _: None)
    assert len(calls) == 1 and cells[0]["attempts"] == 1 and cells[0]["result"] == "fail"


def test_sector_cells_offered_asked_and_refused():
    """Default: 512-byte cells, and the 4096-byte ones a scenario offers (persist-var on iso.uefi);
    asked for by --sector, a cell that cannot boot is listed as refused with its reason: not a cell."""
    k = vocab.DISK_SUFFIX[4096]
    m = mx.build_matrix("fcos", "stable", "iso,iso-as-disk", "uefi", "persist-var,base")
    assert m.ids == ["fcos.stable.iso.uefi.persist-var", f"fcos.stable.iso.uefi.persist-var.{k}",
                     "fcos.stable.iso.uefi.base", "fcos.stable.iso-as-disk.uefi.base"]
    assert [c.sector for c in m.cells] == [512, 4096, 512, 512]
    assert m.dropped == ["fcos.stable.iso-as-disk.uefi.persist-var"] and m.refused == []
    assert m.meta()["sectors"] == [512, 4096]
    m = mx.build_matrix("fcos", "stable", "iso,iso-as-disk", "uefi", "persist-var,base", sectors="4096")
    assert m.ids == [f"fcos.stable.iso.uefi.persist-var.{k}"] and m.meta()["sectors"] == [4096]
    why = vocab.refusal("iso-as-disk", "uefi", 4096)
    assert m.refused == [{"id": f"fcos.stable.iso-as-disk.uefi.persist-var.{k}", "reason": why},
                         {"id": f"fcos.stable.iso-as-disk.uefi.base.{k}", "reason": why}]
    assert m.dropped == [f"fcos.stable.iso.uefi.base.{k}"] and m.meta()["refused"] == m.refused
    for bad in ("1024", "4k", "x"):
        with pytest.raises(LivelabError, match=rf"--sector '{bad}': expected one of 512, 4096"):
            mx.build_matrix("fcos", "stable", "iso", "uefi", sectors=bad)


def test_cli_lists_a_refused_cell_and_does_not_fail_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mx, "run_matrix", lambda *a, **k: pytest.fail("a refused cell ran"))
    k = vocab.DISK_SUFFIX[4096]
    rc = main(["matrix", "fcos", "--streams", "stable", "--via", "iso-as-disk", "--firmware", "uefi",
               "--sector", "4096", "-o", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"livelab: fcos.stable.iso-as-disk.uefi.base.{k}: refused before boot, not run: iso-as-disk on a " in out
    assert "0 pass, 0 flaky, 0 fail, 0 skip, 1 refused before boot" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cells"] == [] and summary["totals"]["fail"] == 0
    assert summary["refused"] == [{"id": f"fcos.stable.iso-as-disk.uefi.base.{k}",
                                   "reason": vocab.refusal("iso-as-disk", "uefi", 4096)}]
    html = (tmp_path / "report.html").read_text()
    ET.fromstring(html.split("\n", 1)[1])
    assert "<h2>Refused before boot</h2>" in html and f"fcos.stable.iso-as-disk.uefi.base.{k}</code>" in html
    assert main(["matrix", "fcos", "--streams", "stable", "--via", "iso-as-disk", "--sector", "4096,512",
                 "--list"]) == 0
    listed = capsys.readouterr()
    assert listed.out.split()[::3] == ["fcos.stable.iso-as-disk.bios.base", "fcos.stable.iso-as-disk.uefi.base",
                                       "fcos.stable.iso-as-disk.uefi-secure.base"]
    assert listed.err.count("refused before boot, not run") == 3     # the 4Kn cell under each firmware
