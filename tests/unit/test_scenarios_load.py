"""Every scenario in scenarios/ loads, its Butane translates and validates for its target."""
from pathlib import Path

import pytest
import repo_scripts

from harness import scenario as sc
from harness.errors import LivelabError
from harness.ignition import butane_to_ignition, check_target, validate_or_raise

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios"
SCENARIOS = sc.load_all(SCENARIO_DIR)


BUILD = repo_scripts.load("images/build.py")


def standin_max_spec(os_id: str, stream: str) -> str:
    """The newest spec the stand-in's current release of ``stream`` reads (its ignition-specs.json)."""
    version = BUILD.FCOS_STREAMS[stream][-1] if os_id == "fcos" else BUILD.FLATCAR_CHANNELS[stream]
    return BUILD.standin_spec(os_id, version)


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_loads_and_butane_validates(s):
    assert s.cases(), f"{s.name} applies to no cell"
    for os_id, f in s.butane.items():
        if not f:
            continue
        text = (s.path.parent / f).read_text()
        if s.session_key_placeholder:
            assert s.session_key_placeholder in text, f"{f} has no {s.session_key_placeholder!r}"
        t = butane_to_ignition(text, files_dir=str(s.path.parent))
        validate_or_raise(t.config)
        # every stream the scenario applies to reads its spec (the stand-in: the lower of 3.5.0 and
        # what the real release reads)
        for case in s.cases():
            if case.os == os_id:
                check_target(t.config, standin_max_spec(os_id, case.stream), target=f"{os_id} {case.stream}")
    ids = {c.config for c in s.cases()}
    assert set(s.ci) <= ids, f"ci ids not in the scenario's matrix: {set(s.ci) - ids}"


def test_bad_scenario_is_one_clear_error(tmp_path):
    (tmp_path / "x.yaml").write_text("boots:\n  - how: sideways\n")
    with pytest.raises(LivelabError, match=r"x.yaml: boots\[0\].how"):
        sc.load(tmp_path / "x.yaml")
    (tmp_path / "y.yaml").write_text("description: a: b\n")
    with pytest.raises(LivelabError, match="not valid YAML"):
        sc.load(tmp_path / "y.yaml")
    (tmp_path / "z.yaml").write_text("bootz: []\n")
    with pytest.raises(LivelabError, match="bootz: unknown key"):
        sc.load(tmp_path / "z.yaml")


def test_selection_by_keyword():
    ids = [c.id for s in SCENARIOS for c in s.cases()]
    assert any(".pxe." in i for i in ids) and any(i.startswith("flatcar.") for i in ids)
    assert all(i.split(".")[3] in ("bios", "uefi", "uefi-secure") for i in ids)
    # under Secure Boot only the ISO methods are collected (a network boot is not applicable)
    secure = [i for i in ids if i.split(".")[3] == "uefi-secure"]
    assert secure and all(i.split(".")[2] in ("iso", "iso-fromram", "iso-as-disk") for i in secure)
    assert any(i.endswith(".persist-var") and ".iso-fromram." in i for i in ids)
    assert "fcos.stable.iso.uefi.persist-var.4k" in ids and "fcos.stable.iso-as-disk.uefi.base" in ids


@pytest.mark.parametrize("body, error", [
    ("forwards: [80]\nboots:\n  - checks:\n      - port: 80\n        expect: maybe\n",
     r"checks\[0\]\.expect: one of answers"),
    ("boots:\n  - checks:\n      - port: 80\n        expect: answers\n", r"port check on 80: add 80 to forwards"),
    ("forwards: [22]\n", r"forwards: a list of guest TCP port numbers"),
    ("forwards: [80]\nboots:\n  - checks:\n      - port: http\n        expect: answers\n",
     r"checks\[0\]\.port: a guest TCP port"),
    ("boots:\n  - checks:\n      - ssh: 'true'\n        expect: answers\n", r"expect/send belong to a port check"),
    ("boots:\n  - checks:\n      - ssh: 'true'\n        output: '('\n",
     r"checks\[0\]\.output: not a regular expression"),
])
def test_port_checks_are_checked_when_loaded(tmp_path, body, error):
    (tmp_path / "p.yaml").write_text(body)
    with pytest.raises(LivelabError, match=error):
        sc.load(tmp_path / "p.yaml")


def test_firewall_scenario_probes_from_outside():
    fw = sc.load(SCENARIO_DIR / "firewall.yaml")
    assert fw.forwards == [80, 8080, 9]
    req = fw.request("fcos", "stable", "pxe-rootfs-url", "bios")
    assert req.forwards == [80, 8080, 9]
    probes = [(c.text, c.expect) for c in fw.boots[0].checks if c.kind == "port"]
    assert ("8080", "dropped") in probes and ("8080", "answers") in probes and ("9", "refused") in probes


CHECKS = "boots:\n  - checks:\n"


@pytest.mark.parametrize("body, error", [
    (CHECKS + "      - ssh: echo {{nope}}\n", r"checks\[0\]: \{\{nope\}\} is not saved by an earlier check"),
    (CHECKS + "      - ssh: 'true'\n        output: '{{later}}'\n      - ssh: echo x\n        save_as: later\n",
     r"boots\[0\]\.checks\[0\]: \{\{later\}\} is not saved"),
    ("forwards: [80]\n" + CHECKS + "      - port: 80\n        expect: answers\n        save_as: x\n",
     r"save_as: only ssh, console_cmd, wait_until checks"),
    (CHECKS + "      - ssh: 'true'\n        save_as: 2x\n", r"save_as: a name of letters"),
    (CHECKS + "      - wait_until: 'true'\n        status: 1\n", r"wait_until waits for exit status 0"),
    (CHECKS + "      - wait_until: 'true'\n        timeout: soon\n", r"timeout: seconds, a positive number"),
])
def test_wait_until_and_save_as_are_checked_when_loaded(tmp_path, body, error):
    (tmp_path / "w.yaml").write_text(body)
    with pytest.raises(LivelabError, match=error):
        sc.load(tmp_path / "w.yaml")


def test_no_shell_retry_loops_in_scenarios():
    for s in SCENARIOS:
        for boot in s.boots:
            for c in boot.checks:
                assert "seq " not in c.text and "sleep" not in c.text, (s.name, c.text)


class _FakeMachine:
    def __init__(self):
        self.ran = []
        self.timeouts = None

    def execute(self, command, timeout=None):
        self.ran.append(command)
        return 0, {"blkid": "1234-abcd\n", "again": "1234-abcd\n"}.get(command.split()[0], "x\n"), ""

    def wait_until_succeeds(self, command, timeout=None, output=None):
        self.ran.append(("wait_until", command, timeout, output))
        return "hello\n"


def test_save_as_carries_a_value_to_later_checks_across_boots(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "boots:\n"
        "  - checks:\n"
        "      - ssh: blkid\n        save_as: uuid\n"
        "      - wait_until: curl -s localhost\n        output: hel+o\n        timeout: 30\n"
        "  - how: reboot\n    checks:\n"
        "      - ssh: again {{uuid}}\n        output: '^{{uuid}}$'\n")
    s = sc.load(tmp_path / "s.yaml")
    machine = _FakeMachine()
    lb = type("LB", (), {"machine": machine, "req": None, "require_machine": lambda self: machine})()
    values: dict = {}
    assert "uuid = '1234-abcd'" in sc.run_check(lb, s.boots[0].checks[0], values)
    assert values == {"uuid": "1234-abcd"}
    sc.run_check(lb, s.boots[0].checks[1], values)
    assert lb.machine.ran[-1] == ("wait_until", "curl -s localhost", 30, "hel+o")
    sc.run_check(lb, s.boots[1].checks[0], values)
    assert lb.machine.ran[-1] == "again 1234-abcd"
    # a saved value is a literal in a pattern
    values["uuid"] = "12.4"
    with pytest.raises(AssertionError, match="does not match"):
        sc.run_check(lb, s.boots[1].checks[0], values)


@pytest.mark.parametrize("body, error", [
    ("memory: lots\n", r"x\.yaml: memory: a number of MiB"),
    ("cpus: 0\n", r"cpus: a positive number"),
    ("slow: yes please\n", r"slow: true or false"),
    ("kargs: console=ttyS0\n", r"kargs: a list of strings"),
    ("disks: [var]\n", r"disks: a list of disks"),
    ("butane: [a, b]\n", r"butane: a file name, or \{fcos: FILE, flatcar: FILE\}"),
    ("applies: [fcos]\n", r"applies\[0\]: a mapping"),
    ("applies: []\n", r"applies: a mapping"),
    ("applies: {os: fcos}\n", r"applies\.os: a list of names"),
    ("boots: {checks: []}\n", r"boots: a list of boots"),
    ("boots: [ssh]\n", r"boots\[0\]: a mapping"),
    ("oem_config: nowhere.ign\n", r"oem_config: a file next to the scenario"),
    ("1: 2\n", r"1: unknown key"),
])
def test_every_key_is_checked_by_its_kind(tmp_path, body, error):
    (tmp_path / "x.yaml").write_text(body)
    with pytest.raises(LivelabError, match=error):
        sc.load(tmp_path / "x.yaml")


def test_the_schema_is_the_dataclass():
    """The loader's keys are exactly the Scenario fields that carry a kind."""
    from dataclasses import fields
    keys = {f.name for f in fields(sc.Scenario) if "yaml" in f.metadata}
    assert keys == set(sc._KEY_FIELDS) and {"description", "butane", "applies", "disks", "ci", "boots"} <= keys
    assert all(f.metadata["yaml"] in sc._KINDS for f in fields(sc.Scenario) if "yaml" in f.metadata)
