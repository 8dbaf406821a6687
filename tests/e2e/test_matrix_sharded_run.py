"""The nightly pipelines' steps on the stand-in: plan, two shards at once, merge, and the report in Chromium.

What .github/workflows/nightly.yml and ci/gitlab-nightly.yml run, with the stand-in's mirror for the
real servers: ``livelab matrix fcos ... --shards 2 --list --json`` (the plan), ``--shard 1/2`` and
``--shard 2/2`` as two processes at once (one VM each at a time, one vCPU), then ``livelab matrix merge
OUT --plan PLAN DIR DIR``.  The merged cells equal the unsharded ``--list``, cell for cell; every cell
passed; report.html renders in Chromium with both shards' timelines.

The CI subset (`ci`) runs 2 cells per shard (4 boots); ``make test-e2e`` also runs 4 cells per shard.
Both take the whole host (`serial`): two shard processes boot beside each other.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from browser import chromium, png_rows

REPO = Path(__file__).resolve().parents[2]
TWO_PER_SHARD = ["--streams", "stable", "--via", "pxe-rootfs-url,iso", "--firmware", "bios,uefi"]        # 4 cells
FOUR_PER_SHARD = ["--streams", "stable,next", "--via", "pxe-rootfs-url,iso", "--firmware", "bios,uefi"]  # 8 cells
SHARD_TIMEOUT_S = 3600


def _livelab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=timeout)


def _run_shards_at_once(tmp_path: Path, cells: list, count: int) -> list:
    """``livelab matrix fcos CELLS --shard K/N`` for every K, started together; their output dirs."""
    procs = []
    for k in range(1, count + 1):
        out, log = tmp_path / f"shard-{k}", (tmp_path / f"shard-{k}.log").open("w")
        cmd = [sys.executable, "-m", "harness.cli", "matrix", "fcos", *cells, "--shard", f"{k}/{count}",
               "--vm-cpus", "1", "--workers", "1", "--rerun", "1", "--output", str(out)]
        procs.append((subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                       env={**os.environ, "PYTHONPATH": str(REPO)}), out, log))
    deadline = time.monotonic() + SHARD_TIMEOUT_S
    try:
        for proc, _, _ in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc, _, log in procs:
            if proc.poll() is None:           # a shard that ran past its time: its whole process group goes
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
    for k, (proc, _, _) in enumerate(procs, 1):
        text = (tmp_path / f"shard-{k}.log").read_text(errors="replace")
        assert proc.returncode == 0, f"shard {k}/{count} exited {proc.returncode}:\n{text[-6000:]}"
        assert f"shard {k}/{count} on " in text, text[-3000:]
    return [out for _, out, _ in procs]


@pytest.mark.e2e
@pytest.mark.serial
@pytest.mark.livelab(os="fcos")
@pytest.mark.parametrize("cells", [pytest.param(TWO_PER_SHARD, id="2-cells-per-shard", marks=pytest.mark.ci),
                                   pytest.param(FOUR_PER_SHARD, id="4-cells-per-shard", marks=pytest.mark.slow)])
def test_two_shards_at_once_merge_into_the_unsharded_matrix(tmp_path, cells):
    assert (REPO / "images/out/mirror").is_dir(), "the stand-in mirror is missing: run `make images`"

    # the plan job: the cells as data, split in two
    listed = _livelab("matrix", "fcos", *cells, "--shards", "2", "--list", "--json")
    assert listed.returncode == 0, listed.stderr
    plan = json.loads(listed.stdout)
    (tmp_path / "plan.json").write_text(listed.stdout)
    unsharded = _livelab("matrix", "fcos", *cells, "--list")
    assert unsharded.returncode == 0, unsharded.stderr
    ids = [line.split("\t")[0] for line in unsharded.stdout.splitlines()]
    assert [c["id"] for c in plan["cells"]] == ids and plan["shard_ids"] == ["1/2", "2/2"]
    per_shard = len(ids) // 2
    assert [len(s["cells"]) for s in plan["shards"]] == [per_shard, per_shard], plan["shards"]

    # the shard jobs, both at once
    dirs = _run_shards_at_once(tmp_path, cells, 2)
    for k, d in enumerate(dirs, 1):
        shard = json.loads((d / "summary.json").read_text())
        assert shard["shard"]["label"] == f"{k}/2" and shard["shard"]["cells"] == plan["shards"][k - 1]["cells"]
        assert (d / "junit.xml").is_file() and (d / "report.html").is_file()

    # the merge job
    out = tmp_path / "merged"
    merged = _livelab("matrix", "merge", str(out), "--plan", str(tmp_path / "plan.json"), *map(str, dirs))
    assert merged.returncode == 0, merged.stdout[-4000:] + merged.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [c["id"] for c in summary["cells"]] == ids                       # cell for cell, in the matrix's order
    shard_of = {c["id"]: c["shard"] for c in plan["cells"]}
    for c in summary["cells"]:
        assert c["result"] == "pass", f'{c["id"]}: {c["result"]}: {c["message"]}'
        assert c["shard"] == shard_of[c["id"]] and c["host"], c
        assert c["timings"]["boots"][0]["phases"]["ssh_ready"] > 0
        assert (out / c["console_log"]).is_file()
    assert summary["merged"]["missing"] == [] and len(summary["merged"]["inputs"]) == 2
    # both shards ran at the same time: their wall-clock spans overlap
    (a, b) = summary["merged"]["inputs"]
    assert a["started"] < b["ended"] and b["started"] < a["ended"], summary["merged"]["inputs"]

    # the report, in a browser: every cell passed, and a timeline for each shard's host with its cells
    html = out / "report.html"
    dom = chromium(tmp_path, "--dump-dom", html.as_uri()).stdout
    for cid in ids:
        assert re.search(rf'<td class="cell pass" data-id="{re.escape(cid)}"', dom), cid
    headings = re.findall(r'<section class="host" data-run="[^"]+"><h3>(.*?)</h3>', dom)
    assert sorted(re.sub(r".* shard ", "", h) for h in headings) == ["1/2", "2/2"], headings
    assert dom.count('class="host-timeline"') == 2
    for cid in ids:
        assert re.search(rf'<g class="run-bar pass" data-id="{re.escape(cid)}">', dom), cid
    png = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,900", html.as_uri())
    _, _, distinct = png_rows(png)
    assert distinct > 50, "the screenshot is blank"
    for href in re.findall(r'href="([^"#][^"]*)"', html.read_text()):
        assert (out / unquote(href)).resolve().is_file(), href
