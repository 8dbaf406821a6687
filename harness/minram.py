"""Bisect the smallest memory that still reaches SSH with Ignition applied (``livelab min-ram``,
whose command line is ``harness/cli/minram.py``).

Each probe is a real boot (``--below-minimum`` implied) with the session key and the completion
unit; success means SSH came up and the completion unit (written by Ignition) ran.  A failed probe
must be a fast failure with a reason (out of memory, out of RAM-disk space, kernel panic): a probe
that only times out is reported as such, since that means a watcher missed the cause.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

from .errors import BootFailure, LivelabError
from .lab import BootRequest, LabOptions, LiveBoot
from .ssh import SessionKey
from .vocab import memory_minimum


@dataclasses.dataclass
class Probe:
    memory_mib: int
    ok: bool
    reason: str
    seconds: float


def probe(req: BootRequest, opts: LabOptions, run_dir: Path, key: SessionKey, memory: int) -> Probe:
    r = dataclasses.replace(req, memory_mib=memory, name=f"{req.test_id}.min-ram-{memory}")
    o = dataclasses.replace(opts, below_minimum=True)
    t0 = time.monotonic()
    lb = LiveBoot(r, o, run_dir / f"{memory}MiB", ssh_key=key)
    try:
        m = lb.start()
        m.wait_for_ssh()
        m.wait_for_port_token(timeout=lb.timeouts.command)
        return Probe(memory, True, "SSH up, Ignition applied", time.monotonic() - t0)
    except BootFailure as exc:
        return Probe(memory, False, str(exc).splitlines()[0], time.monotonic() - t0)
    finally:
        lb.close()


def bisect(req: BootRequest, opts: LabOptions, run_dir: Path, low: int = 64, high: int | None = None,
           step: int = 32, log: Callable[[str], None] = print) -> dict:
    """Smallest memory in [low, high] (to ``step`` MiB) that boots; ``high`` defaults to the minimum."""
    doc = memory_minimum(req.os, req.method)
    high = high or doc.mib
    key = SessionKey(run_dir / "ssh")
    req = dataclasses.replace(req, completion=True, ssh=True,
                              ignition=req.ignition or {"ignition": {"version": "3.3.0"}})
    probes: list[Probe] = []

    def run(mem: int) -> bool:
        p = probe(req, opts, run_dir, key, mem)
        probes.append(p)
        log(f"livelab: {mem:5d} MiB: {'ok  ' if p.ok else 'FAIL'} {p.reason} ({p.seconds:.0f} s)")
        return p.ok

    if not run(high):
        raise LivelabError(f"{req.test_id} does not boot even with {high} MiB; see {run_dir}")
    lo, hi = low, high          # invariant: hi boots; everything < lo is unknown/failing
    if run(lo):
        hi = lo
    else:
        while hi - lo > step:
            mid = (lo + hi) // 2 // step * step or step
            if mid <= lo:
                mid = lo + step
            if run(mid):
                hi = mid
            else:
                lo = mid
    result = {"test_id": req.test_id, "min_ram_mib": hi, "documented_mib": doc.mib, "documented_source": doc.source,
              "probes": [dataclasses.asdict(p) for p in probes],
              "timeouts": [p.memory_mib for p in probes if not p.ok and "timed out" in p.reason]}
    (run_dir / "min-ram.json").write_text(json.dumps(result, indent=2))
    return result
