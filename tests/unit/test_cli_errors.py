"""Every verb, run as a user would (a subprocess), on the mistakes users make: exit status 2, exactly one
stderr line that names the file, key or value, no traceback, and no VM started.

Each case is (id, files to create, argv, what the line must contain).  ``{d}`` in argv and in the
expected text is the case's temp directory.  QEMU is the ``sentinel`` (``LIVELAB_QEMU``), which records
any call, so a case that would probe or boot fails loudly instead.
"""
import json
import os
import subprocess
import sys

import pytest
from clirun import REPO, refusal_line, run_livelab

BUTANE = "variant: fcos\nversion: 1.5.0\n"


def _stream_with(**entry_changes) -> str:
    """A minimal valid FCOS stream JSON whose kernel entry has ``entry_changes``."""
    up = "https://builds.coreos.fedoraproject.org/prod/streams/stable/builds/1.0/x86_64/"
    pxe = {k: {"location": up + k, "signature": up + k + ".sig", "sha256": "0" * 64}
           for k in ("kernel", "initramfs", "rootfs")}
    pxe["kernel"].update(entry_changes)
    return json.dumps({"stream": "stable", "architectures": {"x86_64": {"artifacts": {"metal": {
        "release": "1.0", "formats": {"pxe": pxe}}}}}})


CASES = [
    # butane
    ("butane-not-utf8", {"b.bu": b"variant: fcos\nversion: 1.5.0\n\xff\n"}, ["butane", "{d}/b.bu"],
     "{d}/b.bu: not UTF-8 text: byte 0xff at offset 29 (line 3, column 1)"),
    ("butane-missing-output-dir", {"b.bu": BUTANE}, ["butane", "{d}/b.bu", "-o", "{d}/no/such/out.ign"],
     "directory {d}/no/such does not exist"),
    ("butane-output-is-dir", {"b.bu": BUTANE, "outdir/": None}, ["butane", "{d}/b.bu", "-o", "{d}/outdir"],
     "output {d}/outdir is a directory"),
    ("butane-self-alias", {"b.bu": BUTANE + "a: &a [*a]\n"}, ["butane", "{d}/b.bu"], "is inside the node it names"),
    ("butane-missing", {}, ["butane", "{d}/nope.bu"], "{d}/nope.bu"),
    # artifacts
    ("artifacts-negative-timeout", {}, ["artifacts", "resolve", "fcos", "--timeout", "-5", "--cache-dir", "{d}/c"],
     "--timeout must be a positive number of seconds"),
    ("stream-sha256-integer", {"s.json": _stream_with(sha256=7)},
     ["artifacts", "resolve", "fcos", "--metadata", "{d}/s.json", "--cache-dir", "{d}/c"],
     "{d}/s.json: metal pxe.kernel.sha256 7 is not a sha256 digest"),
    ("stream-location-integer", {"s.json": _stream_with(location=7)},
     ["artifacts", "resolve", "fcos", "--metadata", "{d}/s.json", "--cache-dir", "{d}/c"],
     "metal pxe.kernel.location is int 7, not a URL"),
    ("stream-signature-integer", {"s.json": _stream_with(signature=7)},
     ["artifacts", "resolve", "fcos", "--metadata", "{d}/s.json", "--cache-dir", "{d}/c"],
     "metal pxe.kernel.signature is int 7, not a URL"),
    ("stream-not-json", {"s.json": "{"}, ["artifacts", "resolve", "fcos", "--metadata", "{d}/s.json",
                                         "--cache-dir", "{d}/c"], "{d}/s.json: not valid JSON"),
    ("metadata-is-dir", {"m/": None}, ["artifacts", "resolve", "fcos", "--metadata", "{d}/m", "--cache-dir", "{d}/c"],
     "{d}/m"),
    ("prune-older-than-nan", {"c/CACHEDIR.TAG": "Signature: 8a477f597d28d172789f06886806bc55\n"},
     ["artifacts", "prune", "--older-than", "nan", "--cache-dir", "{d}/c"], "--older-than must be a number of days"),
    ("prune-not-a-cache", {"p/Cargo.lock": "x"}, ["artifacts", "prune", "--keep", "0", "--cache-dir", "{d}/p"],
     "{d}/p is not a livelab cache"),
    ("keyring-missing", {}, ["artifacts", "resolve", "fcos", "--keyring", "{d}/k.asc", "--cache-dir", "{d}/c",
                            "--metadata", "{d}/none.json"], "--keyring {d}/k.asc: no such file"),
    # boot / check: options are checked before the accelerator probe or any download
    ("check-mirror-missing", {}, ["check", "fcos", "--via", "pxe", "--mirror", "{d}/no-mirror", "--cache-dir",
                                  "{d}/c"], "--mirror {d}/no-mirror: no such directory"),
    ("check-keyring-missing", {"m/": None}, ["check", "fcos", "--via", "pxe", "--mirror", "{d}/m", "--keyring",
                                            "{d}/k.asc", "--cache-dir", "{d}/c"], "--keyring {d}/k.asc: no such file"),
    ("check-bad-max-spec", {}, ["check", "fcos", "--via", "pxe", "--ignition-max-spec", "3.x", "--cache-dir",
                                "{d}/c"], "bad Ignition config spec '3.x'"),
    ("check-extend-timeout", {}, ["check", "fcos", "--via", "pxe", "--extend-timeout", "-50", "--cache-dir", "{d}/c"],
     "--extend-timeout must be a percentage"),
    ("check-butane-missing", {}, ["check", "fcos", "--via", "pxe", "--butane", "{d}/x.bu", "--cache-dir", "{d}/c"],
     "Butane file {d}/x.bu not found"),
    ("check-network-boot-under-secure-boot", {}, ["check", "fcos", "--via", "ipxe", "--firmware", "uefi-secure",
                                                   "--cache-dir", "{d}/c"],
     "fcos.stable.ipxe.uefi-secure: refused before boot: ipxe under uefi-secure cannot boot: iPXE loads"),
    ("boot-network-boot-under-secure-boot", {}, ["boot", "flatcar", "--via", "pxe", "--firmware", "uefi-secure",
                                                  "--cache-dir", "{d}/c"],
     "flatcar.stable.pxe.uefi-secure: refused before boot: pxe under uefi-secure cannot boot"),
    # the live ISO as a disk of 4096-byte sectors cannot boot: refused before the probe (images/README.md)
    ("boot-iso-as-disk-sector-4096", {}, ["boot", "fcos", "--via", "iso-as-disk", "--firmware", "uefi", "--sector",
                                          "4096", "--cache-dir", "{d}/c"],
     "fcos.stable.iso-as-disk.uefi.4k: refused before boot: iso-as-disk on a 4096-byte-sector disk cannot boot: "
     "UEFI finds no ESP"),
    ("check-sector-1024", {}, ["check", "fcos", "--via", "iso-as-disk", "--sector", "1024", "--cache-dir", "{d}/c"],
     "--sector '1024': expected one of 512, 4096 (bytes: the disks' logical = physical sector size)"),
    # iso
    ("iso-show-dir", {"i/": None}, ["iso", "show", "{d}/i"], "{d}/i is a directory"),
    ("iso-show-empty", {"e.iso": b""}, ["iso", "show", "{d}/e.iso"], "{d}/e.iso"),
    ("iso-show-not-iso", {"t.iso": b"x" * 70000}, ["iso", "show", "{d}/t.iso"], "not an ISO9660 image"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_verb_on_bad_input_is_one_line(case, tmp_path, sentinel):
    _id, files, argv, expected = case
    d = tmp_path / "case"
    d.mkdir()
    for name, content in files.items():
        path = d / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    qemu, calls = sentinel
    proc = run_livelab(*[a.format(d=d) for a in argv], cwd=tmp_path,
                       env={"LIVELAB_QEMU": str(qemu), "LIVELAB_CACHE_DIR": str(d / "default-cache"),
                            "LIVELAB_STATE_DIR": str(tmp_path / "state")})
    assert expected.format(d=d) in refusal_line(proc)
    assert not calls.exists(), calls.read_text()           # no VM, no accelerator probe


def test_pytest_option_errors_are_one_usage_error_at_session_start(tmp_path):
    """A missing --mirror directory or --keyring file: one message before collection, not one per test."""
    for args, expected in ((["--mirror", str(tmp_path / "nope")], f"--mirror {tmp_path / 'nope'}: no such directory"),
                           (["--mirror", str(tmp_path), "--keyring", str(tmp_path / "k.asc")],
                            f"--keyring {tmp_path / 'k.asc'}: no such file")):
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                               "tests/e2e", "scenarios", *args], capture_output=True, text=True, timeout=120, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 4, proc.stdout + proc.stderr          # pytest's usage error
        assert "Traceback" not in proc.stderr + proc.stdout
        assert proc.stderr.count(expected) == 1, proc.stderr
