"""A lab of hosts on this machine: ``livelab matrix --hosts`` with one pytest-xdist worker on each of
two hosts, reached over SSH, each booting its cells in its own namespaces with its own HOME, cache,
state and run root; the per-VM files come home on the test reports.

Each host (``netns_hosts``) is a network, UTS and mount namespace with its own sshd, host name and a
tmpfs that exists only in its mount namespace: from the controller's side its directory is empty,
so the files in the controller's run directory can only have come through xdist.  4 cells, 2 per
host, ``--vm-cpus 1``: two VMs at once, one in each host's network namespace (``serial``; ``make
test-e2e``, not the CI subset).

Shown: every cell passed, on the host its report names (its VM's files name that host's cache and
run root; that host, and only that host, has its run directory); the files the controller wrote are
byte for byte the host's (compared through SSH after the run); large media (the ISO) stayed on the
host; the controller fetched nothing, admitted no VM and saw none of the hosts' files; each host
admitted its own VMs; the report and a merge of it name both hosts with their cells.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import netns_hosts as nh
import pytest

from harness import run_media

REPO = Path(__file__).resolve().parents[2]
CELLS = ["--streams", "stable", "--via", "pxe-rootfs-url,iso", "--firmware", "bios,uefi"]     # 4 cells
MATRIX_TIMEOUT_S = 2400
SENT = ("console.log", "vm.json", "timings.json", "config.ign", "qemu-cmdline.txt")


def _livelab(*args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture
def hosts(tmp_path):
    missing = nh.missing_tools()
    assert not missing, (f"missing {', '.join(missing)}: scripts/setup-host.sh installs them "
                         "(openssh-server, openssh-client, socat, util-linux, iproute2)")
    started, cfg = nh.start_hosts(tmp_path / "lab", REPO)
    try:
        yield started, cfg
    finally:
        nh.stop_hosts(started)
        assert not [p for h in started for p in nh.processes_of(h)], "a host's process outlived the test"


@pytest.mark.e2e
@pytest.mark.serial
@pytest.mark.slow
@pytest.mark.livelab(os="fcos")
def test_two_hosts_run_the_matrix_and_their_files_come_home_through_xdist(tmp_path, hosts):
    assert (REPO / "images/out/mirror").is_dir(), "the stand-in mirror is missing: run `make images`"
    lab, cfg = hosts
    ctl = tmp_path / "controller"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(ctl / "home"),
           "LIVELAB_CACHE_DIR": str(ctl / "cache"), "LIVELAB_STATE_DIR": str(ctl / "state")}
    env.pop("LIVELAB_RUN_DIR", None)
    (ctl / "home").mkdir(parents=True)
    out = tmp_path / "out"
    spec = ",".join(f"ssh={h.alias}//ssh_config={cfg}//chdir={h.checkout}" for h in lab)
    listed = _livelab("matrix", "fcos", *CELLS, "--list", env=env)
    assert listed.returncode == 0, listed.stderr
    ids = [line.split("\t")[0] for line in listed.stdout.splitlines()]
    assert len(ids) == 4

    run = _livelab("matrix", "fcos", *CELLS, "--vm-cpus", "1", "--hosts", spec, "--host", "controller",
                   "--output", str(out), env=env, timeout=MATRIX_TIMEOUT_S)
    logs = "".join(f"\n--- {h.alias} sshd:\n{h.log.read_text()[-3000:]}" for h in lab)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-4000:] + logs
    assert "2 worker(s) on 2 host(s)" in run.stdout

    # every cell passed, each on one of the two hosts, both hosts used
    summary = json.loads((out / "summary.json").read_text())
    assert [c["id"] for c in summary["cells"]] == ids
    by_name = {h.name: h for h in lab}
    on = {c["id"]: c["host"] for c in summary["cells"]}
    for c in summary["cells"]:
        assert c["result"] == "pass", f'{c["id"]}: {c["result"]}: {c["message"]}'
        assert c["host"] in by_name and c["history"][0]["host"] == c["host"], c
        assert c["timings"]["boots"][0]["phases"]["ssh_ready"] > 0
    assert set(on.values()) == set(by_name), on

    # the host's own account of what ran there (read through SSH, after the run): its run directory
    # holds exactly the cells the reports say it ran, and the files the controller has are its bytes
    for h in lab:
        mine = sorted(tid for tid, name in on.items() if name == h.name)
        listing = nh.ssh(cfg, h, f"cd {h.run_root} && ls -1d */ && find . -name '*.iso' -o -name '*.qcow2'")
        assert listing.returncode == 0, listing.stderr
        dirs = sorted(line.rstrip("/") for line in listing.stdout.splitlines() if line.endswith("/"))
        assert dirs == sorted([*mine, "ssh"]), (h.alias, dirs, mine)         # and the session's SSH key
        sums = nh.ssh(cfg, h, f"cd {h.run_root} && sha256sum " + " ".join(f"{t}/{f}" for t in mine for f in SENT))
        assert sums.returncode == 0, sums.stderr
        for line in sums.stdout.splitlines():
            digest, rel = line.split(maxsplit=1)
            here = out / "runs" / rel
            assert hashlib.sha256(here.read_bytes()).hexdigest() == digest, rel
        for tid in mine:
            vm = json.loads((out / "runs" / tid / "vm.json").read_text())
            assert all(x["path"].startswith(f"{h.cache}/") for x in vm["artifacts"].values()), vm["artifacts"]
            cmdline = (out / "runs" / tid / "qemu-cmdline.txt").read_text()
            assert str(h.root) in cmdline and all(str(o.root) not in cmdline for o in lab if o is not h)
        # media were made on the host and removed there once their cell passed: none is left, and
        # the record of each ISO cell's live.iso came home (the ISO itself never did)
        assert not [line for line in listing.stdout.splitlines() if line.endswith((".iso", ".qcow2"))], listing.stdout
        for tid in mine:
            if ".iso." in tid:
                assert "live.iso" in (out / "runs" / tid / run_media.RECORD_FILE).read_text(), tid
        state = nh.ssh(cfg, h, f"test -f {h.state}/admission.json && echo admitted-here")
        assert state.stdout.strip() == "admitted-here", state.stderr
    assert not list((out / "runs").rglob("*.iso")) and not list((out / "runs").rglob("*.qcow2"))
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(ids)     # no host's session key either

    # the controller saw none of the hosts' files: their directories are empty on its side; it
    # fetched no artifact and admitted no VM of its own
    for h in lab:
        assert os.listdir(h.root) == [], f"{h.root} has files outside its host's namespace"
    assert not [p for p in (ctl / "cache").rglob("*") if p.is_file()]        # (rglob of a missing dir: nothing)
    assert not (ctl / "state" / "vms").exists() or not list((ctl / "state" / "vms").iterdir())
    claims = ctl / "state" / "admission.json"
    assert not claims.exists() or json.loads(claims.read_text()) == {}

    # the report groups the cells by host; a merge of the run keeps both hosts
    html = (out / "report.html").read_text()
    sections = dict(re.findall(
        r'<section class="host" data-run="[^"]*"><h3>(\S+) &#183; shard [^<]*</h3>(.*?)</section>', html))
    assert set(sections) == set(by_name), list(sections)
    for name, body in sections.items():
        assert sorted(re.findall(r'<g class="run-bar pass" data-id="([^"]+)">', body)) == sorted(
            tid for tid, n in on.items() if n == name)
    merged = _livelab("matrix", "merge", str(tmp_path / "merged"), str(out), env=env)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    msummary = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert {c["id"]: c["host"] for c in msummary["cells"]} == on
    mhtml = (tmp_path / "merged" / "report.html").read_text()
    for h in lab:
        assert f"<h3>{h.name} &#183; shard 1/1</h3>" in mhtml
    for c in msummary["cells"]:
        sent = (out / "runs" / c["id"] / "console.log").read_bytes()
        assert (tmp_path / "merged" / c["console_log"]).read_bytes() == sent, c["console_log"]
