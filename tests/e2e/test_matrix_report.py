"""``livelab matrix`` end to end: a small real matrix on the stand-in, and report.html in a real browser."""
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from browser import chromium, png_rows

from harness import matrix as mx
from harness import report

REPO = Path(__file__).resolve().parents[2]
PHASES = {"qemu_start": 0.0, "first_console": 0.9, "kernel_start": 6.0, "ignition_done": 31.0,
          "switch_root": 36.0, "login_prompt": 52.0, "ssh_ready": 58.0}


@pytest.mark.livelab(os="fcos", stream="stable", method="pxe-rootfs-url", firmware="bios")
@pytest.mark.e2e
@pytest.mark.ci
def test_small_real_matrix(tmp_path):
    assert (REPO / "images/out/mirror").is_dir(), "the stand-in mirror is missing: run `make images`"
    out = tmp_path / "matrix"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "matrix", "fcos", "--streams", "stable",
                           "--via", "pxe-rootfs-url", "--firmware", "bios", "--output", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for name in ("junit.xml", "summary.json", "report.html"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    (cell,) = summary["cells"]
    assert cell["id"] == "fcos.stable.pxe-rootfs-url.bios.base"
    assert cell["result"] == "pass", cell["message"]
    assert (out / cell["console_log"]).is_file()
    assert cell["timings"]["boots"][0]["phases"]["ssh_ready"] > 0
    assert summary["accel"] in ("tcg", "kvm")
    assert f'data-id="{cell["id"]}"' in (out / "report.html").read_text()


def _fake_matrix(root: Path) -> list:
    """A report over a fake run tree (no VM): a pass, a flaky and a failing cell."""
    cells = []
    for tid, results in (("fcos.stable.pxe.bios.base", ["pass"]), ("fcos.stable.pxe.uefi.base", ["fail", "pass"]),
                         ("fcos.testing.iso.bios.base", ["fail"])):
        attempts = []
        for n, result in enumerate(results):
            rd = root / ("runs" if n == 0 else f"runs-rerun{n}") / mx.run_dir_name(tid)
            rd.mkdir(parents=True)
            (rd / "console.log").write_text("SeaBIOS\nLinux version 6.1\nlogin: ")
            phases = PHASES if result == "pass" else {"qemu_start": 0.0, "kernel_start": 7.0}
            (rd / "timings.json").write_text(json.dumps({"schema": "livelab.timings/1", "vm": "vm1", "accel": "tcg",
                                                         "accel_reason": "test",
                                                         "boots": [{"boot": 1, "phases": phases}]}))
            attempts.append(mx.Attempt(result, 70.0, [str(rd)],
                                       "BootFailure: no login prompt" if result == "fail" else ""))
        os_, stream, method, fw, scen = tid.split(".")
        cells.append(mx.make_cell(mx.Cell(tid, os_, stream, method, fw, scen, 4096), attempts, root))
    return cells


class _Hrefs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if attrs.get("href"):
            self.hrefs.append(attrs["href"])


@pytest.mark.e2e
@pytest.mark.ci
def test_report_renders_in_chromium(tmp_path):
    out = tmp_path / "matrix"
    cells = _fake_matrix(out)
    html = report.build_report(out, cells)["html"]

    dom = chromium(tmp_path, "--dump-dom", html.as_uri()).stdout
    assert re.search(r'<table class="matrix" id="matrix">', dom)
    for c in cells:
        assert re.search(rf'<td class="cell {c["result"]}" data-id="{re.escape(c["id"])}"', dom), c["id"]
    assert dom.count("<svg") == len(cells) and dom.count('class="phase phase-') >= 7

    png = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,900", html.as_uri())
    assert png.is_file()
    width, height, distinct = png_rows(png)
    assert (width, height) == (1280, 900)
    assert distinct > 50, "the screenshot is blank"

    parser = _Hrefs()
    parser.feed(html.read_text())
    assert len(parser.hrefs) >= 2 * len(cells)
    for href in parser.hrefs:
        if href.startswith("#"):
            assert href[1:] in parser.ids, href
        else:
            assert "://" not in href and not href.startswith("/"), href
            assert (out / unquote(href)).resolve().is_file(), href
