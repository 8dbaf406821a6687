"""``livelab min-ram OS --via METHOD``: the bisection of ``harness/minram.py`` from the command line."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..minram import bisect


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .run import add_boot_options
    p = sub.add_parser("min-ram", help="bisect the smallest memory that reaches SSH with Ignition applied")
    add_boot_options(p)
    p.add_argument("--low", type=int, default=64)
    p.add_argument("--step", type=int, default=32)
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    from .run import options_of, request_of
    args.below_minimum = True
    req = request_of(args)
    req.memory_mib = None
    run_dir = Path(args.run_dir or f"runs/min-ram/{req.test_id}-{time.strftime('%Y%m%d-%H%M%S')}")
    res = bisect(req, options_of(args), run_dir, low=args.low, step=args.step)
    print(f"{res['test_id']}: smallest memory that reaches SSH with Ignition applied: {res['min_ram_mib']} MiB "
          f"(documented minimum {res['documented_mib']} MiB: {res['documented_source']})")
    if res["timeouts"]:
        print(f"livelab: warning: probes at {res['timeouts']} MiB timed out instead of failing fast")
        return 1
    return 0
