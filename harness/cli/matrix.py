"""``livelab matrix fcos|flatcar ...``: run a boot matrix and report it; ``livelab matrix report DIR``.

    livelab matrix fcos --streams stable,testing,next --via pxe,ipxe,iso --firmware bios,uefi --output DIR
    livelab matrix fcos --via pxe,iso --firmware bios,uefi,uefi-secure -o DIR   # pxe under uefi-secure: refused
    livelab matrix fcos --via iso,iso-as-disk --sector 512,4096 --scenarios base,persist-var --list   # 4Kn cells too
    livelab matrix flatcar --channels stable,beta --via pxe,ipxe --output DIR --rerun 1 -- -x
    livelab matrix fcos --streams stable,next --list [--json] [--shards 4]   # the cells (and their split)
    livelab matrix fcos --streams stable,next --shard 2/4 --output DIR       # the 2nd of 4 shards
    livelab matrix fcos --hosts ssh=lab@host1,ssh=lab@host2 --output DIR      # workers on two hosts
    livelab matrix merge OUT DIR1 DIR2 ...   # one summary.json, junit.xml, report.html from shard outputs
    livelab matrix report DIR          # regenerate report.html from DIR/summary.json

DIR gets junit.xml, summary.json and report.html, tagged with its host and shard; each VM's files are
under DIR/runs/.  The split is balanced by --durations FILE (a livelab.durations/1 file such as a merge's
durations.json), else by an estimate from method and memory: give every shard the same file.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import TextIO

from .. import hosts, matrix_merge, options, report, runtime
from .. import matrix as mx
from .. import matrix_shards as shards
from ..errors import LivelabError
from ..progress import matrix as progress
from ..vocab import FCOS_STREAMS, FIRMWARES, FLATCAR_CHANNELS, OS_METHODS


def cmd_run(args: argparse.Namespace) -> int:
    full = mx.build_matrix(args.os, args.streams, args.via, args.firmware, args.scenarios, args.scenario_dir,
                           args.sector)
    shard = shards.parse_shard(args.shard) if args.shard else None
    count = shards.parse_count(args.shards) if args.shards is not None else None
    if shard and count and count != shard.count:
        raise LivelabError(f"--shards {count} and --shard {shard.label} disagree")
    if args.json and not args.list:
        raise LivelabError("--json goes with --list")
    plan = shards.Plan.make(full, shard.count if shard else count, args.durations)
    if args.list:
        print(json.dumps(plan.document(shard), indent=2) if args.json else "\n".join(plan.lines(shard)))
        print(plan.describe(), file=sys.stderr)
        _say_refused(full)
        return 0
    if count and not shard:
        raise LivelabError("--shards N goes with --list; a run takes --shard K/N")
    if not args.output:
        raise LivelabError("--output DIR is required (except with --list)")
    shard = shard or shards.Shard(1, 1)
    plan = plan if plan.shards is not None else shards.Plan.make(full, 1, args.durations)
    m = dataclasses.replace(full, cells=plan.cells_of(shard))
    lab = _lab_hosts(args)
    workers = hosts.worker_count(lab) if lab else mx.compute_workers([c.memory_mib for c in m.cells], args.workers)
    if args.rerun < 0:
        raise LivelabError("--rerun: expected 0 or more")
    for tid in m.dropped:
        print(f"livelab: {tid}: not offered by its scenario, left out")
    _say_refused(m, sys.stdout)
    out = Path(args.output).resolve()
    options = {"mirror": args.mirror, "keyring": args.keyring, "ignition_spec_table": args.ignition_spec_table,
               "extend_timeout": args.extend_timeout,
               # on other hosts, --vm-cpus auto is each worker's to work out on its own host
               "vm_cpus": (runtime.count_or_auto(args.vm_cpus, "--vm-cpus") if lab
                           else runtime.parse_vm_cpus(args.vm_cpus, workers))}
    extra = list(args.pytest_args)
    if extra and extra[0] != "--":
        raise LivelabError(f"unexpected argument {extra[0]!r}: pytest options go after --")
    extra = extra[1:]
    host = args.host or hosts.host_name()
    started = time.time()
    if shard.count > 1:
        print(f"livelab: shard {shard.label} on {host}: {len(m.cells)} of {len(full.cells)} cell(s)")
    # cells as they start, fail and end, with the time left from the plan's expected seconds
    with progress.for_matrix(m.ids, out, workers, quiet=args.quiet,
                             expected={k: v[0] for k, v in plan.expected.items()}):
        cells = mx.run_matrix(m, out, workers, args.rerun, options, extra, hosts=lab) if m.cells else []
    cells = shards.tag(cells, host, shard)
    out.mkdir(parents=True, exist_ok=True)
    report.merge_junit(mx.attempt_files(out), cells, out / "junit.xml")
    paths = report.build_report(out, cells, {**full.meta(), **shards.shard_record(shard, host, plan, started,
                                                                                   time.time())})
    t = report.totals(cells)
    print(f"livelab: matrix {m.os}: {t['pass']} pass, {t['flaky']} flaky, {t['fail']} fail, {t['skip']} skip"
          + (f", {len(m.refused)} refused before boot" if m.refused else "") + f" -> {paths['html']}")
    return 1 if t["fail"] else 0


def _lab_hosts(args: argparse.Namespace) -> list[str]:
    """``--hosts``: the ``--tx`` values of the workers on other hosts (none without it)."""
    if not args.hosts:
        return []
    if runtime.count_or_auto(args.workers, "--workers") is not None:
        raise LivelabError("--workers and --hosts: with --hosts, each entry is a worker (N*ssh=host for N)")
    if not hosts.installed_plugin():
        raise LivelabError("--hosts: livelab is not installed here (pip install): the pytest that drives "
                           "the hosts' workers loads it by its entry point, as each host's does")
    return hosts.parse_hosts(args.hosts, python=sys.executable, chdir=str(Path.cwd()))


def _say_refused(m: mx.Matrix, out: TextIO | None = None) -> None:
    """Each refused cell and why, one line (stderr by default): not run, and not failed (the
    summary and the report list them too)."""
    for r in m.refused:
        print(f"livelab: {r['id']}: refused before boot, not run: {r['reason']}", file=out or sys.stderr)


def cmd_merge(args: argparse.Namespace) -> int:
    summary = matrix_merge.merge(Path(args.out), [Path(d) for d in args.dirs], [Path(p) for p in args.plan or []])
    t = summary["totals"]
    return 1 if t.get("fail") or t.get(report.MISSING) else 0


def cmd_report(args: argparse.Namespace) -> int:
    summary = report.load_summary(Path(args.dir))
    meta = {k: v for k, v in summary.items() if k not in ("cells", "totals", "schema")}
    paths = report.build_report(Path(args.dir), summary.get("cells") or [], meta)
    print(paths["html"])
    return 0


def _matrix_options(p: argparse.ArgumentParser, os_id: str) -> None:
    if os_id == "fcos":
        p.add_argument("--streams", help=f"comma list of {', '.join(FCOS_STREAMS)} (default: all)")
    else:
        p.add_argument("--channels", "--streams", dest="streams",
                       help=f"comma list of {', '.join(FLATCAR_CHANNELS)} (default: all)")
    p.add_argument("--via", help=f"comma list of boot methods: {', '.join(OS_METHODS[os_id])} (default: all)")
    p.add_argument("--firmware", help=f"comma list of {', '.join(FIRMWARES)} (default: all; a network boot under "
                                      "uefi-secure is refused, not run: \"not applicable\")")
    p.add_argument("--sector", help="comma list of disk sector sizes, 512, 4096 (default: 512, and the 4096-byte "
                                    "(.4k) cells the scenarios offer); a cell that cannot boot is listed as refused")
    p.add_argument("--scenarios", help="comma list of scenario names (default: base)")
    p.add_argument("--scenario-dir", action="append", default=None, metavar="DIR",
                   help="where the scenario YAML files are (repeatable; default ./scenarios)")
    p.add_argument("--output", "-o", help="output directory (required to run)")
    p.add_argument("--list", action="store_true", help="print the cells (of --shard K/N; split by --shards N) "
                                                       "and exit: id, expected seconds, their source, shard")
    p.add_argument("--json", action="store_true", help="with --list: a JSON document (livelab.cells/1)")
    p.add_argument("--shard", metavar="K/N", help="run the K-th of N shards (balanced by expected boot time)")
    p.add_argument("--shards", metavar="N", help="with --list: split the cells into N shards")
    p.add_argument("--durations", metavar="FILE", help="recorded seconds per cell (livelab.durations/1, e.g. a "
                                                       "merge's durations.json) to balance the shards by")
    p.add_argument("--host", metavar="NAME", help="the host name a shard's outputs are tagged with "
                                                  "(default: this machine's)")
    p.add_argument("--rerun", type=int, default=0, metavar="N", help="re-run failed cells up to N times")
    p.add_argument("--workers", default="auto", help="pytest-xdist workers: N or auto (by memory and CPUs)")
    p.add_argument("--hosts", action="append", metavar="SPEC[,SPEC...]",
                   help="run the cells on workers on other hosts, one per entry: ssh=[user@]host[//python=PATH]"
                        "[//chdir=DIR][//ssh_config=FILE], N*ssh=... for N (python and chdir default to this "
                        "machine's paths; each host boots with its own cache and admission; repeatable)")
    # passed on to the matrix's pytest; the mirror and keyring default to its ini values
    options.add_options(p.add_argument, ("extend_timeout", "vm_cpus", "mirror", "keyring", "ignition_spec_table"))
    options.add_options(p.add_argument, options.PROGRESS_OPTIONS)
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: passed to pytest")
    p.set_defaults(func=cmd_run, os=os_id)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("matrix", help="run a boot matrix with pytest-xdist; write junit.xml, summary.json, report.html",
                       description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="\n".join(__doc__.splitlines()[2:]))
    msub = p.add_subparsers(dest="matrix_verb", metavar="fcos|flatcar|merge|report")
    msub.required = True
    for os_id in ("fcos", "flatcar"):
        _matrix_options(msub.add_parser(os_id, help=f"run a {os_id} matrix"), os_id)
    g = msub.add_parser("merge", help="merge shard outputs into one summary.json, junit.xml and report.html")
    g.add_argument("out", metavar="OUT", help="the merged output directory (new, or an earlier merge's)")
    # "+": the DIRs after the options too (a "*" would take none at OUT and refuse them after --plan)
    g.add_argument("dirs", metavar="DIR", nargs="+", help="a shard's output directory (livelab matrix --shard)")
    g.add_argument("--plan", action="append", metavar="FILE",
                   help="a --list --json document: its cells count as expected even if no DIR has them (repeatable)")
    g.set_defaults(func=cmd_merge)
    r = msub.add_parser("report", help="regenerate report.html from DIR/summary.json")
    r.add_argument("dir")
    r.set_defaults(func=cmd_report)
