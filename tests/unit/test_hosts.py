"""``--hosts``: entries parsed into xdist ``--tx`` values, defaults filled in, bad entries one line before any run."""
import pytest

from harness import hosts
from harness.cli import main
from harness.errors import LivelabError


def test_entries_become_tx_values_with_python_and_chdir_filled_in():
    got = hosts.parse_hosts(["ssh=lab@host1,ssh=lab@host2//python=/opt/v/bin/python", " 2*ssh=host3//chdir=/srv/t "],
                            python="/venv/bin/python", chdir="/work/tests")
    assert got == ["ssh=lab@host1//python=/venv/bin/python//chdir=/work/tests",
                   "ssh=lab@host2//python=/opt/v/bin/python//chdir=/work/tests",
                   "2*ssh=host3//chdir=/srv/t//python=/venv/bin/python"]
    assert hosts.worker_count(got) == 4
    # what xdist makes of them: the ssh target and the keys livelab filled in
    import execnet
    spec = execnet.XSpec(hosts.split_count(got[2])[1])
    assert (spec.ssh, spec.chdir, spec.python) == ("host3", "/srv/t", "/venv/bin/python")


def test_ssh_config_and_env_keys_pass_through():
    (got,) = hosts.parse_hosts("ssh=-p 2222 lab@h//ssh_config=/c/ssh_config//env:LIVELAB_CACHE_DIR=/big/cache",
                               python="p", chdir="d")
    assert got == "ssh=-p 2222 lab@h//ssh_config=/c/ssh_config//env:LIVELAB_CACHE_DIR=/big/cache//python=p//chdir=d"


@pytest.mark.parametrize("value, message", [
    ("", r"--hosts: no host given; expected ssh=\[user@\]host"),
    (",, ", r"--hosts: no host given"),
    ("popen", r"--hosts 'popen': unknown key 'popen'"),
    ("host1", r"--hosts 'host1': unknown key 'host1'"),
    ("ssh=h//pyhton=/x", r"--hosts 'ssh=h//pyhton=/x': unknown key 'pyhton' \(known: ssh, python, chdir"),
    ("ssh=", r"--hosts 'ssh=': no ssh=\[user@\]host"),
    ("ssh", r"--hosts 'ssh': no ssh=\[user@\]host"),
    ("ssh=h//ssh=g", r"--hosts 'ssh=h//ssh=g': duplicate key: 'ssh'"),
    ("0*ssh=h", r"--hosts '0\*ssh=h': a host needs at least 1 worker"),
    ("socket=1.2.3.4:8888", r"unknown key 'socket'"),
])
def test_bad_entries_are_one_line(value, message):
    with pytest.raises(LivelabError, match=message) as exc:
        hosts.parse_hosts(value, python="p", chdir="d")
    assert "\n" not in str(exc.value)


def test_remote_and_local_tx_values():
    assert hosts.remote_tx(["ssh=h//python=p"]) and hosts.remote_tx(["popen", "2*ssh=h"])
    assert not hosts.remote_tx(["popen", "2*popen"]) and not hosts.remote_tx(None) and not hosts.remote_tx([])
    import execnet
    assert hosts.address(execnet.XSpec("ssh=lab@h//chdir=/x")) == "lab@h"
    assert hosts.address(execnet.XSpec("popen")) == ""


def test_matrix_cli_refuses_bad_hosts_before_running(tmp_path, capsys, monkeypatch):
    from harness import matrix as mx
    monkeypatch.setattr(mx, "run_matrix", lambda *a, **k: pytest.fail("ran"))
    base = ["matrix", "fcos", "--streams", "stable", "--via", "pxe", "-o", str(tmp_path)]
    assert main([*base, "--hosts", "ssh=h//nope=1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "livelab: error: --hosts 'ssh=h//nope=1': unknown key 'nope' (known: ssh, python, chdir, ssh_config, nice, "
        "dont_write_bytecode, id, env:NAME)")
    assert main([*base, "--hosts", "ssh=h", "--workers", "2"]) == 2
    assert "--workers and --hosts" in capsys.readouterr().err


def test_matrix_cli_gives_run_matrix_the_hosts(tmp_path, monkeypatch):
    from harness import matrix as mx
    seen = {}

    def fake_run(m, out, workers, rerun, options, extra, hosts=()):
        seen.update(workers=workers, hosts=hosts, options=options)
        return []

    monkeypatch.setattr(mx, "run_matrix", fake_run)
    monkeypatch.chdir(tmp_path)
    import shutil
    from pathlib import Path
    shutil.copytree(Path(__file__).resolve().parents[2] / "scenarios", tmp_path / "scenarios")
    main(["matrix", "fcos", "--streams", "stable", "--via", "pxe", "-o", str(tmp_path / "out"),
          "--hosts", "ssh=a,2*ssh=b//chdir=/srv/t"])
    assert seen["workers"] == 3
    assert seen["hosts"][0].startswith("ssh=a//python=") and seen["hosts"][0].endswith(f"//chdir={tmp_path}")
    assert seen["hosts"][1].startswith("2*ssh=b//chdir=/srv/t//python=")
    # --vm-cpus auto is left to each worker on its host (this machine's cores say nothing about theirs)
    assert seen["options"]["vm_cpus"] is None
    main(["matrix", "fcos", "--streams", "stable", "--via", "pxe", "-o", str(tmp_path / "out"),
          "--hosts", "ssh=a", "--vm-cpus", "1"])
    assert seen["options"]["vm_cpus"] == 1
