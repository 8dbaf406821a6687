"""``livelab doctor``: the host checks, the install line per distribution, the exit status."""
import json

import pytest

from harness import doctor
from harness.cli import doctor as doctor_cli

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n'
FEDORA = 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=41\n'
ROCKY = 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
ARCH = 'NAME="Arch Linux"\nID=arch\n'


def _os_release(tmp_path, text):
    path = tmp_path / "os-release"
    path.write_text(text)
    return str(path)


def _run(capsys, argv, **inject):
    status = doctor_cli.main(["--no-kvm-probe", *argv], **inject)
    return status, capsys.readouterr().out


def test_this_host_has_everything_required(capsys):
    status, out = _run(capsys, [])
    assert status == 0, out
    assert "  missing  " not in out   # required ones; ignition-validate is optional
    assert "this host can run livelab" in out
    assert "skipped  KVM not probed" in out


def test_json_lists_every_check(capsys):
    status, out = _run(capsys, ["--json"])
    data = json.loads(out)
    assert status == 0 and data["ok"] is True and data["install"] is None
    by_what = {c["what"]: c for c in data["checks"]}
    assert {"qemu-img", "gpgv", "ignition-validate", doctor.OVMF_CODE, doctor.PXELINUX, "KVM"} <= set(by_what)
    assert all(c["ok"] for c in data["checks"] if c["required"])
    assert by_what["KVM"]["required"] is False


def _empty_path(monkeypatch, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_empty_path_debian(capsys, monkeypatch, tmp_path):
    _empty_path(monkeypatch, tmp_path)
    status, out = _run(capsys, [], os_release=_os_release(tmp_path, DEBIAN))
    assert status == 1
    for cmd in ("qemu-system-x86_64", "qemu-img", "gpgv", "ignition-validate"):
        assert any(line.lstrip().startswith("missing") and f"{cmd} on PATH" in line
                   for line in out.splitlines()), (cmd, out)
    install = [line for line in out.splitlines() if "apt-get install -y" in line]
    assert len(install) == 1, out
    pkgs = install[0].split("apt-get install -y", 1)[1].split()
    assert {"qemu-system-x86", "qemu-utils", "gpg", "gpgv", "ignition"} <= set(pkgs)
    assert "ovmf" not in pkgs   # present files are not asked for
    assert "dnf" not in out
    assert "required tools are missing" in out


def test_empty_path_fedora(capsys, monkeypatch, tmp_path):
    _empty_path(monkeypatch, tmp_path)
    status, out = _run(capsys, [], os_release=_os_release(tmp_path, FEDORA))
    assert status == 1
    install = [line for line in out.splitlines() if "dnf install -y" in line]
    assert len(install) == 1, out
    pkgs = install[0].split("dnf install -y", 1)[1].split()
    assert {"qemu-system-x86-core", "qemu-img", "gnupg2", "ignition-validate"} <= set(pkgs)
    assert pkgs.count("gnupg2") == 1   # gpg and gpgv come from one package
    assert "apt-get" not in out


@pytest.mark.parametrize("text,family", [(UBUNTU, "debian"), (ROCKY, "fedora"), (ARCH, None)])
def test_distribution_from_id_like(tmp_path, text, family):
    assert doctor.distribution(_os_release(tmp_path, text))[0] == family


def test_no_os_release_is_unknown(tmp_path):
    assert doctor.distribution(str(tmp_path / "absent")) == (None, "unknown")


def test_unknown_distribution_names_both_packages(capsys, monkeypatch, tmp_path):
    _empty_path(monkeypatch, tmp_path)
    status, out = _run(capsys, [], os_release=_os_release(tmp_path, ARCH))
    assert status == 1
    assert "apt-get" not in out and "dnf" not in out
    assert "qemu-system-x86 / qemu-system-x86-core" in out
    assert "gpgv / gnupg2" in out


def test_missing_files_and_optional_tool(capsys, tmp_path):
    """A missing firmware file fails; a missing ignition-validate alone does not."""
    real_which = doctor.shutil.which
    deb = _os_release(tmp_path, DEBIAN)
    status, out = _run(capsys, [], os_release=deb, exists=lambda p: p != doctor.OVMF_CODE)
    assert status == 1 and f"missing  {doctor.OVMF_CODE}" in out and "apt-get install -y ovmf" in out
    status, out = _run(capsys, [], os_release=deb,
                       which=lambda c: None if c == "ignition-validate" else real_which(c))
    assert status == 0 and "missing (optional) ignition-validate on PATH" in out
    assert "apt-get install -y ignition" in out


def test_kvm_unusable_is_a_warning():
    results = doctor.run_checks(kvm_probe=lambda: "/dev/kvm does not exist")
    kvm = results[-1]
    assert not kvm.ok and not kvm.required
    assert doctor._line(kvm) == "  warning  KVM not usable: /dev/kvm does not exist; TCG will be used (slower)"
    assert doctor._line(doctor.run_checks(kvm_probe=lambda: None)[-1]).startswith("  ok       KVM usable")


def test_register_adds_the_verb(capsys):
    import argparse
    parser = argparse.ArgumentParser(prog="livelab")
    doctor_cli.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["doctor", "--json", "--no-kvm-probe"])
    assert args.func is doctor_cli.cmd_doctor and args.json and args.no_kvm_probe
    assert args.func(args) == 0 and json.loads(capsys.readouterr().out)["ok"] is True


def test_qemu_binary_follows_livelab_qemu(capsys, monkeypatch):
    monkeypatch.setattr(doctor.accel, "QEMU_BINARY", "qemu-system-does-not-exist")
    status, out = _run(capsys, [])
    assert status == 1 and "missing  qemu-system-does-not-exist on PATH" in out


def test_cli_with_path_narrowed_reports_what_is_missing(tmp_path):
    """The real `livelab doctor` on a host whose PATH lacks QEMU and GnuPG: exit 1, each missing
    tool named, one install line for this distribution (Debian here)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, PATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "doctor", "--no-kvm-probe"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for what in ("qemu-system-x86_64", "gpgv"):
        assert any(line.split()[:2] == ["missing", what] for line in proc.stdout.splitlines()), proc.stdout
    install = [line for line in proc.stdout.splitlines() if "apt-get install" in line or "dnf install" in line]
    assert len(install) == 1 and "qemu-system-x86" in install[0] and "gpgv" in install[0], proc.stdout
