"""``livelab butane [--pretty] [--strict] [-d DIR] [-o OUT] [FILE]``."""
from __future__ import annotations

import json
import os
import sys

from ..errors import LivelabError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "butane", help="translate a Butane config to Ignition JSON (and validate it)",
        description="Translate a Butane config (fcos 1.0.0-1.6.0, flatcar 1.0.0-1.1.0) to an "
                    "Ignition config, validate it, and write it to OUT or stdout.")
    p.add_argument("file", nargs="?", metavar="FILE", help="Butane YAML (default: stdin)")
    p.add_argument("-p", "--pretty", action="store_true", help="indent the JSON output")
    p.add_argument("-s", "--strict", action="store_true", help="fail on warnings")
    p.add_argument("-d", "--files-dir", metavar="DIR", help="directory that local paths are relative to")
    p.add_argument("-o", "--output", metavar="OUT", help="write the Ignition config here (default: stdout)")
    p.add_argument("--no-validate", action="store_true", help="skip validating the generated config")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..ignition import butane_to_ignition, validate_or_raise

    if args.file and args.file != "-":
        try:
            with open(args.file, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise LivelabError(f"cannot read {args.file}: {exc.strerror}") from None
    else:
        text = sys.stdin.read()
    if args.files_dir and not os.path.isdir(args.files_dir):
        raise LivelabError(f"files directory {args.files_dir} does not exist")
    tr = butane_to_ignition(text, files_dir=args.files_dir, strict=args.strict)
    for w in tr.warnings:
        print(f"livelab: warning: {w}", file=sys.stderr)
    if not args.no_validate:
        result = validate_or_raise(tr.config)
        warns = [m for m in result.messages if m.startswith("warning")]
        if args.strict and warns:
            raise LivelabError(f"strict: {result.validator}: {warns[0]}")
        for m in warns:
            print(f"livelab: {result.validator}: {m}", file=sys.stderr)
    if args.pretty:
        out = json.dumps(tr.config, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    else:
        out = json.dumps(tr.config, separators=(",", ":"), ensure_ascii=False, sort_keys=True) + "\n"
    if args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(out)
        os.replace(tmp, args.output)
    else:
        sys.stdout.write(out)
    return 0
