"""Fixtures shared by the unit tests: the hostile loopback mirror and its throwaway signing key, and a
QEMU that never starts."""
import pytest
from hostile_mirror import fcos_mirror, mirror_template, signer  # noqa: F401 -- fixtures, registered by import


@pytest.fixture
def sentinel(tmp_path):
    """A LIVELAB_QEMU that records every call and never starts anything: (its path, its call log)."""
    log = tmp_path / "qemu-calls.log"
    path = tmp_path / "qemu-sentinel"
    path.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\nexit 1\n")
    path.chmod(0o755)
    return path, log
