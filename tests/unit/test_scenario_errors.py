"""Scenario files are checked when they load: every mistake is one line naming the file, the key and
the value; a bad file is a collection error of its own, the other files still collect."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from limits import REPO, GiB, run_python_limited

from harness import scenario as sc
from harness.errors import LivelabError

GOOD = "applies: {os: [fcos], method: [iso], firmware: [bios]}\n"


def load_error(tmp_path: Path, body: str, name: str = "append.yaml") -> str:
    (tmp_path / name).write_text(body)
    with pytest.raises(LivelabError) as e:
        sc.load(tmp_path / name)
    text = str(e.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("body, error", [
    # the vocabulary (harness/vocab.py)
    ("applies: {os: [fcoss]}\n", "applies.os: unknown OS 'fcoss' (expected one of fcos, flatcar)"),
    ("applies: {method: [pxee]}\n",
     "applies.method: unknown method 'pxee' (expected one of pxe, pxe-rootfs-url, ipxe, ipxe-chain, iso, iso-fromram, "
     "iso-as-disk)"),
    ("applies: {os: [flatcar], method: [iso]}\n",
     "applies.method: method 'iso' does not apply to flatcar (expected one of pxe, ipxe, ipxe-chain)"),
    ("applies: {os: [fcos, flatcar], method: [iso]}\n",
     "applies.os: no case for flatcar: none of the methods iso applies to it (flatcar: pxe, ipxe, ipxe-chain)"),
    ("applies: {stream: [stabel]}\n",
     "applies.stream: unknown fcos stream 'stabel' (expected one of stable, testing, next)"),
    ("applies: {os: [fcos], channel: [beta]}\n",
     "applies.channel: unknown fcos stream 'beta' (expected one of stable, testing, next)"),
    ("applies: {os: [fcos, flatcar], stream: [stabel]}\n",
     "applies.stream: unknown fcos stream or flatcar channel 'stabel' "
     "(expected one of stable, testing, next, beta, alpha, lts)"),
    ("applies: {firmware: [efi]}\n",
     "applies.firmware: unknown firmware 'efi' (expected one of bios, uefi, uefi-secure)"),
    ("applies: {os: []}\n", "applies.os: an empty list gives no cases (leave the key out for the default)"),
    ("applies: {arch: [x86_64]}\n",
     "applies.arch: unknown key (expected one of os, method, firmware, stream, channel, sector)"),
    # disks: what a VM is built from
    ("disks: [{siz: 2G}]\n", "disks[0].siz: unknown key (expected one of name, size, serial)"),
    ("disks: [{name: var, siz: 2G}]\n", "disks[0].siz: unknown key (expected one of name, size, serial)"),
    ("disks: [{size: 2G}]\n", "disks[0].name: missing (a disk needs a name)"),
    ("disks: [{name: var, size: 2048}]\n", "disks[0].size: a size like 8G or 512M (got 2048)"),
    ("disks: [{name: 'a,b'}]\n", "disks[0].name: letters, digits, '.', '-' and '_' (got 'a,b')"),
    ("disks: [{name: var}, {name: var}]\n", "disks[1].name: 'var' is already the name of another disk"),
    # container types
    ("kargs: console=ttyS0\n", "kargs: a list of strings (got 'console=ttyS0')"),
    ("kargs: [quiet, 3]\n", "kargs[1]: a string (got 3)"),
    ("applies: [fcos]\n", "applies[0]: a mapping of os, method, firmware, stream, channel, sector to lists "
                          "(or a list of such mappings) (got 'fcos')"),
    ("applies: {os: fcos}\n", "applies.os: a list of names (got 'fcos')"),
    ("disks: {name: var}\n", "disks: a list of disks ({name: ..., size: ..., serial: ...}) (got a mapping)"),
    ("butane: [a.bu]\n", "butane: a file name, or {fcos: FILE, flatcar: FILE} (got a list)"),
    ("boots: {checks: []}\n", "boots: a list of boots (got a mapping)"),
    ("boots:\n  - checks: {ssh: 'true'}\n", "boots[0].checks: a list of checks (got a mapping)"),
    ("boots:\n  - how: power-cycle\n    add_kargs: quiet\n", "boots[0].add_kargs: a list of strings (got 'quiet')"),
    ("boots:\n  - checks:\n      - ssh: [ls, /]\n", "boots[0].checks[0].ssh: a command (got a list)"),
    ("boots:\n  - checks:\n      - [ssh]\n", "boots[0].checks[0]: a check is a mapping (got a list)"),
    ("boots:\n  - checks:\n      - ssh: 'true'\n        output: 1\n",
     "boots[0].checks[0].output: a regular expression (got 1)"),
    ("boots:\n  - checks:\n      - ssh: 'true'\n        status: yes\n",
     "boots[0].checks[0].status: an exit status (a number, or null for any) (got True)"),
    ("boots:\n  - expect_failure: [Ignition]\n",
     "boots[0].expect_failure: the reason the boot fails with, as text (got a list)"),
    ("boots:\n  - expect_failure: Ignition fail\n",
     "boots[0].expect_failure: unknown failure reason 'Ignition fail' (expected one of kernel panic, out of memory, "
     "out of RAM-disk space, Ignition failed, live rootfs refused, no bootable device, boot loader failed, "
     "dracut initqueue timeout, emergency mode, root filesystem corrupt, network never up, boot partition full, "
     "secure boot refused)"),
    ("memory: [2048]\n", "memory: a number of MiB (got a list)"),
    ("- applies\n", "a scenario is a YAML mapping (got a list)"),
])
def test_each_mistake_is_one_line_naming_file_key_and_value(tmp_path, body, error):
    assert load_error(tmp_path, body) == f"scenario append.yaml: {error}"


def test_secure_boot_cases_and_a_scenario_no_firmware_can_boot(tmp_path):
    """Under uefi-secure a network boot cannot boot: no case, but a matrix still lists it as refused; a
    scenario that names only such configurations is refused when it loads."""
    (tmp_path / "s.yaml").write_text("applies: {os: [fcos], method: [pxe, iso], firmware: [uefi, uefi-secure]}\n")
    scen = sc.load(tmp_path / "s.yaml")
    assert [c.id for c in scen.cases()] == ["fcos.stable.pxe.uefi.s", "fcos.stable.iso.uefi.s",
                                            "fcos.stable.iso.uefi-secure.s"]
    assert "fcos.stable.pxe.uefi-secure.s" in [c.id for c in scen.cases(with_refused=True)]
    error = load_error(tmp_path, "applies: {os: [flatcar], method: [pxe, ipxe], firmware: [uefi-secure]}\n")
    assert error.startswith("scenario append.yaml: applies: no case: pxe under uefi-secure cannot boot: iPXE "
                            "loads the kernel through the firmware"), error


# (not parametrized: pytest -k matches the text of parameter ids, and these name the disk suffix,
# which -k selects 4096-byte-sector cases by: test_selection's count would see them)
DISK_MISTAKES = [
    ("boots:\n  - checks:\n      - ssh: 'true'\n        only: fcoss\n",
     "boots[0].checks[0].only: unknown OS, method, firmware or disk 'fcoss' (expected one of fcos, flatcar, pxe, "
     "pxe-rootfs-url, ipxe, ipxe-chain, iso, iso-fromram, iso-as-disk, bios, uefi, uefi-secure, 4k)"),
    ("ci: [fcos.stable.pxe.bois]\n", "ci[0]: 'fcos.stable.pxe.bois' is not a configuration this scenario applies "
                                     "to (<os>.<stream>.<method>.<firmware>[.4k] of its applies, e.g. "
                                     "fcos.stable.pxe.bios)"),
    ("applies: {sector: [1024]}\n", "applies.sector: a list of disk sector sizes (512, 4096) (got a list)"),
    ("applies: {sector: ['4096']}\n", "applies.sector: a list of disk sector sizes (512, 4096) (got a list)"),
    ("applies: [{method: [iso]}, {method: [iso-as-disk], sector: [4096]}]\n",
     "applies[1]: no case: iso-as-disk on a 4096-byte-sector disk cannot boot: Linux's isofs mounts no ISO9660 on a "
     "device with blocks over 2048 bytes (images/README.md, 4Kn)"),
    ("applies: {method: [iso-as-disk], firmware: [uefi], sector: [4096]}\n",
     "applies: no case: iso-as-disk on a 4096-byte-sector disk cannot boot: UEFI finds no ESP (the isohybrid's GPT "
     "and MBR count 512-byte sectors), and Linux's isofs mounts no ISO9660 on a device with blocks over 2048 bytes "
     "(images/README.md, 4Kn)"),
    ("ci: [fcos.stable.iso.bios.4k]\n" + GOOD,
     "ci[0]: 'fcos.stable.iso.bios.4k' is not a configuration this scenario applies to "
     "(<os>.<stream>.<method>.<firmware>[.4k] of its applies, e.g. fcos.stable.iso.bios)"),
]


def test_disk_sector_mistakes_are_one_line_too(tmp_path):
    for body, error in DISK_MISTAKES:
        assert load_error(tmp_path, body) == f"scenario append.yaml: {error}", body


def test_a_scenario_name_makes_a_test_id(tmp_path):
    """No dot (``persist-var.4k`` is persist-var on 4096-byte sectors) and no disk suffix anywhere
    in it (pytest -k matches substrings, and selects the 4Kn cases by theirs)."""
    for name in ("persist.var", "raid4k", "4k"):
        assert load_error(tmp_path, GOOD, f"{name}.yaml") == (
            f"scenario {name}.yaml: the name {name} (the file's) makes no test id: letters, digits, '-' and '_' "
            "only, and no '4k' in it (ids of 4096-byte-sector disks end in .4k, and pytest -k 4k selects them by it)")
    (tmp_path / "raid-4096.yaml").write_text(GOOD)
    assert sc.load(tmp_path / "raid-4096.yaml").name == "raid-4096"


def test_files_next_to_the_scenario_are_checked_when_it_loads(tmp_path):
    (tmp_path / "bad.bu").write_bytes(b"variant: fcos\n\xff\n")
    assert load_error(tmp_path, "butane: {fcos: bad.bu}\n") == (
        "scenario append.yaml: butane.fcos: bad.bu: not UTF-8 text: byte 0xff at offset 14 (line 2, column 1)")
    (tmp_path / "oem.ign").write_text('{"ignition": }')
    assert load_error(tmp_path, "oem_config: oem.ign\n") == (
        "scenario append.yaml: oem_config: oem.ign: not valid JSON: Expecting value (line 1, column 14)")


def test_yaml_problems_name_the_file(tmp_path):
    assert load_error(tmp_path, "a: &a [*a]\n") == (
        "scenario append.yaml: YAML alias *a is inside the node it names, so it would repeat without end, "
        "at line 1, column 8")
    assert load_error(tmp_path, "boots: " + "[" * 200) == (
        "scenario append.yaml: YAML nested deeper than 100 levels (the limit), at line 1, column 107")
    (tmp_path / "append.yaml").write_bytes(b"description: \xfe\n")
    with pytest.raises(LivelabError, match=r"^scenario append\.yaml: not UTF-8 text: byte 0xfe at offset 13 "):
        sc.load(tmp_path / "append.yaml")


BOMB = "".join(["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
               + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 12)])


def test_a_yaml_bomb_stops_at_once_under_a_memory_cap(tmp_path):
    (tmp_path / "bomb.yaml").write_text(BOMB)
    code = ("import sys\nfrom pathlib import Path\nfrom harness import scenario as sc\n"
            "from harness.errors import LivelabError\n"
            f"try:\n    sc.load(Path({str(tmp_path / 'bomb.yaml')!r}))\n"
            "except LivelabError as exc:\n    print(exc)\n")
    proc = run_python_limited(code, memory=GiB, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("scenario bomb.yaml: YAML aliases expand to more than 100000 nodes (the limit), "
                                  "at alias *l"), proc.stdout


def test_valid_streams_and_channels_together(tmp_path):
    (tmp_path / "s.yaml").write_text("applies: {os: [fcos, flatcar], method: [pxe], stream: [testing], "
                                     "channel: [beta]}\n")
    ids = [c[0] for c in sc.load(tmp_path / "s.yaml").cases()]
    assert ids == ["fcos.testing.pxe.bios.s", "flatcar.beta.pxe.bios.s"]


def test_load_all_stops_at_the_first_bad_file(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text("applies: {os: [fcos], method: [pxee]}\n")
    (tmp_path / "c.yaml").write_text("applies: {os: [fcoss]}\n")
    with pytest.raises(LivelabError, match=r"^scenario b\.yaml: applies\.method: unknown method 'pxee' "):
        sc.load_all(tmp_path)


def test_a_bad_file_is_its_own_collection_error(tmp_path):
    """pytest --collect-only: each scenario file loads on its own; the good one is still collected."""
    scen = tmp_path / "scen"
    scen.mkdir()
    (scen / "good.yaml").write_text(GOOD)
    (scen / "bad.yaml").write_text("applies: {os: [fcoss]}\n")
    (scen / "bomb.yaml").write_text(BOMB)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}      # this checkout's plugin, not an installed one
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "--scenario-dir", "scen", "--continue-on-collection-errors"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert "scen/good.yaml::fcos.stable.iso.bios.good" in proc.stdout, out
    assert "livelab scenario bad.yaml: applies.os: unknown OS 'fcoss' (expected one of fcos, flatcar)" in out
    assert "livelab scenario bomb.yaml: YAML aliases expand to more than 100000 nodes (the limit)" in out
    assert "ERROR scen/bad.yaml" in out and "ERROR scen/bomb.yaml" in out and "2 errors" in out
    assert "Traceback" not in out and "harness/" not in out
