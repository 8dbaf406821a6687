"""``livelab butane [--pretty] [--strict] [-d DIR] [-o OUT] [FILE]``."""
from __future__ import annotations

import argparse
import json
import os
import sys

from .. import options, safeload
from ..atomic import atomic_write, check_output_path
from ..errors import LivelabError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "butane", help="translate a Butane config to Ignition JSON (and validate it)",
        description="Translate a Butane config (fcos 1.0.0-1.6.0, flatcar 1.0.0-1.1.0) to an "
                    "Ignition config as butane v0.25.1 does, validate it, and write it to OUT or stdout. "
                    "Warnings (unknown keys, ...) go to stderr with their line and column.")
    p.add_argument("file", nargs="?", metavar="FILE", help="Butane YAML (default: stdin)")
    p.add_argument("-p", "--pretty", action="store_true", help="indent the JSON output")
    p.add_argument("-s", "--strict", action="store_true", help="fail on warnings (as butane --strict)")
    p.add_argument("-d", "--files-dir", metavar="DIR", help="directory that local paths are relative to")
    p.add_argument("-o", "--output", metavar="OUT", help="write the Ignition config here (default: stdout)")
    p.add_argument("--no-validate", action="store_true", help="skip validating the generated config")
    options.add_options(p.add_argument, options.CONFIG_OPTIONS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..ignition import butane_to_ignition, checks, validate_or_raise

    output = check_output_path(args.output) if args.output else None   # before any work
    if args.file and args.file != "-":
        source = args.file
        data = safeload.read_file(args.file)
    else:
        source = "<stdin>"
        data = safeload.read_stream(sys.stdin.buffer, source)
    if args.files_dir and not os.path.isdir(args.files_dir):
        raise LivelabError(f"files directory {args.files_dir} does not exist")
    tr = butane_to_ignition(data, files_dir=args.files_dir, source=source)
    for w in tr.warnings:       # every one, as butane prints its report before it fails under --strict
        print(f"livelab: warning: {w}", file=sys.stderr)
    if args.strict and tr.warnings:
        raise LivelabError(f"strict: {len(tr.warnings)} warning(s): {tr.warnings[0]}")
    if not args.no_validate:
        result = validate_or_raise(tr.config, binary=args.ignition_validate)
        # the validator's warnings the translation reported already (with their YAML positions) left out
        warns = [m for m in result.messages if m.startswith("warning") and not checks.emulated(m)]
        if args.strict and warns:
            raise LivelabError(f"strict: {result.validator}: {warns[0]}")
        for m in warns:
            print(f"livelab: {result.validator}: {m}", file=sys.stderr)
    if args.pretty:
        out = json.dumps(tr.config, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    else:
        out = json.dumps(tr.config, separators=(",", ":"), ensure_ascii=False, sort_keys=True) + "\n"
    if output is not None:
        atomic_write(output, out)
    else:
        sys.stdout.write(out)
    return 0
