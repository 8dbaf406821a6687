"""The ``livelab`` command.  Grammar: ``livelab VERB [SUBVERB] OS [options]``.

Each subsystem owns its verbs in a small ``cli`` module exposing ``register(subparsers)``;
every handler is a function ``(args) -> int``.  Errors the user can fix are raised as
``LivelabError`` and printed as one line before any VM starts.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from ..errors import BootFailure, LivelabError

# modules that add verbs; each has register(subparsers)
_VERB_MODULES = (
    "harness.cli.artifacts",   # artifacts resolve|fetch|ls|prune
    "harness.cli.butane",      # butane
    "harness.cli.media",       # iso customize|show|reset, pxe ignition-wrap
    "harness.cli.images",      # images build
    "harness.cli.run",         # boot, check, down, repro, accel
    "harness.cli.minram",      # min-ram
    "harness.cli.matrix",      # matrix, matrix report
    "harness.cli.bisect",      # bisect
    "harness.cli.doctor",      # doctor
    "harness.cli.triage",      # triage
    "harness.cli.timings",     # timings
)


# OSErrors that describe the host (its disks), reported as one line instead of a traceback
_HOST_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livelab", description="Boot Fedora CoreOS and Flatcar live images "
                                     "under QEMU and check them. Grammar: livelab VERB [SUBVERB] OS [options].")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log every step of the harness (artifacts, VM lifecycle, waits) to stderr")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for name in _VERB_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
        logging.getLogger("paramiko").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:      # `livelab ... | head`: the reader left; stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())      # no second error when Python flushes stdout at exit
        return 141
    except BootFailure as exc:   # the reason, then the console evidence
        print(f"livelab: boot failed: {exc}", file=sys.stderr)
        return exc.exit_status
    except LivelabError as exc:
        print(f"livelab: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_status
    except OSError as exc:
        # the host's disk, not a bug: a full or read-only filesystem is one line like any input error
        if exc.errno not in _HOST_ERRNOS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"livelab: error: {exc.strerror or errno.errorcode.get(exc.errno, exc)}{where}", file=sys.stderr)
        return LivelabError.exit_status
    except KeyboardInterrupt:
        print("livelab: interrupted", file=sys.stderr)
        return 130
