"""A scenario's Butane may carry a seed's placeholder key (``ssh-rsa AAAA...``): the session's SSH
key takes its place, and the harness then adds the key no second time."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import scenario as sc
from harness.errors import LivelabError
from harness.lab import BootRequest, LabOptions, LiveBoot, _core_keys
from harness.ssh import SessionKey

SEED = """variant: fcos
version: 1.6.0
passwd:
  users:
    - name: core
      ssh_authorized_keys:
        - ssh-rsa AAAA...
"""


def boot(tmp_path: Path, butane: str, placeholder: str | None, key: bool = True) -> LiveBoot:
    req = BootRequest("fcos", "stable", "pxe", butane=butane, ssh_key_placeholder=placeholder)
    return LiveBoot(req, LabOptions(accel="tcg"), tmp_path / "run",
                    ssh_key=SessionKey(tmp_path / "ssh") if key else None)


def test_the_session_key_replaces_the_placeholder(tmp_path):
    lb = boot(tmp_path, SEED, "ssh-rsa AAAA...")
    assert lb.ssh_key is not None and lb.user_config is not None
    assert _core_keys(lb.user_config) == [lb.ssh_key.public]
    assert lb.user_config["ignition"]["version"] == "3.5.0"


def test_without_a_placeholder_the_butane_is_used_as_written(tmp_path):
    lb = boot(tmp_path, SEED, None)
    assert _core_keys(lb.user_config) == ["ssh-rsa AAAA..."]


def test_a_placeholder_missing_from_the_butane_is_an_error(tmp_path):
    with pytest.raises(LivelabError, match="no 'ssh-ed25519 XXXX'"):
        boot(tmp_path, SEED, "ssh-ed25519 XXXX")
    with pytest.raises(LivelabError, match="needs the session's SSH key"):
        boot(tmp_path, SEED, "ssh-rsa AAAA...", key=False)


def test_core_keys():
    cfg = {"passwd": {"users": [{"name": "other", "sshAuthorizedKeys": ["a"]},
                                {"name": "core", "sshAuthorizedKeys": ["b", "c"]}]}}
    assert _core_keys(cfg) == ["b", "c"]
    assert _core_keys(None) == [] and _core_keys({"passwd": {}}) == []


def test_scenario_key_reaches_the_request(tmp_path):
    (tmp_path / "s.fcos.bu").write_text(SEED)
    (tmp_path / "s.yaml").write_text('butane: {fcos: s.fcos.bu}\nsession_key_placeholder: "ssh-rsa AAAA..."\n')
    s = sc.load(tmp_path / "s.yaml")
    assert s.request("fcos", "stable", "pxe", "bios").ssh_key_placeholder == "ssh-rsa AAAA..."
    (tmp_path / "t.yaml").write_text("session_key_placeholder: [1]\n")
    with pytest.raises(LivelabError, match="session_key_placeholder"):
        sc.load(tmp_path / "t.yaml")
