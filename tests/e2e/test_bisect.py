"""``livelab bisect`` on the stand-in's release history: it names the release with the planted regression
(images/README.md, "Release history": the root filesystem lost /etc/sudoers.d/coreos, so the `base`
scenario's check "core has passwordless sudo" fails), each try a real boot of that release.

CI bisects a short FCOS range (4 releases: 3 boots); `make test-e2e` the whole regressed range of FCOS
testing one release a round, and of Flatcar alpha two a round (--jobs 2)."""
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from procs import OUT, REPO, STANDIN, qemus_of

from harness import runtime

REASON = "check failed: boot 1: core has passwordless sudo"


def recipe():
    """images/build.py, for its release history and the releases with the planted regression."""
    spec = importlib.util.spec_from_file_location("livelab_images_build", REPO / "images" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BUILD = recipe()
FCOS = BUILD.FCOS_STREAMS["testing"]
FLATCAR = BUILD.flatcar_releases("alpha")
PLANTED = {"fcos": BUILD.REGRESSED["fcos"][0], "flatcar": BUILD.REGRESSED["flatcar"][0]}


def bisect(tmp_path, os_id, args, good, bad, jobs=1):
    """Run `livelab bisect`; its bisect.json and stdout, after checking what every bisect must show."""
    out = tmp_path / "bisect"
    assert (OUT / "mirror").is_dir(), "the stand-in mirror is missing: run `make images`"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "bisect", os_id, *args, "--good", good, "--bad", bad,
                           "--jobs", str(jobs), "--vm-cpus", "1", "--output", str(out), *STANDIN],
                          cwd=REPO, capture_output=True, text=True, timeout=3000)
    text = proc.stdout
    assert proc.returncode == 0, text[-4000:] + proc.stderr[-4000:]
    doc = json.loads((out / "bisect.json").read_text())
    first = PLANTED[os_id]
    before = doc["releases"][doc["releases"].index(first) - 1]
    assert doc["result"] == {"first_bad": first, "boundary": [before, first], "suspects": [first]}
    assert f"first bad release: {first} (boundary: {before} good, {first} bad)" in text
    assert doc["reference"] == REASON
    # every step: a real boot of the release it names (its vm.json), its verdict and triage line printed
    for step in doc["steps"]:
        run = Path(step["run_dir"])
        vm = json.loads((run / "vm.json").read_text())
        assert vm["release"]["version"] == step["release"]
        assert (run / "console.log").is_file() and step["triage"] == "ok"
        want = "good" if doc["releases"].index(step["release"]) < doc["releases"].index(first) else "bad"
        if step["verdict"] != "retry":
            assert step["verdict"] == want, step
        assert f"{step['release']} {step['verdict']}" in text
    assert text.count("    triage: ok;") == len(doc["steps"])
    assert not qemus_of(out), "a VM of the bisect is still running"
    retries = sum(1 for s in doc["steps"] if s["attempt"] == 2)
    return doc, retries


@pytest.mark.livelab(os="fcos", stream="testing", method="iso", firmware="bios")
@pytest.mark.e2e
@pytest.mark.ci
def test_bisect_names_the_planted_release_in_a_short_range(tmp_path):
    good, bad = FCOS[0], FCOS[FCOS.index(PLANTED["fcos"]) + 1]      # 4 releases: the bad end and 2 halvings
    doc, retries = bisect(tmp_path, "fcos", ["fcos.testing.iso.bios.base"], good, bad)
    assert len(doc["releases"]) == 4
    assert doc["boots"] - retries <= math.ceil(math.log2(4)) + 1
    assert doc["boots"] <= 4


@pytest.mark.livelab(os="fcos", stream="testing", method="iso", firmware="bios")
@pytest.mark.e2e
@pytest.mark.slow
def test_bisect_fcos_testing_history(tmp_path):
    good, bad = FCOS[0], BUILD.REGRESSED["fcos"][-1]
    doc, retries = bisect(tmp_path, "fcos", ["--stream", "testing", "--scenario", "base", "--via", "iso"], good, bad)
    n = len(doc["releases"])
    assert n >= 5
    assert doc["boots"] - retries <= math.ceil(math.log2(n)) + 1


@pytest.mark.livelab(os="flatcar", stream="alpha", method="pxe", firmware="bios")
@pytest.mark.e2e
@pytest.mark.slow
def test_bisect_flatcar_alpha_history_two_a_round(tmp_path):
    good, bad = FLATCAR[0], BUILD.REGRESSED["flatcar"][-1]
    doc, retries = bisect(tmp_path, "flatcar", ["flatcar.alpha.pxe.bios.base"], good, bad, jobs=2)
    n = len(doc["releases"])
    assert doc["jobs"] == min(2, runtime.plan_workers(3072)) and n >= 5
    assert max(s["round"] for s in doc["steps"]) <= 1 + math.ceil(math.log(n - 1, 3))
    assert doc["boots"] - retries <= math.ceil(math.log2(n)) + 1
