"""``livelab doctor [--json] [--no-kvm-probe]``: the checks of ``harness/doctor.py``, printed."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Callable

from ..doctor import OS_RELEASE, _line, distribution, install_hint, run_checks
from ..vm import accel


def cmd_doctor(args: argparse.Namespace, os_release: str = OS_RELEASE, which: Callable = shutil.which,
               exists: Callable = os.path.exists) -> int:
    results = run_checks(which, exists, None if args.no_kvm_probe else accel.probe_kvm)
    family, os_id = distribution(os_release)
    hint = install_hint(results, family)
    ok = all(r.ok for r in results if r.required)
    if args.json:
        print(json.dumps({"ok": ok, "distribution": os_id, "family": family, "install": hint,
                          "checks": [asdict(r) for r in results]}, indent=2))
    else:
        for r in results:
            print(_line(r))
        if hint and family:
            print(f"livelab doctor: to install what is missing: {hint}")
        elif hint:
            print(f"livelab doctor: unknown distribution {os_id!r}; {hint}")
        print("livelab doctor: " + ("this host can run livelab" if ok else "required tools are missing"))
    return 0 if ok else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("doctor", help="check that this host has what livelab needs")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--no-kvm-probe", action="store_true", help="skip the KVM probe guest")
    p.set_defaults(func=cmd_doctor)


def main(argv: Sequence[str] | None = None, **inject) -> int:
    """``livelab doctor [--json] [--no-kvm-probe]`` with ``argv`` the options after the verb;
    ``inject`` (os_release, which, exists) goes to ``cmd_doctor``."""
    parser = argparse.ArgumentParser(prog="livelab")
    register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["doctor", *(sys.argv[1:] if argv is None else argv)])
    return cmd_doctor(args, **inject)


if __name__ == "__main__":
    sys.exit(main())
