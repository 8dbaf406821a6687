"""summary.json, report.html (well-formed, a cell per id, an SVG timeline per VM, working links), junit.xml."""
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import pytest

from harness import matrix as mx
from harness import report

SVG = "{http://www.w3.org/2000/svg}"
FULL = {"qemu_start": 0.0, "first_console": 0.8, "kernel_start": 5.0, "ignition_done": 30.0,
        "switch_root": 34.0, "login_prompt": 50.0, "ssh_ready": 56.0}


def fake_tree(root: Path) -> list:
    """Summary cells over a fake run tree: pass (two boots), flaky, fail (partial boot), skip (no VM)."""
    plan = [("fcos.stable.pxe.bios.base", ["pass"], [FULL, {**FULL, "ignition_done": None}]),
            ("fcos.stable.pxe.uefi.base", ["fail", "pass"], [FULL]),
            ("fcos.stable.iso.bios.base", ["fail", "fail"],
             [{"qemu_start": 0.0, "first_console": 1.0, "kernel_start": 6.0}]),
            ("fcos.testing.iso.uefi.base", ["skip"], None)]
    cells = []
    for tid, results, boots in plan:
        attempts = []
        for n, result in enumerate(results):
            rd = root / ("runs" if n == 0 else f"runs-rerun{n}") / mx.run_dir_name(tid)
            if boots is not None:
                rd.mkdir(parents=True)
                (rd / "console.log").write_text("Linux version 6.1\nlogin: ")
                (rd / "vm.json").write_text("{}")
                (rd / "timings.json").write_text(json.dumps(
                    {"schema": "livelab.timings/1", "vm": "vm1", "accel": "tcg", "accel_reason": "no /dev/kvm",
                     "boots": [{"boot": i + 1, "phases": {k: v for k, v in p.items() if v is not None}}
                               for i, p in enumerate(boots)]}))
            msg = "BootFailure: vm1: no login prompt after 600 s <kernel & initrd>" if result == "fail" else ""
            attempts.append(mx.Attempt(result, 60.0, [str(rd)] if boots is not None else [], msg))
        os_, stream, method, fw, scen = tid.split(".")
        cells.append(mx.make_cell(mx.Cell(tid, os_, stream, method, fw, scen, 4096), attempts, root))
    return cells


@pytest.fixture
def built(tmp_path):
    cells = fake_tree(tmp_path)
    paths = report.build_report(tmp_path, cells)
    return tmp_path, cells, paths


def test_phase_segments():
    seg = [(s[0], s[3], s[4]) for s in report.segments(FULL)]
    assert seg == [("firmware", 0.0, 5.0), ("kernel", 5.0, 30.0), ("initramfs", 30.0, 34.0),
                   ("login", 34.0, 50.0), ("ssh", 50.0, 56.0)]
    # no Ignition marker: the kernel runs to switch-root; no kernel marker: firmware ends at first console
    assert [s[0] for s in report.segments({**FULL, "ignition_done": None})] == ["firmware", "kernel", "login", "ssh"]
    assert report.segments({"qemu_start": 0.0, "first_console": 2.0})[0][4] == 2.0
    assert [s[0] for s in report.segments({"qemu_start": 0.0, "kernel_start": 4.0})] == ["firmware"]
    assert report.segments({"kernel_start": 9.0, "switch_root": 3.0})[0][0] == "firmware"   # never backwards
    assert len(report.segments({"kernel_start": 9.0, "switch_root": 3.0})) == 1


def test_summary_schema(built):
    root, _cells, paths = built
    s = json.loads(paths["summary"].read_text())
    assert s["schema"] == "livelab.matrix/1" and s["os"] == "fcos" and s["accel"] == "tcg"
    assert (s["streams"] == ["stable", "testing"] and s["methods"] == ["pxe", "iso"]
            and s["firmware"] == ["bios", "uefi"])
    assert s["totals"] == {"cells": 4, "pass": 1, "flaky": 1, "fail": 1, "skip": 1, "duration": 360.0}
    keys = {"id", "os", "stream", "method", "firmware", "scenario", "result", "attempts", "duration", "run_dir",
            "console_log", "timings", "message"}
    for c in s["cells"]:
        assert keys <= set(c)
        assert c["result"] in ("pass", "fail", "flaky", "skip")
        if c["console_log"]:
            assert not Path(c["console_log"]).is_absolute() and (root / c["console_log"]).is_file()
    by = {c["id"]: c for c in s["cells"]}
    assert by["fcos.stable.pxe.uefi.base"]["run_dir"].startswith("runs-rerun1/")
    assert by["fcos.stable.iso.bios.base"]["message"].startswith("BootFailure")
    assert by["fcos.testing.iso.uefi.base"]["console_log"] is None


def _html(root: Path) -> ET.Element:
    return ET.fromstring((root / "report.html").read_text().split("\n", 1)[1])   # after <!DOCTYPE html>


def test_html_is_well_formed_and_self_contained(built):
    root, _, _ = built
    text = (root / "report.html").read_text()
    assert text.startswith("<!DOCTYPE html>")
    doc = _html(root)
    assert doc.tag == "html" and doc.find("head/style") is not None
    assert not [e for e in doc.iter() if e.tag in ("script", "link", "img", "iframe")]
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text


def test_html_has_a_cell_per_id_with_its_class(built):
    root, cells, _ = built
    tds = {td.get("data-id"): td for td in _html(root).iter("td") if td.get("data-id")}
    assert set(tds) == {c["id"] for c in cells}
    for c in cells:
        classes = tds[c["id"]].get("class").split()
        assert "cell" in classes and c["result"] in classes
        assert c["result"] in "".join(tds[c["id"]].itertext())
    assert "2 attempts" in "".join(tds["fcos.stable.pxe.uefi.base"].itertext())
    # the matrix has stream x method rows, firmware columns; missing combinations are marked
    table = next(t for t in _html(root).iter("table") if t.get("id") == "matrix")
    assert ["".join(th.itertext()) for th in table.find("thead/tr")] == ["stream", "method", "bios", "uefi"]
    assert len(table.findall("tbody/tr")) == 3
    assert [td for td in table.iter("td") if "none" in td.get("class").split()]


def test_html_has_an_svg_timeline_per_vm(built):
    root, cells, _ = built
    sections = {s.get("id"): s for s in _html(root).iter("section")}
    assert set(sections) == {f"vm-{c['id']}" for c in cells}
    svgs = {sid: s.find(f"{SVG}svg") for sid, s in sections.items()}
    assert svgs["vm-fcos.testing.iso.uefi.base"] is None                 # skipped: no VM, no timeline
    full = svgs["vm-fcos.stable.pxe.bios.base"]
    phases = [g.get("class").split()[1] for g in full.iter(f"{SVG}g")]
    assert phases == ["phase-firmware", "phase-kernel", "phase-initramfs", "phase-login", "phase-ssh",
                      "phase-firmware", "phase-kernel", "phase-login", "phase-ssh"]   # two boots
    titles = [t.text for t in full.iter(f"{SVG}title")]
    assert titles[1] == "kernel: 5.0 s to 30.0 s (25.0 s)"
    partial = svgs["vm-fcos.stable.iso.bios.base"]
    assert [g.get("class") for g in partial.iter(f"{SVG}g")] == ["phase phase-firmware"]


def test_failing_cell_shows_its_message(built):
    root, _, _ = built
    sec = next(s for s in _html(root).iter("section") if s.get("id") == "vm-fcos.stable.iso.bios.base")
    pre = sec.find("pre")
    assert (pre.get("class") == "message"
            and pre.text == "BootFailure: vm1: no login prompt after 600 s <kernel & initrd>")
    flaky = next(s for s in _html(root).iter("section") if s.get("id") == "vm-fcos.stable.pxe.uefi.base")
    assert "attempt 1 console.log" in "".join(flaky.itertext())


def test_every_link_resolves(built):
    root, _, _ = built
    doc = _html(root)
    ids = {e.get("id") for e in doc.iter() if e.get("id")}
    hrefs = [a.get("href") for a in doc.iter("a")]
    assert any(h.endswith("console.log") for h in hrefs) and any(h.startswith("#") for h in hrefs)
    for h in hrefs:
        if h.startswith("#"):
            assert h[1:] in ids
        else:
            assert not h.startswith("/") and ":" not in h, h
            assert (root / unquote(h)).is_file(), h


def test_regenerate_from_summary(built):
    root, _cells, paths = built
    before = paths["html"].read_text()
    paths["html"].unlink()
    summary = report.load_summary(root)
    report.build_report(root, summary["cells"], {k: v for k, v in summary.items() if k != "cells"})
    assert paths["html"].read_text() == before


def test_flatcar_rows_say_channel(tmp_path):
    cell = mx.make_cell(mx.Cell("flatcar.beta.pxe.uefi.base", "flatcar", "beta", "pxe", "uefi", "base", 3072),
                        [mx.Attempt("pass", 1.0)], tmp_path)
    report.build_report(tmp_path, [cell])
    th = next(_html(tmp_path).iter("thead")).find("tr/th")
    assert th.text == "channel"
