"""``livelab triage LOG [LOG…] [--json]``: why a boot was lost, from any console or journal text.

Exit status: 0 when no input shows a lost boot, 1 when one does, 2 when an input is unreadable.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..triage.inputs import Triaged, UnreadableLog, triage_path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "triage", help="say why a boot was lost, from a console log, a journal, a paste or a run directory",
        description="Reads console or journal text (a CI artifact, a paste from a bug report, a .gz, standard "
                    "input as -, or a livelab run directory) and prints the verdict: ok, lost: <reason>, or "
                    "'no failure found; last phase <phase>' for a log that ends early. Exit status 0 ok or no "
                    "failure found, 1 a lost boot, 2 an unreadable input.")
    p.add_argument("logs", nargs="+", metavar="LOG",
                   help="a log file, - for standard input, a run directory, or a directory of run directories "
                        "(runs/<stamp>: each of its VMs)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per input")
    p.set_defaults(func=_cmd)


def expand_runs(arg: str, markers: tuple[str, ...] = ("console.log",)) -> list[str]:
    """A directory of run directories (``runs/<stamp>``) stands for each run directory in it (a
    directory with one of the ``markers`` files)."""
    p = Path(arg)

    def is_run(d: Path) -> bool:
        return any((d / m).is_file() for m in markers)

    if arg != "-" and p.is_dir() and not is_run(p):
        runs = sorted(str(d) for d in p.iterdir() if is_run(d))
        if runs:
            return runs
    return [arg]


def _cmd(args: argparse.Namespace) -> int:
    results: list[Triaged] = []
    status = 0
    names = [n for arg in args.logs for n in expand_runs(arg)]
    for name in names:
        try:
            t = triage_path(name)
        except UnreadableLog as exc:
            print(f"livelab: error: {exc}", file=sys.stderr)
            status = 2
            continue
        results.append(t)
        if t.verdict.failure is not None:
            status = max(status, 1)
        if not args.json:
            if len(names) > 1:
                print(f"== {t.name} ==")
            print(t.summary())
    if args.json:
        print(json.dumps([t.as_dict() for t in results], indent=2))
    return status
