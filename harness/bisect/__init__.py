"""``livelab bisect``: which release of a stream or channel broke a test.

- ``search``: the midpoint search over an ordered release list (plain data, no boots);
- ``steps``: each try's verdict (good, bad, skip, a flaky one tried again), rounds of ``--jobs``
  releases, ``bisect.json``;
- ``probe``: one try of one release, the failed pytest case with ``--release`` pinned.

The release list comes from ``harness.artifacts.releases`` (the FCOS release index, the Flatcar
channel's directory page); ``harness.cli.bisect`` is the command.
"""
