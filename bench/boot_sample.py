#!/usr/bin/env python3
"""One boot to SSH for bench (f), run in a child process with the harness of a checkout.

bench/run.py runs this file with ``PYTHONPATH=<checkout>`` so that ``harness`` is that checkout's
(this one's, or ``--baseline``'s), boots with that checkout's ``images/out``, and prints one JSON
line: ``{"ssh_s": seconds from LiveBoot.start() to wait_for_ssh() returning}``.  The boot's
split is read afterwards from its run directory by the parent (``harness.vm.record``).
Only the public interface is used (BootRequest, LabOptions, LiveBoot, SessionKey), so an older
checkout runs it too.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)          # this checkout's bench/ must not shadow anything of the other one

import harness
from harness.lab import BootRequest, LabOptions, LiveBoot
from harness.ssh import SessionKey


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkout", required=True)
    ap.add_argument("--os", required=True)
    ap.add_argument("--stream", required=True)
    ap.add_argument("--method", required=True)
    ap.add_argument("--butane", help="Butane file (its `ssh-rsa AAAA...` placeholder becomes the session key)")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--key-dir", required=True)
    ap.add_argument("--cache-dir", required=True)
    ap.add_argument("--name", required=True)
    a = ap.parse_args()
    out = Path(a.checkout) / "images" / "out"
    opts = LabOptions(mirror=str(out / "mirror"), keyring=str(out / "keyring.gpg"),
                      ignition_spec_table=str(out / "ignition-specs.json"), cache_dir=a.cache_dir)
    key = SessionKey(Path(a.key_dir))
    butane = Path(a.butane).read_text() if a.butane else None
    req = BootRequest(a.os, a.stream, a.method, "bios", butane=butane, name=a.name,
                      ssh_key_placeholder="ssh-rsa AAAA..." if butane else None)
    lb = LiveBoot(req, opts, Path(a.run_dir), ssh_key=key)
    try:
        lb.prepare()
        t0 = time.monotonic()
        lb.start()
        lb.machine.wait_for_ssh()
        ssh_s = time.monotonic() - t0
        lb.machine.write_timings()
    finally:
        lb.close()
    print(json.dumps({"ssh_s": round(ssh_s, 2), "harness": harness.__file__}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
