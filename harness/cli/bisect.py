"""``livelab bisect fcos|flatcar``: the first release of a stream or channel that fails a test.

    livelab bisect fcos --stream testing --good 42.20250707.2.0 --bad 42.20250901.2.0 fcos.testing.iso.bios.base
    livelab bisect flatcar --channel alpha --good 4012.0.0 --bad 4152.0.0 --scenario base --via pxe --firmware bios

The releases between GOOD and BAD come from the stream's release index (FCOS
``prod/streams/<stream>/releases.json``) or the channel's directory page (Flatcar
``https://<channel>.release.flatcar-linux.net/amd64-usr/``), oldest first.  BAD is booted first; then
the release nearest the middle of what is left, until one good/bad boundary remains.  Each try is the
same pytest case with ``--release`` pinned.  OUTPUT gets bisect.json (every step, its verdict, triage
and run directory) and each try's run directories under steps/.  Exit status: 0 a first bad release
found, 1 not (the bad release passed, or skipped releases hide the boundary), 2 bad input.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

from .. import artifacts, options, runtime
from .. import matrix as mx
from ..bisect.probe import CaseProbe
from ..bisect.steps import Bisection
from ..errors import LivelabError
from ..vocab import FCOS_STREAMS, FIRMWARES, FLATCAR_CHANNELS, METHODS, OSES, TestId, check_stream

# valued options handed to each try's pytest as they are; flags as flags
_FORWARDED = ("keyring", "ignition_spec_table", "ignition_max_spec", "cache_dir", "accel", "backend",
              "libvirt_uri", "extend_timeout", "ignition_validate")
_FLAGS = ("insecure", "offline", "below_minimum")


class IntermixedParser(argparse.ArgumentParser):
    """A verb whose positionals may follow its options (``bisect fcos --good A --bad B TEST_ID``): plain
    argparse takes a verb's positionals in one run and refuses the later TEST_ID."""

    _inner = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]  # noqa: ANN001,ANN201
        if self._inner:
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return super().parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bisect", help="find the first release of a stream or channel that fails a test",
                       description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="\n".join(__doc__.splitlines()[2:]))
    p.__class__ = IntermixedParser
    p.add_argument("os", choices=OSES)
    p.add_argument("test_id", nargs="?", metavar="TEST_ID",
                   help="the failed case: <os>.<stream|channel>.<method>.<firmware>.<scenario> "
                        "(or --scenario, --via and --firmware)")
    p.add_argument("--stream", help=f"FCOS stream: {', '.join(FCOS_STREAMS)} (default: TEST_ID's)")
    p.add_argument("--channel", help=f"Flatcar channel: {', '.join(FLATCAR_CHANNELS)} (default: TEST_ID's)")
    p.add_argument("--good", required=True, metavar="VERSION", help="a release the test passes on")
    p.add_argument("--bad", required=True, metavar="VERSION", help="a later release the test fails on")
    p.add_argument("--scenario", metavar="NAME", help="the scenario of the case (instead of TEST_ID)")
    p.add_argument("--via", choices=METHODS, help="boot method of the case (with --scenario)")
    p.add_argument("--firmware", choices=FIRMWARES, help="firmware of the case (with --scenario; default bios)")
    p.add_argument("--scenario-dir", action="append", default=None, metavar="DIR",
                   help="where the scenario YAML files are (repeatable; default ./scenarios)")
    p.add_argument("--jobs", default="1", metavar="N|auto",
                   help="releases booted at once in each round (auto: as many as this host's memory and cores "
                        "hold); default 1")
    p.add_argument("--output", "-o", metavar="DIR",
                   help="where bisect.json and each try's run directories go (default runs/bisect/<case>-<time>)")
    options.add_options(p.add_argument, options.ARTIFACT_OPTIONS + options.VM_OPTIONS + options.CONFIG_OPTIONS
                        + ("vm_cpus",) + options.PROGRESS_OPTIONS)
    p.set_defaults(func=cmd_bisect)


def case_of(args: argparse.Namespace) -> TestId:
    """The case to bisect, from TEST_ID or --scenario/--via/--firmware, with the stream checked."""
    flag, given = ("--stream", args.stream) if args.os == "fcos" else ("--channel", args.channel)
    other = args.channel if args.os == "fcos" else args.stream
    if other:
        raise LivelabError(f"{args.os} takes {flag}, not {'--channel' if args.os == 'fcos' else '--stream'}")
    if args.test_id:
        if args.scenario or args.via or args.firmware:
            raise LivelabError("give TEST_ID or --scenario/--via/--firmware, not both")
        tid = TestId.parse(args.test_id)
        if not tid.scenario:
            raise LivelabError(f"test id {args.test_id} names no scenario: expected "
                               "<os>.<stream|channel>.<method>.<firmware>.<scenario>")
        if tid.os != args.os:
            raise LivelabError(f"test id {args.test_id} is a {tid.os} case, not {args.os}")
        if given and given != tid.stream:
            raise LivelabError(f"test id {args.test_id} runs on {tid.stream}, not {flag} {given}")
        return tid
    if not (args.scenario and args.via):
        raise LivelabError("which test? give TEST_ID, or --scenario NAME --via METHOD [--firmware FW]")
    stream = check_stream(args.os, given or "stable")
    return TestId(args.os, stream, args.via, args.firmware or "bios", args.scenario)


def check_range(releases: list[str], good: str, bad: str, where: str) -> list[str]:
    """The releases from ``good`` to ``bad``, both included, in release order; one line when either is
    not a release of the list, or good is not older than bad."""
    for flag, version in (("--good", good), ("--bad", bad)):
        if version not in releases:
            raise LivelabError(f"{flag} {version}: not a release of {where} ({len(releases)} releases, "
                               f"{releases[0]} to {releases[-1]})")
    g, b = releases.index(good), releases.index(bad)
    if g == b:
        raise LivelabError(f"--good and --bad are the same release {good}")
    if g > b:
        raise LivelabError(f"--good {good} is newer than --bad {bad} in {where}: the good release comes first")
    return releases[g:b + 1]


def _jobs(value: str, memory_mib: int, say: Callable[[str], None]) -> int:
    """``--jobs``: N, or auto; never more than this host holds at once (the admission ledger would only
    queue them)."""
    fits = runtime.plan_workers(memory_mib)
    n = runtime.count_or_auto(value, "--jobs")
    if n is None:
        return fits
    if n > fits:
        say(f"--jobs {n}: this host boots {fits} VM(s) of {memory_mib} MiB at once; {fits} a round")
    return min(n, fits)


def cmd_bisect(args: argparse.Namespace) -> int:
    quiet = bool(args.quiet)

    def say(line: str) -> None:
        if not quiet:
            print(f"livelab: {line}", flush=True)

    options.check_values(lambda name: getattr(args, name, None))
    tid = case_of(args)
    matrix = mx.build_matrix(args.os, [tid.stream], [tid.method], [tid.firmware], [str(tid.scenario)],
                             args.scenario_dir)
    (cell,) = matrix.cells
    mirror = None if args.mirror in (None, "none") else args.mirror
    releases = artifacts.releases(args.os, tid.stream, mirror=mirror, cache_dir=args.cache_dir,
                                  offline=args.offline)
    where = f"{args.os} {tid.stream}"
    span = check_range(releases, args.good, args.bad, where)
    jobs = _jobs(args.jobs, cell.memory_mib, say)
    out = Path(args.output or Path("runs") / "bisect" / f"{cell.id}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    forwarded = {name: getattr(args, name) for name in _FORWARDED if getattr(args, name, None) not in (None, "")}
    pytest_options = {"mirror": args.mirror or "none", **forwarded,
                      "vm_cpus": runtime.parse_vm_cpus(args.vm_cpus, jobs)}
    flags = [f"--{name.replace('_', '-')}" for name in _FLAGS if getattr(args, name, False)]
    probe = CaseProbe(matrix, out, pytest_options, flags, mirror, args.cache_dir, args.offline)
    gone = probe.missing(args.bad)
    if gone:
        raise LivelabError(f"--bad {args.bad}: its artifacts cannot be had: {'; '.join(gone)}")
    out.mkdir(parents=True, exist_ok=True)
    bisection = Bisection(span, probe, jobs, out / "bisect.json",
                          meta={"os": args.os, "stream": tid.stream, "test_id": cell.id,
                                "node_id": mx.node_id(cell), "good": args.good, "bad": args.bad,
                                "output": str(out)},
                          say=say)
    runtime.reap_stale(log=say)
    say(f"bisect {cell.id}: {len(span)} releases from {args.good} (good) to {args.bad} (bad), {jobs} a round"
        + (f"; at most {bisection.search.max_boots()} boots without skips or retries" if jobs == 1 else "")
        + f"; output {out}")
    report = bisection.run()
    result = report.result
    tail = f"{report.boots} boot(s); bisect.json: {out / 'bisect.json'}"
    if report.problem:
        print(f"livelab: {report.problem}; {tail}")
        return 1
    assert result is not None
    if result.first_bad:
        print(f"livelab: first bad release: {result.first_bad} (boundary: {result.last_good} good, "
              f"{result.first_bad} bad); {tail}")
        return 0
    print(f"livelab: the first bad release is one of {', '.join(result.suspects)} (skipped releases hide the "
          f"boundary between {result.last_good} good and {result.first_bad_seen} bad); {tail}")
    return 1

