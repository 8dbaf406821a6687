"""Collection in anyone's repo: scenario directories, --os/--stream/--channel/--firmware, bad scenario files.

The subprocess cases run a real pytest (--collect-only) in a temporary "user repo"; nothing boots."""
import subprocess
import sys
from pathlib import Path

import pytest

from harness import vocab
from harness.errors import LivelabError
from harness.selection import Selection, configuration_of

REPO = Path(__file__).resolve().parents[2]


def test_values_are_checked_and_split():
    s = Selection.from_options(["fcos"], ["next,testing"], None, ["uefi"])
    assert (s.oses, s.streams, s.channels, s.firmware) == (["fcos"], ["next", "testing"], [], ["uefi"])
    for args, msg in (((["rhcos"],), "--os 'rhcos'"), ((None, ["beta"]), "--stream 'beta'"),
                      ((None, None, ["next"]), "--channel 'next'"), ((None, None, None, ["coreboot"]), "--firmware")):
        with pytest.raises(LivelabError, match=msg):
            Selection.from_options(*args)


@pytest.mark.parametrize("options, conf, kept", [
    ((), {"os": "fcos", "stream": "next"}, True),                              # nothing chosen
    ((["flatcar"],), {"os": "fcos", "stream": "stable"}, False),
    ((["flatcar"],), None, True),                                             # not about a configuration
    ((None, ["next"]), {"os": "fcos", "stream": "next"}, True),
    ((None, ["next"]), {"os": "fcos", "stream": "stable"}, False),
    ((None, ["next"]), {"os": "flatcar", "stream": "beta"}, False),           # FCOS streams chosen only
    ((None, ["next"], ["beta"]), {"os": "flatcar", "stream": "beta"}, True),
    ((None, None, ["beta"]), {"os": "flatcar", "stream": "lts"}, False),
    ((None, None, None, ["uefi"]), {"os": "flatcar", "firmware": "bios"}, False),
    ((None, None, None, ["uefi"]), {"os": "flatcar", "firmware": "uefi"}, True),
    ((None, ["next"]), {"os": "fcos"}, True),                                 # stream not known: kept
])
def test_keeps(options, conf, kept):
    assert Selection.from_options(*options).keeps(conf) is kept


class _Item:
    def __init__(self, name, mark=None, params=None):
        self.name = name
        self._mark = mark
        if params is not None:
            self.callspec = type("CS", (), {"params": params})()

    def get_closest_marker(self, name):
        return self._mark if name == "livelab" else None


def test_configuration_from_marker_params_or_id():
    mark = pytest.mark.livelab(os="fcos", stream="stable", method="iso-fromram").mark
    assert configuration_of(_Item("test_x[bios]", mark, {"firmware": "bios"})) == \
        {"os": "fcos", "stream": "stable", "method": "iso-fromram", "firmware": "bios"}
    assert configuration_of(_Item("test_real[flatcar-beta-ipxe]", None, {"os_id": "flatcar", "stream": "beta"})) == \
        {"os": "flatcar", "stream": "beta"}
    assert configuration_of(_Item("test_y[flatcar.lts.pxe.uefi]")) == \
        {"os": "flatcar", "stream": "lts", "method": "pxe", "firmware": "uefi"}
    assert configuration_of(_Item("test_unit_thing")) is None


# ---------------------------------------------------------------- a user repo, collected by a real pytest

SCENARIO = """\
description: a user's own check
butane: mine.bu
applies: {os: [fcos, flatcar], method: [pxe, ipxe], firmware: [bios, uefi]}
ci: [fcos.stable.pxe.bios]
boots:
  - checks:
      - ssh: cat /etc/mine
        output: '^mine$'
"""
BUTANE = """\
variant: fcos
version: 1.4.0
storage:
  files:
    - path: /etc/mine
      contents: {inline: mine}
"""
PYTEST_INI = """\
[pytest]
livelab_scenarios = checks
"""
PYTHON_TEST = '''
import pytest

@pytest.mark.livelab(os="flatcar", stream="beta", method="pxe", firmware="bios")
def test_flatcar_thing(live_vm):
    pass

def test_not_about_a_configuration():
    pass
'''


@pytest.fixture
def user_repo(tmp_path):
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "mine.yaml").write_text(SCENARIO)
    (tmp_path / "checks" / "mine.bu").write_text(BUTANE)
    (tmp_path / "checks" / "notes.txt").write_text("not a scenario")
    (tmp_path / "pytest.ini").write_text(PYTEST_INI)
    (tmp_path / "test_mine.py").write_text(PYTHON_TEST)
    return tmp_path


def _collect(cwd, *args):
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120)
    ids = [line.strip() for line in proc.stdout.splitlines() if "::" in line]
    return proc, ids


def test_user_scenarios_collect_with_livelab_ids(user_repo):
    proc, ids = _collect(user_repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checks/mine.yaml::fcos.stable.pxe.bios.mine" in ids
    assert "checks/mine.yaml::flatcar.stable.ipxe.uefi.mine" in ids
    assert "test_mine.py::test_flatcar_thing" in ids and "test_mine.py::test_not_about_a_configuration" in ids
    assert len(ids) == 2 * 2 * 2 + 2
    proc, ids = _collect(user_repo, "-m", "ci")
    assert [i.split("::")[1] for i in ids] == ["fcos.stable.pxe.bios.mine"]
    proc, ids = _collect(user_repo, "-k", "ipxe")
    assert ids and all(".ipxe." in i for i in ids)


@pytest.mark.parametrize("options, expected", [
    (["--os", "flatcar"], {"flatcar.stable.pxe.bios.mine", "flatcar.stable.pxe.uefi.mine",
                           "flatcar.stable.ipxe.bios.mine", "flatcar.stable.ipxe.uefi.mine", "test_flatcar_thing",
                           "test_not_about_a_configuration"}),
    # a scenario naming no stream runs on the one chosen; Flatcar is left out without --channel
    (["--stream", "next", "--firmware", "bios"], {"fcos.next.pxe.bios.mine", "fcos.next.ipxe.bios.mine",
                                                  "test_not_about_a_configuration"}),
    (["--channel", "beta", "--firmware", "bios"], {"flatcar.beta.pxe.bios.mine", "flatcar.beta.ipxe.bios.mine",
                                                   "test_flatcar_thing", "test_not_about_a_configuration"}),
    (["--firmware", "uefi", "--os", "fcos"], {"fcos.stable.pxe.uefi.mine", "fcos.stable.ipxe.uefi.mine",
                                              "test_not_about_a_configuration"}),
])
def test_each_option_changes_what_runs(user_repo, options, expected):
    proc, ids = _collect(user_repo, *options)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {i.split("::")[1] for i in ids} == expected


def test_bad_option_value_is_one_line(user_repo):
    proc, ids = _collect(user_repo, "--channel", "next")
    assert proc.returncode == 4 and ids == []
    assert "ERROR: --channel 'next': expected one of stable, beta, alpha, lts" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_scenario_dir_option_and_missing_dir(user_repo, tmp_path_factory):
    other = tmp_path_factory.mktemp("more")
    (other / "extra.yaml").write_text("applies: {os: [fcos], method: [iso], firmware: [bios]}\n")
    proc, ids = _collect(user_repo, "--scenario-dir", str(other), "-k", "extra")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [i.split("::")[1] for i in ids] == ["fcos.stable.iso.bios.extra"]
    proc, ids = _collect(user_repo, "--scenario-dir", "nowhere")
    assert proc.returncode == 4 and "scenario directory" in proc.stderr and "nowhere does not exist" in proc.stderr


def test_a_bad_user_scenario_is_one_error_and_the_rest_still_collect(user_repo):
    (user_repo / "checks" / "broken.yaml").write_text("applies: {os: [fcos]}\nbootz: []\n")
    proc, ids = _collect(user_repo, "--continue-on-collection-errors")
    out = proc.stdout + proc.stderr
    assert "ERROR checks/broken.yaml" in out
    assert "livelab scenario broken.yaml: bootz: unknown key" in out
    assert "Traceback" not in out and "harness/" not in out
    assert "checks/mine.yaml::fcos.stable.pxe.bios.mine" in ids
    proc, _ = _collect(user_repo)
    assert proc.returncode == 2 and "1 error" in proc.stdout


def test_repo_root_collects_without_errors():
    """`pytest -k pxe` at this repository's root: no collection error, only PXE / iPXE cases boot."""
    proc, ids = _collect(REPO, "-k", "pxe")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    scen = [i for i in ids if i.startswith("scenarios/")]
    assert scen and all(".pxe" in i or ".ipxe" in i for i in scen)
    assert all("pxe" in i.lower() for i in ids)
    proc, ids = _collect(REPO, "--stream", "next", "-k", "base")
    scen = [i for i in ids if i.startswith("scenarios/")]
    assert proc.returncode == 0 and scen and all(".next." in i for i in scen), ids
    assert all(i.startswith(("scenarios/", "tests/unit/")) for i in ids), ids      # unit tests: no configuration


def test_checkout_without_the_entry_point_still_loads_the_plugin():
    """The top-level conftest.py registers the plugin when autoload is off (and not twice when on)."""
    import os
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-k", "fromram"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "scenarios/persist-var.yaml::fcos.stable.iso-fromram.bios.persist-var" in proc.stdout


# ---------------------------------------------------------------- -k of the disk suffix: the 4Kn ids, exactly

def _disk_of(node_id: str) -> str | None:
    """The disk suffix of the test id a node carries: a scenario case's name, or a test's parameter id."""
    name = node_id.split("::")[-1]
    text = name[name.index("[") + 1:-1] if name.endswith("]") else name
    try:
        return vocab.TestId.parse(text).disk
    except LivelabError:
        return None


def test_k_of_the_disk_suffix_selects_exactly_the_big_sector_ids():
    """`pytest -k 4k` at this repository's root (the suffix of 4096-byte-sector ids, as kola's
    variants): every case whose id ends in it, and nothing else (no unit test, no other case)."""
    k = vocab.DISK_SUFFIX[4096]
    proc, every = _collect(REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc, chosen = _collect(REPO, "-k", k)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert set(chosen) == {n for n in every if _disk_of(n) == k}
    assert f"scenarios/persist-var.yaml::fcos.stable.iso.uefi.persist-var.{k}" in chosen
    assert any(n.endswith(f"[fcos.stable.iso-as-disk.uefi.base.{k}]") for n in chosen), chosen


def test_k_of_the_disk_suffix_in_a_user_repo(user_repo):
    """A scenario's 4Kn cases are selected by the suffix; a scenario whose name holds it is refused
    (it would be selected too): one collection error naming the rule, the rest still collect."""
    k = vocab.DISK_SUFFIX[4096]
    (user_repo / "checks" / "big.yaml").write_text(
        "applies: [{os: [fcos], method: [pxe]}, {os: [fcos], method: [iso], sector: [512, 4096]}]\n")
    proc, ids = _collect(user_repo, "-k", k)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ids == [f"checks/big.yaml::fcos.stable.iso.bios.big.{k}"]
    (user_repo / "checks" / f"raid{k}.yaml").write_text("applies: {os: [fcos], method: [iso]}\n")
    proc, ids = _collect(user_repo, "-k", k, "--continue-on-collection-errors")
    out = proc.stdout + proc.stderr
    assert f"ERROR checks/raid{k}.yaml" in out and f"no '{k}' in it" in out and "Traceback" not in out
    assert ids == [f"checks/big.yaml::fcos.stable.iso.bios.big.{k}"]
