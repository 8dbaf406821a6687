"""`livelab bisect` without VMs: bad input is one line before anything boots (a QEMU sentinel proves it), and
the command's own output and bisect.json over a small mirror, with the pytest runs replaced by a fake."""
import json
from pathlib import Path

import pytest
from clirun import REPO, refusal_line, run_livelab
from release_mirror import FCOS_TESTING, FLATCAR_ALPHA, standin_mirror

from harness.bisect import probe as probe_mod
from harness.bisect.steps import FAIL, PASS, Outcome
from harness.cli import main

SCENARIOS = str(REPO / "scenarios")
GOOD, MID, BAD = FCOS_TESTING


@pytest.fixture
def mirror(tmp_path):
    return str(standin_mirror(tmp_path / "mirror"))


@pytest.mark.parametrize("args,error", [
    (["fcos", "--stream", "testing", "--good", "1.2.3", "--bad", BAD, "fcos.testing.iso.bios.base"],
     f"--good 1.2.3: not a release of fcos testing (3 releases, {GOOD} to {BAD})"),
    (["fcos", "--stream", "testing", "--good", BAD, "--bad", GOOD, "fcos.testing.iso.bios.base"],
     f"--good {BAD} is newer than --bad {GOOD} in fcos testing"),
    (["fcos", "--good", GOOD, "--bad", GOOD, "fcos.testing.iso.bios.base"], "are the same release"),
    (["fcos", "--stream", "nightly", "--good", GOOD, "--bad", BAD, "--scenario", "base", "--via", "iso"],
     "nightly"),
    (["fcos", "--channel", "alpha", "--good", GOOD, "--bad", BAD, "fcos.testing.iso.bios.base"],
     "fcos takes --stream, not --channel"),
    (["flatcar", "--stream", "alpha", "--good", "4012.0.0", "--bad", "4081.0.0", "--scenario", "base", "--via", "pxe"],
     "flatcar takes --channel, not --stream"),
    (["fcos", "--good", GOOD, "--bad", BAD], "which test?"),
    (["fcos", "--stream", "stable", "--good", GOOD, "--bad", BAD, "fcos.testing.iso.bios.base"],
     "runs on testing, not --stream stable"),
    (["flatcar", "--good", GOOD, "--bad", BAD, "fcos.testing.iso.bios.base"], "is a fcos case, not flatcar"),
    (["fcos", "--good", GOOD, "--bad", BAD, "fcos.testing.iso.bios"], "names no scenario"),
    (["fcos", "--good", GOOD, "--bad", BAD, "fcos.testing.iso.bios.base", "--via", "pxe"], "not both"),
    (["fcos", "--stream", "testing", "--good", GOOD, "--bad", BAD, "--scenario", "nope", "--via", "iso"],
     "unknown scenario 'nope'"),
    (["fcos", "--stream", "testing", "--good", GOOD, "--bad", MID, "fcos.testing.iso.bios.base"],
     f"--bad {MID}: its artifacts cannot be had: iso ("),
    (["flatcar", "--channel", "alpha", "--good", FLATCAR_ALPHA[0], "--bad", FLATCAR_ALPHA[1], "--scenario", "base",
      "--via", "pxe"], f"--bad {FLATCAR_ALPHA[1]}: its artifacts cannot be had: initramfs ("),
    (["fcos", "--good", GOOD, "--bad", BAD, "fcos.testing.iso.bios.base", "--jobs", "0"], "--jobs '0'"),
])
def test_bad_input_is_one_line_before_any_vm(tmp_path, mirror, sentinel, args, error):
    qemu, calls = sentinel
    proc = run_livelab("bisect", *args, "--mirror", mirror, "--cache-dir", tmp_path / "cache",
                       "--scenario-dir", SCENARIOS, "--output", tmp_path / "out",
                       env={"LIVELAB_QEMU": str(qemu), "LIVELAB_STATE_DIR": str(tmp_path / "state")})
    assert error in refusal_line(proc)
    assert not calls.exists(), "a VM was started"
    assert not (tmp_path / "out").exists()


def fake_runs(monkeypatch, outcomes):
    """CaseProbe's pytest runs replaced: ``outcomes[release]`` (result, reason); the calls it got."""
    calls = []

    def call(self, release, attempt):
        calls.append((release, attempt, dict(self.options), list(self.flags)))
        result, reason = outcomes[release]
        return Outcome(release, result, reason=reason, triage="ok", run_dir=f"{self.out}/steps/{release}-try{attempt}")
    monkeypatch.setattr(probe_mod.CaseProbe, "run_case", call)
    return calls


def test_the_command_names_the_first_bad_release(tmp_path, mirror, monkeypatch, capsys):
    reason = "check failed: boot 1: core has passwordless sudo"
    calls = fake_runs(monkeypatch, {GOOD: (PASS, ""), MID: (FAIL, reason), BAD: (FAIL, reason)})
    # the middle release publishes no ISO: bisect it by PXE
    out = tmp_path / "out"
    rc = main(["bisect", "fcos", "--stream", "testing", "--good", GOOD, "--bad", BAD, "--scenario", "base",
               "--via", "pxe", "--mirror", mirror, "--cache-dir", str(tmp_path / "cache"), "--scenario-dir",
               SCENARIOS, "--output", str(out), "--insecure", "--vm-cpus", "1",
               "--keyring", str(REPO / "pyproject.toml")])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert [c[:2] for c in calls] == [(BAD, 1), (MID, 1)]
    options, flags = calls[0][2], calls[0][3]
    assert options["mirror"] == mirror and options["vm_cpus"] == 1 and options["keyring"].endswith("pyproject.toml")
    assert flags == ["--insecure"]
    assert f"first bad release: {MID} (boundary: {GOOD} good, {MID} bad); 2 boot(s)" in text
    assert f"step 2 (round 2): {MID} bad: {reason}" in text and "triage: ok" in text
    doc = json.loads((out / "bisect.json").read_text())
    assert doc["test_id"] == "fcos.testing.pxe.bios.base"
    assert doc["node_id"].endswith("base.yaml::fcos.testing.pxe.bios.base")
    assert doc["result"]["first_bad"] == MID and [s["release"] for s in doc["steps"]] == [BAD, MID]
    assert all(s["run_dir"].startswith(str(out)) for s in doc["steps"])


def test_a_release_without_the_methods_artifacts_is_skipped_without_a_boot(tmp_path, mirror, monkeypatch, capsys):
    reason = "check failed: boot 1: core has passwordless sudo"
    calls = fake_runs(monkeypatch, {BAD: (FAIL, reason)})
    rc = main(["bisect", "fcos", "fcos.testing.iso.bios.base", "--good", GOOD, "--bad", BAD, "--mirror", mirror,
               "--cache-dir", str(tmp_path / "cache"), "--scenario-dir", SCENARIOS, "--output", str(tmp_path / "o")])
    text = capsys.readouterr().out
    assert rc == 1
    assert [c[:2] for c in calls] == [(BAD, 1)]          # the middle release has no ISO: not booted
    assert f"{MID} skip: artifacts missing: iso (" in text
    assert f"the first bad release is one of {MID}, {BAD}" in text
    doc = json.loads((tmp_path / "o/bisect.json").read_text())
    assert doc["boots"] == 1 and doc["result"]["first_bad"] is None


def test_a_bad_release_that_passes_says_so(tmp_path, mirror, monkeypatch, capsys):
    fake_runs(monkeypatch, {FLATCAR_ALPHA[2]: (PASS, "")})
    rc = main(["bisect", "flatcar", "--channel", "alpha", "--good", FLATCAR_ALPHA[0], "--bad", FLATCAR_ALPHA[2],
               "--scenario", "base", "--via", "pxe", "--mirror", mirror, "--cache-dir", str(tmp_path / "cache"),
               "--scenario-dir", SCENARIOS, "--output", str(tmp_path / "o"), "-q"])
    text = capsys.readouterr().out
    assert rc == 1
    assert text.strip().splitlines() == [
        f"livelab: the bad release {FLATCAR_ALPHA[2]} passed: nothing to bisect; 1 boot(s); bisect.json: "
        f"{tmp_path / 'o' / 'bisect.json'}"]


def test_the_failure_reason_of_a_run(tmp_path):
    from harness import scenario as sc
    scen = sc.load(Path(SCENARIOS) / "base.yaml")
    run = tmp_path / "run"
    run.mkdir()
    (run / "checks.log").write_text(
        "boot 1: the file written by Ignition: ok\n"
        "boot 1: FAILED core has passwordless sudo: expected exit 0; `sudo -n true` exited 1\nstdout: \n")
    assert probe_mod.check_reason(run, scen) == "check failed: boot 1: core has passwordless sudo"
    (run / "checks.log").write_text("boot 1: the file written by Ignition: ok\n")
    assert probe_mod.check_reason(run, scen) is None
    assert probe_mod.message_reason("fcos.testing.iso.bios.base: AssertionError: the guest has 1903 MiB, asked "
                                    "for 4096 MiB\nmore", "fcos.testing.iso.bios.base") == \
        "failed: AssertionError: the guest has N MiB, asked for N MiB"


def test_pytest_release_pins_the_version_of_every_boot_that_names_none(tmp_path, monkeypatch):
    """`pytest --release V` (what each bisect try runs): the case's boots resolve V, not the current release; a
    test whose BootRequest pins its own version keeps it."""
    from types import SimpleNamespace

    from harness import pytest_plugin as plugin
    from harness.lab import BootRequest, LabOptions

    booted = []

    class Recorder:
        def __init__(self, req, options, run_dir, ssh_key=None, accel=None):
            booted.append(req)
            self.run_dir, self.machine = run_dir, None

    monkeypatch.setattr(plugin, "LiveBoot", Recorder)
    session = SimpleNamespace(options=LabOptions(), release="42.20250804.2.0", ssh_key=None, accel=None,
                              keep_vms=False, run_dir_for=lambda nodeid, vm="": tmp_path / (vm or "vm"))
    factory = plugin.VMFactory(session, SimpleNamespace(nodeid="scenarios/base.yaml::fcos.testing.iso.bios.base"))
    factory(BootRequest("fcos", "testing", "iso", "bios"), start=False)
    factory(BootRequest("fcos", "stable", "iso", "bios", version="41.20250315.3.0"), start=False)
    assert [r.version for r in booted] == ["42.20250804.2.0", "41.20250315.3.0"]
    session.release = None
    factory(BootRequest("fcos", "testing", "iso", "bios"), start=False)
    assert booted[-1].version is None
