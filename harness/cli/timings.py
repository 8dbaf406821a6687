"""``livelab timings RUN [RUN…] [--json]``: where each boot's time went, from its run directory.

The split is ``harness.vm.record.SPANS`` (firmware and loading, kernel to /init, initramfs units,
Ignition, the live rootfs, switch-root, real root to sshd, the harness's lag behind sshd), from
``timings.json`` completed by ``console-timed.log``.  Exit status 2 when a RUN has neither.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..vm import record
from .triage import expand_runs


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "timings", help="where each boot's time went (firmware, kernel, initramfs, Ignition, ...)",
        description="Splits each boot of a livelab run directory into firmware and loading, kernel to /init, "
                    "initramfs units, Ignition, the live rootfs, switch-root, real root to sshd and the "
                    "harness's lag behind sshd (seconds), from its timings.json and console-timed.log.")
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="a run directory, or a directory of run directories (runs/<stamp>: each of its VMs)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per run directory")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    status = 0
    results = []
    names = [n for arg in args.runs for n in expand_runs(arg, ("timings.json", "console-timed.log"))]
    for name in names:
        boots = record.read_boots(Path(name)) if Path(name).is_dir() else []
        if not boots:
            print(f"livelab: error: {name}: no timings.json or console-timed.log", file=sys.stderr)
            status = 2
            continue
        splits = [record.split(b) for b in boots]
        results.append({"run": name, "boots": [{"boot": i + 1, "phases": b, "split": s}
                                               for i, (b, s) in enumerate(zip(boots, splits, strict=True))]})
        if not args.json:
            print(f"== {name} ==")
            for i, (phases, s) in enumerate(zip(boots, splits, strict=True), 1):
                spans = ", ".join(f"{record.SPAN_LABELS[k]} {v:g} s" for k, v in s.items()) or "no phases"
                total = phases.get("ssh_ready")
                print(f"boot {i}: {spans}" + (f"; SSH at {total:g} s" if total is not None else ""))
    if args.json:
        print(json.dumps(results, indent=2))
    return status
