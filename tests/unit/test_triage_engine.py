"""The triage engine and its inputs: the same verdict whatever the chunking, the deciding line and
its context, stall bounds from the text, the verdict at the end of a log, and ``livelab triage``."""
from __future__ import annotations

import gzip
import json
import time

import hypothesis_profiles  # noqa: F401 -- registers and loads the profile
import pytest
from clirun import run_livelab
from hypothesis import given
from hypothesis import strategies as st

from harness import matrix, report
from harness.console import ConsoleTap
from harness.triage import Triage, triage_text
from harness.triage.inputs import triage_path

IGNITION_LOST = (
    "\x1b[0m[    0.000000] Linux version 6.9.7 (mockbuild@fedora) #1 SMP\r\n"
    "[    3.100000] systemd[1]: Starting ignition-files.service - Ignition (files)...\r\n"
    "         Starting \x1b[0;1;39mignition-files.service\x1b[0m - Ignition (files)...\r\n"
    "[    3.900000] ignition[812]: files: createFiles: op(1): [failed]   writing file \"/sysroot/etc/x\": "
    "Get \"http://10.0.2.100/x\": resource not found\r\n"
    "[    3.950000] ignition[812]: Ignition failed: failed to create files\r\n"
    "[\x1b[0;1;31mFAILED\x1b[0m] Failed to start \x1b[0;1;39mignition-files.service\x1b[0m - Ignition (files).\r\n"
    "[\x1b[0;1;38;5;185mDEPEND\x1b[0m] Dependency failed for \x1b[0;1;39minitrd.target\x1b[0m"
    " - Initrd Default Target.\r\n"
    "[  OK  ] Reached target emergency.target - Emergency Mode.\r\n"
    "Entering emergency mode. Exit the shell to continue.\r\n"
)
HEALTHY = (
    "[    0.000000] Linux version 6.9.7 (mockbuild@fedora) #1 SMP\r\n"
    "[  OK  ] Finished ignition-files.service - Ignition (files).\r\n"
    "[  OK  ] Reached target initrd-switch-root.target - Switch Root.\r\n"
    "[FAILED] Failed to start systemd-networkd-wait-online.service - Wait for Network to be Configured.\r\n"
    "[  OK  ] Reached target multi-user.target - Multi-User System.\r\n"
    "\r\nFedora CoreOS 42\r\nKernel 6.9.7 on an x86_64 (ttyS0)\r\n\r\n"
    "[systemd]\r\nFailed Units: 1\r\n  systemd-networkd-wait-online.service\r\n"
    "Last login: Thu Apr 21 17:54:24 on tty1\r\n"
    "coreos login: "
)


def test_reason_is_the_earliest_explaining_line_and_the_rest_are_consequences():
    v = triage_text(IGNITION_LOST)
    assert v.headline == "lost: Ignition failed"
    assert "[failed]   writing file" in v.failure.line
    reasons = [c.reason for c in v.failure.consequences]
    assert "emergency mode" in reasons
    # the deciding line's context: the lines before it, itself, and the lines after it
    nos = [ln.no for ln in v.failure.context]
    assert v.failure.deciding.line.no in nos and nos == sorted(nos)


def test_healthy_log_is_ok_with_its_notes_and_phases():
    v = triage_text(HEALTHY)
    assert v.headline == "ok", v.summary()
    assert [n.reason for n in v.notes] == ["unit failed", "unit failed"]
    assert list(v.phases) == ["kernel_start", "ignition_done", "switch_root", "multi_user", "login_prompt"]


def test_a_log_that_ends_early_names_its_last_phase():
    v = triage_text("[    0.000000] Linux version 6.9.7 #1\n"
                    "[  OK  ] Reached target initrd-switch-root.target - Switch Root.\n")
    assert v.headline == "no failure found; last phase switch_root"
    assert triage_text("").headline == "no failure found; last phase none"


def _chunked(text: str, cuts: list[int]) -> Triage:
    t = Triage()
    points = sorted({c % (len(text) + 1) for c in cuts})
    prev = 0
    for p in [*points, len(text)]:
        t.feed(text[prev:p])
        prev = p
    t.close()
    return t


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
       st.sampled_from([IGNITION_LOST, HEALTHY, IGNITION_LOST.replace("\r\n", "\n"), HEALTHY.replace("\r\n", "\r")]))
def test_the_verdict_does_not_depend_on_how_the_text_was_cut(cuts, text):
    whole = triage_text(text)
    parts = _chunked(text, cuts).verdict()
    assert parts.headline == whole.headline
    if whole.failure:
        assert parts.failure.deciding.line.text == whole.failure.deciding.line.text


@given(st.text(max_size=2000))
def test_any_text_gives_a_verdict(text):
    v = triage_text(text)
    assert v.headline == "ok" or v.headline.startswith(("lost: ", "no failure found; last phase "))


def test_the_stall_bound_comes_from_the_text_not_the_clock():
    below = "[  *** ] A start job is running for /dev/disk/by-label/root (29s / no limit)\r"
    above = "[ ***  ] A start job is running for /dev/disk/by-label/root (31s / no limit)\r"
    t = Triage()
    t.feed(below)
    t.feed("[*     ] x\r")          # the spinner's next frame ends the line
    assert t.failure is None
    t.feed(above + "\n")
    assert t.failure is not None and t.failure.reason == "dracut initqueue timeout"
    assert "31 s" in t.failure.trigger.detail
    # replayed later, the same log gives the same verdict at once
    assert triage_text(below + "\n" + above + "\n").headline == "lost: dracut initqueue timeout"


def test_live_tap_fails_on_a_silent_emergency_line_with_no_newline():
    tap = ConsoleTap(time.monotonic())
    tap.write("[   5.1] systemd[1]: Starting dracut-emergency.service...\r\n")
    tap.write("Entering emergency mode. Exit the shell to continue.")
    assert tap.failure is not None and tap.failure[0] == "emergency mode"
    # the line completing later is not counted twice
    tap.write("\r\nType \"journalctl\" to view system logs.\r\n")
    assert tap.triage.failure.consequences == []


def test_live_tap_records_the_deciding_line_and_says_what_ended_the_boot():
    tap = ConsoleTap(time.monotonic())
    tap.write("[ 10.6] XFS (vda4): Metadata corruption detected at xfs_buf_ioend+0x162/0x570 [xfs]\n")
    assert tap.failure is None
    tap.write("[FAILED] Failed to mount sysroot.mount - /sysroot.\n")
    assert tap.failure[0] == "root filesystem corrupt"
    assert "XFS (vda4)" in tap.failure[1]
    assert "Failed to mount sysroot.mount" in tap.evidence()


def test_login_phase_only_from_a_getty_prompt():
    tap = ConsoleTap(time.monotonic())
    tap.write("Last login: Thu Apr 21 17:54:24 on tty1\r\n[core@host ~]$ echo login:\r\nlogin: x\r\n")
    assert "login_prompt" not in tap.phases
    tap.write("cosa-devsh login: ")
    assert "login_prompt" in tap.phases


# ---------------------------------------------------------------- inputs and the CLI

def test_inputs_file_gz_run_dir(tmp_path):
    (tmp_path / "lost.log").write_text(IGNITION_LOST)
    (tmp_path / "ok.log.gz").write_bytes(gzip.compress(HEALTHY.encode()))
    run = tmp_path / "run"
    run.mkdir()
    (run / "console.log").write_text(IGNITION_LOST)
    (run / "timings.json").write_text(json.dumps({"boots": [{"phases": {"kernel_start": 3.2, "first_console": 0.1}}]}))
    assert triage_path(tmp_path / "lost.log").verdict.headline == "lost: Ignition failed"
    assert triage_path(tmp_path / "ok.log.gz").verdict.headline == "ok"
    t = triage_path(run)
    assert t.timings == {"kernel_start": 3.2, "first_console": 0.1}
    assert "phase times (timings.json): first_console 0.1 s, kernel_start 3.2 s" in t.summary()


def test_cli_exit_status_and_output(tmp_path):
    (tmp_path / "lost.log").write_text(IGNITION_LOST)
    (tmp_path / "ok.log").write_text(HEALTHY)
    (tmp_path / "short.log").write_text("[    0.000000] Linux version 6.9.7 #1\n")
    ok = run_livelab("triage", tmp_path / "ok.log")
    assert ok.returncode == 0 and ok.stdout.splitlines()[0] == "ok"
    short = run_livelab("triage", tmp_path / "short.log")
    assert short.returncode == 0 and short.stdout.splitlines()[0] == "no failure found; last phase kernel_start"
    lost = run_livelab("triage", tmp_path / "lost.log", tmp_path / "ok.log")
    assert lost.returncode == 1
    assert "lost: Ignition failed" in lost.stdout and "deciding line 4:" in lost.stdout
    assert "consequences:" in lost.stdout and f"== {tmp_path / 'ok.log'} ==" in lost.stdout
    js = run_livelab("triage", "--json", "-", input=IGNITION_LOST)
    data = json.loads(js.stdout)
    assert js.returncode == 1 and data[0]["reason"] == "Ignition failed" and data[0]["input"] == "-"
    assert data[0]["failure"]["deciding"]["line_no"] == 4


def test_cli_unreadable_input_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "empty-dir").mkdir()
    for bad, words in [(tmp_path / "nope.log", "no such file"),
                       (tmp_path / "empty-dir", "not a livelab run directory")]:
        proc = run_livelab("triage", bad)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8bnot gzip at all")
    proc = run_livelab("triage", tmp_path / "bad.gz", tmp_path / "nope.log")
    assert proc.returncode == 2 and proc.stderr.count("livelab: error: ") == 2


# ---------------------------------------------------------------- reports

def test_failed_matrix_cell_carries_the_triage_summary(tmp_path):
    run = tmp_path / "fcos.stable.pxe.bios.base"
    run.mkdir()
    (run / "console.log").write_text(IGNITION_LOST)
    cell = matrix.Cell("fcos.stable.pxe.bios.base", "fcos", "stable", "pxe", "bios", "base", 4096)
    rec = matrix.make_cell(cell, [matrix.Attempt("fail", 12.0, [str(run)], "BootFailure: x")], tmp_path)
    assert rec["triage"]["verdict"] == "lost: Ignition failed"
    assert rec["triage"]["summary"] == triage_path(run).summary()
    html = report.render_html({"os": "fcos", "cells": [rec]}, tmp_path)
    assert "console triage: <b>lost: Ignition failed</b>" in html
    passed = matrix.make_cell(cell, [matrix.Attempt("pass", 12.0, [str(run)], "")], tmp_path)
    assert passed["triage"] is None


@pytest.mark.parametrize("line", ["Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"])
def test_fail_patterns_keep_their_tuple_shape(line):
    from harness.console import FAIL_PATTERNS
    reason, pattern, *rest = FAIL_PATTERNS[0]
    assert isinstance(reason, str) and hasattr(pattern, "search") and rest
    assert any(r[1].search(line) for r in FAIL_PATTERNS if r[0] == "kernel panic")


def test_cli_takes_a_directory_of_run_directories(tmp_path):
    for name, text in [("a.fcos", HEALTHY), ("b.fcos", IGNITION_LOST)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "console.log").write_text(text)
    (tmp_path / "ssh").mkdir()              # a directory of the session that is no VM's
    proc = run_livelab("triage", tmp_path)
    assert proc.returncode == 1
    assert [ln for ln in proc.stdout.splitlines() if ln.startswith("== ")] == [
        f"== {tmp_path / 'a.fcos'} ==", f"== {tmp_path / 'b.fcos'} =="]


def test_the_deciding_line_is_not_its_own_consequence():
    # a unit failing in the initramfs first, then the cause that names itself: the cause decides, and
    # the earlier unit line (not the cause again) is listed with what followed
    t = Triage()
    t.feed("[ 1.0] Linux version 6.1 #1\n[ 2.0] Run /init as init process\n"
           "[FAILED] Failed to start coreos-gpt-setup.service - Generate New UUID For Boot Disk GPT.\n"
           "[ 5.0] XFS (vda4): Metadata corruption detected at xfs_buf_ioend+0x162/0x570 [xfs]\n"
           "[FAILED] Failed to mount sysroot.mount - /sysroot.\n")
    f = t.failure
    assert f.reason == "root filesystem corrupt" and f.deciding.line.no == 4
    assert [(c.reason, c.line.no) for c in f.consequences] == [("emergency mode", 3)]
