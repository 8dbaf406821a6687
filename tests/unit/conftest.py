"""Fixtures shared by the unit tests: the hostile loopback mirror and its throwaway signing key."""
from hostile_mirror import fcos_mirror, mirror_template, signer  # noqa: F401 -- fixtures, registered by import
