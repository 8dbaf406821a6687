"""Every fcos 1.0-1.6 and flatcar 1.0-1.1 example of butane v0.25.1's documentation translates.

The fcos examples are read from ../shared/reference/docs/butane/ (examples.md and
upgrading-fcos.md of v0.25.1: every ``<!-- butane-config -->`` block); the flatcar ones
(upgrading-flatcar.md) are not there and are written out below.  Each translates with no
warning (so ``--strict`` passes too) and validates.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_butane import assert_valid

from harness.ignition import butane_to_ignition
from harness.ignition.specs import SPEC_TABLE

DOCS = Path("/work/shared/reference/docs/butane")
BLOCK = re.compile(r"<!-- butane-config -->\s*```yaml\n(.*?)```", re.S)


def doc_examples() -> list:
    out = []
    for name in ("butane-examples.md", "butane-upgrading-fcos.md"):
        path = DOCS / name
        if not path.is_file():
            continue
        text = path.read_text()
        for m in BLOCK.finditer(text):
            out.append(pytest.param(m.group(1), id=f"{name}:{text[:m.start()].count(chr(10)) + 1}"))
    return out


FLATCAR = [
    "variant: flatcar\nversion: 1.1.0\nstorage:\n  luks:\n    - name: luks-static\n      device: /dev/sdb\n"
    "      discard: true\n      key_file:\n        inline: REPLACE-THIS-WITH-YOUR-KEY-MATERIAL\n",
    "variant: flatcar\nversion: 1.1.0\nstorage:\n  luks:\n    - name: luks-static\n      device: /dev/sdb\n"
    "      open_options:\n        - \"--perf-no_read_workqueue\"\n        - \"--perf-no_write_workqueue\"\n"
    "      key_file:\n        inline: REPLACE-THIS-WITH-YOUR-KEY-MATERIAL\n",
    "variant: flatcar\nversion: 1.1.0\nstorage:\n  files:\n    - path: /etc/example\n      mode: 0644\n"
    "      contents:\n        source: arn:aws:s3:us-west-1:123456789012:accesspoint/test/object/some/path\n",
    "variant: flatcar\nversion: 1.1.0\nsystemd:\n  units:\n    - name: example.service\n"
    "      contents_local: example.service\n    - name: example-drop-in.service\n      dropins:\n"
    "        - name: example-drop-in.conf\n          contents_local: example.conf\npasswd:\n  users:\n"
    "    - name: core\n      ssh_authorized_keys_local:\n        - id_ed25519.pub\n",
    "variant: flatcar\nversion: 1.0.0\npasswd:\n  users:\n    - name: core\n      ssh_authorized_keys:\n"
    "        - ssh-rsa AAAAB3NzaC1yc...\n",
]


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory):
    """The local files the examples name (``-d``)."""
    d = tmp_path_factory.mktemp("files")
    (d / "tree" / "sub").mkdir(parents=True)
    (d / "tree" / "sub" / "a.txt").write_text("a\n")
    for name, text in {"example.service": "[Service]\nExecStart=/bin/true\n", "example.conf": "[Service]\n",
                       "ignition.ign": '{"ignition": {"version": "3.5.0"}}', "config.ign": '{"ignition": {}}',
                       "ca.pem": "-----BEGIN CERTIFICATE-----\n", "file": "f\n", "file-epilogue": "e\n",
                       "local-file3": "3\n", "id_rsa.pub": "ssh-rsa AAAA a@b\n",
                       "id_ed25519.pub": "ssh-ed25519 AAAA a@b\n"}.items():
        (d / name).write_text(text)
    return d


def test_the_documentation_is_here():
    if not DOCS.is_dir():
        pytest.skip(f"no {DOCS}")
    examples = doc_examples()
    assert len(examples) >= 50
    versions = {re.search(r"^version: (\S+)", p.values[0], re.M).group(1) for p in examples}
    assert versions == {v for (variant, v) in SPEC_TABLE if variant == "fcos"} - {"1.0.0"}   # none is 1.0.0
    assert sum("boot_device:" in p.values[0] for p in examples) >= 10
    assert sum("grub:" in p.values[0] for p in examples) >= 2


@pytest.mark.parametrize("text", doc_examples() + [pytest.param(t, id=f"flatcar-{i}") for i, t in enumerate(FLATCAR)])
def test_documented_example_translates(text, files_dir):
    t = butane_to_ignition(text, files_dir=files_dir, strict=True)
    assert t.warnings == []
    assert t.spec == SPEC_TABLE[(t.variant, t.version)]
    assert_valid(t.config)
