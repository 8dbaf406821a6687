"""Ignition validation (ignition-validate or the structural check), target checks, merging."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.errors import LivelabError
from harness.ignition import check_target, compare_specs, merge, structural_check, validate, validate_or_raise
from harness.ignition.validate import ignition_validate_reads

HAVE_IV = shutil.which("ignition-validate") is not None
needs_iv = pytest.mark.skipif(not HAVE_IV, reason="ignition-validate not installed")

GOOD_FILE = {"path": "/etc/x", "mode": 420, "contents": {"source": "data:,hi", "compression": ""}}


def cfg(version, **sections):
    return {"ignition": {"version": version}, **sections}


# ---------------------------------------------------------------- which validator

@needs_iv
@pytest.mark.parametrize("version", ["3.0.0", "3.1.0", "3.2.0", "3.3.0"])
def test_ignition_validate_used_where_it_reads_the_spec(version):
    r = validate(cfg(version, storage={"files": [GOOD_FILE]}))
    assert r.ok and r.validator.startswith("ignition-validate 2.14"), r
    r = validate(json.dumps(cfg(version, storage={"files": [{"path": "relative", "mode": 420}]})))
    assert not r.ok and r.validator.startswith("ignition-validate") and any("absolute" in m for m in r.messages)


@pytest.mark.parametrize("version", ["3.4.0", "3.5.0"])
def test_structural_for_newer_specs(version):
    r = validate(cfg(version, storage={"files": [GOOD_FILE]}, passwd={"users": [{"name": "core"}]}))
    assert r.ok and r.validator == "livelab structural" and r.spec == version


def test_which_specs_ignition_validate_reads():
    assert ignition_validate_reads("3.3.0", "2.14.0")
    assert ignition_validate_reads("3.4.0-experimental", "2.14.0")
    assert not ignition_validate_reads("3.4.0", "2.14.0")
    assert not ignition_validate_reads("3.3.0-experimental", "2.14.0")
    assert ignition_validate_reads("3.4.0", "2.15.0") and ignition_validate_reads("3.5.0", "2.20.0")


# ---------------------------------------------------------------- structural check

@pytest.mark.parametrize("config,needle", [
    (cfg("3.4.0", storage={"files": [{"mode": 420}]}), "$.storage.files.0.path: required"),
    (cfg("3.4.0", storage={"files": [{"path": "/a", "mode": "0644"}]}), "$.storage.files.0.mode: expected int"),
    (cfg("3.4.0", storage={"files": [{"path": "/a"}], "directories": [{"path": "/a"}]}), "duplicate path /a"),
    (cfg("3.4.0", storage={"files": [{"path": "/a"}, {"path": "/a"}]}), "duplicate entry"),
    (cfg("3.5.0", storage={"filesystems": [{"device": "/dev/vdb", "format": "zfs"}]}), "invalid value 'zfs'"),
    (cfg("3.5.0", systemd={"units": [{"name": "a"}]}), "invalid systemd unit extension"),
    (cfg("3.5.0", systemd={"units": [{"name": "a.service"}, {"name": "a.service"}]}), "duplicate entry"),
    (cfg("3.4.0", passwd={"users": [{"name": "a", "sshAuthorizedKeys": "k"}]}), "expected a list"),
    (cfg("3.4.0", storage={"files": [{"path": "/a", "contents": {"source": "data:;base64,%%%"}}]}), "invalid data URL"),
    (cfg("3.4.0", storage={"files": [{"path": "/a", "contents": {"source": "ftp://x/y"}}]}), "unsupported URL scheme"),
    (cfg("3.4.0", storage={"files": [{"path": "/a", "contents": {"source": "http://x/y",
                                                                 "verification": {"hash": "md5-00"}}}]}),
     "invalid hash"),
    (cfg("3.4.0", storage={"files": [{"path": "/a", "overwrite": True}]}), "overwrite must be false"),
    (cfg("3.4.0", storage={"files": [{"path": "/a", "mode": 0o17777}]}), "illegal file mode"),
    (cfg("3.4.0", storage={"links": [{"path": "/a"}]}), "$.storage.links.0.target: required"),
    ({"ignition": {}}, "$.ignition.version: required"),
    (cfg("3.9.0"), "unsupported config version"),
    (cfg("3.4.0", storage={"luks": [{"name": "a", "device": "/dev/vdb", "cex": {"enabled": True}}]}),
     "warning at $.storage.luks.0.cex: unused key cex"),
])
def test_structural_check_finds(config, needle):
    r = structural_check(config) if config.get("ignition", {}).get("version") else validate(config)
    assert any(needle in m for m in r.messages), r.messages
    if needle.startswith("warning"):
        assert r.ok
    else:
        assert not r.ok


def test_structural_accepts_3_5_cex_and_unknown_key_is_warning():
    r = structural_check(cfg("3.5.0", storage={"luks": [{"name": "a", "device": "/dev/vdb", "cex": {"enabled": True}}]},
                             bogus=1))
    assert r.ok and r.messages == ["warning at $.bogus: unused key bogus"]


def test_validate_or_raise_names_validator():
    with pytest.raises(LivelabError, match=r"spec 3\.4\.0\) failed validation by livelab structural: .*path: required"):
        validate_or_raise(cfg("3.4.0", storage={"files": [{"mode": 420}]}))
    assert validate_or_raise(cfg("3.5.0")).ok
    with pytest.raises(LivelabError, match="not valid JSON"):
        validate_or_raise("{nope")


# ---------------------------------------------------------------- target checks

def test_check_target_refuses_newer_spec_with_hint():
    with pytest.raises(LivelabError) as e:
        check_target(cfg("3.4.0"), "3.3.0", target="fcos 42.20250901.3.0")
    assert str(e.value) == ("Ignition config spec 3.4.0 is newer than 3.3.0, the newest spec "
                            "fcos 42.20250901.3.0 reads (Butane fcos 1.5.0 → 3.4.0; use fcos ≤ 1.4.0)")
    with pytest.raises(LivelabError, match=r"Butane flatcar 1\.1\.0 → 3\.4\.0; use flatcar ≤ 1\.0\.0"):
        check_target(cfg("3.4.0"), "3.3.0", target="flatcar 3510.2.2", variant="flatcar", butane_version="1.1.0")
    check_target(cfg("3.3.0"), "3.3.0")
    check_target(cfg("3.0.0"), "3.4.0")
    check_target(json.dumps(cfg("3.4.0")), "3.4.0")


def test_spec_comparisons_handle_experimental():
    assert compare_specs("3.4.0-experimental", "3.4.0") < 0
    assert compare_specs("3.4.0-experimental", "3.3.0") > 0
    assert compare_specs("3.10.0", "3.9.0") > 0
    check_target(cfg("3.3.0"), "3.4.0-experimental")
    check_target(cfg("3.4.0-experimental"), "3.4.0-experimental")
    with pytest.raises(LivelabError):
        check_target(cfg("3.4.0"), "3.4.0-experimental")
    with pytest.raises(LivelabError):  # older experimental specs are never read
        check_target(cfg("3.3.0-experimental"), "3.4.0")


# ---------------------------------------------------------------- merge

def test_merge_appends_harness_snippets():
    base = cfg("3.3.0",
               passwd={"users": [{"name": "core", "sshAuthorizedKeys": ["user-key"]}]},
               storage={"files": [{"path": "/etc/a", "mode": 420}], "directories": [{"path": "/etc/d"}]},
               systemd={"units": [{"name": "app.service", "enabled": True, "contents": "x"}]})
    extra = cfg("3.0.0",
                passwd={"users": [{"name": "core", "sshAuthorizedKeys": ["harness-key", "user-key"]},
                                  {"name": "extra"}]},
                storage={"files": [{"path": "/etc/a", "mode": 384}, {"path": "/etc/d"}]},
                systemd={"units": [{"name": "livelab-done.service", "enabled": True, "contents": "y"},
                                   {"name": "app.service", "enabled": False}]})
    m = merge(base, extra)
    assert m["ignition"]["version"] == "3.3.0"
    assert m["passwd"]["users"] == [{"name": "core", "sshAuthorizedKeys": ["user-key", "harness-key"]},
                                    {"name": "extra"}]
    assert m["storage"]["files"] == [{"path": "/etc/a", "mode": 384}, {"path": "/etc/d"}]
    assert m["storage"]["directories"] == []       # replaced by the child's file at /etc/d
    assert m["systemd"]["units"] == [{"name": "app.service", "enabled": False, "contents": "x"},
                                     {"name": "livelab-done.service", "enabled": True, "contents": "y"}]
    assert base["passwd"]["users"][0]["sshAuthorizedKeys"] == ["user-key"]   # inputs untouched
    assert validate(m).ok


def test_merge_partitions_headers_and_version():
    a = cfg("3.4.0", storage={"disks": [{"device": "/dev/vdb", "partitions": [{"number": 1, "label": "a"},
                                                                           {"label": "b"}]}]},
            ignition_extra=None)
    b = cfg("3.5.0", storage={"disks": [{"device": "/dev/vdb", "partitions": [{"number": 1, "sizeMiB": 5},
                                                                           {"label": "b", "sizeMiB": 7}]}]})
    m = merge(a, b)
    assert m["ignition"]["version"] == "3.5.0"
    assert m["storage"]["disks"][0]["partitions"] == [{"number": 1, "label": "a", "sizeMiB": 5},
                                                      {"label": "b", "sizeMiB": 7}]
    h1 = {"storage": {"files": [{"path": "/f", "contents": {"source": "http://x", "httpHeaders": [
        {"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}}]}}
    h2 = {"storage": {"files": [{"path": "/f", "contents": {"httpHeaders": [{"name": "A"}]}}]}}
    assert merge(h1, h2)["storage"]["files"][0]["contents"]["httpHeaders"] == [{"name": "B", "value": "2"}]


def test_gzip_bomb_in_a_data_url_stops_at_the_inflate_limit():
    """A data URL that inflates past MAX_INFLATED is an invalid data URL, found in bounded memory."""
    import base64
    import gzip

    from limits import LIVELAB_ERROR, RESULT, MiB, run_limited

    from harness.ignition import dataurl

    bomb = "data:;base64," + base64.b64encode(gzip.compress(b"\0" * (dataurl.MAX_INFLATED + (1 << 20)))).decode()

    def check() -> str:
        try:
            dataurl.check_data_url(bomb, "gzip")
        except ValueError as exc:
            return str(exc)
        return "accepted"

    outcome = run_limited(check, memory=64 * MiB, timeout=20)      # counted, never held
    assert outcome.kind == RESULT and outcome.value == "gzip data inflates to more than 256 MiB", outcome
    assert outcome.kind != LIVELAB_ERROR


# ---------------------------------------------------------------- the configured validator

def fake_validator(path, version, fail=False):
    """An ignition-validate stand-in: `-version` says its Ignition version; a run records the call."""
    path.write_text("#!/bin/sh\n"
                    f'if [ "$1" = -version ]; then echo "Ignition v{version}"; exit 0; fi\n'
                    f'echo "$0" >> "{path}.calls"\n'
                    + ("echo 'error at $.storage: broken'; exit 1\n" if fail else "exit 0\n"))
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def path_validator(tmp_path, monkeypatch):
    """PATH holds only a fake ignition-validate of Ignition 2.14.0."""
    d = tmp_path / "pathbin"
    d.mkdir()
    fake_validator(d / "ignition-validate", "2.14.0")
    monkeypatch.setenv("PATH", f"{d}:/usr/bin:/bin")
    return d / "ignition-validate"


def calls(path):
    p = path.parent / (path.name + ".calls")
    return len(p.read_text().splitlines()) if p.exists() else 0


def test_configured_validator_checks_the_specs_it_reads(tmp_path, path_validator):
    mine = tmp_path / "ignition-validate-2.23"
    fake_validator(mine, "2.23.0")
    r = validate(cfg("3.5.0"), binary=str(mine))
    assert r.ok and r.validator == "ignition-validate 2.23.0" and calls(mine) == 1
    r = validate(cfg("3.3.0"), binary=str(mine))
    assert r.validator == "ignition-validate 2.23.0" and calls(mine) == 2 and calls(path_validator) == 0
    # a spec the configured one does not read, but PATH's does
    r = validate(cfg("3.4.0-experimental"), binary=str(mine))
    assert r.validator == "ignition-validate 2.14.0" and calls(path_validator) == 1
    # one that no validator reads: the structural check
    r = validate(cfg("3.6.0"), binary=str(mine))
    assert r.validator == "livelab structural"


def test_configured_validator_errors_are_reported(tmp_path, path_validator):
    mine = tmp_path / "iv"
    fake_validator(mine, "2.23.0", fail=True)
    with pytest.raises(LivelabError, match=r"failed validation by ignition-validate 2\.23\.0: error at \$\.storage"):
        validate_or_raise(cfg("3.5.0"), binary=str(mine))


def test_without_configured_validator_path_one_is_used(path_validator):
    r = validate(cfg("3.3.0"))
    assert r.validator == "ignition-validate 2.14.0" and calls(path_validator) == 1
    assert validate(cfg("3.5.0")).validator == "livelab structural"


def test_configured_validator_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(LivelabError, match=r"--ignition-validate .*no such executable"):
        validate(cfg("3.5.0"), binary=str(tmp_path / "nope"))


def test_no_validator_at_all_is_said_once(tmp_path, monkeypatch, capsys):
    import importlib
    vmod = importlib.import_module("harness.ignition.validate")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(vmod, "_SAID_NONE", [])
    assert validate(cfg("3.3.0")).validator == "livelab structural"
    assert validate(cfg("3.5.0")).validator == "livelab structural"
    err = capsys.readouterr().err
    assert err.count("no ignition-validate") == 1 and "structural check" in err


BUILT_IV = Path(__file__).resolve().parents[2] / "images" / "out" / "bin" / "ignition-validate"


@pytest.mark.skipif(not BUILT_IV.is_file(), reason="the stand-in's ignition-validate is not built (make images)")
@pytest.mark.parametrize("version", ["3.0.0", "3.3.0", "3.4.0", "3.5.0", "3.6.0-experimental"])
def test_standin_validator_v2_23_reads_up_to_3_5(version):
    r = validate(cfg(version, storage={"files": [GOOD_FILE]}), binary=str(BUILT_IV))
    assert r.ok and r.validator == "ignition-validate 2.23.0", r
    r = validate(cfg(version, storage={"files": [{"path": "relative", "mode": 420}]}), binary=str(BUILT_IV))
    assert not r.ok and any("absolute" in m for m in r.messages), r
